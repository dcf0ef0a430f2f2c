"""The command line: the only module that touches argv, stdout, stderr and exit codes.

Why it is over 500 lines: one click command per subcommand (about twenty), each a thin layer
over a Python API with its help text and examples; the prompting of ``add`` is moving to the
API (#14), which leaves option declarations and output.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import signal
import sys
import threading
import time
from pathlib import Path

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


def _lock_wait() -> float:
    """Seconds a command waits for another writer of the package [env: CIVHARM_LOCK_WAIT]."""
    from .atomic import LOCK_WAIT_SECONDS

    raw = os.environ.get("CIVHARM_LOCK_WAIT")
    if raw is None:
        return LOCK_WAIT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise click.BadParameter(f"{raw!r} is not a number of seconds", param_hint="CIVHARM_LOCK_WAIT")
    return seconds


RECOVERED = "civharm.recovered"  # click context meta: what the writer's lock undid before the command ran


def opens_package(param: str, writes=False):
    """Run a command that opens the package named by ``param``: the one place commands meet ``atomic``.

    A writer (``writes`` true, or a function of the command's parameters that says so) holds
    the package's lock from before it reads the package until it has written it, and first
    undoes an interrupted write (told on stderr); a reader refuses to run while one is pending
    (``atomic.refuse_if_interrupted``): reading never changes a file.
    """
    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            from .atomic import package_lock, refuse_if_interrupted
            from .versions import refuse_committed_journal, root_of
            from .package import DESCRIPTOR

            target = Path(kwargs[param])
            root = root_of(target)
            if not (target if target.is_file() or target.suffix == ".json" else root / DESCRIPTOR).is_file():
                return function(*args, **kwargs)  # no package here: the command says so
            refuse_committed_journal(root)
            if writes(kwargs) if callable(writes) else writes:
                with package_lock(root, _lock_wait()) as recovered:
                    for message in recovered:
                        click.echo(message, err=True)
                    click.get_current_context().meta[RECOVERED] = recovered
                    return function(*args, **kwargs)
            refuse_if_interrupted(root, _lock_wait())
            return function(*args, **kwargs)

        return wrapper

    return decorate


def debug_option(function):
    return click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")(function)


def _parse_today(value: str | None) -> dt.date:
    raw = value or os.environ.get("CIVHARM_TODAY")
    if not raw:
        return dt.date.today()
    from .package import EARLIEST_DAY, LATEST_DAY, parse_date

    today = parse_date(raw)  # a real day within the days a date here may name (package.EARLIEST_DAY..LATEST_DAY)
    if today is None:
        raise click.BadParameter(f"{raw!r} is not a day (YYYY-MM-DD) from {EARLIEST_DAY} to {LATEST_DAY}", param_hint="--today / CIVHARM_TODAY")
    return today


def console_script() -> None:
    """The ``civharm`` command: ``main``, in a process that ends with the command."""
    from . import speed

    speed.leaving_after_command()
    main()


def _leave(code: int):
    """End the command with ``code`` (``civharm.speed`` may end the process sooner)."""
    from . import speed

    speed.leave_now(code)
    sys.exit(code)


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
@click.option("--base", metavar="REF", help="Also check history against this version: a git ref (origin/main, v1.0.0), "
                                            "a released version or a release zip; deleted rows, changed IDs, unlogged "
                                            "changes and edits of the corrections log are errors.")
@click.option("--report-dir", type=click.Path(file_okay=False), help="Also write report.json and the Great Expectations Data Docs (HTML) into this folder.")
@click.option("--changed", "changed", multiple=True, metavar="FILE", help="A file changed by the pull request (repeatable): github format lists its findings first.")
@click.option("--no-speed", is_flag=True, help="Run without the speed machinery (one process, no warm-up thread; the same "
                                               "result, slower on a large package) [env: CIVHARM_SPEED=0].")
@debug_option
@handle_errors
@opens_package("package")
def validate(package, fmt, strict, today, base, report_dir, changed, no_speed, debug):
    """Validate a data package (a datapackage.json or its folder; default: here).

    Exit 0 when there are no errors, 1 when there are, 2 when the package cannot be read.

    \b
    Examples:
      civharm validate
      civharm validate path/to/fork --format json
      civharm validate --base origin/main
      civharm validate --format github --changed data/reports.csv --report-dir reports/
    """
    from . import speed
    from .validate import Options, run, run_with_report_dir

    with speed.switched(False if no_speed else None):  # None: CIVHARM_SPEED decides
        started = time.perf_counter()

        def progress(stage: str) -> None:
            click.echo(f"[{time.perf_counter() - started:5.1f} s] {stage} ...", err=True)

        options = Options(today=_parse_today(today), base=base, progress=progress if sys.stderr.isatty() else None)
        if report_dir:
            report, written = run_with_report_dir(package, options, report_dir)
        else:
            report = run(package, options)
        if sys.stderr.isatty():
            click.echo(f"[{time.perf_counter() - started:5.1f} s] done", err=True)
        if fmt == "text":
            pieces = [render.text(report, colour=sys.stdout.isatty())]
        elif fmt == "github":
            pieces = [render.github(report, frozenset(changed))]
            summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
            if summary_file:
                with open(summary_file, "a", encoding="utf-8") as handle:
                    handle.write(render.markdown_table(report))
        else:
            pieces = render.json_pieces(report)  # written as they are made
        for piece in pieces:
            click.echo(piece, nl=False)
        if report_dir:
            click.echo(f"wrote {len(written)} files to {report_dir}", err=True)
        _leave(report.exit_code(strict))


def _default_cache() -> str:
    import platformdirs

    return str(Path(platformdirs.user_cache_dir("civharm")) / "pages")


@main.command("verify-sources")
@click.argument("package", default=".", type=click.Path())
@click.option("--pages", "pages_dir", type=click.Path(file_okay=False), help="Local page store: a folder of <n>.txt page files.")
@click.option("--index", type=click.Path(dir_okay=False), help="The store's TSV index (columns n, url) [default: pages_index.tsv beside --pages].")
@click.option("--page", "single", type=(str, click.Path(dir_okay=False)), multiple=True, metavar="URL FILE",
              help="The text of the page at URL is in FILE (repeatable): for a page kept outside the store.")
@click.option("--fetch", is_flag=True, help="Read pages missing from the store from their archived capture, else the live page (network).")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="On-disk cache of fetched pages [default: the user cache folder].")
@click.option("--timeout", type=click.FloatRange(1, 600), default=30, show_default=True, help="Seconds allowed for one page.")
@click.option("--format", "fmt", type=click.Choice(list(render.FORMATS)), default="text", show_default=True,
              help="text for people, json for machines, github for workflow annotations.")
@click.option("--context/--no-context", default=None,
              help="Show the page's words around a figure under its finding (text format only) [default: when stdout is a terminal].")
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1).")
@debug_option
@handle_errors
@opens_package("package")
def verify_sources(package, pages_dir, index, single, fetch, cache_dir, timeout, fmt, context, strict, debug):
    """Check every active report's figures, qualifiers, claimant and date against its page's text.

    The text comes from the page store (--pages), else with --fetch from the archived capture
    (archive_url), else from the live page. Exit 0 when every row agrees with its page, 1 when
    there are findings (evidence/...), 2 when the command cannot run. The page's words are
    shown only in the text format on a terminal (or with --context), never in json or github
    output: no third-party text ends up in a saved report.

    \b
    Examples:
      civharm verify-sources --pages ../shared/sources/pages --index ../shared/sources/pages_index.tsv
      civharm verify-sources --fetch --cache-dir ~/.cache/civharm/pages
      civharm verify-sources --page https://example.org/a saved-page.txt --format json
    """
    from .evidence import check
    from .findings import Report
    from .package import load_package
    from .pages import Fetcher, PageStore

    pkg = load_package(package)
    if pkg.get("reports") is None or pkg["reports"].raw is None:
        raise CivharmError(f"{pkg.root}: the package has no readable reports table; run civharm validate")
    store = PageStore.open(pages_dir, index).with_files(single)
    fetcher = Fetcher(cache_dir or _default_cache(), timeout) if fetch else None
    result = check(pkg, store, fetcher)
    active = int((pkg["reports"].frame["status"] == "active").sum())
    report = Report(result.findings, {"tables": {"reports": active}, "pages_read": result.pages_read})
    if fmt == "text":
        shown = sys.stdout.isatty() if context is None else context
        click.echo(render.text(report, colour=sys.stdout.isatty(), context=result.context if shown else None), nl=False)
    elif fmt == "github":
        click.echo(render.github(report), nl=False)
    else:
        for piece in render.json_pieces(report):
            click.echo(piece, nl=False)
    _leave(report.exit_code(strict))


@main.command()
@click.argument("package", default=".", type=click.Path())
@click.option("--missing", is_flag=True, help="Only pages of reports that have no archive_url yet.")
@click.option("--base-url", metavar="URL", help="The Wayback Machine's address [env: CIVHARM_ARCHIVE_URL; default: https://web.archive.org].")
@click.option("--deadline", type=click.FloatRange(1, 3600), default=300, show_default=True, help="Seconds a capture may take before the run fails.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="On-disk cache of fetched captures [default: the user cache folder].")
@click.option("--today", metavar="YYYY-MM-DD", help="The day of the change [env: CIVHARM_TODAY].")
@debug_option
@handle_errors
@opens_package("package", writes=True)
def archive(package, missing, base_url, deadline, cache_dir, today, debug):
    """Capture each active report's page in the Wayback Machine and record archive_url, archived_at, text_sha256.

    Uses Save Page Now (needs internet; optional keys in CIVHARM_SPN_ACCESS_KEY and
    CIVHARM_SPN_SECRET_KEY). Rate limits and server errors are retried with backoff; a capture
    that does not complete within --deadline fails the run. reports.csv and the corrections
    log (changes.csv) are written together at the end, or not at all.

    \b
    Examples:
      civharm archive --missing
      civharm archive --base-url http://127.0.0.1:8080 --deadline 60
    """
    from .wayback import BASE_URL_ENV, DEFAULT_BASE_URL, Settings, archive as run_archive
    from .package import load_package
    from .pages import Fetcher

    day = _parse_today(today)
    pkg = load_package(package)
    settings = Settings(base_url=base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL, deadline=deadline)
    fetcher = Fetcher(cache_dir or _default_cache(), settings.timeout)
    result = run_archive(pkg, settings, fetcher, day, missing, progress=lambda line: click.echo(line, err=True))
    for capture in result.captures:
        click.echo(f"{capture.url}\t{capture.archive_url}")
    changed = f"wrote {pkg['reports'].path} and {pkg['changes'].path}" if result.files else "nothing to change"
    click.echo(f"{len(result.captures)} pages captured; {result.reports_changed} reports updated; {changed}", err=True)


@main.command()
@click.argument("package", default=".", type=click.Path())
@click.option("--check", is_flag=True, help="Do not write; exit 1 when a generated document is out of date.")
@debug_option
@handle_errors
@opens_package("package", writes=lambda params: not params["check"])
def docs(package, check, debug):
    """Regenerate the documents made from the schemas, the rule catalogue and the data (docs/codebook.md, docs/chart.png).

    \b
    Examples:
      civharm docs
      civharm docs --check
    """
    from pathlib import Path

    from .atomic import write_files
    from .docs import image_is_current, render_all, render_images
    from .package import load_package

    pkg = load_package(package)
    documents = {pkg.root / path: text for path, text in render_all(pkg).items()}
    stale = [str(p) for p, text in documents.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    images = {pkg.root / path: data for path, data in render_images(pkg).items()}
    stale += [str(p) for p, data in images.items() if not image_is_current(p.read_bytes() if p.exists() else None, data)]
    documents.update(images)
    if check:
        for path in stale:
            click.echo(f"{path}: out of date; run `civharm docs`", err=True)
        sys.exit(1 if stale else 0)
    write_files(pkg.root, {Path(p): documents[Path(p)] for p in stale})
    for path in stale:
        click.echo(f"wrote {path}", err=True)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived: unwinds like Ctrl-C (asyncio lets only that through its
    callbacks), so ``finally`` blocks remove temporary files."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stop_on_signals():
    """Turn SIGTERM and SIGINT into ``Stopped``; a second signal is ignored while cleanup runs.

    Only the main thread may set handlers; elsewhere (a caller's worker thread) nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    watched = (signal.SIGTERM, signal.SIGINT)

    def stop(signum, frame):
        for other in watched:
            signal.signal(other, signal.SIG_IGN)
        raise Stopped(signum)

    previous = {number: signal.signal(number, stop) for number in watched}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@main.command()
@click.argument("version")
@click.option("--base-url", metavar="URL",
              help="Where releases are published (holds VERSION/SHA256SUMS and VERSION/civharm-VERSION.zip) "
                   "[env: CIVHARM_RELEASES_URL; default: \"civharm:releases\" in the datapackage.json of the package you are in].")
@click.option("--to", "to", type=click.Path(file_okay=False), help="Unpack here instead of ~/.cache/civharm/VERSION.")
@click.option("--force", is_flag=True, help="Fetch again and replace the target when it already exists "
                                           "(only a folder download unpacked, or an empty one).")
@debug_option
@handle_errors
def download(version, base_url, to, force, debug):
    """Fetch a release, verify it against its SHA256SUMS and unpack it (all or nothing).

    Prints the folder holding the package; `civharm.load(VERSION)` reads it from the cache.

    \b
    Examples:
      CIVHARM_RELEASES_URL=https://host/path/releases civharm download 1.0.0
      civharm download 1.0.0 --base-url https://host/path/releases --to ./civharm-1.0.0
    """
    from .loading import download as fetch_release

    try:
        with _stop_on_signals():
            result = fetch_release(version, base_url, to, force=force)
    except Stopped as stop:
        click.echo(f"Error: download stopped by {signal.Signals(stop.signum).name}; nothing was kept", err=True)
        _leave(128 + stop.signum)
    if result.fetched:
        click.echo(f"downloaded {result.url} ({result.size} bytes, sha256 {result.sha256} verified)", err=True)
    else:
        click.echo(f"{result.target}: already there; pass --force to fetch it again", err=True)
    click.echo(str(result.target))


@main.command()
@click.argument("package", default=".", type=click.Path())
@click.option("--out", type=click.Path(file_okay=False),
              help="Folder to write, replaced whole (default: dist/ in the package folder).")
@debug_option
@handle_errors
@opens_package("package", writes=True)
def build(package, out, debug):
    """Write the release files into dist/, reproducibly and all or nothing, from a package that validates.

    The package is validated first, as `civharm validate` does; any error stops the build
    (exit 1, the findings printed) before anything is written.

    Files are labelled with the release version when the data is exactly a recorded release,
    otherwise with the next version and a pre-release suffix naming the commit
    (for example 1.1.0-dev.g1a2b3c4).

    The files: the data package zip, SQLite, Parquet (one file per table), XLSX, GeoJSON, an
    HXL CSV for HDX, and SHA256SUMS. Byte-for-byte reproducible: timestamps come from SOURCE_DATE_EPOCH, else the last commit of
    the package folder. All or nothing: a failure leaves the output folder as it was. Prints
    the paths written; the files people count from hold active incidents only.

    \b
    Examples:
      civharm build
      SOURCE_DATE_EPOCH=1735689600 civharm build path/to/fork --out /tmp/release
    """
    from pathlib import Path

    from .build import active_only_note, build as build_release
    from .releases import build_version
    from .package import load_package
    from .validate import Options, run

    pkg = load_package(package)
    if not pkg.findings:  # a package that cannot be read stops inside build_release (exit 2)
        report = run(pkg, Options(today=dt.date.today()))
        if report.exit_code() != 0:
            click.echo(render.text(report), nl=False)
            click.echo(f"Error: cannot build: the package does not validate ({report.counts['error']} error(s) above); "
                       "fix them, then build again", err=True)
            _leave(1)
    label = build_version(pkg.root)
    click.echo(f"building version {label}", err=True)
    for path in build_release(pkg, Path(out) if out else pkg.root / "dist", version=label):
        click.echo(str(path))
    click.echo(active_only_note(pkg, label), err=True)


@main.command()
@click.argument("old", metavar="A")
@click.argument("new", metavar="[B]", required=False)
@click.option("--package", default=".", show_default=True, type=click.Path(),
              help="The package (and git repository) that A and B refer to; B defaults to its working copy.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True,
              help="markdown for people, json for machines.")
@debug_option
@handle_errors
@opens_package("package")
def diff(old, new, package, fmt, debug):
    """Show the row-level changes from version A to version B: records and schema.

    A and B are git refs, released versions (from releases.json), release zips or folders.

    \b
    Examples:
      civharm diff v1.0.0 v1.1.0
      civharm diff origin/main --format json
      civharm diff civharm-1.0.0.zip HEAD
    """
    from .diff import compare_sources, to_json, to_markdown

    changes = compare_sources(package, old, new)
    click.echo(to_markdown(changes) if fmt == "markdown" else to_json(changes), nl=False)


@main.command()
@click.argument("version")
@click.option("--package", default=".", show_default=True, type=click.Path(), help="The package to release.")
@click.option("--base", metavar="REF", help="Compare with this version instead of the last release in releases.json.")
@click.option("--date", metavar="YYYY-MM-DD", help="The release date [default: today; env: CIVHARM_TODAY].")
@click.option("--dry-run", is_flag=True, help="Print the CHANGELOG section and the files it would write; write nothing.")
@click.option("--skip-validate", is_flag=True, help="Do not run `civharm validate --base <last release>` first.")
@debug_option
@handle_errors
@opens_package("package", writes=lambda params: not params["dry_run"])
def release(version, package, base, date, dry_run, skip_validate, debug):
    """Release the dataset as VERSION (MAJOR.MINOR.PATCH), refusing a smaller bump than its diff needs.

    Writes datapackage.json, CITATION.cff, CHANGELOG.md and releases.json, all or nothing,
    then prints the commands that commit and tag the release (see RELEASING.md).

    \b
    Examples:
      civharm release 1.0.0 --dry-run
      civharm release 1.1.0
    """
    from .findings import CivharmError
    from .versions import last_release_source
    from .releases import plan_release, release as write_release

    day = _parse_today(date)
    source = base or last_release_source(package)
    if not skip_validate:
        from .validate import Options, run

        report = run(package, Options(today=day, base=source))
        if report.exit_code() != 0:
            against = f" --base {source}" if source else ""
            raise CivharmError(f"the package has {report.counts['error']} errors; run `civharm validate{against}` "
                               "and fix them before releasing")
    plan = (plan_release if dry_run else write_release)(package, version, day, base)
    click.echo(plan.section, nl=False)
    verb = "would write" if dry_run else "wrote"
    for path in plan.files:
        click.echo(f"{verb} {path}", err=True)
    if not dry_run:
        paths = " ".join(str(p) for p in plan.files)
        click.echo(f"next: git add {paths} && git commit -m 'Release {version}' && "
                   f"git tag -a v{version} -m 'Dataset {version}' && git push --follow-tags", err=True)


def stdin_is_terminal() -> bool:
    """Whether a person can answer prompts (tests replace this to drive the prompts)."""
    return sys.stdin.isatty()


@main.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--package", "package_path", default=".", show_default=True, type=click.Path(), help="The data package to add to.")
@click.option("--supersedes", "supersedes", multiple=True, metavar="REPORT_ID",
              help="An earlier report of the same originator that the new report updates (repeatable); it is marked superseded_by the new one, logged.")
@click.option("--today", metavar="YYYY-MM-DD", help="The day of the change [env: CIVHARM_TODAY].")
@debug_option
@handle_errors
@opens_package("package_path", writes=True)
def add(file, package_path, supersedes, today, debug):
    """Add a report (and a new incident, source, damage rows) from a YAML/JSON file, or by questions in a terminal.

    The file holds `report:` (fields of reports.csv), `incident:` (an existing incident ID, or
    the fields of a new incident), and optionally `source:` (a new publisher), `damage:` (a
    list of damage rows) and `supersedes:` (earlier reports of the same originator it updates).
    When a new incident may be one already recorded, nothing is written until the file says
    what the statement is: `attach_to: INCIDENT` (the same event: the report goes there), or
    `distinct_from:` one entry per candidate, each with its reason and note. Without a file,
    the questions start from the page, the place and the date, show the candidates beside
    the statement and offer to attach first. All files are written at once, or none.

    \b
    Examples:
      civharm add report.yaml
      civharm add update.yaml --supersedes rep_01M8BY4Z1QQA0N2QT4N3908XHJ
      civharm add            # asks, starting from the page's URL
    """
    from . import guided
    from .package import load_package

    built = guided.add(load_package(package_path), file, _parse_today(today), stdin_is_terminal(), supersedes)
    if built is None:
        _leave(1)
    click.echo(built.report_id)
    click.echo(f"added report {built.report_id} to incident {built.incident_id}" + (f"; figures changed: {', '.join(built.changed_fields)}" if built.changed_fields and not built.new_incident else ""), err=True)


@main.command()
@click.argument("first", metavar="INCIDENT")
@click.argument("second", metavar="INCIDENT")
@click.option("--reason", required=True, metavar="REASON",
              help="What tells the two apart: a reason of duplicate_decisions.csv (docs/codebook.md); importer-only reasons are refused.")
@click.option("--note", required=True, metavar="TEXT", help="In your words: what the pages of both say that tells them apart.")
@click.option("--package", "package_path", default=".", show_default=True, type=click.Path(), help="The data package.")
@click.option("--today", metavar="YYYY-MM-DD", help="The day of the decision [env: CIVHARM_TODAY].")
@debug_option
@handle_errors
@opens_package("package_path", writes=True)
def decide(first, second, reason, note, package_path, today, debug):
    """Record that two incidents validate flags as a near-duplicate pair are two events: one pair, one reason, one note.

    For incidents already in the package (``add`` asks the same per candidate when it adds a
    statement). The decision stores the fingerprint of the fields its reason rests on, so
    validate asks again when they change; run it again then to renew the decision. The
    package is validated as it would be, and nothing is written if the change adds an error.

    \b
    Examples:
      civharm decide inc_01M8BXYJ9JXC1F8JK54GB4ADWP inc_01M8BXYJ9MCRVM43F2SQCZ8B40 \\
        --reason different_site --note "one page names the market, the other the railway station"
    """
    from .atomic import write_files
    from .contribute import check, decide_pair
    from .package import load_package

    day = _parse_today(today)
    pkg = load_package(package_path)
    decided = decide_pair(pkg, first, second, reason, note, day)
    problems = check(pkg, decided, day)
    if problems:
        for finding in problems:
            click.echo(f"  {finding.as_text()}  [{finding.rule_id}]", err=True)
        raise click.ClickException(f"nothing written: the decision would add {len(problems)} error(s)")
    write_files(decided.root, decided.files)
    a, b = decided.pair
    what = f"renewed ({', '.join(decided.changed)} changed; logged in {pkg['changes'].path})" if decided.changed else "recorded"
    click.echo(f"{pkg['duplicate_decisions'].path}:{decided.line}: {a} and {b} decided distinct ({reason}), fingerprint {decided.fingerprint}; {what}")


@main.command()
@click.argument("package", default=".", type=click.Path())
@debug_option
@handle_errors
@opens_package("package", writes=True)
def recover(package, debug):
    """Undo a write into PACKAGE that a crash or kill interrupted (or finish one that was complete).

    Every command that writes (add, decide, recompute, docs, build, release, ...) does this
    first on its own; a command that only reads (validate, diff, serve, docs --check, ...)
    refuses to run while an interrupted write is pending, and names this command. What was
    undone is told on stderr. A journal committed to git is never acted on.

    \b
    Examples:
      civharm recover
    """
    from .versions import root_of

    if not click.get_current_context().meta.get(RECOVERED):
        click.echo(f"nothing to recover: no interrupted write in {root_of(Path(package))}", err=True)


@main.command()
@click.argument("package", default=".", type=click.Path())
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
@click.option("--reason", metavar="TEXT", help="Why, for the corrections log (default: the rules were re-applied after a hand edit).")
@click.option("--today", metavar="YYYY-MM-DD", help="The day of the change [env: CIVHARM_TODAY].")
@debug_option
@handle_errors
@opens_package("package", writes=lambda params: not params["dry_run"])
def recompute(package, dry_run, reason, today, debug):
    """Rewrite the incidents' derived fields by the figure and attribution rules, with corrections-log rows.

    After a hand edit of reports (a new superseded_by, a corrected figure), the incidents'
    figures, perpetrator_alleged and alleged_parties follow the rules again: each changed
    incident gets a new record_version and one corrections-log row per changed field, all
    written at once (or nothing). Incidents with figures_override_reason keep their figures.
    Prints one line per change (file:line: field: old -> new).

    \b
    Examples:
      civharm recompute --dry-run
      civharm recompute --reason "Kharkiv 29 Jan 2023: the governor's earlier statement is superseded"
    """
    from .corrections import recompute as plan_recompute, write_recomputation
    from .package import load_package

    pkg = load_package(package)
    done = plan_recompute(pkg, _parse_today(today), reason)
    incidents = pkg["incidents"]
    lines = {record_id: incidents.line_of(index) for index, record_id in incidents.frame["incident_id"].items()}
    for _, record_id, field, old, new in done.changes:
        click.echo(f"{incidents.path}:{lines.get(record_id, '?')}: {field}: {old or 'empty'} -> {new or 'empty'}")
    if dry_run:
        click.echo(f"would change {len(done.changes)} field(s); nothing written", err=True)
        return
    write_recomputation(done)
    click.echo(f"changed {len(done.changes)} field(s)" + (f"; logged in {pkg['changes'].path}" if done.changes else ""), err=True)


@main.command()
@click.argument("package", default=".", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8001, show_default=True, type=int, help="Port to listen on (0 picks a free one).")
@debug_option
@handle_errors
@opens_package("package")
def serve(package, host, port, debug):
    """Browse the data in Datasette: home page, incidents list with map and search, each incident's evidence.

    The database is the one `civharm build` writes, with metadata (title, licence, column
    descriptions, facets) generated from datapackage.json and the schemas, and the site's
    templates and plugin that each release ships in civharm-X.Y.Z-site/. Stop with Ctrl-C.

    \b
    Examples:
      civharm serve
      civharm serve --port 8080
    """
    import tempfile

    from datasette.cli import serve as datasette_serve

    from . import serve as serving
    from .package import load_package

    pkg = load_package(package)
    with tempfile.TemporaryDirectory(prefix="civharm-serve-") as folder:
        arguments = serving.prepare(pkg, Path(folder))
        click.echo(f"serving on http://{host}:{port}/ (Ctrl-C stops)", err=True)
        # In this process, so that stopping civharm stops the server too (no orphaned child).
        datasette_serve.main([*arguments, "--host", host, "--port", str(port)], standalone_mode=False)


# Below this many records an import shows no progress bar: it is done before one would help.
PROGRESS_FROM = 5_000


def _progress(items, label: str):
    """Walk ``items`` with a progress bar on stderr when there are many (stdout carries the product)."""
    if len(items) < PROGRESS_FROM:
        return items
    return _with_bar(items, label)


def _with_bar(items, label: str):
    with click.progressbar(items, label=label, file=click.get_text_stream("stderr")) as bar:
        yield from bar


def _finish_import(change, day, dry_run: bool) -> None:
    """Print what the import does; check the package as it would be; write everything, or nothing."""
    from . import importing

    for line in change.summary():
        click.echo(line)
    if change.empty:
        return
    problems = importing.check(change, day)
    for finding in problems:
        click.echo(f"  {finding.as_text()}  [{finding.rule_id}]", err=True)
    if problems:
        raise click.ClickException(f"nothing written: the import would add {len(problems)} error(s)")
    if dry_run:
        click.echo("dry run: nothing written", err=True)
        return
    importing.apply(change)
    where = f" into the new package {change.destination}" if change.destination is not None else ""
    click.echo(f"wrote {len(change.files)} changed file(s){where}", err=True)


def import_options(function):
    """--dry-run, --today and --debug, shared by every import format."""
    function = click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")(function)
    function = click.option("--today", metavar="YYYY-MM-DD", help="The day of the change [env: CIVHARM_TODAY].")(function)
    return debug_option(function)


@main.group(name="import", context_settings=CONTEXT_SETTINGS)
def import_():
    """Import another recorder's data file into a package: all or nothing, idempotent, with provenance.

    Every imported row names the file, its SHA-256 and the record it came from; the source's
    licence and attribution are added to datapackage.json. Re-importing the same file
    changes nothing.

    \b
    Examples:
      civharm import tfp-daily casualties_daily.json --dry-run
      civharm import ucdp-ged conflict_data_BGD.csv --into ../ucdp-bgd
    """


@import_.command(name="tfp-daily")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--into", default=".", show_default=True, type=click.Path(file_okay=False), help="The data package to import into.")
@import_options
@handle_errors
@opens_package("into", writes=lambda params: not params["dry_run"])
def import_tfp_daily(file, into, dry_run, today, debug):
    """Tech for Palestine's casualties_daily.json → aggregates (running totals for the Gaza Strip).

    Imports the reported running totals (killed, injured, children and women killed, medical,
    press and civil defence workers killed), one row per day and population, with the day's
    report source as claimant. The file's ext_ fields are extrapolations and are never
    imported. A day whose figures differ in a later file becomes a revision: a new row, and
    the old one superseded by it (logged in changes.csv).

    \b
    Examples:
      civharm import tfp-daily casualties_daily.json --dry-run
      civharm import tfp-daily casualties_daily.json
    """
    from . import tfp_daily
    from .importing import Change, read_source
    from .package import load_package

    day = _parse_today(today)
    pkg = load_package(into)
    change = tfp_daily.plan(Change(pkg), read_source(file), day, track=_progress)
    _finish_import(change, day, dry_run)


@main.command()
@click.argument("package", default=".", type=click.Path())
@click.option("--every-date", is_flag=True, help="Compare every running total, not only each series' latest.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format.")
@debug_option
@handle_errors
@opens_package("package")
def coverage(package, every_date, fmt, debug):
    """Official totals beside the sum of this dataset's incidents over the same period and area.

    For each total in force in aggregates.csv (period totals, and each running total at its
    latest date), the active incidents of its area dated within its period are summed
    (min–max) and set beside the official figure, with the ratio and the caveats: what the
    dataset records is not a total; incidents with coarse dates across the period's bounds are
    counted apart.

    \b
    Examples:
      civharm coverage
      civharm coverage --every-date --format json
    """
    import dataclasses
    import json

    from . import coverage as coverage_
    from .package import load_package

    rows = coverage_.compare(load_package(package), every_date=every_date)
    if fmt == "json":
        click.echo(json.dumps([{**dataclasses.asdict(r), "ratio": list(r.ratio)} for r in rows], ensure_ascii=False, indent=2))
    else:
        click.echo(coverage_.to_text(rows), nl=False)


@import_.command(name="ucdp-ged")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--into", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The package to import into: an existing one, or a new or empty folder, where a new package is made.")
@click.option("--url", "url", required=True, metavar="URL", help="Where the file was published (each report cites it, with #row=N).")
@click.option("--ucdp-version", required=True, metavar="VERSION", help="The GED version of the file (for example 19.1), named in each claimant.")
@click.option("--package", "package_path", default=".", show_default=True, type=click.Path(),
              help="The package whose schemas a new package takes; never imported into.")
@import_options
@handle_errors
@opens_package("into", writes=lambda params: not params["dry_run"])
def import_ucdp_ged(file, into, url, ucdp_version, package_path, dry_run, today, debug):
    """A UCDP Georeferenced Event Dataset CSV (with or without HDX's HXL row) → incidents and reports.

    One incident and one report per event, the claimant UCDP with its GED version; best and
    deaths_civilians become all-status and civilian deaths, date_prec and where_prec our
    precisions, a GeoNames place when one lies within 5 km of UCDP's point. Events that match
    an incident already in the package are reported, not added. It writes into a package of its
    own (--into): a UCDP file may cover another conflict than this dataset's.

    \b
    Examples:
      civharm import ucdp-ged conflict_data_BGD.csv --into ../ucdp-bgd --ucdp-version 19.1 \\
          --url https://example.org/conflict_data_BGD.csv
    """
    import re
    import tempfile

    from . import importing, ucdp_ged
    from .importing import Change, read_source
    from .package import load_package

    if not re.fullmatch(r"https?://[^\s#]+", url):
        raise click.BadParameter("give the http(s) address the file was published at, without a fragment", param_hint="--url")
    day = _parse_today(today)
    template = load_package(package_path)
    if into.resolve() == template.root.resolve():
        raise CivharmError(f"{into}: ucdp-ged writes into a package of its own, not into {template.root.resolve()} "
                           "(a UCDP file may cover another conflict than this dataset's); give --into a new folder")
    source = read_source(file)
    if (into / "datapackage.json").exists():
        change = ucdp_ged.plan(Change(load_package(into)), source, url, ucdp_version, day, track=_progress)
        _finish_import(change, day, dry_run)
        return
    if into.exists() and any(into.iterdir()):
        raise CivharmError(f"{into}: holds files but no datapackage.json; give a package, or a new or empty folder")
    with tempfile.TemporaryDirectory(prefix="civharm-import-") as scratch:
        laid_out = importing.skeleton(Path(scratch), template, f"Events imported with civharm import {ucdp_ged.FORMAT}",
                                      ucdp_ged.ATTRIBUTION.licence)
        change = Change(load_package(laid_out), destination=into)
        _finish_import(ucdp_ged.plan(change, source, url, ucdp_version, day, track=_progress), day, dry_run)
