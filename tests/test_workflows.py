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


def test_pre_commit_try_repo_runs_the_hook_on_a_temporary_package(valid_package, tmp_path):
    """`pre-commit try-repo` with this repository's .pre-commit-hooks.yaml, as a recorder would run it.

    Offline: pre-commit makes the hook's virtualenv and runs `pip install .` in it; pip is told to use no
    index (PIP_NO_INDEX), to take setuptools for the build from the wheels virtualenv ships
    (PIP_FIND_LINKS) and not to fetch civharm's dependencies (PIP_NO_DEPS), which the hook then imports
    from the environment running this test (PYTHONPATH). Everything else is pre-commit's own path.
    """
    import os
    import sysconfig

    import virtualenv

    from conftest import set_cell

    site = sysconfig.get_paths()["purelib"]
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": str(Path(virtualenv.__file__).parent / "seed" / "wheels" / "embed"), "PIP_NO_DEPS": "1",
           "PYTHONPATH": site, "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.org",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.org", "PRE_COMMIT_COLOR": "never"}

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=valid_package, check=True, capture_output=True, env=env, timeout=60)

    def try_repo() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(REPO), "civharm-validate", "--all-files",
                               "--verbose"], cwd=valid_package, capture_output=True, text=True, env=env, timeout=900)

    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "a package")
    passed = try_repo()
    assert passed.returncode == 0 and "civharm validate" in passed.stdout and "Passed" in passed.stdout, passed.stdout + passed.stderr
    set_cell(valid_package / "data" / "incidents.csv", 2, "summary", "=SUM(A1:A9) written as a summary")
    git("add", "-A")
    failed = try_repo()
    assert failed.returncode == 1 and "Failed" in failed.stdout and "text/formula-prefix" in failed.stdout, failed.stdout
