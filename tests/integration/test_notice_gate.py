"""The notice gate on a real guest: a subprocessor change is deployed only once its
notice is effective, or with a recorded override.

One Debian 12 guest, two real deploys. The customer's archive starts with the
air-gapped list (no subprocessor); the profile adds Sentry. Without a notice the
deploy is refused and the guest stays untouched; with a notice sent 31 days ago
(effective yesterday) it deploys and the app gets Sentry's DSN. Then the profile
adds Cloudflare, whose notice was sent today: refused, naming the notice, then
deployed with ``--override-notice``, whose reason the archive records, signed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from deploy_support import PASSPHRASE, SUPPLIED, Deployment, app_env_keys, ssh
from ruamel.yaml import YAML

from conftest import SandboxFactory
from selfhost.cli.app import main
from selfhost.deploy import DeployOptions, DeployResult, deploy
from selfhost.errors import Aborted
from selfhost.init import InitRequest, run_init
from selfhost.plan import APP_ENV_FILE
from selfhost.sandbox import Sandbox
from selfhost.subprocessors.notices import record_notice
from selfhost.subprocessors.publishing import publish
from selfhost.subprocessors.signing import generate_keys
from selfhost.workflows.demo import address_sets

pytestmark = pytest.mark.slow

REASON = "CDN needed at once to absorb a denial-of-service attack"


def _edit(path: Path, **sections: object) -> None:
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    data.update(sections)
    YAML().dump(data, path)


@dataclass
class Gated:
    box: Sandbox
    profile: Path
    public_key: Path
    #: the refusal before any notice, and whether the guest had app.env after it
    unannounced: Aborted
    touched_by_refusal: bool
    effective: DeployResult
    effective_said: list[str]
    pending: Aborted
    overridden: DeployResult


@pytest.fixture(scope="module")
def gated(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
          ) -> Gated:
    work = tmp_path_factory.mktemp("notices")
    box = sandbox_factory("dbo-notices", 1, "bookworm", image="server")
    profile = work / "customer.yaml"
    environ = {f"SELFHOST_{k.upper()}": v for k, v in SUPPLIED.items()}
    run_init(InitRequest(output=profile, preset="air-gapped",
                         sets=(*address_sets("air-gapped", [box.guests[0].address]),
                               "monitoring.provider=sentry"),
                         force=True, passphrase=PASSPHRASE, environ=environ), None, None)
    keys = generate_keys(work / "sign.key", work / "sign.pub")
    today = datetime.now(UTC).date()
    # the list in force: the same customer before Sentry
    before = work / "before.yaml"
    shutil.copy(profile, before)
    _edit(before, monitoring={"provider": "none"})
    publish(before, keys.private_key, on=today - timedelta(days=40))

    options = DeployOptions(sandbox=box.name, yes=True, passphrase=PASSPHRASE)
    with pytest.raises(Aborted) as unannounced:
        deploy(profile, options)
    touched = ssh(box, box.guests[0].name, "test", "-e", APP_ENV_FILE).returncode == 0

    record_notice(profile, keys.private_key, on=today - timedelta(days=31))
    said: list[str] = []
    effective = deploy(profile, options, say=said.append)

    _edit(profile, cdn={"provider": "cloudflare"})
    record_notice(profile, keys.private_key, on=today)
    with pytest.raises(Aborted) as pending:
        deploy(profile, options)
    overridden = deploy(profile, DeployOptions(
        sandbox=box.name, yes=True, passphrase=PASSPHRASE, override_notice=REASON,
        sign_key=keys.private_key))
    return Gated(box, profile, keys.public_key, unannounced.value, touched, effective, said,
                 pending.value, overridden)


def _deployment(gated: Gated, result: DeployResult) -> Deployment:
    return Deployment(preset="air-gapped", release="bookworm", profile_path=gated.profile,
                      box=gated.box, result=result)


def test_an_unannounced_change_is_refused_and_touches_no_host(gated: Gated) -> None:
    assert gated.unannounced.exit_code == 6
    assert "+ sentry (Sentry): added" in gated.unannounced.message
    assert not gated.touched_by_refusal


def test_an_effective_notice_deploys_the_change(gated: Gated) -> None:
    assert gated.effective.changed > 0
    assert any(line.startswith("notice gate: notice 2 of ") and line.endswith(": effective")
               for line in gated.effective_said), gated.effective_said
    keys = app_env_keys(_deployment(gated, gated.effective), "chat1")
    assert "SENTRY_DSN" in keys


def test_a_pending_notice_is_named(gated: Gated) -> None:
    assert gated.pending.exit_code == 6
    assert "+ cloudflare (Cloudflare): added" in gated.pending.message
    assert f"notice 3 of {datetime.now(UTC).date()}" in gated.pending.message


def test_the_override_deploys_and_is_recorded(gated: Gated) -> None:
    assert gated.overridden.override_entry == 4
    assert [p.id for p in gated.overridden.plan.third_parties] == ["sentry", "cloudflare"]
    history = CliRunner().invoke(main, ["subprocessors", "history", str(gated.profile),
                                        "--json"])
    assert history.exit_code == 0, history.output
    last = json.loads(history.stdout)[-1]
    assert last["kind"] == "override"
    assert last["changes"] == [f"deployed before the change's notice was effective "
                               f"(notice 3); reason: {REASON}"]
    check = CliRunner().invoke(main, ["subprocessors", "archive-check", str(gated.profile),
                                      "--public-key", str(gated.public_key)])
    assert check.exit_code == 0, check.output
    rendered = CliRunner().invoke(main, ["subprocessors", "render", str(gated.profile),
                                         "--format", "json"])
    active = {s["id"]: s["activation"] for s in json.loads(rendered.stdout)["subprocessors"]}
    assert active["sentry"]["kind"] == "notice"
    assert active["cloudflare"]["kind"] == "override"
    assert REASON in active["cloudflare"]["detail"]
