"""Vetting: the checks a worker needs, the council's decisions, and the daily expiry job.

A worker is bookable only while approved, inside their two-year approval, and with every
required check in date: enhanced DBS, right to work, public liability insurance, three
training courses and two references. An enhanced DBS on the update service does not
lapse; one that is not is treated as lasting three years from issue (a common council
rule), unless a sooner expiry is recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select

from app import audit, outbox
from app.clock import london_today
from app.errors import DomainError, NotFound
from app.extensions import db
from app.models import Role, User
from booking.models.workers import (
    CheckKind,
    DecisionKind,
    VettingDecision,
    VettingStatus,
    WorkerCheck,
    WorkerProfile,
)
from booking.services.workers import editable_profile, organisation_of, profile_of

APPROVAL_YEARS = 2
WARN_DAYS = 30
DBS_ASSUMED_YEARS = 3
# Dates a check may carry: no certificate, policy or course in use now was issued before
# 1990, and none is recorded as lasting more than 20 years from today (a typo like 9999).
EARLIEST_ISSUE = date(1990, 1, 1)
LATEST_EXPIRY_YEARS = 20

REQUIRED: dict[CheckKind, int] = {
    CheckKind.DBS_ENHANCED: 1,
    CheckKind.RIGHT_TO_WORK: 1,
    CheckKind.INSURANCE: 1,
    CheckKind.TRAINING_MOVING_HANDLING: 1,
    CheckKind.TRAINING_FIRST_AID: 1,
    CheckKind.TRAINING_SAFEGUARDING: 1,
    CheckKind.REFERENCE: 2,
}
CHECK_NAMES: dict[CheckKind, str] = {
    CheckKind.DBS_ENHANCED: "enhanced DBS check",
    CheckKind.RIGHT_TO_WORK: "right to work check",
    CheckKind.INSURANCE: "public liability insurance",
    CheckKind.TRAINING_MOVING_HANDLING: "moving and handling training",
    CheckKind.TRAINING_FIRST_AID: "first aid training",
    CheckKind.TRAINING_SAFEGUARDING: "safeguarding training",
    CheckKind.REFERENCE: "reference",
}


class VettingError(DomainError):
    code = "invalid_request"
    status = 422


class ChecksIncomplete(VettingError):
    code = "checks_incomplete"
    status = 422


@dataclass
class CheckDetails:
    kind: CheckKind
    reference: str
    issued_on: date
    expires_on: date | None = None
    dbs_update_service: bool = False


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def effective_expiry(check: WorkerCheck) -> date | None:
    """When a check stops counting (None: never)."""
    if check.kind == CheckKind.DBS_ENHANCED and not check.dbs_update_service:
        assumed = _add_years(check.issued_on, DBS_ASSUMED_YEARS)
        return min(check.expires_on, assumed) if check.expires_on else assumed
    return check.expires_on


def check_in_date(check: WorkerCheck, day: date) -> bool:
    expiry = effective_expiry(check)
    return check.issued_on <= day and (expiry is None or day < expiry)


def missing_checks(checks: Iterable[WorkerCheck], day: date) -> dict[str, str]:
    """What is missing or out of date on `day`, as {check kind: sentence}; empty if complete."""
    counts: dict[CheckKind, int] = dict.fromkeys(REQUIRED, 0)
    for check in checks:
        if check_in_date(check, day):
            counts[check.kind] = counts.get(check.kind, 0) + 1
    missing: dict[str, str] = {}
    for kind, needed in REQUIRED.items():
        have = counts.get(kind, 0)
        if have < needed:
            if needed == 1:
                missing[kind.value] = f"No in-date {CHECK_NAMES[kind]}"
            else:
                missing[kind.value] = (
                    f"{needed - have} more in-date {CHECK_NAMES[kind]}"
                    f"{'s' if needed - have > 1 else ''} needed (2 in all)"
                )
    return missing


def checks_of(profile: WorkerProfile) -> list[WorkerCheck]:
    return list(
        db.session.scalars(
            select(WorkerCheck)
            .where(WorkerCheck.profile_id == profile.id)
            .order_by(WorkerCheck.kind, WorkerCheck.issued_on.desc())
        )
    )


def is_bookable_with(profile: WorkerProfile, checks: Sequence[WorkerCheck], at: datetime) -> bool:
    """`is_bookable` with the checks already loaded (search loads them in one query)."""
    if profile.status != VettingStatus.APPROVED:
        return False
    day = london_today(at)
    if profile.reapproval_due is not None and day >= profile.reapproval_due:
        return False
    return not missing_checks(checks, day)


def is_bookable(profile: WorkerProfile, at: datetime) -> bool:
    """Approved, approval not run out, and every required check in date at `at`."""
    return is_bookable_with(profile, checks_of(profile), at)


def may_see_photo(viewer: User, profile: WorkerProfile, *, now: datetime) -> bool:
    """Whose photo a person may see: their own, their organisation's workers' (provider
    admins) and any in their council (officers). Everyone else, carers above all, sees
    only workers who can be booked now, as nowhere a carer looks shows any others."""
    if viewer.id == profile.user_id:
        return True
    if viewer.council_id != profile.council_id:
        return False
    if viewer.has_role(Role.COUNCIL_OFFICER):
        return True
    if viewer.has_role(Role.PROVIDER_ADMIN):
        organisation = organisation_of(viewer)
        if organisation is not None and profile.organisation_id == organisation.id:
            return True
    return is_bookable(profile, now)


# ----------------------------------------------------------------- recording checks


def record_check(
    actor: User, worker_id: int, details: CheckDetails, *, now: datetime
) -> WorkerCheck:
    """Record evidence of a check (by the worker or their provider admin). Dates must be
    plausible: issued from 1990 to today, expiring after that and within 20 years."""
    profile = editable_profile(actor, worker_id)
    fields: dict[str, str] = {}
    reference = details.reference.strip()
    if not reference:
        fields["reference"] = "Enter the certificate number, policy number or referee"
    elif len(reference) > 200:
        fields["reference"] = "Use 200 characters or fewer"
    today = london_today(now)
    if details.issued_on > today:
        fields["issued_on"] = "The issue date must be today or in the past"
    elif details.issued_on < EARLIEST_ISSUE:
        fields["issued_on"] = f"The issue date must be in {EARLIEST_ISSUE.year} or later"
    latest_expiry = _add_years(today, LATEST_EXPIRY_YEARS)
    if details.expires_on is not None and details.expires_on <= details.issued_on:
        fields["expires_on"] = "The expiry date must be after the issue date"
    elif details.expires_on is not None and details.expires_on > latest_expiry:
        fields["expires_on"] = (
            f"The expiry date must be within {LATEST_EXPIRY_YEARS} years from today, "
            f"by {latest_expiry:%-d %B %Y}"
        )
    if details.kind == CheckKind.INSURANCE and details.expires_on is None:
        fields["expires_on"] = "Enter the date the insurance runs out"
    if details.dbs_update_service and details.kind != CheckKind.DBS_ENHANCED:
        fields["dbs_update_service"] = "Only a DBS check can be on the update service"
    if fields:
        raise VettingError(
            "Some details of the check need changing.", code="validation_failed", fields=fields
        )
    check = WorkerCheck(
        profile_id=profile.id,
        council_id=profile.council_id,
        kind=details.kind,
        reference=reference,
        issued_on=details.issued_on,
        expires_on=details.expires_on,
        dbs_update_service=details.dbs_update_service,
        recorded_by_id=actor.id,
        created_at=now,
    )
    db.session.add(check)
    db.session.flush()
    audit.record(
        "worker.check_recorded",
        actor=actor,
        council_id=profile.council_id,
        subject=profile,
        details={"kind": details.kind.value, "check_id": check.id},
    )
    db.session.commit()
    return check


# ----------------------------------------------------------------- decisions


def profile_for_officer(officer: User, worker_id: int) -> WorkerProfile:
    """A worker in the officer's own council, or NotFound (other councils' are hidden)."""
    profile = profile_of(worker_id)
    if profile is None or not officer.has_role(Role.COUNCIL_OFFICER):
        raise NotFound("We cannot find that worker.")
    if profile.council_id != officer.council_id:
        raise NotFound("We cannot find that worker.")
    return profile


def _decide(
    profile: WorkerProfile,
    decision: DecisionKind,
    *,
    by: User | None,
    reason: str | None,
    now: datetime,
) -> None:
    db.session.add(
        VettingDecision(
            profile_id=profile.id,
            council_id=profile.council_id,
            decision=decision,
            reason=reason,
            decided_by_id=by.id if by is not None else None,
            created_at=now,
        )
    )
    audit.record(
        f"worker.{decision.value}",
        actor=by,
        council_id=profile.council_id,
        subject=profile,
        reason=reason,
    )


def _require_reason(reason: str | None, what: str) -> str:
    cleaned = (reason or "").strip()
    if not cleaned:
        raise VettingError(
            f"Give a reason for {what}. The worker will see it.",
            fields={"reason": f"Enter the reason for {what}"},
        )
    return cleaned


def _require_complete(profile: WorkerProfile, now: datetime) -> None:
    missing = missing_checks(checks_of(profile), london_today(now))
    if missing:
        raise ChecksIncomplete(
            "This worker cannot be approved yet. Missing: " + "; ".join(missing.values()) + ".",
            fields=missing,
        )


def approve_worker(
    officer: User, worker_id: int, *, now: datetime, reason: str | None = None
) -> WorkerProfile:
    """Approve (or re-approve) a worker for two years, if every check is in date."""
    profile = profile_for_officer(officer, worker_id)
    _require_complete(profile, now)
    profile.status = VettingStatus.APPROVED
    profile.approved_at = now
    profile.reapproval_due = _add_years(london_today(now), APPROVAL_YEARS)
    _decide(profile, DecisionKind.APPROVED, by=officer, reason=reason, now=now)
    _notify(profile, "Your support worker profile is approved. Carers can now find you.")
    db.session.commit()
    return profile


def reject_worker(officer: User, worker_id: int, *, reason: str, now: datetime) -> WorkerProfile:
    profile = profile_for_officer(officer, worker_id)
    cleaned = _require_reason(reason, "turning this worker down")
    if profile.status == VettingStatus.APPROVED:
        raise VettingError("This worker is approved. Suspend them instead.")
    profile.status = VettingStatus.REJECTED
    _decide(profile, DecisionKind.REJECTED, by=officer, reason=cleaned, now=now)
    _notify(profile, f"We could not approve your support worker profile: {cleaned}")
    db.session.commit()
    return profile


def suspend_worker(
    officer: User | None, worker_id: int, *, reason: str, now: datetime
) -> WorkerProfile:
    profile = (
        profile_for_officer(officer, worker_id) if officer is not None else profile_of(worker_id)
    )
    if profile is None:
        raise NotFound("We cannot find that worker.")
    cleaned = _require_reason(reason, "suspending this worker")
    if profile.status != VettingStatus.APPROVED:
        raise VettingError("Only an approved worker can be suspended.")
    _suspend(profile, by=officer, reason=cleaned, now=now)
    db.session.commit()
    return profile


def _suspend(profile: WorkerProfile, *, by: User | None, reason: str, now: datetime) -> None:
    profile.status = VettingStatus.SUSPENDED
    _decide(profile, DecisionKind.SUSPENDED, by=by, reason=reason, now=now)
    _notify(profile, f"Your support worker profile is paused: {reason}")


def reinstate_worker(
    officer: User, worker_id: int, *, now: datetime, reason: str | None = None
) -> WorkerProfile:
    """Lift a suspension, keeping the approval's end date; checks must be complete again."""
    profile = profile_for_officer(officer, worker_id)
    if profile.status != VettingStatus.SUSPENDED:
        raise VettingError("Only a suspended worker can be reinstated.")
    _require_complete(profile, now)
    if profile.reapproval_due is None or london_today(now) >= profile.reapproval_due:
        raise VettingError("This worker's two-year approval has run out. Approve them again.")
    profile.status = VettingStatus.APPROVED
    _decide(profile, DecisionKind.REINSTATED, by=officer, reason=reason, now=now)
    _notify(profile, "Your support worker profile is active again. Carers can find you.")
    db.session.commit()
    return profile


def decisions_of(profile: WorkerProfile) -> list[VettingDecision]:
    return list(
        db.session.scalars(
            select(VettingDecision)
            .where(VettingDecision.profile_id == profile.id)
            .order_by(VettingDecision.created_at.desc(), VettingDecision.id.desc())
        )
    )


def vetting_queue(officer: User) -> list[WorkerProfile]:
    """The officer's council's workers: pending first, then suspended, then the rest."""
    order = {
        VettingStatus.PENDING: 0,
        VettingStatus.SUSPENDED: 1,
        VettingStatus.APPROVED: 2,
        VettingStatus.REJECTED: 3,
    }
    profiles = db.session.scalars(
        select(WorkerProfile).where(WorkerProfile.council_id == officer.council_id)
    ).all()
    return sorted(profiles, key=lambda p: (order[p.status], p.display_name.lower(), p.id))


def vetting_queue_rows(officer: User, *, today: date) -> list[tuple[WorkerProfile, dict[str, str]]]:
    """The queue with what each worker is missing on `today`; every worker's checks come
    in one query, so the page costs the same however many workers there are."""
    profiles = vetting_queue(officer)
    by_profile = _checks_by_profile([p.id for p in profiles])
    return [(p, missing_checks(by_profile.get(p.id, []), today)) for p in profiles]


def _checks_by_profile(profile_ids: Sequence[int]) -> dict[int, list[WorkerCheck]]:
    by_profile: dict[int, list[WorkerCheck]] = {}
    if not profile_ids:
        return by_profile
    for check in db.session.scalars(
        select(WorkerCheck).where(WorkerCheck.profile_id.in_(profile_ids))
    ):
        by_profile.setdefault(check.profile_id, []).append(check)
    return by_profile


def _notify(profile: WorkerProfile, text: str, *, dedupe_key: str | None = None) -> bool:
    """SMS (if we have a number) and e-mail; False when `dedupe_key` was already sent."""
    user = profile.user
    if user.phone:
        outbox.enqueue(
            "sms",
            recipient=user.phone,
            payload={"body": text},
            council_id=profile.council_id,
            dedupe_key=f"{dedupe_key}:sms" if dedupe_key else None,
        )
    email = outbox.enqueue(
        "email",
        recipient=user.email,
        payload={"subject": "Your support worker profile", "body": text},
        council_id=profile.council_id,
        dedupe_key=f"{dedupe_key}:email" if dedupe_key else None,
    )
    return email is not None


# ----------------------------------------------------------------- the daily job


def run_vetting_expiry(*, now: datetime) -> dict[str, int]:
    """Suspend approved workers whose checks or approval have lapsed, and warn once per
    check (and once per approval) 30 days before it runs out. Safe to run twice."""
    today = london_today(now)
    warn_until = today + timedelta(days=WARN_DAYS)
    counts = {"suspended": 0, "warned": 0}
    profiles = db.session.scalars(
        select(WorkerProfile).where(WorkerProfile.status == VettingStatus.APPROVED)
    ).all()
    by_profile = _checks_by_profile([p.id for p in profiles])
    for profile in profiles:
        checks = by_profile.get(profile.id, [])
        missing = missing_checks(checks, today)
        overdue = profile.reapproval_due is not None and today >= profile.reapproval_due
        if missing or overdue:
            reasons = list(missing.values())
            if overdue:
                reasons.append("the two-year approval has run out")
            _suspend(profile, by=None, reason="Checks lapsed: " + "; ".join(reasons) + ".", now=now)
            counts["suspended"] += 1
            continue
        for check in _still_counting(checks, today):
            expiry = effective_expiry(check)
            if (
                expiry is not None
                and expiry <= warn_until
                and _notify(
                    profile,
                    f"Your {CHECK_NAMES[check.kind]} ({check.reference}) runs out on "
                    f"{expiry:%-d %B %Y}. Send us the new one before then so carers can "
                    "still book you.",
                    dedupe_key=f"vetting-expiry-warning:{check.id}",
                )
            ):
                counts["warned"] += 1
        if profile.reapproval_due is not None and profile.reapproval_due <= warn_until:
            _notify(
                profile,
                f"Your approval as a support worker ends on {profile.reapproval_due:%-d %B %Y}. "
                "The council will review it with you.",
                dedupe_key=f"reapproval-warning:{profile.id}:{profile.reapproval_due}",
            )
    db.session.commit()
    return counts


def _still_counting(checks: Sequence[WorkerCheck], day: date) -> list[WorkerCheck]:
    """The in-date checks whose expiry matters: for each kind, those that no newer
    renewal replaces (a renewed check is not warned about)."""
    in_date = [c for c in checks if check_in_date(c, day)]
    result: list[WorkerCheck] = []
    for kind, needed in REQUIRED.items():
        of_kind = sorted(
            (c for c in in_date if c.kind == kind),
            key=lambda c: effective_expiry(c) or date.max,
            reverse=True,
        )
        # The `needed` longest-lasting ones carry the requirement; warn only if they lapse.
        result.extend(of_kind[:needed])
    return result
