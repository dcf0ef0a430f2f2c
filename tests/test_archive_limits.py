"""Zip files read within limits: names, sizes, ratios and member counts are checked from the
table of contents before anything is unpacked (``civharm.archive``, ``civharm.limits``).
"""
from __future__ import annotations

import contextlib
import random
import stat
import tracemalloc
import zipfile
from pathlib import Path

import pytest

import civharm
from civharm import archive, versions
from civharm.findings import CivharmError
from civharm.limits import Limits
from civharm.package import load_package
from conftest import REPO, build_package
from test_loading import VERSION, invoke, zip_package


def limits(**changes) -> Limits:
    """The default limits with some tightened, so that a test needs no large input."""
    return Limits(**changes)


def bomb(path: Path, member: str = f"civharm-{VERSION}/data/incidents.csv", size: int = 8 << 20) -> tuple[Path, zipfile.ZipInfo]:
    """A release-shaped zip whose one data file is ``size`` bytes of zeros (deflated ~1000 times)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(REPO / "datapackage.json", f"civharm-{VERSION}/datapackage.json")
        archive.writestr(member, bytes(size))
    with zipfile.ZipFile(path) as archive:
        return path, archive.getinfo(member)


def ratio_error(display: str, info: zipfile.ZipInfo) -> str:
    return (f"{display}: refusing member {info.filename!r}: it unpacks to {info.file_size} bytes from "
            f"{info.compress_size}, {info.file_size // info.compress_size} times its size (limit 100 times)")


# --- zip bombs and unsafe members --------------------------------------------------------------


def test_validate_base_bomb_zip_is_a_located_refusal(tmp_path):
    package = build_package(tmp_path / "package")
    path, info = bomb(tmp_path / "bomb.zip")
    result = invoke("validate", str(package), "--base", str(path))
    assert result.exit_code == 2
    assert result.output == f"Error: {ratio_error(str(path), info)}\n"


def test_load_of_a_bomb_zip_is_refused(tmp_path):
    path, info = bomb(tmp_path / "bomb.zip")
    with pytest.raises(CivharmError) as caught:
        civharm.load(str(path))
    assert str(caught.value) == ratio_error(str(path), info)


def test_a_base_zip_is_streamed_not_read_into_memory(tmp_path):
    """A large member within the limits costs disk, not memory (it was read whole before)."""
    package = build_package(tmp_path / "package")
    path = zip_package(package, tmp_path / "base.zip")
    padding = random.Random(42).randbytes(32 << 20)  # incompressible: within the ratio limit
    with zipfile.ZipFile(path, "a", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"civharm-{VERSION}/padding.bin", padding)
    del padding
    tracemalloc.start()
    try:
        base = versions.read_version(package, str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert set(base.resources) == set(load_package(package).resources)
    assert peak < 8 << 20, peak  # 32 MiB when the member was read whole


def zip_of(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]], method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for info, data in members:
            archive.writestr(info, data)
    return path


def encrypted(path: Path, members) -> Path:
    """A zip whose members say they are encrypted (zipfile writes none, so the flag is set after)."""
    data = bytearray(zip_of(path, members).read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        data[at + offset] |= 0x1
    path.write_bytes(bytes(data))
    return path


def info(name: str, *, mode: int | None = None, method: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    member = zipfile.ZipInfo(name)
    member.compress_type = method
    if mode is not None:
        member.external_attr = mode << 16
    return member


UNSAFE = {
    "absolute path": ([("/etc/civharm.txt", b"x")], "refusing unsafe member path '/etc/civharm.txt'"),
    "parent folder": ([("data/../../escaped.txt", b"x")], "refusing unsafe member path 'data/../../escaped.txt'"),
    "backslashes": ([("..\\escaped.txt", b"x")], "refusing unsafe member path '..\\\\escaped.txt'"),
    "drive letter": ([("C:/escaped.txt", b"x")], "refusing unsafe member path 'C:/escaped.txt'"),
    "symbolic link": ([(info("data", mode=stat.S_IFLNK | 0o777), b"/etc")], "refusing symbolic link 'data'"),
    "name twice": ([("data/a.csv", b"1"), ("data/a.csv", b"2")], "refusing member 'data/a.csv': the zip holds that name twice"),
    "name twice in another case": ([("data/a.csv", b"1"), ("data/A.csv", b"2")],
                                   "refusing member 'data/A.csv': the zip holds that name twice"),
    "file used as a folder": ([("data", b"1"), ("data/a.csv", b"2")],
                              "refusing member 'data/a.csv': 'data' is a file in the zip, not a folder"),
    "encrypted": ([("a.csv", b"x")], "refusing encrypted member 'a.csv'"),
    "other compression": ([(info("a.csv", method=zipfile.ZIP_BZIP2), b"x")],
                          "refusing member 'a.csv': compression method 12 (only stored and deflate are read)"),
}


@pytest.mark.parametrize("case", UNSAFE, ids=list(UNSAFE))
def test_unsafe_members_are_refused_before_anything_is_unpacked(case, tmp_path):
    members, message = UNSAFE[case]
    with pytest.warns(UserWarning) if case == "name twice" else contextlib.nullcontext():
        path = (encrypted if case == "encrypted" else zip_of)(tmp_path / "x.zip", members)
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(CivharmError) as caught:
        archive.extract(path, into)
    assert str(caught.value) == f"{path}: {message}"
    assert list(into.iterdir()) == []


SIZES = {
    "members": (dict(members=3), [(f"m{i}", b"x") for i in range(5)], "refusing the zip: it declares 5 members (limit 3)"),
    "member size": (dict(member_bytes=1 << 10), [("a.csv", bytes(2048))],
                    "refusing member 'a.csv': it unpacks to 2048 bytes (limit 1 KiB per member)"),
    "total size": (dict(unpacked_bytes=3 << 10), [("a.csv", bytes(2048)), ("b.csv", bytes(2048))],
                   "refusing the zip: its members unpack to 4096 bytes (limit 3 KiB in all)"),
    "table of contents": (dict(index_bytes=100), [(f"member-{i}.csv", b"x") for i in range(4)],
                          "refusing the zip: its table of contents is 232 bytes (limit 100 bytes)"),
}


@pytest.mark.parametrize("case", SIZES, ids=list(SIZES))
def test_size_limits_are_checked_from_the_table_of_contents(case, tmp_path):
    changes, members, message = SIZES[case]
    path = zip_of(tmp_path / "x.zip", members)
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(CivharmError) as caught:
        archive.extract(path, into, limits=limits(**changes))
    assert str(caught.value) == f"{path}: {message}"
    assert list(into.iterdir()) == []


def test_a_member_the_disk_cannot_take_is_a_clear_error(tmp_path):
    path = zip_of(tmp_path / "x.zip", [("n" * 300 + ".csv", b"x")])
    with pytest.raises(CivharmError) as caught:
        archive.extract(path, tmp_path)
    assert str(caught.value) == f"{path}: cannot unpack it into {tmp_path}: File name too long"
