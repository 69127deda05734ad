"""The price of a break with a worker, from their hourly rate and premiums.

The slot is cut into 15-minute slices, each judged in UK wall-clock time:
- bank holiday: any slice on an England and Wales bank holiday (the `holidays` package,
  bundled data, never fetched);
- weekend: any slice on a Saturday or Sunday;
- evening: a slice starting at 20:00 or later, or before 07:00 (we chose these hours
  because they match the "unsocial hours" most UK care agencies price differently).
Premiums do not stack: a slice gets the single highest premium that applies to it
(a bank-holiday evening is paid at the bank-holiday premium if that is the higher one),
which is how most break services and agencies quote. The sum is worked in Decimal and
rounded once, half up, to a whole penny.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Protocol

import holidays

from app.clock import to_london

SLICE = timedelta(minutes=15)
EVENING_STARTS = time(20, 0)
EVENING_ENDS = time(7, 0)


class Rates(Protocol):
    hourly_rate_pence: int
    evening_premium_percent: int
    weekend_premium_percent: int
    bank_holiday_premium_percent: int


@lru_cache(maxsize=32)
def _bank_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("GB", subdiv="ENG", years=year).keys())


def is_bank_holiday(day: date) -> bool:
    """A bank holiday in England and Wales (substitute days included)."""
    return day in _bank_holidays(day.year)


def is_evening(wall_clock: time) -> bool:
    return wall_clock >= EVENING_STARTS or wall_clock < EVENING_ENDS


def slice_premium_percent(rates: Rates, local_start: datetime) -> int:
    """The premium for one slice starting at this UK wall-clock moment."""
    applicable = [0]
    if is_bank_holiday(local_start.date()):
        applicable.append(rates.bank_holiday_premium_percent)
    if local_start.weekday() >= 5:
        applicable.append(rates.weekend_premium_percent)
    if is_evening(local_start.time()):
        applicable.append(rates.evening_premium_percent)
    return max(applicable)


def quote_price(profile: Rates, starts_at: datetime, ends_at: datetime) -> int:
    """Price in pence for the slot, per 15-minute slice; a last part-slice is pro rata."""
    if ends_at <= starts_at:
        raise ValueError("ends_at must be after starts_at")
    rate = Decimal(profile.hourly_rate_pence)
    total = Decimal(0)
    cursor = starts_at
    while cursor < ends_at:
        step_end = min(cursor + SLICE, ends_at)
        hours = Decimal((step_end - cursor).total_seconds()) / Decimal(3600)
        percent = slice_premium_percent(profile, to_london(cursor))
        total += rate * hours * (Decimal(100) + Decimal(percent)) / Decimal(100)
        cursor = step_end
    return int(total.quantize(Decimal(1), rounding=ROUND_HALF_UP))
