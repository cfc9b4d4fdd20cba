"""The inbound FHIR R4 API under ``/fhir``: an EHR or a patient portal submits a
QuestionnaireResponse and reads back the triage as a RiskAssessment.

Every answer is FHIR JSON (``application/fhir+json``); every error, including 404,
405, 413 and 415, is an OperationOutcome with a 4xx status, never HTML. What is
supported is declared in the CapabilityStatement at ``/fhir/metadata``.
"""

from flask import Blueprint

bp = Blueprint("fhirapi", __name__)

from intake.fhirapi import views as views  # noqa: E402
