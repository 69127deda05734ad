"""Demo bookings: two past breaks (completed and charged), yesterday's break that the demo
worker has still to record as done, and two upcoming ones (one confirmed, one waiting for
the worker), so the demo carer's statement and the demo worker's requests and calendar
have something in them. Running it twice changes nothing: every row is found again by
its form token or ledger idempotency key."""

from __future__ import annotations

from datetime import time, timedelta

from sqlalchemy import select

from app.clock import london_today, london_wall_clock
from app.demo import DemoContext, demo_seeder
from app.errors import DomainError
from app.extensions import db
from booking.models.bookings import Booking, BookingStatus, FundedBy
from booking.models.budgets import Budget
from booking.services import bookings as service
from booking.services import ledger, pricing
from booking.services.workers import profile_of


def _past_break(ctx: DemoContext, budget: Budget, *, days_ago: int, worker_key: str) -> None:
    token = f"demo-past-{days_ago}"
    if db.session.scalar(select(Booking.id).where(Booking.form_token == token)) is not None:
        return
    carer, worker = ctx.people["carer"], ctx.people[worker_key]
    profile = profile_of(worker.id)
    if profile is None:
        return
    day = london_today(ctx.now) - timedelta(days=days_ago)
    starts_at = london_wall_clock(day, time(10, 0))
    ends_at = london_wall_clock(day, time(13, 0))
    price = pricing.quote_price(profile, starts_at, ends_at)
    booked_at = starts_at - timedelta(days=3)
    booking = Booking(
        council_id=ctx.council.id,
        carer_id=carer.id,
        worker_id=worker.id,
        starts_at=starts_at,
        ends_at=ends_at,
        status=BookingStatus.COMPLETED,
        price_pence=price,
        created_at=booked_at,
        funded_by=FundedBy.BUDGET,
        budget_id=budget.id,
        hold_pence=price,
        rates=service._rates_of(profile),
        postcode=carer.postcode,
        address="12 Demo Street, Leeds",
        support_kind="sitting_service",
        requested_by_id=carer.id,
        confirmed_at=booked_at,
        actual_starts_at=starts_at,
        actual_ends_at=ends_at,
        completed_at=ends_at,
        charged_pence=price,
        dispute_closes_at=ends_at + service.DISPUTE_WINDOW,
        final_at=ends_at + service.DISPUTE_WINDOW,
        form_token=token,
    )
    db.session.add(booking)
    db.session.flush()
    ledger.hold(
        budget,
        price,
        reason="Demo break",
        idempotency_key=f"booking:{booking.id}:hold",
        now=booked_at,
        booking_id=booking.id,
        actor=None,
        commit=False,
    )
    ledger.release(
        budget,
        price,
        reason="Demo break done",
        idempotency_key=f"booking:{booking.id}:release",
        now=ends_at,
        booking_id=booking.id,
        actor=None,
        commit=False,
    )
    ledger.capture(
        budget,
        price,
        reason="Demo break with " + profile.display_name,
        idempotency_key=f"booking:{booking.id}:capture",
        now=ends_at,
        booking_id=booking.id,
        actor=None,
        commit=False,
    )
    db.session.commit()


def _awaiting_completion(ctx: DemoContext, budget: Budget, *, worker_key: str) -> None:
    """Yesterday's break: confirmed, its price still held, waiting for the worker to
    record when they really started and finished."""
    token = "demo-awaiting-completion"  # noqa: S105 - a form token, not a secret
    if db.session.scalar(select(Booking.id).where(Booking.form_token == token)) is not None:
        return
    carer, worker = ctx.people["carer"], ctx.people[worker_key]
    profile = profile_of(worker.id)
    if profile is None:
        return
    day = london_today(ctx.now) - timedelta(days=1)
    starts_at = london_wall_clock(day, time(10, 0))
    ends_at = london_wall_clock(day, time(13, 0))
    price = pricing.quote_price(profile, starts_at, ends_at)
    booked_at = starts_at - timedelta(days=4)
    booking = Booking(
        council_id=ctx.council.id,
        carer_id=carer.id,
        worker_id=worker.id,
        starts_at=starts_at,
        ends_at=ends_at,
        status=BookingStatus.CONFIRMED,
        price_pence=price,
        created_at=booked_at,
        funded_by=FundedBy.BUDGET,
        budget_id=budget.id,
        hold_pence=price,
        rates=service._rates_of(profile),
        postcode=carer.postcode,
        address="12 Demo Street, Leeds",
        support_kind="dementia",
        requested_by_id=carer.id,
        confirmed_at=booked_at,
        form_token=token,
    )
    db.session.add(booking)
    db.session.flush()
    ledger.hold(
        budget,
        price,
        reason="Demo break with " + profile.display_name,
        idempotency_key=f"booking:{booking.id}:hold",
        now=booked_at,
        booking_id=booking.id,
        actor=None,
        commit=False,
    )
    db.session.commit()


def _upcoming(ctx: DemoContext, *, days: int, worker_key: str, accept: bool) -> None:
    token = f"demo-upcoming-{days}"
    if db.session.scalar(select(Booking.id).where(Booking.form_token == token)) is not None:
        return
    carer, worker = ctx.people["carer"], ctx.people[worker_key]
    day = london_today(ctx.now) + timedelta(days=days)
    try:
        booking = service.request_booking(
            carer=carer,
            worker_id=worker.id,
            starts_at=london_wall_clock(day, time(11, 0)),
            ends_at=london_wall_clock(day, time(14, 0)),
            postcode=carer.postcode,
            address="12 Demo Street, Leeds",
            notes="Likes a walk to the park and a cup of tea.",
            share_notes=True,
            support_kind="dementia",
            actor=carer,
            now=ctx.now,
            form_token=token,
        )
        if accept and booking.status is BookingStatus.REQUESTED:
            service.accept_booking(booking.id, worker=worker, now=ctx.now)
    except DomainError as exc:
        db.session.rollback()
        ctx.lines.append(f"Bookings: could not add a demo break in {days} days ({exc.message})")


@demo_seeder
def seed_bookings(ctx: DemoContext) -> None:
    budget = ledger.current_budget(ctx.people["carer"].id, today=london_today(ctx.now))
    if budget is None:
        ctx.lines.append("Bookings: no demo budget, so no demo breaks")
        return
    _past_break(ctx, budget, days_ago=14, worker_key="worker")
    _past_break(ctx, budget, days_ago=7, worker_key="worker2")
    _awaiting_completion(ctx, budget, worker_key="worker")
    _upcoming(ctx, days=3, worker_key="worker", accept=True)
    _upcoming(ctx, days=5, worker_key="worker", accept=False)
    ctx.lines.append(
        "Bookings: 2 past breaks, 1 waiting to be recorded as done and 2 upcoming breaks "
        "for the demo carer"
    )
