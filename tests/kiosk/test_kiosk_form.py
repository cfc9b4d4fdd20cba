"""The tablet form is the Questionnaire: screens, controls, enableWhen, texts."""

from __future__ import annotations

import json
import re
import string
from typing import Any

import pytest

from intake.clinical import (
    evaluate,
    load_questionnaire,
    screening_link_ids,
    staff_only_link_ids,
)
from intake.clinical.questionnaire import QuestionnaireError, default_form_index
from intake.kiosk.form import build_tablet_form, tablet_form
from intake.kiosk.i18n import CATALOG, t
from support import case, load_cases


def test_every_patient_question_is_on_exactly_one_screen_and_staff_items_on_none() -> None:
    form = tablet_form()
    on_screens = [q.link_id for s in form.sections for q in s.questions]
    assert len(on_screens) == len(set(on_screens))
    patient_ids = set(default_form_index().questions) - staff_only_link_ids()
    assert set(on_screens) == patient_ids
    assert not set(on_screens) & staff_only_link_ids()
    assert "staff_exam" not in [s.link_id for s in form.sections]
    assert form.screening_ids == screening_link_ids()


def test_texts_come_from_the_questionnaire_in_both_languages() -> None:
    raw = json.dumps(load_questionnaire(), ensure_ascii=False)
    for q in tablet_form().questions.values():
        assert q.text("ja") in raw and q.text("en") in raw
        for code, text in q.options("en"):
            assert text == q.option_text(code, "en")


def test_controls() -> None:
    controls = {k: q.control for k, q in tablet_form().questions.items()}
    assert controls["pain_side"] == "knee_side"
    assert controls["pain_location"] == "knee_location"
    assert controls["pain_nrs"] == "scale"
    assert controls["age_years"] == "number"
    assert controls["immobility"] == "multi"
    assert controls["chest_symptoms"] == "yesno"
    assert controls["onset"] == "choice"


@pytest.mark.parametrize(("answers", "shown"), [
    ({}, True),                       # unanswered: shown (FHIR '!=', the safer reading)
    ({"sex": "F"}, True),
    ({"sex": "NA"}, True),
    ({"sex": "M"}, False),
])
def test_pregnancy_question_follows_sex(answers: dict[str, str], shown: bool) -> None:
    assert ("pregnancy_hormone" in tablet_form().enabled(answers)) is shown


def test_injury_screen_only_after_an_injury() -> None:
    form = tablet_form()
    injury = [s.link_id for s in form.sections].index("injury")
    assert injury not in form.enabled_sections({"onset": "GRADUAL"})
    assert injury not in form.enabled_sections({})
    for onset in ("INJ_TWIST", "INJ_BLOW_FALL", "INJ_HYPEREXT", "INJ_OTHER"):
        assert injury in form.enabled_sections({"onset": onset})


def test_effective_answers_drop_what_the_patient_can_no_longer_see() -> None:
    form = tablet_form()
    answers = {"onset": "GRADUAL", "pop_at_injury": True, "runner": False,
               "run_pattern": ["SWELLING"], "sex": "M", "pregnancy_hormone": False}
    assert form.effective_answers(answers) == {"sex": "M", "onset": "GRADUAL",
                                               "runner": False}


def test_required_screening_items_missing() -> None:
    form = tablet_form()
    answers = case("pub-01")["answers"]
    assert form.missing_required(answers) == []
    partial = {k: v for k, v in answers.items() if k != "chest_symptoms"}
    assert form.missing_required(partial) == ["chest_symptoms"]
    section = form.section("swelling_circulation")
    assert form.missing_required({}, section) == [
        q.link_id for q in section.questions if q.required]


def test_script_decides_only_same_screen_conditions() -> None:
    form = tablet_form()
    rule = form.client_rule(form.questions["pregnancy_hormone"], {})
    assert rule is not None and [c.question for c in rule.conditions] == ["sex"]
    run_rule = form.client_rule(form.questions["run_pattern"], {})
    assert run_rule is not None and run_rule.conditions[0].value is True
    # onset is on another screen: the server decides the injury questions.
    assert form.client_rule(form.questions["pop_at_injury"], {"onset": "INJ_TWIST"}) is None


@pytest.mark.parametrize("c", load_cases(), ids=lambda c: c["id"])
def test_dropping_hidden_answers_never_changes_the_triage(c: dict[str, Any]) -> None:
    """The tablet submits only what the patient could see; for every worked case that
    gives the same result as the full answers."""
    answers = c["answers"]
    effective = tablet_form().effective_answers(answers)
    assert evaluate(effective).to_dict() == evaluate(answers).to_dict()


def test_unsupported_questionnaire_fails_loudly() -> None:
    q = load_questionnaire()
    q["item"][0]["item"][0]["enableWhen"] = [{"question": "sex", "operator": "~",
                                              "answerBoolean": True}]
    with pytest.raises(QuestionnaireError):
        build_tablet_form(q)


def test_every_interface_string_has_both_languages_with_the_same_placeholders() -> None:
    fields = string.Formatter()
    for key, (ja, en) in CATALOG.items():
        assert ja.strip() and en.strip(), key
        names_ja = {f for _, f, _, _ in fields.parse(ja) if f}
        names_en = {f for _, f, _, _ in fields.parse(en) if f}
        assert names_ja == names_en, key
        assert not re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", en) or key in (
            "other_lang_name", "lang_ja", "switch_lang_label"), key


def test_spec_section_5_messages_verbatim() -> None:
    assert t("msg_emergency", "ja") == "今すぐ受付スタッフにお声がけください"
    assert t("msg_emergency", "en") == "Please tell the reception staff now"
    assert t("msg_same_day", "ja") == "まもなくスタッフがお声がけします"
    assert t("msg_same_day", "en") == "A staff member will speak with you shortly"
