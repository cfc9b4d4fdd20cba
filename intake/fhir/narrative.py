"""The human-readable texts a bundle carries, Japanese then English: a prediction's
rationale (the answers that fired its flag), the Wells score note and the self-care
advice (the RiskAssessment's ``mitigation``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from intake.clinical.answer_display import answer_text, question_text


def rationale(flag: Mapping[str, Any]) -> str:
    """Readable text: the answers that made the flag fire, Japanese then English."""
    ja_lines = ["根拠となった回答:"]
    en_lines = ["Answers that fired this flag:"]
    for ev in flag["evidence"]:
        link_id = str(ev["linkId"])
        q_ja, q_en = question_text(link_id)
        a_ja, a_en = answer_text(link_id, ev.get("answer"))
        ja_lines.append(f"- {q_ja} [{link_id}]: {a_ja}")
        en_lines.append(f"- {q_en} [{link_id}]: {a_en}")
    note = flag.get("note")
    if isinstance(note, Mapping):
        if note.get("ja"):
            ja_lines.append(str(note["ja"]))
        if note.get("en"):
            en_lines.append(str(note["en"]))
    return "\n".join(ja_lines + [""] + en_lines)


def wells_text(wells: Mapping[str, Any]) -> str:
    """The Wells score, marked partial when the examination items are missing."""
    score = wells["score"]
    likely = bool(wells.get("likely"))
    partial = bool(wells.get("exam_missing"))
    ja = f"Wells スコア(2段階): {score}、DVT{'の可能性が高い' if likely else 'の可能性は低い'}"
    en = f"Wells score (two-level): {score}, DVT {'likely' if likely else 'unlikely'}"
    if partial:
        ja += "(部分的: 診察項目が未入力のため、問診の回答のみから算出)"
        en += " (partial: examination items not entered; computed from the answers only)"
    return f"{ja}\n{en}"


def advice_text(advice: object) -> str | None:
    """The self-care advice (``{"ja": ..., "en": ...}``, each a text or a list of
    points), or None when there is none."""
    if isinstance(advice, Mapping):
        parts = []
        for lang in ("ja", "en"):
            v = advice.get(lang)
            if isinstance(v, str) and v:
                parts.append(v)
            elif isinstance(v, list | tuple) and v:
                parts.append("\n".join(f"- {x}" for x in v))
        return "\n\n".join(parts) or None
    if isinstance(advice, str) and advice:
        return advice
    return None
