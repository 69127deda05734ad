"""Bulk data for the benchmark, loaded with INSERT … SELECT generate_series and COPY
through psycopg (never ORM objects one by one), on top of the demo council.

Volumes (issue 9): 5,000 approved workers with in-date checks, profiles spread over the
outward codes in booking/data/outcodes.csv and weekly availability; 50,000 bookings over
past and future weeks, never overlapping for one worker; 10,000 carers with budgets whose
ledgers match their bookings; 100,000 carers with an emergency plan and a card whose PIN
HMAC is computed exactly as emergency/pins.py does.

Rows get explicit ids (`base + n`) so that related rows are joined by arithmetic, not by
looking ids up again; each sequence is moved past them afterwards.
"""

from __future__ import annotations

import csv
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg

from booking.services.postcodes import OUTCODES_CSV
from booking.services.workers import SKILLS
from emergency.crypto import FieldCipher
from emergency.pins import generate_pin, pin_hmac
from emergency.services.plans import validate_answers

WORKERS = 5_000
BOOKINGS = 50_000
BUDGET_CARERS = 10_000
PLAN_CARERS = 100_000
OPERATORS = 8
PIN_SAMPLE = 5_000
DETAILS_POOL = 256  # distinct encrypted plan details, shared round-robin by the plans

FIRST_NAMES = [
    "Amina", "Ben", "Chloe", "Dev", "Eilidh", "Femi", "Grace", "Harpreet", "Imran", "Joanne",
    "Kwame", "Laura", "Mohammed", "Niamh", "Olu", "Priya", "Rhys", "Sana", "Tom", "Zofia",
]  # fmt: skip
SURNAMES = [
    "Ahmed", "Brown", "Clarke", "Davies", "Evans", "Farah", "Green", "Hussain", "Jones",
    "Khan", "Lewis", "Morris", "Nowak", "Okafor", "Patel", "Roberts", "Singh", "Taylor",
    "Walker", "Wilson", "Wright", "Young",
]  # fmt: skip
LANGUAGES = ["polish", "urdu", "punjabi", "arabic", "bengali", "romanian", "welsh", "somali"]
CHECKS = [  # (kind, copy number, lasts years or None)
    ("dbs_enhanced", 1, None),
    ("right_to_work", 1, None),
    ("insurance", 1, 3),
    ("training_moving_handling", 1, None),
    ("training_first_aid", 1, 3),
    ("training_safeguarding", 1, None),
    ("reference", 1, None),
    ("reference", 2, None),
]


@dataclass
class Seeded:
    """What the load needs to know about the data it runs against."""

    council_id: int
    worker_base: int  # worker g (1..WORKERS) is user worker_base + g
    carer_base: int  # carer c (1..PLAN_CARERS) is user carer_base + c
    saturday: date  # no bulk booking falls on a Saturday: the booking load's slots
    outcodes: list[str]
    pins: list[str]  # plain PINs of live cards (a sample)
    operator_tokens: list[str]
    password: str
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def worker_user(self, g: int) -> int:
        return self.worker_base + g

    def carer_user(self, c: int) -> int:
        return self.carer_base + c

    def carer_email(self, c: int) -> str:
        return f"bench-carer-{c}@bench.example"


def _base(cur: psycopg.Cursor[Any], table: str) -> int:
    row = cur.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])


def _bump(cur: psycopg.Cursor[Any], table: str) -> None:
    cur.execute(
        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"  # noqa: S608
        f" (SELECT greatest(max(id), 1) FROM {table}))"
    )


def _one(cur: psycopg.Cursor[Any], sql: str, params: Any = None) -> Any:
    row = cur.execute(sql, params).fetchone()
    assert row is not None, sql
    return row[0]


def _financial_year(today: date) -> tuple[date, date]:
    first = today.year if today.month >= 4 else today.year - 1
    return date(first, 4, 1), date(first + 1, 3, 31)


def _plan_answers(n: int, today: date) -> dict[str, Any]:
    """A plan's answers as a plan writer would give them, cleaned by the plans service."""
    first, last = FIRST_NAMES[n % len(FIRST_NAMES)], SURNAMES[n % len(SURNAMES)]
    return validate_answers(
        {
            "cared_for": {
                "name": f"{first} {last}",
                "date_of_birth": f"{1930 + n % 60}-0{1 + n % 9}-1{n % 9}",
                "address": f"{n} Bench Road, Leeds",
                "postcode": "LS6 2AB",
                "safe_alone": "No more than an hour",
            },
            "access": {
                "key_safe_code": f"{n % 10000:04d}",
                "key_safe_location": "Left of the front door",
                "key_holder": "Neighbour",
                "notes": "",
            },
            "needs": {
                "personal_care": "Needs help to wash and dress",
                "mobility": "Walks with a frame",
                "eating_drinking": "Soft food; remind to drink",
                "communication": "Hard of hearing: speak slowly",
                "routines": "Up at 8, lunch at 12:30, bed at 9",
            },
            "medication": [
                {
                    "name": "Donepezil",
                    "dose": "10 mg",
                    "times": "9pm",
                    "managed_by": "Carer",
                    "stored_where": "Kitchen cupboard",
                }
            ],
            "allergies": "Penicillin" if n % 3 == 0 else "",
            "gp": "Bench Surgery, 0113 000 0000",
            "professionals": "District nurse on Tuesdays",
            "contacts": [
                {
                    "name": "Helen Contact",
                    "relationship": "Daughter",
                    "phone": "+447911123101",
                    "can_step_in": True,
                    "consent": True,
                }
            ],
            "replacement_care": {"arrangements": "Home care, same routine", "hours": 72},
            "consent": {
                "carer": True,
                "cared_for": "yes",
                "recorded_by": "Bench Planwriter",
                "recorded_on": today.isoformat(),
            },
        },
        today=today,
    )


def _details_pool(cipher: FieldCipher, today: date) -> list[tuple[int, str, str]]:
    """(n, details_encrypted, key_safe_encrypted) shaped as emergency's _add_version stores
    them: everything but contacts and consent, key-safe code encrypted on its own."""
    pool = []
    for n in range(DETAILS_POOL):
        answers = _plan_answers(n, today)
        sensitive = {k: v for k, v in answers.items() if k not in ("contacts", "consent")}
        key_safe = sensitive["access"].pop("key_safe_code", "")
        sensitive["best_interests_record"] = answers["consent"]["best_interests_record"]
        pool.append((n, cipher.encrypt_json(sensitive), cipher.encrypt(key_safe)))
    return pool


def _read_outcodes() -> list[tuple[str, float, float]]:
    with OUTCODES_CSV.open(newline="", encoding="utf-8") as handle:
        return [
            (row["outcode"].strip().upper(), float(row["latitude"]), float(row["longitude"]))
            for row in csv.DictReader(handle)
        ]


def _names(n: str) -> str:
    """SQL for a person's name from the two name arrays, by the series variable `n`."""
    return (
        f"(%(first)s::text[])[1 + {n} %% {len(FIRST_NAMES)}] || ' ' || "
        f"(%(last)s::text[])[1 + ({n} / {len(FIRST_NAMES)}) %% {len(SURNAMES)}]"
    )


def load(
    dsn: str,
    *,
    council_id: int,
    officer_id: int,
    writer_id: int,
    password_hash: str,
    password: str,
    pin_key: str,
    cipher: FieldCipher,
    now: datetime,
    today: date,
) -> Seeded:
    """Load everything in one transaction; returns what the load generator needs."""
    outcodes = _read_outcodes()
    start, end = _financial_year(today)
    monday = today - timedelta(days=today.weekday())
    saturday = today + timedelta(days=10)
    saturday += timedelta(days=(5 - saturday.weekday()) % 7)
    common: dict[str, Any] = {
        "council": council_id,
        "officer": officer_id,
        "writer": writer_id,
        "hash": password_hash,
        "now": now,
        "today": today,
        "first": FIRST_NAMES,
        "last": SURNAMES,
        "langs": LANGUAGES,
        "skills": list(SKILLS),
        "nc": len(outcodes),
        "monday": monday,
        "period_start": start,
        "period_end": end,
        # Budgets start at 00:00 UK time on 1 April (BST: 23:00 UTC the day before).
        "period_start_at": datetime.combine(start, time(0), tzinfo=UTC) - timedelta(hours=1),
    }
    counts: dict[str, int] = {}
    # Client-side binding: parameters in CREATE TABLE AS and several statements at once.
    with (
        psycopg.connect(dsn, cursor_factory=psycopg.ClientCursor) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("SET synchronous_commit = off")
        cur.execute(
            "CREATE TEMP TABLE oc (n int PRIMARY KEY, outcode text, lat float8, lon float8)"
        )
        with cur.copy("COPY oc (n, outcode, lat, lon) FROM STDIN") as copy:
            for n, (code, lat, lon) in enumerate(outcodes):
                copy.write_row((n, code, lat, lon))

        # --- workers -------------------------------------------------------------------
        ub = _base(cur, "users")
        pb = _base(cur, "worker_profiles")
        common.update(ub=ub, pb=pb, nw=WORKERS)
        cur.execute(
            f"""
            INSERT INTO users (id, council_id, email, name, password_hash, phone, postcode,
                               is_active, failed_logins, password_changed_at, created_at)
            SELECT %(ub)s + g, %(council)s, 'bench-worker-' || g || '@bench.example',
                   {_names("g")}, %(hash)s,
                   '+447' || lpad((100000000 + g)::text, 9, '0'),
                   oc.outcode || ' ' || (1 + g %% 9) || chr(65 + g %% 26)
                       || chr(65 + (g / 26) %% 26),
                   true, 0, %(now)s, %(now)s
            FROM generate_series(1, %(nw)s) g JOIN oc ON oc.n = g %% %(nc)s
            """,  # noqa: S608
            common,
        )
        cur.execute(
            "INSERT INTO user_roles (user_id, role) "
            "SELECT %(ub)s + g, 'worker' FROM generate_series(1, %(nw)s) g",
            common,
        )
        cur.execute(
            """
            INSERT INTO worker_profiles (
                id, user_id, council_id, display_name, bio, gender, postcode,
                latitude, longitude, travel_radius_km, hourly_rate_pence,
                evening_premium_percent, weekend_premium_percent,
                bank_holiday_premium_percent, min_notice_minutes, min_session_minutes,
                max_hours_per_week, buffer_minutes, favourites_instant_book,
                response_deadline_hours, status, approved_at, reapproval_due,
                created_at, updated_at)
            SELECT %(pb)s + g, u.id, %(council)s, u.name,
                   'Experienced support worker; calm, patient and reliable.',
                   (ARRAY['female', 'male', 'female', 'non_binary'])[1 + g %% 4],
                   u.postcode,
                   -- spread around the outward code's centre: about ±2 km
                   oc.lat + ((g * 7919) %% 1000 / 1000.0 - 0.5) * 0.04,
                   oc.lon + ((g * 104729) %% 1000 / 1000.0 - 0.5) * 0.06,
                   5 + g %% 21, 1500 + (g %% 10) * 100, 20, 25, 50, 120, 60, 40,
                   (g %% 3) * 15, false, 24, 'approved',
                   %(now)s - make_interval(days => g %% 300),
                   (%(today)s::date - g %% 300) + interval '2 years',
                   %(now)s - make_interval(days => g %% 300 + 30),
                   %(now)s - make_interval(days => g %% 300)
            FROM generate_series(1, %(nw)s) g
            JOIN users u ON u.id = %(ub)s + g
            JOIN oc ON oc.n = g %% %(nc)s
            """,
            common,
        )
        cur.execute(
            """
            INSERT INTO worker_skills (profile_id, council_id, skill)
            SELECT %(pb)s + g, %(council)s, (%(skills)s::text[])[1 + (g + j * 3) %% 10]
            FROM generate_series(1, %(nw)s) g, generate_series(0, 2) j
            """,
            common,
        )
        cur.execute(
            """
            INSERT INTO worker_languages (profile_id, council_id, language)
            SELECT %(pb)s + g, %(council)s, 'english' FROM generate_series(1, %(nw)s) g
            UNION ALL
            SELECT %(pb)s + g, %(council)s, (%(langs)s::text[])[1 + g %% 8]
            FROM generate_series(1, %(nw)s) g WHERE g %% 3 <> 0
            """,
            common,
        )
        cur.execute(
            """
            INSERT INTO worker_checks (profile_id, council_id, kind, reference, issued_on,
                                       expires_on, dbs_update_service, recorded_by_id,
                                       created_at)
            SELECT %(pb)s + g, %(council)s, c.kind,
                   'BENCH-' || g || '-' || c.kind || '-' || c.copy,
                   %(today)s::date - (30 + g %% 300),
                   CASE WHEN c.years IS NULL THEN NULL
                        ELSE (%(today)s::date - (30 + g %% 300))
                             + make_interval(years => c.years) END,
                   c.kind = 'dbs_enhanced', %(officer)s, %(now)s
            FROM generate_series(1, %(nw)s) g,
                 (SELECT * FROM unnest(%(kinds)s::text[], %(copies)s::int[], %(years)s::int[])
                      AS t(kind, copy, years)) c
            """,
            {
                **common,
                "kinds": [k for k, _, _ in CHECKS],
                "copies": [n for _, n, _ in CHECKS],
                "years": [y for _, _, y in CHECKS],
            },
        )
        cur.execute(
            """
            INSERT INTO vetting_decisions (profile_id, council_id, decision, reason,
                                           decided_by_id, created_at)
            SELECT %(pb)s + g, %(council)s, 'approved', 'All checks seen', %(officer)s,
                   %(now)s - make_interval(days => g %% 300)
            FROM generate_series(1, %(nw)s) g
            """,
            common,
        )
        cur.execute(
            """
            INSERT INTO availability_rules (profile_id, council_id, weekday, start_time,
                                            end_time)
            SELECT %(pb)s + g, %(council)s, d, time '08:00', time '20:00'
            FROM generate_series(1, %(nw)s) g, generate_series(0, 4) d
            UNION ALL
            SELECT %(pb)s + g, %(council)s, 5, time '10:00', time '18:00'
            FROM generate_series(1, %(nw)s) g WHERE g %% 2 = 0
            """,
            common,
        )
        counts["workers"] = WORKERS

        # --- carers --------------------------------------------------------------------
        cb = _base(cur, "users")
        common.update(cb=cb, ncar=PLAN_CARERS)
        cur.execute(
            f"""
            INSERT INTO users (id, council_id, email, name, password_hash, phone, postcode,
                               date_of_birth, reference, is_active, failed_logins,
                               password_changed_at, created_at)
            SELECT %(cb)s + c, %(council)s, 'bench-carer-' || c || '@bench.example',
                   {_names("c")}, %(hash)s,
                   '+447' || lpad((300000000 + c)::text, 9, '0'),
                   oc.outcode || ' ' || (1 + c %% 9) || chr(65 + c %% 26)
                       || chr(65 + (c / 26) %% 26),
                   date '1950-01-01' + (c * 37) %% 20000, 'BC-' || c,
                   true, 0, %(now)s, %(now)s
            FROM generate_series(1, %(ncar)s) c JOIN oc ON oc.n = c %% %(nc)s
            """,  # noqa: S608
            common,
        )
        cur.execute(
            "INSERT INTO user_roles (user_id, role) "
            "SELECT %(cb)s + c, 'carer' FROM generate_series(1, %(ncar)s) c",
            common,
        )
        counts["carers"] = PLAN_CARERS

        # --- budgets, one tranche each, released: the allocation entry -----------------
        bb = _base(cur, "budgets")
        tb = _base(cur, "budget_tranches")
        common.update(bb=bb, tb=tb, nb=BUDGET_CARERS)
        cur.execute(
            """
            INSERT INTO budgets (id, council_id, carer_id, kind, period_start, period_end,
                                 award_pence, tranche_schedule, created_at, created_by_id)
            SELECT %(bb)s + c, %(council)s, %(cb)s + c,
                   (ARRAY['direct_payment', 'council_managed', 'mixed'])[1 + c %% 3],
                   %(period_start)s, %(period_end)s, 100000 + (c %% 11) * 10000, 'whole',
                   %(period_start_at)s, %(officer)s
            FROM generate_series(1, %(nb)s) c
            """,
            common,
        )
        cur.execute(
            """
            INSERT INTO budget_tranches (id, council_id, budget_id, sequence, due_on,
                                         amount_pence, released_at)
            SELECT %(tb)s + c, %(council)s, %(bb)s + c, 1, %(period_start)s,
                   100000 + (c %% 11) * 10000, %(period_start_at)s
            FROM generate_series(1, %(nb)s) c
            """,
            common,
        )
        cur.execute(
            """
            INSERT INTO ledger_entries (council_id, budget_id, kind, amount_pence, actor_id,
                                        reason, idempotency_key, created_at)
            SELECT %(council)s, %(bb)s + c, 'allocation', 100000 + (c %% 11) * 10000,
                   %(officer)s, 'Part 1 of 1 of the award', 'tranche:' || (%(tb)s + c),
                   %(period_start_at)s
            FROM generate_series(1, %(nb)s) c
            """,
            common,
        )
        counts["budgets"] = BUDGET_CARERS

        # --- bookings: worker g has 10, one in each of 10 different weeks -------------
        kb = _base(cur, "bookings")
        common.update(kb=kb, nk=BOOKINGS)
        cur.execute(
            """
            CREATE TEMP TABLE bk AS
            WITH shape AS (
                SELECT i, (i - 1) %% %(nw)s + 1 AS g, (i - 1) / %(nw)s AS k,
                       (i - 1) %% %(nb)s + 1 AS c
                FROM generate_series(1, %(nk)s) i
            ), timed AS (
                SELECT s.*,
                       (%(monday)s::date + (s.k * 4 - 28 + s.g %% 4) * 7 + (s.g + s.k) %% 5
                        + make_time(9 + (s.g + s.k) %% 6, 0, 0)) AT TIME ZONE 'Europe/London'
                           AS starts_at,
                       120 + ((s.g + 3 * s.k) %% 3) * 60 AS minutes
                FROM shape s
            )
            SELECT t.i, t.g, t.c, %(kb)s + t.i AS id, t.starts_at,
                   t.starts_at + make_interval(mins => t.minutes) AS ends_at,
                   p.hourly_rate_pence * t.minutes / 60 AS price,
                   CASE
                       WHEN t.starts_at + make_interval(mins => t.minutes) <= %(now)s THEN
                           CASE WHEN t.i %% 14 = 0 THEN 'cancelled' ELSE 'completed' END
                       WHEN t.starts_at <= %(now)s THEN 'confirmed'
                       WHEN t.i %% 20 = 0 THEN 'cancelled'
                       WHEN t.i %% 7 = 0 THEN 'requested'
                       ELSE 'confirmed'
                   END AS status,
                   p.hourly_rate_pence AS rate
            FROM timed t JOIN worker_profiles p ON p.id = %(pb)s + t.g
            """,
            common,
        )
        cur.execute(
            """
            ALTER TABLE bk ADD COLUMN created_at timestamptz, ADD COLUMN ended_at timestamptz;
            UPDATE bk SET created_at = CASE
                WHEN status = 'requested' THEN %(now)s - interval '2 hours'
                ELSE greatest(least(starts_at - interval '10 days', %(now)s - interval '3 hours'),
                              %(period_start_at)s + interval '1 hour') END;
            UPDATE bk SET ended_at = least(created_at + interval '1 day',
                                           %(now)s - interval '1 hour')
            WHERE status = 'cancelled';
            """,
            common,
        )
        cur.execute(
            """
            INSERT INTO bookings (
                id, council_id, carer_id, worker_id, starts_at, ends_at, status,
                price_pence, created_at, funded_by, budget_id, hold_pence, top_up_pence,
                rates, postcode, address, share_notes, support_kind, requested_by_id,
                respond_by, confirmed_at, instant, ended_at, cancelled_by_id, cancel_reason,
                fee_pence, actual_starts_at, actual_ends_at, completed_at, charged_pence,
                extra_pence, dispute_closes_at, refunded_pence, final_at)
            SELECT b.id, %(council)s, %(cb)s + b.c, %(ub)s + b.g, b.starts_at, b.ends_at,
                   b.status, b.price, b.created_at, 'budget', %(bb)s + b.c, b.price, 0,
                   json_build_object('hourly_rate_pence', b.rate,
                                     'evening_premium_percent', 20,
                                     'weekend_premium_percent', 25,
                                     'bank_holiday_premium_percent', 50),
                   u.postcode, b.c || ' Bench Street, Leeds', false,
                   (%(skills)s::text[])[1 + b.i %% 10], %(cb)s + b.c,
                   CASE WHEN b.status = 'requested'
                        THEN least(%(now)s + interval '22 hours', b.starts_at) END,
                   CASE WHEN b.status IN ('confirmed', 'completed')
                        THEN b.created_at + interval '3 hours' END,
                   false, b.ended_at,
                   CASE WHEN b.status = 'cancelled' THEN %(cb)s + b.c END,
                   CASE WHEN b.status = 'cancelled' THEN 'Plans changed' END,
                   0,
                   CASE WHEN b.status = 'completed' THEN b.starts_at END,
                   CASE WHEN b.status = 'completed' THEN b.ends_at END,
                   CASE WHEN b.status = 'completed' THEN b.ends_at END,
                   CASE WHEN b.status = 'completed' THEN b.price END,
                   0,
                   CASE WHEN b.status = 'completed' THEN b.ends_at + interval '48 hours' END,
                   0,
                   CASE WHEN b.status = 'completed'
                             AND b.ends_at + interval '48 hours' <= %(now)s
                        THEN b.ends_at + interval '48 hours' END
            FROM bk b JOIN users u ON u.id = %(cb)s + b.c
            """,
            common,
        )
        # The ledger: a hold for every booking; completed ones release it and capture
        # the price, cancelled ones release it (no fee: cancelled in good time).
        cur.execute(
            """
            INSERT INTO ledger_entries (council_id, budget_id, kind, amount_pence,
                                        booking_id, actor_id, reason, idempotency_key,
                                        created_at)
            SELECT %(council)s, %(bb)s + b.c, 'hold', -b.price, b.id, %(cb)s + b.c,
                   'Break booked', 'booking:' || b.id || ':hold', b.created_at
            FROM bk b
            UNION ALL
            SELECT %(council)s, %(bb)s + b.c, 'release', b.price, b.id,
                   CASE WHEN b.status = 'cancelled' THEN %(cb)s + b.c ELSE %(ub)s + b.g END,
                   CASE WHEN b.status = 'cancelled' THEN 'Break cancelled'
                        ELSE 'Break completed' END,
                   'booking:' || b.id || ':release',
                   CASE WHEN b.status = 'cancelled' THEN b.ended_at ELSE b.ends_at END
            FROM bk b WHERE b.status IN ('completed', 'cancelled')
            UNION ALL
            SELECT %(council)s, %(bb)s + b.c, 'capture', -b.price, b.id, %(ub)s + b.g,
                   'Break completed', 'booking:' || b.id || ':capture', b.ends_at
            FROM bk b WHERE b.status = 'completed'
            """,
            common,
        )
        counts["bookings"] = BOOKINGS
        counts["ledger entries"] = _one(cur, "SELECT count(*) FROM ledger_entries")

        # --- emergency plans, versions, contacts and cards -----------------------------
        cur.execute("CREATE TEMP TABLE pool (n int PRIMARY KEY, details text, key_safe text)")
        with cur.copy("COPY pool (n, details, key_safe) FROM STDIN") as copy:
            for row in _details_pool(cipher, today):
                copy.write_row(row)
        plb = _base(cur, "emergency_plans")
        pvb = _base(cur, "emergency_plan_versions")
        common.update(plb=plb, pvb=pvb, pool=DETAILS_POOL)
        cur.execute(
            """
            INSERT INTO emergency_plans (id, council_id, carer_id, writer_id, status,
                                         current_version, is_test, approved_at, review_due,
                                         created_at)
            SELECT %(plb)s + c, %(council)s, %(cb)s + c, %(writer)s, 'active', 1, false,
                   %(now)s - make_interval(days => c %% 330),
                   (%(today)s::date - c %% 330) + interval '1 year',
                   %(now)s - make_interval(days => c %% 330)
            FROM generate_series(1, %(ncar)s) c
            """,
            common,
        )
        cur.execute(
            """
            INSERT INTO emergency_plan_versions (
                id, plan_id, council_id, number, created_by_id, created_at,
                details_encrypted, key_safe_encrypted, cared_for_postcode,
                replacement_care_hours, consent_carer, consent_cared_for,
                consent_recorded_by, consent_recorded_on)
            SELECT %(pvb)s + c, %(plb)s + c, %(council)s, 1, %(writer)s,
                   %(now)s - make_interval(days => c %% 330), pool.details, pool.key_safe,
                   u.postcode, 72, true, 'yes', 'Bench Planwriter', %(today)s::date - c %% 330
            FROM generate_series(1, %(ncar)s) c
            JOIN pool ON pool.n = c %% %(pool)s
            JOIN users u ON u.id = %(cb)s + c
            """,
            common,
        )
        cur.execute(
            """
            INSERT INTO emergency_contacts (plan_version_id, council_id, position, name,
                                            relationship_to_carer, phone, can_step_in,
                                            has_key, availability, consent,
                                            consent_recorded_on)
            SELECT %(pvb)s + c, %(council)s, p,
                   (%(first)s::text[])[1 + (c + p) %% 20] || ' Contact',
                   (ARRAY['Daughter', 'Neighbour', 'Friend'])[p],
                   '+447' || lpad((500000000 + c * 2 + p)::text, 9, '0'),
                   true, p = 1, 'Any time', true, %(today)s::date - c %% 330
            FROM generate_series(1, %(ncar)s) c, generate_series(1, 2) p
            """,
            common,
        )
        taken = {row[0] for row in cur.execute("SELECT pin_hmac FROM emergency_cards").fetchall()}
        pins: list[str] = []
        cur.execute("CREATE TEMP TABLE cardpin (c int PRIMARY KEY, pin_hmac text)")
        with cur.copy("COPY cardpin (c, pin_hmac) FROM STDIN") as copy:
            c = 1
            while c <= PLAN_CARERS:
                pin = generate_pin()
                digest = pin_hmac(pin, pin_key)
                if digest in taken:
                    continue
                taken.add(digest)
                copy.write_row((c, digest))
                # One card in a hundred is revoked; the sample holds live cards only.
                if c % 100 and len(pins) < PIN_SAMPLE and c % 13 == 0:
                    pins.append(pin)
                c += 1
        cur.execute(
            """
            INSERT INTO emergency_cards (council_id, plan_id, pin_hmac, status, is_test,
                                         issued_at, issued_by_id, revoked_at, revoked_reason)
            SELECT %(council)s, %(plb)s + cp.c, cp.pin_hmac,
                   CASE WHEN cp.c %% 100 = 0 THEN 'revoked' ELSE 'live' END, false,
                   %(now)s - make_interval(days => cp.c %% 330), %(writer)s,
                   CASE WHEN cp.c %% 100 = 0 THEN %(now)s - interval '1 day' END,
                   CASE WHEN cp.c %% 100 = 0 THEN 'Replaced' END
            FROM cardpin cp
            """,
            common,
        )
        counts["plans"] = PLAN_CARERS
        counts["cards"] = PLAN_CARERS

        # --- operators with API tokens (created directly: no TOTP round trip) ----------
        ob = _base(cur, "users")
        tokens = [secrets.token_urlsafe(32) for _ in range(OPERATORS)]
        for n, token in enumerate(tokens, start=1):
            cur.execute(
                """
                INSERT INTO users (id, council_id, email, name, password_hash, is_active,
                                   failed_logins, password_changed_at, created_at)
                VALUES (%(id)s, %(council)s, %(email)s, %(name)s, %(hash)s, true, 0,
                        %(now)s, %(now)s)
                """,
                {
                    **common,
                    "id": ob + n,
                    "email": f"bench-operator-{n}@bench.example",
                    "name": f"Bench Operator {n}",
                },
            )
            cur.execute("INSERT INTO user_roles (user_id, role) VALUES (%s, 'operator')", (ob + n,))
            cur.execute(
                "INSERT INTO api_tokens (user_id, token_hash, created_at, expires_at) "
                "VALUES (%s, %s, %s, %s)",
                (ob + n, hashlib.sha256(token.encode()).hexdigest(), now, now + timedelta(hours=6)),
            )
        for table in (
            "users",
            "worker_profiles",
            "budgets",
            "budget_tranches",
            "bookings",
            "emergency_plans",
            "emergency_plan_versions",
        ):
            _bump(cur, table)
        conn.commit()

    return Seeded(
        council_id=council_id,
        worker_base=ub,
        carer_base=cb,
        saturday=saturday,
        outcodes=[code for code, _, _ in outcodes],
        pins=pins,
        operator_tokens=tokens,
        password=password,
        counts=counts,
    )


def bearer_tokens(dsn: str, user_ids: list[int], *, now: datetime) -> list[str]:
    """API tokens for these people, stored as the app stores them (SHA-256 of the token)."""
    tokens = [secrets.token_urlsafe(32) for _ in user_ids]
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO api_tokens (user_id, token_hash, created_at, expires_at) "
                "VALUES (%s, %s, %s, %s)",
                [
                    (uid, hashlib.sha256(tok.encode()).hexdigest(), now, now + timedelta(hours=6))
                    for uid, tok in zip(user_ids, tokens, strict=True)
                ],
            )
        conn.commit()
    return tokens
