"""The FHIR artefacts in fhir_profiles/: valid R4, and faithful to SPEC section 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.codesystem import CodeSystem
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhir.resources.R4B.valueset import ValueSet

from intake import constants
from intake.clinical import (
    build_questionnaire_response,
    load_questionnaire,
    load_ruleset,
    screening_link_ids,
    staff_only_link_ids,
)
from intake.resources import fhir_profiles_dir

PROFILES = fhir_profiles_dir()
INJURY_CODES = ["INJ_TWIST", "INJ_BLOW_FALL", "INJ_HYPEREXT", "INJ_OTHER"]

# SPEC section 2: id -> (type, codes or (min, max), screening item?)
SPEC_ITEMS: dict[str, tuple[str, Any, bool]] = {
    "age_years": ("int", (0, 120), False),
    "sex": ("choice", ["M", "F", "X", "NA"], False),
    "pregnancy_hormone": ("bool", None, False),
    "pain_side": ("choice", ["L", "R", "BOTH"], False),
    "pain_location": ("choice", ["MEDIAL", "CENTRAL", "LATERAL", "DIFFUSE"], False),
    "pain_nrs": ("int", (0, 10), False),
    "onset": ("choice", ["GRADUAL", "SUDDEN_NO_INJURY", *INJURY_CODES], False),
    "duration": ("choice", ["LT_24H", "D1_6", "D7_13", "W2_6", "W6_M3", "GT_3M"], False),
    "pop_at_injury": ("bool", None, False),
    "swelling_after_injury": ("choice", ["LE_2H", "H2_12", "GT_12H", "NONE"], False),
    "walk4_immediately": ("bool", None, False),
    "walk4_now": ("bool", None, False),
    "flex90": ("bool", None, False),
    "giving_way": ("bool", None, False),
    "locking": ("choice", ["NEVER", "PAST", "NOW"], False),
    "catching": ("bool", None, False),
    "popliteal_lump": ("choice", ["NONE", "SOFT", "HARD_OR_GROWING", "PULSATING"], True),
    "calf_swelling_one_side": ("bool", None, True),
    "whole_leg_swollen": ("bool", None, True),
    "pitting_edema": ("bool", None, False),
    "calf_pain_tender": ("bool", None, True),
    "sudden_calf_pain_bruise": ("bool", None, False),
    "red_hot_knee": ("bool", None, True),
    "fever": ("bool", None, True),
    "chest_symptoms": ("bool", None, True),
    "foot_ischaemia": ("bool", None, True),
    "claudication": ("bool", None, False),
    "tense_calf": ("bool", None, True),
    "radiating_pain": ("bool", None, False),
    "leg_numbness": ("bool", None, False),
    "leg_weakness": ("choice", ["NONE", "STABLE", "WORSENING"], False),
    "saddle_bladder": ("bool", None, True),
    "morning_stiffness": ("choice", ["NONE", "LT_30", "M30_60", "GT_60"], False),
    "small_joints": ("bool", None, False),
    "night_rest_pain": ("bool", None, False),
    "weight_loss": ("bool", None, False),
    "active_cancer": ("bool", None, False),
    "immobility": ("multi", ["BEDRIDDEN_3D", "SURGERY_12W", "LEG_CAST_OR_PARALYSIS",
                             "LONG_TRAVEL", "NONE"], False),
    "previous_vte": ("bool", None, False),
    "runner": ("bool", None, False),
    "run_pattern": ("multi", ["WARMUP_EASES", "TENSION_ONLY", "NOT_WORSE_NEXT_DAY",
                              "PAIN_WALKING", "PAIN_ON_EXTENSION", "SHARP_DOWNHILL",
                              "SWELLING"], False),
}
STAFF_ITEMS = {
    "staff_patella_tenderness", "staff_fibular_head_tenderness", "staff_calf_diff_3cm",
    "staff_deep_vein_tenderness", "staff_collateral_veins", "staff_alt_dx_as_likely",
}


def walk(items: list[dict[str, Any]], parents: tuple[dict[str, Any], ...] = ()
         ) -> Iterator[tuple[dict[str, Any], tuple[dict[str, Any], ...]]]:
    """Every item in document order, with its ancestors."""
    for item in items:
        yield item, parents
        yield from walk(item.get("item", []), (*parents, item))


def english(element: dict[str, Any] | None) -> str | None:
    for ext in (element or {}).get("extension", []):
        if ext["url"] == constants.EXT_TRANSLATION:
            sub = {e["url"]: e for e in ext["extension"]}
            if sub["lang"]["valueCode"] == "en":
                value: str = sub["content"]["valueString"]
                return value
    return None


@pytest.fixture(scope="module")
def q() -> dict[str, Any]:
    return load_questionnaire()


@pytest.fixture(scope="module")
def questions(q: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["linkId"]: i for i, _ in walk(q["item"]) if i["type"] != "group"}


def kind_of(item: dict[str, Any]) -> str:
    t = item["type"]
    if t == "choice":
        return "multi" if item.get("repeats") else "choice"
    return {"boolean": "bool", "integer": "int"}[t]


def test_questionnaire_is_valid_r4(q: dict[str, Any]) -> None:
    model = Questionnaire.model_validate(q)
    assert model.url == constants.QUESTIONNAIRE_URL
    assert model.version == constants.QUESTIONNAIRE_VERSION
    assert model.language == "ja"
    assert model.status == "active"
    path = PROFILES / f"Questionnaire-{constants.QUESTIONNAIRE_ID}.json"
    assert json.loads(path.read_text(encoding="utf-8")) == q


def test_linkids_unique_and_every_spec_item_present(
    q: dict[str, Any], questions: dict[str, dict[str, Any]]
) -> None:
    all_ids = [i["linkId"] for i, _ in walk(q["item"])]
    assert len(all_ids) == len(set(all_ids))
    assert set(questions) == set(SPEC_ITEMS) | STAFF_ITEMS


@pytest.mark.parametrize("link_id", sorted(SPEC_ITEMS))
def test_item_type_codes_range_required(
    link_id: str, questions: dict[str, dict[str, Any]]
) -> None:
    item = questions[link_id]
    kind, detail, screening = SPEC_ITEMS[link_id]
    assert kind_of(item) == kind
    assert item.get("required", False) is screening
    if kind in ("choice", "multi"):
        codings = [o["valueCoding"] for o in item["answerOption"]]
        assert [c["code"] for c in codings] == detail
        assert {c["system"] for c in codings} == {constants.CS_ANSWER}
    if kind == "int":
        ext = {e["url"]: e.get("valueInteger") for e in item["extension"]}
        assert ext["http://hl7.org/fhir/StructureDefinition/minValue"] == detail[0]
        assert ext["http://hl7.org/fhir/StructureDefinition/maxValue"] == detail[1]


def test_required_exactly_on_screening_items(q: dict[str, Any]) -> None:
    required = {i["linkId"] for i, _ in walk(q["item"]) if i.get("required")}
    assert required == {k for k, (_, _, s) in SPEC_ITEMS.items() if s}
    assert screening_link_ids() == required
    assert set(load_ruleset().screening_items) == required


def test_every_text_and_option_in_japanese_and_english(q: dict[str, Any]) -> None:
    assert english(q["_title"])
    for item, _ in walk(q["item"]):
        assert item["text"].strip(), item["linkId"]
        assert english(item.get("_text")), item["linkId"]
        assert any(ord(ch) > 0x3000 for ch in item["text"]), f"{item['linkId']} not Japanese"
        for option in item.get("answerOption", []):
            coding = option["valueCoding"]
            assert coding["display"].strip(), (item["linkId"], coding["code"])
            assert english(coding.get("_display")), (item["linkId"], coding["code"])


def test_item_texts_match_spec_wording(questions: dict[str, dict[str, Any]]) -> None:
    assert questions["chest_symptoms"]["text"] == (
        "急な息切れ・胸の痛み・血の混じった痰・気を失いそうになった")
    assert english(questions["walk4_now"]["_text"]) == "Can take 4 steps on the painful leg now"
    immobility = {o["valueCoding"]["code"]: english(o["valueCoding"]["_display"])
            for o in questions["immobility"]["answerOption"]}
    assert immobility["LONG_TRAVEL"] == "Recent long journey"


def test_enable_when_points_to_earlier_items_with_valid_answers(q: dict[str, Any]) -> None:
    order = {i["linkId"]: n for n, (i, _) in enumerate(walk(q["item"]))}
    items = {i["linkId"]: i for i, _ in walk(q["item"])}
    seen = 0
    for item, _ in walk(q["item"]):
        conditions = item.get("enableWhen", [])
        if len(conditions) > 1:
            assert item["enableBehavior"] == "any"
        for cond in conditions:
            seen += 1
            target = items[cond["question"]]
            assert order[cond["question"]] < order[item["linkId"]], item["linkId"]
            assert target["type"] != "group"
            answer_keys = [k for k in cond if k.startswith("answer")]
            assert len(answer_keys) == 1
            if target["type"] == "boolean":
                assert answer_keys == ["answerBoolean"]
                assert isinstance(cond["answerBoolean"], bool)
            elif target["type"] == "choice":
                assert answer_keys == ["answerCoding"]
                coding = cond["answerCoding"]
                assert coding["system"] == constants.CS_ANSWER
                options = [o["valueCoding"]["code"] for o in target["answerOption"]]
                assert coding["code"] in options
            else:
                pytest.fail(f"unexpected enableWhen target type {target['type']}")
    assert seen > 0


def test_shown_when_of_spec(questions: dict[str, dict[str, Any]], q: dict[str, Any]) -> None:
    preg = questions["pregnancy_hormone"]["enableWhen"]
    assert preg == [{"question": "sex", "operator": "!=",
                     "answerCoding": {"system": constants.CS_ANSWER, "code": "M"}}]
    for link_id in ("pop_at_injury", "swelling_after_injury", "walk4_immediately"):
        item = questions[link_id]
        assert item["enableBehavior"] == "any"
        assert sorted(c["answerCoding"]["code"] for c in item["enableWhen"]) == sorted(
            INJURY_CODES)
        assert {c["operator"] for c in item["enableWhen"]} == {"="}
        assert {c["question"] for c in item["enableWhen"]} == {"onset"}
    assert questions["run_pattern"]["enableWhen"] == [
        {"question": "runner", "operator": "=", "answerBoolean": True}]
    conditional = {"pregnancy_hormone", "pop_at_injury", "swelling_after_injury",
                   "walk4_immediately", "run_pattern"}
    for item, parents in walk(q["item"]):
        if item["type"] != "group" and item["linkId"] not in conditional:
            assert "enableWhen" not in item, item["linkId"]
            assert all("enableWhen" not in p for p in parents), item["linkId"]


def test_staff_exam_group_is_hidden(q: dict[str, Any]) -> None:
    groups = {i["linkId"]: i for i, _ in walk(q["item"]) if i["type"] == "group"}
    staff = groups["staff_exam"]
    assert {"url": "http://hl7.org/fhir/StructureDefinition/questionnaire-hidden",
            "valueBoolean": True} in staff["extension"]
    assert {i["linkId"] for i in staff["item"]} == STAFF_ITEMS
    assert all(i["type"] == "boolean" and not i.get("required") for i in staff["item"])
    assert staff_only_link_ids() == STAFF_ITEMS
    # No other group is hidden, and every question sits in a group.
    for link_id, group in groups.items():
        if link_id != "staff_exam":
            assert "extension" not in group
    assert all(i["type"] == "group" for i in q["item"])


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PROFILES / name).read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize(
    ("name", "url", "vs_name", "vs_url"),
    [
        ("CodeSystem-triage-flag.json", constants.CS_FLAG, "ValueSet-triage-flag.json",
         constants.VS_FLAG),
        ("CodeSystem-triage-urgency.json", constants.CS_URGENCY,
         "ValueSet-triage-urgency.json", constants.VS_URGENCY),
        ("CodeSystem-department.json", constants.CS_DEPARTMENT, "ValueSet-department.json",
         constants.VS_DEPARTMENT),
        ("CodeSystem-knee-answer.json", constants.CS_ANSWER, None, None),
    ],
)
def test_codesystems_and_valuesets_are_valid_r4(
    name: str, url: str, vs_name: str | None, vs_url: str | None
) -> None:
    cs = _load(name)
    model = CodeSystem.model_validate(cs)
    assert model.url == url
    assert model.language == "ja"
    assert model.content == "complete"
    assert model.count == len(cs["concept"])
    for concept in cs["concept"]:
        assert concept["display"].strip()
        assert [d["language"] for d in concept["designation"]] == ["en"]
        assert concept["designation"][0]["value"].strip()
    codes = [c["code"] for c in cs["concept"]]
    assert len(codes) == len(set(codes))
    if vs_name is not None:
        vs = _load(vs_name)
        vs_model = ValueSet.model_validate(vs)
        assert vs_model.url == vs_url
        assert cs["valueSet"] == vs_url
        assert vs["compose"]["include"] == [{"system": url, "version": cs["version"]}]


def test_answer_codesystem_covers_every_option(q: dict[str, Any]) -> None:
    cs_codes = {c["code"] for c in _load("CodeSystem-knee-answer.json")["concept"]}
    used = {o["valueCoding"]["code"] for i, _ in walk(q["item"])
            for o in i.get("answerOption", [])}
    assert used == cs_codes


def test_flag_codesystem_matches_rule_set() -> None:
    concepts = _load("CodeSystem-triage-flag.json")["concept"]
    rules = load_ruleset().flags
    assert [c["code"] for c in concepts] == [r.code for r in rules]
    assert len(concepts) == 27
    for concept, rule in zip(concepts, rules, strict=True):
        assert concept["display"] == rule.label.ja
        assert concept["designation"][0]["value"] == rule.label.en


def test_urgency_and_department_codesystems_match_spec() -> None:
    urgency = _load("CodeSystem-triage-urgency.json")["concept"]
    assert [c["code"] for c in urgency] == ["emergency", "same_day", "soon", "routine",
                                            "self_care"]
    assert list(load_ruleset().urgency_levels) == [c["code"] for c in urgency]
    priorities = [{p["code"]: p.get("valueCode") for p in c["property"]}["requestPriority"]
                  for c in urgency]
    assert priorities == ["stat", "asap", "urgent", "routine", "routine"]
    departments = _load("CodeSystem-department.json")["concept"]
    assert [(c["code"], c["display"]) for c in departments] == [
        ("emergency", "救急"), ("orthopedics", "整形外科"), ("vascular_surgery", "血管外科"),
        ("cardiology", "循環器内科"), ("spine_surgery", "脊椎外科(整形外科・脳神経外科)"),
        ("rheumatology", "リウマチ科・膠原病内科"), ("rehabilitation", "リハビリテーション科"),
        ("staff_review", "受付・看護師による確認"),
    ]


def test_every_profile_file_is_valid() -> None:
    models: dict[str, Any] = {
        "Questionnaire": Questionnaire, "CodeSystem": CodeSystem, "ValueSet": ValueSet
    }
    files = sorted(p for kind in models for p in Path(PROFILES).glob(f"{kind}-*.json"))
    assert {p.stem for p in files} == {
        "Questionnaire-posterior-knee",
        "CodeSystem-knee-answer", "CodeSystem-triage-flag", "CodeSystem-triage-urgency",
        "CodeSystem-department", "CodeSystem-triage-ruleset", "CodeSystem-intake-task",
        "ValueSet-triage-flag", "ValueSet-triage-urgency", "ValueSet-department",
    }
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        models[data["resourceType"]].model_validate(data)
        assert path.name == f"{data['resourceType']}-{data['id']}.json"


def test_built_questionnaire_response_is_valid_r4() -> None:
    from support.clinical import QUIET

    qr = build_questionnaire_response(
        {**QUIET, "runner": True, "run_pattern": ["WARMUP_EASES", "SWELLING"],
         "staff_calf_diff_3cm": True},
        identifier="intake-123", subject_reference="Patient/42",
        authored="2025-01-15T09:30:00+09:00",
    )
    model = QuestionnaireResponse.model_validate(qr)
    assert model.questionnaire == f"{constants.QUESTIONNAIRE_URL}|{constants.QUESTIONNAIRE_VERSION}"
    assert qr["identifier"] == {"system": constants.IDENTIFIER_SYSTEM_INTAKE,
                                "value": "intake-123"}
    assert qr["subject"] == {"reference": "Patient/42"}
    groups = [g["linkId"] for g in qr["item"]]
    assert groups == ["about_you", "pain", "knee_function", "swelling_circulation",
                      "nerves_back", "joints_health", "risk_factors", "running", "staff_exam"]
    running = next(g for g in qr["item"] if g["linkId"] == "running")
    pattern = next(i for i in running["item"] if i["linkId"] == "run_pattern")
    assert pattern["answer"] == [
        {"valueCoding": {"system": constants.CS_ANSWER, "code": "WARMUP_EASES",
                         "display": "ウォームアップで痛みが軽くなる"}},
        {"valueCoding": {"system": constants.CS_ANSWER, "code": "SWELLING",
                         "display": "膝の裏が腫れている"}},
    ]
