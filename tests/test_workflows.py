"""Workflow files pass GitHub's workflow schema (check-jsonschema's vendored copy, offline)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def check(schema: str, *paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


def test_there_is_a_release_workflow():
    assert REPO / ".github" / "workflows" / "release.yml" in WORKFLOWS


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_the_github_workflow_schema(path):
    done = check("vendor.github-workflows", path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("name: x\non: push\njobs:\n  build:\n    steps: 3\n", encoding="utf-8")
    assert check("vendor.github-workflows", broken).returncode == 1


def test_the_composite_action_passes_the_github_action_schema():
    done = check("vendor.github-actions", REPO / "action.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_action_never_puts_an_input_into_shell_text():
    """Inputs reach the shell as environment variables, so a crafted input cannot run as a command."""
    import yaml

    action = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
    for step in action["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step.get("name")


def test_the_pre_commit_hook_runs_civharm_validate_on_a_package(valid_package):
    """The hook's entry, run as pre-commit runs it (no file names, in the repository): exit 0, then 1 on an error."""
    import os
    import re
    import shlex

    import yaml

    from conftest import set_cell

    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert (hook["id"], hook["language"], hook["pass_filenames"]) == ("civharm-validate", "python", False)
    for path in ("datapackage.json", "schema/incidents.json", "data/incidents.csv", "sub/pkg/data/reports.csv"):
        assert re.search(hook["files"], path), path
    assert not re.search(hook["files"], "README.md")
    command = shlex.split(hook["entry"])
    civharm = Path(sys.executable).with_name(command[0])
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts")}

    def run() -> subprocess.CompletedProcess:
        return subprocess.run([str(civharm), *command[1:]], cwd=valid_package, capture_output=True, text=True, timeout=300, env=env)

    assert run().returncode == 0
    set_cell(valid_package / "data" / "incidents.csv", 2, "summary", "=SUM(A1:A9) written as a summary")
    done = run()
    assert done.returncode == 1 and "text/formula-prefix" in done.stdout
