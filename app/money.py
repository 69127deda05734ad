"""Money is integer pence. Percentages are worked in Decimal and rounded once, here."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def percent_of(amount_pence: int, percent: Decimal | int | str) -> int:
    """`percent`% of an amount, rounded half up to a whole penny."""
    value = Decimal(amount_pence) * Decimal(str(percent)) / Decimal(100)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def prorate(amount_pence: int, numerator: int, denominator: int) -> int:
    """amount × numerator / denominator, rounded half up once."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    value = Decimal(amount_pence) * Decimal(numerator) / Decimal(denominator)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_pence(amount_pence: int) -> str:
    """£12.50 style, with a minus sign in front of the pound sign for negatives."""
    sign = "-" if amount_pence < 0 else ""
    pounds, pence = divmod(abs(int(amount_pence)), 100)
    return f"{sign}£{pounds:,}.{pence:02d}"


def parse_pounds(text: str) -> int:
    """Parse '12.50', '£12.50' or '1,200' into pence; raise ValueError for anything else."""
    cleaned = text.strip().replace("£", "").replace(",", "")
    if not cleaned:
        raise ValueError("Enter an amount in pounds, like 125.50")
    try:
        value = Decimal(cleaned)
    except Exception as exc:  # decimal.InvalidOperation
        raise ValueError("Enter an amount in pounds, like 125.50") from exc
    if value != value.quantize(Decimal("0.01")):
        raise ValueError("Enter an amount with no more than 2 decimal places")
    return int((value * 100).to_integral_value())
