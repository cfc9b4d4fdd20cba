"""Fixtures of the tablet and desk tests (Flask test client; real databases).

``kiosk_helpers`` is a plain module; ``--import-mode=importlib`` does not put this folder
on ``sys.path``, so it is added here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from kiosk_helpers import PIN, Tablet  # noqa: E402


@pytest.fixture
def kiosk_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    """The app on SQLite, no broker (intakes wait for the sweeper), a known PIN."""
    return make_app(sqlite_url, kiosk_pin=PIN)


@pytest.fixture
def tablet(kiosk_app: Any) -> Tablet:
    return Tablet(kiosk_app)
