"""The outbox: nothing is lost when a provider fails; retries back off; dead messages
are shown to staff and can be tried again."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import select

from app import outbox
from app.clock import utcnow
from app.extensions import db
from app.models import OutboxMessage, OutboxStatus, Role
from app.notify import DeliveryError, Sent
from app.scheduler import run_job
from tests.factories import make_user
from tests.helpers import sign_in


class FlakyNotifier:
    """Fails the first `failures` sends, then succeeds; counts real sends."""

    def __init__(self, failures: int = 0, permanent: bool = False) -> None:
        self.failures = failures
        self.permanent = permanent
        self.sent: list[tuple[str, str]] = []

    def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> Sent:
        if self.failures > 0:
            self.failures -= 1
            raise DeliveryError("provider unavailable", permanent=self.permanent)
        self.sent.append((to, body))
        return Sent(provider_ref=f"SM{len(self.sent)}", status="queued")

    def send_email(self, to: str, subject: str, body: str) -> Sent:
        self.sent.append((to, subject))
        return Sent()

    def place_call(self, to: str, **kwargs: object) -> Sent:
        return Sent()


def _config(app: Flask) -> dict[str, object]:
    return dict(app.config)


def test_failed_sends_are_retried_with_backoff_and_delivered_once(app: Flask) -> None:
    outbox.enqueue("sms", recipient="+447700900123", payload={"body": "Your break is confirmed."})
    db.session.commit()
    now = utcnow()
    notifier = FlakyNotifier(failures=2)
    first = outbox.deliver_due(notifier=notifier, config=_config(app), now=now)
    assert first == {"sent": 0, "retry": 1, "dead": 0}
    message = db.session.scalars(select(OutboxMessage)).one()
    assert message.status is OutboxStatus.PENDING
    assert message.next_attempt_at == now + timedelta(seconds=30)
    assert "provider unavailable" in (message.last_error or "")
    # Not due yet: nothing happens.
    assert outbox.deliver_due(notifier=notifier, config=_config(app), now=now)["retry"] == 0
    outbox.deliver_due(notifier=notifier, config=_config(app), now=now + timedelta(seconds=31))
    db.session.refresh(message)
    assert message.next_attempt_at == now + timedelta(seconds=31 + 60)
    outbox.deliver_due(notifier=notifier, config=_config(app), now=now + timedelta(minutes=5))
    db.session.refresh(message)
    assert message.status is OutboxStatus.SENT
    assert message.provider_ref == "SM1"
    assert notifier.sent == [("+447700900123", "Your break is confirmed.")]
    outbox.deliver_due(notifier=notifier, config=_config(app), now=now + timedelta(hours=1))
    assert len(notifier.sent) == 1


def test_after_the_last_try_a_message_is_dead_and_staff_can_retry(app: Flask, client) -> None:  # type: ignore[no-untyped-def]
    officer = make_user(Role.COUNCIL_OFFICER)
    outbox.enqueue(
        "sms", recipient="+447700900123", payload={"body": "Hello"}, council_id=officer.council_id
    )
    db.session.commit()
    config = {**_config(app), "OUTBOX_MAX_ATTEMPTS": 3}
    notifier = FlakyNotifier(failures=10)
    moment = utcnow()
    for _ in range(3):
        outbox.deliver_due(notifier=notifier, config=config, now=moment)
        moment += timedelta(hours=7)
    message = db.session.scalars(select(OutboxMessage)).one()
    assert message.status is OutboxStatus.DEAD
    assert message.attempts == 3
    sign_in(client, officer)
    page = client.get("/staff/outbox?status=dead").get_data(as_text=True)
    assert "+447700900123" in page
    assert "provider unavailable" in page
    assert client.post(f"/staff/outbox/{message.id}/retry").status_code == 302
    db.session.refresh(message)
    assert message.status is OutboxStatus.PENDING
    assert message.attempts == 0


def test_permanent_failures_stop_at_once(app: Flask) -> None:
    outbox.enqueue("sms", recipient="+447700900123", payload={"body": "x"})
    db.session.commit()
    outbox.deliver_due(
        notifier=FlakyNotifier(failures=1, permanent=True), config=_config(app), now=utcnow()
    )
    assert db.session.scalars(select(OutboxMessage)).one().status is OutboxStatus.DEAD


def test_unknown_kinds_are_dead_not_crashing(app: Flask) -> None:
    outbox.enqueue("no-such-kind", payload={})
    db.session.commit()
    counts = outbox.deliver_due(notifier=FlakyNotifier(), config=_config(app), now=utcnow())
    assert counts["dead"] == 1


def test_dedupe_key_enqueues_once(app: Flask) -> None:
    assert outbox.enqueue("sms", recipient="+447700900123", payload={"body": "a"}, dedupe_key="r-1")
    assert (
        outbox.enqueue("sms", recipient="+447700900123", payload={"body": "a"}, dedupe_key="r-1")
        is None
    )
    db.session.commit()
    assert len(db.session.scalars(select(OutboxMessage)).all()) == 1


def test_not_before_delays_delivery(app: Flask) -> None:
    now = utcnow()
    outbox.enqueue(
        "sms",
        recipient="+447700900123",
        payload={"body": "later"},
        not_before=now + timedelta(hours=1),
    )
    db.session.commit()
    notifier = FlakyNotifier()
    outbox.deliver_due(notifier=notifier, config=_config(app), now=now)
    assert notifier.sent == []
    outbox.deliver_due(notifier=notifier, config=_config(app), now=now + timedelta(hours=2))
    assert len(notifier.sent) == 1


def test_deliver_outbox_job_uses_the_configured_backend(app: Flask) -> None:
    outbox.enqueue("email", recipient="a@example.org", payload={"subject": "Hi", "body": "Text"})
    db.session.commit()
    result = run_job("deliver_outbox", now=utcnow())
    assert result["sent"] == 1
    message = db.session.scalars(select(OutboxMessage)).one()
    assert message.status is OutboxStatus.SENT
    assert message.delivery_status == "logged"


def test_outbox_page_is_scoped_to_the_officers_council(client) -> None:  # type: ignore[no-untyped-def]
    officer = make_user(Role.COUNCIL_OFFICER)
    stranger = make_user(Role.COUNCIL_OFFICER)
    outbox.enqueue(
        "sms", recipient="+447700900999", payload={"body": "x"}, council_id=stranger.council_id
    )
    db.session.commit()
    sign_in(client, officer)
    assert "+447700900999" not in client.get("/staff/outbox").get_data(as_text=True)
    message = db.session.scalars(select(OutboxMessage)).one()
    assert client.post(f"/staff/outbox/{message.id}/retry").status_code == 404


def test_a_message_that_is_not_dead_is_never_sent_again_by_a_retry(client) -> None:  # type: ignore[no-untyped-def]
    from app.models import AuditEntry

    officer = make_user(Role.COUNCIL_OFFICER)
    delivered = outbox.enqueue(
        "sms", recipient="+447700900123", payload={"body": "x"}, council_id=officer.council_id
    )
    waiting = outbox.enqueue(
        "sms", recipient="+447700900124", payload={"body": "y"}, council_id=officer.council_id
    )
    assert delivered is not None
    assert waiting is not None
    delivered.status = OutboxStatus.SENT
    delivered.attempts = 1
    delivered.delivery_status = "delivered"
    db.session.commit()
    sign_in(client, officer)

    for message in (delivered, waiting):
        response = client.post(f"/staff/outbox/{message.id}/retry", follow_redirects=True)
        assert response.status_code == 200
        assert "Only a message that failed can be tried again" in response.get_data(as_text=True)

    db.session.refresh(delivered)
    assert (delivered.status, delivered.attempts, delivered.delivery_status) == (
        OutboxStatus.SENT,
        1,
        "delivered",
    )
    notifier = FlakyNotifier()
    outbox.deliver_due(notifier=notifier, config=_config(client.application), now=utcnow())
    assert notifier.sent == [("+447700900124", "y")]  # the waiting one, once; never the other
    assert (
        db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "outbox.message.retried")
        ).all()
        == []
    )


def test_each_staff_retry_is_audited(client) -> None:  # type: ignore[no-untyped-def]
    from app.models import AuditEntry

    operator = make_user(Role.OPERATOR)
    message = outbox.enqueue(
        "sms", recipient="+447700900123", payload={"body": "x"}, council_id=operator.council_id
    )
    assert message is not None
    db.session.commit()
    outbox.deliver_due(
        notifier=FlakyNotifier(failures=1, permanent=True),
        config=_config(client.application),
        now=utcnow(),
    )
    db.session.refresh(message)
    assert message.status is OutboxStatus.DEAD
    sign_in(client, operator)

    assert client.post(f"/staff/outbox/{message.id}/retry").status_code == 302
    # A second click finds it waiting again: refused, not audited twice.
    client.post(f"/staff/outbox/{message.id}/retry")

    [entry] = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "outbox.message.retried")
    ).all()
    assert (entry.actor_id, entry.council_id, entry.subject_type, entry.subject_id) == (
        operator.id,
        operator.council_id,
        "OutboxMessage",
        message.id,
    )
    assert "provider unavailable" in entry.details["last_error"]
    db.session.refresh(message)
    assert (message.status, message.attempts) == (OutboxStatus.PENDING, 0)


def test_listeners_hear_of_each_message_that_goes_dead_once(app: Flask) -> None:
    heard: list[tuple[int, str | None]] = []

    def listener(message: OutboxMessage, now: object) -> None:
        heard.append((message.id, message.last_error))

    outbox.on_failure(listener)
    try:
        message = outbox.enqueue("sms", recipient="+447700900123", payload={"body": "x"})
        assert message is not None
        db.session.commit()
        config = {**_config(app), "OUTBOX_MAX_ATTEMPTS": 2}
        notifier = FlakyNotifier(failures=5)
        outbox.deliver_due(notifier=notifier, config=config, now=utcnow())
        assert heard == []  # a retry is not a failure
        outbox.deliver_due(notifier=notifier, config=config, now=utcnow() + timedelta(hours=1))
        assert heard == [(message.id, "DeliveryError: provider unavailable")]
    finally:
        outbox._FAILURE_LISTENERS.remove(listener)


def test_a_failing_listener_does_not_undo_the_failure(app: Flask) -> None:
    def broken(message: OutboxMessage, now: object) -> None:
        raise RuntimeError("listener bug")

    outbox.on_failure(broken)
    try:
        message = outbox.enqueue("sms", recipient="+447700900123", payload={"body": "x"})
        assert message is not None
        db.session.commit()
        counts = outbox.deliver_due(
            notifier=FlakyNotifier(failures=1, permanent=True), config=_config(app), now=utcnow()
        )
    finally:
        outbox._FAILURE_LISTENERS.remove(broken)
    assert counts["dead"] == 1
    db.session.refresh(message)
    assert message.status is OutboxStatus.DEAD
