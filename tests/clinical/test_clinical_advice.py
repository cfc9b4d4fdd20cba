"""Self-care advice: only for self-care outcomes, never pressing or massaging the knee."""

from __future__ import annotations

import re

import pytest

from intake.clinical import load_ruleset
from support.clinical import triage

RUN_OK = {"runner": True, "run_pattern": ["WARMUP_EASES", "TENSION_ONLY", "NOT_WORSE_NEXT_DAY"]}

# Words that would tell the patient to press, rub or massage: 揉む, マッサージ, 押す/押さえる,
# さする, ほぐす; massage, press, rub, knead.
FORBIDDEN_JA = re.compile(r"揉|もむ|マッサージ|押|さす[るり]|ほぐ|指圧|ツボ")
FORBIDDEN_EN = re.compile(r"massag|\bpress|\brub|knead|squeez|acupress", re.IGNORECASE)


def all_advice_texts() -> list[tuple[str, str]]:
    rs = load_ruleset()
    texts = [t for f in rs.flags for t in f.advice] + list(rs.common_advice)
    return [(t.ja, t.en) for t in texts]


def test_advice_exists_in_both_languages() -> None:
    texts = all_advice_texts()
    assert len(texts) >= 10
    for ja, en in texts:
        assert ja.strip() and en.strip()
        assert any(ord(ch) > 0x3000 for ch in ja)


@pytest.mark.parametrize(("ja", "en"), all_advice_texts())
def test_advice_never_recommends_pressing_or_massaging(ja: str, en: str) -> None:
    assert not FORBIDDEN_JA.search(ja), ja
    assert not FORBIDDEN_EN.search(en), en


def test_advice_covers_the_safe_self_care_of_the_sources() -> None:
    overuse = " ".join(t.en for t in load_ruleset().flag("OVERUSE_SELFCARE").advice)
    for word in ("Hamstring", "Calf stretch", "Rest", "cool", "warm", "little by little",
                 "leave that spot alone"):
        assert word in overuse
    common = " ".join(t.en for t in load_ruleset().common_advice)
    assert "119" in common and "2 weeks" in common


def test_overuse_outcome_has_advice() -> None:
    result = triage(onset="GRADUAL")
    assert result.urgency == "self_care"
    assert result.department == "rehabilitation"
    assert result.advice is not None
    assert len(result.advice.ja) == len(result.advice.en)
    d = result.to_dict()
    assert d["advice"] == {"ja": list(result.advice.ja), "en": list(result.advice.en)}


def test_run_ok_outcome_has_running_advice_first() -> None:
    result = triage(**RUN_OK)
    assert [f.code for f in result.flags] == ["RUN_OK"]
    assert result.advice is not None
    assert "running" in result.advice.en[0]
    both = triage(**RUN_OK, onset="GRADUAL")
    assert both.advice is not None
    assert len(both.advice.en) > len(result.advice.en)


@pytest.mark.parametrize(
    "changes",
    [
        {"onset": "GRADUAL", "calf_pain_tender": True},  # red flag
        {"onset": "GRADUAL", "catching": True},  # soon
        {"onset": "GRADUAL", "duration": "GT_3M"},  # routine
        {"onset": "GRADUAL", "fever": None},  # incomplete screening
        {**RUN_OK, "popliteal_lump": "SOFT"},
        {"onset": "SUDDEN_NO_INJURY"},  # nothing fired: routine, no advice
    ],
)
def test_no_advice_unless_self_care(changes: dict[str, object]) -> None:
    result = triage(**changes)
    assert result.urgency != "self_care"
    assert result.advice is None
    assert "advice" not in result.to_dict()
