"""The real dataset validates with civharm and with the stock frictionless CLI."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from civharm.cli import main
from conftest import DATA_TODAY, REPO


def test_real_dataset_is_valid():
    result = CliRunner().invoke(main, ["validate", str(REPO), "--today", DATA_TODAY])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("valid: ")


def test_stock_frictionless_accepts_the_dataset():
    frictionless = Path(sys.executable).with_name("frictionless")
    command = [str(frictionless)] if frictionless.exists() else [shutil.which("frictionless")]
    done = subprocess.run(command + ["validate", "datapackage.json"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
