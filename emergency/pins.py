"""Card PINs: 8 digits from `secrets`, the last a Damm check digit, stored only as an
HMAC-SHA256 under a server key.

The Damm algorithm catches every single mistyped digit and every swap of two
neighbouring digits, so a slip of the finger is refused as mistyped instead of
matching somebody else's card.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PIN_LENGTH = 8

# The Damm quasigroup of order 10 (totally anti-symmetric), from Damm (2004).
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


def damm_digit(digits: str) -> int:
    """The Damm interim digit of `digits`: 0 means a number with its check digit is valid."""
    interim = 0
    for char in digits:
        interim = _DAMM[interim][int(char)]
    return interim


def normalise_pin(pin: str) -> str:
    """Drop the spaces and dashes people type between groups of digits."""
    return "".join(ch for ch in pin if ch not in " -\t")


def check_pin_format(pin: str) -> bool:
    """True when `pin` is 8 digits and its last digit is the right Damm check digit."""
    pin = normalise_pin(pin)
    if len(pin) != PIN_LENGTH or not pin.isascii() or not pin.isdigit():
        return False
    return damm_digit(pin) == 0


def generate_pin() -> str:
    """Seven random digits from `secrets` plus their Damm check digit."""
    body = "".join(str(secrets.randbelow(10)) for _ in range(PIN_LENGTH - 1))
    return body + str(damm_digit(body))


def pin_hmac(pin: str, key: str) -> str:
    """The stored form of a PIN: HMAC-SHA256 under the server's PIN_HMAC_KEY, in hex."""
    return hmac.new(key.encode(), normalise_pin(pin).encode(), hashlib.sha256).hexdigest()


def format_pin(pin: str) -> str:
    """'12345678' → '1234 5678', easier to read aloud and copy."""
    return f"{pin[:4]} {pin[4:]}"
