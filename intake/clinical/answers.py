"""Validated answers: the one input type of the rules engine.

Every way answers arrive (the simple JSON format, a FHIR QuestionnaireResponse, the web
form) ends as an :class:`Answers` mapping whose values have already been checked against
the Questionnaire, so the engine never has to guess what a value means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from intake.clinical.questionnaire import FormIndex, ItemSpec, default_form_index, form_index

# bool for boolean items, int for integer items, a code for choice items and a tuple of
# codes (in the Questionnaire's option order) for multi items.
AnswerValue = bool | int | str | tuple[str, ...]


class AnswerError(ValueError):
    """An input that cannot be triaged: wrong shape, unknown item, wrong type or code.

    ``link_id`` names the offending item (None when the problem is the whole input).
    Messages name the item and the problem but never echo the patient's value, so they
    are safe to log and to show in an error response.
    """

    def __init__(self, link_id: str | None, message: str) -> None:
        self.link_id = link_id
        super().__init__(f"{_short(link_id)}: {message}" if link_id else message)


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def safe_key(key: object) -> str:
    """A short printable form of an unknown key for an error message."""
    return _short(repr(key))


class Answers(Mapping[str, AnswerValue]):
    """Immutable, validated mapping of question id (linkId) to answer.

    An absent key is an unanswered question. Construct with :func:`parse_simple_answers`
    or :func:`parse_questionnaire_response`; calling ``Answers(mapping)`` validates the
    mapping in the simple format too. Iteration follows the Questionnaire's order, so two
    equal answer sets always serialise the same way.
    """

    __slots__ = ("_data",)
    _data: dict[str, AnswerValue]

    def __init__(self, data: Mapping[str, object] | None = None) -> None:
        validated = parse_simple_answers({} if data is None else data)
        self._data = validated._data

    @classmethod
    def _trusted(cls, data: dict[str, AnswerValue]) -> Answers:
        """Wrap values that a parser in this package has already validated."""
        obj = cls.__new__(cls)
        obj._data = data
        return obj

    def __getitem__(self, key: str) -> AnswerValue:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Answers):
            return self._data == other._data
        return super().__eq__(other)

    def __repr__(self) -> str:
        # Answers are patient data: keep them out of logs and tracebacks.
        return f"<Answers: {len(self._data)} answered>"

    def to_simple(self) -> dict[str, Any]:
        """The simple JSON answer format (lists for multi answers)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self._data.items()}

    def replace(self, **changes: object) -> Answers:
        """A copy with some answers changed (``None`` removes an answer), re-validated."""
        merged: dict[str, object] = dict(self.to_simple())
        merged.update(changes)
        return parse_simple_answers(merged)


def check_value(spec: ItemSpec, value: object) -> AnswerValue:
    """Validate one simple-format value for ``spec``; raise AnswerError naming the item."""
    kind = spec.kind
    link_id = spec.link_id
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise AnswerError(link_id, f"expected true or false, got {_describe(value)}")
    if kind == "int":
        # bool is a subclass of int in Python; true is not an age.
        if not isinstance(value, int) or isinstance(value, bool):
            raise AnswerError(link_id, f"expected a whole number, got {_describe(value)}")
        low, high = spec.min_value, spec.max_value
        if (low is not None and value < low) or (high is not None and value > high):
            raise AnswerError(link_id, f"number outside the allowed range {low}-{high}")
        return int(value)
    if kind == "choice":
        if not isinstance(value, str):
            raise AnswerError(link_id, f"expected one answer code, got {_describe(value)}")
        if value not in spec.options:
            raise AnswerError(
                link_id, "code is not one of the item's options: " + ", ".join(spec.options)
            )
        return value
    # multi
    if not isinstance(value, list | tuple):
        raise AnswerError(link_id, f"expected a list of answer codes, got {_describe(value)}")
    return check_codes(spec, value)


def check_codes(spec: ItemSpec, codes: list[Any] | tuple[Any, ...]) -> tuple[str, ...]:
    """Validate the codes of a multi item; return them in the Questionnaire's order."""
    seen: set[str] = set()
    for code in codes:
        if not isinstance(code, str):
            raise AnswerError(spec.link_id, f"expected answer codes, got {_describe(code)}")
        if code not in spec.options:
            raise AnswerError(
                spec.link_id, "code is not one of the item's options: " + ", ".join(spec.options)
            )
        if code in seen:
            raise AnswerError(spec.link_id, "the same code is given twice")
        seen.add(code)
    return tuple(c for c in spec.options if c in seen)


def ordered(index: FormIndex, values: dict[str, AnswerValue]) -> Answers:
    """Answers in the Questionnaire's item order (deterministic iteration and output)."""
    return Answers._trusted({k: values[k] for k in index.questions if k in values})


Validator = Callable[[object], AnswerValue | None]


def _validator(spec: ItemSpec) -> Validator:
    """A fast check for one item; the slow path (check_value) builds the error message."""
    if spec.kind == "bool":

        def check_bool(value: object) -> AnswerValue | None:
            if value is True or value is False:
                return value
            return check_value(spec, value)

        return check_bool
    if spec.kind == "int":
        low = spec.min_value if spec.min_value is not None else -(2**63)
        high = spec.max_value if spec.max_value is not None else 2**63

        def check_int(value: object) -> AnswerValue | None:
            if type(value) is int and low <= value <= high:
                return value
            return check_value(spec, value)

        return check_int
    if spec.kind == "choice":
        options = frozenset(spec.options)

        def check_choice(value: object) -> AnswerValue | None:
            if type(value) is str and value in options:
                return value
            return check_value(spec, value)

        return check_choice

    def check_multi(value: object) -> AnswerValue | None:
        if isinstance(value, list | tuple) and not value:
            return None  # an empty list is unanswered
        return check_value(spec, value)

    return check_multi


@lru_cache(maxsize=1)
def _default_validators() -> dict[str, Validator]:
    index = default_form_index()
    return {k: _validator(spec) for k, spec in index.questions.items()}


def _validators(index: FormIndex) -> dict[str, Validator]:
    if index is default_form_index():
        return _default_validators()
    return {k: _validator(spec) for k, spec in index.questions.items()}


def parse_simple_answers(
    data: object, *, questionnaire: Mapping[str, Any] | None = None
) -> Answers:
    """Validate answers in the simple format of CASES.md and return :class:`Answers`.

    ``data`` maps question id to ``true``/``false``, an integer, a code or a list of
    codes; staff examination items are accepted too. ``null`` and an empty list mean
    unanswered, like an absent key. Answers to items hidden by ``enableWhen`` (say,
    pregnancy for a man) are kept: the rules guard their own conditions.

    Strict on types because a lenient parser would turn a client bug into a silent
    clinical error (``1`` is not ``true``, ``true`` is not an age).
    """
    index = form_index(questionnaire)
    if not isinstance(data, Mapping):
        raise AnswerError(None, f"answers must be a JSON object, got {_describe(data)}")
    validators = _validators(index)
    values: dict[str, AnswerValue] = {}
    for key, value in data.items():
        check = validators.get(key) if isinstance(key, str) else None
        if check is None:
            if isinstance(key, str):
                raise AnswerError(key, "unknown question id")
            raise AnswerError(None, f"unknown question id {safe_key(key)}")
        if value is not None:
            checked = check(value)
            if checked is not None:
                values[key] = checked
    return ordered(index, values)
