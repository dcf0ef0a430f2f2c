"""The descriptor, schemas inlined, against the official Data Package v1 and v2 JSON Schemas (vendored)."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import jsonschema
import pytest

from civharm.build import build
from conftest import REPO, build_package

PROFILES = Path(__file__).parent / "fixtures" / "profiles"
EPOCH = 1_700_000_000  # 2023-11-14T22:13:20Z


def inlined(descriptor: dict, root: Path) -> dict:
    """The descriptor as a client that resolves schema paths sees it."""
    descriptor = json.loads(json.dumps(descriptor))
    for resource in descriptor["resources"]:
        if isinstance(resource.get("schema"), str):
            resource["schema"] = json.loads((root / resource["schema"]).read_text(encoding="utf-8"))
    return descriptor


def problems(descriptor: dict, profile: str) -> list[str]:
    schema = json.loads((PROFILES / profile).read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema, format_checker=jsonschema.FormatChecker())
    return sorted(f"/{'/'.join(map(str, e.absolute_path))}: {e.message[:120]}" for e in validator.iter_errors(descriptor))


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> dict:
    """The descriptor inside a release zip of the real data recorded as released on 2026-11-26."""
    root = tmp_path_factory.mktemp("released")
    package = build_package(root / "pkg", REPO / "data")
    version = json.loads((package / "datapackage.json").read_text(encoding="utf-8"))["version"]
    (package / "releases.json").write_text(json.dumps({"releases": [{"version": version, "date": "2026-11-26"}]}), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
        build(package, root / "dist", version=version)
    with zipfile.ZipFile(root / "dist" / f"civharm-{version}.zip") as archive:
        return inlined(json.loads(archive.read("datapackage.json")), package)


@pytest.mark.parametrize("profile", ["tabular-data-package-v1.json", "data-package-v2.json"])
def test_the_committed_descriptor_passes_the_official_profile(profile):
    descriptor = json.loads((REPO / "datapackage.json").read_text(encoding="utf-8"))
    assert problems(inlined(descriptor, REPO), profile) == []


@pytest.mark.parametrize("profile", ["tabular-data-package-v1.json", "data-package-v2.json"])
def test_the_released_descriptor_passes_the_official_profile(released, profile):
    assert problems(released, profile) == []


def test_a_number_as_an_example_fails_the_v2_profile():
    """The profiles are really applied: Table Schema wants `example` as a string."""
    descriptor = inlined(json.loads((REPO / "datapackage.json").read_text(encoding="utf-8")), REPO)
    descriptor["resources"][0]["schema"]["fields"][2]["example"] = 1
    assert problems(descriptor, "data-package-v2.json") == [
        "/resources/0/schema/fields/2: " + problems(descriptor, "data-package-v2.json")[0].split(": ", 1)[1]]


def test_the_released_descriptor_has_what_users_expect(released):
    """id, keywords, contributors, created = the release date (as CITATION.cff), a title and description per resource."""
    assert released["id"] and released["keywords"] and released["contributors"][0]["title"]
    assert released["created"] == "2026-11-26T00:00:00Z"
    for resource in released["resources"]:
        assert resource["title"] and resource["description"] == resource["schema"]["description"], resource["name"]
