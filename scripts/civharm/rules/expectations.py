"""Run the expectation-based rules as one Great Expectations suite per table.

GX runs once over each table with every expectation asking only pass/fail; the failing
expectations alone are run again for their row indices. The context is ephemeral and
made once per process (importing GX is slow; a context is cheap).
"""
from __future__ import annotations

import logging
import os
from functools import lru_cache

import pandas as pd

from ..findings import Finding

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


@lru_cache(maxsize=1)
def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


_counter = iter(range(1_000_000_000))


def _run_suite(frame: pd.DataFrame, expectations: list, result_format: str):
    import great_expectations as gx

    context = _context()
    n = next(_counter)
    source = context.data_sources.add_pandas(f"civharm_{n}")
    batch_definition = source.add_dataframe_asset("table").add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(gx.ExpectationSuite(name=f"civharm_{n}", expectations=[e.copy() for e in expectations]))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=f"civharm_{n}", data=batch_definition, suite=suite))
    result = definition.run(batch_parameters={"dataframe": frame}, result_format={"result_format": result_format})
    context.data_sources.delete(f"civharm_{n}")
    # GX groups results by expectation type, not in suite order: put them back in our order by id.
    by_id = {outcome.expectation_config.id: outcome for outcome in result.results}
    return [by_id[expectation.id] for expectation in suite.expectations]


def _columns(expectation) -> list[str]:
    config = expectation.configuration.kwargs
    return [config[key] for key in ("column", "column_A", "column_B") if key in config]


def _gx_frame(frame: pd.DataFrame, expectations: list) -> pd.DataFrame:
    """The columns the expectations read, with dates in nanoseconds.

    GX hashes the whole batch and compares datetime columns in a vectorised way only at
    nanosecond resolution (anything else goes value by value through Python). A date
    outside the nanosecond range (before 1677 or after 2262) keeps its resolution: slower,
    still checked.
    """
    columns = list(dict.fromkeys(name for e in expectations for name in _columns(e)))
    slim = frame[columns].reset_index(drop=True)
    for name in columns:
        if pd.api.types.is_datetime64_dtype(slim[name]) and not pd.api.types.is_datetime64_ns_dtype(slim[name]):
            try:
                slim[name] = slim[name].astype("datetime64[ns]")
            except (OverflowError, ValueError):
                pass
    return slim


def run(ctx, checks) -> list[Finding]:
    """Turn each row an expectation rejects into a Finding of its rule."""
    findings: list[Finding] = []
    by_table: dict[str, list] = {}
    for rule, check in checks:
        by_table.setdefault(check.table, []).append((rule, check))
    for table, items in by_table.items():
        frame = ctx.table(table)
        if frame is None or frame.empty:
            continue
        gx_frame = _gx_frame(frame, [check.expectation for _, check in items])
        passed = _run_suite(gx_frame, [check.expectation for _, check in items], "BOOLEAN_ONLY")
        failing = [items[i] for i, outcome in enumerate(passed) if not outcome.success]
        if not failing:
            continue
        detailed = _run_suite(gx_frame, [check.expectation for _, check in failing], "COMPLETE")
        for (rule, check), outcome in zip(failing, detailed):
            indices = outcome.result.get("unexpected_index_list") or []
            if outcome.exception_info and outcome.exception_info.get("raised_exception"):
                message = outcome.exception_info.get("exception_message", "expectation failed to run")
                findings.append(rule.finding(ctx.package[table].path, None, check.field, f"could not be checked: {message}"))
                continue
            for index in indices:
                position = index if isinstance(index, int) else index.get("index")
                row = frame.iloc[position]
                findings.append(rule.at_row(ctx, table, position, check.field, check.message(row)))
    return findings


def build_data_docs(ctx, checks) -> str | None:
    """Run every expectation suite through a GX checkpoint and return the Data Docs site folder.

    Only used for ``--report-dir``: a third pass, for people who want GX's own HTML view.
    """
    import great_expectations as gx

    context = _context()
    by_table: dict[str, list] = {}
    for _, check in checks:
        by_table.setdefault(check.table, []).append(check.expectation)
    definitions = []
    frames = {}
    for table, expectations in sorted(by_table.items()):
        frame = ctx.table(table)
        if frame is None or frame.empty:
            continue
        n = next(_counter)
        source = context.data_sources.add_pandas(f"docs_{table}_{n}")
        batch_definition = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all")
        suite = context.suites.add(gx.ExpectationSuite(name=f"civharm {table} {n}", expectations=[e.copy() for e in expectations]))
        definitions.append(context.validation_definitions.add(gx.ValidationDefinition(name=f"{table} {n}", data=batch_definition, suite=suite)))
        frames[table] = frame.reset_index(drop=True)
    for definition, (table, frame) in zip(definitions, frames.items()):
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"civharm {table} {next(_counter)}", validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data docs")], result_format={"result_format": "SUMMARY"}))
        checkpoint.run(batch_parameters={"dataframe": frame})
    sites = context.get_docs_sites_urls()
    if not sites:
        return None
    return sites[0]["site_url"].removeprefix("file://").rsplit("/", 1)[0]
