"""Delivery to a FHIR R4 server over REST (``INTAKE_FHIR_BASE_URL``).

One call of :meth:`FhirRestAdapter.deliver` is one attempt: POST the intake's
transaction Bundle to the base URL and classify what happened
(``intake.delivery.base.Outcome``). The Celery task owns retries and waits
(:func:`backoff_delay` gives the wait), so a waiting retry never holds a worker.

Classification:

==========================================  ==========  =========  ===========
what happened                               outcome     ambiguous  retry_after
==========================================  ==========  =========  ===========
2xx with a ``transaction-response`` Bundle  DELIVERED
2xx with anything else                      TRANSIENT   yes
connection refused / DNS / connect timeout  TRANSIENT   no
read timeout, connection dropped or reset   TRANSIENT   yes
429, 503                                    TRANSIENT   no         Retry-After
other 5xx (the server or a proxy may have   TRANSIENT   yes        Retry-After
applied it: 500, 502, 504)
408, 409, 425 (not applied, or a conflict   TRANSIENT   no         Retry-After
between concurrent transactions)
401                                         one retry with a fresh token, then
                                            REJECTED
other 4xx                                   REJECTED (the OperationOutcome kept)
token endpoint unreachable / 5xx / 429      TRANSIENT   no
token endpoint 4xx (client refused)         REJECTED
==========================================  ==========  =========  ===========

After an ambiguous attempt (``after_ambiguous=True``):

===============================  ==================================================
bundle                           what the adapter does first
===============================  ==================================================
first delivery (every entry a    searches each entry by its ``ifNoneExist``; all
``POST`` with ``ifNoneExist``)   found: DELIVERED without writing again
                                 (``extra["found_by_search"]``), else re-sends
write-back (any ``PUT`` entry)   re-sends at once, no search
                                 (``extra["search_skipped"]``)
===============================  ==================================================

The search asks the server whether the first delivery was applied: it runs the
``ifNoneExist`` search of each entry identified by the intake's business
identifier (a record-number Patient is skipped: its condition is patient data,
which never goes into a URL; transactions are atomic, so the intake's own
resources answer for it). Re-sending is safe because every entry is a
conditional create. A write-back's resources exist from the first delivery
whether or not the write-back was applied, so finding them proves nothing;
its entries are conditional updates of the whole current state, so sending it
again leaves the same single resource per identifier either way. If this
attempt fails before the question is answered, its result stays
``ambiguous`` so the next attempt asks again.

Nothing here logs or stores patient data: logs carry the business id, the
status and the outcome; ``reason`` is at most one short line; the stored
transaction-response keeps each entry's ``response`` (status, location) and
drops the echoed resources.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from urllib.parse import unquote

import requests
import urllib3.exceptions

from intake import constants
from intake.delivery.auth import AuthError, FhirAuth
from intake.delivery.base import AttemptResult, Outcome
from intake.fhir.bundle import bundle_json

log = logging.getLogger(__name__)

FHIR_JSON: Final = "application/fhir+json"
REASON_MAX: Final = 160  # keeps a server's echo of submitted data out of the worklist line
_TRANSIENT_4XX: Final = frozenset({408, 409, 425, 429})
_NOT_APPLIED_5XX: Final = frozenset({503})


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Random(Protocol):
    def random(self) -> float: ...


def backoff_delay(
    attempt: int,
    retry_after: float | None,
    *,
    base: float = 2.0,
    cap: float = 300.0,
    rng: _Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry).

    Exponential backoff with full jitter (a uniform draw in
    ``[0, min(cap, base * 2**(attempt-1))]``) so that many intakes failing at
    once do not retry in step. A server's ``Retry-After`` is a floor: the
    delay is never shorter than what the server asked for, even above ``cap``.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if base <= 0 or cap <= 0:
        raise ValueError("base and cap must be positive")
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 64))
    draw = (rng or random).random()
    delay = draw * ceiling
    if retry_after is not None and math.isfinite(retry_after) and retry_after > delay:
        delay = retry_after
    return delay


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP-date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def _safe_line(text: str, limit: int = REASON_MAX) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _outcome_summary(body: object) -> str | None:
    """The first issue's diagnostics (or details.text) of an OperationOutcome."""
    if not isinstance(body, Mapping) or body.get("resourceType") != "OperationOutcome":
        return None
    for issue in body.get("issue") or []:
        if not isinstance(issue, Mapping):
            continue
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
        if isinstance(text, str) and text.strip():
            return text
        code = issue.get("code")
        if isinstance(code, str):
            return code
    return None


def _never_sent(exc: BaseException) -> bool:
    """True when the request cannot have reached the server (no connection was made)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(
            e, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
        ):
            return True
        if isinstance(e, requests.exceptions.ConnectTimeout):
            return True
        stack.append(e.__cause__)
        stack.append(e.__context__)
        stack.extend(a for a in e.args if isinstance(a, BaseException))
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    return False


def _on_intake_identifier(condition: str) -> bool:
    """True when an ifNoneExist condition searches the intake's identifier system."""
    _, _, value = unquote(condition).partition("=")
    return value.startswith(f"{constants.IDENTIFIER_SYSTEM_INTAKE}|")


def _has_conditional_update(bundle: Mapping[str, Any]) -> bool:
    """True for a write-back: some entry is a ``PUT`` (a conditional update)."""
    return any(
        isinstance(entry, Mapping)
        and str((entry.get("request") or {}).get("method", "")).upper() == "PUT"
        for entry in bundle.get("entry") or []
    )


def _strip_response(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """The transaction-response without the resources a server may echo back."""
    entries = []
    for entry in bundle.get("entry") or []:
        if isinstance(entry, Mapping):
            entries.append({"response": entry.get("response") or {}})
    return {"resourceType": "Bundle", "type": bundle.get("type"), "entry": entries}


def _locations(bundle: Mapping[str, Any]) -> list[str]:
    out = []
    for entry in bundle.get("entry") or []:
        loc = (entry.get("response") or {}).get("location") if isinstance(entry, Mapping) else None
        if isinstance(loc, str):
            out.append(loc)
    return out


@dataclass
class _Attempt:
    """What one deliver() call did, for AttemptResult.extra (no patient data)."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    token_refreshed: bool = False
    found_by_search: bool = False
    search_skipped: bool = False

    def record(
        self, method: str, what: str, started: float, status: int | None, error: str | None
    ) -> None:
        self.requests.append(
            {
                "method": method,
                "what": what,
                "status": status,
                "error": error,
                "ms": round((time.monotonic() - started) * 1000, 1),
            }
        )


class FhirRestAdapter:
    """Sends one intake's transaction Bundle to a FHIR R4 server.

    ``session`` carries connection pooling (and, in tests, nothing else: it
    must not retry by itself; the default ``requests.Session`` does not retry
    a POST). ``timeout`` is the connect and read timeout in seconds.
    ``clock`` dates the attempt and resolves HTTP-date ``Retry-After`` values.
    """

    name = "fhir-rest"

    def __init__(
        self,
        base_url: str,
        auth: FhirAuth,
        session: requests.Session,
        timeout: float = 30.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ValueError("base_url must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.session = session
        self.timeout = timeout
        self.clock = clock

    # -- the attempt ---------------------------------------------------------------

    def deliver(
        self, bundle: dict[str, Any], *, business_id: str, after_ambiguous: bool
    ) -> AttemptResult:
        """Make one delivery attempt; see the module docstring for the outcomes."""
        started_at = self.clock()
        attempt = _Attempt()
        try:
            if after_ambiguous and _has_conditional_update(bundle):
                # A write-back: the search cannot tell, and a re-send is idempotent.
                attempt.search_skipped = True
            elif after_ambiguous:
                found = self._find_delivered(bundle, attempt)
                if found is not None:
                    attempt.found_by_search = True
                    result = self._result(
                        Outcome.DELIVERED,
                        started_at,
                        attempt,
                        http_status=200,
                        response=found,
                        reason="already applied by an earlier attempt (found by identifier)",
                    )
                    self._log(business_id, result)
                    return result
            result = self._post(bundle, started_at, attempt)
        except AuthError as exc:
            result = self._result(
                Outcome.TRANSIENT if exc.transient else Outcome.REJECTED,
                started_at,
                attempt,
                http_status=exc.status,
                response=str(exc),
                reason=_safe_line(f"authentication failed: {exc}"),
            )
        if after_ambiguous and result.outcome is Outcome.TRANSIENT and not result.ambiguous:
            # The earlier attempt's fate is still unknown: the next one must search again.
            result = replace(result, ambiguous=True)
        self._log(business_id, result)
        return result

    def _post(
        self, bundle: dict[str, Any], started_at: datetime, attempt: _Attempt
    ) -> AttemptResult:
        body = bundle_json(bundle)
        for try_no in (1, 2):
            headers = {
                "Content-Type": f"{FHIR_JSON}; charset=utf-8",
                "Accept": FHIR_JSON,
                "Prefer": "return=minimal",
                **self.auth.headers(),
            }
            t0 = time.monotonic()
            try:
                resp = self.session.post(
                    self.base_url,
                    data=body,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                ambiguous = not _never_sent(exc)
                attempt.record("POST", "transaction", t0, None, type(exc).__name__)
                kind = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
                return self._result(
                    Outcome.TRANSIENT,
                    started_at,
                    attempt,
                    response=_safe_line(f"{type(exc).__name__}: {kind}"),
                    reason=(
                        f"{kind} ({'may have reached the server' if ambiguous else 'not sent'})"
                    ),
                    ambiguous=ambiguous,
                )
            attempt.record("POST", "transaction", t0, resp.status_code, None)
            if resp.status_code == 401 and try_no == 1:
                self.auth.invalidate()
                attempt.token_refreshed = True
                continue
            return self._classify(resp, started_at, attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _classify(
        self, resp: requests.Response, started_at: datetime, attempt: _Attempt
    ) -> AttemptResult:
        status = resp.status_code
        try:
            payload: Any = resp.json()
        except ValueError:
            payload = None
        retry_after = parse_retry_after(resp.headers.get("Retry-After"), self.clock())
        if 200 <= status < 300:
            if (
                isinstance(payload, Mapping)
                and payload.get("resourceType") == "Bundle"
                and (payload.get("type") == "transaction-response")
            ):
                stripped = _strip_response(payload)
                return self._result(
                    Outcome.DELIVERED,
                    started_at,
                    attempt,
                    http_status=status,
                    response=stripped,
                    locations=_locations(stripped),
                )
            return self._result(
                Outcome.TRANSIENT,
                started_at,
                attempt,
                http_status=status,
                response=_safe_line(resp.text, 500),
                reason=f"HTTP {status} without a transaction-response",
                ambiguous=True,
            )
        summary = _outcome_summary(payload)
        reason = _safe_line(f"HTTP {status}: {summary}" if summary else f"HTTP {status}")
        response: dict[str, Any] | str = (
            dict(payload) if isinstance(payload, Mapping) else _safe_line(resp.text, 500)
        )
        if status >= 500 or status in _TRANSIENT_4XX:
            return self._result(
                Outcome.TRANSIENT,
                started_at,
                attempt,
                http_status=status,
                response=response,
                reason=reason,
                retry_after=retry_after,
                ambiguous=status >= 500 and status not in _NOT_APPLIED_5XX,
            )
        return self._result(
            Outcome.REJECTED,
            started_at,
            attempt,
            http_status=status,
            response=response,
            reason=reason,
        )

    # -- after an ambiguous attempt ------------------------------------------------

    def _find_delivered(
        self, bundle: Mapping[str, Any], attempt: _Attempt
    ) -> dict[str, Any] | None:
        """Search for every entry by its own ``ifNoneExist``; a response-like
        Bundle with their locations when all are there, else None."""
        entries = []
        for entry in bundle.get("entry") or []:
            request = entry.get("request") or {}
            rtype, condition = request.get("url"), request.get("ifNoneExist")
            if not rtype or not condition:
                return None  # not a conditional create: cannot tell, re-send
            if not _on_intake_identifier(condition):
                # A record-number Patient: its condition holds patient data,
                # which never goes into a URL. The intake's own resources
                # below tell whether the bundle was applied.
                continue
            t0 = time.monotonic()
            try:
                resp = self.session.get(
                    f"{self.base_url}/{rtype}?{condition}",
                    headers={"Accept": FHIR_JSON, **self.auth.headers()},
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                attempt.record("GET", f"search {rtype}", t0, None, type(exc).__name__)
                return None
            attempt.record("GET", f"search {rtype}", t0, resp.status_code, None)
            if resp.status_code == 401:
                self.auth.invalidate()
                attempt.token_refreshed = True
                return None
            if resp.status_code != 200:
                return None
            try:
                found = [
                    e["resource"]
                    for e in resp.json().get("entry") or []
                    if (e.get("search") or {}).get("mode", "match") == "match" and "resource" in e
                ]
            except (ValueError, AttributeError, KeyError, TypeError):
                return None
            if not found:
                return None
            first = found[0]
            entries.append(
                {
                    "response": {
                        "status": "200 OK",
                        "location": f"{first['resourceType']}/{first['id']}",
                    }
                }
            )
        return {"resourceType": "Bundle", "type": "batch-response", "entry": entries}

    # -- helpers -------------------------------------------------------------------

    def _result(
        self,
        outcome: Outcome,
        started_at: datetime,
        attempt: _Attempt,
        *,
        http_status: int | None = None,
        response: dict[str, Any] | str | None = None,
        reason: str | None = None,
        retry_after: float | None = None,
        ambiguous: bool = False,
        locations: list[str] | None = None,
    ) -> AttemptResult:
        extra: dict[str, Any] = {"requests": attempt.requests}
        if attempt.token_refreshed:
            extra["token_refreshed"] = True
        if attempt.found_by_search:
            extra["found_by_search"] = True
        if attempt.search_skipped:
            extra["search_skipped"] = True
        if (
            locations is None
            and isinstance(response, Mapping)
            and response.get("resourceType") == "Bundle"
        ):
            locations = _locations(response)
        if locations:
            extra["locations"] = locations
        return AttemptResult(
            outcome=outcome,
            started_at=started_at,
            finished_at=self.clock(),
            target=self.base_url,
            http_status=http_status,
            response=response,
            reason=reason,
            retry_after=retry_after,
            ambiguous=ambiguous,
            extra=extra,
        )

    def _log(self, business_id: str, result: AttemptResult) -> None:
        level = logging.INFO if result.outcome is Outcome.DELIVERED else logging.WARNING
        log.log(
            level,
            "FHIR delivery of intake %s: %s (HTTP %s%s)",
            business_id,
            result.outcome.value,
            result.http_status,
            ", ambiguous" if result.ambiguous else "",
        )
