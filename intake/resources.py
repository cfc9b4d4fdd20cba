"""Where the plugin's data folders live, in a source checkout and in an installed wheel.

`fhir_profiles/` and `templates/` are top-level folders of the repository. The wheel
cannot install top-level data folders next to the package, so pyproject maps them into
``intake/_bundled/``. These helpers hide that difference from every caller.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    # A checkout (or an editable install) has the folder beside the package; prefer it so
    # an edit to the JSON or a template is seen without reinstalling.
    in_checkout = _PACKAGE_DIR.parent / name
    if in_checkout.is_dir():
        return in_checkout
    return _PACKAGE_DIR / "_bundled" / name


def fhir_profiles_dir() -> Path:
    """Folder holding the FHIR artefacts (Questionnaire, CodeSystems, ValueSets).

    Loaded at run time rather than embedded in code, so the JSON stays the single source
    of truth that tests validate against the FHIR models.
    """
    return _data_dir("fhir_profiles")


def templates_dir() -> Path:
    """Folder holding the Jinja templates (one sub-folder per feature)."""
    return _data_dir("templates")
