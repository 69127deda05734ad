"""Registering carers (date of birth marks a young carer) and the people a carer
nominates to act for them, through the pages as people use them."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, OutboxMessage, Representation, Role, User
from tests.booking.factories_budgets import make_budget, make_carer, make_officer
from tests.factories import CouncilFactory, make_user
from tests.helpers import sign_in

GOOD = {
    "name": "Alex  Morgan",
    "email": "Alex.Morgan@example.org",
    "phone": "07911 123 456",
    "postcode": "ls1 4ap",
    "date_of_birth": ["27", "3", "2010"],
    "reference": "RAS-7781",
}


def _count(model: Any) -> int:
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def _link_in(message: OutboxMessage) -> str:
    found = re.search(r"(/auth/reset/new-password\?token=\S+)", message.payload["body"])
    assert found, message.payload["body"]
    return found.group(1)


def test_officer_registers_a_young_carer_who_then_chooses_a_password(
    app: Flask, client: FlaskClient
) -> None:
    council = CouncilFactory()
    sign_in(client, make_officer(council))
    response = client.post("/carers/new", data=GOOD)
    assert response.status_code == 302
    carer = db.session.scalar(select(User).where(User.email == "alex.morgan@example.org"))
    assert carer is not None
    assert response.headers["Location"].endswith(f"/budgets/allocate?carer={carer.id}")
    assert carer.name == "Alex Morgan"
    assert carer.phone == "+447911123456"
    assert carer.postcode == "LS1 4AP"
    assert carer.date_of_birth == date(2010, 3, 27)
    assert carer.council_id == council.id
    assert carer.has_role(Role.CARER)
    assert db.session.scalar(select(AuditEntry.id).where(AuditEntry.action == "carer.registered"))

    # The budgets table marks them as a young carer and links to their details.
    table = client.get("/budgets/").get_data(as_text=True)
    assert "Young carer" in table
    assert f"/carers/{carer.id}" in table

    # The welcome e-mail's link lets them choose a password, then sign in with it.
    welcome = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.recipient == "alex.morgan@example.org")
    )
    assert welcome is not None
    assert "7 days" in welcome.payload["body"]
    link = _link_in(welcome)
    newcomer = app.test_client()
    assert newcomer.get(link).status_code == 200
    chosen = newcomer.post(
        link, data={"password": "three calm words", "confirm": "three calm words"}
    )
    assert chosen.status_code == 302
    signed_in = newcomer.post(
        "/auth/sign-in", data={"email": "alex.morgan@example.org", "password": "three calm words"}
    )
    assert signed_in.status_code == 302
    assert newcomer.get("/dashboard").status_code == 200


def test_bad_details_show_the_error_summary_and_write_nothing(client: FlaskClient) -> None:
    council = CouncilFactory()
    make_carer(council, reference="RAS-1")
    sign_in(client, make_officer(council))
    before = _count(User)
    cases = [
        ({"name": ""}, "Enter the carer&#39;s full name"),
        ({"email": "not an email"}, "Enter an email address in the correct format"),
        ({"phone": "12"}, "phone"),
        ({"date_of_birth": ["31", "2", "2010"]}, "Enter the date of birth as numbers"),
        ({"date_of_birth": ["1", "1", "2099"]}, "Date of birth must be in the past"),
        ({"reference": "RAS-1"}, "This reference is already in use"),
        ({"postcode": "12345"}, "Enter a real postcode, like LS6 2AB"),
    ]
    for change, message in cases:
        page = client.post("/carers/new", data={**GOOD, **change})
        text = page.get_data(as_text=True)
        assert page.status_code == 200, change
        assert "There is a problem" in text, change
        assert message in text, change
    assert _count(User) == before
    assert _count(OutboxMessage) == 0


def test_officer_changes_a_date_of_birth_and_the_young_carer_rule_follows(
    client: FlaskClient,
) -> None:
    council = CouncilFactory()
    carer = make_carer(council, name="Jo Bell")
    budget = make_budget(carer, award_pence=10_000)
    sign_in(client, make_officer(council))
    assert "young carer" not in client.get(f"/budgets/{budget.id}").get_data(as_text=True)
    form = client.get(f"/carers/{carer.id}").get_data(as_text=True)
    assert "Jo Bell" in form
    saved = client.post(
        f"/carers/{carer.id}",
        data={**GOOD, "name": "Jo Bell", "email": carer.email, "reference": ""},
    )
    assert saved.status_code == 302
    db.session.refresh(carer)
    assert carer.date_of_birth == date(2010, 3, 27)
    assert "is a young carer" in client.get(f"/budgets/{budget.id}").get_data(as_text=True)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "carer.updated"))
    assert entry is not None
    assert "date_of_birth" in entry.details["fields"]


def test_officers_cannot_see_other_councils_carers(client: FlaskClient) -> None:
    other = make_carer(CouncilFactory())
    sign_in(client, make_officer(CouncilFactory()))
    assert client.get(f"/carers/{other.id}").status_code == 404
    assert client.post(f"/carers/{other.id}", data=GOOD).status_code == 404


def test_carer_nominates_a_new_person_who_can_then_book_for_them(
    app: Flask, client: FlaskClient
) -> None:
    carer = make_carer(name="Priya Shah")
    make_budget(carer, award_pence=20_000)
    sign_in(client, carer)
    added = client.post("/carers/helpers", data={"name": "Ravi Shah", "email": "ravi@example.org"})
    assert added.status_code == 302
    ravi = db.session.scalar(select(User).where(User.email == "ravi@example.org"))
    assert ravi is not None
    assert ravi.has_role(Role.REPRESENTATIVE)
    assert ravi.council_id == carer.council_id
    page = client.get("/carers/helpers").get_data(as_text=True)
    assert "Ravi Shah" in page
    assert "ravi@example.org" in page

    welcome = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.recipient == "ravi@example.org")
    )
    assert welcome is not None
    assert "Priya Shah has asked you" in welcome.payload["body"]
    helper = app.test_client()
    sign_in(helper, ravi)
    assert "Budget for Priya Shah" in helper.get("/budgets/statement").get_data(as_text=True)

    removed = client.post(f"/carers/helpers/{ravi.id}/remove")
    assert removed.status_code == 302
    assert _count(Representation) == 0
    assert "Nobody can act for you yet" in client.get("/carers/helpers").get_data(as_text=True)
    assert helper.get("/budgets/statement").status_code == 404


def test_an_existing_account_gains_the_role_and_bad_nominations_are_refused(
    client: FlaskClient,
) -> None:
    carer = make_carer()
    neighbour = make_user(Role.CARER, council=carer.council, email="dee@example.org")
    elsewhere = make_user(Role.CARER, council=CouncilFactory(), email="far@example.org")
    sign_in(client, carer)
    assert (
        client.post("/carers/helpers", data={"name": "Dee", "email": "DEE@example.org"}).status_code
        == 302
    )
    db.session.refresh(neighbour)
    assert neighbour.has_role(Role.REPRESENTATIVE)
    assert neighbour.has_role(Role.CARER)

    cases = [
        ({"name": "Dee", "email": "dee@example.org"}, "This person can already act for you"),
        ({"name": "Me", "email": carer.email}, "This is your own address"),
        ({"name": "Far", "email": "far@example.org"}, "We could not add this person"),
        ({"name": "", "email": "x@example.org"}, "Enter their full name"),
        ({"name": "X", "email": "nope"}, "Enter an email address in the correct format"),
    ]
    for data, message in cases:
        page = client.post("/carers/helpers", data=data)
        text = page.get_data(as_text=True)
        assert page.status_code == 200, data
        assert "There is a problem" in text, data
        assert message in text, data
    assert _count(Representation) == 1
    assert not db.session.get(User, elsewhere.id).has_role(Role.REPRESENTATIVE)
    assert client.post("/carers/helpers/999999/remove").status_code == 404


def test_a_welcome_link_lasts_a_week_but_a_reset_link_only_an_hour(
    app: Flask, monkeypatch: Any
) -> None:
    import time

    from itsdangerous.timed import TimestampSigner

    from app.auth.services import make_reset_token, make_welcome_token, user_for_reset_token
    from app.errors import DomainError

    carer = make_carer()
    secret = app.config["SECRET_KEY"]
    welcome = make_welcome_token(carer, secret_key=secret)
    reset = make_reset_token(carer, secret_key=secret)
    two_days_on = int(time.time()) + 2 * 24 * 3600
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: two_days_on)
    assert user_for_reset_token(welcome, secret_key=secret, max_age_seconds=3600).id == carer.id
    with pytest.raises(DomainError) as old_reset:
        user_for_reset_token(reset, secret_key=secret, max_age_seconds=3600)
    assert old_reset.value.code == "token_expired"
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: two_days_on + 6 * 86400)
    with pytest.raises(DomainError) as old_welcome:
        user_for_reset_token(welcome, secret_key=secret, max_age_seconds=3600)
    assert old_welcome.value.code == "token_expired"


def test_officer_sends_a_new_link_to_a_carer_of_their_council_only(client: FlaskClient) -> None:
    council = CouncilFactory()
    carer = make_carer(council, name="Kay Lin")
    sign_in(client, make_officer(council))
    assert "Send a new link" in client.get(f"/carers/{carer.id}").get_data(as_text=True)
    sent = client.post(f"/carers/{carer.id}/welcome")
    assert sent.status_code == 302
    message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.recipient == carer.email))
    assert message is not None
    assert "Here is a new link" in message.payload["body"]
    assert _link_in(message).startswith("/auth/reset/new-password?token=")
    assert db.session.scalar(
        select(AuditEntry.id).where(AuditEntry.action == "carer.welcome_resent")
    )
    stranger = make_carer(CouncilFactory())
    assert client.post(f"/carers/{stranger.id}/welcome").status_code == 404
    assert (
        db.session.scalar(
            select(func.count(OutboxMessage.id)).where(OutboxMessage.recipient == stranger.email)
        )
        == 0
    )
