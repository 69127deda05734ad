"""Budget management: allocating and adjusting budgets, tranche releases, bulk import,
statements and the council's spend report. Money moves only through
`booking.services.ledger`; every query is scoped to one council."""

from __future__ import annotations

import calendar
import csv
import io
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import and_, case, func, select
from sqlalchemy.exc import IntegrityError

from app import audit
from app.clock import london_today, start_of_london_day, to_london
from app.errors import Conflict, DomainError, NotFound
from app.extensions import db
from app.models import Representation, Role, User, UserRole
from app.money import format_pence, parse_pounds
from booking.models.budgets import (
    AdjustmentTag,
    Budget,
    BudgetKind,
    BudgetTranche,
    LedgerEntry,
    LedgerKind,
    TrancheSchedule,
)
from booking.services import ledger
from booking.services.ledger import Balance

YOUNG_CARER_AGE = 18
MAX_PERIOD_DAYS = 366 * 2
MAX_AWARD_PENCE = 100_000_000  # £1,000,000: far above any real award, below int limits
# Dates a budget, statement or report may use: far wider than any real record, and
# narrow enough that date arithmetic (the day after, the next month) never overflows.
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2100, 12, 31)
DATES_BETWEEN = f"between {EARLIEST_DATE:%-d %B %Y} and {LATEST_DATE:%-d %B %Y}"
MAX_REPORT_MONTHS = 60  # one bar a month: five years is as long as the chart stays readable


class BudgetOverlaps(Conflict):
    """Two budget periods of one carer would overlap. `line` names the import file's line
    when the budget came from a file."""

    code = "budget_overlaps"

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


OVERLAP_RACE_MESSAGE = (
    "Another budget for this carer was saved at the same time and the periods overlap. "
    "Nothing was saved. Check the carer's budgets and try again."
)


class YoungCarerProtected(DomainError):
    code = "young_carer_protected"
    status = 422


class ImportInvalid(DomainError):
    """The file had problems; nothing was written. `errors` names every bad row."""

    code = "import_invalid"
    status = 422

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(
            f"The file has {len(errors)} problem{'s' if len(errors) != 1 else ''}. "
            "Nothing was imported."
        )
        self.errors = errors


# --- people ---------------------------------------------------------------------------


def is_young_carer(carer: User, *, today: date) -> bool:
    """Under 18 on `today` (by date of birth). Their budgets are never reduced because of
    the caring they do."""
    age = carer.age_on(today)
    return age is not None and age < YOUNG_CARER_AGE


def council_carer(council_id: int, carer_id: int) -> User:
    """A carer of this council, or NotFound (other councils' people are invisible)."""
    carer = db.session.get(User, carer_id)
    if carer is None or carer.council_id != council_id or not carer.has_role(Role.CARER):
        raise NotFound("There is no carer with that id in your council.")
    return carer


def council_carers(council_id: int) -> list[User]:
    return list(
        db.session.scalars(
            select(User)
            .join(UserRole, UserRole.user_id == User.id)
            .where(User.council_id == council_id, UserRole.role == Role.CARER)
            .order_by(User.name, User.id)
        )
    )


def council_budget(council_id: int, budget_id: int) -> Budget:
    budget = db.session.get(Budget, budget_id)
    if budget is None or budget.council_id != council_id:
        raise NotFound("There is no budget with that id in your council.")
    return budget


def carer_budgets(carer_id: int) -> list[Budget]:
    """Every budget period of one carer, latest first (for the statement's chooser)."""
    return list(
        db.session.scalars(
            select(Budget)
            .where(Budget.carer_id == carer_id)
            .order_by(Budget.period_start.desc(), Budget.id.desc())
        )
    )


def carer_for(user: User, *, carer_id: int | None = None) -> User | None:
    """The carer whose budget `user` may see: themselves, or for a representative the
    carer they act for (the one asked for, or the first)."""
    if user.has_role(Role.CARER) and (carer_id is None or carer_id == user.id):
        return user
    if user.has_role(Role.REPRESENTATIVE):
        query = (
            select(User)
            .join(Representation, Representation.carer_id == User.id)
            .where(Representation.representative_id == user.id)
            .order_by(Representation.id)
        )
        if carer_id is not None:
            query = query.where(User.id == carer_id)
        return db.session.scalars(query.limit(1)).first()
    return None


def budget_visible_to(user: User, budget_id: int) -> Budget:
    """The budget if `user` may read it (its carer, their representative, an officer of
    its council); NotFound otherwise, so other people's budgets stay invisible."""
    budget = db.session.get(Budget, budget_id)
    if budget is not None:
        if user.has_role(Role.COUNCIL_OFFICER) and budget.council_id == user.council_id:
            return budget
        if user.has_role(Role.CARER) and budget.carer_id == user.id:
            return budget
        if user.has_role(Role.REPRESENTATIVE) and carer_for(user, carer_id=budget.carer_id):
            return budget
    raise NotFound("There is no budget with that id that you can see.")


# --- allocation and tranches ----------------------------------------------------------


def _add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def tranche_dates(schedule: TrancheSchedule, start: date, end: date) -> list[date]:
    """When each part of the award is released: every 28 days (as many whole four-week
    parts as the period holds), on the same day each month, or all at the start."""
    if schedule is TrancheSchedule.WHOLE:
        return [start]
    if schedule is TrancheSchedule.FOUR_WEEKLY:
        # 13 four-week parts in a year: the last part also covers the odd day or two.
        parts = max(1, ((end - start).days + 1) // 28)
        return [start + timedelta(days=28 * step) for step in range(parts)]
    dates: list[date] = []
    step = 0
    while True:
        try:
            due = _add_months(start, step)
        except ValueError:  # past year 9999: no later date exists, so no later part
            return dates
        if due > end:
            return dates
        dates.append(due)
        step += 1


def split_award(award_pence: int, parts: int) -> list[int]:
    """Equal whole-penny parts that add up exactly; the first parts carry the odd pence."""
    base, extra = divmod(award_pence, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]


def outside_dates(**days: date | None) -> list[str]:
    """The names of the given dates that fall outside EARLIEST_DATE..LATEST_DATE."""
    return [
        name
        for name, day in days.items()
        if day is not None and not EARLIEST_DATE <= day <= LATEST_DATE
    ]


def _check_period(start: date, end: date) -> None:
    """A period is in order, inside the dates we accept, and at most 2 years long (so its
    tranches can always be worked out)."""
    outside = outside_dates(period_start=start, period_end=end)
    if outside:
        raise DomainError(
            f"A budget period must be {DATES_BETWEEN}.",
            code="validation_failed",
            fields={name: f"Enter a date {DATES_BETWEEN}." for name in outside},
        )
    if end < start:
        raise DomainError(
            "The period must end on or after the day it starts.",
            code="validation_failed",
            fields={"period_end": "The end date must be the same as or after the start date."},
        )
    if (end - start).days > MAX_PERIOD_DAYS:
        raise DomainError(
            "A budget period can be at most 2 years long.",
            code="validation_failed",
            fields={"period_end": "A budget period can be at most 2 years long."},
        )


def _overlapping(carer_ids: Collection[int]) -> dict[int, list[Budget]]:
    found: dict[int, list[Budget]] = defaultdict(list)
    if carer_ids:
        for budget in db.session.scalars(select(Budget).where(Budget.carer_id.in_(carer_ids))):
            found[budget.carer_id].append(budget)
    return found


def _overlap_message(existing: Budget) -> str:
    return (
        "This carer already has a budget from "
        f"{existing.period_start:%-d %B %Y} to {existing.period_end:%-d %B %Y}. "
        "Periods cannot overlap."
    )


def _create_budget(
    *,
    council_id: int,
    carer: User,
    kind: BudgetKind,
    period_start: date,
    period_end: date,
    award_pence: int,
    schedule: TrancheSchedule,
    actor: User | None,
    reason: str | None,
    now: datetime,
) -> Budget:
    """Write a budget, its tranches and the allocations already due (flush only)."""
    budget = Budget(
        council_id=council_id,
        carer_id=carer.id,
        kind=kind,
        period_start=period_start,
        period_end=period_end,
        award_pence=award_pence,
        tranche_schedule=schedule,
        created_at=now,
        created_by_id=actor.id if actor is not None else None,
    )
    db.session.add(budget)
    db.session.flush()
    today = london_today(now)
    dates = tranche_dates(schedule, period_start, period_end)
    if schedule is TrancheSchedule.WHOLE:
        dates = [min(period_start, today)]  # the whole award is there from the start
    for sequence, (due_on, amount) in enumerate(
        zip(dates, split_award(award_pence, len(dates)), strict=True), start=1
    ):
        db.session.add(
            BudgetTranche(
                council_id=council_id,
                budget_id=budget.id,
                sequence=sequence,
                due_on=due_on,
                amount_pence=amount,
            )
        )
    db.session.flush()
    for tranche in budget.tranches:
        if tranche.due_on <= today:
            _release_tranche(tranche, now=now)
    audit.record(
        "budget.allocated",
        actor=actor,
        council_id=council_id,
        subject=budget,
        reason=reason,
        details={
            "carer_id": carer.id,
            "award_pence": award_pence,
            "kind": kind.value,
            "period_start": period_start.isoformat(),
            "period_end": period_end.isoformat(),
            "tranche_schedule": schedule.value,
        },
    )
    return budget


def allocate_budget(
    *,
    council_id: int,
    carer_id: int,
    kind: BudgetKind,
    period_start: date,
    period_end: date,
    award_pence: int,
    schedule: TrancheSchedule = TrancheSchedule.WHOLE,
    actor: User | None,
    reason: str | None = None,
    now: datetime,
) -> Budget:
    """Give a carer of this council a budget for a period. Refused if the period overlaps
    another of theirs (one current budget per carer at a time)."""
    carer = council_carer(council_id, carer_id)
    _check_period(period_start, period_end)
    if award_pence <= 0:
        raise DomainError(
            "The amount must be more than £0.",
            code="validation_failed",
            fields={"allocated_pence": "Enter an amount more than £0."},
        )
    # Lock the carer's row so two officers cannot create overlapping budgets at once.
    db.session.execute(select(User.id).where(User.id == carer.id).with_for_update())
    for existing in _overlapping([carer.id])[carer.id]:
        if existing.period_start <= period_end and period_start <= existing.period_end:
            raise BudgetOverlaps(_overlap_message(existing))
    try:
        budget = _create_budget(
            council_id=council_id,
            carer=carer,
            kind=kind,
            period_start=period_start,
            period_end=period_end,
            award_pence=award_pence,
            schedule=schedule,
            actor=actor,
            reason=reason,
            now=now,
        )
        db.session.commit()
    except IntegrityError as exc:
        _raise_overlap_race(exc)
    return budget


OVERLAP_CONSTRAINT = "budgets_one_period_at_a_time"


def _raise_overlap_race(exc: IntegrityError, *, line: int | None = None) -> NoReturn:
    """PostgreSQL's exclusion constraint refused an overlapping period that our own check
    did not see (another transaction committed it meanwhile): roll back and say so, like
    the check would have. Any other integrity error is re-raised unchanged."""
    db.session.rollback()
    diag = getattr(exc.orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None) or ""
    if OVERLAP_CONSTRAINT not in (constraint or str(exc.orig)):
        raise exc
    raise BudgetOverlaps(OVERLAP_RACE_MESSAGE, line=line) from exc


def _release_tranche(tranche: BudgetTranche, *, now: datetime) -> None:
    """Write the tranche's allocation (idempotent by key) and mark it released."""
    ledger.allocate(
        tranche.budget,
        tranche.amount_pence,
        actor=None,
        reason=f"Part {tranche.sequence} of {len(tranche.budget.tranches)} of the award",
        idempotency_key=f"tranche:{tranche.id}",
        now=now,
        commit=False,
    )
    if tranche.released_at is None:
        tranche.released_at = now
        audit.record(
            "budget.tranche_released",
            actor=None,
            council_id=tranche.council_id,
            subject=tranche.budget,
            details={"tranche": tranche.sequence, "amount_pence": tranche.amount_pence},
        )


def release_due_tranches(*, now: datetime) -> int:
    """Release every tranche due by today (UK date) that is not yet released; one
    transaction per tranche. Running it again releases nothing twice."""
    today = london_today(now)
    due_ids = list(
        db.session.scalars(
            select(BudgetTranche.id)
            .where(BudgetTranche.released_at.is_(None), BudgetTranche.due_on <= today)
            .order_by(BudgetTranche.due_on, BudgetTranche.id)
        )
    )
    released = 0
    for tranche_id in due_ids:
        tranche = db.session.get(BudgetTranche, tranche_id)
        assert tranche is not None
        ledger.lock_budget(tranche.budget_id)
        db.session.refresh(tranche)
        if tranche.released_at is not None:
            db.session.rollback()
            continue
        _release_tranche(tranche, now=now)
        db.session.commit()
        released += 1
    return released


# --- adjustments ----------------------------------------------------------------------


def adjust_budget(
    budget: Budget,
    *,
    amount_pence: int,
    tag: AdjustmentTag,
    reason: str,
    actor: User,
    now: datetime,
    idempotency_key: str,
) -> LedgerEntry:
    """An officer raises or lowers a budget, saying why. A young carer's budget is never
    lowered because of the caring they do."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(
            "Say why you are changing this budget.",
            code="validation_failed",
            fields={"reason": "Enter the reason for the change."},
        )
    if amount_pence == 0:
        raise DomainError(
            "Enter an amount more than £0.",
            code="validation_failed",
            fields={"amount": "Enter an amount more than £0."},
        )
    carer = db.session.get(User, budget.carer_id)
    assert carer is not None
    if (
        amount_pence < 0
        and tag is AdjustmentTag.CARING_ROLE
        and is_young_carer(carer, today=london_today(now))
    ):
        raise YoungCarerProtected(
            f"{carer.name} is a young carer. Their budget must not be reduced because of "
            "the caring they do.",
            fields={
                "tag": "A young carer's budget cannot be reduced because of their caring role."
            },
        )
    entry = ledger.adjust(
        budget,
        amount_pence,
        actor=actor,
        reason=reason,
        tag=tag.value,
        idempotency_key=idempotency_key,
        now=now,
        commit=False,
    )
    audit.record(
        "budget.adjusted",
        actor=actor,
        council_id=budget.council_id,
        subject=budget,
        reason=reason,
        details={"amount_pence": amount_pence, "tag": tag.value, "entry_id": entry.id},
    )
    db.session.commit()
    return entry


# --- the officer's table of balances --------------------------------------------------


SORTS = ("name", "reference", "allocated", "held", "spent", "available", "period_end")


@dataclass
class CarerBalanceRow:
    carer: User
    budget: Budget | None
    balance: Balance | None
    young_carer: bool


@dataclass
class BalancePage:
    rows: list[CarerBalanceRow]
    page: int
    per_page: int
    total: int
    sort: str
    direction: str

    @property
    def pages(self) -> int:
        return page_count(self.total, self.per_page)


def page_count(total: int, per_page: int) -> int:
    """How many pages `total` rows fill (at least one, so an empty table has a page)."""
    return max(1, -(-total // per_page))


def _ledger_sums() -> Any:
    def total(*kinds: LedgerKind) -> Any:
        return func.coalesce(
            func.sum(case((LedgerEntry.kind.in_(kinds), LedgerEntry.amount_pence), else_=0)), 0
        )

    return (
        select(
            LedgerEntry.budget_id.label("budget_id"),
            total(LedgerKind.ALLOCATION).label("allocated"),
            (-total(LedgerKind.HOLD, LedgerKind.RELEASE)).label("held"),
            (-total(LedgerKind.CAPTURE, LedgerKind.REFUND)).label("spent"),
            func.sum(LedgerEntry.amount_pence).label("available"),
        )
        .group_by(LedgerEntry.budget_id)
        .subquery()
    )


def carer_balances(
    council_id: int,
    *,
    today: date,
    sort: str = "name",
    direction: str = "asc",
    page: int = 1,
    per_page: int = 25,
) -> BalancePage:
    """Every carer of the council with their current budget's figures, sorted and paged
    in SQL; the figures come from one `balances_for` query for the page."""
    sort = sort if sort in SORTS else "name"
    direction = "desc" if direction == "desc" else "asc"
    sums = _ledger_sums()
    current = and_(
        Budget.carer_id == User.id, Budget.period_start <= today, Budget.period_end >= today
    )
    keys: dict[str, Any] = {
        "name": func.lower(User.name),
        "reference": func.coalesce(User.reference, ""),
        "allocated": func.coalesce(sums.c.allocated, -1),
        "held": func.coalesce(sums.c.held, -1),
        "spent": func.coalesce(sums.c.spent, -1),
        "available": func.coalesce(sums.c.available, -1),
        "period_end": func.coalesce(Budget.period_end, date(1900, 1, 1)),
    }
    key = keys[sort].desc() if direction == "desc" else keys[sort].asc()
    base = (
        select(User, Budget)
        .join(UserRole, and_(UserRole.user_id == User.id, UserRole.role == Role.CARER))
        .outerjoin(Budget, current)
        .outerjoin(sums, sums.c.budget_id == Budget.id)
        .where(User.council_id == council_id)
    )
    total = int(
        db.session.scalar(
            select(func.count())
            .select_from(User)
            .join(UserRole, and_(UserRole.user_id == User.id, UserRole.role == Role.CARER))
            .where(User.council_id == council_id)
        )
        or 0
    )
    # Any page number past the end (or below 1) shows the nearest real page.
    page = min(max(1, page), page_count(total, per_page))
    rows = db.session.execute(
        base.order_by(key, User.id).limit(per_page).offset((page - 1) * per_page)
    ).all()
    figures = ledger.balances_for(budget.id for _carer, budget in rows if budget is not None)
    return BalancePage(
        rows=[
            CarerBalanceRow(
                carer=carer,
                budget=budget,
                balance=figures.get(budget.id) if budget is not None else None,
                young_carer=is_young_carer(carer, today=today),
            )
            for carer, budget in rows
        ],
        page=page,
        per_page=per_page,
        total=total,
        sort=sort,
        direction=direction,
    )


# --- CSV import -----------------------------------------------------------------------

IMPORT_COLUMNS = ("carer_reference", "period_start", "period_end", "amount", "kind")
KIND_ALIASES = {
    "direct_payment": BudgetKind.DIRECT_PAYMENT,
    "direct payment": BudgetKind.DIRECT_PAYMENT,
    "dp": BudgetKind.DIRECT_PAYMENT,
    "council_managed": BudgetKind.COUNCIL_MANAGED,
    "council managed": BudgetKind.COUNCIL_MANAGED,
    "mixed": BudgetKind.MIXED,
}
SCHEDULE_ALIASES = {
    "": TrancheSchedule.WHOLE,
    "whole": TrancheSchedule.WHOLE,
    "annual": TrancheSchedule.WHOLE,
    "four_weekly": TrancheSchedule.FOUR_WEEKLY,
    "4-weekly": TrancheSchedule.FOUR_WEEKLY,
    "4 weekly": TrancheSchedule.FOUR_WEEKLY,
    "monthly": TrancheSchedule.MONTHLY,
}


@dataclass
class RowError:
    line: int
    message: str


@dataclass
class ImportRow:
    line: int
    reference: str
    carer: User
    period_start: date
    period_end: date
    amount_pence: int
    kind: BudgetKind
    schedule: TrancheSchedule


@dataclass
class ImportPreview:
    rows: list[ImportRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.rows)

    @property
    def total_pence(self) -> int:
        return sum(row.amount_pence for row in self.rows)


def _parse_day(text: str) -> date:
    text = text.strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, fmt).date()  # noqa: DTZ007 - a calendar date
        except ValueError:
            continue
    raise ValueError(text)


def _normalise_header(name: str) -> str:
    return name.strip().lstrip("\ufeff").lower().replace(" ", "_").replace("-", "_")


def preview_import(
    council_id: int, text: str, *, on_progress: Callable[[int], None] | None = None
) -> ImportPreview:
    """Check every row of a resource-allocation CSV (columns: carer reference, period
    start, period end, amount in pounds, kind; optional tranches) without writing
    anything. Every problem is reported with its line number."""
    preview = ImportPreview()
    reader = csv.reader(io.StringIO(text))
    try:
        header = [_normalise_header(name) for name in next(reader)]
    except StopIteration:
        preview.errors.append(RowError(1, "The file is empty."))
        return preview
    except csv.Error as exc:
        preview.errors.append(RowError(1, f"The file could not be read as CSV ({exc})."))
        return preview
    missing = [name for name in IMPORT_COLUMNS if name not in header]
    if missing:
        preview.errors.append(
            RowError(
                1,
                "The first line must name the columns "
                + ", ".join(IMPORT_COLUMNS)
                + f". Missing: {', '.join(missing)}.",
            )
        )
        return preview
    index = {name: header.index(name) for name in header}
    raw: list[tuple[int, list[str]]] = []
    try:
        for record in reader:
            if any(cell.strip() for cell in record):
                raw.append((reader.line_num, record))
    except csv.Error as exc:
        preview.errors.append(
            RowError(reader.line_num, f"This line could not be read as CSV ({exc}).")
        )
    if not raw and not preview.errors:
        preview.errors.append(RowError(2, "The file has no rows of allocations."))

    references = {
        record[index["carer_reference"]].strip()
        for _line, record in raw
        if len(record) > index["carer_reference"]
    }
    carers = {
        user.reference: user
        for user in db.session.scalars(
            select(User).where(User.council_id == council_id, User.reference.in_(references))
        )
        if user.has_role(Role.CARER)
    }
    existing = _overlapping([carer.id for carer in carers.values()])
    seen: dict[int, list[ImportRow]] = defaultdict(list)

    for done, (line, record) in enumerate(raw, start=1):
        problems: list[str] = []

        def cell(name: str, record: list[str] = record) -> str:
            position = index.get(name)
            return (
                record[position].strip() if position is not None and position < len(record) else ""
            )

        reference = cell("carer_reference")
        carer = carers.get(reference)
        if not reference:
            problems.append("the carer reference is missing")
        elif carer is None:
            problems.append(f"there is no carer with reference {reference!r} in this council")
        start = end = None
        try:
            start = _parse_day(cell("period_start"))
        except ValueError:
            problems.append("the period start must be a date like 2027-04-01 or 01/04/2027")
        try:
            end = _parse_day(cell("period_end"))
        except ValueError:
            problems.append("the period end must be a date like 2028-03-31 or 31/03/2028")
        if outside_dates(start=start, end=end):
            # Checked like _check_period, so a file the preview accepts always imports.
            problems.append(f"the period must be {DATES_BETWEEN}")
        elif start and end:
            if end < start:
                problems.append("the period ends before it starts")
            elif (end - start).days > MAX_PERIOD_DAYS:
                problems.append("the period is longer than 2 years")
        amount = 0
        try:
            amount = parse_pounds(cell("amount"))
            if amount <= 0:
                problems.append("the amount must be more than £0")
            elif amount > MAX_AWARD_PENCE:
                problems.append("the amount must be £1,000,000 or less")
        except (ValueError, ArithmeticError):
            problems.append("the amount must be in pounds, like 1200.00")
        kind = KIND_ALIASES.get(cell("kind").lower())
        if kind is None:
            problems.append("the kind must be direct_payment, council_managed or mixed")
        schedule = SCHEDULE_ALIASES.get(cell("tranches").lower())
        if schedule is None:
            problems.append("tranches must be whole, four_weekly or monthly")
        if carer is not None and start and end and end >= start:
            for budget in existing.get(carer.id, []):
                if budget.period_start <= end and start <= budget.period_end:
                    problems.append(
                        "the carer already has a budget from "
                        f"{budget.period_start:%-d %B %Y} to {budget.period_end:%-d %B %Y}"
                    )
            for other in seen[carer.id]:
                if other.period_start <= end and start <= other.period_end:
                    problems.append(f"it overlaps line {other.line} for the same carer")
        if problems:
            sentence = "; ".join(problems)
            preview.errors.append(RowError(line, sentence[0].upper() + sentence[1:] + "."))
        else:
            assert carer is not None
            assert start is not None
            assert end is not None
            assert kind is not None
            assert schedule is not None
            row = ImportRow(line, reference, carer, start, end, amount, kind, schedule)
            preview.rows.append(row)
            seen[carer.id].append(row)
        if on_progress is not None:
            on_progress(done)
    return preview


def import_allocations(
    council_id: int,
    text: str,
    *,
    actor: User | None,
    now: datetime,
    on_progress: Callable[[int], None] | None = None,
) -> list[Budget]:
    """Create every budget in the file in one transaction, or none: ImportInvalid lists
    every bad row and nothing is written."""
    preview = preview_import(council_id, text)
    if not preview.ok:
        raise ImportInvalid(preview.errors or [RowError(1, "The file has no allocations.")])
    budgets = []
    row = None
    try:
        for done, row in enumerate(preview.rows, start=1):
            budgets.append(
                _create_budget(
                    council_id=council_id,
                    carer=row.carer,
                    kind=row.kind,
                    period_start=row.period_start,
                    period_end=row.period_end,
                    award_pence=row.amount_pence,
                    schedule=row.schedule,
                    actor=actor,
                    reason=f"Imported from the resource allocation file, line {row.line}",
                    now=now,
                )
            )
            if on_progress is not None:
                on_progress(done)
        db.session.commit()
    except IntegrityError as exc:
        _raise_overlap_race(exc, line=row.line if row is not None else None)
    return budgets


def count_rows(text: str) -> int:
    """Data lines in a CSV (for a progress bar's length)."""
    return max(0, sum(1 for line in text.splitlines() if line.strip()) - 1)


# --- statements -----------------------------------------------------------------------

KIND_LABELS = {
    LedgerKind.ALLOCATION: "Money from the council",
    LedgerKind.HOLD: "Set aside for a booked break",
    LedgerKind.RELEASE: "Set-aside money returned",
    LedgerKind.CAPTURE: "Paid for a break",
    LedgerKind.REFUND: "Refund for a break",
    LedgerKind.TOP_UP: "Money you added",
    LedgerKind.ADJUSTMENT: "Change made by the council",
}


@dataclass
class StatementRow:
    created_at: datetime
    kind: LedgerKind
    label: str
    description: str
    booking_id: int | None
    amount_pence: int
    available_after_pence: int
    break_starts_at: datetime | None = None
    worker: str | None = None


@dataclass
class Statement:
    budget: Budget
    start: date
    end: date
    opening_pence: int
    rows: list[StatementRow]
    closing_pence: int
    totals: dict[LedgerKind, int]


def months_covered(start: date, end: date) -> int:
    """How many calendar months the dates touch (1 April to 30 April is 1)."""
    return (end.year - start.year) * 12 + end.month - start.month + 1


def check_date_range(start: date, end: date, *, max_months: int | None = None) -> None:
    """Refuse a statement or report range that is backwards, outside the dates we accept
    (so the day after `end` always exists), or longer than `max_months`."""
    outside = outside_dates(start=start, end=end)
    if outside:
        raise DomainError(
            f"The dates must be {DATES_BETWEEN}.",
            code="validation_failed",
            fields={name: f"Enter a date {DATES_BETWEEN}." for name in outside},
        )
    if end < start:
        raise DomainError(
            "The end date must be the same as or after the start date.",
            code="validation_failed",
            fields={"end": "The end date must be the same as or after the start date."},
        )
    if max_months is not None and months_covered(start, end) > max_months:
        message = f"The dates can cover at most {max_months} months."
        raise DomainError(message, code="validation_failed", fields={"start": message})


def statement(budget: Budget, *, start: date, end: date) -> Statement:
    """Every movement on the budget between two UK dates (inclusive), with the money
    available before, after each movement and at the end."""
    check_date_range(start, end)
    begins, ends = start_of_london_day(start), start_of_london_day(end + timedelta(days=1))
    opening = int(
        db.session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount_pence), 0)).where(
                LedgerEntry.budget_id == budget.id, LedgerEntry.created_at < begins
            )
        )
        or 0
    )
    entries = db.session.scalars(
        select(LedgerEntry)
        .where(
            LedgerEntry.budget_id == budget.id,
            LedgerEntry.created_at >= begins,
            LedgerEntry.created_at < ends,
        )
        .order_by(LedgerEntry.created_at, LedgerEntry.id)
    ).all()
    # One query for every row's break (date and worker), however long the statement.
    details = _break_details[0]({e.booking_id for e in entries if e.booking_id is not None})
    running = opening
    rows: list[StatementRow] = []
    totals: dict[LedgerKind, int] = dict.fromkeys(LedgerKind, 0)
    for entry in entries:
        running += entry.amount_pence
        totals[entry.kind] += entry.amount_pence
        parts = []
        detail = details.get(entry.booking_id) if entry.booking_id is not None else None
        if entry.booking_id is not None:
            parts.append(_break_label(entry.booking_id, detail))
        if entry.reason:
            parts.append(entry.reason)
        rows.append(
            StatementRow(
                created_at=entry.created_at,
                kind=entry.kind,
                label=KIND_LABELS[entry.kind],
                description=" – ".join(parts),
                booking_id=entry.booking_id,
                amount_pence=entry.amount_pence,
                available_after_pence=running,
                break_starts_at=detail.starts_at if detail else None,
                worker=detail.worker if detail else None,
            )
        )
    return Statement(budget, start, end, opening, rows, running, totals)


def _break_label(booking_id: int, detail: BreakDetails | None) -> str:
    """'Break on 3 March 2027 at 10:00am with Priya Shah', or 'Break 12' if unknown."""
    if detail is None:
        return f"Break {booking_id}"
    label = "Break"
    if detail.starts_at is not None:
        when = to_london(detail.starts_at).strftime("%-d %B %Y at %-I:%M%p")
        label += " on " + when.replace("AM", "am").replace("PM", "pm")
    if detail.worker:
        label += f" with {detail.worker}"
    return label


def _pounds(pence: int) -> str:
    sign = "-" if pence < 0 else ""
    return f"{sign}{abs(pence) // 100}.{abs(pence) % 100:02d}"


def statement_csv(stmt: Statement) -> str:
    """The statement as CSV (amounts in pounds, times in UK time), for carers' records."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "date",
            "time",
            "what",
            "details",
            "break",
            "break_starts",
            "worker",
            "amount",
            "available_after",
        ]
    )
    writer.writerow(["", "", "Opening balance", "", "", "", "", "", _pounds(stmt.opening_pence)])
    for row in stmt.rows:
        local = to_london(row.created_at)
        writer.writerow(
            [
                local.date().isoformat(),
                local.strftime("%H:%M"),
                row.label,
                row.description,
                row.booking_id or "",
                (
                    to_london(row.break_starts_at).strftime("%Y-%m-%d %H:%M")
                    if row.break_starts_at
                    else ""
                ),
                row.worker or "",
                _pounds(row.amount_pence),
                _pounds(row.available_after_pence),
            ]
        )
    writer.writerow(["", "", "Closing balance", "", "", "", "", "", _pounds(stmt.closing_pence)])
    return out.getvalue()


def statement_pdf(stmt: Statement, *, carer_name: str, council_name: str) -> bytes:
    """The statement as a tagged-table PDF (reportlab), for direct-payment records."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    buffer = io.BytesIO()
    title = f"Budget statement for {carer_name}"
    doc = SimpleDocTemplate(buffer, pagesize=A4, title=title, author=council_name)
    styles = getSampleStyleSheet()
    period = f"{stmt.start:%-d %B %Y} to {stmt.end:%-d %B %Y}"
    story: list[Any] = [
        Paragraph(title, styles["Title"]),
        Paragraph(f"{council_name} – {period}", styles["Normal"]),
        Spacer(1, 12),
    ]
    data: list[list[Any]] = [["Date", "What", "Details", "Amount", "Available after"]]
    data.append(["", "Opening balance", "", "", format_pence(stmt.opening_pence)])
    for row in stmt.rows:
        data.append(
            [
                to_london(row.created_at).strftime("%-d %b %Y"),
                Paragraph(row.label, styles["BodyText"]),
                Paragraph(row.description or "", styles["BodyText"]),
                format_pence(row.amount_pence),
                format_pence(row.available_after_pence),
            ]
        )
    data.append(["", "Closing balance", "", "", format_pence(stmt.closing_pence)])
    table = Table(data, colWidths=[70, 110, 170, 70, 80], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("LINEBELOW", (0, 0), (-1, 0), 1, colors.black),
                ("ALIGN", (3, 0), (-1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story.append(table)
    doc.build(story)
    return buffer.getvalue()


# --- the council's spend report -------------------------------------------------------


@dataclass(frozen=True)
class BreakDetails:
    """What the report needs to know about the break a ledger entry paid for."""

    worker: str
    support_kind: str
    starts_at: datetime | None = None
    worker_id: int | None = None  # groups the report by person, not by display name


BreakDetailsLookup = Callable[[Collection[int]], Mapping[int, BreakDetails]]


def _no_break_details(booking_ids: Collection[int]) -> Mapping[int, BreakDetails]:
    return {}


_break_details: list[BreakDetailsLookup] = [_no_break_details]

NOT_RECORDED = "Not recorded yet"


def register_break_details(lookup: BreakDetailsLookup) -> None:
    """Extension point for the spend report's per-worker and per-kind tables.

    The bookings module registers a function that takes booking ids and returns, in one
    query, each booking's worker name and kind of support. Until one is registered (or
    for spend not tied to a break), that spend is counted under "Not recorded yet".
    """
    _break_details[0] = lookup


@dataclass
class SpendRow:
    label: str
    spent_pence: int
    breaks: int


@dataclass
class SpendReport:
    start: date
    end: date
    by_month: list[SpendRow]
    by_worker: list[SpendRow]
    by_support: list[SpendRow]
    total_pence: int


def _months(start: date, end: date) -> list[date]:
    months, cursor = [], date(start.year, start.month, 1)
    while cursor <= end:
        months.append(cursor)
        cursor = _add_months(cursor, 1)
    return months


def spend_report(council_id: int, *, start: date, end: date) -> SpendReport:
    """Money spent on breaks (captures less refunds) between two UK dates, by month,
    by worker and by kind of support. Months are UK calendar months."""
    check_date_range(start, end, max_months=MAX_REPORT_MONTHS)
    begins, ends = start_of_london_day(start), start_of_london_day(end + timedelta(days=1))
    entries = db.session.execute(
        select(LedgerEntry.booking_id, LedgerEntry.amount_pence, LedgerEntry.created_at).where(
            LedgerEntry.council_id == council_id,
            LedgerEntry.kind.in_([LedgerKind.CAPTURE, LedgerKind.REFUND]),
            LedgerEntry.created_at >= begins,
            LedgerEntry.created_at < ends,
        )
    ).all()
    month_spend: dict[date, int] = dict.fromkeys(_months(start, end), 0)
    month_breaks: dict[date, set[int]] = defaultdict(set)
    per_booking: dict[int | None, int] = defaultdict(int)
    for booking_id, amount, created_at in entries:
        local = to_london(created_at).date()
        month = date(local.year, local.month, 1)
        month_spend[month] = month_spend.get(month, 0) - amount
        if booking_id is not None:
            month_breaks[month].add(booking_id)
        per_booking[booking_id] -= amount
    details = _break_details[0]([b for b in per_booking if b is not None])

    def group(pick: Callable[[BreakDetails], tuple[int | None, str]]) -> list[SpendRow]:
        """Sum spend per (id, label); two people who share a name stay two rows, and
        their labels say which is which."""
        spent: dict[tuple[int | None, str], int] = defaultdict(int)
        breaks: dict[tuple[int | None, str], int] = defaultdict(int)
        for booking_id, amount in per_booking.items():
            found = details.get(booking_id) if booking_id is not None else None
            key = pick(found) if found is not None else (None, NOT_RECORDED)
            spent[key] += amount
            breaks[key] += 1 if booking_id is not None else 0
        names = Counter(label for _id, label in spent)
        shared = {label for label, count in names.items() if count > 1}
        rows = [
            SpendRow(
                f"{label} (worker {key_id})" if label in shared and key_id else label,
                spent[(key_id, label)],
                breaks[(key_id, label)],
            )
            for key_id, label in spent
        ]
        return sorted(rows, key=lambda row: (-row.spent_pence, row.label))

    return SpendReport(
        start=start,
        end=end,
        by_month=[
            SpendRow(f"{month:%B %Y}", month_spend[month], len(month_breaks[month]))
            for month in sorted(month_spend)
        ],
        by_worker=group(lambda found: (found.worker_id, found.worker)),
        by_support=group(lambda found: (None, found.support_kind)),
        total_pence=sum(per_booking.values()),
    )


def spend_report_csv(report: SpendReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["table", "label", "spent", "breaks"])
    for table, rows in (
        ("month", report.by_month),
        ("worker", report.by_worker),
        ("kind of support", report.by_support),
    ):
        for row in rows:
            writer.writerow([table, row.label, _pounds(row.spent_pence), row.breaks])
    writer.writerow(["total", "", _pounds(report.total_pence), ""])
    return out.getvalue()
