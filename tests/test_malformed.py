"""Bad input never crashes ``civharm validate``: it exits 1 and says where, or 2 and names the file.

Each case in ``tests/fixtures/malformed/<name>/case.json`` edits a copy of valid-minimal
(see ``conftest.apply_edit``: ``cell``, ``replace``, ``append``, ``duplicate-line``, ``delete``,
``write``, ``json``; ``repeat`` inserts generated text too long to write out, such as 100,000
brackets or 20,000 header labels; ``symlink`` turns a file into a symbolic link) and promises:

- ``exit``: 1 (default), or 2 when the descriptor cannot be read; then the output is one
  line starting ``Error: `` that contains ``error`` (which names the file);
- ``expect``: findings that must be among the report's, as [file, line or JSON pointer,
  field, rule_id]; ``"*"`` matches anything (used where the right rule id is not settled);
- ``timeout`` (default 60 s), ``xfail`` (a known bug, whole case) and ``xfail_long_message``
  (a known bug: a message quotes a huge cell whole).

Every run costs about a second, so the cases run up front in forked workers; each test
then reads its own outcome.
"""
from __future__ import annotations

import json
import tempfile
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner

from civharm.cli import main
from civharm.docs import rule_catalogue
from conftest import FIXTURES, TODAY, Outcomes, TimedOut, case_dirs, materialise, time_limit

TIMEOUT = 60
MAX_MESSAGE = 500  # characters: a message quotes a value, not a whole file
ANY = "*"


def load(case_file: Path) -> dict:
    return json.loads(case_file.read_text(encoding="utf-8"))


def validate_case(case_file: Path) -> dict:
    """Run ``civharm validate --format json`` on one case; plain data, so it can leave a worker."""
    case = load(case_file)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with time_limit(case.get("timeout", TIMEOUT)):
                root, _ = materialise(case_file, Path(tmp))
                result = CliRunner().invoke(main, ["validate", str(root), "--format", "json", "--today", TODAY],
                                            catch_exceptions=False)
        except TimedOut:
            return {"timed_out": True}
        except Exception:  # noqa: BLE001 - reported by the test as a failure with its traceback
            return {"raised": traceback.format_exc()}
    return {"exit_code": result.exit_code, "stdout": result.stdout, "output": result.output}


def selected_params(request, name: str) -> list:
    """The values of parameter ``name`` over this module's selected tests (so ``-k`` runs only those)."""
    values = {}  # in the order the tests will ask for them
    for item in request.session.items:
        spec = getattr(item, "callspec", None)
        if getattr(item, "module", None) is request.module and spec is not None and name in spec.params:
            values[spec.params[name]] = None
    return list(values)


@pytest.fixture(scope="module")
def outcomes(request):
    results = Outcomes(validate_case, selected_params(request, "case_file"), TIMEOUT * 2)
    yield results
    results.close()


def case_param(case_file: Path, xfail_key: str = "xfail"):
    reason = load(case_file).get(xfail_key)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(case_file, id=case_file.parent.name, marks=marks)


CASES = case_dirs("malformed")
CATALOGUE = rule_catalogue()


def locate(payload: dict) -> list[list]:
    return [[f["file"], f["line"] if f["line"] is not None else f["pointer"], f["field"], f["rule_id"]]
            for f in payload["findings"]]


def matches(expected: list, actual: list) -> bool:
    return all(e == ANY or e == a for e, a in zip(expected, actual, strict=True))


def finished(outcome: dict, case: dict) -> dict:
    """The outcome of a run that ended on its own, or a test failure saying why not."""
    if outcome.get("timed_out"):
        pytest.fail(f"did not finish within {case.get('timeout', TIMEOUT)} s")
    if "raised" in outcome:
        pytest.fail(f"the command raised instead of reporting:\n{outcome['raised']}")
    return outcome


def test_there_are_at_least_40_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case_file", [case_param(c) for c in CASES])
def test_malformed_package_is_reported_where_it_is_broken(case_file, outcomes):
    case = load(case_file)
    outcome = finished(outcomes[case_file], case)
    output = outcome["output"]
    assert "Traceback" not in output
    assert outcome["exit_code"] == case.get("exit", 1), output[-3000:]
    if case.get("exit", 1) == 2:
        assert output.startswith("Error: "), output
        assert output.count("\n") == 1 and output.endswith("\n"), output
        assert case["error"] in output
        return
    found = locate(json.loads(outcome["stdout"]))
    if case.get("exit", 1) == 0:  # tolerated spellings that frictionless reads too (e.g. "+2"): valid, nothing misread
        assert found == [] and case["expect"] == []
        return
    assert case["expect"], "a case must promise at least one finding"
    missing = [e for e in case["expect"] if not any(matches(e, f) for f in found)]
    assert not missing, f"missing {missing}; found {found}"
    uncatalogued = sorted({f[3] for f in found} - set(CATALOGUE))
    assert not uncatalogued, f"emitted but in no catalogue: {uncatalogued}; declare each in its module (findings.declare)"


@pytest.mark.parametrize("case_file", [case_param(c, "xfail_long_message") for c in CASES])
def test_messages_quote_long_values_briefly(case_file, outcomes):
    outcome = outcomes[case_file]
    if outcome.get("exit_code") not in (0, 1):
        return  # no report to read: the main test says why
    payload = json.loads(outcome["stdout"])
    too_long = [(f["file"], f["line"], f["rule_id"], len(f["message"])) for f in payload["findings"] if len(f["message"]) > MAX_MESSAGE]
    assert not too_long


MISREAD_INTEGERS = {  # case: what a message would say had a rule misread the cell (as empty, or wrapped around)
    "plus-signed-count": ("count is empty",),
    "padded-integer": ("count is empty",),
    "integer-overflow": ("-9223372036854775808", "coordinates are set without the GeoNames ID"),
    "underscore-in-integer": ("count is empty",),
    "underscore-in-geonames-id": ("coordinates are set without the GeoNames ID",),
    "arabic-indic-digit-count": ("count is empty",),
}


@pytest.mark.parametrize("case_file", [FIXTURES / "malformed" / name / "case.json" for name in MISREAD_INTEGERS],
                         ids=list(MISREAD_INTEGERS))
def test_rules_read_integer_cells_as_frictionless_does(case_file, outcomes):
    outcome = finished(outcomes[case_file], load(case_file))
    messages = [f["message"] for f in json.loads(outcome["stdout"])["findings"]]
    assert not [m for m in messages if any(wrong in m for wrong in MISREAD_INTEGERS[case_file.parent.name])]
