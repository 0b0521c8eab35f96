"""`selfhost upgrade` in split topology on four real guests (two app hosts, the database
host, the cache host; Debian 12), watched the whole time from here the way the customer's
load balancer watches it: each app host's /readyz (the pool it keeps) and its page,
about ten times a second.

The upgrade must take the two app hosts one at a time: the second drained while the
migrations run on the first, then each drained before it restarts and back before the
other goes; a request may fail only on a drained host, after the drain pause the
load balancer needs, and the site (some app host) answers throughout.

Then, on the same hosts, `selfhost certs rotate-ca`: the database and the cache present
certificates of the new CA, and a loop on each app host asking its app's /healthz
(which connects to both with verify-full against the host's ca.crt, read at each
request) sees no failure."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
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
from selfhost import pki
from selfhost.ca_rotation import CaRotateOptions, rotate_ca
from selfhost.deploy.record import state_dir
from selfhost.init import InitRequest, run_init
from selfhost.layout import LAYOUT
from selfhost.secrets import load_secrets
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


#: on an app host: GET the app's /healthz every 0.2 s until the stop file exists
HEALTHZ_LOOP = r"""
import json, os, sys, time, urllib.error, urllib.request
port, stop = sys.argv[1], sys.argv[2]
counts, failures = {}, []
deadline = time.monotonic() + 1500
while not os.path.exists(stop) and time.monotonic() < deadline:
    try:
        status = str(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz",
                                            timeout=10).status)
    except urllib.error.HTTPError as exc:
        status = f"{exc.code}: {exc.read()[:600]!r}"
    except OSError as exc:
        status = type(exc).__name__ + ": " + str(exc)[:120]
    counts[status[:3]] = counts.get(status[:3], 0) + 1
    if status != "200" and len(failures) < 5:
        failures.append([round(time.time(), 2), status])
    time.sleep(0.2)
print(json.dumps({"counts": counts, "failures": failures}))
"""


def _issuer_check(site: Site, ca_pem: str, server: str, port: int, *starttls: str) -> str:
    """From app1: does ``server``'s certificate verify against ``ca_pem`` alone?"""
    address = next(h.address for h in site.deployment.plan.hosts if h.name == server)
    script = (f"f=$(mktemp); cat > $f; openssl s_client -connect {address}:{port} "
              f"{' '.join(starttls)} -CAfile $f -verify_return_error -brief </dev/null 2>&1"
              " | grep -E '^(Verification|verify error)'; rm -f $f")
    done = subprocess.run(site.deployment.box.ssh_command(
        guest_for(site.deployment, "app1"), "bash", "-c", script), input=ca_pem,
        capture_output=True, text=True, timeout=60, check=False)
    return done.stdout.strip() or done.stderr.strip()


def _stored_ca(site: Site) -> tuple[str, bytes]:
    """The stored CA's certificate (PEM) and its SHA-256 fingerprint."""
    d = site.deployment
    key = load_secrets(d.profile_path, passphrase=PASSPHRASE)["ca_key"]
    cert = pki.stored_ca(key, state_dir(d.profile_path, d.plan.customer.id))
    assert cert is not None
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            cert.fingerprint(hashes.SHA256()))


def test_rotate_ca_keeps_database_and_cache_trusted_on_every_app_host(site: Site) -> None:
    d, (old, old_sha) = site.deployment, _stored_ca(site)
    # as the README says after an upgrade: the profile names the release that runs
    shutil.copyfile(site.releases["v2"], d.profile_path.parent / "release.tar.gz")
    stop = f"/run/rotate-ca-split-stop-{os.getpid()}"
    loops = {}
    for host in APPS:
        site.on(host, "rm", "-f", stop)
        loops[host] = subprocess.Popen(
            d.box.ssh_command(guest_for(d, host), "python3", "-c", HEALTHZ_LOOP,
                              str(d.plan.app.port), stop),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Redis re-reads its TLS files in place: the same server process throughout
    redis_pid = ["systemctl", "show", "-P", "MainPID", LAYOUT.redis_unit]
    redis_before = site.on("cache1", *redis_pid).strip()
    time.sleep(2)
    try:
        result = rotate_ca(d.profile_path, CaRotateOptions(sandbox=d.box.name, yes=True,
                                                           passphrase=PASSPHRASE))
    finally:
        for host in APPS:
            site.on(host, "touch", stop)
    probes = {h: json.loads(p.communicate(timeout=60)[0] or "{}") for h, p in loops.items()}
    assert result.phases == ["add", "switch", "finish"]
    assert redis_before not in ("", "0")
    assert site.on("cache1", *redis_pid).strip() == redis_before
    new, new_sha = _stored_ca(site)
    assert new_sha != old_sha
    # the servers present certificates of the new CA, which the old no longer verifies
    seen = {(server, ca): _issuer_check(site, pem, server, port, *starttls)
            for server, port, starttls in [("db1", d.plan.database.port,
                                            ("-starttls", "postgres")),
                                           ("cache1", d.plan.cache.port, ())]
            for ca, pem in (("new", new), ("old", old))}
    assert {k: v.startswith("Verification: OK") for k, v in seen.items()} == {
        ("db1", "new"): True, ("db1", "old"): False,
        ("cache1", "new"): True, ("cache1", "old"): False}, seen
    # every /healthz on both app hosts answered 200 throughout (database and cache TLS)
    assert {h: set(p.get("counts", {})) for h, p in probes.items()} == {
        h: {"200"} for h in APPS}, probes
    assert all(p["counts"]["200"] > 50 for p in probes.values()), probes
    assert [site.healthz(h)[0] for h in APPS] == [200, 200]
