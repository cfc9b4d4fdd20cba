"""The answers of an intake as the practitioners' pages show them: each question and
its answer in Japanese and English, in form order and by group, worded as the tablet
words them (staff examination items included)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from intake.clinical import Text
from intake.clinical.questionnaire import default_form_index


@dataclass(frozen=True)
class AnswerLine:
    link_id: str
    question: Text
    answer: Text


@dataclass(frozen=True)
class AnswerGroup:
    title: Text
    lines: list[AnswerLine]


def _question(link_id: str) -> Any:
    """The tablet's view of a question (staff items, never on the tablet, get one too)."""
    from intake.kiosk.form import Question, tablet_form

    found = tablet_form().questions.get(link_id)
    if found is not None:
        return found
    return Question(default_form_index().questions[link_id], None, "yesno")


def question_text(link_id: str) -> Text:
    index = default_form_index()
    spec = index.questions.get(link_id)
    return spec.text if spec is not None else Text(link_id, link_id)


def answer_text(link_id: str, value: Any) -> Text:
    """An answer as the tablet words it, in Japanese and English (``value`` None:
    unanswered, an empty text)."""
    from intake.kiosk.form import display_answer

    if link_id not in default_form_index().questions:
        return Text(str(value), str(value))
    if isinstance(value, tuple):
        value = list(value)
    question = _question(link_id)
    return Text(display_answer(question, value, "ja"), display_answer(question, value, "en"))


def answer_groups(answers: Mapping[str, Any]) -> list[AnswerGroup]:
    """The answered questions in form order, by group (the staff examination last)."""
    index = default_form_index()
    groups: list[AnswerGroup] = []
    for group_id in index.top_level:
        group = index.groups.get(group_id)
        if group is None:
            continue
        lines = [AnswerLine(k, index.questions[k].text, answer_text(k, answers[k]))
                 for k in group.children if k in index.questions and k in answers]
        if lines:
            groups.append(AnswerGroup(group.text, lines))
    return groups
