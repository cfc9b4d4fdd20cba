"""The plugin's terminology: the codes, displays and properties of its own CodeSystems
(``fhir_profiles/CodeSystem-*.json``), and the urgency order they define.

Every module that needs a code list, a display or the urgency order asks here, so the
JSON files stay the one definition (tests validate them against the FHIR models). The
files are read once per process; the functions are pure.

A display is Japanese (the CodeSystems' language); its English is the concept's ``en``
designation, else the translation extension on ``_display``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from intake.constants import CS_URGENCY, EXT_TRANSLATION
from intake.resources import fhir_profiles_dir


@dataclass(frozen=True, slots=True)
class Concept:
    """One concept of a CodeSystem."""

    code: str
    display: str | None
    """The Japanese display (None when the concept has none)."""
    en: str | None
    """The English display, or None."""
    properties: Mapping[str, Any]
    """Property code -> value (``valueInteger``, ``valueCode``, ...), e.g. ``rank``."""


def translation(element: object) -> str | None:
    """English text of a FHIR primitive's ``_text``/``_display`` translation extension."""
    if not isinstance(element, Mapping):
        return None
    for ext in element.get("extension", ()):
        if not isinstance(ext, Mapping) or ext.get("url") != EXT_TRANSLATION:
            continue
        parts = {
            sub.get("url"): sub for sub in ext.get("extension", ()) if isinstance(sub, Mapping)
        }
        if parts.get("lang", {}).get("valueCode") == "en":
            content = parts.get("content", {}).get("valueString")
            if isinstance(content, str):
                return content
    return None


def _property_value(prop: Mapping[str, Any]) -> Any:
    return next((v for k, v in prop.items() if k.startswith("value")), None)


def _concepts_of(nodes: Sequence[Mapping[str, Any]], out: list[Concept]) -> None:
    for c in nodes:
        en = next(
            (d["value"] for d in c.get("designation", ()) if d.get("language") == "en"), None
        ) or translation(c.get("_display"))
        properties = {p["code"]: _property_value(p) for p in c.get("property", ())}
        out.append(Concept(c["code"], c.get("display"), en, properties))
        _concepts_of(c.get("concept", ()), out)


@lru_cache(maxsize=1)
def _code_systems() -> Mapping[str, tuple[Concept, ...]]:
    """Canonical URL -> concepts (file order, a nested concept after its parent) of
    every CodeSystem in ``fhir_profiles``. A missing file gives no concepts."""
    out: dict[str, tuple[Concept, ...]] = {}
    for path in sorted(fhir_profiles_dir().glob("CodeSystem-*.json")):
        cs = json.loads(path.read_text(encoding="utf-8"))
        concepts: list[Concept] = []
        _concepts_of(cs.get("concept", ()), concepts)
        out[cs["url"]] = tuple(concepts)
    return out


@lru_cache(maxsize=32)
def _by_code(system: str) -> Mapping[str, Concept]:
    return {c.code: c for c in concepts(system)}


def concepts(system: str) -> tuple[Concept, ...]:
    """The concepts of the CodeSystem with this canonical URL, in file order (empty for
    a system the plugin does not define)."""
    return _code_systems().get(system, ())


def codes(system: str) -> tuple[str, ...]:
    """The codes of the CodeSystem with this canonical URL, in file order."""
    return tuple(c.code for c in concepts(system))


def concept(system: str, code: str) -> Concept | None:
    """The concept, or None for an unknown system or code."""
    return _by_code(system).get(code)


def code_display(system: str, code: str) -> tuple[str, str | None] | None:
    """(Japanese display, English display or None) of a concept of the plugin's own
    CodeSystems (urgency, department, flag, ...), or None for an unknown code (or a
    concept without a display)."""
    found = concept(system, code)
    if found is None or found.display is None:
        return None
    return found.display, found.en


@lru_cache(maxsize=1)
def urgency_order() -> tuple[str, ...]:
    """The urgency codes, most urgent first: the order of the urgency CodeSystem's
    ``rank`` property (1 = most urgent), which the rule set, the worklist, the desk,
    the alerts and the CDS cards all follow."""
    found = concepts(CS_URGENCY)
    return tuple(c.code for c in sorted(found, key=lambda c: int(c.properties["rank"])))


@lru_cache(maxsize=1)
def _urgency_ranks() -> Mapping[str, int]:
    return {code: i for i, code in enumerate(urgency_order())}


def urgency_rank(code: str) -> int:
    """Position of an urgency code in :func:`urgency_order` (0: the most urgent); an
    unknown code comes after every known one."""
    ranks = _urgency_ranks()
    return ranks.get(code, len(ranks))
