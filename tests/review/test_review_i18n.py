"""The review pages' strings: each in Japanese and English with the same placeholders,
and every key a template asks for exists (an unknown key would raise while rendering)."""

from __future__ import annotations

import re
import string
from pathlib import Path

from intake.auth.i18n import CATALOG as AUTH
from intake.kiosk.i18n import CATALOG as SHARED
from intake.review.i18n import CATALOG, REVIEW

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "review"
KANA_OR_KANJI = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_string_has_both_languages() -> None:
    for key, (ja, en) in CATALOG.items():
        assert ja.strip() and en.strip(), key
        assert _fields(ja) == _fields(en), key
        assert not KANA_OR_KANJI.search(en), key  # no Japanese left in the English
        if key not in ("col_http", "wells_title", "missing_wells", "missing_ottawa"):
            assert KANA_OR_KANJI.search(ja), key  # and the Japanese is Japanese


def test_templates_ask_only_for_known_keys() -> None:
    known = set(CATALOG) | set(AUTH) | set(SHARED)
    used: set[str] = set()
    for path in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+)["']\s*[,)]""", path.read_text()))
    assert used, "no t() call found"
    assert used <= known, sorted(used - known)


def test_translator_picks_the_language() -> None:
    assert REVIEW.translator("ja")("review_title") == "ワークリスト"
    assert REVIEW.translator("en")("review_title") == "Worklist"
    assert REVIEW.translator("en")("count", total=3, first=1, last=3) == "1–3 of 3"
