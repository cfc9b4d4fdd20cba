"""The rule-set loader refuses anything it cannot fully check."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from intake.clinical import RuleSetError, TriageResult, evaluate, load_ruleset, load_ruleset_file
from intake.clinical.ruleset import RULESETS_DIR
from intake.resources import fhir_profiles_dir, templates_dir

SOURCE = RULESETS_DIR / "posterior-knee.yaml"


def shipped() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))
    return data


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "posterior-knee.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def flag(data: dict[str, Any], code: str) -> dict[str, Any]:
    rule: dict[str, Any] = next(f for f in data["flags"] if f["code"] == code)
    return rule


def test_shipped_rule_set_loads_and_is_cached() -> None:
    rs = load_ruleset()
    assert rs is load_ruleset("posterior-knee")
    assert rs.key == "posterior-knee@1.0.0"
    assert len(rs.flags) == 27
    order = [f.code for f in rs.evaluation_order]
    assert order.index("INCOMPLETE_SCREENING") < order.index("RUN_OK")
    assert order.index("INCOMPLETE_SCREENING") < order.index("OVERUSE_SELFCARE")
    assert order.index("SEPTIC_ARTHRITIS") < order.index("FEVER_UNEXPLAINED")


def test_a_copy_of_the_shipped_file_loads(tmp_path: Path) -> None:
    rs = load_ruleset_file(write(tmp_path, shipped()))
    assert [f.code for f in rs.flags] == [f.code for f in load_ruleset().flags]


def test_changelog_names_the_version() -> None:
    changelog = (RULESETS_DIR / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"posterior-knee {load_ruleset().version}" in changelog


@pytest.mark.parametrize("name", ["../etc/passwd", "Posterior", "", "no-such-ruleset"])
def test_bad_names(name: str) -> None:
    with pytest.raises(RuleSetError):
        load_ruleset(name)


def _bad(data: dict[str, Any], how: str) -> None:
    if how == "unknown_link_id":
        flag(data, "PE_SUSPECT")["when"] = {"answer": "chest_pain", "is": True}
    elif how == "unknown_code":
        flag(data, "PAA_SUSPECT")["when"] = {"answer": "popliteal_lump", "in": ["PULSING"]}
    elif how == "code_of_another_item":
        flag(data, "PAA_SUSPECT")["when"] = {"answer": "popliteal_lump", "in": ["NOW"]}
    elif how == "wrong_operator_for_type":
        flag(data, "PE_SUSPECT")["when"] = {"answer": "chest_symptoms", "in": ["YES"]}
    elif how == "is_on_choice":
        flag(data, "PAA_SUSPECT")["when"] = {"answer": "popliteal_lump", "is": True}
    elif how == "threshold_out_of_range":
        flag(data, "COMPARTMENT")["when"] = {"answer": "pain_nrs", "gte": 80}
    elif how == "threshold_not_int":
        flag(data, "COMPARTMENT")["when"] = {"answer": "pain_nrs", "gte": "8"}
    elif how == "two_operators":
        flag(data, "COMPARTMENT")["when"] = {"answer": "pain_nrs", "gte": 8, "lt": 10}
    elif how == "unknown_condition":
        flag(data, "PE_SUSPECT")["when"] = {"maybe": {"answer": "chest_symptoms", "is": True}}
    elif how == "unknown_derived":
        flag(data, "DVT_SUSPECT")["when"] = {"derived": "dvt_signs"}
    elif how == "unknown_flag_reference":
        flag(data, "FEVER_UNEXPLAINED")["when"] = {"not_flag": "SEPTIC"}
    elif how == "unknown_flag_code":
        flag(data, "PE_SUSPECT")["code"] = "PE"
    elif how == "duplicate_flag":
        data["flags"].append(dict(flag(data, "PE_SUSPECT")))
    elif how == "unknown_department":
        flag(data, "PE_SUSPECT")["department"] = "cardiac_surgery"
    elif how == "unknown_urgency":
        flag(data, "PE_SUSPECT")["urgency"] = "now"
    elif how == "red_flag_self_care":
        flag(data, "TUMOUR_SUSPECT")["urgency"] = "self_care"
    elif how == "advice_not_self_care":
        flag(data, "PERSISTENT")["self_care_advice"] = [{"ja": "休む", "en": "rest"}]
    elif how == "missing_label_language":
        flag(data, "PE_SUSPECT")["label"] = {"ja": "肺塞栓症の疑い"}
    elif how == "typo_key":
        flag(data, "PE_SUSPECT")["red_flags"] = True
    elif how == "cycle":
        flag(data, "PE_SUSPECT")["when"] = {"flag": "ACUTE_LIMB_ISCHAEMIA"}
        flag(data, "ACUTE_LIMB_ISCHAEMIA")["when"] = {"flag": "PE_SUSPECT"}
    elif how == "derived_cycle":
        data["derived"]["injury"]["when"] = {"derived": "acute"}
        data["derived"]["acute"]["when"] = {"derived": "injury"}
    elif how == "derived_uses_flag":
        data["derived"]["acute"]["when"] = {"flag": "PE_SUSPECT"}
    elif how == "screening_list_differs":
        data["screening_items"] = data["screening_items"][:-1]
    elif how == "wrong_questionnaire_version":
        data["questionnaire"]["version"] = "2.0.0"
    elif how == "urgency_without_default":
        flag(data, "RADICULOPATHY")["urgency"] = [
            {"level": "soon", "when": {"answer": "leg_numbness", "is": True}}]
    elif how == "wells_not_staff_item":
        data["wells"]["examination_items"] = ["calf_swelling_one_side"]
    elif how == "wells_unknown_item":
        data["wells"]["items"][0]["when"] = {"answer": "cancer", "is": True}
    elif how == "empty_any":
        flag(data, "PE_SUSPECT")["when"] = {"any": []}
    elif how == "bad_version":
        data["version"] = "1.0"
    else:
        raise AssertionError(how)


BAD = ["unknown_link_id", "unknown_code", "code_of_another_item", "wrong_operator_for_type",
       "is_on_choice", "threshold_out_of_range", "threshold_not_int", "two_operators",
       "unknown_condition", "unknown_derived", "unknown_flag_reference", "unknown_flag_code",
       "duplicate_flag", "unknown_department", "unknown_urgency", "red_flag_self_care",
       "advice_not_self_care", "missing_label_language", "typo_key", "cycle", "derived_cycle",
       "derived_uses_flag", "screening_list_differs", "wrong_questionnaire_version",
       "urgency_without_default", "wells_not_staff_item", "wells_unknown_item", "empty_any",
       "bad_version"]


@pytest.mark.parametrize("how", BAD)
def test_loader_rejects(tmp_path: Path, how: str) -> None:
    data = shipped()
    _bad(data, how)
    with pytest.raises(RuleSetError):
        load_ruleset_file(write(tmp_path, data))


def test_error_names_the_place(tmp_path: Path) -> None:
    data = shipped()
    flag(data, "COMPARTMENT")["when"]["any"][1]["all"][2] = {"answer": "leg_numb", "is": True}
    with pytest.raises(RuleSetError, match=re.escape("flags.COMPARTMENT.when.any[1].all[2]")):
        load_ruleset_file(write(tmp_path, data))


def test_small_bad_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("id: x\nversion: [1\n", encoding="utf-8")
    with pytest.raises(RuleSetError, match="not valid YAML"):
        load_ruleset_file(path)
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(RuleSetError):
        load_ruleset_file(path)


def test_a_changed_rule_set_changes_the_result(tmp_path: Path) -> None:
    data = shipped()
    data["version"] = "1.0.1"
    flag(data, "COMPARTMENT")["when"]["any"][1]["all"][1] = {"answer": "pain_nrs", "gte": 7}
    rs = load_ruleset_file(write(tmp_path, data))
    answers = {"onset": "INJ_TWIST", "pain_nrs": 7, "leg_numbness": True}
    assert "COMPARTMENT" in [f.code for f in evaluate(answers, rs).flags]
    assert "COMPARTMENT" not in [f.code for f in evaluate(answers).flags]
    assert evaluate(answers, rs).ruleset == "posterior-knee@1.0.1"


def test_yaml_has_no_python_and_only_the_two_self_care_rules_carry_advice() -> None:
    rs = load_ruleset()
    assert {f.code for f in rs.flags if f.advice} == {"RUN_OK", "OVERUSE_SELFCARE"}
    text = SOURCE.read_text(encoding="utf-8")
    assert "!!python" not in text


def test_resources_dirs() -> None:
    assert (fhir_profiles_dir() / "Questionnaire-posterior-knee.json").is_file()
    assert fhir_profiles_dir().name == "fhir_profiles"
    assert templates_dir().name == "templates"


def test_result_round_trip() -> None:
    result = evaluate({"calf_swelling_one_side": True, "active_cancer": True,
                       "immobility": ["SURGERY_12W"]})
    assert TriageResult.from_dict(result.to_dict()) == result
    with pytest.raises(ValueError):
        TriageResult.from_dict({"ruleset": 1})


def test_resources_fall_back_to_the_bundled_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import intake.resources as resources

    package = tmp_path / "site-packages" / "intake"
    package.mkdir(parents=True)
    monkeypatch.setattr(resources, "_PACKAGE_DIR", package)
    assert resources.fhir_profiles_dir() == package / "_bundled" / "fhir_profiles"
    assert resources.templates_dir() == package / "_bundled" / "templates"
    (tmp_path / "site-packages" / "fhir_profiles").mkdir()
    assert resources.fhir_profiles_dir() == tmp_path / "site-packages" / "fhir_profiles"
