"""UK postcodes to places: outward-code centroids (booking/data/outcodes.csv) and
great-circle distance between them.

Distances are worked from the outward code (the part before the space, like "LS6"),
which is accurate to a few kilometres: enough to compare with a worker's travel radius,
and it never needs a network lookup. Where the table came from: booking/data/README.md.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from app.errors import DomainError

OUTCODES_CSV = Path(__file__).resolve().parent.parent / "data" / "outcodes.csv"
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)

# A full postcode ("LS6 2AB") or an outward code alone ("LS6"); spaces are optional.
_FULL = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$")
_OUTWARD = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")


class PostcodeError(DomainError):
    code = "invalid_postcode"
    status = 422


class UnknownPostcode(PostcodeError):
    code = "unknown_postcode"


@dataclass(frozen=True)
class Place:
    postcode: str  # tidied, like "LS6 2AB" or "LS6"
    outcode: str
    latitude: float
    longitude: float


@lru_cache(maxsize=1)
def outcode_table() -> dict[str, tuple[float, float]]:
    """Every known outward code with its centroid (latitude, longitude), read once."""
    table: dict[str, tuple[float, float]] = {}
    with OUTCODES_CSV.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            table[row["outcode"].strip().upper()] = (
                float(row["latitude"]),
                float(row["longitude"]),
            )
    return table


def tidy_postcode(text: str) -> tuple[str, str]:
    """Return (tidy postcode, outward code) or raise PostcodeError with a plain message."""
    squashed = re.sub(r"\s+", "", text or "").upper()
    if not squashed:
        raise PostcodeError(
            "Enter a postcode, like LS6 2AB.", fields={"postcode": "Enter a postcode"}
        )
    full = _FULL.match(squashed)
    if full:
        return f"{full.group(1)} {full.group(2)}", full.group(1)
    if _OUTWARD.match(squashed):
        return squashed, squashed
    raise PostcodeError(
        f"{text.strip()} does not look like a UK postcode. Enter a postcode like LS6 2AB.",
        fields={"postcode": "Enter a real postcode, like LS6 2AB"},
    )


def locate(text: str) -> Place:
    """Where a postcode is, from its outward code; UnknownPostcode if no such area exists."""
    postcode, outcode = tidy_postcode(text)
    found = outcode_table().get(outcode)
    if found is None:
        raise UnknownPostcode(
            f"We cannot find the postcode {postcode}. Check it is typed correctly, "
            "or try the first half of it (like LS6).",
            fields={"postcode": f"We cannot find the postcode {postcode}. Check it and try again"},
        )
    return Place(postcode=postcode, outcode=outcode, latitude=found[0], longitude=found[1])


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points, in kilometres."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi = phi2 - phi1
    d_lambda = math.radians(lon2 - lon1)
    a = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def bounding_box(lat: float, lon: float, radius_km: float) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_lon, max_lon) enclosing a circle: a cheap SQL prefilter."""
    d_lat = math.degrees(radius_km / EARTH_RADIUS_KM)
    cos_lat = max(math.cos(math.radians(lat)), 0.01)
    d_lon = math.degrees(radius_km / (EARTH_RADIUS_KM * cos_lat))
    return lat - d_lat, lat + d_lat, lon - d_lon, lon + d_lon
