"""Versions of the package: read one from a git ref, a release zip, a folder or a release listed
in releases.json, and look up the recorded releases.

A version is read into a temporary folder (``git show REF:path``, nothing is checked out) and
parsed by ``civharm.package`` exactly like the working copy. Comparing two versions is
``civharm.diff``; the history gate is ``civharm.history``; writing a release is
``civharm.releases`` (RELEASING.md).
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from .archive import unpack
from .findings import CivharmError
from .limits import parse_json
from .package import DESCRIPTOR, Package, load_package, safe_relative

RELEASES_FILE = "releases.json"
SEMVER = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
GIT_TIMEOUT_SECONDS = 120


def git(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Run git in ``root`` (bytes out); CivharmError when git is not installed or does not answer in time."""
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False, timeout=GIT_TIMEOUT_SECONDS)
    except FileNotFoundError:
        raise CivharmError("git is not installed; pass a release zip or a folder instead of a git ref")
    except subprocess.TimeoutExpired:
        raise CivharmError(f"git {args[0] if args else ''} in {root} did not answer within {GIT_TIMEOUT_SECONDS} s")


def git_text(root: Path, *args: str) -> str | None:
    """git's output as stripped text, or None when git is missing, fails or is not in a repository."""
    try:
        done = git(root, *args)
    except (CivharmError, OSError):
        return None
    return done.stdout.decode("utf-8", "replace").strip() if done.returncode == 0 else None


def refuse_committed_journal(root: Path) -> None:
    """A write journal that git tracks came with a checkout (a pull request), not from a write made here: it is never
    acted on (recovering it would put files back or delete them before anyone reads the data)."""
    from .atomic import JOURNAL

    if (Path(root) / JOURNAL).exists() and git_text(Path(root), "ls-files", "--", JOURNAL):
        raise CivharmError(f"{Path(root) / JOURNAL}: a write journal committed to git records no write made here, so it is not "
                           "acted on; remove it from git (git rm --cached) and restore the files it names from git")


def is_repository(root: Path) -> bool:
    return git(root, "rev-parse", "--is-inside-work-tree").returncode == 0


def resolve_commit(root: Path, ref: str) -> str:
    """The full commit ID a git ref names, or CivharmError (not a repository, unknown ref)."""
    if not is_repository(root):
        raise CivharmError(f"{ref}: {root} is not inside a git repository; pass a release zip or a folder instead")
    result = git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if result.returncode != 0:
        raise CivharmError(f"{ref}: unknown git ref in {root} (a branch, tag or commit; fetch it first if it is remote)")
    return result.stdout.decode().strip()


def export_git(root: Path, ref: str, into: Path) -> Path:
    """Write the descriptor, schemas and data files of ``ref`` into ``into``."""
    commit = resolve_commit(root, ref)

    def show(relative: str) -> bytes | None:
        result = git(root, "show", f"{commit}:./{relative}")
        return result.stdout if result.returncode == 0 else None

    descriptor = show(DESCRIPTOR)
    if descriptor is None:
        raise CivharmError(f"{ref}: no {DESCRIPTOR} in {root} at that commit")
    (into / DESCRIPTOR).write_bytes(descriptor)
    try:
        data = parse_json(descriptor.decode("utf-8"), f"{ref}:{DESCRIPTOR}")
    except UnicodeDecodeError:
        data = None
    if not isinstance(data, dict):
        raise CivharmError(f"{ref}: {DESCRIPTOR} at that commit is not a JSON object")
    resources = data.get("resources", [])
    for spec in resources if isinstance(resources, list) else []:
        for key in ("path", "schema"):
            relative = safe_relative(spec.get(key)) if isinstance(spec, dict) else None
            content = show(relative) if relative else None
            if content is not None:
                (into / relative).parent.mkdir(parents=True, exist_ok=True)
                (into / relative).write_bytes(content)
    return into


def empty_package() -> Package:
    """The version before the first release: no tables, no rows."""
    return Package(root=Path("."), descriptor={"resources": []}, resources={}, findings=[])


def read_version(root: str | Path, source: str) -> Package:
    """Load a version named by a release zip, a folder, a version in releases.json, or a git ref."""
    root = root_of(root)
    path = Path(source)
    if path.is_dir() and (path / DESCRIPTOR).is_file() or path.is_file() and path.name == DESCRIPTOR:
        return load_package(path)
    if source.lower().endswith(".zip") and not path.is_file():
        raise CivharmError(f"{source}: file not found")
    listed = {entry["version"]: entry for entry in read_releases(root)}
    with tempfile.TemporaryDirectory(prefix="civharm-version-") as folder:
        if source.lower().endswith(".zip"):
            exported = unpack(path, Path(folder), display=source)  # within civharm.limits
        else:
            exported = export_git(root, release_ref(root, listed[source]) if source in listed else source, Path(folder))
        try:
            return load_package(exported)
        except CivharmError as exc:  # name the version, not the temporary folder
            raise CivharmError(f"{source}: {str(exc).replace(str(exported) + '/', '')}")


def root_of(path: str | Path) -> Path:
    path = Path(path)
    return path.parent if path.is_file() or path.suffix == ".json" else path


def parse_version(text: str) -> tuple[int, int, int]:
    match = SEMVER.fullmatch(text or "")
    if not match:
        raise CivharmError(f"{text!r} is not a release version (MAJOR.MINOR.PATCH, e.g. 1.0.0)")
    return int(match[1]), int(match[2]), int(match[3])


def read_releases(root: str | Path) -> list[dict]:
    """The releases recorded in releases.json, oldest first ([] when there is none yet)."""
    path = root_of(root) / RELEASES_FILE
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CivharmError(f"{path}: not valid JSON ({exc})")
    data = parse_json(text, str(path))
    listed = data.get("releases") if isinstance(data, dict) else None
    if not isinstance(listed, list) or not all(isinstance(e, dict) and SEMVER.fullmatch(str(e.get("version"))) for e in listed):
        raise CivharmError(f"{path}: must hold {{\"releases\": [{{\"version\": \"X.Y.Z\", …}}, …]}}")
    return listed


def release_ref(root: Path, entry: dict) -> str:
    """The commit of a recorded release: its tag, or else the commit that added it to releases.json."""
    version = entry["version"]
    tag = entry.get("tag") or f"v{version}"
    if is_repository(root) and git(root, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}").returncode == 0:
        return tag
    if is_repository(root):
        log = git(root, "log", "--format=%H", "--reverse", "-S", f'"version": "{version}"', "--", RELEASES_FILE)
        commits = log.stdout.decode().split()
        if log.returncode == 0 and commits:
            return commits[0]
    raise CivharmError(f"release {version} is in {RELEASES_FILE} but neither tag {tag} nor a commit adding it was found "
                       "(fetch tags and full history, or pass --base with the release zip)")


def last_release_source(root: str | Path) -> str | None:
    """The git ref of the last recorded release, or None before the first release."""
    releases = read_releases(root)
    return release_ref(root_of(root), releases[-1]) if releases else None
