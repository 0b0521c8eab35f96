"""The contract probe's releases against a real PostgreSQL (and Redis) on loopback:
each is built with the fixture builder, its payload unpacked with GNU tar, and its
manifest's own argv run as the app role and an upgrade run them, as an
unprivileged user. The schema is read back with psql, not with the probe's code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from contract_probe_support import (
    DB_PASSWORD,
    REDIS_PASSWORD,
    SECRET_KEY,
    as_unprivileged,
    make_tls_files,
    postgres_server,
    probe_env,
    redis_server,
)

from release_support import Keys, Kind, make_keys, members, probe_release

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Not pytest's tmp_path: the postgres and nobody users must be able to enter it.
    root = Path(tempfile.mkdtemp(prefix="release-probe-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def servers(workdir: Path) -> Iterator[tuple[int, int]]:
    tls = make_tls_files(workdir)
    with postgres_server(workdir, tls) as pg, redis_server(workdir, tls) as (redis, _):
        yield pg, redis


@pytest.fixture(scope="module")
def keys(workdir: Path) -> Keys:
    return make_keys(workdir)


def _psql(port: int, database: str, sql: str) -> str:
    psql = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))[-1]
    done = subprocess.run([str(psql), "-h", "127.0.0.1", "-p", str(port), "-U", "probe",
                           "-d", database, "-Atc", sql], capture_output=True, text=True,
                          env={"PGPASSWORD": DB_PASSWORD, "PATH": "/usr/bin:/bin"},
                          check=True)
    return done.stdout.strip()


class Installed:
    """A release unpacked in its own directory, run with the contract environment."""

    def __init__(self, root: Path, tarball: Path, env: dict[str, str]) -> None:
        entries = dict(members(tarball))
        self.manifest: dict[str, Any] = json.loads(entries["selfhost-release.json"])
        self.dir = root / f"{self.manifest['version']}-{tarball.stem}"
        self.dir.mkdir()
        (self.dir / "payload.tar").write_bytes(entries["payload.tar"])
        subprocess.run(["tar", "-xf", "payload.tar"], cwd=self.dir, check=True)
        self.env = probe_env(env)

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=self.dir, env=self.env, capture_output=True,
                              text=True, timeout=120, check=False, **as_unprivileged())

    def migrate(self) -> list[subprocess.CompletedProcess[str]]:
        return [self._run(m["run"]) for m in self.manifest["migrations"]]

    def check(self) -> tuple[int, dict[str, Any]]:
        done = self._run([*self.manifest["run"], "--check"])
        return done.returncode, json.loads(done.stdout)


@pytest.fixture
def install(workdir: Path, servers: tuple[int, int], keys: Keys,
            request: pytest.FixtureRequest) -> Any:
    pg, redis = servers
    database = "db_" + request.node.name.removeprefix("test_")[:40]
    _psql(pg, "postgres", f"CREATE DATABASE {database}")
    env = {"DATABASE_URL": f"postgresql://probe:{DB_PASSWORD}@127.0.0.1:{pg}/{database}"
                           "?sslmode=disable",
           "REDIS_URL": f"redis://probe:{REDIS_PASSWORD}@127.0.0.1:{redis}/0",
           "AI_PROVIDER": "none", "HTTPS_PROXY": "http://127.0.0.1:3128",
           "PUBLIC_URL": "https://chat.example.test", "SECRET_KEY": SECRET_KEY}
    root = workdir / database
    root.mkdir()
    root.chmod(0o755)

    def make(kind: Kind) -> Installed:
        (root / kind).mkdir()
        return Installed(root, probe_release(root / kind, kind, keys), env)

    return make, lambda sql: _psql(pg, database, sql)


def test_v1_then_v2_migrates_the_schema_and_keeps_the_data(install: Any) -> None:
    make, sql = install
    v1 = make("v1")
    assert [m.returncode for m in v1.migrate()] == [0]
    sql("INSERT INTO probe_canary (value) VALUES ('written by v1')")
    assert v1.check()[1]["schema_version"] == 1
    v2 = make("v2")
    first = v2.migrate()
    assert (first[0].returncode, first[0].stdout) == (0, "schema 1 -> 2: applied\n")
    assert sql("SELECT version FROM probe_schema") == "2"
    assert sql("SELECT value, written_at IS NOT NULL FROM probe_canary") == "written by v1|t"
    # run again, as a resumed upgrade would: nothing changes
    assert [(m.returncode, m.stdout) for m in v2.migrate()] == [
        (0, "schema at 2 or beyond: nothing to do\n")]
    code, report = v2.check()
    assert (code, report["release"], report["schema_version"], report["checks"]["schema"]
            ["ok"]) == (0, "2.0", 2, True)
    # v1 against the new schema: its health check says so
    assert (v1.check()[0], v1.check()[1]["checks"]["schema"]["detail"]) == (
        1, "schema 2, this release needs 1")


def test_the_broken_v2_migration_fails_and_leaves_the_schema_at_v1(install: Any) -> None:
    make, sql = install
    assert [m.returncode for m in make("v1").migrate()] == [0]
    broken = make("v2-broken-migration").migrate()
    assert (broken[0].returncode, broken[0].stderr.startswith(
        'migration failed: relation "probe_no_such_table" does not exist')) == (1, True)
    assert (sql("SELECT version FROM probe_schema"), sql(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'probe_canary' "
        "AND column_name = 'written_at'")) == ("1", "0")


def test_the_unhealthy_v2_migrates_but_fails_its_health_check(install: Any) -> None:
    make, _ = install
    unhealthy = make("v2-unhealthy")
    assert [m.returncode for m in unhealthy.migrate()] == [0]
    code, report = unhealthy.check()
    assert (code, report["status"], report["schema_version"],
            report["checks"]["schema"]["detail"]) == (
        1, "degraded", 2, "schema 2, this release needs 3")

