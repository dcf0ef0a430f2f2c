"""Writes into a package: one writer at a time, and all or nothing even across a crash.

**The lock.** Every command that writes into a package holds ``.civharm.lock`` in the package
folder for its whole run (read, check, write), so two writers never start from the same state
and neither loses the other's change. It is an operating-system lock (``filelock``), released
by the system when the process ends, even by ``kill -9``; a command that cannot get it within
a bounded wait stops and names it.

**The journal.** A write of several files goes through ``.civharm-journal.json``:

1. the journal names the files and whether each existed (written, synced, renamed into place);
2. beside each file, its old version is kept (a hard link, ``.NAME.civharm-old``) and its new
   content is written and synced (``.NAME.civharm-new``);
3. each new file is renamed over its target;
4. the journal is marked done; the old versions are removed, then the journal.

A crash anywhere before step 4 leaves a journal not marked done: the next command that writes
into the package, or ``civharm recover`` (``recover``), puts every old version back, so the
write is undone. A crash during step 4 leaves a done journal: the next writer removes what is
left. Either way the files are byte-identical to before or after the write, and no temporary
file remains. A write that fails inside the process (disk full, an injected fault) is undone at
once the same way.

**Readers never recover.** A command that only reads (``validate``, ``diff``, ``load()``) refuses
to run while a journal is there (``refuse_if_interrupted``) instead of acting on it: the files may
be half written, and a journal can come from a hostile checkout (committed to a pull request to
swap files back before the history gate reads them, or to delete files), so reading never
changes a file. A journal names only files of the package, never anything under ``.git``.
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Mapping

from filelock import FileLock, Timeout

from .findings import CivharmError

LOCK_FILE = ".civharm.lock"
JOURNAL = ".civharm-journal.json"
JOURNAL_NEW = ".civharm-journal.json.civharm-new"  # the journal before it is renamed into place
LOCK_WAIT_SECONDS = 10.0  # how long a command waits for another writer before it gives up
MAX_JOURNAL_BYTES = 1 << 20  # a journal names a few files; a larger one is not ours

# Tests pass a hook that raises (or kills the process) before rename ``index``.
FaultHook = Callable[[int, Path], None]


def os_error(exc: OSError, where: str) -> CivharmError:
    """The one-line error for a failed write of ``where``, after which nothing was changed."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return CivharmError(f"disk full while writing {where}; nothing was changed")
    return CivharmError(f"cannot write {where}: {exc.strerror or exc}; nothing was changed")


def _new(target: Path) -> Path:
    return target.with_name(f".{target.name}.civharm-new")


def _old(target: Path) -> Path:
    return target.with_name(f".{target.name}.civharm-old")


def _sync_folder(folder: Path) -> None:
    """Make the renames and removals in ``folder`` durable (a rename lives in its folder's entry)."""
    handle = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _write_synced(path: Path, content: bytes, mode: int) -> None:
    """Write a fresh file and sync it; a file or symlink already at ``path`` is removed, never written through."""
    path.unlink(missing_ok=True)
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(handle, mode)
        view = memoryview(content)
        while view:
            view = view[os.write(handle, view):]
        os.fsync(handle)
    finally:
        os.close(handle)


def write_file(path: Path, content: bytes) -> None:
    """Replace one file atomically (a unique temporary file, then one rename); for caches that several processes share."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(name, 0o644)  # mkstemp makes 0600
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


# --- the journal ----------------------------------------------------------------------------


def _relative(root: Path, target: Path) -> str:
    """``target`` as a POSIX path inside ``root``; a path outside the package is refused."""
    try:
        relative = Path(os.path.abspath(target)).relative_to(os.path.abspath(root))
    except ValueError:
        raise CivharmError(f"{target}: not inside the package {root}; nothing was changed")
    if not relative.parts:
        raise CivharmError(f"{target}: is the package folder itself, not a file in it")
    return relative.as_posix()


def _write_journal(root: Path, state: str, entries: list[dict]) -> None:
    journal = root / JOURNAL
    body = json.dumps({"civharm-journal": 1, "state": state, "files": entries}, indent=1) + "\n"
    _write_synced(root / JOURNAL_NEW, body.encode("utf-8"), 0o644)
    os.replace(root / JOURNAL_NEW, journal)
    _sync_folder(root)


def _read_journal(root: Path) -> tuple[str, list[dict]]:
    """The journal's state and files, each path checked to lie inside the package."""
    journal = root / JOURNAL

    def broken(why: str) -> CivharmError:
        return CivharmError(f"{journal}: cannot read the journal of an interrupted write ({why}); "
                            "compare the files it names with git, then remove it")

    try:
        with open(journal, "rb") as handle:
            raw = handle.read(MAX_JOURNAL_BYTES + 1)
    except OSError as exc:
        raise broken(exc.strerror or str(exc))
    if len(raw) > MAX_JOURNAL_BYTES:
        raise broken(f"larger than {MAX_JOURNAL_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise broken(f"not JSON: {exc}")
    if not isinstance(data, dict) or data.get("state") not in ("pending", "done") or not isinstance(data.get("files"), list):
        raise broken("not a civharm journal")
    entries = []
    for entry in data["files"]:
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str) or not isinstance(entry.get("existed"), bool):
            raise broken("a file entry lacks its path or whether it existed")
        parts = PurePosixPath(path).parts
        if not parts or PurePosixPath(path).is_absolute() or ".." in parts or "\\" in path or "\0" in path:
            raise broken(f"{path!r} is not a path inside the package")
        if ".git" in (part.lower() for part in parts) or parts[-1] in (JOURNAL, JOURNAL_NEW, LOCK_FILE):
            raise broken(f"{path!r} is not a file civharm writes")
        try:
            (root / path).resolve().relative_to(root.resolve())  # nor through a symlinked folder
        except ValueError:
            raise broken(f"{path!r} leads out of the package")
        if (root / path).is_dir():
            raise broken(f"{path!r} is a folder, not a file")
        entries.append({"path": path, "existed": entry["existed"]})
    return data["state"], entries


def _undo(root: Path, entries: list[dict]) -> None:
    """Put every old version back (idempotent: safe to repeat after a crash in the middle)."""
    for entry in entries:
        target = root / entry["path"]
        if entry["existed"]:
            old = _old(target)
            if old.exists() and target.exists() and os.path.samefile(old, target):
                old.unlink()  # not replaced yet (and rename() between two links of one file does nothing)
            elif old.exists():
                os.replace(old, target)
            # else: the old version was never set aside, or is back already: the target is old
        else:
            target.unlink(missing_ok=True)  # it did not exist before the write
        _new(target).unlink(missing_ok=True)
    for folder in {(root / e["path"]).parent for e in entries}:
        if folder.is_dir():  # the folder of a new file may not have been made yet
            _sync_folder(folder)
    _drop_journal(root)


def _finish(root: Path, entries: list[dict]) -> None:
    """Remove what a completed write left: the old versions, then the journal."""
    for entry in entries:
        target = root / entry["path"]
        _old(target).unlink(missing_ok=True)
        _new(target).unlink(missing_ok=True)
    _drop_journal(root)


def _drop_journal(root: Path) -> None:
    (root / JOURNAL_NEW).unlink(missing_ok=True)
    (root / JOURNAL).unlink(missing_ok=True)
    _sync_folder(root)


def recover(root: Path) -> list[str]:
    """Undo (or finish) a write that a crash interrupted; say what was done. Call with the lock held."""
    root = Path(root)
    journal = root / JOURNAL
    if not journal.exists():
        if (root / JOURNAL_NEW).exists():  # a journal never put in place: no file was touched yet
            _drop_journal(root)
            return [f"removed {JOURNAL_NEW}, left by a civharm command stopped before it changed any file"]
        return []
    state, entries = _read_journal(root)
    names = ", ".join(e["path"] for e in entries) or "no file"
    if state == "done":
        _finish(root, entries)
        return [f"a civharm command was stopped after writing {names}; its write is complete, its leftover files are removed"]
    _undo(root, entries)
    return [f"a civharm command was stopped while writing {names}; undone: those files are as they were before it"]


def write_files(root: Path, contents: Mapping[Path, bytes | str], fault: FaultHook | None = None) -> None:
    """Replace every target (inside the package ``root``) with its content, or none of them: see the module doc."""
    root = Path(root)
    encoded = {Path(p): (c.encode("utf-8") if isinstance(c, str) else c) for p, c in contents.items()}
    if not encoded:
        return
    relative = {target: _relative(root, target) for target in encoded}
    if (root / JOURNAL).exists():
        raise CivharmError(f"{root / JOURNAL}: an interrupted write is pending; run `civharm recover` on the package to undo it first")
    entries = [{"path": relative[t], "existed": t.exists()} for t in encoded]
    current = JOURNAL
    try:
        _write_journal(root, "pending", entries)
        for target, content in encoded.items():
            current = relative[target]
            mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                _set_aside(target)
            _write_synced(_new(target), content, mode)
        for folder in {t.parent for t in encoded}:
            _sync_folder(folder)
        for index, target in enumerate(encoded):
            current = relative[target]
            if fault is not None:
                fault(index, target)
            os.replace(_new(target), target)
        for folder in {t.parent for t in encoded}:
            _sync_folder(folder)
        current = JOURNAL
        _write_journal(root, "done", entries)
    except BaseException as exc:
        try:
            _undo(root, entries)
        except OSError as second:
            raise CivharmError(f"the write of {current} failed ({exc}) and could not be undone ({second}); "
                               "the next civharm command on this package will undo it") from exc
        if isinstance(exc, OSError):
            raise os_error(exc, current) from exc
        raise
    try:
        _finish(root, entries)
    except OSError:
        pass  # the write is complete; the next command removes the leftovers (and says so)


def _set_aside(target: Path) -> None:
    """Keep the old version of ``target`` beside it: a hard link, or a synced copy where links are not supported."""
    old = _old(target)
    old.unlink(missing_ok=True)
    try:
        os.link(target, old, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        _write_synced(old, target.read_bytes(), target.stat().st_mode & 0o777)


# --- the lock -------------------------------------------------------------------------------


@contextmanager
def _held(root: Path, wait: float) -> Iterator[None]:
    """Hold the package's write lock for the block, waiting at most ``wait`` seconds for another writer."""
    path = Path(root) / LOCK_FILE
    lock = FileLock(path, timeout=wait, fallback_to_soft=False)
    try:
        lock.acquire()
    except Timeout:
        raise CivharmError(f"another civharm command is writing this package (lock: {path})") from None
    except OSError as exc:
        raise CivharmError(f"cannot lock the package: {path}: {exc.strerror or exc}") from exc
    try:
        yield
    finally:
        lock.release()


@contextmanager
def package_lock(root: Path, wait: float = LOCK_WAIT_SECONDS) -> Iterator[list[str]]:
    """Hold the package's write lock for the block, after undoing any interrupted write; yields what was recovered."""
    with _held(root, wait):
        yield recover(root)


def refuse_if_interrupted(root: Path, wait: float = LOCK_WAIT_SECONDS) -> None:
    """For a command that only reads: stop, naming the journal, while an interrupted write is pending (see the module doc).

    A journal can also be that of a write still running: the reader waits for its lock first, as a writer would.
    A journal marked done belongs to a complete write (its files are the new ones): reading goes on.
    """
    journal = Path(root) / JOURNAL
    if not journal.exists():
        return
    with _held(root, wait):
        if not journal.exists():
            return  # the write was running and has finished
        state, _ = _read_journal(Path(root))
        if state == "done":
            return
        raise CivharmError(f"{journal}: a civharm write into this package was interrupted, so its files may be half written; "
                           "run `civharm recover` to undo it, then this command again (a command that only reads changes no file)")
