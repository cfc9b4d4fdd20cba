"""``python -m intake.kiosk.hash_pin``: print the scrypt hash of a staff PIN.

For operators who would rather not keep the PIN itself in the environment: set
``INTAKE_KIOSK_PIN`` to the printed hash. The PIN is read from a prompt (or one line of
standard input) and never echoed.
"""

from __future__ import annotations

import getpass
import sys

from intake.kiosk.pin import hash_pin


def main() -> int:
    pin = getpass.getpass("PIN: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    if not (pin.isascii() and pin.isdigit() and 6 <= len(pin) <= 12):
        sys.stderr.write("a PIN is 6 to 12 digits\n")
        return 2
    sys.stdout.write(hash_pin(pin) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
