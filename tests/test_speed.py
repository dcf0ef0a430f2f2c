"""The speed machinery's switch: the same report with it on and off, and off means off."""
from __future__ import annotations

import datetime as dt
import gc
import json
import subprocess
import sys

import pytest

from click.testing import CliRunner

from civharm import render, speed
from civharm.cli import main
from civharm.validate import Options, run
from conftest import REPO, TODAY, build_package, set_cell


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def broken_copy(tmp_path):
    """The real dataset with a structural error and rule errors of both workloads."""
    root = build_package(tmp_path / "real", REPO / "data")
    set_cell(root / "data" / "reports.csv", 2, "civilians_killed", "many")
    set_cell(root / "data" / "incidents.csv", 3, "date_end", "2000-01-01")
    set_cell(root / "data" / "incidents.csv", 4, "summary", " Leading blank.")
    return root


@pytest.fixture(autouse=True)
def environment_decides():
    speed.switch(None)
    yield
    speed.switch(None)


@pytest.mark.parametrize("value, on", [(None, True), ("1", True), ("yes", True), ("0", False), ("off", False),
                                       ("False", False), (" no ", False)])
def test_the_environment_switch(monkeypatch, value, on):
    if value is None:
        monkeypatch.delenv(speed.ENV_SWITCH, raising=False)
    else:
        monkeypatch.setenv(speed.ENV_SWITCH, value)
    assert speed.enabled() is on


def test_the_option_overrides_the_environment(monkeypatch):
    monkeypatch.setenv(speed.ENV_SWITCH, "1")
    speed.switch(False)
    assert not speed.enabled()
    monkeypatch.setenv(speed.ENV_SWITCH, "0")
    speed.switch(True)
    assert speed.enabled()


def test_the_report_is_the_same_on_and_off(broken_copy, monkeypatch):
    options = Options(today=dt.date.fromisoformat(TODAY), processes=2)  # on: a second process even for a small package
    on = run(broken_copy, options)
    speed.switch(False)
    monkeypatch.setattr(speed, "_forked", lambda work: pytest.fail("forked with the machinery off"))
    monkeypatch.setattr(speed, "_import_quietly", lambda module: pytest.fail("warm-up thread with the machinery off"))
    off = run(broken_copy, options)
    assert render.as_json(off) == render.as_json(on)
    assert {"frictionless/type-error", "dates/end-before-start", "text/untrimmed"} <= {f.rule_id for f in off.findings}


def test_off_the_cycle_collector_runs(broken_copy, monkeypatch):
    from civharm import validate

    seen = []
    original = validate.structure.check
    monkeypatch.setattr(validate.structure, "check", lambda package: seen.append(gc.isenabled()) or original(package))
    speed.switch(False)
    run(broken_copy, Options(today=dt.date.fromisoformat(TODAY), processes=1))
    assert seen == [True]


def test_cli_no_speed_gives_the_same_output(broken_copy):
    on = invoke("validate", str(broken_copy), "--format", "json", "--today", TODAY)
    off = invoke("validate", str(broken_copy), "--format", "json", "--today", TODAY, "--no-speed")
    assert on.exit_code == off.exit_code == 1
    assert json.loads(off.output) == json.loads(on.output)
    assert speed.enabled()  # the option holds for that command only


def test_console_script_off_leaves_by_a_plain_exit(broken_copy, tmp_path):
    """Off, the `civharm` process ends through the interpreter's own exit: atexit handlers run."""
    code = ("import atexit, sys; atexit.register(lambda: print('atexit ran', file=sys.stderr)); "
            "from civharm.cli import console_script; console_script()")
    arguments = ["validate", str(broken_copy), "--today", TODAY]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "scripts")}
    on = subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True, text=True, env=env)
    off = subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True, text=True,
                         env={**env, speed.ENV_SWITCH: "0"})
    assert on.returncode == off.returncode == 1
    assert on.stdout == off.stdout and "invalid: " in on.stdout
    assert "atexit ran" in off.stderr and "atexit ran" not in on.stderr
