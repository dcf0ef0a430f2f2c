"""Unpack a zip that may be hostile: a release zip fetched by ``download``, or one given to
``load``, ``validate --base`` or ``diff``.

Everything is checked from the zip's table of contents before a byte is unpacked: the
number of members and the size of the table, each name (no absolute path, no ``..``, no
link, no name twice, no file that another member uses as a folder), each member's size and
compression ratio, and the total (``civharm.limits``). Members are then copied in chunks,
never whole into memory; zipfile stops each at the size it declared and checks its CRC, so a
member that lies about its size is refused, not unpacked past the limits.
"""
from __future__ import annotations

import re
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .findings import CivharmError
from .limits import LIMITS, Limits, size_text
from .package import DESCRIPTOR

CHUNK = 1 << 16
CHECKSUMS = "SHA256SUMS"  # beside each release zip: the sha256 of every release file (written by build, read by download)
READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}


def _declared_index(handle) -> tuple[int, int] | None:
    """(members, bytes) of the central directory as the zip's end record declares them.

    zipfile parses the whole central directory when it opens a zip and has no public reader
    for the end record; ``_EndRecData`` is the reader it uses itself.
    """
    end = zipfile._EndRecData(handle)  # noqa: SLF001 - see the docstring
    return (end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]) if end else None  # noqa: SLF001


def _check_index(handle, display: str, limits: Limits) -> None:
    declared = _declared_index(handle)
    if declared is None:
        return  # not a zip: ZipFile says so
    members, size = declared
    if members > limits.members:
        raise CivharmError(f"{display}: refusing the zip: it declares {members} members (limit {limits.members})")
    if size > limits.index_bytes:
        raise CivharmError(f"{display}: refusing the zip: its table of contents is {size} bytes "
                           f"(limit {size_text(limits.index_bytes)})")


def _member_parts(info: zipfile.ZipInfo, display: str) -> tuple[str, ...]:
    """The member's path as folder names, or an error for one that could land outside the folder."""
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in parts:
        raise CivharmError(f"{display}: refusing unsafe member path {name!r}")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise CivharmError(f"{display}: refusing symbolic link {name!r}")
    return parts


def _check_file(info: zipfile.ZipInfo, display: str, limits: Limits) -> None:
    """A file member is readable and within the per-member limits, as its header declares."""
    name = info.filename
    if info.flag_bits & 0x1:
        raise CivharmError(f"{display}: refusing encrypted member {name!r}")
    if info.compress_type not in READABLE_METHODS:
        raise CivharmError(f"{display}: refusing member {name!r}: compression method {info.compress_type} "
                           f"(only {' and '.join(READABLE_METHODS.values())} are read)")
    if info.file_size > limits.member_bytes:
        raise CivharmError(f"{display}: refusing member {name!r}: it unpacks to {info.file_size} bytes "
                           f"(limit {size_text(limits.member_bytes)} per member)")
    if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.ratio * max(info.compress_size, 1):
        ratio = info.file_size // max(info.compress_size, 1)
        raise CivharmError(f"{display}: refusing member {name!r}: it unpacks to {info.file_size} bytes from "
                           f"{info.compress_size}, {ratio} times its size (limit {limits.ratio} times)")


def plan(archive: zipfile.ZipFile, display: str, limits: Limits = LIMITS) -> list[tuple[zipfile.ZipInfo, Path]]:
    """(member, relative path) for every member, or CivharmError for the first one refused."""
    members = archive.infolist()
    if len(members) > limits.members:
        raise CivharmError(f"{display}: refusing the zip: it holds {len(members)} members (limit {limits.members})")
    planned, seen, files, total = [], {}, set(), 0
    for info in members:
        parts = _member_parts(info, display)
        key = "/".join(parts).casefold()
        if key in seen and not (info.is_dir() and seen[key].is_dir()):
            raise CivharmError(f"{display}: refusing member {info.filename!r}: the zip holds that name twice")
        seen[key] = info
        if not info.is_dir():
            _check_file(info, display, limits)
            files.add(key)
            total += info.file_size
        planned.append((info, Path(*parts) if parts else Path(".")))
    if total > limits.unpacked_bytes:
        raise CivharmError(f"{display}: refusing the zip: its members unpack to {total} bytes "
                           f"(limit {size_text(limits.unpacked_bytes)} in all)")
    for key in seen:
        folders = key.split("/")[:-1]
        for depth in range(1, len(folders) + 1):
            if "/".join(folders[:depth]) in files:
                raise CivharmError(f"{display}: refusing member {seen[key].filename!r}: "
                                   f"{'/'.join(folders[:depth])!r} is a file in the zip, not a folder")
    return planned


def extract(zip_path: Path, into: Path, display: str | None = None, limits: Limits = LIMITS) -> None:
    """Unpack every member into the existing, empty folder ``into``, or refuse the whole zip."""
    display = display or str(zip_path)
    if not Path(zip_path).is_file():
        raise CivharmError(f"{display}: file not found")
    try:
        with open(zip_path, "rb") as handle:
            _check_index(handle, display, limits)
            with zipfile.ZipFile(handle) as archive:
                for info, relative in plan(archive, display, limits):
                    target = into / relative
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(info) as source, open(target, "xb") as out:
                        while chunk := source.read(CHUNK):
                            out.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error) as exc:
        raise CivharmError(f"{display}: not a readable zip file ({exc})")
    except OSError as exc:
        raise CivharmError(f"{display}: cannot unpack it into {into}: {exc.strerror or exc}")


def package_root(folder: Path, display: str) -> Path:
    """The folder holding datapackage.json: the zip's top level or its one top-level folder."""
    if (folder / DESCRIPTOR).is_file():
        return folder
    entries = [p for p in folder.iterdir() if not p.name.startswith("__MACOSX")]
    if len(entries) == 1 and (entries[0] / DESCRIPTOR).is_file():
        return entries[0]
    raise CivharmError(f"{display}: holds no {DESCRIPTOR} (at its top level or in its one top-level folder)")


def unpack(zip_path: Path, into: Path, display: str | None = None, limits: Limits = LIMITS) -> Path:
    """Extract a release zip into an empty folder; return the folder holding datapackage.json."""
    display = display or str(zip_path)
    extract(zip_path, into, display, limits)
    return package_root(into, display)
