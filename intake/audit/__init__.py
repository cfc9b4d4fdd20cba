"""The audit trail: who did what to which record, when and from where, kept so that an
edit or a deletion of any past entry is detected.

Each event is appended inside the caller's transaction (so it exists exactly when the
change it describes does). Details carry ids, states and codes only, never answers,
names or record numbers.

How tampering is detected, and what is claimed
----------------------------------------------

1. **Hash chain.** Each event's ``hash`` is SHA-256 over its previous event's hash and
   every field of its own (time, actor, action, entity type and id, detail, source).
   Editing any field breaks the event's hash; deleting or inserting an event in the
   middle breaks the next event's link.

2. **Seal (a keyed MAC).** A chain alone can be recomputed: someone who edits an event
   and recomputes every later hash leaves a consistent chain. So each event also stores
   ``seal`` = HMAC-SHA256 over (id, hash) under a key derived from the app's secret key
   (``INTAKE_SECRET_KEY``, or the one generated into ``DATA_DIR/secret_key``), with the
   key's ``key_id`` (a fingerprint, not the key). Without the key nobody can seal a
   forged or recomputed event, and :func:`verify` names the first one that fails.

3. **Anchor.** Neither the chain nor the seals show that the *newest* events were
   deleted: what is left is a valid, sealed prefix. The one-row table ``audit_anchor``
   records the newest event's id, hash and time, sealed with the key, and is rewritten
   in the same transaction as every append. A missing tail, a row added after it, or
   an anchor edited or deleted is detected. Before appending, the writer also compares
   the anchor with the newest event; a disagreement (e.g. the last event was deleted and
   the clinic carried on working) is kept in the anchor's sealed ``incident`` field, so
   later appends cannot hide it.

   A row in the same database was chosen over a file in ``DATA_DIR`` because it commits
   or rolls back atomically with the event, and workers on other machines share it; a
   file cannot be written in the database's transaction and is per machine.

What this does **not** catch, honestly:

- someone who has the secret key (from the server's environment or ``DATA_DIR``) can
  rewrite the trail and re-seal everything;
- a roll-back of the whole trail to an earlier state that someone copied (the events
  *and* the anchor row as they were then) looks like a trail that simply ended there;
- deleting every event together with the anchor looks like a fresh install, and
  stripping every seal and deleting the anchor makes the trail look as if it was
  recorded before sealing existed (the admin screen then shows which events predate
  sealing, which on an install that started sealed is itself a sign of tampering).

Against those, keep the newest id and hash outside the database: ``intake audit verify``
prints them and every export carries each event's hash, so a copy kept elsewhere (a
printout, a ticket, another system) pins the trail up to that point.

Key changes: after ``INTAKE_SECRET_KEY`` changes, events sealed with the earlier key
remain covered, through the chain, by the first event sealed with the new key; until
such an event is recorded the anchor cannot be checked and ``verify`` says so.
Events recorded before sealing existed (revision 0007) are covered the same way by the
first sealed event after them.

The hash of an event is SHA-256 of the compact JSON array ``[prev_hash, time, actor,
action, entity_type, entity_id, detail(, source)]`` (keys sorted, no ASCII escaping;
time as ISO 8601 with microseconds and ``+00:00``; the source is left out when empty,
for events recorded before it was kept). The CSV and FHIR exports carry every one of
these fields, so anyone can recompute the chain from an export.

The modules: :mod:`~intake.audit.record` (the key, appending, chaining, sealing),
:mod:`~intake.audit.verify` (the walk and its report), :mod:`~intake.audit.export`
(CSV and FHIR AuditEvent). Everything a caller needs is importable from here
(``from intake import audit; audit.record(...)``).
"""

from __future__ import annotations

from intake.audit.export import (
    CSV_HEADER,
    FHIR_EXPORT_MAX,
    PERSON_ACTORS,
    AuditFilters,
    ExportTooLarge,
    apply_filters,
    audit_event_resource,
    csv_cell,
    export_csv,
    export_fhir,
    fhir_action,
    utc_text,
)
from intake.audit.record import (
    GENESIS,
    current_source,
    derive_key,
    digest,
    key_id,
    record,
    session_key,
    signing_key,
)
from intake.audit.verify import (
    BATCH,
    Break,
    BreakKind,
    ChainReport,
    incident_variant,
    verify,
)

__all__ = [
    "BATCH",
    "CSV_HEADER",
    "FHIR_EXPORT_MAX",
    "GENESIS",
    "PERSON_ACTORS",
    "AuditFilters",
    "Break",
    "BreakKind",
    "ChainReport",
    "ExportTooLarge",
    "apply_filters",
    "audit_event_resource",
    "csv_cell",
    "current_source",
    "derive_key",
    "digest",
    "export_csv",
    "export_fhir",
    "fhir_action",
    "incident_variant",
    "key_id",
    "record",
    "session_key",
    "signing_key",
    "utc_text",
    "verify",
]
