"""Workers: sign-up, profiles (by the worker or their provider admin), rules, teams,
favourites, the profile API and pricing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Role, User
from booking.models.workers import VettingStatus, WorkerProfile
from booking.services import pricing
from booking.services.workers import profile_of
from tests.booking.factories_workers import make_organisation, make_worker, profile_for
from tests.factories import CouncilFactory, make_user
from tests.helpers import bearer, error_of, sign_in

PROFILE_BODY = {
    "display_name": "Priya",
    "skills": ["dementia", "personal_care"],
    "languages": ["English", "Punjabi"],
    "gender": "female",
    "postcode": "ls6 3aa",
    "travel_radius_km": 12,
    "hourly_rate_pence": 1850,
}


def test_self_employed_worker_signs_up(app: Flask) -> None:
    council = CouncilFactory()
    client = app.test_client()
    bad = client.post(
        "/workers/sign-up",
        data={
            "council": council.slug,
            "name": "Ann",
            "email": "nope",
            "postcode": "ZZ99 9ZZ",
            "password": "short",
        },
    )
    html = bad.get_data(as_text=True)
    assert bad.status_code == 200
    assert "govuk-error-summary" in html
    assert db.session.scalar(select(User).where(User.name == "Ann")) is None
    unknown = client.post(
        "/workers/sign-up",
        data={
            "council": council.slug,
            "name": "Ann",
            "email": "ann@example.org",
            "postcode": "ZZ99 9ZZ",
            "password": "a-long-password",
        },
    )
    assert "We cannot find the postcode ZZ99 9ZZ" in unknown.get_data(as_text=True)
    assert db.session.scalar(select(User).where(User.name == "Ann")) is None
    ok = client.post(
        "/workers/sign-up",
        data={
            "council": council.slug,
            "name": "Ann",
            "email": "ann@example.org",
            "postcode": "LS6 3AA",
            "password": "a-long-password",
        },
    )
    assert ok.status_code == 302
    user = db.session.scalar(select(User).where(User.email == "ann@example.org"))
    assert user is not None
    assert user.has_role(Role.WORKER)
    profile = profile_of(user.id)
    assert profile is not None
    assert profile.status == VettingStatus.PENDING
    assert profile.latitude is not None


def test_profile_api_for_self_and_provider_admin(app: Flask) -> None:
    council = CouncilFactory()
    admin = make_user(Role.PROVIDER_ADMIN, council=council)
    organisation = make_organisation(council, admin)
    worker = make_worker(council, approved=False, organisation=organisation)
    loner = make_worker(council, approved=False)
    client = app.test_client()

    mine = client.put(
        f"/api/v1/workers/{worker.id}/profile", json=PROFILE_BODY, headers=bearer(worker)
    )
    assert mine.status_code == 200, mine.get_json()
    body = mine.get_json()
    assert body["worker_id"] == worker.id
    assert body["postcode"] == "LS6 3AA"
    assert body["skills"] == ["dementia", "personal_care"]
    assert body["languages"] == ["english", "punjabi"]

    by_admin = client.put(
        f"/api/v1/workers/{worker.id}/profile",
        json={**PROFILE_BODY, "hourly_rate_pence": 2000, "min_session_minutes": 120},
        headers=bearer(admin),
    )
    assert by_admin.status_code == 200
    assert by_admin.get_json()["hourly_rate_pence"] == 2000
    assert by_admin.get_json()["min_session_minutes"] == 120
    entry = db.session.scalars(
        select(AuditEntry)
        .where(AuditEntry.action == "worker.profile_updated")
        .order_by(AuditEntry.id.desc())
    ).first()
    assert entry is not None
    assert entry.actor_id == admin.id
    assert entry.on_behalf_of_id == worker.id

    assert (
        client.put(
            f"/api/v1/workers/{loner.id}/profile", json=PROFILE_BODY, headers=bearer(admin)
        ).status_code
        == 403
    )
    assert (
        client.put(
            f"/api/v1/workers/{loner.id}/profile", json=PROFILE_BODY, headers=bearer(worker)
        ).status_code
        == 403
    )
    assert (
        client.put(
            "/api/v1/workers/999999/profile", json=PROFILE_BODY, headers=bearer(admin)
        ).status_code
        == 404
    )

    unknown = client.put(
        f"/api/v1/workers/{worker.id}/profile",
        json={**PROFILE_BODY, "postcode": "ZZ99 9ZZ"},
        headers=bearer(worker),
    )
    assert unknown.status_code == 422
    assert error_of(unknown)["code"] == "unknown_postcode"
    assert "postcode" in error_of(unknown)["fields"]
    short = client.put(
        f"/api/v1/workers/{worker.id}/profile",
        json={**PROFILE_BODY, "min_session_minutes": 30},
        headers=bearer(worker),
    )
    assert short.status_code == 422
    assert "min_session_minutes" in error_of(short)["fields"]
    assert profile_for(worker).min_session_minutes == 120


def test_profile_page_errors_write_nothing(app: Flask) -> None:
    council = CouncilFactory()
    worker = make_worker(council, approved=False)
    client = sign_in(app.test_client(), worker)
    assert client.get("/workers/me/profile").status_code == 302
    page = client.get(f"/workers/{worker.id}/profile")
    assert page.status_code == 200
    assert "Profile" in page.get_data(as_text=True)
    form = {
        "display_name": "New name",
        "skills": ["autism"],
        "languages": "English",
        "gender": "female",
        "postcode": "ZZ99 9ZZ",
        "travel_radius_km": "10",
        "hourly_rate": "18.50",
        "evening_premium_percent": "0",
        "weekend_premium_percent": "0",
        "bank_holiday_premium_percent": "0",
    }
    bad = client.post(f"/workers/{worker.id}/profile", data=form)
    html = bad.get_data(as_text=True)
    assert bad.status_code == 200
    assert "govuk-error-summary" in html
    assert "We cannot find the postcode ZZ99 9ZZ" in html
    assert profile_for(worker).display_name != "New name"
    bad_rate = client.post(
        f"/workers/{worker.id}/profile", data={**form, "postcode": "LS6 3AA", "hourly_rate": "lots"}
    )
    assert "Enter an amount like 18.50" in bad_rate.get_data(as_text=True)
    assert profile_for(worker).display_name != "New name"
    ok = client.post(f"/workers/{worker.id}/profile", data={**form, "postcode": "LS6 3AA"})
    assert ok.status_code == 302
    db.session.expire_all()
    profile = profile_for(worker)
    assert profile.display_name == "New name"
    assert profile.hourly_rate_pence == 1850
    assert profile.skills == ["autism"]


def test_rules_page_never_under_an_hour(app: Flask) -> None:
    council = CouncilFactory()
    worker = make_worker(council)
    client = sign_in(app.test_client(), worker)
    data = {
        "min_notice_minutes": "180",
        "min_session_minutes": "30",
        "max_hours_per_week": "30",
        "buffer_minutes": "15",
        "response_deadline_hours": "12",
        "favourites_instant_book": "y",
    }
    bad = client.post(f"/workers/{worker.id}/rules", data=data)
    html = bad.get_data(as_text=True)
    assert "govuk-error-summary" in html
    assert "from 60" in html
    assert profile_for(worker).min_notice_minutes == 120
    ok = client.post(f"/workers/{worker.id}/rules", data={**data, "min_session_minutes": "90"})
    assert ok.status_code == 302
    db.session.expire_all()
    profile = profile_for(worker)
    assert (profile.min_session_minutes, profile.max_hours_per_week) == (90, 30)
    assert profile.favourites_instant_book is True


def test_provider_admin_manages_team(app: Flask) -> None:
    council = CouncilFactory()
    admin = make_user(Role.PROVIDER_ADMIN, council=council)
    client = sign_in(app.test_client(), admin)
    assert "set up the organisation" in client.get("/workers/team").get_data(as_text=True)
    empty = client.post("/workers/team/organisation", data={"name": ""})
    assert "govuk-error-summary" in empty.get_data(as_text=True)
    assert client.post("/workers/team/organisation", data={"name": "Kind Care"}).status_code == 302
    added = client.post("/workers/team/add", data={"name": "Bo Worker", "email": "bo@example.org"})
    assert added.status_code == 302
    bo = db.session.scalar(select(User).where(User.email == "bo@example.org"))
    assert bo is not None
    assert bo.has_role(Role.WORKER)
    team = client.get("/workers/team").get_data(as_text=True)
    assert "Bo Worker" in team
    assert client.get(f"/workers/{bo.id}/profile").status_code == 200
    stranger = make_worker(council)
    assert client.get(f"/workers/{stranger.id}/profile").status_code == 403


def test_checks_page_errors(app: Flask) -> None:
    worker = make_worker(CouncilFactory(), approved=False)
    client = sign_in(app.test_client(), worker)
    bad = client.post(
        f"/workers/{worker.id}/checks",
        data={
            "kind": "insurance",
            "reference": "POL-1",
            "issued_on": ["1", "5", "2026"],
            "expires_on": ["", "", ""],
        },
    )
    html = bad.get_data(as_text=True)
    assert "govuk-error-summary" in html
    assert "insurance runs out" in html
    ok = client.post(
        f"/workers/{worker.id}/checks",
        data={
            "kind": "insurance",
            "reference": "POL-1",
            "issued_on": ["1", "5", "2026"],
            "expires_on": ["1", "5", "2027"],
        },
    )
    assert ok.status_code == 302
    assert "POL-1" in client.get(f"/workers/{worker.id}/checks").get_data(as_text=True)


def test_favourite_toggle(app: Flask) -> None:
    council = CouncilFactory()
    carer = make_user(Role.CARER, council=council)
    worker = make_worker(council)
    client = sign_in(app.test_client(), carer)
    assert client.post(f"/workers/{worker.id}/favourite").status_code == 302
    from booking.models.workers import Favourite

    assert db.session.scalar(select(Favourite).where(Favourite.carer_id == carer.id)) is not None
    client.post(f"/workers/{worker.id}/favourite")
    assert db.session.scalar(select(Favourite).where(Favourite.carer_id == carer.id)) is None


class _Rates:
    hourly_rate_pence = 2000
    evening_premium_percent = 20
    weekend_premium_percent = 25
    bank_holiday_premium_percent = 50


@pytest.mark.parametrize(
    ("starts", "ends", "expected"),
    [
        # Wednesday daytime, GMT: 2 h × £20
        (datetime(2027, 1, 6, 10, tzinfo=UTC), datetime(2027, 1, 6, 12, tzinfo=UTC), 4000),
        # Wednesday 19:00–21:00 BST: 1 h plain + 1 h evening (+20%)
        (datetime(2027, 7, 7, 18, tzinfo=UTC), datetime(2027, 7, 7, 20, tzinfo=UTC), 4400),
        # Saturday 10:00–12:00: weekend +25%
        (datetime(2027, 1, 9, 10, tzinfo=UTC), datetime(2027, 1, 9, 12, tzinfo=UTC), 5000),
        # Easter Monday 2027 (bank holiday), evening too: highest premium only (+50%)
        (datetime(2027, 3, 29, 19, tzinfo=UTC), datetime(2027, 3, 29, 21, tzinfo=UTC), 6000),
        # 1 h 15 min on a weekday: quarter-hour slices
        (datetime(2027, 1, 6, 10, tzinfo=UTC), datetime(2027, 1, 6, 11, 15, tzinfo=UTC), 2500),
    ],
)
def test_quote_price(starts: datetime, ends: datetime, expected: int) -> None:
    assert pricing.quote_price(_Rates(), starts, ends) == expected  # type: ignore[arg-type]


def test_price_rounds_once() -> None:
    rates = _Rates()
    rates.hourly_rate_pence = 1001  # type: ignore[misc]
    rates.evening_premium_percent = 15  # type: ignore[misc]
    # 19:45–20:15 GMT: 15 min plain (250.25p) + 15 min evening (287.7875p) = 538.0375p
    start = datetime(2027, 1, 6, 19, 45, tzinfo=UTC)
    assert pricing.quote_price(rates, start, datetime(2027, 1, 6, 20, 15, tzinfo=UTC)) == 538  # type: ignore[arg-type]


def test_worker_profile_table_has_unique_user(app: Flask) -> None:
    assert WorkerProfile.__table__.c.user_id.unique


def test_demo_seed_gives_approved_bookable_workers_and_is_idempotent(app: Flask) -> None:
    from app.clock import utcnow
    from app.demo import seed
    from booking.models.workers import ProviderOrganisation
    from booking.services import vetting

    now = utcnow()
    lines = list(seed(now=now, password_method="pbkdf2:sha256:1000"))
    assert any("provider organisation" in line for line in lines)
    profiles = db.session.scalars(select(WorkerProfile)).all()
    demo = [p for p in profiles if p.user.email.endswith("@demo.example")]
    assert len(demo) == 3
    assert all(vetting.is_bookable(p, now) for p in demo)
    organisations = db.session.scalars(select(ProviderOrganisation)).all()
    list(seed(now=now, password_method="pbkdf2:sha256:1000"))
    assert len(db.session.scalars(select(WorkerProfile)).all()) == len(profiles)
    assert len(db.session.scalars(select(ProviderOrganisation)).all()) == len(organisations)


def _profile_row(worker: User) -> tuple[object, ...]:
    db.session.expire_all()
    p = profile_for(worker)
    return (
        p.display_name,
        p.hourly_rate_pence,
        p.postcode,
        p.travel_radius_km,
        tuple(p.skills),
        p.min_session_minutes,
        p.min_notice_minutes,
        p.buffer_minutes,
        p.user.phone,
    )


def _audit_count() -> int:
    return len(db.session.scalars(select(AuditEntry)).all())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"min_session_minutes": 61}, "min_session_minutes"),  # passes pydantic, not the rule
        ({"postcode": "ZZ99 9ZZ", "min_notice_minutes": 600}, "postcode"),
        ({"skills": ["juggling"], "buffer_minutes": 30}, "skills"),
        ({"phone": "12345", "max_hours_per_week": 10}, "phone"),
    ],
    ids=["bad-rule", "bad-postcode", "bad-skill", "bad-phone"],
)
def test_put_profile_is_all_or_nothing(app: Flask, change: dict[str, object], field: str) -> None:
    worker = make_worker(CouncilFactory(), approved=False)
    before = _profile_row(worker)
    entries = _audit_count()
    response = app.test_client().put(
        f"/api/v1/workers/{worker.id}/profile",
        json={**PROFILE_BODY, "display_name": "Changed", "hourly_rate_pence": 4321, **change},
        headers=bearer(worker),
    )
    assert response.status_code == 422, response.get_json()
    assert field in error_of(response)["fields"]
    assert _profile_row(worker) == before
    assert _audit_count() == entries


def test_put_profile_saves_profile_and_rules_together(app: Flask) -> None:
    council = CouncilFactory()
    admin = make_user(Role.PROVIDER_ADMIN, council=council)
    worker = make_worker(council, approved=False, organisation=make_organisation(council, admin))
    response = app.test_client().put(
        f"/api/v1/workers/{worker.id}/profile",
        json={
            **PROFILE_BODY,
            "hourly_rate_pence": 4321,
            "min_session_minutes": 90,
            "buffer_minutes": 30,
            "phone": "07911 123 456",
        },
        headers=bearer(admin),
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["hourly_rate_pence"], body["min_session_minutes"]) == (4321, 90)
    assert body["buffer_minutes"] == 30
    assert body["min_notice_minutes"] == 120  # not sent: kept
    assert body["phone"] == "+447911123456"
    row = _profile_row(worker)
    assert (row[1], row[5], row[7], row[8]) == (4321, 90, 30, "+447911123456")
    rules_entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "worker.rules_updated")
    ).one()
    assert (rules_entry.actor_id, rules_entry.on_behalf_of_id) == (admin.id, worker.id)


# --- the way in for workers ----------------------------------------------------------------


@pytest.mark.parametrize("start", ["/", "/auth/sign-in"])
def test_start_and_sign_in_pages_link_to_worker_sign_up(app: Flask, start: str) -> None:
    import re

    client = app.test_client()
    page = client.get(start)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Are you a support worker?" in html
    links = re.findall(r'href="([^"]*sign-up[^"]*)"', html)
    assert links == ["/workers/sign-up"]
    sign_up = client.get(links[0])
    assert sign_up.status_code == 200
    assert "Join as a support worker" in sign_up.get_data(as_text=True)


# --- phone numbers are E.164 ---------------------------------------------------------------


def _sign_up(client, council, phone: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/workers/sign-up",
        data={
            "council": council.slug,
            "name": "Ann",
            "email": "ann@example.org",
            "phone": phone,
            "postcode": "LS6 3AA",
            "password": "a-long-password",
        },
    )


def test_sign_up_stores_the_phone_as_e164_or_refuses_it(app: Flask) -> None:
    council = CouncilFactory()
    client = app.test_client()
    bad = _sign_up(client, council, "0123")
    html = bad.get_data(as_text=True)
    assert bad.status_code == 200
    assert "govuk-error-summary" in html
    assert 'href="#phone"' in html
    assert "Enter a valid phone number" in html
    assert db.session.scalar(select(User).where(User.email == "ann@example.org")) is None
    assert _sign_up(client, council, "07911 123 456").status_code == 302
    user = db.session.scalar(select(User).where(User.email == "ann@example.org"))
    assert user is not None
    assert user.phone == "+447911123456"


def test_provider_admin_adds_a_worker_with_an_e164_phone(app: Flask) -> None:
    council = CouncilFactory()
    admin = make_user(Role.PROVIDER_ADMIN, council=council)
    make_organisation(council, admin)
    client = sign_in(app.test_client(), admin)
    form = {"name": "Bo Worker", "email": "bo@example.org"}
    bad = client.post("/workers/team/add", data={**form, "phone": "07911 12"})
    html = bad.get_data(as_text=True)
    assert "govuk-error-summary" in html
    assert 'href="#phone"' in html
    assert db.session.scalar(select(User).where(User.email == "bo@example.org")) is None
    ok = client.post("/workers/team/add", data={**form, "phone": "+44 (0)7911 123456"})
    assert ok.status_code == 302
    bo = db.session.scalar(select(User).where(User.email == "bo@example.org"))
    assert bo is not None
    assert bo.phone == "+447911123456"


def test_profile_page_sets_the_phone_as_e164(app: Flask) -> None:
    worker = make_worker(CouncilFactory(), approved=False)
    client = sign_in(app.test_client(), worker)
    form = {
        "display_name": "New name",
        "skills": ["autism"],
        "languages": "English",
        "gender": "female",
        "postcode": "LS6 3AA",
        "travel_radius_km": "10",
        "hourly_rate": "18.50",
        "evening_premium_percent": "0",
        "weekend_premium_percent": "0",
        "bank_holiday_premium_percent": "0",
    }
    bad = client.post(f"/workers/{worker.id}/profile", data={**form, "phone": "not a phone"})
    html = bad.get_data(as_text=True)
    assert "govuk-error-summary" in html
    assert 'href="#phone"' in html
    assert profile_for(worker).display_name != "New name"
    ok = client.post(f"/workers/{worker.id}/profile", data={**form, "phone": "07911 123456"})
    assert ok.status_code == 302
    db.session.expire_all()
    assert profile_for(worker).user.phone == "+447911123456"
    assert 'value="+447911123456"' in client.get(f"/workers/{worker.id}/profile").get_data(
        as_text=True
    )
    cleared = client.post(f"/workers/{worker.id}/profile", data={**form, "phone": ""})
    assert cleared.status_code == 302
    db.session.expire_all()
    assert profile_for(worker).user.phone is None
