"""Make the clinical test helpers importable as ``clinical_helpers``.

The project runs pytest with ``--import-mode=importlib``, which does not put a test's
folder on ``sys.path``; the helpers are a plain module so every test file (and the
hypothesis strategies at import time) can use them.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
