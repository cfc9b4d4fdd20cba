"""Each rule of SPEC section 4: firing, not firing, thresholds, unanswered items."""

from __future__ import annotations

from typing import Any

import pytest

from intake.clinical import evaluate, parse_simple_answers
from support.clinical import QUIET, codes, evidence, triage

INJURY = {"onset": "INJ_TWIST", "duration": "D1_6", "walk4_immediately": True}


def test_quiet_answers_fire_nothing() -> None:
    result = triage()
    assert codes(result) == []
    assert result.urgency == "routine"
    assert result.department == "orthopedics"
    assert result.departments == ("orthopedics",)
    assert result.red_flag is False
    assert result.advice is None
    assert result.incomplete_items == ()


# (flag, answers that fire it) — each on top of QUIET
FIRES: list[tuple[str, dict[str, Any]]] = [
    ("PE_SUSPECT", {"chest_symptoms": True}),
    ("ACUTE_LIMB_ISCHAEMIA", {"foot_ischaemia": True}),
    ("COMPARTMENT", {"tense_calf": True}),
    ("COMPARTMENT", {**INJURY, "pain_nrs": 8, "leg_numbness": True}),
    ("CAUDA_EQUINA", {"saddle_bladder": True}),
    ("CAUDA_EQUINA", {"radiating_pain": True, "pain_side": "BOTH", "leg_numbness": True}),
    ("CAUDA_EQUINA", {"radiating_pain": True, "pain_side": "BOTH", "leg_weakness": "STABLE"}),
    ("CAUDA_EQUINA", {"radiating_pain": True, "pain_side": "BOTH", "leg_weakness": "WORSENING"}),
    ("SEPTIC_ARTHRITIS", {"red_hot_knee": True, "fever": True}),
    ("SEPTIC_ARTHRITIS", {"red_hot_knee": True, "walk4_now": False}),
    ("SEPTIC_ARTHRITIS", {"red_hot_knee": True, "night_rest_pain": True}),
    ("DVT_SUSPECT", {"calf_swelling_one_side": True}),
    ("DVT_SUSPECT", {"whole_leg_swollen": True}),
    ("DVT_SUSPECT", {"pitting_edema": True, "pain_side": "L"}),
    ("DVT_SUSPECT", {"pitting_edema": True, "pain_side": "R"}),
    ("DVT_SUSPECT", {"calf_pain_tender": True}),
    ("BAKER_RUPTURE", {"sudden_calf_pain_bruise": True}),
    ("BAKER_RUPTURE", {"popliteal_lump": "SOFT", "calf_pain_tender": True}),
    ("BAKER_RUPTURE", {"popliteal_lump": "SOFT", "pitting_edema": True}),
    ("PAA_SUSPECT", {"popliteal_lump": "PULSATING"}),
    ("FRACTURE_XRAY", {**INJURY, "flex90": False}),
    ("FRACTURE_XRAY", {**INJURY, "duration": "LT_24H", "flex90": False}),
    ("FRACTURE_XRAY", {**INJURY, "walk4_immediately": False, "walk4_now": False}),
    ("FRACTURE_XRAY", {**INJURY, "staff_patella_tenderness": True}),
    ("FRACTURE_XRAY", {**INJURY, "staff_fibular_head_tenderness": True}),
    ("FRACTURE_XRAY", {**INJURY, "onset": "INJ_BLOW_FALL", "walk4_now": False}),
    ("FRACTURE_XRAY", {**INJURY, "onset": "INJ_HYPEREXT", "age_years": 70}),
    ("FRACTURE_XRAY", {**INJURY, "onset": "INJ_OTHER", "age_years": 70}),
    ("HAEMARTHROSIS", {**INJURY, "swelling_after_injury": "LE_2H"}),
    ("HAEMARTHROSIS", {**INJURY, "swelling_after_injury": "H2_12"}),
    ("PROGRESSIVE_DEFICIT", {"leg_weakness": "WORSENING"}),
    ("FEVER_UNEXPLAINED", {"fever": True}),
    ("TUMOUR_SUSPECT", {"popliteal_lump": "HARD_OR_GROWING"}),
    ("TUMOUR_SUSPECT", {"weight_loss": True}),
    ("TUMOUR_SUSPECT", {"night_rest_pain": True, "active_cancer": True}),
    ("LIGAMENT_INSTABILITY", {"giving_way": True}),
    ("LIGAMENT_INSTABILITY", {**INJURY, "pop_at_injury": True}),
    ("LOCKED_KNEE", {"locking": "NOW"}),
    ("MENISCUS", {"catching": True}),
    ("MENISCUS", {"locking": "PAST"}),
    ("PAES_CLAUDICATION", {"claudication": True}),
    ("RA_INFLAMMATORY", {"small_joints": True}),
    ("RA_INFLAMMATORY", {"morning_stiffness": "M30_60", "pain_side": "BOTH"}),
    ("RA_INFLAMMATORY", {"morning_stiffness": "GT_60", "pain_side": "BOTH"}),
    ("INFLAMED_KNEE", {"red_hot_knee": True}),
    ("RADICULOPATHY", {"radiating_pain": True}),
    ("RADICULOPATHY", {"leg_numbness": True}),
    ("RADICULOPATHY", {"radiating_pain": True, "pain_side": "BOTH"}),
    ("BAKER_CYST", {"popliteal_lump": "SOFT"}),
    ("OA_PATTERN", {"age_years": 60, "onset": "GRADUAL", "morning_stiffness": "NONE"}),
    ("OA_PATTERN", {"age_years": 60, "onset": "GRADUAL", "morning_stiffness": "LT_30"}),
    ("PERSISTENT", {"duration": "W2_6"}),
    ("PERSISTENT", {"duration": "W6_M3"}),
    ("PERSISTENT", {"duration": "GT_3M"}),
    ("RUN_REST", {"runner": True, "run_pattern": ["PAIN_WALKING"]}),
    ("RUN_REST", {"runner": True, "run_pattern": ["PAIN_ON_EXTENSION"]}),
    ("RUN_REST", {"runner": True, "run_pattern": ["SHARP_DOWNHILL"]}),
    ("RUN_REST", {"runner": True, "run_pattern": ["SWELLING", "WARMUP_EASES"]}),
    ("RUN_OK", {"runner": True,
                "run_pattern": ["WARMUP_EASES", "TENSION_ONLY", "NOT_WORSE_NEXT_DAY"]}),
    ("OVERUSE_SELFCARE", {"onset": "GRADUAL"}),
    ("INCOMPLETE_SCREENING", {"fever": None}),
]

# (flag, answers that must NOT fire it) — near misses
DOES_NOT_FIRE: list[tuple[str, dict[str, Any]]] = [
    ("PE_SUSPECT", {"chest_symptoms": False}),
    ("PE_SUSPECT", {"chest_symptoms": None}),
    ("ACUTE_LIMB_ISCHAEMIA", {"foot_ischaemia": None}),
    ("COMPARTMENT", {"tense_calf": None}),
    ("COMPARTMENT", {"onset": "GRADUAL", "pain_nrs": 9, "leg_numbness": True}),
    ("COMPARTMENT", {**INJURY, "pain_nrs": 9, "leg_numbness": False}),
    ("COMPARTMENT", {**INJURY, "pain_nrs": 9, "leg_numbness": None}),
    ("COMPARTMENT", {**INJURY, "pain_nrs": None, "leg_numbness": True}),
    ("CAUDA_EQUINA", {"radiating_pain": True, "pain_side": "L", "leg_numbness": True}),
    ("CAUDA_EQUINA", {"radiating_pain": True, "pain_side": "R", "leg_weakness": "STABLE"}),
    ("CAUDA_EQUINA", {"radiating_pain": True, "pain_side": None, "leg_numbness": True}),
    ("CAUDA_EQUINA", {"radiating_pain": True, "pain_side": "BOTH"}),
    ("CAUDA_EQUINA", {"radiating_pain": False, "pain_side": "BOTH", "leg_numbness": True}),
    ("CAUDA_EQUINA", {"radiating_pain": None, "pain_side": "BOTH", "leg_numbness": True}),
    ("SEPTIC_ARTHRITIS", {"red_hot_knee": True}),
    ("SEPTIC_ARTHRITIS", {"red_hot_knee": True, "walk4_now": None}),
    ("SEPTIC_ARTHRITIS", {"fever": True, "walk4_now": False, "night_rest_pain": True}),
    ("DVT_SUSPECT", {"pitting_edema": True, "pain_side": "BOTH"}),
    ("DVT_SUSPECT", {"pitting_edema": True, "pain_side": None}),
    ("BAKER_RUPTURE", {"popliteal_lump": "SOFT"}),
    ("BAKER_RUPTURE", {"popliteal_lump": "HARD_OR_GROWING", "calf_pain_tender": True}),
    ("PAA_SUSPECT", {"popliteal_lump": "SOFT"}),
    ("FRACTURE_XRAY", {**INJURY, "age_years": 60, "duration": "D7_13"}),
    ("FRACTURE_XRAY", {**INJURY, "age_years": 60, "duration": None}),
    ("FRACTURE_XRAY", {"onset": "GRADUAL", "duration": "LT_24H", "age_years": 60}),
    ("FRACTURE_XRAY", {"onset": "SUDDEN_NO_INJURY", "duration": "LT_24H", "flex90": False}),
    ("FRACTURE_XRAY", {**INJURY, "walk4_immediately": False, "walk4_now": True}),
    ("FRACTURE_XRAY", {**INJURY, "walk4_immediately": True, "walk4_now": False}),
    ("FRACTURE_XRAY", {**INJURY, "walk4_immediately": None, "walk4_now": False}),
    ("FRACTURE_XRAY", {**INJURY, "walk4_immediately": False, "walk4_now": None}),
    ("FRACTURE_XRAY", {**INJURY, "flex90": None}),
    ("FRACTURE_XRAY", {**INJURY, "staff_patella_tenderness": False}),
    ("HAEMARTHROSIS", {**INJURY, "swelling_after_injury": "GT_12H"}),
    ("HAEMARTHROSIS", {**INJURY, "swelling_after_injury": "NONE"}),
    ("HAEMARTHROSIS", {"onset": "GRADUAL", "swelling_after_injury": "LE_2H"}),
    ("HAEMARTHROSIS", {"onset": None, "swelling_after_injury": "LE_2H"}),
    ("PROGRESSIVE_DEFICIT", {"leg_weakness": "STABLE"}),
    ("FEVER_UNEXPLAINED", {"fever": True, "red_hot_knee": True}),
    ("TUMOUR_SUSPECT", {"night_rest_pain": True}),
    ("TUMOUR_SUSPECT", {"active_cancer": True}),
    ("TUMOUR_SUSPECT", {"night_rest_pain": True, "active_cancer": None}),
    ("LIGAMENT_INSTABILITY", {"pop_at_injury": True}),
    ("LIGAMENT_INSTABILITY", {"onset": "GRADUAL", "pop_at_injury": True}),
    ("LOCKED_KNEE", {"locking": "PAST"}),
    ("MENISCUS", {"locking": "NOW"}),
    ("MENISCUS", {"locking": "NEVER", "catching": None}),
    ("PAES_CLAUDICATION", {"claudication": None}),
    ("RA_INFLAMMATORY", {"morning_stiffness": "GT_60", "pain_side": "L"}),
    ("RA_INFLAMMATORY", {"morning_stiffness": "LT_30", "pain_side": "BOTH"}),
    ("RA_INFLAMMATORY", {"morning_stiffness": "GT_60", "pain_side": None}),
    ("INFLAMED_KNEE", {"red_hot_knee": True, "fever": True}),
    ("RADICULOPATHY", {"radiating_pain": True, "saddle_bladder": True}),
    ("RADICULOPATHY", {"radiating_pain": True, "pain_side": "BOTH", "leg_numbness": True}),
    ("RADICULOPATHY", {"leg_numbness": True, "leg_weakness": "WORSENING"}),
    ("BAKER_CYST", {"popliteal_lump": "SOFT", "calf_pain_tender": True}),
    ("BAKER_CYST", {"popliteal_lump": "SOFT", "sudden_calf_pain_bruise": True}),
    ("OA_PATTERN", {"age_years": 60, "onset": "GRADUAL", "morning_stiffness": "M30_60"}),
    ("OA_PATTERN", {"age_years": 60, "onset": "INJ_TWIST", "morning_stiffness": "NONE"}),
    ("OA_PATTERN", {"age_years": None, "onset": "GRADUAL", "morning_stiffness": "NONE"}),
    ("PERSISTENT", {"duration": "D7_13"}),
    ("PERSISTENT", {"duration": "D1_6"}),
    ("PERSISTENT", {"duration": None}),
    ("RUN_REST", {"runner": False, "run_pattern": ["SHARP_DOWNHILL"]}),
    ("RUN_REST", {"runner": None, "run_pattern": ["SHARP_DOWNHILL"]}),
    ("RUN_REST", {"runner": True, "run_pattern": ["WARMUP_EASES", "TENSION_ONLY"]}),
    ("RUN_REST", {"runner": True, "run_pattern": None}),
    ("RUN_OK", {"runner": True, "run_pattern": ["WARMUP_EASES", "TENSION_ONLY"]}),
    ("RUN_OK", {"runner": False,
                "run_pattern": ["WARMUP_EASES", "TENSION_ONLY", "NOT_WORSE_NEXT_DAY"]}),
    ("RUN_OK", {"runner": True, "duration": "W2_6",
                "run_pattern": ["WARMUP_EASES", "TENSION_ONLY", "NOT_WORSE_NEXT_DAY"]}),
    ("RUN_OK", {"runner": True, "popliteal_lump": None,
                "run_pattern": ["WARMUP_EASES", "TENSION_ONLY", "NOT_WORSE_NEXT_DAY"]}),
    ("RUN_OK", {"runner": True,
                "run_pattern": ["WARMUP_EASES", "TENSION_ONLY", "NOT_WORSE_NEXT_DAY",
                                "SHARP_DOWNHILL"]}),
    ("OVERUSE_SELFCARE", {"onset": "GRADUAL", "fever": None}),
    ("OVERUSE_SELFCARE", {"onset": "GRADUAL", "catching": True}),
    ("OVERUSE_SELFCARE", {"onset": "GRADUAL", "chest_symptoms": True}),
    ("OVERUSE_SELFCARE", {"onset": "SUDDEN_NO_INJURY"}),
    ("OVERUSE_SELFCARE", {"onset": None}),
    ("OVERUSE_SELFCARE", {"onset": "GRADUAL", "pain_nrs": None}),
    ("INCOMPLETE_SCREENING", {"pitting_edema": None, "age_years": None, "onset": None}),
]


@pytest.mark.parametrize(
    ("flag", "changes"), FIRES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(FIRES)]
)
def test_rule_fires(flag: str, changes: dict[str, Any]) -> None:
    result = triage(**changes)
    assert flag in codes(result)
    fired = next(f for f in result.flags if f.code == flag)
    assert fired.evidence, "every fired flag names the answers behind it"


@pytest.mark.parametrize(
    ("flag", "changes"), DOES_NOT_FIRE, ids=[f"{f}-{i}" for i, (f, _) in enumerate(DOES_NOT_FIRE)]
)
def test_rule_does_not_fire(flag: str, changes: dict[str, Any]) -> None:
    assert flag not in codes(triage(**changes))


def test_every_rule_has_firing_and_non_firing_tests() -> None:
    from intake.clinical import load_ruleset

    all_codes = {f.code for f in load_ruleset().flags}
    assert {f for f, _ in FIRES} == all_codes
    assert {f for f, _ in DOES_NOT_FIRE} == all_codes


# --- numeric thresholds: just below, at, just above -------------------------------------


@pytest.mark.parametrize(("pain", "fires"), [(7, False), (8, True), (9, True)])
def test_compartment_pain_threshold(pain: int, fires: bool) -> None:
    result = triage(**INJURY, pain_nrs=pain, leg_numbness=True)
    assert ("COMPARTMENT" in codes(result)) is fires
    assert (result.urgency == "emergency") is fires


@pytest.mark.parametrize(("pain", "fires"), [(5, True), (6, True), (7, False)])
def test_overuse_pain_threshold(pain: int, fires: bool) -> None:
    result = triage(onset="GRADUAL", pain_nrs=pain)
    assert ("OVERUSE_SELFCARE" in codes(result)) is fires
    assert (result.urgency == "self_care") is fires


@pytest.mark.parametrize(("age", "fires"), [(54, False), (55, True), (56, True)])
def test_ottawa_age_threshold(age: int, fires: bool) -> None:
    # A twist (not a blow or fall, so Pittsburgh does not apply), walking and bending fine.
    result = triage(**INJURY, age_years=age)
    assert ("FRACTURE_XRAY" in codes(result)) is fires


@pytest.mark.parametrize(
    ("age", "fires"), [(11, True), (12, False), (13, False), (49, False), (50, False), (51, True)]
)
def test_pittsburgh_age_thresholds(age: int, fires: bool) -> None:
    result = triage(**{**INJURY, "onset": "INJ_BLOW_FALL"}, age_years=age)
    assert ("FRACTURE_XRAY" in codes(result)) is fires


@pytest.mark.parametrize("age", [11, 51, 60])
def test_pittsburgh_needs_blow_or_fall(age: int) -> None:
    # With a hyperextension injury only Ottawa can fire (age >= 55).
    result = triage(**{**INJURY, "onset": "INJ_HYPEREXT"}, age_years=age)
    assert ("FRACTURE_XRAY" in codes(result)) is (age >= 55)


@pytest.mark.parametrize(("age", "fires"), [(44, False), (45, True), (46, True)])
def test_oa_age_threshold(age: int, fires: bool) -> None:
    result = triage(onset="GRADUAL", age_years=age, morning_stiffness="NONE")
    assert ("OA_PATTERN" in codes(result)) is fires


@pytest.mark.parametrize(
    ("extra", "score"),
    [({}, 1), ({"active_cancer": True}, 2), ({"active_cancer": True, "previous_vte": True}, 3)],
)
def test_wells_threshold_and_dvt_note(extra: dict[str, Any], score: int) -> None:
    result = triage(calf_swelling_one_side=True, **extra)
    assert result.wells.score == score
    assert result.wells.likely is (score >= 2)
    assert result.wells.exam_missing is True
    dvt = next(f for f in result.flags if f.code == "DVT_SUSPECT")
    if score >= 2:
        assert dvt.note is not None
        assert dvt.note.en == "DVT likely: ultrasound within 4 hours"
        assert "超音波" in dvt.note.ja
    else:
        assert dvt.note is None


def test_wells_items_each_score_one() -> None:
    base = triage().wells.score
    assert base == 0
    singles: list[dict[str, Any]] = [
        {"active_cancer": True},
        {"immobility": ["LEG_CAST_OR_PARALYSIS"]},
        {"immobility": ["BEDRIDDEN_3D"]},
        {"immobility": ["SURGERY_12W"]},
        {"whole_leg_swollen": True},
        {"calf_swelling_one_side": True},
        {"pitting_edema": True},
        {"calf_pain_tender": True},
        {"staff_collateral_veins": True},
        {"previous_vte": True},
        {"staff_calf_diff_3cm": True},
        {"staff_deep_vein_tenderness": True},
    ]
    for changes in singles:
        assert triage(**changes).wells.score == 1, changes
    assert triage(immobility=["LONG_TRAVEL"]).wells.score == 0
    assert triage(immobility=["BEDRIDDEN_3D", "SURGERY_12W"]).wells.score == 1
    assert triage(immobility=["BEDRIDDEN_3D", "LEG_CAST_OR_PARALYSIS"]).wells.score == 2
    assert triage(pitting_edema=True, pain_side="BOTH").wells.score == 0


def test_wells_staff_findings_replace_patient_answers() -> None:
    assert triage(calf_swelling_one_side=True, staff_calf_diff_3cm=False).wells.score == 0
    assert triage(calf_pain_tender=True, staff_deep_vein_tenderness=False).wells.score == 0
    assert triage(calf_swelling_one_side=True, staff_calf_diff_3cm=True).wells.score == 1
    # Staff saying "an alternative diagnosis is as likely" subtracts 2; never automatic.
    result = triage(calf_swelling_one_side=True, active_cancer=True, staff_alt_dx_as_likely=True)
    assert result.wells.score == 0
    assert result.wells.likely is False
    dvt = next(f for f in result.flags if f.code == "DVT_SUSPECT")
    assert dvt.note is None  # the flag still fires: a DVT sign is present


def test_wells_exam_missing_only_when_staff_items_absent() -> None:
    exam = {
        "staff_calf_diff_3cm": False,
        "staff_deep_vein_tenderness": False,
        "staff_collateral_veins": False,
        "staff_alt_dx_as_likely": False,
    }
    assert triage(**exam).wells.exam_missing is False
    for key in exam:
        assert triage(**{**exam, key: None}).wells.exam_missing is True


# --- three-valued logic ------------------------------------------------------------------


def test_any_is_true_when_one_branch_true_and_another_unknown() -> None:
    result = triage(calf_swelling_one_side=True, whole_leg_swollen=None)
    assert "DVT_SUSPECT" in codes(result)
    assert "INCOMPLETE_SCREENING" in codes(result)


def test_all_is_not_true_when_a_part_is_unknown() -> None:
    assert "RA_INFLAMMATORY" not in codes(triage(morning_stiffness="GT_60", pain_side=None))
    assert "OA_PATTERN" not in codes(triage(onset="GRADUAL", age_years=60,
                                            morning_stiffness=None))


def test_explicit_false_needed_for_walk4_now() -> None:
    base = {**INJURY, "onset": "INJ_BLOW_FALL", "age_years": 30}
    assert "FRACTURE_XRAY" in codes(triage(**base, walk4_now=False))
    assert "FRACTURE_XRAY" not in codes(triage(**base, walk4_now=None))
    assert "FRACTURE_XRAY" not in codes(triage(**base, walk4_now=True))
    assert "SEPTIC_ARTHRITIS" not in codes(triage(red_hot_knee=True, walk4_now=None))


def test_not_flag_is_two_valued() -> None:
    # SEPTIC_ARTHRITIS cannot be decided (red_hot_knee unanswered) -> it did not fire,
    # so FEVER_UNEXPLAINED (fever AND NOT SEPTIC_ARTHRITIS) fires.
    result = triage(fever=True, red_hot_knee=None)
    assert "FEVER_UNEXPLAINED" in codes(result)
    assert "SEPTIC_ARTHRITIS" not in codes(result)


def test_unanswered_everything() -> None:
    result = evaluate(parse_simple_answers({}))
    assert codes(result) == ["INCOMPLETE_SCREENING"]
    assert result.urgency == "same_day"
    assert result.department == "staff_review"
    assert set(result.incomplete_items) == set(evidence(result, "INCOMPLETE_SCREENING"))
    assert all(v is None for v in evidence(result, "INCOMPLETE_SCREENING").values())
    assert result.wells.score == 0


@pytest.mark.parametrize("item", sorted(
    ["popliteal_lump", "calf_swelling_one_side", "whole_leg_swollen", "calf_pain_tender",
     "red_hot_knee", "fever", "chest_symptoms", "foot_ischaemia", "tense_calf", "saddle_bladder"]
))
def test_each_missing_screening_item_is_flagged(item: str) -> None:
    result = triage(onset="GRADUAL", **{item: None})
    assert "INCOMPLETE_SCREENING" in codes(result)
    assert evidence(result, "INCOMPLETE_SCREENING") == {item: None}
    assert result.incomplete_items == (item,)
    assert "OVERUSE_SELFCARE" not in codes(result)
    assert result.urgency == "same_day"


# --- urgency, departments, evidence -------------------------------------------------------


def test_radiculopathy_urgency_depends_on_numbness() -> None:
    def radic(**changes: Any) -> str:
        result = triage(**changes)
        return next(f.urgency for f in result.flags if f.code == "RADICULOPATHY")

    assert radic(radiating_pain=True, leg_numbness=True) == "soon"
    assert radic(leg_numbness=True) == "soon"
    assert radic(radiating_pain=True) == "routine"
    assert radic(radiating_pain=True, leg_numbness=None) == "routine"
    assert triage(radiating_pain=True).urgency == "routine"
    assert triage(leg_numbness=True).urgency == "soon"


def test_department_tie_break_is_rule_order() -> None:
    # Both same_day: DVT_SUSPECT (rule 6, vascular) before HAEMARTHROSIS (rule 10, ortho).
    result = triage(**INJURY, swelling_after_injury="LE_2H", calf_pain_tender=True)
    assert result.urgency == "same_day"
    assert result.department == "vascular_surgery"
    assert result.departments == ("vascular_surgery", "orthopedics")


def test_departments_most_urgent_first_without_repeats() -> None:
    result = triage(chest_symptoms=True, red_hot_knee=True, fever=True, catching=True,
                    claudication=True, popliteal_lump="SOFT")
    assert codes(result) == ["PE_SUSPECT", "SEPTIC_ARTHRITIS", "MENISCUS",
                             "PAES_CLAUDICATION", "BAKER_CYST"]
    assert result.urgency == "emergency"
    assert result.department == "emergency"
    assert result.departments == ("emergency", "orthopedics", "vascular_surgery")
    assert result.red_flag is True


def test_flags_reported_in_table_order_incomplete_last() -> None:
    result = triage(fever=None, duration="GT_3M", chest_symptoms=True)
    assert codes(result) == ["PE_SUSPECT", "PERSISTENT", "INCOMPLETE_SCREENING"]


def test_also_departments_and_labels() -> None:
    result = triage(chest_symptoms=True)
    flag = result.flags[0]
    assert flag.also_departments == ("cardiology",)
    assert flag.label.ja == "肺塞栓症の疑い"
    assert flag.label.en == "possible pulmonary embolism"


def test_evidence_only_contributing_answers() -> None:
    result = triage(calf_swelling_one_side=True, calf_pain_tender=False)
    assert evidence(result, "DVT_SUSPECT") == {"calf_swelling_one_side": True}
    result = triage(calf_swelling_one_side=True, calf_pain_tender=True)
    assert evidence(result, "DVT_SUSPECT") == {"calf_swelling_one_side": True,
                                               "calf_pain_tender": True}


def test_evidence_of_derived_values_is_the_underlying_answers() -> None:
    result = triage(**INJURY, age_years=70)
    assert evidence(result, "FRACTURE_XRAY") == {
        "onset": "INJ_TWIST", "duration": "D1_6", "age_years": 70
    }
    result = triage(pitting_edema=True, pain_side="R")
    assert evidence(result, "DVT_SUSPECT") == {"pitting_edema": True, "pain_side": "R"}
    result = triage(**{**INJURY, "walk4_immediately": False}, walk4_now=False)
    assert evidence(result, "FRACTURE_XRAY") == {
        "onset": "INJ_TWIST", "duration": "D1_6", "walk4_immediately": False, "walk4_now": False
    }


def test_evidence_for_multi_and_negated_answers() -> None:
    result = triage(runner=True, run_pattern=["SHARP_DOWNHILL", "WARMUP_EASES"])
    assert evidence(result, "RUN_REST") == {
        "runner": True, "run_pattern": ("WARMUP_EASES", "SHARP_DOWNHILL")
    }
    result = triage(red_hot_knee=True, walk4_now=False)
    assert evidence(result, "SEPTIC_ARTHRITIS") == {"red_hot_knee": True, "walk4_now": False}
    assert evidence(triage(fever=True), "FEVER_UNEXPLAINED") == {"fever": True}


def test_red_flag_marker() -> None:
    red = {"PE_SUSPECT", "ACUTE_LIMB_ISCHAEMIA", "COMPARTMENT", "CAUDA_EQUINA",
           "SEPTIC_ARTHRITIS", "DVT_SUSPECT", "BAKER_RUPTURE", "PAA_SUSPECT", "FRACTURE_XRAY",
           "HAEMARTHROSIS", "PROGRESSIVE_DEFICIT", "TUMOUR_SUSPECT"}
    for flag, changes in FIRES:
        result = triage(**changes)
        fired = next(f for f in result.flags if f.code == flag)
        assert fired.red_flag is (flag in red), flag
        if flag in red:
            assert result.red_flag is True
            assert result.urgency != "self_care"
    assert triage(fever=True).red_flag is False


URGENCY = {
    "PE_SUSPECT": "emergency", "ACUTE_LIMB_ISCHAEMIA": "emergency", "COMPARTMENT": "emergency",
    "CAUDA_EQUINA": "emergency", "SEPTIC_ARTHRITIS": "emergency", "DVT_SUSPECT": "same_day",
    "BAKER_RUPTURE": "same_day", "PAA_SUSPECT": "same_day", "FRACTURE_XRAY": "same_day",
    "HAEMARTHROSIS": "same_day", "PROGRESSIVE_DEFICIT": "same_day",
    "FEVER_UNEXPLAINED": "same_day", "TUMOUR_SUSPECT": "soon", "LIGAMENT_INSTABILITY": "soon",
    "LOCKED_KNEE": "soon", "MENISCUS": "soon", "PAES_CLAUDICATION": "soon",
    "RA_INFLAMMATORY": "soon", "INFLAMED_KNEE": "soon", "BAKER_CYST": "routine",
    "OA_PATTERN": "routine", "PERSISTENT": "routine", "RUN_REST": "routine",
    "RUN_OK": "self_care", "OVERUSE_SELFCARE": "self_care", "INCOMPLETE_SCREENING": "same_day",
}
DEPARTMENT = {
    "PE_SUSPECT": ("emergency", ("cardiology",)),
    "ACUTE_LIMB_ISCHAEMIA": ("emergency", ("vascular_surgery",)),
    "COMPARTMENT": ("emergency", ("orthopedics",)),
    "CAUDA_EQUINA": ("emergency", ("spine_surgery",)),
    "SEPTIC_ARTHRITIS": ("orthopedics", ("emergency",)),
    "DVT_SUSPECT": ("vascular_surgery", ("cardiology",)),
    "BAKER_RUPTURE": ("vascular_surgery", ("orthopedics",)),
    "PAA_SUSPECT": ("vascular_surgery", ()),
    "FRACTURE_XRAY": ("orthopedics", ()),
    "HAEMARTHROSIS": ("orthopedics", ()),
    "PROGRESSIVE_DEFICIT": ("spine_surgery", ("orthopedics",)),
    "FEVER_UNEXPLAINED": ("orthopedics", ("staff_review",)),
    "TUMOUR_SUSPECT": ("orthopedics", ()),
    "LIGAMENT_INSTABILITY": ("orthopedics", ()),
    "LOCKED_KNEE": ("orthopedics", ()),
    "MENISCUS": ("orthopedics", ()),
    "PAES_CLAUDICATION": ("vascular_surgery", ("cardiology",)),
    "RA_INFLAMMATORY": ("rheumatology", ()),
    "INFLAMED_KNEE": ("orthopedics", ("rheumatology",)),
    "RADICULOPATHY": ("orthopedics", ("spine_surgery",)),
    "BAKER_CYST": ("orthopedics", ()),
    "OA_PATTERN": ("orthopedics", ("rehabilitation",)),
    "PERSISTENT": ("orthopedics", ()),
    "RUN_REST": ("rehabilitation", ("orthopedics",)),
    "RUN_OK": ("rehabilitation", ()),
    "OVERUSE_SELFCARE": ("rehabilitation", ()),
    "INCOMPLETE_SCREENING": ("staff_review", ()),
}


def test_rule_table_matches_spec() -> None:
    from intake.clinical import load_ruleset

    rules = load_ruleset().flags
    assert [r.code for r in rules] == list(DEPARTMENT)
    for rule in rules:
        assert (rule.department, rule.also_departments) == DEPARTMENT[rule.code], rule.code
        if rule.code != "RADICULOPATHY":
            assert [u.level for u in rule.urgency] == [URGENCY[rule.code]], rule.code


def test_quiet_is_complete() -> None:
    from intake.clinical import screening_link_ids

    assert screening_link_ids() <= set(QUIET)
