"""A worker uploads a photo on their profile page; carers see it on the search results.
Only real pictures are kept, only with a profile that saves, and carers see only the
photos of workers they could book."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from app.extensions import db
from app.models import AuditEntry, Role
from booking.services import workers as worker_services
from tests.booking.factories_workers import make_organisation, make_worker, profile_for
from tests.factories import CouncilFactory, make_user
from tests.helpers import sign_in


def _picture(kind: str, size: tuple[int, int] = (4, 3)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buffer, kind)
    return buffer.getvalue()


PNG = _picture("PNG")
JPEG = _picture("JPEG")
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"


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


def _upload(client, worker, data: bytes, name: str, mimetype: str, **form: object):  # type: ignore[no-untyped-def]
    """Post the profile form with a file, encoded in memory (the test client would spool a
    big body to a temporary file it never closes)."""
    photo = FileStorage(stream=io.BytesIO(data), filename=name, content_type=mimetype)
    boundary, body = encode_multipart(_profile_form(photo=photo, **form))
    return client.post(
        f"/workers/{worker.id}/profile",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


@pytest.mark.parametrize(
    ("data", "name", "mimetype", "message"),
    [
        (b"GIF89a\x01\x00\x01\x00", "me.gif", "image/gif", "must be a JPEG, PNG or WebP"),
        (b"just some words", "me.txt", "text/plain", "must be a JPEG, PNG or WebP"),
        (HTML, "me.png", "image/png", "must be a JPEG, PNG or WebP"),  # lies about its type
        (PNG[:40], "me.png", "image/png", "must be a JPEG, PNG or WebP"),  # cut short
        (PNG + b"\0" * (2 * 1024 * 1024), "big.png", "image/png", "smaller than 2 MB"),
    ],
    ids=["gif", "text", "html-as-png", "truncated-png", "oversized"],
)
def test_anything_but_a_real_small_picture_is_refused_and_nothing_is_saved(
    app: Flask, data: bytes, name: str, mimetype: str, message: str
) -> None:
    worker = make_worker(CouncilFactory())
    client = sign_in(app.test_client(), worker)
    page = _upload(client, worker, data, name, mimetype, display_name="Not saved")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "govuk-error-summary" in html
    assert message in html
    db.session.expire_all()
    profile = profile_for(worker)
    assert profile.photo is None
    assert profile.photo_content_type is None
    assert profile.display_name != "Not saved"


def test_the_service_checks_the_bytes_not_the_label() -> None:
    assert worker_services.check_photo(JPEG, "image/png") == "image/jpeg"
    assert worker_services.check_photo(PNG, "image/jpeg") == "image/png"
    with pytest.raises(worker_services.WorkerError) as caught:
        worker_services.check_photo(HTML, "image/png")
    assert caught.value.fields == {"photo": "The photo must be a JPEG, PNG or WebP picture"}
    with pytest.raises(worker_services.WorkerError) as too_big:
        worker_services.check_photo(b"\x89PNG\r\n\x1a\n" + b"\0" * (2 * 1024 * 1024), "image/png")
    assert too_big.value.fields == {"photo": "The photo must be smaller than 2 MB"}
    with pytest.raises(worker_services.WorkerError):
        worker_services.check_photo(b"", "image/png")


def test_a_jpeg_is_stored_with_the_type_its_bytes_say(app: Flask) -> None:
    worker = make_worker(CouncilFactory())
    client = sign_in(app.test_client(), worker)
    assert _upload(client, worker, JPEG, "me.png", "image/png").status_code == 302
    db.session.expire_all()
    assert profile_for(worker).photo_content_type == "image/jpeg"
    served = client.get(f"/workers/{worker.id}/photo")
    assert served.mimetype == "image/jpeg"
    assert served.headers["Cache-Control"] == "private, no-cache"


def test_a_refused_profile_stores_no_photo(app: Flask) -> None:
    worker = make_worker(CouncilFactory())
    client = sign_in(app.test_client(), worker)
    page = _upload(client, worker, PNG, "me.png", "image/png", postcode="ZZ99 9ZZ")
    assert "We cannot find the postcode ZZ99 9ZZ" in page.get_data(as_text=True)
    db.session.expire_all()
    assert profile_for(worker).photo is None
    assert _upload(client, worker, PNG, "me.png", "image/png").status_code == 302
    db.session.expire_all()
    assert profile_for(worker).photo == PNG


def test_the_worker_removes_their_photo(app: Flask) -> None:
    worker = make_worker(CouncilFactory())
    client = sign_in(app.test_client(), worker)
    _upload(client, worker, PNG, "me.png", "image/png")
    page = client.get(f"/workers/{worker.id}/profile").get_data(as_text=True)
    assert f'action="/workers/{worker.id}/photo/remove"' in page
    removed = client.post(f"/workers/{worker.id}/photo/remove")
    assert removed.status_code == 302
    assert "The photo is removed." in client.get(removed.headers["Location"]).get_data(as_text=True)
    db.session.expire_all()
    profile = profile_for(worker)
    assert (profile.photo, profile.photo_content_type) == (None, None)
    assert client.get(f"/workers/{worker.id}/photo").status_code == 404
    assert (
        db.session.scalar(db.select(AuditEntry).where(AuditEntry.action == "worker.photo_removed"))
        is not None
    )
    stranger = make_worker(profile.user.council)
    assert (
        sign_in(app.test_client(), stranger).post(f"/workers/{worker.id}/photo/remove").status_code
        == 403
    )


def test_a_pending_workers_photo_is_for_them_their_provider_and_officers_only(
    app: Flask,
) -> None:
    council = CouncilFactory()
    admin = make_user(Role.PROVIDER_ADMIN, council=council)
    organisation = make_organisation(council, admin)
    worker = make_worker(council, approved=False, organisation=organisation)
    profile = profile_for(worker)
    profile.photo, profile.photo_content_type = PNG, "image/png"
    db.session.commit()
    url = f"/workers/{worker.id}/photo"
    for viewer in (worker, admin, make_user(Role.COUNCIL_OFFICER, council=council)):
        assert sign_in(app.test_client(), viewer).get(url).status_code == 200, viewer.roles
    other_admin = make_user(Role.PROVIDER_ADMIN, council=council)
    make_organisation(council, other_admin)
    for viewer in (make_user(Role.CARER, council=council), other_admin):
        assert sign_in(app.test_client(), viewer).get(url).status_code == 404, viewer.roles


def test_search_page_has_no_inline_style_the_csp_would_block(app: Flask) -> None:
    council = CouncilFactory()
    worker = make_worker(council, today=datetime.now(UTC).date())
    sign_in(app.test_client(), worker).post(
        f"/workers/{worker.id}/profile",
        data=_profile_form(photo=(io.BytesIO(PNG), "me.png", "image/png")),
        content_type="multipart/form-data",
    )
    carer = make_user(Role.CARER, council=council)
    client = sign_in(app.test_client(), carer)
    html = client.get("/workers/find", query_string=_search_args()).get_data(as_text=True)
    assert 'class="app-worker-photo"' in html
    assert "style=" not in html
    css = (Path(app.root_path) / "static" / "app.css").read_text()
    assert ".app-worker-photo" in css
    assert "object-fit: cover" in css
