"""All-or-nothing writes across several files.

Every new content is first written to a temporary file beside its target and synced; only
then are the targets replaced, each by an atomic rename, after their old bytes were kept.
If anything fails on the way (including an injected fault between two files), the files
already replaced are restored, so the tree is byte-identical to before.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Mapping

# Tests pass a hook that raises between two renames to prove the rollback.
FaultHook = Callable[[int, Path], None]


def _write_temp(target: Path, content: bytes) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.fchmod(handle, (target.stat().st_mode & 0o777) if target.exists() else 0o644)  # mkstemp makes 0600
    with os.fdopen(handle, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    return Path(name)


def write_files(contents: Mapping[Path, bytes | str], fault: FaultHook | None = None) -> None:
    """Replace every target with its content, or leave all of them as they were."""
    encoded = {Path(p): (c.encode("utf-8") if isinstance(c, str) else c) for p, c in contents.items()}
    staged: dict[Path, Path] = {}
    previous: dict[Path, bytes | None] = {}
    done: list[Path] = []
    try:
        for target, content in encoded.items():
            previous[target] = target.read_bytes() if target.exists() else None
            staged[target] = _write_temp(target, content)
        for index, (target, temp) in enumerate(staged.items()):
            if fault is not None:
                fault(index, target)
            os.replace(temp, target)
            done.append(target)
    except BaseException:
        for target in reversed(done):
            old = previous[target]
            if old is None:
                target.unlink(missing_ok=True)
            else:
                os.replace(_write_temp(target, old), target)
        for temp in staged.values():
            Path(temp).unlink(missing_ok=True)
        raise
