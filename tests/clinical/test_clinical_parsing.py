"""Answer parsing: the simple format, QuestionnaireResponse, and every kind of bad input."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from intake import constants
from intake.clinical import (
    AnswerError,
    Answers,
    build_questionnaire_response,
    evaluate,
    load_questionnaire,
    parse_input,
    parse_questionnaire_response,
    parse_simple_answers,
)
from support.clinical import QUIET, answers_with


def test_simple_answers_are_validated_and_immutable() -> None:
    answers = parse_simple_answers({**QUIET, "immobility": ["LONG_TRAVEL", "SURGERY_12W"]})
    assert isinstance(answers, Answers)
    # multi answers become tuples in the Questionnaire's option order
    assert answers["immobility"] == ("SURGERY_12W", "LONG_TRAVEL")
    assert answers["age_years"] == 40
    with pytest.raises(TypeError):
        answers["age_years"] = 41  # type: ignore[index]
    assert "patient" not in repr(answers) and "40" not in repr(answers)
    assert parse_simple_answers(dict(reversed(list(QUIET.items())))) == parse_simple_answers(QUIET)
    assert list(parse_simple_answers(dict(reversed(list(QUIET.items()))))) == list(
        parse_simple_answers(QUIET))
    assert hash(answers) == hash(parse_simple_answers(answers.to_simple()))


def test_answers_constructor_validates() -> None:
    assert Answers({"fever": True})["fever"] is True
    with pytest.raises(AnswerError):
        Answers({"fever": "yes"})
    assert Answers().to_simple() == {}


def test_replace() -> None:
    answers = parse_simple_answers(QUIET)
    changed = answers.replace(fever=True, age_years=None)
    assert changed["fever"] is True and "age_years" not in changed
    assert answers["fever"] is False


def test_staff_items_accepted() -> None:
    answers = parse_simple_answers({"staff_calf_diff_3cm": True, "staff_alt_dx_as_likely": False})
    assert answers["staff_calf_diff_3cm"] is True


def test_null_and_empty_list_mean_unanswered() -> None:
    answers = parse_simple_answers({"fever": None, "immobility": [], "age_years": 30})
    assert dict(answers) == {"age_years": 30}


def test_hidden_item_answers_are_kept() -> None:
    answers = parse_simple_answers({"sex": "M", "pregnancy_hormone": False,
                                    "onset": "GRADUAL", "pop_at_injury": True})
    assert answers["pregnancy_hormone"] is False
    assert answers["pop_at_injury"] is True


@pytest.mark.parametrize(
    ("data", "link_id"),
    [
        ({"no_such_item": True}, "no_such_item"),
        ({"about_you": True}, "about_you"),  # a group is not a question
        ({"fever": 1}, "fever"),  # 1 is not true
        ({"fever": "true"}, "fever"),
        ({"age_years": True}, "age_years"),  # true is not an age
        ({"age_years": 40.0}, "age_years"),
        ({"age_years": "40"}, "age_years"),
        ({"age_years": -1}, "age_years"),
        ({"age_years": 121}, "age_years"),
        ({"pain_nrs": 11}, "pain_nrs"),
        ({"pain_nrs": -1}, "pain_nrs"),
        ({"sex": "male"}, "sex"),
        ({"sex": ["F"]}, "sex"),
        ({"pain_side": "BOTH "}, "pain_side"),
        ({"popliteal_lump": "none"}, "popliteal_lump"),
        ({"immobility": "NONE"}, "immobility"),  # a multi answer is a list
        ({"immobility": ["NONE", "NONE"]}, "immobility"),
        ({"immobility": ["ON_A_PLANE"]}, "immobility"),
        ({"immobility": [1]}, "immobility"),
        ({"run_pattern": ["NONE"]}, "run_pattern"),  # NONE is not an option here
        ({"staff_calf_diff_3cm": "yes"}, "staff_calf_diff_3cm"),
    ],
)
def test_bad_simple_answers_name_the_item(data: dict[str, Any], link_id: str) -> None:
    with pytest.raises(AnswerError) as info:
        parse_simple_answers(data)
    assert info.value.link_id == link_id
    assert link_id in str(info.value)


@pytest.mark.parametrize("data", [None, [], "answers", 3, [("fever", True)]])
def test_answers_must_be_an_object(data: Any) -> None:
    with pytest.raises(AnswerError) as info:
        parse_simple_answers(data)
    assert info.value.link_id is None


def test_error_messages_do_not_echo_patient_values() -> None:
    with pytest.raises(AnswerError) as info:
        parse_simple_answers({"age_years": 987654})
    assert "987654" not in str(info.value)
    with pytest.raises(AnswerError) as info:
        parse_simple_answers({"sex": "SECRET-VALUE"})
    assert "SECRET-VALUE" not in str(info.value)
    assert "M, F, X, NA" in str(info.value)


def test_custom_questionnaire() -> None:
    q = load_questionnaire()
    q["item"][0]["item"][0]["extension"][1]["valueInteger"] = 200  # age max 120 -> 200
    assert parse_simple_answers({"age_years": 150}, questionnaire=q)["age_years"] == 150
    with pytest.raises(AnswerError):
        parse_simple_answers({"age_years": 150})
    # the caller's edit did not leak into the shared copy
    assert load_questionnaire() != q


# --- QuestionnaireResponse ---------------------------------------------------------------


def qr_for(**changes: Any) -> dict[str, Any]:
    return build_questionnaire_response(answers_with(**changes))


def find(qr: dict[str, Any], link_id: str) -> dict[str, Any]:
    stack: list[dict[str, Any]] = list(qr["item"])
    while stack:
        item = stack.pop()
        if item["linkId"] == link_id:
            return item
        stack.extend(item.get("item", []))
    raise KeyError(link_id)


def test_qr_round_trip() -> None:
    data = answers_with(runner=True, run_pattern=["SWELLING", "WARMUP_EASES"],
                        staff_fibular_head_tenderness=True)
    qr = build_questionnaire_response(data, identifier="X-1", status="completed")
    assert parse_questionnaire_response(qr) == parse_simple_answers(data)
    assert qr["questionnaire"] == f"{constants.QUESTIONNAIRE_URL}|{constants.QUESTIONNAIRE_VERSION}"


def test_qr_without_version_and_flat_items_accepted() -> None:
    qr = qr_for()
    qr["questionnaire"] = constants.QUESTIONNAIRE_URL
    flat = [i for g in qr["item"] for i in g["item"]]
    qr["item"] = flat
    assert parse_questionnaire_response(qr) == parse_simple_answers(QUIET)


def test_qr_items_without_answers_are_unanswered() -> None:
    qr = qr_for()
    find(qr, "fever")["answer"] = []
    del find(qr, "chest_symptoms")["answer"]
    answers = parse_questionnaire_response(qr)
    assert "fever" not in answers and "chest_symptoms" not in answers


def _mutate(qr: dict[str, Any], how: str) -> None:
    if how == "other_questionnaire":
        qr["questionnaire"] = "https://example.org/Questionnaire/other|1.0.0"
    elif how == "other_version":
        qr["questionnaire"] = f"{constants.QUESTIONNAIRE_URL}|2.0.0"
    elif how == "no_questionnaire":
        del qr["questionnaire"]
    elif how == "resource_type":
        qr["resourceType"] = "Questionnaire"
    elif how == "entered_in_error":
        qr["status"] = "entered-in-error"
    elif how == "bad_status":
        qr["status"] = "done"
    elif how == "items_not_list":
        qr["item"] = {"linkId": "fever"}


@pytest.mark.parametrize(
    "how",
    ["other_questionnaire", "other_version", "no_questionnaire", "resource_type",
     "entered_in_error", "bad_status", "items_not_list"],
)
def test_qr_whole_resource_rejected(how: str) -> None:
    qr = qr_for()
    _mutate(qr, how)
    with pytest.raises(AnswerError):
        parse_questionnaire_response(qr)


@pytest.mark.parametrize(
    ("link_id", "answer"),
    [
        ("fever", [{"valueString": "yes"}]),
        ("fever", [{"valueInteger": 1}]),
        ("fever", [{"valueBoolean": "true"}]),
        ("fever", [{"valueBoolean": True}, {"valueBoolean": False}]),
        ("fever", [{"valueBoolean": True, "valueInteger": 1}]),
        ("fever", [{}]),
        ("fever", ["true"]),
        ("fever", {"valueBoolean": True}),
        ("age_years", [{"valueInteger": 130}]),
        ("age_years", [{"valueInteger": True}]),
        ("age_years", [{"valueDecimal": 40.5}]),
        ("pain_nrs", [{"valueInteger": 11}]),
        ("sex", [{"valueCoding": {"system": constants.CS_ANSWER, "code": "Q"}}]),
        ("sex", [{"valueCoding": {"system": "http://hl7.org/fhir/administrative-gender",
                                  "code": "male"}}]),
        ("sex", [{"valueCoding": {"code": "M"}}]),
        ("sex", [{"valueCoding": {"system": constants.CS_ANSWER}}]),
        ("sex", [{"valueString": "M"}]),
        ("sex", [{"valueCoding": {"system": constants.CS_ANSWER, "code": "M"}},
                 {"valueCoding": {"system": constants.CS_ANSWER, "code": "F"}}]),
        ("immobility", [{"valueCoding": {"system": constants.CS_ANSWER, "code": "NONE"}},
                        {"valueCoding": {"system": constants.CS_ANSWER, "code": "NONE"}}]),
        ("immobility", [{"valueCoding": {"system": constants.CS_ANSWER, "code": "SOFT"}}]),
    ],
)
def test_qr_bad_answers_name_the_item(link_id: str, answer: Any) -> None:
    qr = qr_for(runner=True)
    find(qr, link_id)["answer"] = answer
    with pytest.raises(AnswerError) as info:
        parse_questionnaire_response(qr)
    assert info.value.link_id == link_id
    assert link_id in str(info.value)


def test_qr_unknown_and_repeated_link_ids() -> None:
    qr = qr_for()
    qr["item"][0]["item"].append({"linkId": "mystery", "answer": [{"valueBoolean": True}]})
    with pytest.raises(AnswerError) as info:
        parse_questionnaire_response(qr)
    assert info.value.link_id == "mystery"

    qr = qr_for()
    qr["item"].append({"linkId": "fever", "answer": [{"valueBoolean": False}]})
    with pytest.raises(AnswerError) as info:
        parse_questionnaire_response(qr)
    assert info.value.link_id == "fever"

    qr = qr_for()
    qr["item"].append({"linkId": "unknown_group", "item": []})
    with pytest.raises(AnswerError) as info:
        parse_questionnaire_response(qr)
    assert info.value.link_id == "unknown_group"


def test_qr_nested_structure_errors() -> None:
    qr = qr_for()
    qr["item"][0]["answer"] = [{"valueBoolean": True}]  # a group with an answer
    with pytest.raises(AnswerError):
        parse_questionnaire_response(qr)
    qr = qr_for()
    find(qr, "fever")["item"] = [{"linkId": "chest_symptoms"}]  # children under a question
    with pytest.raises(AnswerError) as info:
        parse_questionnaire_response(qr)
    assert info.value.link_id == "fever"
    qr = qr_for()
    qr["item"][0]["item"].append({"text": "no linkId"})
    with pytest.raises(AnswerError):
        parse_questionnaire_response(qr)
    # groups nested inside groups are followed
    qr = qr_for()
    inner = qr["item"].pop()
    qr["item"][0]["item"].append(inner)
    assert parse_questionnaire_response(qr) == parse_simple_answers(QUIET)


# --- parse_input --------------------------------------------------------------------------


def test_parse_input_shapes() -> None:
    assert parse_input({"answers": QUIET, "expect": {}, "id": "x"}) == parse_simple_answers(QUIET)
    assert parse_input(qr_for()) == parse_simple_answers(QUIET)
    bad: object
    for bad in ([], "x", None, {}, {"resourceType": "Patient"}, {"answer": QUIET}):
        with pytest.raises(AnswerError):
            parse_input(bad)
    with pytest.raises(AnswerError) as info:
        parse_input({"answers": {"fever": "yes"}})
    assert info.value.link_id == "fever"


def test_evaluate_accepts_plain_mapping_but_validates_it() -> None:
    assert evaluate(QUIET) == evaluate(parse_simple_answers(QUIET))
    with pytest.raises(AnswerError):
        evaluate({"fever": 1})


def test_build_qr_validates_and_omits_empty_groups() -> None:
    qr = build_questionnaire_response({"fever": True})
    assert [g["linkId"] for g in qr["item"]] == ["swelling_circulation"]
    assert build_questionnaire_response({})["status"] == "completed"
    assert "item" not in build_questionnaire_response({})
    with pytest.raises(AnswerError):
        build_questionnaire_response({"fever": "yes"})
    with pytest.raises(ValueError, match="status"):
        build_questionnaire_response({}, status="done")
    qr = build_questionnaire_response(copy.deepcopy(QUIET), status="in-progress")
    assert qr["status"] == "in-progress"
    sex = find(qr, "sex")["answer"][0]["valueCoding"]
    assert sex == {"system": constants.CS_ANSWER, "code": "F", "display": "女性"}
