"""How a question and its answer are written in what the plugin sends: the rationale
of the record system's RiskAssessment and the CDS Hooks cards, Japanese and English.

One definition for both (the tablet and the staff pages word answers through their own
UI catalogues). Texts come from the Questionnaire (``default_form_index``): a choice
answer is its option's display, a boolean ``はい``/``yes`` or ``いいえ``/``no``, a list
the items joined, a missing answer ``未回答``/``unanswered``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from intake.clinical.questionnaire import default_form_index

YES_NO: Final[Mapping[bool, tuple[str, str]]] = {True: ("はい", "yes"), False: ("いいえ", "no")}
UNANSWERED: Final = ("未回答", "unanswered")


def question_text(link_id: str) -> tuple[str, str]:
    """(Japanese, English) text of a question; its linkId when the form has no such
    question."""
    spec = default_form_index().questions.get(link_id)
    return (spec.text.ja, spec.text.en) if spec is not None else (link_id, link_id)


def answer_text(link_id: str, answer: object) -> tuple[str, str]:
    """(Japanese, English) text of an answer to the question ``link_id``: ``None`` is
    unanswered; a code the question does not offer, or any other value, is written as
    it is."""
    if answer is None:
        return UNANSWERED
    if isinstance(answer, bool):
        return YES_NO[answer]
    if isinstance(answer, list | tuple):
        parts = [answer_text(link_id, a) for a in answer]
        return "、".join(p[0] for p in parts), ", ".join(p[1] for p in parts)
    if isinstance(answer, str):
        spec = default_form_index().questions.get(link_id)
        option = spec.option_text.get(answer) if spec is not None and spec.option_text else None
        return (option.ja, option.en) if option is not None else (answer, answer)
    return str(answer), str(answer)
