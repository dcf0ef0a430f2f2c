"""The command line: the only module that touches argv, stdout, stderr and exit codes."""
from __future__ import annotations

import datetime as dt
import functools
import os
import sys

import click

from . import __version__, render
from .findings import CivharmError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class UnreadablePackage(click.ClickException):
    exit_code = 2


def handle_errors(function):
    """Turn CivharmError into ``Error: …`` + exit 2 and any other exception into one line."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        debug = click.get_current_context().params.get("debug", False)
        try:
            return function(*args, **kwargs)
        except CivharmError as exc:
            if debug:
                raise
            raise UnreadablePackage(str(exc))
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
            if debug:
                raise
            raise UnreadablePackage(f"internal error: {type(exc).__name__}: {exc} (re-run with --debug for the traceback)")

    return wrapper


def debug_option(function):
    return click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")(function)


def _parse_today(value: str | None) -> dt.date:
    raw = value or os.environ.get("CIVHARM_TODAY")
    if not raw:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise click.BadParameter(f"{raw!r} is not a date (YYYY-MM-DD)", param_hint="--today / CIVHARM_TODAY")


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="civharm")
def main():
    """civharm: validate, compare, build and release the civilian-harm data package."""


@main.command()
@click.argument("package", default=".", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(list(render.FORMATS)), default="text", show_default=True,
              help="text for people, json for machines, github for workflow annotations.")
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1).")
@click.option("--today", metavar="YYYY-MM-DD", help="The day that counts as today for future-date checks [env: CIVHARM_TODAY].")
@debug_option
@handle_errors
def validate(package, fmt, strict, today, debug):
    """Validate a data package (a datapackage.json or its folder; default: here).

    Exit 0 when there are no errors, 1 when there are, 2 when the package cannot be read.

    \b
    Examples:
      civharm validate
      civharm validate path/to/fork --format json
    """
    from .validate import Options, run

    report = run(package, Options(today=_parse_today(today)))
    if fmt == "text":
        output = render.text(report, colour=sys.stdout.isatty())
    else:
        output = render.FORMATS[fmt](report)
    click.echo(output, nl=False)
    sys.exit(report.exit_code(strict))


@main.command()
@click.argument("package", default=".", type=click.Path())
@click.option("--check", is_flag=True, help="Do not write; exit 1 when a generated document is out of date.")
@debug_option
@handle_errors
def docs(package, check, debug):
    """Regenerate the documents made from the schemas and the rule registry (docs/codebook.md).

    \b
    Examples:
      civharm docs
      civharm docs --check
    """
    from pathlib import Path

    from .atomic import write_files
    from .docs import render_all
    from .package import load_package

    pkg = load_package(package)
    documents = {pkg.root / path: text for path, text in render_all(pkg).items()}
    stale = [str(p) for p, text in documents.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    if check:
        for path in stale:
            click.echo(f"{path}: out of date; run `civharm docs`", err=True)
        sys.exit(1 if stale else 0)
    write_files({Path(p): documents[Path(p)] for p in stale})
    for path in stale:
        click.echo(f"wrote {path}", err=True)
