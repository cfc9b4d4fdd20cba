"""`intake doctor`: configuration (secrets masked) and the connectivity of each part."""

from __future__ import annotations

import os
from typing import Any

from intake.config import Settings
from intake.health.checks import check_broker, check_database


def _check_schema(settings: Settings) -> dict[str, Any]:
    from intake.storage.migrate import current_revision, head_revision

    try:
        current, head = current_revision(settings.database_url), head_revision()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": current == head, "current": current, "newest": head,
            **({} if current == head else {"fix": "run `intake db upgrade`"})}


def _check_clinical() -> dict[str, Any]:
    try:
        from intake.clinical import load_questionnaire, load_ruleset

        ruleset = load_ruleset()
        q = load_questionnaire()
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
    return {"ok": True, "ruleset": f"{ruleset.id}@{ruleset.version}",
            "questionnaire": f"{q['url']}|{q['version']}"}


def _check_record_system(settings: Settings) -> dict[str, Any]:
    if not settings.fhir_base_url:
        out = settings.outbox_dir
        parent = out if out.exists() else settings.data_dir
        writable = parent.exists() and os.access(parent, os.W_OK)
        return {"ok": writable, "adapter": "folder", "outbox": str(out),
                **({} if writable else {"error": "not writable"})}
    import requests

    url = settings.fhir_base_url.rstrip("/") + "/metadata"
    try:
        resp = requests.get(url, timeout=min(settings.fhir_timeout, 10),
                            headers={"Accept": "application/fhir+json"})
    except requests.RequestException as exc:
        return {"ok": False, "adapter": "fhir", "error": type(exc).__name__}
    return {"ok": resp.status_code == 200, "adapter": "fhir", "auth": settings.fhir_auth,
            "metadata_status": resp.status_code}


def run_checks(settings: Settings) -> dict[str, Any]:
    checks = {
        "database": check_database(settings.database_url),
        "schema": _check_schema(settings),
        "broker": check_broker(settings.redis_url) if settings.redis_url else
        {"ok": True, "note": "unset: `intake serve` starts a private Redis; workers need it"},
        "record_system": _check_record_system(settings),
        "clinical_module": _check_clinical(),
    }
    return {"configuration": settings.masked(), "checks": checks}
