"""Filling a deployed guest's database to a given size, shared by the benchmarks that
time work proportional to the data (backup, restore, upgrade, rollback)."""

from __future__ import annotations

import subprocess

from selfhost import sandbox

#: rows of random text, about 1 kB each: random so the dump cannot compress them away
FILL_SQL = ("CREATE TABLE bench_fill (id bigserial PRIMARY KEY, body text); "
            "INSERT INTO bench_fill (body) SELECT string_agg(md5(random()::text), '') "
            "FROM generate_series(1, {rows}) AS r, generate_series(1, 30) AS c GROUP BY r; "
            "SELECT pg_database_size(current_database());")
#: what one row of FILL_SQL takes on disk, heap and index, as pg_database_size counts it
ROW_BYTES = 1100


def on_guest(box: sandbox.Sandbox, script: str) -> str:
    """``script`` run by bash as root on the sandbox's first guest; its stdout."""
    done = subprocess.run(box.ssh_command(box.guests[0], "bash", "-c", script),
                          capture_output=True, text=True, check=True, timeout=3600)
    return done.stdout


def fill_database(box: sandbox.Sandbox, database: str, megabytes: int) -> int:
    """Adds a ``bench_fill`` table of about ``megabytes`` MB to ``database`` on the
    sandbox's first guest; the database's size in bytes afterwards."""
    rows = megabytes * 1024 * 1024 // ROW_BYTES
    size = on_guest(box, f"cd / && runuser -u postgres -- psql -qAt -d {database} "
                    "<<'EOF'\n" + FILL_SQL.format(rows=rows) + "\nEOF")
    return int(size.split()[-1])
