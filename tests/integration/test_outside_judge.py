"""A deployed host as an outsider sees it, on one Debian 12 guest (air-gapped preset,
internal CA): sslyze against Mozilla's "modern" configuration, the HTTP headers,
what the app learns of its client, who may read /healthz; and what a deploy
leaves on the controller: no process holding a secret in its environment, after
a successful deploy and after a failed one. Last, the internal CA's certificate
lifecycle: one with 30 days or less left is reissued by the next deploy, a fresh
one is left alone (changed=0). The failing and the renewing deploy use plain
Ansible, whose ssh masters (ControlPersist) stay after the run; the others Mitogen.

One guest, deployed once; the later fixtures change it in order (a failing
deploy, a renewal, a no-op redeploy).
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from deploy_support import (
    Deployment,
    HttpsReply,
    assert_nothing_changed,
    guest_for,
    https_get_on_host,
    https_request,
    make_profile,
    run_deploy,
    secret_values,
    ssh,
    sslyze_modern,
    tls_context,
)
from process_secrets import environ_hits, leftover_hits

from conftest import SandboxFactory
from selfhost import pki
from selfhost.deploy.record import state_dir
from selfhost.plan import plan
from selfhost.profile_io import load_profile

pytestmark = pytest.mark.slow

HOST = "chat1"
FORGED = "198.51.100.23, 192.0.2.99"  # a client's claim; never sent anywhere


@pytest.fixture(scope="module")
def first(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
          ) -> Deployment:
    box = sandbox_factory("dbo-judge", 1, "bookworm", image="server")
    work = tmp_path_factory.mktemp("judge")
    deployment = Deployment("air-gapped", "bookworm", make_profile(work, "air-gapped", box),
                            box)
    run_deploy(deployment, work, label="first")
    deployment.require()
    return deployment


def _address(deployment: Deployment) -> str:
    return deployment.box.guests[0].address


def _get(deployment: Deployment, path: str, headers: dict[str, str] | None = None
         ) -> HttpsReply:
    return https_request(_address(deployment), deployment.plan.tls.domain,
                         tls_context(deployment, ssl.TLSVersion.TLSv1_3), path, headers)


def _ca_pem(deployment: Deployment) -> str:
    return (state_dir(deployment.profile_path, deployment.plan.customer.id) / "ca.crt"
            ).read_text()


def _served(deployment: Deployment) -> x509.Certificate:
    return x509.load_der_x509_certificate(_get(deployment, "/").certificate)


# -- TLS and HTTP, from outside ------------------------------------------------------

def test_sslyze_finds_the_host_compliant_with_mozilla_modern(first: Deployment,
                                                             tmp_path: Path) -> None:
    rc, verdict = sslyze_modern(_address(first), first.plan.tls.domain, _ca_pem(first),
                                tmp_path)
    assert (rc, "OK - Compliant." in verdict) == (0, True), verdict


def test_each_security_header_is_sent_once(first: Deployment) -> None:
    reply = _get(first, "/")
    counts = {name: len(reply.header(name)) for name in (
        "x-content-type-options", "strict-transport-security", "referrer-policy",
        "content-security-policy")}
    assert (reply.status, counts) == (200, dict.fromkeys(counts, 1))


def test_pages_may_not_be_framed_by_other_sites(first: Deployment) -> None:
    policy = _get(first, "/").header("content-security-policy")
    directives = {d.strip().split()[0]: d.strip().split()[1:]
                  for p in policy for d in p.split(";") if d.strip()}
    assert (directives.get("frame-ancestors"), directives.get("default-src")) == (
        ["'none'"], ["'self'"])


def test_a_forged_forwarded_for_reaches_the_app_as_the_real_address(first: Deployment) -> None:
    reply = _get(first, "/client", {"X-Forwarded-For": FORGED, "X-Real-IP": "192.0.2.98",
                                    "Forwarded": "for=192.0.2.97"})
    seen = json.loads(reply.body)
    controller = first.box.bridge_address  # where this request came from
    assert (reply.status, seen["X-Forwarded-For"], seen["X-Real-IP"], seen["Forwarded"]) == (
        200, [controller], [controller], [])


def test_healthz_is_refused_from_outside(first: Deployment) -> None:
    reply = _get(first, "/healthz")
    assert (reply.status, b"database" in reply.body) == (403, False)


def test_healthz_answers_on_the_host_itself(first: Deployment) -> None:
    status, body = https_get_on_host(first, HOST, "/healthz")
    assert (status, (body or {}).get("status")) == (200, "ok")


def test_internal_ca_certificate_lives_at_most_90_days(first: Deployment) -> None:
    cert = _served(first)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 90


# -- no secret in any process's environment -----------------------------------------

def test_no_process_holds_a_secret_after_a_deploy(first: Deployment) -> None:
    assert first.environ_hits == []  # Mitogen, the default engine


def test_the_oracle_sees_a_secret_in_an_environment(first: Deployment) -> None:
    # The scan above means something only if it finds a value that is there.
    value = secret_values(first.profile_path)["app_secret_key"]
    since = time.time()
    # Between fork and exec the child's /proc environ is still this process's: the
    # scan starts once the holder says it runs (its own environment in place).
    holder = subprocess.Popen(["sh", "-c", "echo up; exec sleep 30"], env={"CARRIES": value},
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "up\n"
        hits = environ_hits({"app_secret_key": value}) + leftover_hits(
            {"app_secret_key": value}, since)
    finally:
        holder.kill()
        holder.wait()
    assert sorted(h.split(" (")[0] for h in hits if f" {holder.pid} " in h) == [
        f"environ of {holder.pid}", f"memory of {holder.pid}"]


@pytest.fixture(scope="module")
def failed(first: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """A deploy that fails on the host half-way, after Ansible's ssh connections are
    up: the TLS staging directory is replaced by a file."""
    guest = guest_for(first, HOST)
    done = ssh(first.box, guest, "sh", "-ec",
               "rm -rf /etc/backend-chat/tls && touch /etc/backend-chat/tls")
    assert done.returncode == 0, done.stderr
    again = Deployment(first.preset, first.release, first.profile_path, first.box)
    # plain Ansible: its ssh masters (ControlPersist) outlive the run
    run_deploy(again, tmp_path_factory.mktemp("judge-failed"), label="failed", engine="plain")
    done = ssh(first.box, guest, "rm", "-f", "/etc/backend-chat/tls")
    assert done.returncode == 0, done.stderr
    return again


def test_failed_deploy_names_the_task(failed: Deployment) -> None:
    assert (failed.result, "TLS staging directory" in (failed.error or "")) == (None, True)


def test_no_process_holds_a_secret_after_a_failed_deploy(failed: Deployment) -> None:
    assert failed.environ_hits == []


# -- the internal CA's certificates: renewed when due, untouched otherwise -----------

@pytest.fixture(scope="module")
def renewed(failed: Deployment, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[x509.Certificate, Deployment]:
    """(the planted certificate with 20 days left, the deploy after it)."""
    the_plan = plan(load_profile(failed.profile_path))
    ca_key = secret_values(failed.profile_path)["ca_key"]
    stored = state_dir(failed.profile_path, the_plan.customer.id)
    (stored / "hosts" / f"{HOST}.crt").unlink()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pki, "HOST_VALIDITY", dt.timedelta(days=20))
        planted = pki.issue(the_plan, ca_key, stored).host_certs[HOST]
    again = Deployment(failed.preset, failed.release, failed.profile_path, failed.box)
    run_deploy(again, tmp_path_factory.mktemp("judge-renewed"), label="renewed", engine="plain")
    return x509.load_pem_x509_certificate(planted.encode()), again


def test_certificate_due_for_renewal_is_reissued_by_deploy(
        renewed: tuple[x509.Certificate, Deployment]) -> None:
    planted, deployment = renewed
    deployment.require()
    served = _served(deployment)
    left = served.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert (served.serial_number != planted.serial_number, left > dt.timedelta(days=80),
            deployment.require().changed > 0) == (True, True, True)


def test_no_process_holds_a_secret_after_a_plain_ansible_deploy(
        renewed: tuple[x509.Certificate, Deployment]) -> None:
    assert renewed[1].environ_hits == []


def test_fresh_certificate_is_left_alone(renewed: tuple[x509.Certificate, Deployment],
                                         tmp_path: Path) -> None:
    _, before = renewed
    serial = _served(before).serial_number
    again = run_deploy(Deployment(before.preset, before.release, before.profile_path,
                                  before.box), tmp_path, label="settled")
    assert_nothing_changed(again.require())
    assert _served(again).serial_number == serial
