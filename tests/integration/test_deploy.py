"""`selfhost deploy` on real Debian 12 and 13 sandbox guests: every preset on Debian 13,
the all-in-one and the split topology on Debian 12 (whose other presets test_verify and
test_reconcile_cli deploy, as most other modules do, on Debian 12).

Each (preset, release) gets its own sandbox (``split`` four guests) and is deployed
once per session, from the base image (the install path) except the AI presets; the
checks then share that deployment. Deploys of one release run a few at a time
(SELFHOST_TEST_DEPLOY_WORKERS, default 2) to fit CI's time budget.
Every deploy is watched for secrets: kept runner artifacts (job events, stdout,
command), the printed output and the process list.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from deploy_support import (
    PRESETS,
    RELEASES,
    SUPPLIED,
    Deployment,
    app_env_keys,
    assert_nothing_changed,
    descendants,
    direct_connect_as_app,
    egress_verdict,
    env_without_secrets,
    guest_for,
    guests_needed,
    https_get,
    https_get_on_host,
    make_profile,
    run_deploy,
    run_dirs_of,
    sandbox_name,
    secret_values,
    ssh,
)
from guest_secrets import disk_hits, journal_hits, volatile_hits
from pydantic import ValidationError

from conftest import SandboxFactory
from selfhost import sandbox as sandbox_mod
from selfhost.cli.app import main
from selfhost.deploy.record import read as read_record
from selfhost.deploy.record import record_path
from selfhost.record_schema import DeploymentRecord
from selfhost.subprocessors.document import from_json
from selfhost.subprocessors.render import render_profile
from selfhost.subprocessors.signing import check_signature, generate_keys
from selfhost.verify import VerifyResult, summary, verify
from selfhost.verify.reconcile import Reconciliation, reconcile

pytestmark = pytest.mark.slow

WORKERS = int(os.environ.get("SELFHOST_TEST_DEPLOY_WORKERS", "2"))
PRESETS_OF = {"bookworm": ("air-gapped", "split"), "trixie": PRESETS}
#: the install path from plain Debian is the all-in-one's, the split's and the external
#: database's (no PostgreSQL on the host) on the base image; the AI presets install the
#: same packages as the all-in-one, so they start from the server image
SERVER_IMAGE = ("eu-anthropic", "us-openai")
CASES = [(release, preset) for release in RELEASES for preset in PRESETS_OF[release]]
AI_DISABLED = [c for c in CASES if c[1] in ("air-gapped", "split", "external-db")]
LOCAL_SERVICES = [c for c in CASES if c[1] != "external-db"]
AI_HOSTS = ("api.openai.com", "api.anthropic.com")

Deployed = Callable[[str, str], Deployment]


def _ids(case: tuple[str, str]) -> str:
    return f"{case[0]}-{case[1]}"


@pytest.fixture(scope="session")
def deployed(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
             ) -> Deployed:
    """``get(release, preset)``: the first deploy of that preset; all presets of a
    release are deployed together the first time one of them is asked for."""
    done: dict[tuple[str, str], Deployment] = {}

    def one(release: str, preset: str) -> Deployment:
        box = sandbox_factory(sandbox_name(preset, release), guests_needed(preset), release,
                              image="server" if preset in SERVER_IMAGE else "base")
        work = tmp_path_factory.mktemp(f"{release}-{preset}")
        deployment = Deployment(preset, release, make_profile(work, preset, box), box)
        return run_deploy(deployment, work, label="first")

    def get(release: str, preset: str) -> Deployment:
        if (release, preset) not in done:
            with ThreadPoolExecutor(max_workers=WORKERS) as pool:
                futures = {p: pool.submit(one, release, p) for p in PRESETS_OF[release]}
                for preset_name, future in futures.items():
                    done[(release, preset_name)] = future.result()
        return done[(release, preset)]

    return get


@pytest.fixture(scope="session")
def bystander(sandbox_factory: SandboxFactory) -> Callable[[str], sandbox_mod.Guest]:
    """A guest per release that runs nothing but sshd: the 'other host' an app must
    not reach directly."""
    return lambda release: sandbox_factory(f"d{release[:2]}-bystander", 1, release).guests[0]


@pytest.fixture(scope="session")
def redeployed(deployed: Deployed, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    """The second deploy of the same profile (``changed`` must be 0 everywhere), always
    with Mitogen, so the default engine is exercised whatever the first deploy used."""
    done: dict[tuple[str, str], Deployment] = {}

    def get(release: str, preset: str) -> Deployment:
        if (release, preset) not in done:
            first = deployed(release, preset)
            first.require()
            again = Deployment(preset, release, first.profile_path, first.box)
            work = tmp_path_factory.mktemp(f"again-{release}-{preset}")
            done[(release, preset)] = run_deploy(again, work, label="second",
                                                 engine="mitogen")
        return done[(release, preset)]

    return get


# -- the deployment itself ---------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_deploy_succeeds(deployed: Deployed, case: tuple[str, str]) -> None:
    result = deployed(*case).require()
    assert sum(s.failed + s.unreachable for s in result.stats.values()) == 0


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_redeploy_changes_nothing(redeployed: Deployed, case: tuple[str, str]) -> None:
    assert_nothing_changed(redeployed(*case).require())


@pytest.mark.parametrize("release", RELEASES)
def test_redeploy_with_plain_ansible_changes_nothing(
        deployed: Deployed, tmp_path: Path, release: str) -> None:
    first = deployed(release, "air-gapped")
    first.require()
    again = run_deploy(Deployment("air-gapped", release, first.profile_path, first.box),
                       tmp_path, label="plain", engine="plain")
    result = again.require()
    assert_nothing_changed(result)
    assert result.engine == "plain"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_secret_scan_of_first_deploy_finds_nothing(deployed: Deployed,
                                                   case: tuple[str, str]) -> None:
    deployment = deployed(*case)
    deployment.require()
    assert deployment.leaks() == []


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_secret_scan_of_redeploy_finds_nothing(redeployed: Deployed,
                                               case: tuple[str, str]) -> None:
    deployment = redeployed(*case)
    deployment.require()
    assert deployment.leaks() == []


def _oracle(deployment: Deployment) -> dict[str, str]:
    """What is searched for on the guests: the decrypted secrets file's values, the TLS
    host keys, the passphrase, and every third-party credential this session supplies,
    used by this preset or not."""
    return {**secret_values(deployment.profile_path),
            **{f"supplied {name}": value for name, value in SUPPLIED.items()}}


def _plan_guests(deployment: Deployment) -> list[sandbox_mod.Guest]:
    return [g for g in deployment.box.guests
            if g.name in {guest_for(deployment, h.name) for h in deployment.plan.hosts}]


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_guest_disks_hold_secrets_only_where_they_must(redeployed: Deployed,
                                                       case: tuple[str, str]) -> None:
    # After both deploys; the files allowed to hold secrets are guest_secrets.ALLOWED.
    deployment = redeployed(*case)
    deployment.require()
    values = _oracle(deployment)
    hits = {g.name: disk_hits(g, values) + volatile_hits(deployment.box, g, values)
            for g in _plan_guests(deployment)}
    assert hits == {name: [] for name in hits}


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_guest_journals_hold_no_secret(redeployed: Deployed, case: tuple[str, str]) -> None:
    deployment = redeployed(*case)
    deployment.require()
    values = _oracle(deployment)
    hits = {g.name: journal_hits(deployment.box, g, values) for g in _plan_guests(deployment)}
    assert hits == {name: [] for name in hits}


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_scan_covered_the_runner_artifacts(deployed: Deployed, case: tuple[str, str]) -> None:
    # A scan of nothing would find nothing: the job events must have been there.
    deployment = deployed(*case)
    deployment.require()
    events = list(deployment.artifacts.glob("*/job_events/*.json")) \
        if deployment.artifacts is not None else []
    assert events


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_record_on_every_host_matches_the_plan(deployed: Deployed,
                                               case: tuple[str, str]) -> None:
    deployment = deployed(*case)
    fingerprints = {}
    for host in deployment.plan.hosts:
        done = ssh(deployment.box, guest_for(deployment, host.name), "cat",
                   deployment.plan.layout.deployment_record)
        fingerprints[host.name] = json.loads(done.stdout)["profile_fingerprint"] \
            if done.returncode == 0 else done.stderr
    assert fingerprints == dict.fromkeys(fingerprints, deployment.plan.profile_fingerprint)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_record_on_every_host_follows_the_shared_schema(deployed: Deployed,
                                                        case: tuple[str, str]) -> None:
    # The record role renders exactly the schema the controller's copy follows.
    deployment = deployed(*case)
    deployment.require()
    seen = {}
    for host in deployment.plan.hosts:
        done = ssh(deployment.box, guest_for(deployment, host.name), "cat",
                   deployment.plan.layout.deployment_record)
        try:
            rec = DeploymentRecord.model_validate_json(done.stdout)
        except ValidationError as exc:
            seen[host.name] = f"{done.stderr}{exc}"
            continue
        seen[host.name] = (rec.host, rec.components, [h.name for h in rec.hosts])
    assert seen == {h.name: (h.name, list(h.components), [g.name for g in deployment.plan.hosts])
                    for h in deployment.plan.hosts}


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_record_beside_the_profile(deployed: Deployed, case: tuple[str, str]) -> None:
    deployment = deployed(*case)
    path = record_path(deployment.profile_path, deployment.plan.customer.id)
    rec = read_record(path)
    assert getattr(rec, "profile_fingerprint", None) == deployment.plan.profile_fingerprint
    # The controller's copy on disk follows the hosts' schema as it is.
    assert DeploymentRecord.model_validate_json(path.read_text()).host is None


@pytest.mark.parametrize("case", [c for c in CASES if c[1] in ("air-gapped", "split")],
                         ids=_ids)
def test_check_after_deploy_predicts_no_change(redeployed: Deployed,
                                               case: tuple[str, str]) -> None:
    deployment = redeployed(*case)
    deployment.require()
    result = CliRunner().invoke(main, ["deploy", str(deployment.profile_path), "--check",
                                       "--sandbox", deployment.box.name],
                                env=env_without_secrets())
    changed = [line for line in result.output.splitlines() if line.startswith("changed ")]
    assert (result.exit_code, "subprocessors: unchanged since the last deployment"
            in result.output, "dry run finished" in result.output, changed) == (
        0, True, True, [])


# -- what the hosts do -------------------------------------------------------------

def _app_hosts(deployment: Deployment) -> list[tuple[str, str]]:
    return [(h.name, h.address) for h in deployment.plan.hosts_with("app")]


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_nginx_speaks_tls13(deployed: Deployed, case: tuple[str, str]) -> None:
    deployment = deployed(*case)
    versions = {name: https_get(deployment, address, "/")[2]
                for name, address in _app_hosts(deployment)}
    assert versions == dict.fromkeys(versions, "TLSv1.3")


@pytest.mark.parametrize("case", LOCAL_SERVICES, ids=_ids)
def test_healthz_reports_database_and_cache_ok(deployed: Deployed,
                                               case: tuple[str, str]) -> None:
    deployment = deployed(*case)
    seen = {}
    for name, _ in _app_hosts(deployment):
        # /healthz is open only to the host itself
        status, body = https_get_on_host(deployment, name, "/healthz")
        checks = (body or {}).get("checks", {})
        seen[name] = (status, checks.get("database", {}).get("ok"),
                      checks.get("cache", {}).get("ok"))
    assert seen == dict.fromkeys(seen, (200, True, True))


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_a_client_offering_tls12_and_tls13_gets_tls13(deployed: Deployed,
                                                      case: tuple[str, str]) -> None:
    deployment = deployed(*case)
    versions = {name: https_get(deployment, address, "/", ssl.TLSVersion.TLSv1_2,
                                ssl.TLSVersion.TLSv1_3)[2]
                for name, address in _app_hosts(deployment)}
    assert versions == dict.fromkeys(versions, "TLSv1.3")


#: versions older than nginx's minimum, each offered alone
REFUSED_VERSIONS = {"tls12": ssl.TLSVersion.TLSv1_2, "tls11": ssl.TLSVersion.TLSv1_1,
                    "tls10": ssl.TLSVersion.TLSv1}


@pytest.mark.parametrize("version", sorted(REFUSED_VERSIONS))
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_an_older_tls_version_gets_the_servers_protocol_version_alert(
        deployed: Deployed, case: tuple[str, str], version: str) -> None:
    # The reason names the alert the server sent (protocol_version, 70): a refusal made
    # on this side (no ciphers, no protocols to offer) has other reasons.
    deployment = deployed(*case)
    reasons = {}
    for name, address in _app_hosts(deployment):
        try:
            reasons[name] = https_get(deployment, address, "/", REFUSED_VERSIONS[version])[2]
        except ssl.SSLError as exc:
            reasons[name] = exc.reason
    assert reasons == dict.fromkeys(reasons, "TLSV1_ALERT_PROTOCOL_VERSION")


@pytest.mark.parametrize("case", AI_DISABLED, ids=_ids)
def test_ai_disabled_host_has_no_ai_key(deployed: Deployed, case: tuple[str, str]) -> None:
    deployment = deployed(*case)
    keys = {name: sorted({"OPENAI_API_KEY", "ANTHROPIC_API_KEY"}
                         & set(app_env_keys(deployment, name)))
            for name, _ in _app_hosts(deployment)}
    assert keys == {name: [] for name in keys}


@pytest.mark.parametrize("target", AI_HOSTS)
@pytest.mark.parametrize("case", AI_DISABLED, ids=_ids)
def test_ai_disabled_proxy_refuses_ai_hosts(deployed: Deployed, case: tuple[str, str],
                                            target: str) -> None:
    deployment = deployed(*case)
    name, _ = _app_hosts(deployment)[0]
    assert egress_verdict(deployment, name, target)["allowed"] is False


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_proxy_refuses_a_domain_off_the_allowlist(deployed: Deployed,
                                                  case: tuple[str, str]) -> None:
    deployment = deployed(*case)
    name, _ = _app_hosts(deployment)[0]
    assert egress_verdict(deployment, name, "exfiltration.example.org")["allowed"] is False


PROXY_ACCESS_LOG = "/var/log/squid/access.log"
#: a hosts-file entry on the guest (never sent anywhere): both names lead to the host's
#: own nginx, so the proxy can really open a tunnel to the listed one
ON_LOOPBACK = """
cp -p /etc/hosts /root/hosts.orig
printf '127.0.0.1 %s %s\\n' "$1" "$2" >> /etc/hosts
systemctl restart squid
"""
RESTORE_HOSTS = "cp -p /root/hosts.orig /etc/hosts && systemctl restart squid"


def _access_log(deployment: Deployment, host: str) -> list[str]:
    done = ssh(deployment.box, guest_for(deployment, host), "cat", PROXY_ACCESS_LOG)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _access_log_verdicts(deployment: Deployment, host: str, targets: list[str], after: int
                         ) -> dict[str, list[str]]:
    """The proxy's own access-log verdicts (e.g. TCP_TUNNEL/200) on CONNECT target:443
    in the lines past the first ``after``, waited for: squid's log daemon writes them a
    moment after the tunnel closes."""
    found: dict[str, list[str]] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = [line.split() for line in _access_log(deployment, host)[after:]]
        # Squid tags a verdict _ABORTED when the client hung up before the reply was
        # all written (the probe closes once it has read the status line): the same
        # verdict, so the tag is dropped (squid 6 on Debian 13 logged one).
        found = {t: [f[3].replace("_ABORTED/", "/") for f in lines
                     if len(f) > 6 and f[5:7] == ["CONNECT", f"{t}:443"]]
                 for t in targets}
        if all(found.values()):
            break
        time.sleep(1)
    return found


@pytest.mark.parametrize("release", [r for r, p in CASES if p == "us-openai"])
def test_proxy_tunnels_an_allowlisted_domain_and_refuses_an_unlisted_one(
        deployed: Deployed, release: str) -> None:
    # The refusals above mean something only if the proxy really opens a tunnel to a
    # listed host: squid's 200 and its TCP_TUNNEL log line, where the unlisted name,
    # resolving just as well, gets 403 and TCP_DENIED.
    deployment = deployed(release, "us-openai")
    name, _ = _app_hosts(deployment)[0]
    guest = guest_for(deployment, name)
    listed, unlisted = "api.openai.com", "exfiltration.example.org"
    prepared = ssh(deployment.box, guest, "bash", "-c", ON_LOOPBACK, "-", listed, unlisted)
    assert prepared.returncode == 0, prepared.stderr
    try:
        before = len(_access_log(deployment, name))
        verdicts = {t: egress_verdict(deployment, name, t) for t in (listed, unlisted)}
        logged = _access_log_verdicts(deployment, name, [listed, unlisted], before)
    finally:
        restored = ssh(deployment.box, guest, "bash", "-c", RESTORE_HOSTS)
    assert ({t: (v["proxy_status"], v["allowed"]) for t, v in verdicts.items()}, logged,
            restored.returncode) == ({listed: (200, True), unlisted: (403, False)},
                                     {listed: ["TCP_TUNNEL/200"],
                                      unlisted: ["TCP_DENIED/403"]}, 0)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_app_user_cannot_connect_directly_to_another_host(
        deployed: Deployed, bystander: Callable[[str], sandbox_mod.Guest],
        case: tuple[str, str]) -> None:
    deployment = deployed(*case)
    name, _ = _app_hosts(deployment)[0]
    other = bystander(case[0])
    assert direct_connect_as_app(deployment, name, other.address, 22).startswith("blocked")


@pytest.mark.parametrize("release", RELEASES)
def test_split_app_user_cannot_reach_the_database_hosts_ssh(deployed: Deployed,
                                                            release: str) -> None:
    deployment = deployed(release, "split")
    db = next(h for h in deployment.plan.hosts if h.name == deployment.plan.database.server_host)
    verdict = direct_connect_as_app(deployment, "app1", db.address, 22)
    assert verdict.startswith("blocked")


@pytest.mark.parametrize("release", RELEASES)
def test_bystander_port_is_open_to_root(deployed: Deployed,
                                        bystander: Callable[[str], sandbox_mod.Guest],
                                        release: str) -> None:
    # The app user's connection is dropped by the firewall, not by a closed port.
    deployment = deployed(release, "air-gapped")
    done = ssh(deployment.box, guest_for(deployment, "chat1"), "python3", "-c",
               "import socket,sys; socket.create_connection((sys.argv[1], 22), 5).close()",
               bystander(release).address)
    assert done.returncode == 0, done.stderr


# -- verify and reconciliation, on these same deployments ---------------------------
# external-db (with its customer-managed services stood up) and us-openai (before its
# change path) are verified in test_verify; every check failed on purpose in
# test_verify_tamperings.

VERIFIED = [("bookworm", "air-gapped"), ("trixie", "air-gapped"), ("trixie", "eu-anthropic"),
            ("bookworm", "split")]
DAY = date(2026, 11, 27)


@dataclass(frozen=True)
class Verified:
    deployment: Deployment
    result: VerifyResult
    junit: str
    report_json: str
    reconciliation: Reconciliation


@pytest.fixture(scope="session")
def verified(redeployed: Deployed, tmp_path_factory: pytest.TempPathFactory
             ) -> Callable[[str, str], Verified]:
    """``get(release, preset)``: one verify (with its junit and JSON reports) and one
    reconciliation of the redeployed hosts."""
    done: dict[tuple[str, str], Verified] = {}

    def get(release: str, preset: str) -> Verified:
        if (release, preset) not in done:
            deployment = redeployed(release, preset)
            deployment.require()
            tmp = tmp_path_factory.mktemp(f"verify-{release}-{preset}")
            result = verify(deployment.profile_path, sandbox=deployment.box.name,
                            junit=tmp / "junit.xml", json_path=tmp / "report.json")
            done[(release, preset)] = Verified(
                deployment, result, (tmp / "junit.xml").read_text(),
                (tmp / "report.json").read_text(),
                reconcile(deployment.profile_path, sandbox=deployment.box.name))
        return done[(release, preset)]

    return get


@pytest.mark.parametrize("case", VERIFIED, ids=_ids)
def test_verify_passes_every_check(verified: Callable[[str, str], Verified],
                                   case: tuple[str, str]) -> None:
    result = verified(*case).result
    assert result.ok, "\n".join(f"{r.check.key}: {r.found}" for r in result.failures)


@pytest.mark.parametrize("case", VERIFIED, ids=_ids)
def test_verify_writes_junit_with_one_case_per_check(
        verified: Callable[[str, str], Verified], case: tuple[str, str]) -> None:
    done = verified(*case)
    assert done.junit.count("<testcase ") == len(done.result.results)


@pytest.mark.parametrize("case", VERIFIED, ids=_ids)
def test_verify_reports_hold_no_secret(verified: Callable[[str, str], Verified],
                                       case: tuple[str, str]) -> None:
    done = verified(*case)
    shown = "\n".join([summary(done.result), done.junit, done.report_json,
                       done.reconciliation.report()])
    values = _oracle(done.deployment)
    assert [name for name, value in values.items() if value in shown] == []


@pytest.mark.parametrize("case", VERIFIED, ids=_ids)
def test_reconciliation_passes(verified: Callable[[str, str], Verified],
                               case: tuple[str, str]) -> None:
    outcome = verified(*case).reconciliation
    assert outcome.ok, outcome.report()


@pytest.mark.parametrize("case", VERIFIED, ids=_ids)
def test_signed_list_carries_the_evidence(verified: Callable[[str, str], Verified],
                                          case: tuple[str, str], tmp_path: Path) -> None:
    done = verified(*case)
    key, public = tmp_path / "signing.pem", tmp_path / "signing.pub.pem"
    generate_keys(key, public)
    output = tmp_path / "list.json"
    render_profile(done.deployment.profile_path, fmt="json", on=DAY, output=output,
                   sign_key=key, evidence=done.reconciliation.evidence)
    check_signature(output, public, None)
    assert from_json(output.read_text(), str(output)).evidence == done.reconciliation.evidence


# -- interruptions and failures (bookworm only) ----------------------------------

@pytest.fixture
def fresh_air_gapped(sandbox_factory: SandboxFactory, tmp_path: Path,
                     request: pytest.FixtureRequest) -> Deployment:
    name = f"dbo-{request.node.name[5:12]}".rstrip("-_")
    box = sandbox_factory(name.replace("_", "-"), 1, "bookworm")
    return Deployment("air-gapped", "bookworm", make_profile(tmp_path, "air-gapped", box), box)


#: task results a deploy prints before the tests cut it: well into the play, far from
#: its end
CUT_AFTER = 12
#: a task result as the deploy prints it: outcome, host and task, padded into columns
RESULT_LINE = re.compile(r"^(ok|changed) +(\S+) +(.+)$")


def _results(output: str) -> list[tuple[str, str, str]]:
    """(outcome, host, task) of every task result a deploy printed ("ok HOST TASK")."""
    found = (RESULT_LINE.match(line) for line in output.splitlines())
    return [(m[1], m[2], m[3]) for m in found if m]


def _start_deploy(d: Deployment, environ: dict[str, str] | None = None
                  ) -> tuple[subprocess.Popen[str], list[str]]:
    """``selfhost deploy`` in a session of its own (as a terminal runs it), read until it
    has printed CUT_AFTER task results; returns it running and the lines it printed."""
    command = [str(Path(sys.executable).parent / "selfhost"), "deploy", str(d.profile_path),
               "--sandbox", d.box.name, "--yes"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**env_without_secrets(), **(environ or {})},
                            start_new_session=True)
    assert proc.stdout is not None
    # A deploy that stops printing must not hang the test: the watchdog ends it.
    watchdog = threading.Timer(600, proc.kill)
    watchdog.start()
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if len(_results("\n".join(lines))) >= CUT_AFTER:
                break
    finally:
        watchdog.cancel()
    assert len(_results("\n".join(lines))) >= CUT_AFTER, \
        "the deploy ended (or went silent) before it could be cut:\n" + "\n".join(lines[-40:])
    return proc, lines


def test_deploy_killed_half_way_converges_when_run_again(fresh_air_gapped: Deployment,
                                                         tmp_path: Path) -> None:
    d = fresh_air_gapped
    proc, lines = _start_deploy(d)
    for pid in reversed(descendants(proc.pid)):
        # A short-lived child (an ssh, a dpkg) may have ended since it was listed.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)
    ran_before = {task for _, _, task in _results("\n".join(lines))}
    again = run_deploy(Deployment(d.preset, d.release, d.profile_path, d.box), tmp_path,
                       label="after-kill")
    again.require()
    # Cut mid-play: tasks that had not run yet when it was cut ran (and changed the
    # host) on the rerun.
    ran_after = [(outcome, task) for outcome, _, task in _results(again.output)
                 if task not in ran_before]
    status, body = https_get_on_host(again, _app_hosts(again)[0][0], "/healthz")
    assert ("changed" in {o for o, _ in ran_after}, status, body["status"],
            run_dirs_of(proc.pid)) == (True, 200, "ok", []), ran_after


def _left_running(marks: list[bytes], address: str) -> list[str]:
    """Processes of this machine still carrying one of ``marks`` in their environment,
    or an ssh to ``address`` (ssh rewrites the environment /proc shows)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        marked = any(v.startswith(m) for v in environ for m in marks)
        if marked or (argv and argv[0].endswith(b"ssh") and address.encode() in argv):
            found.append(f"{entry.name}: {b' '.join(argv).decode(errors='replace')[:200]}")
    return found


def test_ctrl_c_ends_the_deploy_with_130_and_leaves_no_ansible_behind(
        fresh_air_gapped: Deployment) -> None:
    from selfhost.deploy.runner import RUN_MARK_ENV, RUN_PREFIX

    d = fresh_air_gapped
    mark = f"SELFHOST_TEST_CTRL_C={os.urandom(8).hex()}"
    proc, _ = _start_deploy(d, dict([mark.split("=", 1)]))
    # What a terminal does on Ctrl-C: SIGINT to the foreground process group.
    os.killpg(proc.pid, signal.SIGINT)
    try:
        rest, _ = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    deadline = time.monotonic() + 10
    marks = [mark.encode(), f"{RUN_MARK_ENV}={RUN_PREFIX}{proc.pid}-".encode()]
    while (left := _left_running(marks, d.box.guests[0].address)) and \
            time.monotonic() < deadline:
        time.sleep(0.5)
    assert (proc.returncode, "interrupted" in rest, "Traceback" in rest, left,
            run_dirs_of(proc.pid)) == (130, True, False, [], []), rest[-3000:]


def test_host_that_is_down_is_named_and_the_run_fails_cleanly(
        fresh_air_gapped: Deployment) -> None:
    d = fresh_air_gapped
    guest = d.box.guests[0]
    assert guest.pid is not None
    os.kill(guest.pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while sandbox_mod.load(d.box.name).guests[0].state == "running":
        assert time.monotonic() < deadline, "the guest did not power off"
        time.sleep(0.5)
    result = CliRunner().invoke(main, ["deploy", str(d.profile_path), "--sandbox", d.box.name,
                                       "--yes"], env=env_without_secrets())
    assert (result.exit_code, "host chat1 is unreachable" in result.output,
            "Traceback" in result.output) == (4, True, False)
