"""Helpers of the CDS Hooks tests: hook requests built from the shared clinical cases,
a CDS client's signing key and JWTs.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy import func, select

from intake import state
from intake.clinical import build_questionnaire_response, parse_simple_answers
from intake.constants import CDS_SERVICE_ID
from intake.storage.models import AuditEvent, CdsCard, CdsFeedback
from support import case

CDS_TOKEN = "cds-shared-token-0123456789"
AUTH = {"Authorization": f"Bearer {CDS_TOKEN}"}
SERVICE = f"/cds-services/{CDS_SERVICE_ID}"
FEEDBACK = f"{SERVICE}/feedback"
ISSUER = "https://ehr.clinic.example"
PATIENT_ID = "pat-1288992"
# The URL the test client calls the service at: the JWT's aud.
AUDIENCE = f"http://localhost{SERVICE}"


def response_for(case_id: str, *, patient_id: str = PATIENT_ID,
                 authored: str = "2026-11-20T09:30:00+09:00") -> dict[str, Any]:
    """The case's answers as the EHR holds them (subject: the EHR's Patient id)."""
    qr = build_questionnaire_response(parse_simple_answers(case(case_id)["answers"]),
                                      authored=authored,
                                      subject_reference=f"Patient/{patient_id}")
    qr["id"] = f"qr-{case_id}"
    return qr


def hook_request(response: Any = None, *, prefetch: bool = True, **changes: Any) -> dict[str, Any]:
    """A patient-view call with ``response`` as the prefetch (or no prefetch key)."""
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": "https://ehr.clinic.example/fhir",
        "context": {"userId": "Practitioner/77", "patientId": PATIENT_ID},
    }
    if prefetch:
        body["prefetch"] = {"questionnaireResponse": response}
    body.update(changes)
    return body


def searchset(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"https://ehr.clinic.example/fhir/QuestionnaireResponse/"
                                  f"{r.get('id', i)}", "resource": r}
                      for i, r in enumerate(resources)]}


def stored(app: Any) -> tuple[int, int, int]:
    """(cards, feedback rows, audit events): what a refused request leaves unchanged."""
    with state(app).sessions() as s:
        return (s.scalar(select(func.count()).select_from(CdsCard)) or 0,
                s.scalar(select(func.count()).select_from(CdsFeedback)) or 0,
                s.scalar(select(func.count()).select_from(AuditEvent)) or 0)


@dataclass
class ClientKey:
    """An EHR's ES384 signing key and its public JWK Set."""

    kid: str
    private: ec.EllipticCurvePrivateKey

    @classmethod
    def new(cls, kid: str = "ehr-key-1") -> ClientKey:
        return cls(kid, ec.generate_private_key(ec.SECP384R1()))

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "alg": "ES384", "use": "sig"}]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def token(self, *, aud: str = AUDIENCE, iss: str = ISSUER, lifetime: int = 300,
              kid: str | None = None, drop: tuple[str, ...] = (), **claims: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {"iss": iss, "aud": aud, "iat": now, "exp": now + lifetime,
                                   "jti": str(uuid.uuid4()), **claims}
        for name in drop:
            payload.pop(name, None)
        return jwt.encode(payload, self.private, algorithm="ES384",
                          headers={"kid": kid or self.kid, "typ": "JWT"})
