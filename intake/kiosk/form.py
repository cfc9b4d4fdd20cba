"""The tablet form, derived from the FHIR Questionnaire: screens, controls and enableWhen.

The Questionnaire JSON is the one source of truth for the questions, their texts in
Japanese and English, answer codes, ranges, which items are red-flag screening items
(``required``) and when an item is shown (``enableWhen``). This module turns it into
what the tablet needs: one screen per top-level group (the staff examination group,
marked ``questionnaire-hidden``, is never a screen), a control for each question, and
an evaluator for ``enableWhen`` that the server applies on every request. Nothing here
imports Flask or the database, so the rules about what the patient sees are testable
on their own.

Answers are handled in the simple format of CASES.md (question id -> bool, int, code or
list of codes), the format the draft stores and ``parse_simple_answers`` validates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from intake.clinical.questionnaire import (
    FormIndex,
    ItemSpec,
    QuestionnaireError,
    Text,
    build_form_index,
    load_questionnaire,
)
from intake.constants import CS_ANSWER
from intake.kiosk.i18n import t

Scalar = bool | int | str
Control = Literal["yesno", "choice", "multi", "number", "scale", "knee_side", "knee_location"]
Operator = Literal["=", "!=", "exists", ">", "<", ">=", "<="]

EXT_ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"
# The two questions answered on the picture of the back of both knees. The picture needs
# these codes; with other codes the question falls back to plain buttons.
KNEE_SIDE_ITEM = "pain_side"
KNEE_SIDE_CODES = ("L", "R", "BOTH")
KNEE_LOCATION_ITEM = "pain_location"
KNEE_LOCATION_CODES = ("MEDIAL", "CENTRAL", "LATERAL")
# An answer code that excludes every other code of a multi item ("none of these").
EXCLUSIVE_CODE = "NONE"
_OPERATORS = frozenset({"=", "!=", "exists", ">", "<", ">=", "<="})


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``enableWhen`` entry: question, operator and the answer it is compared with."""

    question: str
    op: Operator
    value: Scalar

    def holds(self, answers: Mapping[str, Any]) -> bool:
        """FHIR R4 semantics: ``=`` is true when some answer equals the value, ``!=``
        when none does (so an unanswered question satisfies ``!=``: the question about
        pregnancy is shown until the patient says they are male, the safer reading)."""
        given = answers.get(self.question)
        values: list[Any] = list(given) if isinstance(given, list | tuple) else (
            [] if given is None else [given])
        if self.op == "exists":
            return bool(values) is self.value
        equal = [v for v in values if type(v) is type(self.value) and v == self.value]
        if self.op == "=":
            return bool(equal)
        if self.op == "!=":
            return not equal
        numbers = [v for v in values if type(v) is int]
        target = self.value
        if type(target) is not int:
            return False
        if self.op == ">":
            return any(v > target for v in numbers)
        if self.op == "<":
            return any(v < target for v in numbers)
        if self.op == ">=":
            return any(v >= target for v in numbers)
        return any(v <= target for v in numbers)

    def to_json(self) -> list[Any]:
        return [self.question, self.op, self.value]


@dataclass(frozen=True, slots=True)
class EnableRule:
    """All ``enableWhen`` entries of an item with its ``enableBehavior``."""

    behavior: Literal["any", "all"]
    conditions: tuple[Condition, ...]

    def holds(self, answers: Mapping[str, Any]) -> bool:
        results = (c.holds(answers) for c in self.conditions)
        return any(results) if self.behavior == "any" else all(results)

    @property
    def questions(self) -> frozenset[str]:
        return frozenset(c.question for c in self.conditions)


@dataclass(frozen=True, slots=True)
class Question:
    """A question on a screen: its Questionnaire spec, when it shows, and its control."""

    spec: ItemSpec
    rule: EnableRule | None
    control: Control

    @property
    def link_id(self) -> str:
        return self.spec.link_id

    @property
    def required(self) -> bool:
        return self.spec.required

    def text(self, lang: str) -> str:
        return pick(self.spec.text, lang)

    def options(self, lang: str) -> list[tuple[str, str]]:
        """(code, text) pairs in the Questionnaire's order."""
        texts = self.spec.option_text or {}
        return [(code, pick(texts[code], lang)) for code in self.spec.options]

    def option_text(self, code: str, lang: str) -> str:
        texts = self.spec.option_text or {}
        return pick(texts[code], lang) if code in texts else code


@dataclass(frozen=True, slots=True)
class Section:
    """One screen of the tablet: a top-level group of the Questionnaire."""

    link_id: str
    text: Text
    rule: EnableRule | None
    questions: tuple[Question, ...]

    def title(self, lang: str) -> str:
        return pick(self.text, lang)

    @property
    def link_ids(self) -> tuple[str, ...]:
        return tuple(q.link_id for q in self.questions)


@dataclass(frozen=True, slots=True)
class TabletForm:
    """Every screen of the tablet, in order, and an index of its questions."""

    sections: tuple[Section, ...]
    questions: Mapping[str, Question]
    section_of: Mapping[str, str]

    @property
    def screening_ids(self) -> frozenset[str]:
        return frozenset(k for k, q in self.questions.items() if q.required)

    def section(self, link_id: str) -> Section:
        return next(s for s in self.sections if s.link_id == link_id)

    # --- enableWhen -------------------------------------------------------------------

    def enabled(self, answers: Mapping[str, Any]) -> frozenset[str]:
        """Ids of the sections and questions shown for these answers.

        An answer to a disabled question does not count in other conditions (FHIR: a
        disabled item has no answer), so the evaluation repeats until nothing changes.
        """
        enabled = frozenset(self.section_of) | frozenset(s.link_id for s in self.sections)
        for _ in range(len(self.questions) + 2):
            visible = {k: v for k, v in answers.items() if k in enabled}
            now: set[str] = set()
            for section in self.sections:
                if section.rule is not None and not section.rule.holds(visible):
                    continue
                now.add(section.link_id)
                for q in section.questions:
                    if q.rule is None or q.rule.holds(visible):
                        now.add(q.link_id)
            if now == enabled:
                break
            enabled = frozenset(now)
        return enabled

    def effective_answers(self, answers: Mapping[str, Any]) -> dict[str, Any]:
        """The answers of shown questions only, in Questionnaire order.

        What is submitted: an answer to a question the patient can no longer see (the
        injury questions after changing 'how did it start' to 'gradually') is stale and
        would make the QuestionnaireResponse invalid.
        """
        enabled = self.enabled(answers)
        return {k: answers[k] for k in self.questions if k in enabled and k in answers}

    def missing_required(self, answers: Mapping[str, Any],
                         section: Section | None = None) -> list[str]:
        """Screening (S) questions that are shown but unanswered, in form order."""
        enabled = self.enabled(answers)
        sections = [section] if section is not None else list(self.sections)
        return [q.link_id for s in sections for q in s.questions
                if q.required and q.link_id in enabled and answers.get(q.link_id) in
                (None, [], ())]

    def enabled_sections(self, answers: Mapping[str, Any]) -> list[int]:
        """Indexes (into ``sections``) of the screens shown for these answers."""
        enabled = self.enabled(answers)
        return [i for i, s in enumerate(self.sections) if s.link_id in enabled]

    def client_rule(self, question: Question, answers: Mapping[str, Any]) -> EnableRule | None:
        """The part of a question's enableWhen the tablet's script applies at once.

        Conditions on questions of other screens are decided by the server (their
        answers are known); only conditions on questions of the same screen are left
        for the script. Returns None when nothing is left to decide on the screen.
        """
        rule = question.rule
        if rule is None:
            return None
        here = self.section_of[question.link_id]
        local = tuple(c for c in rule.conditions if self.section_of.get(c.question) == here)
        if not local:
            return None
        enabled = self.enabled(answers)
        visible = {k: v for k, v in answers.items() if k in enabled}
        remote = [c.holds(visible) for c in rule.conditions if c not in local]
        if rule.behavior == "any" and any(remote):
            return None  # already shown whatever is answered here
        if rule.behavior == "all" and not all(remote):
            return None  # already hidden whatever is answered here
        return EnableRule(rule.behavior, local)


def pick(text: Text, lang: str) -> str:
    """The text in ``lang`` (English or Japanese, Japanese being the primary)."""
    return text.en if lang == "en" else text.ja


def _enable_rule(item: Mapping[str, Any], kinds: Mapping[str, ItemSpec]) -> EnableRule | None:
    entries = item.get("enableWhen")
    if not entries:
        return None
    link_id = item["linkId"]
    conditions: list[Condition] = []
    for entry in entries:
        question, op = entry.get("question"), entry.get("operator")
        if question not in kinds:
            raise QuestionnaireError(f"{link_id}: enableWhen refers to unknown {question!r}")
        if op not in _OPERATORS:
            raise QuestionnaireError(f"{link_id}: enableWhen operator {op!r} not supported")
        value: Scalar
        if "answerCoding" in entry:
            coding = entry["answerCoding"]
            if coding.get("system") != CS_ANSWER or coding.get("code") not in \
                    kinds[question].options:
                raise QuestionnaireError(f"{link_id}: enableWhen code is not an option "
                                         f"of {question}")
            value = str(coding["code"])
        elif "answerBoolean" in entry:
            value = bool(entry["answerBoolean"])
        elif "answerInteger" in entry:
            value = int(entry["answerInteger"])
        else:
            raise QuestionnaireError(f"{link_id}: enableWhen answer type not supported")
        conditions.append(Condition(question, op, value))
    behavior = item.get("enableBehavior", "all")
    if behavior not in ("any", "all"):
        raise QuestionnaireError(f"{link_id}: enableBehavior {behavior!r} not supported")
    return EnableRule(behavior, tuple(conditions))


def _item_control(item: Mapping[str, Any]) -> str | None:
    for ext in item.get("extension", ()):
        if ext.get("url") == EXT_ITEM_CONTROL:
            for coding in ext.get("valueCodeableConcept", {}).get("coding", ()):
                code = coding.get("code")
                if isinstance(code, str):
                    return code
    return None


def _control(item: Mapping[str, Any], spec: ItemSpec) -> Control:
    if spec.kind == "bool":
        return "yesno"
    if spec.kind == "int":
        small_range = (spec.min_value == 0 and spec.max_value is not None
                       and spec.max_value <= 10)
        return "scale" if small_range or _item_control(item) == "slider" else "number"
    if spec.kind == "multi":
        return "multi"
    if spec.link_id == KNEE_SIDE_ITEM and set(KNEE_SIDE_CODES) <= set(spec.options):
        return "knee_side"
    if spec.link_id == KNEE_LOCATION_ITEM and set(KNEE_LOCATION_CODES) <= set(spec.options):
        return "knee_location"
    return "choice"


def build_tablet_form(questionnaire: Mapping[str, Any]) -> TabletForm:
    """The tablet's screens for a Questionnaire; staff-only items are left out.

    Raises QuestionnaireError for a structure the tablet cannot show (a question outside
    any group, a group inside a group), so an unsupported Questionnaire fails at start-up
    rather than showing a patient half a form.
    """
    index: FormIndex = build_form_index(questionnaire)
    sections: list[Section] = []
    questions: dict[str, Question] = {}
    section_of: dict[str, str] = {}
    for group in questionnaire.get("item", []):
        link_id = group["linkId"]
        if link_id in index.questions:
            raise QuestionnaireError(f"{link_id}: a question outside a group is not supported")
        if index.groups[link_id].staff_only:
            continue  # examination findings: entered by staff, never on the tablet
        items: list[Question] = []
        for item in group.get("item", []):
            child = item["linkId"]
            if child not in index.questions:
                raise QuestionnaireError(f"{child}: groups inside groups are not supported")
            spec = index.questions[child]
            if spec.staff_only:
                continue
            question = Question(spec, _enable_rule(item, index.questions), _control(item, spec))
            items.append(question)
            questions[child] = question
            section_of[child] = link_id
        if items:
            sections.append(Section(link_id, index.groups[link_id].text,
                                    _enable_rule(group, index.questions), tuple(items)))
    for question in questions.values():
        for dep in question.rule.questions if question.rule else ():
            if dep not in questions:
                raise QuestionnaireError(
                    f"{question.link_id}: shown depending on {dep}, which the tablet never asks")
    return TabletForm(tuple(sections), questions, section_of)


@lru_cache(maxsize=1)
def tablet_form() -> TabletForm:
    """The tablet form of the shipped knee Questionnaire (built once per process)."""
    return build_tablet_form(load_questionnaire())


def display_answer(question: Question, value: Any, lang: str) -> str:
    """An answer as the patient reads it on the review screen."""
    if value is None or value == []:
        return ""
    spec = question.spec
    if spec.kind == "bool":
        return t("yes" if value else "no", lang)
    if spec.kind == "int":
        return str(value)
    if spec.kind == "multi":
        return "、".join(question.option_text(c, lang) for c in value) if lang == "ja" \
            else ", ".join(question.option_text(c, lang) for c in value)
    return question.option_text(str(value), lang)
