"""The one lookup of interface strings, and the language of a screen.

A plain Python catalog rather than gettext catalogs: two languages, a few hundred
strings, nothing to compile at install time, and a test can check every key. Each area
keeps its strings in its own ``i18n.py`` as ``key -> (Japanese, English)`` (placeholders
use str.format names) and wraps them in a :class:`Catalog` naming the catalogs it falls
back on: the tablet's (``intake.kiosk.i18n``, which also holds the strings every screen
shares), the staff pages' (``intake.auth.i18n``, on top of the tablet's), and one per
staff area on top of that. A key lives in exactly one catalog (``tests/web`` checks it):
where two screens word the same thing differently, they use two keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

LANGS = ("ja", "en")
DEFAULT_LANG = "ja"

Strings = Mapping[str, tuple[str, str]]


class Catalog:
    """An area's strings, then the catalogs it falls back on, in order."""

    def __init__(self, name: str, strings: Strings, *fallbacks: Catalog) -> None:
        self.name = name
        self.strings = strings
        self.fallbacks = fallbacks

    def chain(self) -> Iterator[Catalog]:
        """This catalog and those it falls back on, in the order a key is looked up."""
        yield self
        for fallback in self.fallbacks:
            yield from fallback.chain()

    def find(self, key: str) -> tuple[str, str] | None:
        for catalog in self.chain():
            found = catalog.strings.get(key)
            if found is not None:
                return found
        return None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.find(key) is not None

    def text(self, key: str, lang: str, **values: object) -> str:
        """The text for ``key`` in ``lang``; placeholders filled from ``values``.

        An unknown key is a programming error and raises KeyError (the tests walk every
        template and every key the code builds), rather than showing a raw key.
        """
        found = self.find(key)
        if found is None:
            raise KeyError(key)
        ja, en = found
        text = en if lang == "en" else ja
        return text.format(**values) if values else text

    def translator(self, lang: str) -> Callable[..., str]:
        """``t(key, **values)`` in ``lang``, for a template or a view."""

        def t(key: str, **values: object) -> str:
            return self.text(key, lang, **values)

        return t


def negotiate(requested: str | None, accept_languages: Iterable[str]) -> str:
    """Language of a screen: an explicit choice, else the browser's, else Japanese."""
    if requested in LANGS:
        return requested
    for lang in accept_languages:
        code = lang.split("-")[0].lower()
        if code in LANGS:
            return code
    return DEFAULT_LANG
