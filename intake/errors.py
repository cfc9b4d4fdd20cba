"""The base class of errors a screen words for a person.

An :class:`IntakeError` carries a stable ``code`` (one per subclass) and the values its
words need. A screen looks its text up by the code (``err_<code>`` in its catalog), never
by the English message, so the message can be reworded for logs and tests without
breaking a translation. Neither the message nor the values hold patient data.
"""

from __future__ import annotations

from typing import ClassVar


class IntakeError(Exception):
    """An error with a stable ``code``; ``values`` fill the placeholders of its text."""

    code: ClassVar[str] = "error"

    def __init__(self, message: str, **values: str) -> None:
        super().__init__(message)
        self.values = values
