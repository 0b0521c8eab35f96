"""A signed release deployed with `selfhost deploy` onto a real guest: the contract
probe as v1, then v2 on the same host, /healthz reporting the release it runs;
a redeploy changes nothing; a tampered release is refused with the host untouched."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from deploy_support import (
    PASSPHRASE,
    Deployment,
    release_profile,
    run_deploy,
    ssh,
)

from conftest import SandboxFactory
from release_support import HEALTHZ, make_keys, members, probe_release, write_tarball
from selfhost.deploy import DeployOptions, deploy
from selfhost.errors import ValidationFailed

pytestmark = [pytest.mark.integration, pytest.mark.slow]



def _healthz(deployment: Deployment) -> tuple[int, dict[str, object]]:
    done = ssh(deployment.box, deployment.box.guests[0].name, "python3", "-c", HEALTHZ)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    return answer["status"], answer["report"]


def test_v1_then_v2_deploy_signed_and_a_tampered_one_is_refused(
        sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    box = sandbox_factory("rel-deploy", 1, "bookworm", image="server")
    keys = make_keys(tmp_path)
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    v1 = probe_release(tmp_path / "v1", "v1", keys)
    v2 = probe_release(tmp_path / "v2", "v2", keys)
    release = tmp_path / "release.tar.gz"
    shutil.copyfile(v1, release)
    profile = release_profile(tmp_path, box, keys.public)
    deployment = Deployment("air-gapped", "bookworm", profile, box)

    run_deploy(deployment, tmp_path, label="v1").require()
    status, report = _healthz(deployment)
    # the migration is the upgrade's step: a fresh deploy runs the app on an empty schema
    assert (status, report["release"], report["schema_version"]) == (503, "1.0", None)

    shutil.copyfile(v2, release)
    run_deploy(deployment, tmp_path, label="v2").require()
    status, report = _healthz(deployment)
    assert (report["release"], report["checks"]["schema"]["expected"]) == ("2.0", 2)
    current = ssh(box, box.guests[0].name, "readlink", "/opt/backend-chat/current")
    assert current.stdout.strip().startswith("/opt/backend-chat/releases/")

    again = run_deploy(deployment, tmp_path, label="again").require()
    assert again.changed == 0
    assert deployment.leaks() == []

    entries = members(v1)
    payload = bytearray(entries[2][1])
    payload[payload.index(b"APP_NAME")] ^= 1
    write_tarball(release, [entries[0], entries[1], ("payload.tar", bytes(payload))])
    with pytest.raises(ValidationFailed) as refused:
        deploy(profile, DeployOptions(sandbox=box.name, yes=True, passphrase=PASSPHRASE))
    assert "payload.tar does not match the sha256 and size the signed manifest" in \
        refused.value.message
    assert _healthz(deployment)[1]["release"] == "2.0"
