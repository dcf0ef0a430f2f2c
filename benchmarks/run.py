"""Benchmark `civharm validate` against stock `frictionless validate` on generated packages.

    python benchmarks/run.py                       # 10k and 100k reports, clean and dirty, 5 runs
    python benchmarks/run.py --sizes 1000000 --runs 3
    python benchmarks/run.py --sizes 10000 --runs 1 --results -   # quick look, print only

Each tool runs in its own process on the same package, one after the other, ``--runs``
times; the table shows the median wall time, rows per second (all tables), the peak
memory (wait4's peak RSS; for civharm, which forks a second process on large packages, also
the PSS of the whole process tree, sampled in one extra run that is not timed, since
sampling slows the process it samples), both tools' verdicts and error counts, the
recall of the planted near-duplicate pairs (a ``duplicates/near-duplicate`` finding whose
message names both IDs), the number of candidate pairs the blocking step produced, and the
time ratios to frictionless and to pyarrow's parse time of the same CSV files.
``structure`` is civharm's load and structure stages alone, the part that replaces frictionless.
Packages are generated under ``benchmarks/out/`` (git-ignored) by ``generate.py``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

TODAY = "2026-11-26"
BIN = Path(sys.executable).parent
ENV = {**os.environ, "CIVHARM_TODAY": TODAY, "GX_ANALYTICS_ENABLED": "False", "PYTHONWARNINGS": "ignore"}


TIMED_OUT = -999


def _tree_pss(pid: int) -> int:
    """Proportional set size (bytes) of a process and its descendants: shared pages counted once.

    civharm forks a second process on large packages; wait4's peak RSS is that of the
    largest single process, so the benchmark samples the whole tree too.
    """
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue  # the process ended between two reads
    return total


def timed(command: list[str], stdout: Path, timeout: float, sample_tree: bool = False) -> tuple[float, int, int]:
    """Run one process; return (wall seconds, peak memory in bytes, exit code or TIMED_OUT).

    Peak memory is wait4's peak RSS; with ``sample_tree``, the larger of that and the peak of
    the process tree's PSS, sampled every 0.1 s. Sampling reads /proc/<pid>/smaps_rollup,
    which walks the page tables of a process of several GiB: it slowed a 1M-report civharm
    run by ≈ 12 %, so timed runs do not sample and memory gets a run of its own.
    """
    with stdout.open("wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, env=ENV)
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        tree_peak = [0]
        finished = threading.Event()

        def sample() -> None:
            while not finished.wait(0.1):
                tree_peak[0] = max(tree_peak[0], _tree_pss(process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        if sample_tree:
            sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        finished.set()
        if sample_tree:
            sampler.join()
        killed = not timer.is_alive()
        timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    return seconds, max(usage.ru_maxrss * 1024, tree_peak[0]), TIMED_OUT if killed else process.returncode


def civharm_command(package: Path) -> list[str]:
    return [str(BIN / "civharm"), "validate", str(package), "--format", "json", "--today", TODAY]


def frictionless_command(package: Path) -> list[str]:
    return [str(BIN / "frictionless"), "validate", str(package / "datapackage.json"), "--json", "--limit-errors", "100000000"]


def structure_command(package: Path) -> list[str]:
    """Only civharm's load and structure stages: the part that replaces frictionless."""
    code = ("import json, sys; from civharm.package import load_package; from civharm import structure; "
            "p = load_package(sys.argv[1]); f = structure.check(p); "
            "print(json.dumps({'valid': not f, 'errors': len(f)}))")
    return [sys.executable, "-c", code, str(package)]


def load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def pyarrow_parse_seconds(package: Path, runs: int) -> float:
    """Median time pyarrow needs to parse every CSV of the package (the floor for any validator).

    Measured in a child process, like everything else here: the memory a child reports
    includes what its parent held when it forked, so this process stays small.
    """
    code = ("import statistics, sys, time; from pathlib import Path; import pyarrow.csv as pacsv\n"
            "files = sorted(Path(sys.argv[1]).glob('data/*.csv')); times = []\n"
            "for _ in range(int(sys.argv[2])):\n"
            "    start = time.perf_counter()\n"
            "    for path in files: pacsv.read_csv(path, parse_options=pacsv.ParseOptions(newlines_in_values=True))\n"
            "    times.append(time.perf_counter() - start)\n"
            "print(statistics.median(times))\n")
    result = subprocess.run([sys.executable, "-c", code, str(package), str(runs)], capture_output=True, text=True, env=ENV, check=True)
    return float(result.stdout)


def candidate_pairs(package: Path, timeout: float) -> str:
    """Number of pairs the near-duplicate blocking step hands to scoring (n/a when it does not exist)."""
    code = ("import sys; from civharm.package import load_package; from civharm import duplicates; "
            "p = load_package(sys.argv[1]); print(len(duplicates.candidate_pairs(p['incidents'].typed)))")
    try:
        result = subprocess.run([sys.executable, "-c", code, str(package)], capture_output=True, text=True, env=ENV, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"n/a (over {timeout:.0f} s)"
    last = result.stdout.split()[-1] if result.stdout.split() else ""  # DuckDB may draw a progress bar first
    return f"{int(last):,}" if result.returncode == 0 and last.isdigit() else "n/a"


def near_duplicate_rule_exists() -> bool:
    code = "from civharm import duplicates; print('duplicates/near-duplicate' in getattr(duplicates, 'RULES', {}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    return result.stdout.strip() == "True"


PAIR = re.compile(r"^(\S+) may be the same event as (\S+) ")


def recall(findings: list[dict], manifest: dict) -> dict[str, str]:
    """Recall of the easy and of the hard planted pairs, and the false pairs, from the near-duplicate findings.

    A false pair is a finding that names no planted pair; it is counted as hard when one of
    its incidents is a hard twin, easy when one is an easy twin, else as other.
    """
    easy = [tuple(sorted(p[:2])) for p in manifest.get("near_duplicates", [])]
    hard = [tuple(sorted(p[:2])) for p in manifest.get("hard_near_duplicates", [])]
    if not (easy or hard) or not near_duplicate_rule_exists():
        return {"easy": "n/a", "hard": "n/a", "false": "n/a"}
    flagged = {tuple(sorted(m.groups())) for f in findings if f["rule_id"] == "duplicates/near-duplicate"
               for m in [PAIR.match(f["message"])] if m}
    false = flagged - set(easy) - set(hard)
    hard_twins, easy_twins = {p[1] for p in manifest.get("hard_near_duplicates", [])}, {p[1] for p in manifest.get("near_duplicates", [])}
    false_hard = sum(1 for p in false if hard_twins & set(p))
    false_easy = sum(1 for p in false if not hard_twins & set(p) and easy_twins & set(p))

    def share(pairs):
        found = sum(p in flagged for p in pairs)
        return f"{100 * found / len(pairs):.0f}% ({found}/{len(pairs)})" if pairs else "—"
    return {"easy": share(easy), "hard": share(hard),
            "false": f"{len(false)} (easy {false_easy}, hard {false_hard}, other {len(false) - false_easy - false_hard})"}


def hard_recall_by_kind(findings: list[dict], manifest: dict) -> str:
    """Per kind of hard case: found/planted."""
    flagged = {tuple(sorted(m.groups())) for f in findings if f["rule_id"] == "duplicates/near-duplicate"
               for m in [PAIR.match(f["message"])] if m}
    kinds: dict[str, list[int]] = {}
    for a, b, kind in manifest.get("hard_near_duplicates", []):
        counts = kinds.setdefault(kind, [0, 0])
        counts[0] += tuple(sorted((a, b))) in flagged
        counts[1] += 1
    return ", ".join(f"{kind} {found}/{total}" for kind, (found, total) in kinds.items())


def ensure_package(root: Path, reports: int, variant: str, near_duplicates: int) -> dict:
    manifest_path = root / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("variant") == variant and manifest.get("requested") == [reports, near_duplicates, "hard"]:
            return manifest
    start = time.perf_counter()
    subprocess.run([sys.executable, str(HERE / "generate.py"), str(root), "--reports", str(reports), "--variant", variant,
                    "--near-duplicates", str(near_duplicates)], check=True, env=ENV, stdout=subprocess.DEVNULL)
    manifest = json.loads(manifest_path.read_text())
    manifest["requested"] = [reports, near_duplicates, "hard"]
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"generated {root} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return manifest


def measure(package: Path, manifest: dict, runs: int, tools_wanted: list[str], timeout: float, count_pairs: bool) -> list[dict]:
    rows = sum(max(0, sum(1 for _ in path.open("rb")) - 1) for path in (package / "data").glob("*.csv"))
    size = sum(path.stat().st_size for path in (package / "data").glob("*.csv"))
    results = {"civharm": [], "structure": [], "frictionless": []}
    with tempfile.TemporaryDirectory() as scratch:
        for run in range(runs):
            tools = (("civharm", civharm_command(package)), ("structure", structure_command(package)),
                     ("frictionless", frictionless_command(package)))
            for tool, command in tools:
                if tool not in tools_wanted:
                    continue
                output = Path(scratch) / f"{tool}.json"
                if any(c == TIMED_OUT for _, _, c in results[tool]):
                    continue  # one timeout is enough to know
                seconds, peak, code = timed(command, output, timeout)
                results[tool].append((seconds, peak, code))
                print(f"  {package.name} run {run + 1}/{runs} {tool}: {seconds:.1f} s, {peak / 2**20:.0f} MiB, exit {code}", file=sys.stderr)
                if run == 0:
                    results[tool + ":report"] = load_json(output)
                    results[tool + ":exit"] = code
        if "civharm" in tools_wanted and results["civharm"] and results["civharm"][0][2] != TIMED_OUT:
            # civharm forks on large packages: one more run samples the whole process tree's memory (not timed)
            _, tree_peak, _ = timed(civharm_command(package), Path(scratch) / "memory.json", timeout, sample_tree=True)
            results["civharm:tree_peak"] = tree_peak
            print(f"  {package.name} memory run civharm: {tree_peak / 2**20:.0f} MiB (process tree)", file=sys.stderr)
    parse = pyarrow_parse_seconds(package, max(3, runs))
    seconds = {tool: statistics.median(s for s, _, _ in runs_) for tool, runs_ in results.items()
               if isinstance(runs_, list) and runs_}
    fl_seconds = seconds.get("frictionless")
    pairs = candidate_pairs(package, timeout) if count_pairs else "not counted"
    base = {"package": package.name, "reports": manifest["reports"], "variant": manifest["variant"], "rows": rows, "bytes": size,
            "pyarrow_parse_s": parse}

    def row(tool, valid, errors, recall_, pairs_):
        report, code = results[tool + ":report"], results[tool + ":exit"]
        verdict = ("valid" if valid(report) else "invalid") if report is not None else (
            f"timed out after {timeout:.0f} s" if code == TIMED_OUT else f"failed (exit {code})")
        if code == TIMED_OUT:
            seconds[tool] = float("nan")
        return {**base, "tool": tool, "seconds": seconds[tool], "peak": max([p for _, p, _ in results[tool]] + [results.get(tool + ":tree_peak", 0)]),
                "verdict": verdict, "errors": errors(report) if report is not None else None,
                "recall": recall_(report) if report is not None else {"easy": "n/a", "hard": "n/a", "false": "n/a"}, "pairs": pairs_,
                "by_kind": hard_recall_by_kind(report["findings"], manifest) if tool == "civharm" and report is not None else "",
                "vs_frictionless": fl_seconds / seconds[tool] if fl_seconds else None, "vs_parse": seconds[tool] / parse}

    out = []
    if results["civharm"]:
        out.append(row("civharm", lambda r: r["valid"], lambda r: r["summary"]["counts"]["error"],
                       lambda r: recall(r["findings"], manifest), pairs))
    if results["structure"]:
        out.append(row("structure", lambda r: r["valid"], lambda r: r["errors"], lambda r: dict.fromkeys(("easy", "hard", "false"), "—"), "—"))
    if results["frictionless"]:
        out.append(row("frictionless", lambda r: r["valid"], lambda r: r["stats"]["errors"], lambda r: dict.fromkeys(("easy", "hard", "false"), "—"), "—"))
    return out


def table(results: list[dict], runs: int) -> str:
    header = ("| reports | variant | tool | seconds (median) | rows/s | peak memory | verdict | errors "
              "| recall, easy twins | recall, hard twins | false pairs | candidate pairs | speed-up vs frictionless | time / pyarrow parse |")
    lines = [header, "|" + "---|" * 14]
    for r in results:
        done = r["seconds"] == r["seconds"]  # NaN when the run timed out
        speed = f"{r['vs_frictionless']:.1f}×" if done and r["vs_frictionless"] else "n/a"
        seconds = f"{r['seconds']:.2f}" if done else "—"
        rate = f"{r['rows'] / r['seconds']:,.0f}" if done else "—"
        parse = f"{r['vs_parse']:.0f}×" if done else "—"
        errors = "n/a" if r["errors"] is None else format(r["errors"], ",")
        lines.append(f"| {r['reports']:,} | {r['variant']} | {r['tool']} | {seconds} | {rate} | {r['peak'] / 2**20:,.0f} MiB "
                     f"| {r['verdict']} | {errors} | {r['recall']['easy']} | {r['recall']['hard']} | {r['recall']['false']} | {r['pairs']} | {speed} | {parse} |")
    kinds = [f"- {r['reports']:,} {r['variant']}: hard twins found per kind: {r['by_kind']}" for r in results if r.get("by_kind")]
    return "\n".join(lines + ([""] + kinds if kinds else []))


def machine() -> str:
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), "0")
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} CPUs ({cpu}), {int(memory) / 2**20:.1f} GiB RAM, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--variants", nargs="+", default=["clean", "dirty"], choices=["clean", "dirty"])
    parser.add_argument("--runs", type=int, default=None, help="runs per tool (default 5, 3 at 1M reports)")
    parser.add_argument("--near-duplicates", type=int, default=100)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"), help="Markdown file to append to, or - to print only")
    parser.add_argument("--tools", nargs="+", default=["civharm", "structure", "frictionless"],
                        choices=["civharm", "structure", "frictionless"], help="which processes to time (default: all three)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a run is killed and reported as timed out")
    args = parser.parse_args(argv)
    results = []
    for size in args.sizes:
        runs = args.runs or (3 if size >= 1_000_000 else 5)
        for variant in args.variants:
            root = args.out / f"{size}-{variant}"
            manifest = ensure_package(root, size, variant, args.near_duplicates)
            results += measure(root, manifest, runs, args.tools, args.timeout, "civharm" in args.tools)
    runs_text = args.runs or "5 (3 at 1M)"
    section = (f"## {dt.date.today().isoformat()}: {', '.join(f'{s:,}' for s in args.sizes)} reports\n\n"
               f"Machine: {machine()}. Runs per tool: {runs_text}; peak memory is the largest of the runs, for civharm "
               f"also of one more run that samples the whole process tree (not timed: sampling slows a run).\n\n"
               f"Command: `python benchmarks/run.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
               f"{table(results, args.runs or 5)}\n")
    print(section)
    if args.results != "-":
        path = Path(args.results)
        previous = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n\nAppended by `benchmarks/run.py`; see benchmarks/README.md.\n"
        path.write_text(previous.rstrip("\n") + "\n\n" + section, encoding="utf-8")


if __name__ == "__main__":
    main()
