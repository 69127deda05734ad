"""A worker uploads a photo on their profile page; carers see it on the search results."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from flask import Flask

from app.extensions import db
from app.models import Role
from tests.booking.factories_workers import make_worker, profile_for
from tests.factories import CouncilFactory, make_user
from tests.helpers import sign_in

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)


def _profile_form(**extra: object) -> dict[str, object]:
    return {
        "display_name": "Priya Shah",
        "skills": ["autism"],
        "languages": "English",
        "gender": "female",
        "postcode": "LS6 3AA",
        "travel_radius_km": "10",
        "hourly_rate": "18.50",
        "evening_premium_percent": "0",
        "weekend_premium_percent": "0",
        "bank_holiday_premium_percent": "0",
        **extra,
    }


def _search_args() -> dict[str, object]:
    future = datetime.now(UTC).date() + timedelta(days=7)
    return {
        "day": [str(future.day), str(future.month), str(future.year)],
        "start": "10:00",
        "end": "12:00",
        "postcode": "LS6 2AB",
        "gender": "",
    }


def test_uploaded_photo_shows_on_search_and_is_served_as_png(app: Flask) -> None:
    council = CouncilFactory()
    worker = make_worker(council, today=datetime.now(UTC).date())
    worker_client = sign_in(app.test_client(), worker)
    sent = worker_client.post(
        f"/workers/{worker.id}/profile",
        data=_profile_form(photo=(io.BytesIO(PNG), "me.png", "image/png")),
        content_type="multipart/form-data",
    )
    assert sent.status_code == 302, sent.get_data(as_text=True)
    db.session.expire_all()
    profile = profile_for(worker)
    assert profile.photo == PNG
    assert profile.photo_content_type == "image/png"

    carer = make_user(Role.CARER, council=council)
    client = sign_in(app.test_client(), carer)
    page = client.get("/workers/find", query_string=_search_args())
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "1 worker free at that time" in html
    photo_url = f"/workers/{worker.id}/photo"
    assert f'src="{photo_url}"' in html
    assert 'alt="Photo of Priya Shah"' in html

    image = client.get(photo_url)
    assert image.status_code == 200
    assert image.mimetype == "image/png"
    assert image.data == PNG


def test_no_photo_means_no_img(app: Flask) -> None:
    council = CouncilFactory()
    worker = make_worker(council, today=datetime.now(UTC).date())
    carer = make_user(Role.CARER, council=council)
    client = sign_in(app.test_client(), carer)
    html = client.get("/workers/find", query_string=_search_args()).get_data(as_text=True)
    assert "1 worker free at that time" in html
    assert "<img" not in html.split("free at that time", 1)[1]
    assert client.get(f"/workers/{worker.id}/photo").status_code == 404


def test_photo_is_not_served_to_another_council(app: Flask) -> None:
    council = CouncilFactory()
    worker = make_worker(council, today=datetime.now(UTC).date())
    sign_in(app.test_client(), worker).post(
        f"/workers/{worker.id}/profile",
        data=_profile_form(photo=(io.BytesIO(PNG), "me.png", "image/png")),
        content_type="multipart/form-data",
    )
    outsider = make_user(Role.CARER, council=CouncilFactory())
    assert (
        sign_in(app.test_client(), outsider).get(f"/workers/{worker.id}/photo").status_code == 404
    )
