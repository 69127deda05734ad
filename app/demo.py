"""`flask demo seed`: a realistic demo council. Idempotent: a second run changes nothing.

Each domain adds its part through `demo_seeder`; they run in registration order after
the people exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select

from app.auth.services import create_user
from app.extensions import db
from app.models import Council, Representation, Role, User

DEMO_PASSWORD = "demo-password-1"  # noqa: S105 - printed for the demo, never used in production
# Fixed TOTP secret for demo staff so the demo (and browser tests) can produce codes.
DEMO_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # noqa: S105


@dataclass
class DemoPerson:
    key: str
    email: str
    name: str
    roles: list[Role]
    phone: str | None = None
    postcode: str | None = None
    date_of_birth: date | None = None
    reference: str | None = None


PEOPLE = [
    DemoPerson(
        "carer",
        "carer@demo.example",
        "Sam Carer",
        [Role.CARER],
        "+447911100001",
        "LS6 2AB",
        date(1961, 4, 12),
        "CR-1001",
    ),
    DemoPerson(
        "carer2",
        "asha@demo.example",
        "Asha Patel",
        [Role.CARER],
        "+447911100002",
        "LS8 1QA",
        date(1975, 9, 3),
        "CR-1002",
    ),
    DemoPerson(
        "young_carer",
        "jordan@demo.example",
        "Jordan Lee",
        [Role.CARER],
        "+447911100003",
        "LS11 5DH",
        date(2010, 2, 20),
        "CR-1003",
    ),
    DemoPerson(
        "representative",
        "rep@demo.example",
        "Chris Carer",
        [Role.REPRESENTATIVE],
        "+447911100004",
        "LS6 2AB",
    ),
    DemoPerson(
        "worker", "worker@demo.example", "Priya Worker", [Role.WORKER], "+447911100010", "LS6 3AA"
    ),
    DemoPerson(
        "worker2", "tom@demo.example", "Tom Okafor", [Role.WORKER], "+447911100011", "LS7 2BB"
    ),
    DemoPerson(
        "worker3", "megan@demo.example", "Megan Hughes", [Role.WORKER], "+447911100012", "LS2 9JT"
    ),
    DemoPerson(
        "provider_admin",
        "provider@demo.example",
        "Pat Provider",
        [Role.PROVIDER_ADMIN],
        "+447911100020",
    ),
    DemoPerson(
        "officer", "officer@demo.example", "Olu Officer", [Role.COUNCIL_OFFICER], "+447911100030"
    ),
    DemoPerson(
        "plan_writer",
        "planwriter@demo.example",
        "Rita Planwriter",
        [Role.PLAN_WRITER],
        "+447911100040",
    ),
    DemoPerson(
        "operator", "operator@demo.example", "Omar Operator", [Role.OPERATOR], "+447911100050"
    ),
    DemoPerson("admin", "admin@demo.example", "Ada Admin", [Role.ADMIN], "+447911100060"),
]


@dataclass
class DemoContext:
    council: Council
    people: dict[str, User]
    now: datetime
    password_method: str
    lines: list[str] = field(default_factory=list)


DEMO_SEEDERS: list[Callable[[DemoContext], None]] = []


def demo_seeder(func: Callable[[DemoContext], None]) -> Callable[[DemoContext], None]:
    if func not in DEMO_SEEDERS:
        DEMO_SEEDERS.append(func)
    return func


def _link_representative(council: Council, *, carer: User, representative: User) -> None:
    """Chris helps Sam, so signing in as the representative shows Sam's budget and breaks."""
    linked = db.session.scalar(
        select(Representation.id).where(
            Representation.carer_id == carer.id,
            Representation.representative_id == representative.id,
        )
    )
    if linked is None:
        db.session.add(
            Representation(
                council_id=council.id, carer_id=carer.id, representative_id=representative.id
            )
        )
        db.session.commit()


def seed(*, now: datetime, password_method: str = "scrypt") -> Iterator[str]:
    council = db.session.scalar(select(Council).where(Council.slug == "demo"))
    if council is None:
        council = Council(
            slug="demo",
            name="Demo City Council",
            emergency_phone="+448000988234",
            duty_team_phone="+441132222222",
            cancellation_fee_pence=1500,
        )
        db.session.add(council)
        db.session.commit()
    people: dict[str, User] = {}
    for person in PEOPLE:
        user = db.session.scalar(select(User).where(User.email == person.email))
        if user is None:
            staff = bool(
                set(person.roles)
                & {Role.COUNCIL_OFFICER, Role.PLAN_WRITER, Role.OPERATOR, Role.ADMIN}
            )
            user = create_user(
                email=person.email,
                password=DEMO_PASSWORD,
                roles=person.roles,
                name=person.name,
                council=council,
                phone=person.phone,
                postcode=person.postcode,
                date_of_birth=person.date_of_birth,
                reference=person.reference,
                totp_secret=DEMO_TOTP_SECRET if staff else None,
                password_method=password_method,
                now=now,
            )
        people[person.key] = user
    _link_representative(council, carer=people["carer"], representative=people["representative"])
    ctx = DemoContext(council=council, people=people, now=now, password_method=password_method)
    for seeder in DEMO_SEEDERS:
        seeder(ctx)
    yield f"Demo council: {council.name} (slug {council.slug})"
    yield f"Every demo login uses the password: {DEMO_PASSWORD}"
    yield f"Staff second factor: add the secret {DEMO_TOTP_SECRET} to an authenticator app"
    for person in PEOPLE:
        yield f"  {', '.join(r.value for r in person.roles):<16} {person.email}"
    yield from ctx.lines
