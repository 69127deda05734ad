"""`python -m tests.pg_reachable URL`: exit 0 when PostgreSQL answers at URL."""

from __future__ import annotations

import sys


def reachable(url: str) -> bool:
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(plain, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception:
        return False
    return True


if __name__ == "__main__":
    sys.exit(0 if reachable(sys.argv[1]) else 1)
