"""Business identifiers of an intake's resources and the references between them.

Every identifier uses the system ``constants.IDENTIFIER_SYSTEM_INTAKE`` and a value
made from the intake's business identifier (:func:`intake_identifier`). A resource is
found by it with :func:`identifier_query` (a search, or a conditional create or
update), and referenced inside a bundle by :func:`full_url`, a ``urn:uuid:`` that
depends on nothing but the identifier.
"""

from __future__ import annotations

import uuid
from typing import Final
from urllib.parse import quote

from intake import constants

# Characters with a meaning in FHIR search values; escaped with a backslash.
SEARCH_SPECIAL: Final = ("\\", ",", "$", "|")


def intake_identifier(business_id: str, suffix: str = "") -> tuple[str, str]:
    """(system, value) of the intake's resource named by ``suffix`` ("" is the
    QuestionnaireResponse; "risk", "flag/<CODE>", "service-request", "task",
    "provenance", "patient")."""
    value = f"{business_id}/{suffix}" if suffix else business_id
    return constants.IDENTIFIER_SYSTEM_INTAKE, value


def identifier_query(system: str, value: str, param: str = "identifier") -> str:
    """``identifier=<system>|<value>`` for a search or ``ifNoneExist``.

    Search-special characters in the value are escaped with a backslash (FHIR
    search, "Escaping"), then each part is percent-encoded except for the
    characters a query allows; the ``|`` separator stays literal, as FHIR
    servers and the specification's examples expect.
    """
    escaped = value
    for ch in SEARCH_SPECIAL:
        escaped = escaped.replace(ch, "\\" + ch)
    return f"{param}={quote(system, safe=':/')}|{quote(escaped, safe=':/@')}"


_URN_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, constants.IDENTIFIER_SYSTEM_INTAKE)


def full_url(system: str, value: str) -> str:
    """Deterministic ``urn:uuid:`` for the resource with this business identifier."""
    return f"urn:uuid:{uuid.uuid5(_URN_NAMESPACE, f'{system}|{value}')}"

