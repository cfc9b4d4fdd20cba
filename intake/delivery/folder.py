"""Delivery to a folder: the embedded default when no record system is configured.

One file per intake revision, named by the business identifier, written
atomically (temporary file, fsync, rename). A repeat writes the same bytes to
the same name, so a second delivery never duplicates.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from intake.delivery.base import AttemptResult, Outcome
from intake.storage.models import utcnow


class FolderAdapter:
    name = "folder"

    def __init__(self, outbox: Path, clock: Callable[[], datetime] = utcnow) -> None:
        self.outbox = outbox
        self.clock = clock

    def path_for(self, business_id: str) -> Path:
        return self.outbox / f"{business_id}.json"

    def deliver(self, bundle: dict[str, Any], *, business_id: str,
                after_ambiguous: bool) -> AttemptResult:
        started = self.clock()
        target = self.path_for(business_id)
        try:
            self.outbox.mkdir(parents=True, exist_ok=True)
            data = json.dumps(bundle, ensure_ascii=False, indent=1, sort_keys=True).encode()
            fd, tmp = tempfile.mkstemp(dir=self.outbox, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            return AttemptResult(outcome=Outcome.TRANSIENT, started_at=started,
                                 finished_at=self.clock(), target=str(self.outbox),
                                 reason=f"cannot write to the outbox: {exc.strerror}")
        return AttemptResult(outcome=Outcome.DELIVERED, started_at=started,
                             finished_at=self.clock(), target=str(self.outbox),
                             response={"file": target.name, "bytes": len(data)})
