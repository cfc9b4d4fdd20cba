"""The write-back form of the transaction Bundle: practitioners' changes after the first
delivery (acknowledged flags, a changed department, a re-triage from examination
findings, "reviewed") sent as conditional updates of the intake's whole current state.

The builder is checked on its own, then against the real test FHIR server (Medplum's
engine, tests/fhir_server/): after every write-back the server holds exactly one
resource per business identifier, equal to the state sent, however often and however
concurrently it was sent, with or without the first delivery."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import pytest
import requests
from fhir.resources.R4B.bundle import Bundle

from intake import constants
from intake.clinical import (
    TriageResult,
    build_questionnaire_response,
    evaluate,
    parse_simple_answers,
)
from intake.delivery.auth import NoAuth
from intake.delivery.base import Outcome
from intake.delivery.fhir_rest import FhirRestAdapter
from intake.fhir.bundle import (
    BundleError,
    BundleInput,
    ReviewState,
    build_transaction_bundle,
    bundle_json,
    full_url,
)
from support.fhir import JST, WALK_IN, FhirTestServer, entry_condition, make_input

Intake = Callable[..., BundleInput]
Cases = dict[str, dict[str, Any]]
SYSTEM = constants.IDENTIFIER_SYSTEM_INTAKE
BID = "KI-pub-03"

# make_input's clock: received 09:30:00, triaged 09:30:02.25 (JST).
TRIAGED = datetime(2025, 1, 15, 9, 30, 2, 250000, tzinfo=JST)
ACK = datetime(2025, 1, 15, 9, 41, tzinfo=JST)
LATER = datetime(2025, 1, 15, 9, 47, tzinfo=JST)
REVIEWED = datetime(2025, 1, 15, 9, 55, tzinfo=JST)
REASON = "胸部症状の精査を優先するため"


def iso(value: datetime) -> str:
    return value.isoformat()


def review(**kw: Any) -> ReviewState:
    fields: dict[str, Any] = {"version": 1, "updated_at": ACK, **kw}
    return ReviewState(**fields)


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def one(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    [found] = resources(bundle, rtype)
    return found


def flag_code(flag: dict[str, Any]) -> str:
    code: str = flag["code"]["coding"][0]["code"]
    return code


def flags_by_code(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {flag_code(f): f for f in resources(bundle, "Flag")}


def adapter(server: FhirTestServer, session: requests.Session) -> FhirRestAdapter:
    return FhirRestAdapter(server.base_url, NoAuth(), session, timeout=10.0)


def apply(server: FhirTestServer, bundle: dict[str, Any]) -> list[str]:
    """Post a bundle; it must be accepted. Returns the entries' response statuses."""
    resp = server.post_bundle(bundle)
    assert resp.status_code == 200, resp.text
    return [e["response"]["status"] for e in resp.json()["entry"]]


def normalised(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource without what the server adds (id, version, time) and with every
    reference blanked (the server rewrites urn:uuid and conditional references)."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: "*" if k == "reference" and isinstance(v, str) else walk(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out = copy.deepcopy(resource)
    out.pop("id", None)
    meta = out.get("meta") or {}
    meta.pop("versionId", None)
    meta.pop("lastUpdated", None)
    if "meta" in out and not meta:
        del out["meta"]
    result: dict[str, Any] = walk(out)
    return result


def on_server(server: FhirTestServer, entry: dict[str, Any]) -> list[dict[str, Any]]:
    rtype, condition = entry_condition(entry)
    return server.search(rtype, condition)


def assert_server_holds(server: FhirTestServer, bundle: dict[str, Any]) -> None:
    """One resource per entry's identifier, and it is the one this bundle sent."""
    for entry in bundle["entry"]:
        found = on_server(server, entry)
        assert len(found) == 1, (entry_condition(entry), len(found))
        assert normalised(found[0]) == normalised(entry["resource"]), entry_condition(entry)


def server_flags(server: FhirTestServer) -> dict[str, dict[str, Any]]:
    flags = server.search("Flag", "")
    codes = [flag_code(f) for f in flags]
    assert len(codes) == len(set(codes)), codes  # exactly one Flag per code
    return {flag_code(f): f for f in flags}


# --- the builder -------------------------------------------------------------------------


def test_owned_resources_become_conditional_updates(intake: Intake) -> None:
    inp = intake("pub-03")
    first = build_transaction_bundle(inp)
    wb = build_transaction_bundle(replace(inp, review=review(acknowledged={"PE_SUSPECT": ACK})))
    assert [e["resource"]["resourceType"] for e in wb["entry"]] == [
        e["resource"]["resourceType"] for e in first["entry"]
    ]
    # The walk-in Patient is sent exactly as on the first delivery.
    assert wb["entry"][0] == first["entry"][0]
    for entry, before in zip(wb["entry"][1:-1], first["entry"][1:-1], strict=True):
        res, req = entry["resource"], entry["request"]
        ident = res["identifier"] if isinstance(res["identifier"], dict) else res["identifier"][0]
        assert req == {"method": "PUT", "url": req["url"]}  # no ifNoneExist
        assert unquote(req["url"]) == f"{res['resourceType']}?identifier={SYSTEM}|{ident['value']}"
        assert ident["system"] == SYSTEM
        # Same full URL as the first delivery: the references between entries agree.
        assert entry["fullUrl"] == before["fullUrl"] == full_url(SYSTEM, ident["value"])
    prov_entry = wb["entry"][-1]
    prov = prov_entry["resource"]
    tag = f"{BID}/provenance/r1-v1"
    assert prov["meta"]["tag"] == [{"system": SYSTEM, "code": tag}]
    assert prov_entry["request"]["method"] == "POST"
    assert unquote(prov_entry["request"]["ifNoneExist"]) == f"_tag={SYSTEM}|{tag}"
    assert prov_entry["fullUrl"] == full_url(SYSTEM, tag) != first["entry"][-1]["fullUrl"]
    assert prov["activity"]["coding"] == [
        {"system": constants.CS_DATA_OPERATION, "code": "UPDATE", "display": "revise"}
    ]
    # It covers what this state sets, not the patient.
    assert [t["reference"] for t in prov["target"]] == [e["fullUrl"] for e in wb["entry"][1:-1]]
    assert prov["occurredDateTime"] == prov["recorded"] == iso(ACK)
    assert "occurredPeriod" not in prov
    Bundle.model_validate(wb)


def test_record_number_patient_stays_a_conditional_reference(intake: Intake) -> None:
    inp = intake("pub-03", patient="mrn")
    wb = build_transaction_bundle(replace(inp, review=review()))
    assert "Patient" not in [e["resource"]["resourceType"] for e in wb["entry"]]
    assert one(wb, "Task")["for"]["reference"].startswith("Patient?identifier=")
    creating = replace(inp, create_patient_if_missing=True)
    created = build_transaction_bundle(replace(creating, review=review()))
    first = build_transaction_bundle(creating)
    assert created["entry"][0] == first["entry"][0]  # POST ifNoneExist on the record number


def test_acknowledged_flag_is_inactive_from_its_acknowledgement(intake: Intake) -> None:
    wb = build_transaction_bundle(
        replace(intake("pub-03"), review=review(acknowledged={"PE_SUSPECT": ACK}))
    )
    flags = flags_by_code(wb)
    assert flags["PE_SUSPECT"]["status"] == "inactive"
    assert flags["PE_SUSPECT"]["period"] == {"start": iso(TRIAGED), "end": iso(ACK)}
    assert flags["DVT_SUSPECT"]["status"] == "active"
    assert flags["DVT_SUSPECT"]["period"] == {"start": iso(TRIAGED)}
    # The finding stays in the assessment.
    ra = one(wb, "RiskAssessment")
    assert "PE_SUSPECT" in [p["outcome"]["coding"][0]["code"] for p in ra["prediction"]]
    assert ra["status"] == "final"  # same revision: not amended


def test_flag_periods_never_end_before_they_start(intake: Intake) -> None:
    """Revision 2 re-triaged at LATER; PE was acknowledged before that (at ACK)."""
    inp = replace(intake("pub-03"), revision=2, triaged_at=LATER)
    acked = review(version=2, updated_at=LATER, acknowledged={"PE_SUSPECT": ACK})
    flags = flags_by_code(build_transaction_bundle(replace(inp, review=acked)))
    # Without its history, a flag acknowledged before the re-triage fired by then.
    assert flags["PE_SUSPECT"]["period"] == {"start": iso(ACK), "end": iso(ACK)}
    assert flags["DVT_SUSPECT"]["period"] == {"start": iso(LATER)}
    # With it, both start when they first fired.
    since = {"PE_SUSPECT": TRIAGED, "DVT_SUSPECT": TRIAGED}
    flags = flags_by_code(
        build_transaction_bundle(replace(inp, review=acked, red_flag_since=since))
    )
    assert flags["PE_SUSPECT"]["period"] == {"start": iso(TRIAGED), "end": iso(ACK)}
    assert flags["DVT_SUSPECT"]["period"] == {"start": iso(TRIAGED)}


def test_withdrawn_flag_ends_at_the_new_triage_or_its_acknowledgement(intake: Intake) -> None:
    inp = replace(intake("pub-03"), revision=2, triaged_at=LATER)
    wb = build_transaction_bundle(
        replace(inp, review=review(version=2, withdrawn_flags=["ACUTE_LIMB_ISCHAEMIA"]))
    )
    withdrawn = flags_by_code(wb)["ACUTE_LIMB_ISCHAEMIA"]
    assert withdrawn["status"] == "inactive"
    assert withdrawn["period"] == {"start": "2025-01-15T09:30:00+09:00", "end": iso(LATER)}
    # Code and display from the flag CodeSystem (the current triage does not carry it).
    coding = withdrawn["code"]["coding"][0]
    assert (coding["system"], coding["code"]) == (constants.CS_FLAG, "ACUTE_LIMB_ISCHAEMIA")
    assert coding["display"] == "急性下肢虚血の疑い"
    assert withdrawn["identifier"][0]["value"] == f"{BID}/flag/ACUTE_LIMB_ISCHAEMIA"
    # Acknowledged before it was withdrawn: it ended then.
    acked = review(
        version=2,
        withdrawn_flags=["ACUTE_LIMB_ISCHAEMIA"],
        acknowledged={"ACUTE_LIMB_ISCHAEMIA": ACK},
    )
    since = {"ACUTE_LIMB_ISCHAEMIA": TRIAGED}
    flag = flags_by_code(build_transaction_bundle(replace(inp, review=acked, red_flag_since=since)))
    assert flag["ACUTE_LIMB_ISCHAEMIA"]["period"] == {"start": iso(TRIAGED), "end": iso(ACK)}


def test_department_change_carries_the_reason(intake: Intake) -> None:
    inp = intake("pub-03")  # emergency: stat, department emergency
    sr = one(
        build_transaction_bundle(
            replace(inp, review=review(department="cardiology", department_reason=REASON))
        ),
        "ServiceRequest",
    )
    assert sr["performerType"]["coding"][0]["code"] == "cardiology"
    assert sr["performerType"]["coding"][0]["display"] == "循環器内科"
    assert sr["note"] == [
        {"text": f"受診先の変更理由 / Reason for the department change:\n{REASON}"}
    ]
    assert sr["priority"] == "stat"  # still the urgency's
    assert sr["extension"][0]["valueCoding"]["code"] == "emergency"
    no_reason = one(
        build_transaction_bundle(replace(inp, review=review(department="cardiology"))),
        "ServiceRequest",
    )
    assert no_reason["note"][0]["text"].endswith("(記載なし / not given)")
    unchanged = one(build_transaction_bundle(replace(inp, review=review())), "ServiceRequest")
    assert unchanged["performerType"]["coding"][0]["code"] == "emergency"
    assert "note" not in unchanged


@pytest.mark.parametrize(
    ("state", "status", "modified", "ended"),
    [
        (ReviewState(version=0, updated_at=TRIAGED), "requested", TRIAGED, None),
        (review(version=2, updated_at=LATER), "in-progress", LATER, None),
        (
            review(version=3, updated_at=REVIEWED, reviewed_at=REVIEWED),
            "completed",
            REVIEWED,
            REVIEWED,
        ),
    ],
    ids=["no-action", "acted", "reviewed"],
)
def test_task_follows_the_review(
    intake: Intake, state: ReviewState, status: str, modified: datetime, ended: datetime | None
) -> None:
    task = one(build_transaction_bundle(replace(intake("pub-03"), review=state)), "Task")
    assert task["status"] == status
    assert task["lastModified"] == iso(modified)
    assert task.get("executionPeriod") == ({"end": iso(ended)} if ended else None)
    assert task["authoredOn"] == iso(TRIAGED)


def test_re_triage_amends_and_last_modified_is_never_before_authored(intake: Intake) -> None:
    # Exam findings saved at ACK, re-triaged a moment later (LATER).
    inp = replace(intake("pub-03"), revision=2, triaged_at=LATER, review=review(version=1))
    wb = build_transaction_bundle(inp)
    assert one(wb, "RiskAssessment")["status"] == "amended"
    assert one(wb, "QuestionnaireResponse")["status"] == "amended"
    task = one(wb, "Task")
    assert task["authoredOn"] == task["lastModified"] == iso(LATER)
    assert one(wb, "Provenance")["meta"]["tag"][0]["code"] == f"{BID}/provenance/r2-v1"
    # A re-triage without any review action is a write-back too.
    plain = build_transaction_bundle(replace(inp, review=None))
    assert {e["request"]["method"] for e in plain["entry"][1:-1]} == {"PUT"}
    assert one(plain, "Task")["status"] == "requested" and "lastModified" not in one(plain, "Task")
    assert one(plain, "Provenance")["meta"]["tag"][0]["code"] == f"{BID}/provenance/r2-v0"


def test_write_back_is_deterministic(intake: Intake) -> None:
    inp = replace(
        intake("pub-03"),
        revision=2,
        triaged_at=LATER,
        review=review(
            version=4,
            updated_at=REVIEWED,
            acknowledged={"PE_SUSPECT": ACK, "ACUTE_LIMB_ISCHAEMIA": ACK},
            withdrawn_flags=["ACUTE_LIMB_ISCHAEMIA", "SEPTIC_ARTHRITIS"],
            department="cardiology",
            department_reason=REASON,
            reviewed_at=REVIEWED,
        ),
    )
    first = bundle_json(build_transaction_bundle(inp))
    assert first == bundle_json(build_transaction_bundle(copy.deepcopy(inp)))
    assert inp.review is not None
    shuffled = replace(
        inp.review,
        acknowledged={"ACUTE_LIMB_ISCHAEMIA": ACK, "PE_SUSPECT": ACK},
        withdrawn_flags=("SEPTIC_ARTHRITIS", "ACUTE_LIMB_ISCHAEMIA"),
    )
    assert bundle_json(build_transaction_bundle(replace(inp, review=shuffled))) == first


def test_first_delivery_is_unchanged(intake: Intake) -> None:
    """revision 1 without a review is the first delivery: conditional creates only."""
    bundle = build_transaction_bundle(intake("pub-03"))
    assert {e["request"]["method"] for e in bundle["entry"]} == {"POST"}
    prov = one(bundle, "Provenance")
    assert prov["meta"]["tag"][0]["code"] == f"{BID}/provenance"
    assert prov["activity"]["coding"][0]["code"] == "CREATE" and "occurredPeriod" in prov


def test_nothing_but_the_state_is_sent(intake: Intake) -> None:
    inp = replace(
        intake("pub-03"), review=review(department="cardiology", department_reason=REASON)
    )
    text = bundle_json(build_transaction_bundle(inp)).decode()
    assert inp.intake_id not in text
    assert text.count(REASON) == 1  # in the ServiceRequest's note only


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"revision": 0}, "revision"),
        ({"review": ReviewState(version=-1, updated_at=ACK)}, "review.version"),
        ({"review": ReviewState(version=1, updated_at=datetime(2025, 1, 15))}, "updated_at"),
        ({"review": review(reviewed_at=datetime(2025, 1, 15))}, "reviewed_at"),
        ({"review": review(acknowledged={"PE_SUSPECT": datetime(2025, 1, 15)})}, "acknowledged"),
        ({"review": review(acknowledged={"MENISCUS": ACK})}, "MENISCUS"),
        ({"review": review(withdrawn_flags=["PE_SUSPECT"])}, "current triage"),
        ({"review": review(withdrawn_flags=["NOT_A_FLAG"])}, "flag CodeSystem"),
        ({"review": review(withdrawn_flags="PE_SUSPECT")}, "sequence"),
        ({"review": review(department="surgery")}, "department"),
        ({"red_flag_since": {"PE_SUSPECT": datetime(2025, 1, 15)}}, "red_flag_since"),
    ],
)
def test_inconsistent_review_state_is_refused(
    intake: Intake, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(BundleError, match=message):
        build_transaction_bundle(replace(intake("pub-03"), **change))


# --- against the server ----------------------------------------------------------------------


def test_acknowledging_a_flag_on_the_server(fhir_server: FhirTestServer, intake: Intake) -> None:
    inp = intake("pub-03")
    apply(fhir_server, build_transaction_bundle(inp))
    wb = build_transaction_bundle(replace(inp, review=review(acknowledged={"PE_SUSPECT": ACK})))
    statuses = apply(fhir_server, wb)
    assert statuses == ["200"] + ["200"] * 6 + ["201"]  # patient kept, 6 updated, 1 new
    assert_server_holds(fhir_server, wb)
    flags = server_flags(fhir_server)
    assert set(flags) == {"PE_SUSPECT", "DVT_SUSPECT"}
    assert flags["PE_SUSPECT"]["status"] == "inactive"
    assert flags["PE_SUSPECT"]["period"]["end"] == iso(ACK)
    assert flags["DVT_SUSPECT"]["status"] == "active"
    assert "end" not in flags["DVT_SUSPECT"]["period"]
    assert fhir_server.search("Task", "")[0]["status"] == "in-progress"
    # One Provenance per state; the write-back's names the updated resources.
    assert fhir_server.count("Provenance") == 2
    [prov] = fhir_server.search("Provenance", f"_tag={SYSTEM}|{BID}/provenance/r1-v1")
    ids = {
        f"{r['resourceType']}/{r['id']}"
        for t in ("QuestionnaireResponse", "Flag", "Task")
        for r in fhir_server.search(t, "")
    }
    assert ids <= {t["reference"] for t in prov["target"]}
    for rtype in ("Patient", "QuestionnaireResponse", "RiskAssessment", "ServiceRequest", "Task"):
        assert fhir_server.count(rtype) == 1, rtype


def test_department_change_on_the_server(fhir_server: FhirTestServer, intake: Intake) -> None:
    inp = intake("pub-03")
    apply(fhir_server, build_transaction_bundle(inp))
    wb = build_transaction_bundle(
        replace(inp, review=review(department="cardiology", department_reason=REASON))
    )
    apply(fhir_server, wb)
    assert_server_holds(fhir_server, wb)
    [sr] = fhir_server.search("ServiceRequest", "")
    assert sr["performerType"]["coding"][0]["code"] == "cardiology"
    assert REASON in sr["note"][0]["text"] and sr["priority"] == "stat"
    assert fhir_server.count("ServiceRequest") == 1


def retriage(cases: Cases) -> tuple[BundleInput, BundleInput]:
    """pub-04 (HAEMARTHROSIS) before and after a practitioner finds patella tenderness.

    The examination items of the rule set only add flags, so no shared case loses a
    red flag on re-triage; revision 1 here also carries pub-02's DVT_SUSPECT (its
    real result, evidence and all) so that revision 2 withdraws one flag as it fires
    another (FRACTURE_XRAY, from the Ottawa rule)."""
    case = cases["pub-04"]
    dvt = next(f for f in cases["pub-02"]["triage"]["flags"] if f["code"] == "DVT_SUSPECT")
    first = make_input(case, triage=TriageResult.from_dict(
        {**case["triage"], "flags": [*case["triage"]["flags"], dvt]}))
    exam = parse_simple_answers({**case["answers"], "staff_patella_tenderness": True})
    second = replace(
        first,
        questionnaire_response=build_questionnaire_response(exam),
        triage=evaluate(exam),
        revision=2,
        triaged_at=LATER,
        review=review(version=1, updated_at=LATER, withdrawn_flags=["DVT_SUSPECT"]),
        red_flag_since={"HAEMARTHROSIS": TRIAGED, "DVT_SUSPECT": TRIAGED, "FRACTURE_XRAY": LATER},
    )
    return first, second


def item_answers(items: list[dict[str, Any]], link_id: str) -> Any:
    for item in items:
        if item["linkId"] == link_id:
            return item.get("answer")
        found = item_answers(item.get("item", []), link_id)
        if found is not None:
            return found
    return None


def test_re_triage_on_the_server(fhir_server: FhirTestServer, case_by_id: Cases) -> None:
    first, second = retriage(case_by_id)
    red = {f.code for f in second.triage.flags if f.red_flag}
    assert red == {"HAEMARTHROSIS", "FRACTURE_XRAY"}  # what the rule set gives
    apply(fhir_server, build_transaction_bundle(first))
    assert set(server_flags(fhir_server)) == {"HAEMARTHROSIS", "DVT_SUSPECT"}

    wb = build_transaction_bundle(second)
    statuses = apply(fhir_server, wb)
    assert_server_holds(fhir_server, wb)
    flags = server_flags(fhir_server)
    assert set(flags) == {"HAEMARTHROSIS", "DVT_SUSPECT", "FRACTURE_XRAY"}
    assert flags["FRACTURE_XRAY"]["status"] == "active"
    assert flags["FRACTURE_XRAY"]["period"] == {"start": iso(LATER)}
    assert flags["DVT_SUSPECT"]["status"] == "inactive"
    assert flags["DVT_SUSPECT"]["period"] == {"start": iso(TRIAGED), "end": iso(LATER)}
    assert flags["HAEMARTHROSIS"]["status"] == "active"
    # The new flag was created, everything else updated.
    by_url = {e["fullUrl"]: s for e, s in zip(wb["entry"], statuses, strict=True)}
    new_flag = next(
        e
        for e in wb["entry"]
        if e["resource"].get("code", {}).get("coding", [{}])[0].get("code") == "FRACTURE_XRAY"
    )
    assert by_url.pop(new_flag["fullUrl"]) == "201"
    assert by_url.pop(wb["entry"][-1]["fullUrl"]) == "201"  # this state's Provenance
    assert set(by_url.values()) == {"200"}

    [qr] = fhir_server.search("QuestionnaireResponse", "")
    assert qr["status"] == "amended"
    assert item_answers(qr["item"], "staff_patella_tenderness") == [{"valueBoolean": True}]
    [ra] = fhir_server.search("RiskAssessment", "")
    assert ra["status"] == "amended" and ra["occurrenceDateTime"] == iso(LATER)
    assert "FRACTURE_XRAY" in {p["outcome"]["coding"][0]["code"] for p in ra["prediction"]}
    for rtype in ("QuestionnaireResponse", "RiskAssessment", "ServiceRequest", "Task", "Patient"):
        assert fhir_server.count(rtype) == 1, rtype
    assert fhir_server.count("Provenance") == 2


def test_task_through_a_review_on_the_server(fhir_server: FhirTestServer, intake: Intake) -> None:
    inp = intake("pub-03")
    apply(fhir_server, build_transaction_bundle(inp))
    assert fhir_server.search("Task", "")[0]["status"] == "requested"
    apply(
        fhir_server,
        build_transaction_bundle(replace(inp, review=review(acknowledged={"PE_SUSPECT": ACK}))),
    )
    assert fhir_server.search("Task", "")[0]["status"] == "in-progress"
    final = build_transaction_bundle(
        replace(
            inp,
            review=review(
                version=2,
                updated_at=REVIEWED,
                acknowledged={"PE_SUSPECT": ACK},
                reviewed_at=REVIEWED,
            ),
        )
    )
    apply(fhir_server, final)
    assert_server_holds(fhir_server, final)
    [task] = fhir_server.search("Task", "")
    assert task["status"] == "completed" and task["executionPeriod"]["end"] == iso(REVIEWED)
    assert task["lastModified"] == iso(REVIEWED)
    assert fhir_server.count("Task") == 1 and fhir_server.count("Provenance") == 3


def full_review(inp: BundleInput, earlier: int = 0) -> BundleInput:
    """Every kind of action at once, after ``earlier`` other actions: each red flag
    acknowledged, the department changed with a reason, the intake marked reviewed."""
    red = {f.code: ACK for f in inp.triage.flags if f.red_flag}
    return replace(
        inp,
        review=review(
            version=earlier + len(red) + 2,
            updated_at=REVIEWED,
            acknowledged=red,
            department="staff_review",
            department_reason=REASON,
            reviewed_at=REVIEWED,
        ),
    )


def test_the_same_write_back_five_times_in_a_row(
    fhir_server: FhirTestServer, intake: Intake, http_session: requests.Session
) -> None:
    inp = intake("pub-03")
    rest = adapter(fhir_server, http_session)
    assert (
        rest.deliver(build_transaction_bundle(inp), business_id=BID, after_ambiguous=False).outcome
        is Outcome.DELIVERED
    )
    wb = build_transaction_bundle(full_review(inp))
    results = [rest.deliver(wb, business_id=BID, after_ambiguous=False) for _ in range(5)]
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 5
    assert results[0].extra["locations"] == results[4].extra["locations"]
    assert_server_holds(fhir_server, wb)
    assert fhir_server.count("Flag") == 2 and fhir_server.count("Provenance") == 2
    assert all(f["status"] == "inactive" for f in server_flags(fhir_server).values())


@pytest.mark.parametrize("patient", ["walk-in", "mrn-create"])
def test_the_same_write_back_five_times_at_once(
    fhir_server: FhirTestServer, intake: Intake, patient: str
) -> None:
    """Five workers (threads, each its own connection) send the same state together."""
    inp = intake("pub-03", patient=patient)
    apply(fhir_server, build_transaction_bundle(inp))
    wb = build_transaction_bundle(full_review(inp))
    barrier = threading.Barrier(5)
    outcomes: list[Outcome] = []

    def worker() -> None:
        with requests.Session() as s:
            rest = adapter(fhir_server, s)
            barrier.wait()
            outcomes.append(rest.deliver(wb, business_id=BID, after_ambiguous=False).outcome)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes == [Outcome.DELIVERED] * 5
    assert_server_holds(fhir_server, wb)
    for rtype, n in [
        ("Patient", 1),
        ("QuestionnaireResponse", 1),
        ("RiskAssessment", 1),
        ("Flag", 2),
        ("ServiceRequest", 1),
        ("Task", 1),
        ("Provenance", 2),
    ]:
        assert fhir_server.count(rtype) == n, rtype


def test_write_back_without_a_first_delivery(fhir_server: FhirTestServer, intake: Intake) -> None:
    """The first delivery never landed: the write-back creates everything, once."""
    inp = full_review(intake("pub-03"))
    wb = build_transaction_bundle(inp)
    assert apply(fhir_server, wb) == ["201"] * len(wb["entry"])
    assert apply(fhir_server, wb) == ["200"] * len(wb["entry"])
    assert_server_holds(fhir_server, wb)
    assert fhir_server.count("Provenance") == 1
    # The original bundle arriving late is absorbed by its conditional creates: the
    # newer state stays.
    first = build_transaction_bundle(replace(inp, review=None))
    statuses = apply(fhir_server, first)
    assert statuses[:-1] == ["200"] * (len(first["entry"]) - 1)
    assert fhir_server.search("Task", "")[0]["status"] == "completed"
    assert fhir_server.count("Flag") == 2 and fhir_server.count("Task") == 1


CASE_IDS = [f"pub-{i:02d}" for i in range(1, 17)]


@pytest.mark.parametrize("patient", ["walk-in", "mrn-create"])
def test_every_write_back_is_valid(
    fhir_server: FhirTestServer, intake: Intake, case_by_id: Cases, patient: str
) -> None:
    """fhir.resources R4B, then the server's validator (R4 and our profiles, which
    refuses an invalid bundle with 400), for every shared case in three states."""
    for n, case_id in enumerate(CASE_IDS):
        inp = intake(case_id, patient=patient, business_id=f"KI-V{n}", mrn=f"MRN-{n}")
        red = [f.code for f in inp.triage.flags if f.red_flag]
        states = [
            review(version=1, acknowledged={c: ACK for c in red[:1]}),
            review(version=2, department="orthopedics", department_reason=REASON),
            full_review(inp, earlier=2).review,
        ]
        for state in states:
            bundle = build_transaction_bundle(replace(inp, review=state))
            Bundle.model_validate(bundle)
            apply(fhir_server, bundle)
            assert_server_holds(fhir_server, bundle)
    _, second = retriage(case_by_id)
    for inp in (replace(second, patient_demographics=dict(WALK_IN)), replace(second, review=None)):
        bundle = build_transaction_bundle(inp)
        Bundle.model_validate(bundle)
        apply(fhir_server, bundle)


# Valid R4, but not what our profiles allow: refused, naming the rule.
WRITE_BACK_VIOLATIONS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "inactive flag without an end": (
        lambda b: next(f for f in resources(b, "Flag") if f["status"] == "inactive")["period"].pop(
            "end"
        ),
        "intake-flag-1",
    ),
    "completed task without an end": (
        lambda b: one(b, "Task").pop("executionPeriod"),
        "intake-task-1",
    ),
    "provenance activity": (
        lambda b: one(b, "Provenance")["activity"]["coding"][0].update(code="DELETE"),
        "intake-prov-1",
    ),
}


@pytest.mark.parametrize("violation", sorted(WRITE_BACK_VIOLATIONS))
def test_the_server_enforces_the_write_back_rules(
    fhir_server: FhirTestServer, intake: Intake, violation: str
) -> None:
    bundle = build_transaction_bundle(full_review(intake("pub-03")))
    change, rule = WRITE_BACK_VIOLATIONS[violation]
    change(bundle)
    resp = fhir_server.post_bundle(bundle)
    assert resp.status_code == 400 and rule in resp.text
    assert fhir_server.count("Task") == 0


def test_several_matches_fail_with_412_and_change_nothing(
    fhir_server: FhirTestServer, intake: Intake, http_session: requests.Session
) -> None:
    """A conditional update must not guess which of two resources to change."""
    inp = intake("pub-03")
    first = build_transaction_bundle(inp)
    apply(fhir_server, first)
    duplicate = copy.deepcopy(
        next(
            e
            for e in first["entry"]
            if e["resource"]["resourceType"] == "Flag" and flag_code(e["resource"]) == "PE_SUSPECT"
        )
    )
    duplicate["resource"]["subject"] = {
        "reference": "Patient/" + fhir_server.search("Patient", "")[0]["id"]
    }
    resp = fhir_server.http.post(
        f"{fhir_server.base_url}/Flag", json=duplicate["resource"], timeout=10
    )
    assert resp.status_code == 201, resp.text

    result = adapter(fhir_server, http_session).deliver(
        build_transaction_bundle(full_review(inp)), business_id=BID, after_ambiguous=False
    )
    assert result.outcome is Outcome.REJECTED and result.http_status == 412
    assert result.reason is not None and "matched multiple resources" in result.reason
    assert fhir_server.search("Task", "")[0]["status"] == "requested"
    assert {f["status"] for f in fhir_server.search("Flag", "")} == {"active"}
    assert fhir_server.count("Provenance") == 1


# --- after an ambiguous failure (fhir_rest) -------------------------------------------------------


def test_applied_then_dropped_write_back_is_sent_again_without_a_search(
    fhir_server: FhirTestServer, intake: Intake, http_session: requests.Session
) -> None:
    inp = intake("pub-03")
    rest = adapter(fhir_server, http_session)
    rest.deliver(build_transaction_bundle(inp), business_id=BID, after_ambiguous=False)
    wb = build_transaction_bundle(full_review(inp))
    fhir_server.faults({"applyThenDrop": True, "method": "POST"})
    result = rest.deliver(wb, business_id=BID, after_ambiguous=False)
    assert result.outcome is Outcome.TRANSIENT and result.ambiguous
    assert fhir_server.search("Task", "")[0]["status"] == "completed"  # it was applied

    seen = len(fhir_server.request_log())
    retry = rest.deliver(wb, business_id=BID, after_ambiguous=True)
    assert retry.outcome is Outcome.DELIVERED
    assert retry.extra["search_skipped"] is True and "found_by_search" not in retry.extra
    assert [r["method"] for r in retry.extra["requests"]] == ["POST"]
    assert [r["method"] for r in fhir_server.request_log()[seen:]] == ["POST"]
    statuses = {e["response"]["status"] for e in retry.response["entry"]}  # type: ignore[index]
    assert statuses == {"200"}  # updated again / Provenance already there
    assert_server_holds(fhir_server, wb)
    assert fhir_server.count("Provenance") == 2


def test_dropped_write_back_is_not_mistaken_for_delivered(
    fhir_server: FhirTestServer, intake: Intake, http_session: requests.Session
) -> None:
    """Dropped before it was applied: every identifier already exists (first delivery),
    so a search would report it delivered. The re-send applies it."""
    inp = intake("pub-03")
    rest = adapter(fhir_server, http_session)
    rest.deliver(build_transaction_bundle(inp), business_id=BID, after_ambiguous=False)
    wb = build_transaction_bundle(full_review(inp))
    fhir_server.faults({"drop": True, "method": "POST"})
    assert rest.deliver(wb, business_id=BID, after_ambiguous=False).ambiguous
    assert all(len(on_server(fhir_server, e)) == 1 for e in wb["entry"][:-1])
    assert fhir_server.search("Task", "")[0]["status"] == "requested"  # not applied

    seen = len(fhir_server.request_log())
    retry = rest.deliver(wb, business_id=BID, after_ambiguous=True)
    assert retry.outcome is Outcome.DELIVERED and retry.extra["search_skipped"] is True
    assert [r["method"] for r in fhir_server.request_log()[seen:]] == ["POST"]
    assert_server_holds(fhir_server, wb)
    assert fhir_server.search("Task", "")[0]["status"] == "completed"


def test_first_delivery_still_searches_after_an_ambiguous_attempt(
    fhir_server: FhirTestServer, intake: Intake, http_session: requests.Session
) -> None:
    bundle = build_transaction_bundle(intake("pub-03"))
    rest = adapter(fhir_server, http_session)
    fhir_server.faults({"applyThenDrop": True, "method": "POST"})
    assert rest.deliver(bundle, business_id=BID, after_ambiguous=False).ambiguous
    retry = rest.deliver(bundle, business_id=BID, after_ambiguous=True)
    assert retry.extra.get("found_by_search") is True and "search_skipped" not in retry.extra
