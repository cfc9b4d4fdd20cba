"""The knee Questionnaire as the engine sees it: one index of items built from the JSON.

The FHIR Questionnaire in ``fhir_profiles/`` is the single source of truth for the
question ids, their types, answer codes, ranges, which items are red-flag screening
items (``required``) and which are staff-only. Parsers, the rule-set loader and the
QuestionnaireResponse builder all read this index instead of repeating any of it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from intake.clinical.terminology import translation
from intake.constants import (
    CS_ANSWER,
    QUESTIONNAIRE_ID,
    QUESTIONNAIRE_URL,
    QUESTIONNAIRE_VERSION,
)
from intake.resources import fhir_profiles_dir

# Item kinds, named as in SPEC section 2.
ItemKind = Literal["bool", "int", "choice", "multi"]

EXT_MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
EXT_MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
# SDC/core extension marking an item (here the staff examination group) as never shown.
EXT_HIDDEN = "http://hl7.org/fhir/StructureDefinition/questionnaire-hidden"

QUESTIONNAIRE_FILE = f"Questionnaire-{QUESTIONNAIRE_ID}.json"


class QuestionnaireError(ValueError):
    """The Questionnaire JSON uses something this engine does not support."""


@dataclass(frozen=True, slots=True)
class Text:
    """A text in Japanese (primary) and English."""

    ja: str
    en: str

    def to_dict(self) -> dict[str, str]:
        return {"ja": self.ja, "en": self.en}


@dataclass(frozen=True, slots=True)
class ItemSpec:
    """One answerable question of the form."""

    link_id: str
    kind: ItemKind
    text: Text
    group: str | None
    position: int
    required: bool
    staff_only: bool
    options: tuple[str, ...] = ()
    option_text: Mapping[str, Text] | None = None
    min_value: int | None = None
    max_value: int | None = None


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """A group item: its children (questions or groups) in form order."""

    link_id: str
    text: Text
    staff_only: bool
    children: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FormIndex:
    """Everything the engine needs to know about one Questionnaire."""

    url: str
    version: str
    questions: Mapping[str, ItemSpec]
    groups: Mapping[str, GroupSpec]
    top_level: tuple[str, ...]

    @property
    def screening_ids(self) -> frozenset[str]:
        """Items marked ``required``: the red-flag screening (S) items."""
        return frozenset(i.link_id for i in self.questions.values() if i.required)

    @property
    def staff_ids(self) -> frozenset[str]:
        """Items inside a group marked questionnaire-hidden (staff examination)."""
        return frozenset(i.link_id for i in self.questions.values() if i.staff_only)


def _text_of(node: Mapping[str, Any], key: str, where: str) -> Text:
    ja = node.get(key)
    en = translation(node.get(f"_{key}"))
    if not isinstance(ja, str) or not ja or not en:
        raise QuestionnaireError(f"{where}: {key} needs Japanese text and an English translation")
    return Text(ja=ja, en=en)


def _extension_value(item: Mapping[str, Any], url: str, key: str) -> object:
    for ext in item.get("extension", ()):
        if isinstance(ext, Mapping) and ext.get("url") == url:
            return ext.get(key)
    return None


def build_form_index(questionnaire: Mapping[str, Any]) -> FormIndex:
    """Index a Questionnaire dict; raise QuestionnaireError on anything unsupported."""
    if questionnaire.get("resourceType") != "Questionnaire":
        raise QuestionnaireError("not a Questionnaire")
    url = questionnaire.get("url")
    version = questionnaire.get("version")
    if not isinstance(url, str) or not isinstance(version, str):
        raise QuestionnaireError("Questionnaire needs url and version")
    questions: dict[str, ItemSpec] = {}
    groups: dict[str, GroupSpec] = {}

    def walk(items: object, group: str | None, hidden: bool) -> tuple[str, ...]:
        if not isinstance(items, list):
            raise QuestionnaireError(f"item list of {group or 'Questionnaire'} is not a list")
        ids: list[str] = []
        for item in items:
            if not isinstance(item, Mapping) or not isinstance(item.get("linkId"), str):
                raise QuestionnaireError(f"an item of {group or 'Questionnaire'} has no linkId")
            link_id: str = item["linkId"]
            if link_id in questions or link_id in groups:
                raise QuestionnaireError(f"duplicate linkId {link_id}")
            ids.append(link_id)
            item_hidden = hidden or _extension_value(item, EXT_HIDDEN, "valueBoolean") is True
            text = _text_of(item, "text", link_id)
            if item.get("type") == "group":
                groups[link_id] = GroupSpec(link_id, text, item_hidden, ())
                children = walk(item.get("item", []), link_id, item_hidden)
                groups[link_id] = GroupSpec(link_id, text, item_hidden, children)
                continue
            questions[link_id] = _question(item, link_id, text, group, len(questions), item_hidden)
        return tuple(ids)

    top = walk(questionnaire.get("item", []), None, False)
    return FormIndex(url=url, version=version, questions=questions, groups=groups, top_level=top)


def _question(
    item: Mapping[str, Any], link_id: str, text: Text, group: str | None, position: int,
    hidden: bool,
) -> ItemSpec:
    fhir_type = item.get("type")
    required = item.get("required") is True
    if "item" in item:
        raise QuestionnaireError(f"{link_id}: questions with child items are not supported")
    if fhir_type == "boolean":
        return ItemSpec(link_id, "bool", text, group, position, required, hidden)
    if fhir_type == "integer":
        low = _extension_value(item, EXT_MIN_VALUE, "valueInteger")
        high = _extension_value(item, EXT_MAX_VALUE, "valueInteger")
        if not isinstance(low, int) or not isinstance(high, int) or low > high:
            raise QuestionnaireError(f"{link_id}: integer items need minValue and maxValue")
        return ItemSpec(
            link_id, "int", text, group, position, required, hidden, min_value=low, max_value=high
        )
    if fhir_type == "choice":
        codes: list[str] = []
        option_text: dict[str, Text] = {}
        for option in item.get("answerOption", ()):
            coding = option.get("valueCoding") if isinstance(option, Mapping) else None
            if not isinstance(coding, Mapping) or coding.get("system") != CS_ANSWER:
                raise QuestionnaireError(f"{link_id}: answer options must be codings in CS_ANSWER")
            code = coding.get("code")
            if not isinstance(code, str) or code in option_text:
                raise QuestionnaireError(f"{link_id}: bad or repeated answer code")
            codes.append(code)
            option_text[code] = _text_of(coding, "display", f"{link_id}/{code}")
        if not codes:
            raise QuestionnaireError(f"{link_id}: a choice item needs answer options")
        kind: ItemKind = "multi" if item.get("repeats") is True else "choice"
        return ItemSpec(
            link_id, kind, text, group, position, required, hidden,
            options=tuple(codes), option_text=option_text,
        )
    raise QuestionnaireError(f"{link_id}: item type {fhir_type!r} is not supported")


@lru_cache(maxsize=1)
def _questionnaire_cached() -> dict[str, Any]:
    path = fhir_profiles_dir() / QUESTIONNAIRE_FILE
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if data.get("url") != QUESTIONNAIRE_URL or data.get("version") != QUESTIONNAIRE_VERSION:
        raise QuestionnaireError(f"{path} is not {QUESTIONNAIRE_URL}|{QUESTIONNAIRE_VERSION}")
    return data


def load_questionnaire() -> dict[str, Any]:
    """The knee Questionnaire as FHIR JSON (a private copy; the file is read once).

    A copy is returned so a caller that edits it (a renderer adding state, a test) can
    never change what the parsers and the rules engine validate against.
    """
    return copy.deepcopy(_questionnaire_cached())


@lru_cache(maxsize=1)
def default_form_index() -> FormIndex:
    """The index of the shipped knee Questionnaire (built once)."""
    return build_form_index(_questionnaire_cached())


def form_index(questionnaire: Mapping[str, Any] | None = None) -> FormIndex:
    """Index of ``questionnaire``, or of the shipped one when None."""
    if questionnaire is None:
        return default_form_index()
    return build_form_index(questionnaire)


def staff_only_link_ids() -> frozenset[str]:
    """Question ids entered by staff in the review screen and never shown on the tablet.

    They sit in the group ``staff_exam`` marked with the ``questionnaire-hidden``
    extension; the tablet renderer must skip them and the API must accept them.
    """
    return default_form_index().staff_ids


def screening_link_ids() -> frozenset[str]:
    """Red-flag screening (S) question ids: required on the tablet.

    A submission lacking any of them is still triaged, and gets INCOMPLETE_SCREENING.
    """
    return default_form_index().screening_ids
