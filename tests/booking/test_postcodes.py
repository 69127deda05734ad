"""Postcodes: tidying, outward-code centroids, distances and clear messages."""

from __future__ import annotations

import re

import pytest

from booking.services import postcodes


def test_tidy_full_and_outward_codes() -> None:
    assert postcodes.tidy_postcode(" ls6  2ab ") == ("LS6 2AB", "LS6")
    assert postcodes.tidy_postcode("sw1a1aa") == ("SW1A 1AA", "SW1A")
    assert postcodes.tidy_postcode("LS6") == ("LS6", "LS6")


@pytest.mark.parametrize("text", ["", "hello", "12345", "LS6 2A"])
def test_not_a_postcode(text: str) -> None:
    with pytest.raises(postcodes.PostcodeError) as caught:
        postcodes.locate(text)
    assert caught.value.code == "invalid_postcode"
    assert "postcode" in caught.value.fields


def test_postcode_that_does_not_exist_gives_a_clear_message() -> None:
    with pytest.raises(postcodes.UnknownPostcode) as caught:
        postcodes.locate("ZZ99 9ZZ")
    assert caught.value.code == "unknown_postcode"
    assert caught.value.status == 422
    assert caught.value.message.startswith("We cannot find the postcode ZZ99 9ZZ")


def test_distances_are_plausible() -> None:
    leeds = postcodes.locate("LS1 4AP")
    westminster = postcodes.locate("SW1A 1AA")
    km = postcodes.haversine_km(
        leeds.latitude, leeds.longitude, westminster.latitude, westminster.longitude
    )
    assert 260 < km < 285  # Leeds to Westminster is about 270 km as the crow flies
    assert postcodes.haversine_km(53.8, -1.5, 53.8, -1.5) == 0


def test_bounding_box_contains_the_circle() -> None:
    min_lat, max_lat, min_lon, max_lon = postcodes.bounding_box(53.8, -1.55, 10)
    assert min_lat < 53.8 < max_lat
    assert min_lon < -1.55 < max_lon
    north = postcodes.haversine_km(53.8, -1.55, max_lat, -1.55)
    east = postcodes.haversine_km(53.8, -1.55, 53.8, max_lon)
    assert north == pytest.approx(10, rel=1e-3)
    assert east >= 9.99


def test_table_covers_every_uk_postcode_area() -> None:
    table = postcodes.outcode_table()
    assert len(table) > 2900
    areas = {re.match(r"[A-Z]+", code).group(0) for code in table}  # type: ignore[union-attr]
    assert len(areas) == 121  # every postcode area of Great Britain and Northern Ireland
    for outcode in ("LS6", "SW1A", "EC1A", "CF10", "EH1", "AB10", "BT1", "ZE1", "HS1", "TR21"):
        assert outcode in table, outcode
    for lat, lon in table.values():
        assert 49.8 < lat < 61
        assert -8.7 < lon < 1.8
