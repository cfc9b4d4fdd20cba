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

# --- What the plugin emits to the record system -----------------------------

_SD = f"{CANONICAL_BASE}/StructureDefinition"

# Profiles (constraint StructureDefinitions on base R4 resources).
PROFILE_QUESTIONNAIRE_RESPONSE = f"{_SD}/intake-questionnaire-response"
PROFILE_RISK_ASSESSMENT = f"{_SD}/intake-risk-assessment"
PROFILE_FLAG = f"{_SD}/intake-flag"
PROFILE_SERVICE_REQUEST = f"{_SD}/intake-service-request"
PROFILE_TASK = f"{_SD}/intake-task"
PROFILE_PROVENANCE = f"{_SD}/intake-provenance"
PROFILE_PATIENT = f"{_SD}/intake-patient"

# Extension: the triage urgency (5 levels, ValueSet VS_URGENCY), which the
# FHIR request priority (4 levels) cannot carry exactly.
EXT_TRIAGE_URGENCY = f"{_SD}/triage-urgency"

ALL_PROFILES: tuple[str, ...] = (
    PROFILE_QUESTIONNAIRE_RESPONSE,
    PROFILE_RISK_ASSESSMENT,
    PROFILE_FLAG,
    PROFILE_SERVICE_REQUEST,
    PROFILE_TASK,
    PROFILE_PROVENANCE,
    PROFILE_PATIENT,
)

# Our own code systems used by the bundle: the rule-set system names the rule
# set as the method of a RiskAssessment, the task system the one kind of Task
# the plugin creates.
CS_RULESET = f"{CANONICAL_BASE}/CodeSystem/triage-ruleset"
CS_INTAKE_TASK = f"{CANONICAL_BASE}/CodeSystem/intake-task"
TASK_CODE_REVIEW = "review"

# HL7 code systems and extensions.
CS_RISK_PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"
CS_FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
CS_DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
CS_PROVENANCE_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
EXT_EN_REPRESENTATION = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"

# --- Inbound FHIR API and CDS Hooks ------------------------------------------

# The FHIR release the inbound API speaks (fhir.resources.R4B models; R4B and
# R4 are identical for the resources served).
FHIR_VERSION = "4.0.1"

# The one CDS Hooks service: triage of the knee QuestionnaireResponse.
CDS_SERVICE_ID = "posterior-knee-triage"
CDS_HOOK = "patient-view"
# Prefetch key under which the CDS client sends the newest knee questionnaire response.
CDS_PREFETCH_KEY = "questionnaireResponse"
# Reasons a clinician may give when overriding a card (offered on every card).
CS_CDS_OVERRIDE_REASON = f"{CANONICAL_BASE}/CodeSystem/cds-override-reason"

# --- The audit trail exported as FHIR AuditEvent (intake.audit) ----------------

# Standard code systems used where they fit.
CS_AUDIT_EVENT_TYPE_HL7 = "http://terminology.hl7.org/CodeSystem/audit-event-type"
CS_RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
CS_SECURITY_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
# The plugin's own: the kind of event (the part of the action name before the first
# dot: intake, review, signin...), the action name itself, and what it was done to.
CS_AUDIT_EVENT_TYPE = f"{CANONICAL_BASE}/CodeSystem/audit-event-type"
CS_AUDIT_ACTION = f"{CANONICAL_BASE}/CodeSystem/audit-action"
CS_AUDIT_ENTITY_TYPE = f"{CANONICAL_BASE}/CodeSystem/audit-entity-type"
# Identifier systems: the id of the record an event is about (as the audit trail holds
# it: an intake's internal id, a user name...) and a staff member's sign-in name.
IDENTIFIER_SYSTEM_AUDIT_ENTITY = f"{CANONICAL_BASE}/NamingSystem/audit-entity-id"
IDENTIFIER_SYSTEM_STAFF_USER = f"{CANONICAL_BASE}/NamingSystem/staff-user"
# Extension on each exported AuditEvent carrying its place in the hash chain (sequence,
# previousHash, hash, keyId, seal), so an export can be checked link by link.
EXT_AUDIT_CHAIN = f"{_SD}/audit-chain"
# The name the plugin gives itself as a FHIR actor (Provenance device, AuditEvent observer).
PLUGIN_DEVICE_NAME = "knee-intake triage plugin"
