"""The triage result: plain, immutable values with a stable JSON form.

``to_dict`` is exactly the JSON line of the ``intake triage`` contract (CASES.md), with a
few documented extra keys; ``from_dict`` reads it back, so stored results can be
re-rendered without re-running the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from intake.clinical.answers import AnswerValue
from intake.clinical.questionnaire import Text


class EvidenceItem(NamedTuple):
    """One answer that made a flag fire (``answer`` None: the item was unanswered)."""

    link_id: str
    answer: AnswerValue | None

    def to_dict(self) -> dict[str, Any]:
        answer = list(self.answer) if isinstance(self.answer, tuple) else self.answer
        return {"linkId": self.link_id, "answer": answer}


@dataclass(frozen=True, slots=True)
class FlagResult:
    """One fired rule with its urgency, department and the answers behind it."""

    code: str
    urgency: str
    department: str
    also_departments: tuple[str, ...]
    red_flag: bool
    label: Text
    evidence: tuple[EvidenceItem, ...]
    note: Text | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "code": self.code,
            "urgency": self.urgency,
            "department": self.department,
            "also_departments": list(self.also_departments),
            "red_flag": self.red_flag,
            "label": self.label.to_dict(),
            "evidence": [e.to_dict() for e in self.evidence],
        }
        if self.note is not None:
            d["note"] = self.note.to_dict()
        return d


@dataclass(frozen=True, slots=True)
class WellsResult:
    """Two-level Wells score; ``exam_missing`` when staff examination items are absent."""

    score: int
    likely: bool
    exam_missing: bool

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "likely": self.likely, "exam_missing": self.exam_missing}


@dataclass(frozen=True, slots=True)
class Advice:
    """Self-care advice, the same points in Japanese and in English."""

    ja: tuple[str, ...]
    en: tuple[str, ...]

    def to_dict(self) -> dict[str, list[str]]:
        return {"ja": list(self.ja), "en": list(self.en)}


@dataclass(frozen=True, slots=True)
class TriageResult:
    """Outcome of one intake (SPEC section 4, "Outcome")."""

    ruleset: str
    urgency: str
    department: str
    departments: tuple[str, ...]
    red_flag: bool
    wells: WellsResult
    flags: tuple[FlagResult, ...]
    incomplete_items: tuple[str, ...] = ()
    advice: Advice | None = None

    @property
    def flag_codes(self) -> tuple[str, ...]:
        """Codes of the fired flags, in rule-table order."""
        return tuple(f.code for f in self.flags)

    def has_flag(self, code: str) -> bool:
        """Whether the flag ``code`` fired."""
        return any(f.code == code for f in self.flags)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; key order and list order are deterministic.

        ``advice`` is present only for a self-care outcome.
        """
        d: dict[str, Any] = {
            "ruleset": self.ruleset,
            "urgency": self.urgency,
            "department": self.department,
            "departments": list(self.departments),
            "red_flag": self.red_flag,
            "wells": self.wells.to_dict(),
            "flags": [f.to_dict() for f in self.flags],
            "incomplete_items": list(self.incomplete_items),
        }
        if self.advice is not None:
            d["advice"] = self.advice.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TriageResult:
        """Read back what :meth:`to_dict` wrote; raise ValueError on a malformed dict."""
        try:
            wells = d["wells"]
            advice = d.get("advice")
            return cls(
                ruleset=_str(d["ruleset"]),
                urgency=_str(d["urgency"]),
                department=_str(d["department"]),
                departments=tuple(_str(x) for x in _list(d["departments"])),
                red_flag=_bool(d["red_flag"]),
                wells=WellsResult(
                    score=_int(wells["score"]),
                    likely=_bool(wells["likely"]),
                    exam_missing=_bool(wells["exam_missing"]),
                ),
                flags=tuple(_flag(f) for f in _list(d["flags"])),
                incomplete_items=tuple(_str(x) for x in _list(d.get("incomplete_items", []))),
                advice=None
                if advice is None
                else Advice(
                    ja=tuple(_str(x) for x in _list(advice["ja"])),
                    en=tuple(_str(x) for x in _list(advice["en"])),
                ),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a triage result: {exc!r}") from exc


def _flag(f: Mapping[str, Any]) -> FlagResult:
    note = f.get("note")
    label = f.get("label") or {"ja": "", "en": ""}
    return FlagResult(
        code=_str(f["code"]),
        urgency=_str(f["urgency"]),
        department=_str(f["department"]),
        also_departments=tuple(_str(x) for x in _list(f.get("also_departments", []))),
        red_flag=_bool(f["red_flag"]),
        label=Text(_str(label["ja"]), _str(label["en"])),
        evidence=tuple(
            EvidenceItem(_str(e["linkId"]), _answer(e["answer"])) for e in _list(f["evidence"])
        ),
        note=None if note is None else Text(_str(note["ja"]), _str(note["en"])),
    )


def _answer(value: object) -> AnswerValue | None:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError("not a triage result: bad evidence answer")


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("not a triage result: expected a string")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("not a triage result: expected true or false")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("not a triage result: expected a whole number")
    return value


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("not a triage result: expected a list")
    return value
