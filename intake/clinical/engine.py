"""The rules engine: validated answers in, triage result out. Pure and deterministic.

No framework, database or clock: the web form, the API, the workers and the CLI all call
:func:`evaluate`, so there is exactly one place where clinical rules run.
"""

from __future__ import annotations

from collections.abc import Mapping

from intake.clinical.answers import Answers, AnswerValue, parse_simple_answers
from intake.clinical.conditions import EvalContext, Evidence
from intake.clinical.result import (
    Advice,
    EvidenceItem,
    FlagResult,
    TriageResult,
    WellsResult,
)
from intake.clinical.ruleset import SELF_CARE, FlagRule, RuleSet, load_ruleset


def evaluate(
    answers: Answers | Mapping[str, object], ruleset: RuleSet | None = None
) -> TriageResult:
    """Triage one intake.

    Rules are evaluated in dependency order (INCOMPLETE_SCREENING before the self-care
    rules that must see it) and reported in the rule table's order, which is also the
    tie-break for the primary department. A plain mapping is validated first, so an
    unchecked value can never reach the rules.
    """
    rs = ruleset if ruleset is not None else load_ruleset()
    if not isinstance(answers, Answers):
        answers = parse_simple_answers(answers)
    values: Mapping[str, AnswerValue] = answers._data  # plain dict: fastest lookups
    ctx = EvalContext(values)
    plan = rs.plan

    derived = ctx.derived
    for name, fn in plan.derived:
        derived[name] = fn(ctx)

    score = 0
    for weight, fn in plan.wells:
        if fn(ctx) is True:
            score += weight
    likely = score >= rs.wells.likely_at_or_above
    ctx.wells_likely = likely
    exam_missing = not all(e in values for e in rs.wells.examination_items)

    fired = ctx.fired
    for code, fn in plan.rules:
        fired[code] = fn(ctx) is True

    rank = plan.rank
    results: list[FlagResult] = []
    for rule in rs.flags:
        if fired[rule.code]:
            results.append(_flag_result(rule, ctx))

    if results:
        by_urgency = sorted(results, key=lambda f: rank[f.urgency])  # stable: table order
        urgency = by_urgency[0].urgency
        department = by_urgency[0].department
        departments = tuple(dict.fromkeys(f.department for f in by_urgency))
    else:
        urgency = rs.default_urgency
        department = rs.default_department
        departments = (department,)

    advice = None
    if urgency == SELF_CARE:
        points = [t for rule in rs.flags if fired[rule.code] for t in rule.advice]
        points.extend(rs.common_advice)
        advice = Advice(ja=tuple(t.ja for t in points), en=tuple(t.en for t in points))

    return TriageResult(
        ruleset=rs.key,
        urgency=urgency,
        department=department,
        departments=departments,
        red_flag=any(f.red_flag for f in results),
        wells=WellsResult(score=score, likely=likely, exam_missing=exam_missing),
        flags=tuple(results),
        incomplete_items=tuple(i for i in rs.screening_items if i not in values),
        advice=advice,
    )


def _flag_result(rule: FlagRule, ctx: EvalContext) -> FlagResult:
    urgency = rule.urgency[-1].level
    for step in rule.urgency:
        if step.when is None or step.when.fn(ctx) is True:
            urgency = step.level
            break
    evidence: Evidence = {}
    rule.when.collect(ctx, True, evidence)
    note = None
    if rule.note is not None and rule.note.when.fn(ctx) is True:
        note = rule.note.text
    return FlagResult(
        code=rule.code,
        urgency=urgency,
        department=rule.department,
        also_departments=rule.also_departments,
        red_flag=rule.red_flag,
        label=rule.label,
        evidence=tuple(map(EvidenceItem._make, evidence.items())),
        note=note,
    )
