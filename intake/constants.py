"""Canonical URLs, code systems and identifiers, defined once for the whole plugin.

Every other module imports these names; no canonical URL or system string is
written anywhere else (house style 13).
"""

from __future__ import annotations

# Base of every canonical URL the plugin publishes.
CANONICAL_BASE = "https://intake-triage.org/fhir"

# The posterior knee questionnaire.
QUESTIONNAIRE_ID = "posterior-knee"
QUESTIONNAIRE_URL = f"{CANONICAL_BASE}/Questionnaire/{QUESTIONNAIRE_ID}"
QUESTIONNAIRE_VERSION = "1.0.0"

# CodeSystems and ValueSets.
CS_ANSWER = f"{CANONICAL_BASE}/CodeSystem/knee-answer"
CS_FLAG = f"{CANONICAL_BASE}/CodeSystem/triage-flag"
CS_URGENCY = f"{CANONICAL_BASE}/CodeSystem/triage-urgency"
CS_DEPARTMENT = f"{CANONICAL_BASE}/CodeSystem/department"
VS_FLAG = f"{CANONICAL_BASE}/ValueSet/triage-flag"
VS_URGENCY = f"{CANONICAL_BASE}/ValueSet/triage-urgency"
VS_DEPARTMENT = f"{CANONICAL_BASE}/ValueSet/department"

# Business identifier system for everything derived from an intake.
IDENTIFIER_SYSTEM_INTAKE = f"{CANONICAL_BASE}/NamingSystem/intake-id"

# FHIR extension for translations (Japanese base text, English translation).
EXT_TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"

# The rule set shipped with the plugin.
RULESET_ID = "posterior-knee"
