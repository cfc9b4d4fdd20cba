"""The profiles (StructureDefinitions) and example instances in fhir_profiles/.

The examples are golden files: they must equal what the builder makes today.
After an intended change, regenerate them with
``INTAKE_TEST_UPDATE_FHIR_EXAMPLES=1 pytest tests/fhir/test_fhir_profiles.py`` and
review the diff.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.structuredefinition import StructureDefinition

from intake import constants
from intake.fhir.bundle import ReviewState, build_transaction_bundle, bundle_json
from support.fhir import JST, MRN_SYSTEM, PROFILES_DIR, FhirTestServer, make_input

EXAMPLES = PROFILES_DIR / "examples"
SD_FILES = sorted(PROFILES_DIR.glob("StructureDefinition-*.json"))

# The write-back example: the red-flag example's intake after a practitioner
# acknowledged PE_SUSPECT, sent the patient to cardiology and marked it reviewed.
EXAMPLE_REVIEW = ReviewState(
    version=3,
    updated_at=datetime(2025, 1, 15, 9, 52, tzinfo=JST),
    acknowledged={"PE_SUSPECT": datetime(2025, 1, 15, 9, 41, tzinfo=JST)},
    department="cardiology",
    department_reason="胸部症状の精査を優先するため",
    reviewed_at=datetime(2025, 1, 15, 9, 52, tzinfo=JST),
)

# (file, case, patient mode, business id, review state or None)
EXAMPLE_SPECS = [
    ("Bundle-intake-red-flag.json", "pub-03", "mrn", "KI-EXAMPLE-0001", None),
    ("Bundle-intake-walk-in.json", "pub-05", "walk-in", "KI-EXAMPLE-0002", None),
    ("Bundle-intake-writeback.json", "pub-03", "mrn", "KI-EXAMPLE-0001", EXAMPLE_REVIEW),
]


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def example_bundle(
    case: dict[str, Any], patient: str, business_id: str, review: ReviewState | None = None
) -> dict[str, Any]:
    inp = make_input(
        case,
        patient=patient,
        business_id=business_id,
        mrn="0012345",
        received_at=datetime(2025, 1, 15, 9, 30, tzinfo=JST),
        triaged_at=datetime(2025, 1, 15, 9, 30, 2, tzinfo=JST),
        review=review,
    )
    return build_transaction_bundle(inp)


def pretty(bundle: dict[str, Any]) -> str:
    return json.dumps(bundle, ensure_ascii=False, indent=1) + "\n"


def test_every_emitted_profile_has_a_structure_definition() -> None:
    urls = {load(p)["url"] for p in SD_FILES}
    assert urls == {*constants.ALL_PROFILES, constants.EXT_TRIAGE_URGENCY}


@pytest.mark.parametrize("path", SD_FILES, ids=lambda p: p.stem)
def test_structure_definitions_are_valid_constraints(path: Path) -> None:
    sd = load(path)
    StructureDefinition.model_validate(sd)
    assert path.name == f"StructureDefinition-{sd['id']}.json"
    assert sd["url"].endswith("/" + sd["id"]) and sd["version"] == "1.0.0"
    assert sd["derivation"] == "constraint" and sd["fhirVersion"] == "4.0.1"
    assert sd["baseDefinition"] == f"http://hl7.org/fhir/StructureDefinition/{sd['type']}"
    ids = [e["id"] for e in sd["differential"]["element"]]
    assert len(ids) == len(set(ids))
    assert all(i == sd["type"] or i.startswith(sd["type"] + ".") for i in ids)
    own_value_sets = {load(p)["url"] for p in PROFILES_DIR.glob("ValueSet-*.json")}
    for e in sd["differential"]["element"]:
        vs = e.get("binding", {}).get("valueSet", "")
        if vs.startswith(constants.PROFILE_FLAG.split("/StructureDefinition/")[0]):
            assert vs in own_value_sets, vs


def test_identifier_is_required_with_the_intake_system() -> None:
    for path in SD_FILES:
        sd = load(path)
        if sd["type"] in ("Extension", "Provenance"):
            continue
        text = json.dumps(sd["differential"])
        assert "https://intake-triage.org/fhir/NamingSystem/intake-id" in text, path.name


@pytest.mark.parametrize(("name", "case_id", "patient", "business_id", "review"), EXAMPLE_SPECS)
def test_examples_are_what_the_builder_makes(
    case_by_id: dict[str, dict[str, Any]],
    name: str,
    case_id: str,
    patient: str,
    business_id: str,
    review: ReviewState | None,
) -> None:
    bundle = example_bundle(case_by_id[case_id], patient, business_id, review)
    path = EXAMPLES / name
    if os.environ.get("INTAKE_TEST_UPDATE_FHIR_EXAMPLES") == "1":
        EXAMPLES.mkdir(exist_ok=True)
        path.write_text(pretty(bundle), encoding="utf-8")
    assert path.is_file(), f"{name} missing: run with INTAKE_TEST_UPDATE_FHIR_EXAMPLES=1"
    stored = load(path)
    assert stored == bundle, \
        f"{name} is stale: run with INTAKE_TEST_UPDATE_FHIR_EXAMPLES=1 and review"
    Bundle.model_validate(stored)
    assert bundle_json(stored) == bundle_json(bundle)


def test_examples_are_accepted_by_the_server(fhir_server: FhirTestServer) -> None:
    resp = fhir_server.http.post(
        f"{fhir_server.base_url}/Patient",
        timeout=10,
        json={
            "resourceType": "Patient",
            "identifier": [{"system": MRN_SYSTEM, "value": "0012345"}],
        },
    )
    assert resp.status_code == 201
    for name, *_ in EXAMPLE_SPECS:  # the write-back after the delivery it updates
        resp = fhir_server.post_bundle(load(EXAMPLES / name))
        assert resp.status_code == 200, (name, resp.text)
    [flag] = fhir_server.search(
        "Flag",
        "identifier=https://intake-triage.org/fhir/NamingSystem/intake-id|"
        "KI-EXAMPLE-0001/flag/PE_SUSPECT",
    )
    assert (flag["status"], flag["period"]["end"]) == ("inactive", "2025-01-15T09:41:00+09:00")
    assert fhir_server.search("Task", "")[0]["status"] == "completed"
