"""Loading and checking a rule set (``rulesets/<name>.yaml``).

The rule set is clinical content in a file a clinician can read and review; this module
turns it into compiled conditions and refuses to load anything it cannot fully check:
unknown keys, unknown question ids or codes, urgency levels or departments that are not
in the plugin's CodeSystems (or urgency levels in another order than the CodeSystem's
rank), a red flag that could end as self-care, a screening list that differs from the
Questionnaire's required items, or rules that depend on each other in a circle.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import yaml

from intake.clinical import terminology
from intake.clinical.conditions import Fn, Node, RuleSetError, Scope, compile_condition
from intake.clinical.questionnaire import FormIndex, Text, default_form_index
from intake.constants import (
    CS_DEPARTMENT,
    CS_FLAG,
    QUESTIONNAIRE_URL,
    QUESTIONNAIRE_VERSION,
    RULESET_ID,
)

RULESETS_DIR = Path(__file__).resolve().parent / "rulesets"
SELF_CARE = "self_care"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


@dataclass(frozen=True, slots=True)
class UrgencyRule:
    """One step of a flag's urgency: ``level`` when ``when`` is true (None: otherwise)."""

    level: str
    when: Node | None


@dataclass(frozen=True, slots=True)
class Note:
    """A note attached to a fired flag when its condition holds."""

    when: Node
    text: Text


@dataclass(frozen=True, slots=True)
class FlagRule:
    """One row of the rule table (SPEC section 4)."""

    code: str
    order: int
    label: Text
    red_flag: bool
    urgency: tuple[UrgencyRule, ...]
    department: str
    also_departments: tuple[str, ...]
    when: Node
    note: Note | None
    advice: tuple[Text, ...]


@dataclass(frozen=True, slots=True)
class WellsItem:
    points: int
    label: str
    when: Node


@dataclass(frozen=True, slots=True)
class WellsSpec:
    likely_at_or_above: int
    examination_items: tuple[str, ...]
    items: tuple[WellsItem, ...]


@dataclass(frozen=True, slots=True)
class EvaluationPlan:
    derived: tuple[tuple[str, Fn], ...]
    wells: tuple[tuple[int, Fn], ...]
    rules: tuple[tuple[str, Fn], ...]
    rank: Mapping[str, int]


@dataclass(frozen=True)
class RuleSet:
    """A loaded, fully checked rule set."""

    id: str
    version: str
    title: Text
    index: FormIndex
    urgency_levels: tuple[str, ...]  # most urgent first
    default_urgency: str
    default_department: str
    screening_items: tuple[str, ...]
    derived: tuple[tuple[str, Node], ...]  # in dependency order
    wells: WellsSpec
    flags: tuple[FlagRule, ...]  # in table order (reporting, department tie-break)
    evaluation_order: tuple[FlagRule, ...]  # in dependency order
    common_advice: tuple[Text, ...]
    source: str

    def __repr__(self) -> str:
        return f"<RuleSet {self.key} from {self.source}>"

    @cached_property
    def plan(self) -> EvaluationPlan:
        """Flat tuples of compiled functions, so one evaluation does no lookups."""
        return EvaluationPlan(
            derived=tuple((name, node.fn) for name, node in self.derived),
            wells=tuple((item.points, item.when.fn) for item in self.wells.items),
            rules=tuple((rule.code, rule.when.fn) for rule in self.evaluation_order),
            rank=dict(self.urgency_rank),
        )

    @property
    def key(self) -> str:
        """``id@version``: what every result and every FHIR resource records."""
        return f"{self.id}@{self.version}"

    @cached_property
    def urgency_rank(self) -> Mapping[str, int]:
        """Level -> position, 0 being the most urgent."""
        return {level: i for i, level in enumerate(self.urgency_levels)}

    def flag(self, code: str) -> FlagRule:
        """The rule with this flag code (KeyError when there is none)."""
        for rule in self.flags:
            if rule.code == code:
                return rule
        raise KeyError(code)


def _codes_of(system: str) -> list[str]:
    found = list(terminology.codes(system))
    if not found:
        raise RuleSetError(f"the plugin's FHIR artefacts define no CodeSystem {system}")
    return found


class _Reader:
    """Strict access to a YAML mapping, with the path for error messages."""

    def __init__(self, raw: object, path: str, allowed: set[str], required: set[str]) -> None:
        if not isinstance(raw, Mapping):
            raise RuleSetError(f"{path}: expected a mapping")
        unknown = set(raw) - allowed
        if unknown:
            raise RuleSetError(f"{path}: unknown keys {sorted(map(str, unknown))}")
        missing = required - set(raw)
        if missing:
            raise RuleSetError(f"{path}: missing keys {sorted(missing)}")
        self.raw: Mapping[str, Any] = raw
        self.path = path

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def string(self, key: str) -> str:
        value = self.raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise RuleSetError(f"{self.path}.{key}: expected a non-empty string")
        return value

    def text(self, key: str) -> Text:
        return _text(self.raw.get(key), f"{self.path}.{key}")

    def one_of(self, key: str, allowed: Sequence[str]) -> str:
        value = self.raw.get(key)
        if value not in allowed:
            raise RuleSetError(f"{self.path}.{key}: {value!r} is not one of {list(allowed)}")
        return str(value)


def _text(raw: object, path: str) -> Text:
    r = _Reader(raw, path, {"ja", "en"}, {"ja", "en"})
    return Text(ja=r.string("ja"), en=r.string("en"))


def _texts(raw: object, path: str) -> tuple[Text, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise RuleSetError(f"{path}: expected a list of {{ja, en}} texts")
    return tuple(_text(t, f"{path}[{i}]") for i, t in enumerate(raw))


def _topological(names: Sequence[str], deps: Mapping[str, frozenset[str]], what: str) -> list[str]:
    """Dependency order, keeping the given order wherever dependencies allow."""
    done: list[str] = []
    placed: set[str] = set()
    pending = list(names)
    while pending:
        for name in pending:
            if deps[name] <= placed:
                done.append(name)
                placed.add(name)
                pending.remove(name)
                break
        else:
            raise RuleSetError(f"{what} depend on each other in a circle: {pending}")
    return done


def load_ruleset_file(path: str | Path, *, index: FormIndex | None = None) -> RuleSet:
    """Load and check a rule set from ``path`` (not cached; for tests and reviews).

    Raises RuleSetError naming the place of the first problem found.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RuleSetError(f"{path.name}: not valid YAML: {exc}") from exc
    return build_ruleset(raw, index=index or default_form_index(), source=str(path))


def build_ruleset(raw: object, *, index: FormIndex, source: str = "<memory>") -> RuleSet:
    """Check and compile an already-parsed rule set document."""
    top = _Reader(
        raw, "ruleset",
        {"id", "version", "title", "questionnaire", "urgency_levels", "when_no_flag_fires",
         "screening_items", "derived", "wells", "flags", "self_care_advice_common"},
        {"id", "version", "title", "questionnaire", "urgency_levels", "when_no_flag_fires",
         "screening_items", "derived", "wells", "flags"},
    )
    ruleset_id = top.string("id")
    version = top.string("version")
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise RuleSetError("ruleset.version: expected MAJOR.MINOR.PATCH")

    q = _Reader(top.get("questionnaire"), "ruleset.questionnaire", {"url", "version"},
                {"url", "version"})
    if (q.get("url"), q.get("version")) != (index.url, index.version):
        raise RuleSetError(
            f"ruleset.questionnaire: written for {q.get('url')}|{q.get('version')}, "
            f"but the Questionnaire is {index.url}|{index.version}"
        )

    department_codes = _codes_of(CS_DEPARTMENT)
    flag_codes_known = _codes_of(CS_FLAG)

    # The order is the urgency CodeSystem's (its rank), which every screen follows too.
    levels = top.get("urgency_levels")
    order = list(terminology.urgency_order())
    if not isinstance(levels, list) or list(map(str, levels)) != order:
        raise RuleSetError(f"ruleset.urgency_levels: must list exactly {order}, most urgent "
                           "first")
    urgency_levels = tuple(str(v) for v in levels)

    default = _Reader(top.get("when_no_flag_fires"), "ruleset.when_no_flag_fires",
                      {"urgency", "department"}, {"urgency", "department"})
    default_urgency = default.one_of("urgency", urgency_levels)
    default_department = default.one_of("department", department_codes)

    screening = top.get("screening_items")
    if not isinstance(screening, list) or set(screening) != set(index.screening_ids) or len(
        set(screening)
    ) != len(screening):
        raise RuleSetError(
            "ruleset.screening_items: must list exactly the Questionnaire's required items "
            f"{sorted(index.screening_ids)}"
        )

    # Derived values: compiled first, evaluated in dependency order.
    raw_derived = top.get("derived")
    if not isinstance(raw_derived, Mapping):
        raise RuleSetError("ruleset.derived: expected a mapping of name to definition")
    derived_table: dict[str, Node] = {}
    derived_names = [str(n) for n in raw_derived]
    for name in derived_names:
        d = _Reader(raw_derived[name], f"ruleset.derived.{name}", {"meaning", "when"},
                    {"when"})
        scope = Scope(index, derived_names, derived_table, path=["derived", name, "when"])
        derived_table[name] = compile_condition(d.get("when"), scope)
    derived_order = _topological(
        derived_names, {n: derived_table[n].derived_refs for n in derived_names}, "derived values"
    )

    wells = _wells(top.get("wells"), index, derived_names, derived_table)

    # Flags: first collect the codes (rules may refer to any other rule), then compile.
    raw_flags = top.get("flags")
    if not isinstance(raw_flags, list) or not raw_flags:
        raise RuleSetError("ruleset.flags: expected a list of rules")
    codes: list[str] = []
    for i, rf in enumerate(raw_flags):
        code = rf.get("code") if isinstance(rf, Mapping) else None
        if not isinstance(code, str) or code not in flag_codes_known:
            raise RuleSetError(f"ruleset.flags[{i}]: code {code!r} is not in {CS_FLAG}")
        if code in codes:
            raise RuleSetError(f"ruleset.flags[{i}]: duplicate code {code}")
        codes.append(code)
    flags = tuple(
        _flag(rf, i, index, codes, derived_names, derived_table, urgency_levels, department_codes)
        for i, rf in enumerate(raw_flags)
    )
    by_code = {f.code: f for f in flags}
    order = _topological(codes, {f.code: _flag_deps(f) for f in flags}, "flag rules")

    return RuleSet(
        id=ruleset_id,
        version=version,
        title=top.text("title"),
        index=index,
        urgency_levels=urgency_levels,
        default_urgency=default_urgency,
        default_department=default_department,
        screening_items=tuple(screening),
        derived=tuple((n, derived_table[n]) for n in derived_order),
        wells=wells,
        flags=flags,
        evaluation_order=tuple(by_code[c] for c in order),
        common_advice=_texts(top.get("self_care_advice_common"),
                             "ruleset.self_care_advice_common"),
        source=source,
    )


def _flag_deps(rule: FlagRule) -> frozenset[str]:
    deps = set(rule.when.flag_refs)
    for step in rule.urgency:
        if step.when is not None:
            deps |= step.when.flag_refs
    if rule.note is not None:
        deps |= rule.note.when.flag_refs
    return frozenset(deps)


def _wells(raw: object, index: FormIndex, derived_names: list[str],
           derived_table: dict[str, Node]) -> WellsSpec:
    w = _Reader(raw, "ruleset.wells", {"meaning", "likely_at_or_above", "examination_items",
                                        "items"}, {"likely_at_or_above", "examination_items",
                                                   "items"})
    likely = w.get("likely_at_or_above")
    if not isinstance(likely, int) or isinstance(likely, bool):
        raise RuleSetError("ruleset.wells.likely_at_or_above: expected a whole number")
    exam = w.get("examination_items")
    if not isinstance(exam, list) or not all(
        isinstance(e, str) and e in index.staff_ids for e in exam
    ):
        raise RuleSetError("ruleset.wells.examination_items: expected staff examination ids")
    raw_items = w.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise RuleSetError("ruleset.wells.items: expected a list")
    items: list[WellsItem] = []
    for i, raw_item in enumerate(raw_items):
        path = f"ruleset.wells.items[{i}]"
        r = _Reader(raw_item, path, {"points", "label", "when"}, {"points", "label", "when"})
        points = r.get("points")
        if not isinstance(points, int) or isinstance(points, bool):
            raise RuleSetError(f"{path}.points: expected a whole number")
        scope = Scope(index, derived_names, derived_table, path=["wells", f"items[{i}]", "when"])
        items.append(WellsItem(points, r.string("label"), compile_condition(r.get("when"), scope)))
    return WellsSpec(likely, tuple(exam), tuple(items))


def _flag(
    raw: object,
    i: int,
    index: FormIndex,
    codes: list[str],
    derived_names: list[str],
    derived_table: dict[str, Node],
    urgency_levels: tuple[str, ...],
    department_codes: list[str],
) -> FlagRule:
    code = codes[i]
    path = f"ruleset.flags[{i}] {code}"
    r = _Reader(
        raw, path,
        {"code", "label", "red_flag", "urgency", "department", "also_departments", "when",
         "note", "self_care_advice"},
        {"code", "label", "red_flag", "urgency", "department", "when"},
    )
    red_flag = r.get("red_flag")
    if not isinstance(red_flag, bool):
        raise RuleSetError(f"{path}.red_flag: expected true or false")

    def scope(*steps: str) -> Scope:
        return Scope(index, derived_names, derived_table, flags=codes, allow_wells=True,
                     path=["flags", code, *steps])

    urgency = _urgency(r.get("urgency"), f"{path}.urgency", urgency_levels, scope)
    levels = {u.level for u in urgency}
    if red_flag and SELF_CARE in levels:
        raise RuleSetError(f"{path}: a red flag can never be self-care")

    department = r.one_of("department", department_codes)
    also = r.get("also_departments", [])
    if not isinstance(also, list) or not all(a in department_codes for a in also) or (
        department in also or len(set(also)) != len(also)
    ):
        raise RuleSetError(f"{path}.also_departments: expected distinct other departments")

    note = None
    if r.get("note") is not None:
        n = _Reader(r.get("note"), f"{path}.note", {"when", "ja", "en"}, {"when", "ja", "en"})
        note = Note(compile_condition(n.get("when"), scope("note", "when")),
                    Text(n.string("ja"), n.string("en")))

    advice = _texts(r.get("self_care_advice"), f"{path}.self_care_advice")
    if advice and SELF_CARE not in levels:
        raise RuleSetError(f"{path}: self-care advice on a flag that is never self-care")

    return FlagRule(
        code=code,
        order=i,
        label=r.text("label"),
        red_flag=red_flag,
        urgency=urgency,
        department=department,
        also_departments=tuple(str(a) for a in also),
        when=compile_condition(r.get("when"), scope("when")),
        note=note,
        advice=advice,
    )


def _urgency(
    raw: object, path: str, levels: tuple[str, ...], scope: Callable[..., Scope]
) -> tuple[UrgencyRule, ...]:
    # Either a level, or a list of {level, when} steps whose last step has no `when`.
    if isinstance(raw, str):
        if raw not in levels:
            raise RuleSetError(f"{path}: {raw!r} is not one of {list(levels)}")
        return (UrgencyRule(raw, None),)
    if not isinstance(raw, list) or not raw:
        raise RuleSetError(f"{path}: expected a level or a list of {{level, when}} steps")
    steps: list[UrgencyRule] = []
    for j, raw_step in enumerate(raw):
        s = _Reader(raw_step, f"{path}[{j}]", {"level", "when"}, {"level"})
        level = s.one_of("level", levels)
        last = j == len(raw) - 1
        if last != (s.get("when") is None):
            raise RuleSetError(f"{path}[{j}]: only the last step, and it always, has no 'when'")
        when = None if last else compile_condition(s.get("when"), scope("urgency", f"[{j}]"))
        steps.append(UrgencyRule(level, when))
    return tuple(steps)


def load_ruleset(name: str = RULESET_ID) -> RuleSet:
    """The shipped rule set ``name`` (loaded, checked and compiled once per process).

    Loading checks everything, so an application that starts has a usable rule set.
    """
    return _load_shipped(name)


@lru_cache(maxsize=8)
def _load_shipped(name: str) -> RuleSet:
    if not _NAME_RE.match(name):
        raise RuleSetError(f"invalid rule set name {name!r}")
    path = RULESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise RuleSetError(f"no rule set named {name!r}")
    ruleset = load_ruleset_file(path)
    if ruleset.id != name:
        raise RuleSetError(f"{path.name}: id is {ruleset.id!r}, expected {name!r}")
    if ruleset.index.url != QUESTIONNAIRE_URL or ruleset.index.version != QUESTIONNAIRE_VERSION:
        raise RuleSetError(f"{path.name}: not for the shipped Questionnaire")
    return ruleset
