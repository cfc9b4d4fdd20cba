"""Helpers for the record-system tests and ``bench/bench_fhir.py``: the FHIR test
server, intakes built from the shared clinical cases, and SMART client keys.

The server is ``tests/fhir_server/server.js``: Medplum's FHIR engine
(``@medplum/fhir-router`` with its in-memory repository, the ``@medplum/core``
validator over the R4 definitions, and the plugin's own profiles from
``fhir_profiles/``) behind a small Node HTTP server with a control API for
fault injection and SMART authentication (see tests/fhir_server/README.md).
It is installed from its lockfile (``npm ci``, only when ``node_modules`` does
not match the lockfile) and started on a free port.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from intake.clinical import (
    TriageResult,
    build_questionnaire_response,
    evaluate,
    parse_simple_answers,
)
from intake.fhir.bundle import BundleInput, PatientDemographics
from support import REPO, load_cases, node_executable, npm_ci

SERVER_DIR = REPO / "tests" / "fhir_server"
PROFILES_DIR = REPO / "fhir_profiles"
JST = timezone(timedelta(hours=9))
MRN_SYSTEM = "urn:oid:1.2.392.100495.20.3.51.11310000001"


class ServerUnavailable(RuntimeError):
    """Node or npm is missing: the real-server tests cannot run on this machine."""


# --- the Node server ---------------------------------------------------------------


def ensure_node_modules(server_dir: Path = SERVER_DIR) -> None:
    """``npm ci`` from the committed lockfile unless node_modules already matches it."""
    npm_ci(server_dir)


@dataclass
class FhirTestServer:
    """A running server.js: its URLs and a client for its control API."""

    proc: subprocess.Popen[str]
    port: int
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/fhir/R4"

    @property
    def token_url(self) -> str:
        return f"{self.origin}/auth/token"

    def control(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        resp = self.http.request(
            method, f"{self.origin}/__control/{path}", json=body, params=params or None, timeout=10
        )
        resp.raise_for_status()
        return resp.json()

    def reset(self) -> None:
        """Forget every resource, fault, token, client and logged request."""
        self.control("POST", "reset")

    def faults(self, *faults: dict[str, Any]) -> None:
        """Queue responses for the next FHIR requests (see tests/fhir_server/README.md)."""
        self.control("POST", "faults", list(faults))

    def request_log(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "requests")["requests"])

    def assertions(self) -> list[dict[str, Any]]:
        """Every client assertion the token endpoint received (header, claims, verdict)."""
        return list(self.control("GET", "assertions")["assertions"])

    def auth(self, **settings: Any) -> dict[str, Any]:
        return dict(self.control("POST", "auth", settings))

    def register_client(
        self, client_id: str, *keys: ClientKey, token_ttl: float | None = None
    ) -> None:
        """Require tokens on the FHIR endpoint and accept this client's keys."""
        settings: dict[str, Any] = {
            "required": True,
            "clients": {client_id: {"jwks": {"keys": [k.public_jwk for k in keys]}}},
        }
        if token_ttl is not None:
            settings["tokenTtl"] = token_ttl
        self.auth(**settings)

    def expire_tokens(self) -> None:
        self.control("POST", "auth/expire")

    def count(self, resource_type: str, **search: str) -> int:
        """How many resources of a type the server holds (optionally matching a search)."""
        return int(self.control("GET", "count", type=resource_type, **search)["count"])

    def search(self, resource_type: str, query: str) -> list[dict[str, Any]]:
        resp = self.http.get(f"{self.base_url}/{resource_type}?{query}", timeout=10)
        resp.raise_for_status()
        return [e["resource"] for e in resp.json().get("entry", [])]

    def post_bundle(self, bundle: dict[str, Any]) -> requests.Response:
        return self.http.post(
            self.base_url,
            json=bundle,
            timeout=30,
            headers={"Content-Type": "application/fhir+json"},
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.http.close()


def start_server(
    server_dir: Path = SERVER_DIR,
    profiles_dir: Path | None = PROFILES_DIR,
    log_path: Path | None = None,
    timeout: float = 60.0,
) -> FhirTestServer:
    """Start ``node server.js`` on a free port (port 0) and wait for its ready line."""
    node = node_executable()
    ensure_node_modules(server_dir)
    args = [node, "server.js", "--port", "0", "--host", "127.0.0.1"]
    if profiles_dir is not None:
        args += ["--profiles", str(profiles_dir)]
    with open(log_path or os.devnull, "w") as stderr:
        proc = subprocess.Popen(
            args, cwd=server_dir, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    ready: list[str] = []
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: ready.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    line = ready[0] if ready else ""
    if not line.startswith("listening "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"FHIR test server did not start (got {line!r}; log: {log_path})")
    return FhirTestServer(proc=proc, port=int(line.split()[1]))


# --- intakes -------------------------------------------------------------------------


def cases_with_results() -> list[dict[str, Any]]:
    """The shared clinical cases, each with its QuestionnaireResponse and triage
    result added (built by the clinical module, as the pipeline does)."""
    out = []
    for case in load_cases():
        parsed = parse_simple_answers(case["answers"])
        out.append(
            {
                **case,
                "qr": build_questionnaire_response(parsed),
                "triage": evaluate(parsed).to_dict(),
            }
        )
    return out


WALK_IN: PatientDemographics = {
    "family": "山田",
    "given": "花子",
    "family_kana": "ヤマダ",
    "given_kana": "ハナコ",
    "birth_date": "1961-04-01",
    "sex": "F",
}


def make_input(
    case: dict[str, Any],
    *,
    business_id: str | None = None,
    patient: str = "walk-in",
    mrn: str = "0012345",
    **overrides: Any,
) -> BundleInput:
    """A BundleInput for a loaded case.

    ``patient``: ``walk-in`` (demographics), ``mrn`` (record number, conditional
    reference) or ``mrn-create`` (record number, Patient created when missing).
    """
    kw: dict[str, Any] = {}
    if patient == "walk-in":
        kw["patient_demographics"] = dict(WALK_IN)
    elif patient in ("mrn", "mrn-create"):
        kw.update(
            patient_record_number=mrn,
            record_number_system=MRN_SYSTEM,
            create_patient_if_missing=patient == "mrn-create",
        )
    else:
        raise ValueError(patient)
    bid = business_id or f"KI-{case['id']}"
    fields: dict[str, Any] = {
        "intake_id": str(uuid.uuid5(uuid.NAMESPACE_URL, bid)),
        "business_id": bid,
        "questionnaire_response": case["qr"],
        "triage": TriageResult.from_dict(case["triage"]),
        "received_at": datetime(2025, 1, 15, 9, 30, 0, tzinfo=JST),
        "triaged_at": datetime(2025, 1, 15, 9, 30, 2, 250000, tzinfo=JST),
        "plugin_version": "0.1.0",
        **kw,
        **overrides,
    }
    return BundleInput(**fields)


def resource_types(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["resourceType"] for e in bundle["entry"]]


# --- keys for SMART ----------------------------------------------------------------------


@dataclass(frozen=True)
class ClientKey:
    """A client's private key (PEM) and its public JWK (with kid and alg)."""

    alg: str
    kid: str
    private_pem: bytes
    public_jwk: dict[str, Any]


def new_client_key(alg: str) -> ClientKey:
    kid = f"{alg.lower()}-{uuid.uuid4().hex[:8]}"
    key: Any
    if alg == "RS384":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    elif alg == "ES384":
        key = ec.generate_private_key(ec.SECP384R1())
        jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    else:
        raise ValueError(alg)
    jwk.update(kid=kid, alg=alg, use="sig")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ClientKey(alg, kid, pem, jwk)


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``predicate`` until it is truthy or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def entry_condition(entry: dict[str, Any]) -> tuple[str, str]:
    """(type, search) naming an entry's resource: its ifNoneExist condition, or the
    search of a conditional update (``PUT <Type>?<search>``)."""
    req = entry["request"]
    if req["method"] == "PUT":
        rtype, _, condition = req["url"].partition("?")
        return rtype, condition
    return req["url"], req["ifNoneExist"]


def counts_by_entry(server: FhirTestServer, bundle: dict[str, Any]) -> dict[str, int]:
    """For every entry, how many resources on the server match its ifNoneExist
    condition or its conditional update's search (keyed by "<Type>?<condition>")."""
    out = {}
    for entry in bundle["entry"]:
        rtype, condition = entry_condition(entry)
        out[f"{rtype}?{condition}"] = len(server.search(rtype, condition))
    return out


def assert_exactly_one_of_each(server: FhirTestServer, bundle: dict[str, Any]) -> None:
    """Each resource of the bundle exists once, and nothing else was created."""
    counts = counts_by_entry(server, bundle)
    assert set(counts.values()) == {1}, counts
    per_type: dict[str, int] = {}
    for t in resource_types(bundle):
        per_type[t] = per_type.get(t, 0) + 1
    for t, n in per_type.items():
        assert server.count(t) == n, (t, server.count(t), n)
