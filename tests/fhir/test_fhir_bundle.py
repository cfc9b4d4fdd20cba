"""The outbound transaction Bundle, checked without a server: content, identifiers,
conditional creates, references, determinism, privacy, and our own check of the
required code bindings (Medplum's validator does not check them)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import pytest
from fhir.resources.R4B.bundle import Bundle

from intake import constants
from intake.fhir.bundle import (
    URGENCY_TO_PRIORITY,
    BundleError,
    BundleInput,
    build_transaction_bundle,
    bundle_json,
    full_url,
    identifier_query,
)
from support.fhir import MRN_SYSTEM, PROFILES_DIR, WALK_IN, resource_types

Intake = Callable[..., BundleInput]
BundleFor = Callable[..., dict[str, Any]]
SYSTEM = constants.IDENTIFIER_SYSTEM_INTAKE


def by_type(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def one(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    found = by_type(bundle, rtype)
    assert len(found) == 1, rtype
    return found[0]


def business_identifier(resource: dict[str, Any]) -> tuple[str, str]:
    if resource["resourceType"] == "Provenance":
        tag = resource["meta"]["tag"][0]
        return tag["system"], tag["code"]
    ident = resource["identifier"]
    ident = ident if isinstance(ident, dict) else ident[0]
    return ident["system"], ident["value"]


def walk_codings(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "system" in node and "code" in node:
            yield node
        for v in node.values():
            yield from walk_codings(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk_codings(v)


def walk_references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node["reference"]
        for v in node.values():
            yield from walk_references(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk_references(v)


def load_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PROFILES_DIR / name).read_text(encoding="utf-8"))
    return data


def code_system_concepts(url: str) -> dict[str, dict[str, Any]]:
    for path in PROFILES_DIR.glob("CodeSystem-*.json"):
        cs = json.loads(path.read_text(encoding="utf-8"))
        if cs["url"] == url:
            return {c["code"]: c for c in cs["concept"]}
    raise AssertionError(f"no CodeSystem {url} in fhir_profiles/")


def value_set_systems(url: str) -> set[str]:
    for path in PROFILES_DIR.glob("ValueSet-*.json"):
        vs = json.loads(path.read_text(encoding="utf-8"))
        if vs["url"] == url:
            inc = vs["compose"]["include"]
            assert all("concept" not in i and "filter" not in i for i in inc), "whole systems only"
            return {i["system"] for i in inc}
    raise AssertionError(f"no ValueSet {url} in fhir_profiles/")


# --- structure ----------------------------------------------------------------------------


def test_a_red_flag_walk_in_intake_has_every_resource(bundle_for: BundleFor) -> None:
    bundle = bundle_for("pub-03")  # PE_SUSPECT and DVT_SUSPECT, both red
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    assert resource_types(bundle) == [
        "Patient",
        "QuestionnaireResponse",
        "RiskAssessment",
        "Flag",
        "Flag",
        "ServiceRequest",
        "Task",
        "Provenance",
    ]
    Bundle.model_validate(bundle)


def test_only_red_flags_become_flags(bundle_for: BundleFor, case_by_id: dict[str, Any]) -> None:
    triage = case_by_id["pub-05"]["triage"]  # LIGAMENT_INSTABILITY, PERSISTENT: not red
    assert not any(f["red_flag"] for f in triage["flags"])
    bundle = bundle_for("pub-05")
    assert by_type(bundle, "Flag") == []
    assert len(one(bundle, "RiskAssessment")["prediction"]) == len(triage["flags"])


def test_identifiers_and_conditional_creates(bundle_for: BundleFor) -> None:
    bundle = bundle_for("pub-03", business_id="KI-2025-0042")
    expected = {
        "Patient": "KI-2025-0042/patient",
        "QuestionnaireResponse": "KI-2025-0042",
        "RiskAssessment": "KI-2025-0042/risk",
        "ServiceRequest": "KI-2025-0042/service-request",
        "Task": "KI-2025-0042/task",
        "Provenance": "KI-2025-0042/provenance",
    }
    seen = set()
    for entry in bundle["entry"]:
        res, req = entry["resource"], entry["request"]
        system, value = business_identifier(res)
        assert system == SYSTEM
        if res["resourceType"] == "Flag":
            assert value == f"KI-2025-0042/flag/{res['code']['coding'][0]['code']}"
        else:
            assert value == expected[res["resourceType"]]
        assert value not in seen
        seen.add(value)
        assert req["method"] == "POST" and req["url"] == res["resourceType"]
        param = "_tag" if res["resourceType"] == "Provenance" else "identifier"
        assert unquote(req["ifNoneExist"]) == f"{param}={SYSTEM}|{value}"
        assert entry["fullUrl"] == full_url(SYSTEM, value)
        assert "id" not in res


def test_references_stay_inside_the_bundle(bundle_for: BundleFor) -> None:
    bundle = bundle_for("pub-03")
    urls = {e["fullUrl"] for e in bundle["entry"]}
    assert len(urls) == len(bundle["entry"])
    for entry in bundle["entry"]:
        for ref in walk_references(entry["resource"]):
            assert ref in urls or ref == "#plugin", ref
    qr_url = bundle["entry"][1]["fullUrl"]
    ra = one(bundle, "RiskAssessment")
    ra_url = bundle["entry"][2]["fullUrl"]
    assert ra["basis"] == [{"reference": qr_url}]
    assert one(bundle, "ServiceRequest")["reasonReference"] == [{"reference": ra_url}]
    assert one(bundle, "Task")["focus"] == {"reference": ra_url}
    prov = one(bundle, "Provenance")
    assert {t["reference"] for t in prov["target"]} == urls - {bundle["entry"][-1]["fullUrl"]}


def test_identifier_query_escapes_and_encodes() -> None:
    assert identifier_query("urn:x", "A/1") == "identifier=urn:x|A/1"
    query = identifier_query("https://h/p q", "a,b|c d")
    assert " " not in query and query.count("|") == 1
    assert unquote(query) == r"identifier=https://h/p q|a\,b\|c d"
    assert unquote(identifier_query("urn:x", "a,b", param="_tag")) == r"_tag=urn:x|a\,b"


# --- content ------------------------------------------------------------------------------


def test_risk_assessment_method_basis_and_predictions(
    bundle_for: BundleFor, case_by_id: dict[str, Any]
) -> None:
    triage = case_by_id["pub-03"]["triage"]
    ra = one(bundle_for("pub-03"), "RiskAssessment")
    assert ra["status"] == "final"
    assert ra["method"]["coding"] == [
        {"system": constants.CS_RULESET, "code": constants.RULESET_ID, "version": "1.0.0"}
    ]
    assert ra["method"]["text"] == triage["ruleset"] == "posterior-knee@1.0.0"
    assert [p["outcome"]["coding"][0]["code"] for p in ra["prediction"]] == [
        f["code"] for f in triage["flags"]
    ]
    for pred, flag in zip(ra["prediction"], triage["flags"], strict=True):
        assert pred["outcome"]["coding"][0]["system"] == constants.CS_FLAG
        assert pred["outcome"]["coding"][0]["display"] == flag["label"]["ja"]
        risk = pred["qualitativeRisk"]["coding"][0]
        assert risk["system"] == constants.CS_RISK_PROBABILITY
        assert risk["code"] == {"emergency": "high", "same_day": "high", "soon": "moderate"}.get(
            flag["urgency"], "low"
        )
        urgency = pred["extension"][0]
        assert urgency["url"] == constants.EXT_TRIAGE_URGENCY
        assert urgency["valueCoding"]["code"] == flag["urgency"]
        assert "probability" not in pred  # no invented numbers


def test_rationale_lists_every_evidence_answer(
    bundle_for: BundleFor, cases: list[dict[str, Any]]
) -> None:
    for case in cases:
        ra = one(bundle_for(case["id"]), "RiskAssessment")
        for pred, flag in zip(ra.get("prediction", []), case["triage"]["flags"], strict=True):
            text = pred["rationale"]
            assert text.startswith("根拠となった回答:")
            assert "Answers that fired this flag:" in text
            for ev in flag["evidence"]:
                assert f"[{ev['linkId']}]" in text, (case["id"], flag["code"], ev)


def test_rationale_is_readable(bundle_for: BundleFor) -> None:
    ra = one(bundle_for("pub-03"), "RiskAssessment")
    pe = ra["prediction"][0]
    assert pe["outcome"]["coding"][0]["code"] == "PE_SUSPECT"
    assert (
        "急な息切れ・胸の痛み・血の混じった痰・気を失いそうになった [chest_symptoms]: はい"
        in pe["rationale"]
    )
    assert "[chest_symptoms]: yes" in pe["rationale"]


def test_wells_is_reported_as_partial(bundle_for: BundleFor, case_by_id: dict[str, Any]) -> None:
    wells = case_by_id["pub-02"]["triage"]["wells"]
    assert wells["exam_missing"] is True
    note = one(bundle_for("pub-02"), "RiskAssessment")["note"][0]["text"]
    assert f"Wells score (two-level): {wells['score']}, DVT likely" in note
    assert "partial: examination items not entered" in note


def test_self_care_advice_is_the_mitigation(
    bundle_for: BundleFor, case_by_id: dict[str, Any]
) -> None:
    advice = case_by_id["pub-01"]["triage"]["advice"]
    ra = one(bundle_for("pub-01"), "RiskAssessment")
    assert advice["ja"][0] in ra["mitigation"] and advice["en"][0] in ra["mitigation"]
    assert "mitigation" not in one(bundle_for("pub-03"), "RiskAssessment")


@pytest.mark.parametrize("urgency", sorted(URGENCY_TO_PRIORITY))
def test_priority_follows_the_urgency(intake: Intake, urgency: str) -> None:
    inp = intake("pub-05")
    triage = replace(inp.triage, urgency=urgency)
    bundle = build_transaction_bundle(replace(inp, triage=triage))
    expected = {
        "emergency": "stat",
        "same_day": "asap",
        "soon": "urgent",
        "routine": "routine",
        "self_care": "routine",
    }[urgency]
    assert one(bundle, "ServiceRequest")["priority"] == expected
    assert one(bundle, "Task")["priority"] == expected
    assert one(bundle, "ServiceRequest")["extension"][0]["valueCoding"]["code"] == urgency


def test_priority_table_agrees_with_the_urgency_code_system() -> None:
    concepts = code_system_concepts(constants.CS_URGENCY)
    from_cs = {
        code: next(p["valueCode"] for p in c["property"] if p["code"] == "requestPriority")
        for code, c in concepts.items()
    }
    assert from_cs == dict(URGENCY_TO_PRIORITY)


def test_flag_service_request_and_task(bundle_for: BundleFor, case_by_id: dict[str, Any]) -> None:
    triage = case_by_id["pub-03"]["triage"]
    bundle = bundle_for("pub-03")
    patient_url = bundle["entry"][0]["fullUrl"]
    for flag in by_type(bundle, "Flag"):
        assert flag["status"] == "active"
        assert flag["category"][0]["coding"][0]["code"] == "clinical"
        assert flag["subject"] == {"reference": patient_url}
        assert flag["period"]["start"] == "2025-01-15T09:30:02.250000+09:00"
    sr = one(bundle, "ServiceRequest")
    assert (sr["status"], sr["intent"]) == ("active", "proposal")
    assert sr["performerType"]["coding"][0] == {
        **sr["performerType"]["coding"][0],
        "system": constants.CS_DEPARTMENT,
        "code": triage["department"],
        "display": "救急",
    }
    task = one(bundle, "Task")
    assert (task["status"], task["intent"]) == ("requested", "order")
    assert task["code"]["coding"][0]["code"] == constants.TASK_CODE_REVIEW
    assert task["for"] == {"reference": patient_url}
    assert "not a diagnosis" in task["description"] and "診断ではありません" in task["description"]


def test_provenance_names_the_plugin_and_rule_set(bundle_for: BundleFor) -> None:
    prov = one(bundle_for("pub-03"), "Provenance")
    device = prov["contained"][0]
    assert device["resourceType"] == "Device"
    assert [v["value"] for v in device["version"]] == ["0.1.0", "posterior-knee@1.0.0"]
    agent = prov["agent"][0]
    assert agent["who"]["reference"] == f"#{device['id']}"
    assert agent["type"]["coding"][0]["code"] == "author"
    assert prov["activity"]["coding"][0]["code"] == "CREATE"
    assert prov["recorded"] == "2025-01-15T09:30:02.250000+09:00"
    assert prov["occurredPeriod"] == {
        "start": "2025-01-15T09:30:00+09:00",
        "end": "2025-01-15T09:30:02.250000+09:00",
    }


def test_every_resource_claims_its_profile(bundle_for: BundleFor) -> None:
    expected = {
        "Patient": constants.PROFILE_PATIENT,
        "QuestionnaireResponse": constants.PROFILE_QUESTIONNAIRE_RESPONSE,
        "RiskAssessment": constants.PROFILE_RISK_ASSESSMENT,
        "Flag": constants.PROFILE_FLAG,
        "ServiceRequest": constants.PROFILE_SERVICE_REQUEST,
        "Task": constants.PROFILE_TASK,
        "Provenance": constants.PROFILE_PROVENANCE,
    }
    for entry in bundle_for("pub-03")["entry"]:
        res = entry["resource"]
        assert res["meta"]["profile"] == [expected[res["resourceType"]]]


# --- the patient --------------------------------------------------------------------------


def test_walk_in_patient_carries_the_collected_demographics(bundle_for: BundleFor) -> None:
    bundle = bundle_for("pub-03", patient="walk-in")
    patient = one(bundle, "Patient")
    kanji, kana = patient["name"]
    assert kanji["extension"][0] == {"url": constants.EXT_EN_REPRESENTATION, "valueCode": "IDE"}
    assert (kanji["family"], kanji["given"]) == (WALK_IN["family"], [WALK_IN["given"]])
    assert kana["extension"][0]["valueCode"] == "SYL"
    assert (kana["family"], kana["given"]) == (WALK_IN["family_kana"], [WALK_IN["given_kana"]])
    assert patient["birthDate"] == "1961-04-01" and patient["gender"] == "female"
    assert set(patient) == {"resourceType", "meta", "identifier", "name", "gender", "birthDate"}
    for rtype in ("QuestionnaireResponse", "RiskAssessment", "Flag", "ServiceRequest"):
        assert by_type(bundle, rtype)[0]["subject"] == {"reference": bundle["entry"][0]["fullUrl"]}


def test_walk_in_without_demographics_gets_an_identifier_only_patient(intake: Intake) -> None:
    bundle = build_transaction_bundle(intake("pub-03", patient_demographics=None))
    assert set(one(bundle, "Patient")) == {"resourceType", "meta", "identifier"}


def test_record_number_is_a_conditional_reference(bundle_for: BundleFor) -> None:
    # Demographics given as well are not sent: the record system has them.
    bundle = bundle_for("pub-03", patient="mrn", mrn="00 12/3", patient_demographics=dict(WALK_IN))
    assert "Patient" not in resource_types(bundle)
    ref = {"reference": f"Patient?identifier={MRN_SYSTEM}|00%2012/3"}
    for rtype in ("QuestionnaireResponse", "RiskAssessment", "Flag", "ServiceRequest"):
        assert by_type(bundle, rtype)[0]["subject"] == ref
    assert one(bundle, "Task")["for"] == ref
    text = bundle_json(bundle).decode()
    assert WALK_IN["family"] not in text and WALK_IN["given_kana"] not in text


def test_record_number_with_create_if_missing(bundle_for: BundleFor) -> None:
    bundle = bundle_for("pub-03", patient="mrn-create")
    entry = bundle["entry"][0]
    assert entry["resource"] == {
        "resourceType": "Patient",
        "identifier": [{"system": MRN_SYSTEM, "value": "0012345"}],
    }
    assert entry["request"]["ifNoneExist"] == f"identifier={MRN_SYSTEM}|0012345"
    assert one(bundle, "RiskAssessment")["subject"] == {"reference": entry["fullUrl"]}
    # The patient may be the record system's own: the Provenance does not claim it.
    prov = one(bundle, "Provenance")
    assert {"reference": entry["fullUrl"]} not in prov["target"]


# --- determinism and privacy ----------------------------------------------------------------


def test_building_twice_gives_identical_bytes(intake: Intake) -> None:
    inp = intake("pub-03")
    first = bundle_json(build_transaction_bundle(inp))
    again = bundle_json(build_transaction_bundle(copy.deepcopy(inp)))
    assert first == again
    assert json.loads(first) == build_transaction_bundle(inp)


def test_different_intakes_never_share_full_urls(bundle_for: BundleFor) -> None:
    a = {e["fullUrl"] for e in bundle_for("pub-03", business_id="KI-A")["entry"]}
    b = {e["fullUrl"] for e in bundle_for("pub-03", business_id="KI-B")["entry"]}
    assert not a & b


def test_no_internal_id_or_narrative_is_sent(intake: Intake) -> None:
    inp = intake("pub-03")
    text = bundle_json(build_transaction_bundle(inp)).decode()
    assert inp.intake_id not in text
    assert '"text":{"status"' not in text and '"div"' not in text


def test_questionnaire_response_keeps_the_answers_and_gets_our_identifier(intake: Intake) -> None:
    inp = intake("pub-03")
    given = {
        **inp.questionnaire_response,
        "id": "local-1",
        "identifier": {"system": "urn:other", "value": "x"},
    }
    qr = one(
        build_transaction_bundle(replace(inp, questionnaire_response=given)),
        "QuestionnaireResponse",
    )
    assert qr["identifier"] == {"system": SYSTEM, "value": inp.business_id}
    assert "id" not in qr
    assert qr["item"] == inp.questionnaire_response["item"]
    assert qr["questionnaire"] == f"{constants.QUESTIONNAIRE_URL}|{constants.QUESTIONNAIRE_VERSION}"


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"received_at": datetime(2025, 1, 1, 9, 0)}, "timezone-aware"),
        ({"business_id": "KI|1"}, "business_id"),
        ({"business_id": ""}, "business_id"),
        ({"patient_record_number": "1", "record_number_system": None}, "record_number_system"),
        ({"patient_demographics": {"sex": "Z"}}, "sex"),
        ({"patient_demographics": {"birth_date": "01/02/1960"}}, "birth_date"),
        ({"patient_demographics": {"address": "x"}}, "unknown demographics"),
    ],
)
def test_bad_input_is_refused_without_echoing_values(
    intake: Intake, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(BundleError, match=message) as err:
        build_transaction_bundle(replace(intake("pub-03"), **change))
    assert "01/02/1960" not in str(err.value)


def test_unknown_urgency_is_refused(intake: Intake) -> None:
    inp = intake("pub-03")
    with pytest.raises(BundleError, match="urgency"):
        build_transaction_bundle(replace(inp, triage=replace(inp.triage, urgency="later")))


def test_no_flags_gives_an_assessment_without_predictions(intake: Intake) -> None:
    inp = intake("pub-05")
    triage = replace(inp.triage, flags=(), urgency="routine", department="orthopedics")
    bundle = build_transaction_bundle(replace(inp, triage=triage))
    assert "prediction" not in one(bundle, "RiskAssessment")
    assert one(bundle, "ServiceRequest")["priority"] == "routine"


# --- required bindings (not checked by Medplum 4.5.2) ---------------------------------------------

_BOUND = {
    constants.CS_FLAG: constants.VS_FLAG,
    constants.CS_URGENCY: constants.VS_URGENCY,
    constants.CS_DEPARTMENT: constants.VS_DEPARTMENT,
}


def test_every_own_code_is_in_its_code_system_and_value_set(
    bundle_for: BundleFor, cases: list[dict[str, Any]]
) -> None:
    concepts = {system: code_system_concepts(system) for system in _BOUND}
    for system, vs in _BOUND.items():
        assert system in value_set_systems(vs)
    checked = 0
    for case in cases:
        for patient in ("walk-in", "mrn"):
            for entry in bundle_for(case["id"], patient=patient)["entry"]:
                for coding in walk_codings(entry["resource"]):
                    if coding["system"] in concepts:
                        concept = concepts[coding["system"]][coding["code"]]  # KeyError: not in CS
                        assert coding["display"] == concept["display"]
                        checked += 1
    assert checked > 100


def test_fhir_required_bindings_hold(bundle_for: BundleFor, cases: list[dict[str, Any]]) -> None:
    allowed = {
        "ServiceRequest.priority": {"routine", "urgent", "asap", "stat"},
        "Task.priority": {"routine", "urgent", "asap", "stat"},
        "risk": {"negligible", "low", "moderate", "high", "certain"},
    }
    for case in cases:
        bundle = bundle_for(case["id"])
        assert one(bundle, "ServiceRequest")["priority"] in allowed["ServiceRequest.priority"]
        assert one(bundle, "Task")["priority"] in allowed["Task.priority"]
        for pred in one(bundle, "RiskAssessment").get("prediction", []):
            assert pred["qualitativeRisk"]["coding"][0]["code"] in allowed["risk"]
