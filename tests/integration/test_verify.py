"""verify and reconciliation on real sandbox hosts: external-db with its customer-managed
services, us-openai and its change path.

The other presets are verified on test_deploy's deployments, and every check is failed
on purpose in test_verify_tamperings; each preset here is deployed once per module, the
change path's steps then supersede the us-openai deployment.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import external_services
import pytest

from selfhost import sandbox
from selfhost.deploy import DeployOptions
from selfhost.deploy import deploy as run_deploy
from selfhost.deploy.service import DeployResult
from selfhost.init import InitRequest, run_init
from selfhost.models import all_hosts
from selfhost.paths import preset_path
from selfhost.profile_io import load_profile
from selfhost.secrets import load_secrets
from selfhost.subprocessors.document import from_json
from selfhost.subprocessors.render import render_profile
from selfhost.subprocessors.signing import check_signature, generate_keys
from selfhost.verify import VerifyResult, summary, verify
from selfhost.verify.reconcile import Reconciliation, reconcile

pytestmark = pytest.mark.slow

PASSPHRASE = "verify-integration-passphrase"
SUPPLIED = {
    "SELFHOST_OPENAI_API_KEY": "sk-test-openai-key-000000000000",
    "SELFHOST_ANTHROPIC_API_KEY": "sk-ant-test-key-0000000000000",
    "SELFHOST_EMAIL_PASSWORD": "SG.test-email-password-000000",
    "SELFHOST_SENTRY_DSN": "https://key000@o1.ingest.us.sentry.io/1",
    "SELFHOST_DATABASE_PASSWORD": "external-db-password-000000",
    "SELFHOST_CACHE_PASSWORD": "external-cache-password-00000",
}
DAY = date(2026, 11, 27)

SandboxFactory = Callable[..., sandbox.Sandbox]


@dataclass
class Deployed:
    profile: Path
    box: sandbox.Sandbox
    result: DeployResult

    def verify(self, tmp: Path | None = None) -> VerifyResult:
        junit = tmp / "junit.xml" if tmp else None
        json_path = tmp / "report.json" if tmp else None
        return verify(self.profile, sandbox=self.box.name, junit=junit, json_path=json_path)

    def reconcile(self) -> Reconciliation:
        return reconcile(self.profile, sandbox=self.box.name)

    def on_host(self, script: str, guest: int = 0) -> str:
        done = subprocess.run(self.box.ssh_command(self.box.guests[guest], "bash", "-c",
                                                   script),
                              capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            pytest.fail(f"on {self.box.guests[guest].name}: {script!r} failed: "
                        f"{done.stderr.strip()}", pytrace=False)
        return done.stdout


def init_profile(path: Path, preset: str, *sets: str) -> Path:
    run_init(InitRequest(output=path, preset=preset, sets=sets, force=True,
                         passphrase=PASSPHRASE, environ=SUPPLIED), None, None)
    return path


def deploy(profile: Path, box: sandbox.Sandbox, *, check: bool = False) -> DeployResult:
    return run_deploy(profile, DeployOptions(sandbox=box.name, yes=True, check=check,
                                             passphrase=PASSPHRASE))


def deployed(factory: SandboxFactory, tmp: Path, preset: str, name: str,
             release: str | None = None) -> Deployed:
    if preset == "external-db":
        return deployed_external(factory, tmp, name)
    hosts = len(all_hosts(load_profile(preset_path(preset))))
    box = factory(name, hosts=hosts, release=release)
    profile = init_profile(tmp / f"{preset}.yaml", preset)
    return Deployed(profile, box, deploy(profile, box))


def deployed_external(factory: SandboxFactory, tmp: Path, name: str) -> Deployed:
    """external-db with its customer-managed PostgreSQL and Redis on a second guest."""
    box = factory(name, hosts=2)
    app, data = box.guests[0], box.guests[1]
    profile = init_profile(
        tmp / "external-db.yaml", "external-db",
        f"database.dsn=postgresql://backendchat@{data.address}:5432/backendchat"
        "?sslmode=verify-full&sslrootcert=/etc/backend-chat/ca.crt",
        f"cache.url=rediss://backendchat@{data.address}:6380/0")
    result = deploy(profile, box)
    d = Deployed(profile, box, result)
    values = load_secrets(profile, PASSPHRASE)
    external_services.stand_up(
        box, data, app_address=app.address, ca_key_pem=values["ca_key"],
        ca_cert_pem=d.on_host("cat /etc/backend-chat/ca.crt"),
        db_password=SUPPLIED["SELFHOST_DATABASE_PASSWORD"],
        cache_password=SUPPLIED["SELFHOST_CACHE_PASSWORD"])
    return d


def failures(result: VerifyResult) -> str:
    return "\n".join(f"{r.check.key}: {r.found}" for r in result.failures)


# -- every preset: deploy, verify, reconcile --------------------------------------------

#: deployment key -> (preset, Debian release, sandbox name); bookworm unless named
PRESETS = {
    "external-db": ("external-db", None, "v-ext"),
    "us-openai": ("us-openai", None, "v-us"),
}


@pytest.fixture(scope="module")
def deployments(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
                ) -> Callable[[str], Deployed]:
    """Each preset deployed once for the whole module; the tampering and change-path
    tests below reuse these deployments (they undo or supersede what they change)."""
    cache: dict[str, Deployed] = {}

    def get(key: str) -> Deployed:
        if key not in cache:
            preset, release, name = PRESETS[key]
            cache[key] = deployed(sandbox_factory, tmp_path_factory.mktemp(key), preset, name,
                                  release)
        return cache[key]
    return get


@pytest.fixture(scope="module", params=sorted(PRESETS))
def preset_deployment(request: pytest.FixtureRequest,
                      deployments: Callable[[str], Deployed]) -> Deployed:
    return deployments(request.param)


def test_verify_passes_every_check(preset_deployment: Deployed, tmp_path: Path) -> None:
    result = preset_deployment.verify(tmp_path)
    assert result.ok, failures(result)


def test_verify_writes_junit_with_one_case_per_check(preset_deployment: Deployed,
                                                     tmp_path: Path) -> None:
    result = preset_deployment.verify(tmp_path)
    text = (tmp_path / "junit.xml").read_text()
    assert text.count("<testcase ") == len(result.results)


def test_reports_hold_no_secret(preset_deployment: Deployed, tmp_path: Path) -> None:
    result = preset_deployment.verify(tmp_path)
    shown = "\n".join([summary(result), (tmp_path / "junit.xml").read_text(),
                       (tmp_path / "report.json").read_text(),
                       preset_deployment.reconcile().report()])
    values = load_secrets(preset_deployment.profile, PASSPHRASE)
    assert [name for name, value in values.items() if value in shown] == []


def test_reconciliation_passes(preset_deployment: Deployed) -> None:
    outcome = preset_deployment.reconcile()
    assert outcome.ok, outcome.report()


def test_signed_list_carries_the_evidence(preset_deployment: Deployed, tmp_path: Path
                                         ) -> None:
    key, public = tmp_path / "signing.pem", tmp_path / "signing.pub.pem"
    generate_keys(key, public)
    evidence = preset_deployment.reconcile().evidence
    output = tmp_path / "list.json"
    render_profile(preset_deployment.profile, fmt="json", on=DAY, output=output,
                   sign_key=key, evidence=evidence)
    check_signature(output, public, None)
    assert from_json(output.read_text(), str(output)).evidence == evidence


# -- the change path: us-openai -> AI disabled, no e-mail -> Anthropic --------------------

@dataclass(frozen=True)
class Step:
    """One step of the change path, read off the hosts right after that step's deploy, so
    a test sees its own step's state and never whatever a later step left on the hosts."""

    preview: list[str]
    failures: str
    verified: bool
    reconciliation: str
    reconciled: bool
    env_and_allowlist: str


def _step(d: Deployed, *sets: str) -> Step:
    init_profile(d.profile, "us-openai", *sets)
    preview = deploy(d.profile, d.box, check=True).delta.lines()
    deploy(d.profile, d.box)  # raises DeployFailed when a host fails
    result, outcome = d.verify(), d.reconcile()
    return Step(preview, failures(result), result.ok, outcome.report(), outcome.ok,
                d.on_host("cut -d= -f1 /etc/backend-chat/app.env; "
                          "grep dstdomain /etc/squid/squid.conf || true"))


@pytest.fixture(scope="module")
def change_path(deployments: Callable[[str], Deployed]) -> Deployed:
    # Runs after the preset tests: from here on the us-openai deployment changes.
    return deployments("us-openai")


@pytest.fixture(scope="module")
def ai_disabled(change_path: Deployed) -> Step:
    return _step(change_path, "ai.provider=disabled", "ai.models=[]", "email.provider=none")


@pytest.fixture(scope="module")
def anthropic_added(ai_disabled: Step, change_path: Deployed) -> Step:
    # Starts from the state ai_disabled left (it is requested first, so it has run).
    return _step(change_path, "ai.provider=anthropic", "ai.models=[claude-3-haiku]",
                 "email.provider=none")


def test_change_path_removes_openai_and_sendgrid(ai_disabled: Step) -> None:
    assert ai_disabled.preview == ["- openai (OpenAI): removed",
                                   "- sendgrid (SendGrid): removed"]


def test_change_path_disabled_verifies(ai_disabled: Step) -> None:
    assert ai_disabled.verified, ai_disabled.failures


def test_change_path_disabled_reconciles(ai_disabled: Step) -> None:
    assert ai_disabled.reconciled, ai_disabled.reconciliation


@pytest.mark.parametrize("leftover", ["OPENAI_API_KEY", "SMTP_URL", "api.openai.com",
                                      "smtp.sendgrid.net"])
def test_change_path_leaves_nothing_of_the_removed(ai_disabled: Step, leftover: str) -> None:
    assert leftover not in ai_disabled.env_and_allowlist


def test_change_path_adds_anthropic(anthropic_added: Step) -> None:
    assert anthropic_added.preview == ["+ anthropic (Anthropic): added"]


def test_change_path_anthropic_verifies(anthropic_added: Step) -> None:
    assert anthropic_added.verified, anthropic_added.failures


def test_change_path_anthropic_reconciles(anthropic_added: Step) -> None:
    assert anthropic_added.reconciled, anthropic_added.reconciliation


@pytest.mark.parametrize(("wired", "present"), [
    ("ANTHROPIC_API_KEY", True), ("api.anthropic.com", True), ("OPENAI_API_KEY", False),
    ("api.openai.com", False), ("smtp.sendgrid.net", False),
])
def test_change_path_wires_only_anthropic(anthropic_added: Step, wired: str,
                                          present: bool) -> None:
    assert (wired in anthropic_added.env_and_allowlist) is present
