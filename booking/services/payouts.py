"""Worker payouts: connecting a Stripe Express account, paying completed breaks once the
carer's 48 hours to dispute have passed, and the earnings and payouts reports.

A payout row is made when a break is completed (`payments.on_booking_completed`), held
while the carer disputes it, reduced by any refund, and paid by one Stripe Transfer to
the worker's connected account (idempotency key `payout-<id>-transfer`). With the ledger
backend the payout is recorded as paid by the council outside Stripe.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select

from app import audit
from app.errors import DomainError
from app.extensions import db
from app.models import User
from booking.models.bookings import Booking, BookingStatus
from booking.models.payments import (
    Payout,
    PayoutAccountStatus,
    PayoutStatus,
    WorkerPayoutAccount,
)
from booking.services.stripe_backend import PaymentGateway, PaymentsNotConfigured

# Completed breaks, and breaks cancelled late whose fee the worker earns.
PAYABLE_STATUSES = (BookingStatus.COMPLETED, BookingStatus.CANCELLED)


class PayoutError(DomainError):
    code = "payout_error"
    status = 422


def account_for(worker: User) -> WorkerPayoutAccount | None:
    return db.session.scalar(
        select(WorkerPayoutAccount).where(WorkerPayoutAccount.worker_id == worker.id)
    )


def _status_from(*, details_submitted: bool, payouts_enabled: bool) -> PayoutAccountStatus:
    if payouts_enabled:
        return PayoutAccountStatus.ACTIVE
    if details_submitted:
        return PayoutAccountStatus.RESTRICTED
    return PayoutAccountStatus.ONBOARDING


def start_onboarding(
    worker: User, *, gateway: PaymentGateway, refresh_url: str, return_url: str, now: datetime
) -> str:
    """Make the worker's Express account (once) and return a fresh onboarding link.

    The account row is committed before the link is asked for, so a failure after it
    never creates a second account. Both calls carry idempotency keys from our ids.
    """
    account = account_for(worker)
    try:
        if account is None:
            made = gateway.create_account(
                email=worker.email,
                idempotency_key=f"worker-{worker.id}-payout-account",
                metadata={"worker_id": str(worker.id)},
            )
            account = WorkerPayoutAccount(
                council_id=worker.council_id,
                worker_id=worker.id,
                stripe_account_id=made.id,
                details_submitted=made.details_submitted,
                charges_enabled=made.charges_enabled,
                payouts_enabled=made.payouts_enabled,
                status=_status_from(
                    details_submitted=made.details_submitted, payouts_enabled=made.payouts_enabled
                ),
                created_at=now,
                updated_at=now,
            )
            db.session.add(account)
            db.session.flush()
            audit.record(
                "payout_account.created",
                actor=worker,
                council_id=worker.council_id,
                subject=account,
                details={"stripe_account_id": made.id},
            )
            db.session.commit()
        # An account link works once and expires within minutes, so each click needs a
        # new one: the key is our ids plus the second of the click. A retry of the same
        # click (a timeout) gets Stripe's first link back rather than a second one.
        return gateway.account_link(
            account.stripe_account_id,
            refresh_url=refresh_url,
            return_url=return_url,
            idempotency_key=(
                f"worker-{worker.id}-payout-account-{account.id}-link-{now:%Y%m%dT%H%M%S}"
            ),
        )
    except PaymentsNotConfigured as exc:
        raise PayoutError(
            "Bank payments are not switched on here. The council pays you directly."
        ) from exc


def apply_account_update(
    stripe_account_id: str,
    *,
    details_submitted: bool,
    charges_enabled: bool,
    payouts_enabled: bool,
    now: datetime,
) -> WorkerPayoutAccount | None:
    """Store what Stripe says about a connected account. Only flushes."""
    account = db.session.scalar(
        select(WorkerPayoutAccount).where(
            WorkerPayoutAccount.stripe_account_id == stripe_account_id
        )
    )
    if account is None:
        return None
    status = _status_from(details_submitted=details_submitted, payouts_enabled=payouts_enabled)
    changed = status is not account.status
    account.details_submitted = details_submitted
    account.charges_enabled = charges_enabled
    account.payouts_enabled = payouts_enabled
    account.status = status
    account.updated_at = now
    if changed:
        audit.record(
            "payout_account.updated",
            actor=None,
            council_id=account.council_id,
            subject=account,
            details={"status": str(status)},
        )
    return account


def refresh_account(
    worker: User, *, gateway: PaymentGateway, now: datetime
) -> WorkerPayoutAccount | None:
    """On return from Stripe's form: read the account's state now rather than wait for
    the webhook."""
    account = account_for(worker)
    if account is None:
        return None
    try:
        latest = gateway.retrieve_account(account.stripe_account_id)
    except PaymentsNotConfigured:
        return account
    apply_account_update(
        latest.id,
        details_submitted=latest.details_submitted,
        charges_enabled=latest.charges_enabled,
        payouts_enabled=latest.payouts_enabled,
        now=now,
    )
    db.session.commit()
    return account


def pay_due_payouts(*, gateway: PaymentGateway, now: datetime) -> dict[str, int]:
    """Pay every payout whose dispute window has closed, one transaction each.

    Only completed breaks (or late cancellations, for their fee) with no open dispute are
    paid.
    With Stripe the worker needs an active connected account; until then the payout
    waits. A failed transfer is left pending with its error and tried on the next run
    with the same idempotency key, so it is never paid twice.
    """
    counts = {"paid": 0, "waiting_for_bank": 0, "failed": 0}
    due_ids = db.session.scalars(
        select(Payout.id)
        .where(Payout.status == PayoutStatus.PENDING, Payout.payable_from <= now)
        .order_by(Payout.id)
    ).all()
    for payout_id in due_ids:
        payout = db.session.scalar(
            select(Payout)
            .where(Payout.id == payout_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if payout is None or payout.status is not PayoutStatus.PENDING:
            db.session.rollback()
            continue
        booking = db.session.get(Booking, payout.booking_id)
        if booking is None or booking.status not in PAYABLE_STATUSES:
            payout.status = PayoutStatus.CANCELLED
            db.session.commit()
            continue
        if booking.disputed_at is not None and booking.dispute_resolved_at is None:
            payout.status = PayoutStatus.HELD  # disputed: wait for the officer's decision
            db.session.commit()
            continue
        if payout.amount_pence == 0:
            payout.status = PayoutStatus.CANCELLED
            db.session.commit()
            continue
        destination = ""
        if gateway.name == "stripe":
            account = db.session.scalar(
                select(WorkerPayoutAccount).where(WorkerPayoutAccount.worker_id == payout.worker_id)
            )
            if account is None or account.status is not PayoutAccountStatus.ACTIVE:
                counts["waiting_for_bank"] += 1
                db.session.rollback()
                continue
            destination = account.stripe_account_id
        try:
            transfer = gateway.transfer(
                amount_pence=payout.amount_pence,
                destination=destination,
                idempotency_key=f"payout-{payout.id}-transfer",
                transfer_group=f"booking-{payout.booking_id}",
                metadata={"payout_id": str(payout.id), "booking_id": str(payout.booking_id)},
            )
        except Exception as exc:  # an outage: keep it pending and try again next run
            payout.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            counts["failed"] += 1
            db.session.commit()
            continue
        payout.status = PayoutStatus.PAID
        payout.paid_at = now
        payout.backend = gateway.name
        payout.last_error = None
        if gateway.name == "stripe":
            payout.stripe_transfer_id = transfer.id
        audit.record(
            "payout.paid",
            actor=None,
            council_id=payout.council_id,
            subject=payout,
            details={"amount_pence": payout.amount_pence, "transfer": transfer.id},
        )
        db.session.commit()
        counts["paid"] += 1
    return counts


@dataclass(frozen=True)
class Earnings:
    pending: list[Payout]
    paid: list[Payout]
    pending_pence: int
    paid_pence: int


def earnings_for(worker: User) -> Earnings:
    """A worker's payouts: waiting (in the dispute window or held) and paid."""
    rows = db.session.scalars(
        select(Payout)
        .where(Payout.worker_id == worker.id, Payout.status != PayoutStatus.CANCELLED)
        .order_by(Payout.created_at.desc(), Payout.id.desc())
    ).all()
    pending = [p for p in rows if p.status in (PayoutStatus.PENDING, PayoutStatus.HELD)]
    paid = [p for p in rows if p.status is PayoutStatus.PAID]
    return Earnings(
        pending=pending,
        paid=paid,
        pending_pence=sum(p.amount_pence for p in pending),
        paid_pence=sum(p.amount_pence for p in paid),
    )


@dataclass(frozen=True)
class MonthlyPayouts:
    worker_id: int
    worker_name: str
    month: date  # first day of the month (Europe/London)
    count: int
    paid_pence: int
    pending_pence: int


def payouts_by_worker_and_month(*, council_id: int | None) -> list[MonthlyPayouts]:
    """Payouts grouped by worker and by the London month the break was completed in."""
    from app.clock import to_london

    query = select(Payout, User).join(User, User.id == Payout.worker_id)
    query = query.where(Payout.status != PayoutStatus.CANCELLED)
    if council_id is not None:
        query = query.where(Payout.council_id == council_id)
    groups: dict[tuple[int, date], list[Payout]] = defaultdict(list)
    names: dict[int, str] = {}
    for payout, worker in db.session.execute(query).all():
        local = to_london(payout.created_at)
        groups[(worker.id, date(local.year, local.month, 1))].append(payout)
        names[worker.id] = getattr(worker, "name", None) or worker.email
    rows = [
        MonthlyPayouts(
            worker_id=worker_id,
            worker_name=names[worker_id],
            month=month,
            count=len(items),
            paid_pence=sum(p.amount_pence for p in items if p.status is PayoutStatus.PAID),
            pending_pence=sum(p.amount_pence for p in items if p.status is not PayoutStatus.PAID),
        )
        for (worker_id, month), items in groups.items()
    ]
    return sorted(rows, key=lambda r: (r.month, r.worker_name.lower()), reverse=False)


def payouts_csv(rows: list[MonthlyPayouts]) -> str:
    """The officer's CSV: one line per worker per month, amounts in pounds and pence."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["month", "worker_id", "worker", "breaks", "paid_gbp", "pending_gbp"])
    for row in rows:
        writer.writerow(
            [
                row.month.strftime("%Y-%m"),
                row.worker_id,
                _safe_cell(row.worker_name),
                row.count,
                _pounds(row.paid_pence),
                _pounds(row.pending_pence),
            ]
        )
    return out.getvalue()


def _pounds(pence: int) -> str:
    return f"{pence // 100}.{pence % 100:02d}"


def _safe_cell(text: str) -> str:
    """Stop a spreadsheet from running a name that starts like a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
