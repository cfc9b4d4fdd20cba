"""The small condition language of the rule set, compiled once into fast closures.

A condition in the YAML is a mapping with exactly one form:

    {answer: ID, is: true|false}             boolean item
    {answer: ID, in: [CODE, ...]}            choice item, the answer is one of the codes
    {answer: ID, gte|gt|lte|lt: N}           integer item compared with N
    {answer: ID, contains_any: [CODE, ...]}  multi item holds at least one of the codes
    {answer: ID, contains_all: [CODE, ...]}  multi item holds every one of the codes
    {answered: ID}                           the item has an answer (never unknown)
    {any_unanswered: [ID, ...]}              at least one item has no answer (never unknown)
    {derived: NAME}                          a derived value of the rule set
    {all: [COND, ...]}  {any: [COND, ...]}  {not: COND}
    {if: COND, then: COND, else: COND}
    {flag: CODE}  {not_flag: CODE}           whether another rule fired
    {no_flag_fired_except: [CODE, ...]}      no rule fired apart from the ones listed
    {wells_likely: true|false}               the Wells score reached the "likely" level

Logic is three-valued (SPEC section 3): an unanswered item is neither true nor false,
so a test on it is *unknown*; ``all``/``any``/``not`` follow Kleene logic and a rule
fires only when its condition is definitely true. Whether another rule fired is always
known (true or false).

Every condition can also say which answers made it true (or false): the evidence.
Only the parts that actually decided the result contribute, e.g. for ``any`` only the
branches that were true.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from intake.clinical.answers import AnswerValue
from intake.clinical.questionnaire import FormIndex

Tri = bool | None  # True, False, or None for unknown
Evidence = dict[str, AnswerValue | None]  # linkId -> answer (None: unanswered), in order


class RuleSetError(ValueError):
    """The rule set file is malformed or refers to something that does not exist."""


class EvalContext:
    """Per-evaluation state: the answers and what has been computed so far."""

    __slots__ = ("answers", "derived", "fired", "wells_likely")

    def __init__(self, answers: Mapping[str, AnswerValue]) -> None:
        self.answers = answers
        self.derived: dict[str, Tri] = {}
        self.fired: dict[str, bool] = {}
        self.wells_likely = False


Fn = Callable[[EvalContext], Tri]


class Node:
    """A compiled condition: ``fn`` evaluates it, ``collect`` gathers its evidence."""

    __slots__ = ("fn", "flag_refs", "derived_refs", "uses_wells")

    def __init__(
        self,
        fn: Fn,
        *,
        flag_refs: frozenset[str] = frozenset(),
        derived_refs: frozenset[str] = frozenset(),
        uses_wells: bool = False,
    ) -> None:
        self.fn = fn
        self.flag_refs = flag_refs
        self.derived_refs = derived_refs
        self.uses_wells = uses_wells

    def collect(self, ctx: EvalContext, polarity: bool, out: Evidence) -> None:
        """Add the answers that made this node evaluate to ``polarity``."""


class _AnswerLeaf(Node):
    __slots__ = ("link_id",)

    def __init__(self, link_id: str, fn: Fn) -> None:
        super().__init__(fn)
        self.link_id = link_id

    def collect(self, ctx: EvalContext, polarity: bool, out: Evidence) -> None:
        if self.link_id not in out:
            out[self.link_id] = ctx.answers.get(self.link_id)


class _AnyUnanswered(Node):
    __slots__ = ("link_ids",)

    def __init__(self, link_ids: tuple[str, ...]) -> None:
        def fn(ctx: EvalContext) -> Tri:
            answers = ctx.answers
            for link_id in link_ids:
                if link_id not in answers:
                    return True
            return False

        super().__init__(fn)
        self.link_ids = link_ids

    def collect(self, ctx: EvalContext, polarity: bool, out: Evidence) -> None:
        if polarity:
            for link_id in self.link_ids:
                if link_id not in ctx.answers:
                    out.setdefault(link_id, None)


class _DerivedRef(Node):
    __slots__ = ("name", "table")

    def __init__(self, name: str, table: Mapping[str, Node]) -> None:
        def fn(ctx: EvalContext) -> Tri:
            return ctx.derived[name]

        super().__init__(fn, derived_refs=frozenset({name}))
        self.name = name
        self.table = table  # filled in by the loader once every derived value is compiled

    def collect(self, ctx: EvalContext, polarity: bool, out: Evidence) -> None:
        # Evidence of a derived value is the underlying answers.
        self.table[self.name].collect(ctx, polarity, out)


class _All(Node):
    __slots__ = ("children",)

    def __init__(self, children: Sequence[Node]) -> None:
        fns = tuple(c.fn for c in children)

        def fn(ctx: EvalContext) -> Tri:
            unknown = False
            for f in fns:
                r = f(ctx)
                if r is False:
                    return False
                if r is None:
                    unknown = True
            return None if unknown else True

        super().__init__(fn, **_merge_refs(children))
        self.children = tuple(children)

    def collect(self, ctx: EvalContext, polarity: bool, out: Evidence) -> None:
        for child in self.children:
            # True: every child was true. False: only the false children decided it.
            if polarity or child.fn(ctx) is False:
                child.collect(ctx, polarity, out)


class _Any(Node):
    __slots__ = ("children",)

    def __init__(self, children: Sequence[Node]) -> None:
        fns = tuple(c.fn for c in children)

        def fn(ctx: EvalContext) -> Tri:
            unknown = False
            for f in fns:
                r = f(ctx)
                if r is True:
                    return True
                if r is None:
                    unknown = True
            return None if unknown else False

        super().__init__(fn, **_merge_refs(children))
        self.children = tuple(children)

    def collect(self, ctx: EvalContext, polarity: bool, out: Evidence) -> None:
        for child in self.children:
            if not polarity or child.fn(ctx) is True:
                child.collect(ctx, polarity, out)


class _Not(Node):
    __slots__ = ("child",)

    def __init__(self, child: Node) -> None:
        inner = child.fn

        def fn(ctx: EvalContext) -> Tri:
            r = inner(ctx)
            return None if r is None else not r

        super().__init__(fn, **_merge_refs([child]))
        self.child = child

    def collect(self, ctx: EvalContext, polarity: bool, out: Evidence) -> None:
        self.child.collect(ctx, not polarity, out)


class _If(Node):
    __slots__ = ("test", "then", "otherwise")

    def __init__(self, test: Node, then: Node, otherwise: Node) -> None:
        t, a, b = test.fn, then.fn, otherwise.fn

        def fn(ctx: EvalContext) -> Tri:
            r = t(ctx)
            if r is None:
                return None
            return a(ctx) if r else b(ctx)

        super().__init__(fn, **_merge_refs([test, then, otherwise]))
        self.test, self.then, self.otherwise = test, then, otherwise

    def collect(self, ctx: EvalContext, polarity: bool, out: Evidence) -> None:
        branch = self.then if self.test.fn(ctx) else self.otherwise
        branch.collect(ctx, polarity, out)


def _merge_refs(children: Sequence[Node]) -> dict[str, Any]:
    return {
        "flag_refs": frozenset().union(*(c.flag_refs for c in children)),
        "derived_refs": frozenset().union(*(c.derived_refs for c in children)),
        "uses_wells": any(c.uses_wells for c in children),
    }


_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "gte": operator.ge,
    "gt": operator.gt,
    "lte": operator.le,
    "lt": operator.lt,
}
_ANSWER_OPS = frozenset({"is", "in", "contains_any", "contains_all", *_COMPARE})


@dataclass
class Scope:
    """What a condition may refer to, and where it sits (for error messages)."""

    index: FormIndex
    derived: Collection[str]
    derived_table: Mapping[str, Node]
    flags: Collection[str] = ()
    allow_wells: bool = False
    path: list[str] = field(default_factory=list)

    def error(self, message: str) -> RuleSetError:
        return RuleSetError(f"{'.'.join(self.path)}: {message}")


def compile_condition(raw: object, scope: Scope) -> Node:
    """Compile one YAML condition; raise RuleSetError naming the place of any mistake.

    Unknown question ids, codes outside an item's options, operators that do not fit the
    item's type and thresholds outside the item's range are all rejected here, at load
    time, so a typo in the rule set can never silently turn a rule off.
    """
    if not isinstance(raw, Mapping) or not raw:
        raise scope.error("a condition must be a non-empty mapping")
    keys = set(raw)
    if "answer" in keys:
        return _compile_answer(raw, scope)
    if len(keys) != 1 and keys != {"if", "then", "else"}:
        raise scope.error(f"unexpected keys {sorted(map(str, keys))}")
    if keys == {"if", "then", "else"}:
        parts = [_sub(raw[k], scope, k) for k in ("if", "then", "else")]
        return _If(*parts)
    (key,) = keys
    value = raw[key]
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise scope.error(f"{key} needs a non-empty list of conditions")
        children = [_sub(c, scope, f"{key}[{i}]") for i, c in enumerate(value)]
        if len(children) == 1:
            return children[0]
        return _All(children) if key == "all" else _Any(children)
    if key == "not":
        return _Not(_sub(value, scope, "not"))
    if key == "derived":
        if value not in scope.derived:
            raise scope.error(f"unknown derived value {value!r}")
        return _DerivedRef(str(value), scope.derived_table)
    if key in ("flag", "not_flag"):
        code = _flag_code(value, scope)
        want = key == "flag"

        def flag_fn(ctx: EvalContext) -> Tri:
            return ctx.fired[code] is want

        return Node(flag_fn, flag_refs=frozenset({code}))
    if key == "no_flag_fired_except":
        if not isinstance(value, list):
            raise scope.error("no_flag_fired_except needs a list of flag codes")
        allowed = {_flag_code(v, scope) for v in value}
        others = tuple(c for c in scope.flags if c not in allowed)

        def none_fired(ctx: EvalContext) -> Tri:
            fired = ctx.fired
            for code in others:
                if fired[code]:
                    return False
            return True

        return Node(none_fired, flag_refs=frozenset(others))
    if key == "any_unanswered":
        if not isinstance(value, list) or not value:
            raise scope.error("any_unanswered needs a non-empty list of question ids")
        return _AnyUnanswered(tuple(_link_id(v, scope) for v in value))
    if key == "answered":
        link_id = _link_id(value, scope)

        def answered(ctx: EvalContext) -> Tri:
            return link_id in ctx.answers

        return _AnswerLeaf(link_id, answered)
    if key == "wells_likely":
        if not scope.allow_wells:
            raise scope.error("wells_likely can only be used in flag rules")
        if not isinstance(value, bool):
            raise scope.error("wells_likely needs true or false")
        want_likely = value

        def wells(ctx: EvalContext) -> Tri:
            return ctx.wells_likely is want_likely

        node = Node(wells, uses_wells=True)
        return node
    raise scope.error(f"unknown condition {key!r}")


def _sub(raw: object, scope: Scope, step: str) -> Node:
    scope.path.append(step)
    try:
        return compile_condition(raw, scope)
    finally:
        scope.path.pop()


def _flag_code(value: object, scope: Scope) -> str:
    if not isinstance(value, str) or value not in scope.flags:
        raise scope.error(f"unknown flag {value!r} (or flags cannot be used here)")
    return value


def _link_id(value: object, scope: Scope) -> str:
    if not isinstance(value, str) or value not in scope.index.questions:
        raise scope.error(f"unknown question id {value!r}")
    return value


def _codes(value: object, options: tuple[str, ...], op: str, scope: Scope) -> frozenset[str]:
    if not isinstance(value, list) or not value:
        raise scope.error(f"{op} needs a non-empty list of codes")
    for code in value:
        if not isinstance(code, str) or code not in options:
            raise scope.error(f"{op}: code {code!r} is not an option ({', '.join(options)})")
    if len(set(value)) != len(value):
        raise scope.error(f"{op}: repeated code")
    return frozenset(value)


def _compile_answer(raw: Mapping[str, Any], scope: Scope) -> Node:
    link_id = _link_id(raw["answer"], scope)
    ops = set(raw) - {"answer"}
    if len(ops) != 1 or not ops <= _ANSWER_OPS:
        raise scope.error(f"{link_id}: give exactly one of {sorted(_ANSWER_OPS)}")
    (op,) = ops
    value = raw[op]
    spec = scope.index.questions[link_id]
    fn: Fn
    if op == "is":
        if spec.kind != "bool" or not isinstance(value, bool):
            raise scope.error(f"{link_id}: 'is' needs a boolean item and true or false")
        expected = value

        def fn(ctx: EvalContext) -> Tri:
            v = ctx.answers.get(link_id)
            return None if v is None else v is expected

    elif op == "in":
        if spec.kind != "choice":
            raise scope.error(f"{link_id}: 'in' needs a choice item")
        codes = _codes(value, spec.options, op, scope)

        def fn(ctx: EvalContext) -> Tri:
            v = ctx.answers.get(link_id)
            return None if v is None else v in codes

    elif op in _COMPARE:
        if spec.kind != "int" or not isinstance(value, int) or isinstance(value, bool):
            raise scope.error(f"{link_id}: '{op}' needs an integer item and a whole number")
        low, high = spec.min_value, spec.max_value
        if (low is not None and value < low) or (high is not None and value > high):
            raise scope.error(f"{link_id}: threshold {value} is outside {low}-{high}")
        compare = _COMPARE[op]
        threshold = value

        def fn(ctx: EvalContext) -> Tri:
            v = ctx.answers.get(link_id)
            return None if v is None else compare(v, threshold)  # type: ignore[arg-type]

    else:  # contains_any / contains_all
        if spec.kind != "multi":
            raise scope.error(f"{link_id}: '{op}' needs a multi item")
        wanted = _codes(value, spec.options, op, scope)
        if op == "contains_any":

            def fn(ctx: EvalContext) -> Tri:
                v = ctx.answers.get(link_id)
                return None if v is None else not wanted.isdisjoint(v)  # type: ignore[arg-type]

        else:

            def fn(ctx: EvalContext) -> Tri:
                v = ctx.answers.get(link_id)
                return None if v is None else wanted.issubset(v)  # type: ignore[arg-type]

    return _AnswerLeaf(link_id, fn)
