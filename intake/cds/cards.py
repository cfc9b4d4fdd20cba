"""CDS Hooks cards from a triage result: plain values in, a card (JSON dict) out.

No Flask and no database here, so the wording can be tested on its own.

The format (CDS Hooks 2.0):

* ``indicator``: ``critical`` for an emergency, ``warning`` for same day, ``info``
  otherwise (soon, routine, self-care). A response that could not be evaluated is a
  ``warning`` too: the clinician must read the answers themselves.
* ``summary``: Japanese (the users are clinic staff in Japan), under 140 characters:
  the urgency, then the most urgent finding and how many more.
* ``detail``: GitHub-flavoured Markdown, Japanese first, then the same in English:
  the statement that triage support does not diagnose, urgency and departments, every
  flag with the answers that fired it (question text and answer), the Wells score,
  unanswered screening items and, for a self-care outcome only, the self-care points.
* ``overrideReasons``: this service's reasons (a client may add its own).
* ``uuid``: new per card; the feedback endpoint links feedback to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from intake.clinical import FlagResult, TriageResult
from intake.clinical.answer_display import answer_text, question_text
from intake.clinical.terminology import code_display, urgency_rank
from intake.constants import CS_CDS_OVERRIDE_REASON, CS_DEPARTMENT, CS_URGENCY

SUMMARY_LIMIT: Final = 139  # CDS Hooks: "<140-character summary"
INDICATOR_BY_URGENCY: Final[Mapping[str, str]] = {
    "emergency": "critical",
    "same_day": "warning",
    "soon": "info",
    "routine": "info",
    "self_care": "info",
}
SOURCE_LABEL: Final = "膝の裏の痛み トリアージ支援 / knee intake triage support"
TOPIC_JA: Final = "膝の裏の痛み問診"
DISCLAIMER_JA: Final = "トリアージ支援であり、診断ではありません。判断は診察で行ってください。"
DISCLAIMER_EN: Final = ("Triage support for staff and clinicians; it does not diagnose. "
                        "Decide on examination.")

# (code, 日本語, English): offered on every card for the clinician who overrides it.
OVERRIDE_REASONS: Final[tuple[tuple[str, str, str], ...]] = (
    ("already-assessed", "診察で評価済み", "already assessed in person"),
    ("not-applicable", "この患者には当てはまらない", "does not apply to this patient"),
    ("answers-inaccurate", "回答が実際の状態と異なる", "the answers do not match the patient"),
    ("other", "その他", "other"),
)
_STATUS_NOTE: Final[Mapping[str, tuple[str, str]]] = {
    "in-progress": ("回答は入力途中です(未完了)。", "The response is still in progress."),
    "stopped": ("回答は途中で中止されています。", "The response was stopped before the end."),
}


@dataclass(frozen=True)
class Card:
    """One card and what is kept about it (codes only) for feedback."""

    uuid: str
    indicator: str
    summary: str
    detail: str
    urgency: str | None
    ruleset: str | None
    flag_codes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "summary": self.summary,
            "indicator": self.indicator,
            "detail": self.detail,
            "source": {"label": SOURCE_LABEL},
            "overrideReasons": override_reason_codings(),
        }


def override_reason_codings() -> list[dict[str, str]]:
    return [{"system": CS_CDS_OVERRIDE_REASON, "code": code, "display": f"{ja} / {en}"}
            for code, ja, en in OVERRIDE_REASONS]


def _label(system: str, code: str) -> tuple[str, str]:
    found = code_display(system, code)
    if found is None:
        return code, code
    return found[0], found[1] or code


def _md(text: str) -> str:
    """Escape Markdown so question and answer texts render as written."""
    out = []
    for ch in text:
        if ch in "\\`*_[]<>#|~":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _ordered_flags(result: TriageResult) -> list[FlagResult]:
    """Most urgent first; the rule order breaks ties (as the worklist sorts)."""
    return sorted(result.flags, key=lambda f: urgency_rank(f.urgency))


def summary_text(result: TriageResult) -> str:
    """【urgency】topic: the most urgent finding (and how many more), under 140 chars."""
    urgency_ja = _label(CS_URGENCY, result.urgency)[0]
    flags = _ordered_flags(result)
    head = f"【{urgency_ja}】{TOPIC_JA}: "
    if not flags:
        return _fit(head + "危険徴候に該当する回答はありません", "")
    more = f" ほか{len(flags) - 1}件" if len(flags) > 1 else ""
    return _fit(head + flags[0].label.ja, more)


def _fit(text: str, tail: str) -> str:
    if len(text) + len(tail) <= SUMMARY_LIMIT:
        return text + tail
    return text[: SUMMARY_LIMIT - len(tail) - 1] + "…" + tail


def triage_card(result: TriageResult, *, card_uuid: str, qr_status: str = "completed") -> Card:
    """The card for one evaluated questionnaire response."""
    return Card(
        uuid=card_uuid,
        indicator=INDICATOR_BY_URGENCY.get(result.urgency, "warning"),
        summary=summary_text(result),
        detail=_detail(result, qr_status),
        urgency=result.urgency,
        ruleset=result.ruleset,
        flag_codes=result.flag_codes,
    )


def not_evaluated_card(problem: str, *, card_uuid: str) -> Card:
    """The response exists but cannot be triaged: say so rather than stay silent, so
    nobody reads the absence of a card as the absence of red flags."""
    detail = "\n".join([
        f"**{DISCLAIMER_JA}**",
        "",
        "膝の裏の痛みの問診票の回答を自動でトリアージできませんでした。"
        "回答を直接確認し、危険徴候の有無を判断してください。",
        "",
        f"理由: {_md(problem)}",
        "",
        "---",
        "",
        f"**{DISCLAIMER_EN}**",
        "",
        "The knee questionnaire response could not be triaged automatically. Read the "
        "answers yourself and check for red flags.",
        "",
        f"Reason: {_md(problem)}",
    ])
    return Card(uuid=card_uuid, indicator="warning",
                summary=f"{TOPIC_JA}を自動評価できませんでした。回答を直接確認してください。",
                detail=detail, urgency=None, ruleset=None, flag_codes=())


def _detail(result: TriageResult, qr_status: str) -> str:
    flags = _ordered_flags(result)
    return "\n".join([
        *_section(result, flags, qr_status, lang=0),
        "",
        "---",
        "",
        *_section(result, flags, qr_status, lang=1),
    ])


def _section(result: TriageResult, flags: Sequence[FlagResult], qr_status: str,
             *, lang: int) -> list[str]:
    ja = lang == 0
    urgency = _label(CS_URGENCY, result.urgency)[lang]
    departments = [_label(CS_DEPARTMENT, d)[lang] for d in result.departments]
    lines = [f"**{DISCLAIMER_JA if ja else DISCLAIMER_EN}**", ""]
    note = _STATUS_NOTE.get(qr_status)
    if note is not None:
        lines += [note[lang], ""]
    lines.append(f"{'緊急度' if ja else 'Urgency'}: **{_md(urgency)}**  ")
    if departments:
        label = "推奨する受診先" if ja else "Suggested departments"
        lines.append(f"{label}: {_md(', '.join(departments))}  ")
    lines.append(f"{'ルールセット' if ja else 'Rule set'}: {_md(result.ruleset)}")
    lines += ["", f"### {'該当した所見' if ja else 'Findings'}"]
    if not flags:
        lines.append("- " + ("危険徴候に該当する回答はありません。" if ja
                             else "No answer meets a red-flag rule."))
    for i, flag in enumerate(flags, 1):
        name = flag.label.ja if ja else flag.label.en
        red = (", 赤旗" if ja else ", red flag") if flag.red_flag else ""
        flag_urgency = _label(CS_URGENCY, flag.urgency)[lang]
        lines.append(f"{i}. **{_md(name)}** (`{flag.code}`{red}): {_md(flag_urgency)}")
        for ev in flag.evidence:
            question = question_text(ev.link_id)[lang]
            answer = answer_text(ev.link_id, ev.answer)[lang]
            lines.append(f"    - {_md(question)}: **{_md(answer)}**")
        if flag.note is not None:
            lines.append(f"    - {_md(flag.note.ja if ja else flag.note.en)}")
    wells = result.wells
    if ja:
        partial = "(部分的: 診察項目が未入力)" if wells.exam_missing else ""
        likely = "DVTの可能性が高い" if wells.likely else "DVTの可能性は低い"
        lines += ["", f"Wells スコア(2段階): {wells.score}、{likely}{partial}"]
    else:
        partial = " (partial: examination items not entered)" if wells.exam_missing else ""
        likely = "DVT likely" if wells.likely else "DVT unlikely"
        lines += ["", f"Wells score (two-level): {wells.score}, {likely}{partial}"]
    if result.incomplete_items:
        missing = ", ".join(question_text(i)[lang] for i in result.incomplete_items)
        head = "未回答の危険徴候項目" if ja else "Unanswered red-flag screening items"
        lines += ["", f"{head}: {_md(missing)}"]
    if result.advice is not None:
        points = result.advice.ja if ja else result.advice.en
        head = "セルフケアの案内(患者向け)" if ja else "Self-care points (for the patient)"
        lines += ["", f"### {head}", *[f"- {_md(p)}" for p in points]]
    return lines
