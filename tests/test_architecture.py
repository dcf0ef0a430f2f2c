"""The pipeline's layering holds: each stage imports only from the stages below it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_import_layers_contract_is_kept():
    linter = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(linter)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Contracts: 1 kept, 0 broken." in done.stdout


def test_only_cli_touches_exit_codes_and_argv():
    for module in (REPO / "scripts" / "civharm").rglob("*.py"):
        if module.name == "cli.py":
            continue
        text = module.read_text(encoding="utf-8")
        assert "sys.exit(" not in text and "sys.argv" not in text, module
