"""`selfhost upgrade` in split topology on four real guests (two app hosts, the database
host, the cache host; Debian 12), watched the whole time from here the way the customer's
load balancer watches it: each app host's /readyz (the pool it keeps) and its page,
about ten times a second.

The upgrade must take the two app hosts one at a time: the second drained while the
migrations run on the first, then each drained before it restarts and back before the
other goes; a request may fail only on a drained host, after the drain pause the
load balancer needs, and the site (some app host) answers throughout."""

from __future__ import annotations

import itertools
import json
import shutil
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_support import (
    PASSPHRASE,
    SUPPLIED,
    Deployment,
    guest_for,
    https_request,
    run_deploy,
    ssh,
    tls_context,
)

from conftest import SandboxFactory
from release_support import HEALTHZ, make_keys, probe_release
from selfhost.init import InitRequest, run_init
from selfhost.layout import LAYOUT
from selfhost.upgrade.service import UpgradeOptions, upgrade
from selfhost.workflows.demo import address_sets

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CANARY = "kept across the split upgrade"
DRAIN_SECONDS = 5
APPS = ("app1", "app2")


@dataclass(frozen=True)
class Sample:
    host: str
    path: str
    start: float
    end: float
    #: the HTTP status, None when the request got no answer at all
    status: int | None


@dataclass(frozen=True)
class Window:
    """A time a host's /readyz answered 503, from its first such answer to its last."""

    host: str
    start: float
    end: float


class ProbeLoop:
    """Both app hosts' /readyz and / over HTTPS, from this machine, until stopped."""

    def __init__(self, deployment: Deployment) -> None:
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        context = tls_context(deployment, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
        domain = deployment.plan.tls.domain
        addresses = {h.name: h.address for h in deployment.plan.hosts if h.name in APPS}
        self._threads = [threading.Thread(target=self._run, args=(name, address, domain,
                                                                  context), daemon=True)
                         for name, address in addresses.items()]

    def _run(self, host: str, address: str, domain: str, context: ssl.SSLContext) -> None:
        while not self._stop.is_set():
            for path in ("/readyz", "/"):
                start = time.monotonic()
                status: int | None
                try:
                    status = https_request(address, domain, context, path).status
                except OSError:
                    status = None
                self.samples.append(Sample(host, path, start, time.monotonic(), status))
            time.sleep(0.05)

    def __enter__(self) -> ProbeLoop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def drained(self) -> list[Window]:
        """Every drained window of either host, in the order they began."""
        windows = []
        for host in APPS:
            ready = sorted((s for s in self.samples if s.host == host and s.path == "/readyz"),
                           key=lambda s: s.start)
            run: list[Sample] = []
            for sample in [*ready, None]:
                if sample is not None and sample.status == 503:
                    run.append(sample)
                    continue
                if run:
                    windows.append(Window(host, run[0].start, run[-1].end))
                run = []
        return sorted(windows, key=lambda w: w.start)

    def failures(self) -> list[Sample]:
        return [s for s in self.samples if s.path == "/" and s.status != 200]


@dataclass
class Site:
    deployment: Deployment
    releases: dict[str, Path]

    def on(self, host: str, *argv: str) -> str:
        done = ssh(self.deployment.box, guest_for(self.deployment, host), *argv, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def sql(self, query: str) -> str:
        return self.on("db1", "runuser", "-u", "postgres", "--", "psql", "-XAt", "-d",
                       self.deployment.plan.database.name, "-c", query).strip()

    def healthz(self, host: str) -> tuple[int, str, object]:
        answer = json.loads(self.on(host, "python3", "-c", HEALTHZ))
        return answer["status"], answer["report"]["release"], answer["report"]["schema_version"]


@pytest.fixture(scope="module")
def site(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory) -> Site:
    """The contract probe as v1 on both app hosts of a split deployment, its schema
    migrated to 1 and a canary row written."""
    work = tmp_path_factory.mktemp("upgrade-split")
    box = sandbox_factory("upgrade-split", 4, "bookworm")
    keys = make_keys(work)
    releases = {}
    for kind in ("v1", "v2"):
        (work / kind).mkdir()
        releases[kind] = probe_release(work / kind, kind, keys)  # type: ignore[arg-type]
    shutil.copyfile(releases["v1"], work / "release.tar.gz")
    profile = work / "split.yaml"
    run_init(InitRequest(
        output=profile, preset="split", passphrase=PASSPHRASE,
        environ={f"SELFHOST_{k.upper()}": v for k, v in SUPPLIED.items()},
        sets=(*address_sets("split", [g.address for g in box.guests]),
              "app.release=release.tar.gz", f"app.release_keys=[{keys.public.name}]",
              f"app.drain_seconds={DRAIN_SECONDS}")), None, None)
    deployment = Deployment("split", "bookworm", profile, box)
    run_deploy(deployment, work, label="v1").require()
    the_site = Site(deployment, releases)
    the_site.on("app1", "systemd-run", "--wait", "--pipe", "--quiet",
                f"--property=User={LAYOUT.app_user}",
                f"--property=EnvironmentFile={LAYOUT.app_env_file}",
                f"--property=WorkingDirectory={LAYOUT.app_current}", "--",
                "/usr/bin/python3", "contract_probe_migrate.py", "--to", "1")
    for host in APPS:
        the_site.on(host, "systemctl", "restart", LAYOUT.app_unit)
    the_site.sql(f"INSERT INTO probe_canary (value) VALUES ('{CANARY}')")
    deadline = time.monotonic() + 60
    while (any(the_site.healthz(h)[0] != 200 for h in APPS)
           and time.monotonic() < deadline):
        time.sleep(2)
    reports = [json.loads(the_site.on(h, "python3", "-c", HEALTHZ)) for h in APPS]
    assert [the_site.healthz(h) for h in APPS] == [(200, "1.0", 1)] * 2, reports
    return the_site


def test_the_upgrade_takes_the_app_hosts_out_one_at_a_time(site: Site) -> None:
    with ProbeLoop(site.deployment) as loop:
        time.sleep(2)
        upgrade(site.deployment.profile_path, UpgradeOptions(
            release=site.releases["v2"], sandbox=site.deployment.box.name,
            passphrase=PASSPHRASE))
        time.sleep(2)
    windows = loop.drained()
    # app2 while the migrations run on app1, then app1's switch, then app2's
    assert [w.host for w in windows] == ["app2", "app1", "app2"], windows
    for one, next_one in itertools.pairwise(windows):
        assert one.end < next_one.start, f"{one} and {next_one} were drained together"
    for failed in loop.failures():
        inside = [w for w in windows if w.host == failed.host
                  and w.start <= failed.start and failed.end <= w.end + 0.5]
        assert inside, f"{failed} failed while {failed.host} was in the pool"
        # the load balancer had the drain pause to stop sending requests
        assert failed.end >= inside[0].start + DRAIN_SECONDS - 1.0, (
            f"{failed} failed {failed.end - inside[0].start:.1f} s into the drain")
    # the site answered throughout: some app host served its page in every second
    pages = [s for s in loop.samples if s.path == "/" and s.status == 200]
    first, last = min(s.start for s in loop.samples), max(s.end for s in loop.samples)
    silent = [second for second in range(int(last - first))
              if not any(first + second <= s.end < first + second + 1 for s in pages)]
    assert silent == [], f"no app host answered in second(s) {silent} of the upgrade"
    assert [site.healthz(h) for h in APPS] == [(200, "2.0", 2)] * 2
    assert site.sql("SELECT value FROM probe_canary") == CANARY
    # both back in the pool, no drain flag left behind
    assert [[s.status for s in loop.samples if s.path == "/readyz" and s.host == h][-1]
            for h in APPS] == [200, 200]
    for host in APPS:
        assert site.on(host, "ls", Path(LAYOUT.nginx_drain_flag).parent.as_posix()).split(
        ).count(Path(LAYOUT.nginx_drain_flag).name) == 0
