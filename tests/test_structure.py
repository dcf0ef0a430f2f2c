"""Every structural rule has an invalid fixture that fails at the promised file, line and field."""
from __future__ import annotations

import datetime as dt

import pytest

from civharm.validate import Options, run
from conftest import TODAY, case_dirs, materialise

OPTIONS = Options(today=dt.date.fromisoformat(TODAY))


def locate(report):
    return sorted([f.file, f.line if f.line is not None else f.pointer, f.field, f.rule_id] for f in report.findings)


def test_valid_minimal_has_no_findings(valid_package):
    report = run(valid_package, OPTIONS)
    assert report.findings == []
    assert report.exit_code() == 0


@pytest.mark.parametrize("case_file", case_dirs("structure"), ids=lambda p: p.parent.name)
def test_structure_fixture_fails_where_promised(case_file, tmp_path):
    root, case = materialise(case_file, tmp_path)
    report = run(root, OPTIONS)
    assert case["expect"], "a fixture must promise at least one finding"
    assert locate(report) == sorted(case["expect"])
    assert report.exit_code() == 1
