#!/usr/bin/python3
"""Schema migrations of the selfhost contract probe, so releases built from the probe
carry a real migration on PostgreSQL.

  contract_probe_migrate.py --to N [--fail]

Brings the probe's schema (table ``probe_schema``, one row: its version) up to
version N from DATABASE_URL, each step in its own transaction; a schema already
at N or beyond is left alone. ``--fail`` makes the last step fail inside its
transaction (a statement on a missing table), as a broken migration would, so
the schema stays where it was. Exit 0: done; 1: the migration failed; 2: usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from contract_probe_checks import CHECK_TIMEOUT, psycopg2

#: each step's statements; step N takes the schema from version N-1 to N
STEPS: dict[int, tuple[str, ...]] = {
    1: ("CREATE TABLE probe_canary (id serial PRIMARY KEY, value text NOT NULL)",),
    2: ("ALTER TABLE probe_canary ADD COLUMN written_at timestamptz NOT NULL DEFAULT now()",
        "CREATE INDEX probe_canary_written_at ON probe_canary (written_at)"),
}
BROKEN = "UPDATE probe_no_such_table SET value = 'never'"


def migrate(url: str, target: int, *, fail: bool = False) -> int:
    conn = psycopg2.connect(url, connect_timeout=CHECK_TIMEOUT,
                            application_name="selfhost-contract-probe-migrate")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS probe_schema (version integer NOT NULL)")
            cur.execute("INSERT INTO probe_schema (version) SELECT 0 "
                        "WHERE NOT EXISTS (SELECT 1 FROM probe_schema)")
        applied = 0
        for step in range(1, target + 1):
            # one transaction per step, under a lock: two runs at once apply it once
            with conn, conn.cursor() as cur:
                cur.execute("LOCK TABLE probe_schema IN EXCLUSIVE MODE")
                cur.execute("SELECT version FROM probe_schema")
                if cur.fetchone()[0] >= step:
                    continue
                for statement in STEPS[step]:
                    cur.execute(statement)
                if fail and step == target:
                    cur.execute(BROKEN)
                cur.execute("UPDATE probe_schema SET version = %s", (step,))
            applied += 1
            print(f"schema {step - 1} -> {step}: applied")
        if not applied:
            print(f"schema at {target} or beyond: nothing to do")
    finally:
        conn.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="contract_probe_migrate")
    parser.add_argument("--to", type=int, required=True, choices=sorted(STEPS))
    parser.add_argument("--fail", action="store_true",
                        help="make the last step fail, as a broken migration would")
    args = parser.parse_args(argv)
    url = os.environ.get("DATABASE_URL", "")
    if not url or psycopg2 is None:
        print("DATABASE_URL must be set and python3-psycopg2 installed", file=sys.stderr)
        return 2
    try:
        return migrate(url, args.to, fail=args.fail)
    except psycopg2.Error as exc:
        # the message names the failed statement; it carries no secret of the URL
        print(f"migration failed: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
