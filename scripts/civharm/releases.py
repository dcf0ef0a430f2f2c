"""Releases of the dataset: the version bump, the changelog section, and the four places a
version is written (datapackage.json, CITATION.cff, CHANGELOG.md, releases.json), all at once.

``civharm release`` uses ``plan_release``/``release``; ``civharm build`` labels files with
``build_version``. Reading versions is ``civharm.versions``' job, comparing them ``civharm.diff``'s.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .atomic import LOCK_FILE, FaultHook, write_files
from .findings import CivharmError
from .limits import parse_json
from .diff import BOOKKEEPING, KIND_TITLES, LEVELS, LOG_TABLE, Diff, bump_reasons, compare, format_value, record_line, required_bump, summary_sentence
from .versions import RELEASES_FILE, empty_package, git, is_repository, parse_version, read_releases, read_version, release_ref, root_of
from .package import DESCRIPTOR, BadPath, load_package, safe_path, safe_relative


def next_versions(previous: str) -> dict[str, str]:
    major, minor, patch = parse_version(previous)
    return {"major": f"{major + 1}.0.0", "minor": f"{major}.{minor + 1}.0", "patch": f"{major}.{minor}.{patch + 1}"}


def _descriptor(content: bytes) -> dict:
    """datapackage.json read through the bounded JSON reader (a non-object reads as empty)."""
    data = parse_json(content.decode("utf-8", "replace"), DESCRIPTOR)
    return data if isinstance(data, dict) else {}


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _package_files(root: Path, descriptor_bytes: bytes) -> dict[str, str]:
    """sha256 of the descriptor and of every schema and data file it lists."""
    files = {DESCRIPTOR: _sha256(descriptor_bytes)}
    for spec in _descriptor(descriptor_bytes).get("resources", []):
        for key in ("schema", "path"):
            relative = safe_relative(spec.get(key))
            try:
                inside = relative and safe_path(root, relative)  # not out through a symlinked folder either
            except BadPath:
                inside = None
            if inside and inside.is_file():
                files[relative] = _sha256(inside.read_bytes())
    return dict(sorted(files.items()))


def _set_descriptor_version(text: str, version: str) -> str:
    """Change the top-level version keeping the file's layout; fall back to re-serialising."""
    data = parse_json(text, DESCRIPTOR)
    replaced = re.sub(r'("version"\s*:\s*)"[^"]*"', lambda m: f'{m[1]}"{version}"', text, count=1)
    expected = dict(data, version=version)
    if "version" in data and json.loads(replaced) == expected:
        return replaced
    return json.dumps(expected, ensure_ascii=False, indent=2) + "\n"


def _set_citation_version(text: str, version: str, date: str) -> str:
    for key, value in (("version", version), ("date-released", f'"{date}"')):
        if re.search(rf"^{key}:.*$", text, flags=re.M):
            text = re.sub(rf"^{key}:.*$", f"{key}: {value}", text, count=1, flags=re.M)
        else:
            text = text.rstrip("\n") + f"\n{key}: {value}\n"
    return text


def changelog_section(diff: Diff, version: str, previous: str | None, date: str, level: str, notes: str = "") -> str:
    """The dataset CHANGELOG section of one release, generated from its diff."""
    out = [f"## {version} ({date})", ""]
    if previous is None:
        sizes = ", ".join(f"{n} {t}" for t, n in diff.sizes.items() if n)
        out += [f"First release: {sizes or 'no records'}.", ""]
    else:
        out += [f"Compared with {previous}: {summary_sentence(diff)}. Release level: {level} "
                f"(the smallest allowed: {required_bump(diff)}).", "",
                f"Row-level changes: `civharm diff v{previous} v{version}`.", ""]
        counts = diff.counts()
        if counts:
            out += ["| table | " + " | ".join(t for _, t in KIND_TITLES).lower() + " |", "|---" * (len(KIND_TITLES) + 1) + "|"]
            out += [f"| {t} | " + " | ".join(str(k.get(kind, 0)) for kind, _ in KIND_TITLES) + " |" for t, k in counts.items()]
            out.append("")
        notable = [f"- Schema, `{c.table}`: {c.detail} ({c.level})" for c in diff.schema]
        for change in diff.records:
            if change.kind in ("retracted", "merged", "restored", "deleted"):
                notable.append(f"- {change.kind.capitalize()} ({change.table}): " + record_line(change, located=False)[2:])
            elif change.kind == "changed" and change.table != LOG_TABLE:
                edits = "; ".join(f"`{f.field}` {format_value(f.old)} → {format_value(f.new)}" for f in change.fields if f.field not in BOOKKEEPING)
                notable.append(f"- Corrected `{change.record_id}` ({change.table}): {edits}")
        if notable:
            out += ["Notable changes:", ""] + notable[:40]
            if len(notable) > 40:
                out.append(f"- … and {len(notable) - 40} more: run the `civharm diff` command above")
            out.append("")
    if notes.strip():
        out += [notes.strip(), ""]
    return "\n".join(out)


def _insert_section(changelog: str, section: str) -> str:
    """Put the section under an emptied "## Unreleased", moving that heading's notes into it."""
    if not changelog.strip():
        changelog = "# Dataset changelog\n\n## Unreleased\n"
    match = re.search(r"^## Unreleased[^\n]*\n", changelog, flags=re.M)
    if match is None:
        first = re.search(r"^## ", changelog, flags=re.M)
        at = first.start() if first else len(changelog)
        return changelog[:at].rstrip("\n") + "\n\n## Unreleased\n\n" + section + "\n" + changelog[at:]
    following = re.search(r"^## ", changelog[match.end():], flags=re.M)
    end = match.end() + following.start() if following else len(changelog)
    rest = changelog[end:]
    return changelog[:match.end()] + "\n" + section + ("\n" + rest if rest else "")


def unreleased_notes(changelog: str) -> str:
    match = re.search(r"^## Unreleased[^\n]*\n(.*?)(?=^## |\Z)", changelog, flags=re.M | re.S)
    return match[1].strip() if match else ""


def changelog_versions(changelog: str) -> list[str]:
    """Released versions in CHANGELOG.md, newest first."""
    return re.findall(r"^## (\d+\.\d+\.\d+)\b", changelog, flags=re.M)


def recorded_versions(root: str | Path) -> dict[str, str | None]:
    """The dataset version as each file records it; a release keeps them equal."""
    root = root_of(root)
    descriptor = _descriptor((root / DESCRIPTOR).read_bytes())
    citation = root / "CITATION.cff"
    match = re.search(r"^version:\s*['\"]?([^'\"\s]+)", citation.read_text(encoding="utf-8"), flags=re.M) if citation.is_file() else None
    changelog = root / "CHANGELOG.md"
    released = changelog_versions(changelog.read_text(encoding="utf-8")) if changelog.is_file() else []
    releases = read_releases(root)
    return {DESCRIPTOR: descriptor.get("version"), "CITATION.cff": match[1] if match else None,
            "CHANGELOG.md": released[0] if released else None, RELEASES_FILE: releases[-1]["version"] if releases else None}


@dataclass
class ReleasePlan:
    version: str
    previous: str | None
    level: str  # the chosen level ("initial" for the first release)
    required: str
    date: str
    section: str
    diff: Diff
    files: dict[Path, bytes]


def plan_release(root: str | Path, version: str, date: dt.date, base: str | None = None) -> ReleasePlan:
    """Everything ``civharm release`` would write, or CivharmError when the version is not allowed."""
    root = root_of(root)
    parse_version(version)
    releases = read_releases(root)
    if any(e["version"] == version for e in releases):
        raise CivharmError(f"{version} is already released (see {RELEASES_FILE})")
    previous = releases[-1]["version"] if releases else None
    source = base or (release_ref(root, releases[-1]) if releases else None)
    head = load_package(root)
    old = read_version(root, source) if source else empty_package()
    diff = compare(old, head, f"v{previous}" if previous and not base else (source or "nothing"), f"v{version}")
    required = required_bump(diff)
    if previous is None:
        level = "initial"
    else:
        if required == "none":
            raise CivharmError(f"nothing changed since {previous}: no record or schema differs, so there is nothing to release")
        if parse_version(version) <= parse_version(previous):
            raise CivharmError(f"{version} is not newer than the last release {previous}")
        allowed = {v: lvl for lvl, v in next_versions(previous).items() if LEVELS.index(lvl) >= LEVELS.index(required)}
        if version not in allowed:
            why = "; ".join(bump_reasons(diff)[required][:5])
            raise CivharmError(f"{version} is not allowed after {previous}: the changes need at least a {required} release "
                               f"({why}); allowed: {', '.join(allowed)}")
        level = allowed[version]
    day = date.isoformat()
    descriptor_text = _set_descriptor_version((root / DESCRIPTOR).read_text(encoding="utf-8"), version)
    citation_path, changelog_path = root / "CITATION.cff", root / "CHANGELOG.md"
    citation = citation_path.read_text(encoding="utf-8") if citation_path.is_file() else (
        f'cff-version: 1.2.0\nmessage: "If you use this dataset, please cite it as below."\ntype: dataset\n'
        f"title: {json.dumps(head.descriptor.get('title') or 'civharm')}\n")
    changelog = changelog_path.read_text(encoding="utf-8") if changelog_path.is_file() else ""
    section = changelog_section(diff, version, previous, day, level, unreleased_notes(changelog))
    parent = git(root, "rev-parse", "HEAD") if is_repository(root) else None
    entry = {"version": version, "date": day, "tag": f"v{version}", "previous": previous, "level": level,
             "parent_commit": parent.stdout.decode().strip() if parent is not None and parent.returncode == 0 else None,
             "counts": diff.totals(), "files": _package_files(root, descriptor_text.encode("utf-8"))}
    record = {"description": "Every release of the dataset, oldest first; written by `civharm release` (see RELEASING.md).",
              "releases": releases + [entry]}
    files = {root / DESCRIPTOR: descriptor_text.encode("utf-8"),
             citation_path: _set_citation_version(citation, version, day).encode("utf-8"),
             changelog_path: _insert_section(changelog, section).encode("utf-8"),
             root / RELEASES_FILE: (json.dumps(record, ensure_ascii=False, indent=2) + "\n").encode("utf-8")}
    return ReleasePlan(version, previous, level, required, day, section, diff, files)


def release(root: str | Path, version: str, date: dt.date, base: str | None = None, fault: FaultHook | None = None) -> ReleasePlan:
    """Write the release's files all or nothing (``fault`` lets tests break it between two files)."""
    plan = plan_release(root, version, date, base)
    write_files(root_of(root), plan.files, fault=fault)
    return plan


def build_version(package_root: str | Path) -> str:
    """The version a build is labelled with: the release itself, or the next version + ``-dev.g<commit>``.

    The next version is the last release bumped by the smallest level its diff allows (before
    the first release: the version in datapackage.json). ``.dirty`` marks uncommitted changes.
    """
    root = root_of(package_root)
    descriptor_bytes = (root / DESCRIPTOR).read_bytes()
    releases = read_releases(root)
    if is_repository(root):
        head = git(root, "rev-parse", "--short=7", "HEAD")
        dirty = git(root, "status", "--porcelain", "--", ".", f":(exclude){LOCK_FILE}").stdout.strip()  # a build holds the lock
        suffix = ("g" + head.stdout.decode().strip() if head.returncode == 0 else "nocommit") + (".dirty" if dirty else "")
    else:
        suffix = "nogit"
    if not releases:
        current = _descriptor(descriptor_bytes).get("version", "")
        parse_version(current)
        return f"{current}-dev.{suffix}"
    last = releases[-1]
    if last.get("files") == _package_files(root, descriptor_bytes):
        return last["version"]
    level = required_bump(compare(read_version(root, release_ref(root, last)), load_package(root)))
    if level == "none":
        return last["version"]
    return f"{next_versions(last['version'])[level]}-dev.{suffix}"
