"""Helpers of the clinical core tests (no app, no services: pure functions): answer sets
to start from, the rules engine on them, and hypothesis strategies built from the
Questionnaire. The worked cases are ``support.load_cases``."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from intake.clinical import TriageResult, evaluate, parse_simple_answers
from intake.clinical.questionnaire import ItemSpec, default_form_index

# A complete answer set (every S item answered) that fires no rule at all: a 40-year-old
# with a sudden, non-injury pain of 4/10 for a week and no other findings. Tests change
# a few answers and look at what fires.
QUIET: dict[str, Any] = {
    "age_years": 40,
    "sex": "F",
    "pregnancy_hormone": False,
    "pain_side": "L",
    "pain_location": "CENTRAL",
    "pain_nrs": 4,
    "onset": "SUDDEN_NO_INJURY",
    "duration": "D7_13",
    "walk4_now": True,
    "flex90": True,
    "giving_way": False,
    "locking": "NEVER",
    "catching": False,
    "popliteal_lump": "NONE",
    "calf_swelling_one_side": False,
    "whole_leg_swollen": False,
    "pitting_edema": False,
    "calf_pain_tender": False,
    "sudden_calf_pain_bruise": False,
    "red_hot_knee": False,
    "fever": False,
    "chest_symptoms": False,
    "foot_ischaemia": False,
    "claudication": False,
    "tense_calf": False,
    "radiating_pain": False,
    "leg_numbness": False,
    "leg_weakness": "NONE",
    "saddle_bladder": False,
    "morning_stiffness": "NONE",
    "small_joints": False,
    "night_rest_pain": False,
    "weight_loss": False,
    "active_cancer": False,
    "immobility": ["NONE"],
    "previous_vte": False,
    "runner": False,
}


# Baselines for the strategies: nothing fires / OVERUSE_SELFCARE / RUN_OK (+ OVERUSE).
BASELINES: list[dict[str, Any]] = [
    QUIET,
    {**QUIET, "onset": "GRADUAL", "age_years": 30},
    {**QUIET, "onset": "GRADUAL", "age_years": 30, "runner": True,
     "run_pattern": ["WARMUP_EASES", "TENSION_ONLY", "NOT_WORSE_NEXT_DAY"]},
]


def answers_with(**changes: Any) -> dict[str, Any]:
    """QUIET with some answers changed; a value of None removes the answer."""
    data = dict(QUIET)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def triage(**changes: Any) -> TriageResult:
    """Evaluate QUIET with ``changes`` (None = unanswered)."""
    return evaluate(parse_simple_answers(answers_with(**changes)))


def codes(result: TriageResult) -> list[str]:
    return [f.code for f in result.flags]


def evidence(result: TriageResult, code: str) -> dict[str, Any]:
    for flag in result.flags:
        if flag.code == code:
            return {e.link_id: e.answer for e in flag.evidence}
    raise AssertionError(f"{code} did not fire: {codes(result)}")


# --- hypothesis strategies built from the Questionnaire itself ---------------------------


def value_strategy(spec: ItemSpec) -> st.SearchStrategy[Any]:
    """Valid simple-format values for one item."""
    if spec.kind == "bool":
        return st.booleans()
    if spec.kind == "int":
        assert spec.min_value is not None and spec.max_value is not None
        return st.integers(spec.min_value, spec.max_value)
    if spec.kind == "choice":
        return st.sampled_from(spec.options)
    return st.lists(st.sampled_from(spec.options), min_size=1, unique=True)


def _items() -> dict[str, ItemSpec]:
    return dict(default_form_index().questions)


def random_answers() -> st.SearchStrategy[dict[str, Any]]:
    """Any valid answer set: every item, staff items included, answered or omitted."""
    return st.fixed_dictionaries(
        {}, optional={k: value_strategy(spec) for k, spec in _items().items()}
    )


@st.composite
def near_quiet_answers(draw: st.DrawFn) -> dict[str, Any]:
    """A quiet or self-care answer set with a few random changes and omissions.

    Fully random answer sets almost never end as self-care; these explore the boundary
    between self-care and everything else.
    """
    items = _items()
    ids = sorted(items)
    data = dict(draw(st.sampled_from(BASELINES)))
    for key in draw(st.lists(st.sampled_from(ids), max_size=4, unique=True)):
        data[key] = draw(value_strategy(items[key]))
    for key in draw(st.lists(st.sampled_from(ids), max_size=2, unique=True)):
        data.pop(key, None)
    return data


def any_answers() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(random_answers(), near_quiet_answers())
