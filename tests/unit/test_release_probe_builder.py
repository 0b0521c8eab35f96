"""The fixture builder's probe releases: v1, v2, the broken v2 and the unhealthy v2
are signed releases whose manifests say what the tests rely on."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from release_support import KINDS, PROBE_DIR, PROBE_FILES, Kind, make_keys, members, probe_release
from selfhost.cli import main


@pytest.mark.parametrize("kind", KINDS)
def test_each_probe_release_is_signed_and_carries_the_probe(tmp_path: Path,
                                                            kind: Kind) -> None:
    keys = make_keys(tmp_path)
    tarball = probe_release(tmp_path, kind, keys)
    result = CliRunner().invoke(main, ["release", "verify", str(tarball), "--trusted-key",
                                       str(keys.public), "--json"])
    assert (result.exit_code, json.loads(result.output)["ok"]) == (0, True)
    entries = dict(members(tarball))
    with tarfile.open(fileobj=io.BytesIO(entries["payload.tar"])) as payload:
        files = {m.name: payload.extractfile(m).read() for m in payload  # type: ignore[union-attr]
                 if m.isreg()}
    assert files == {name: (PROBE_DIR / name).read_bytes() for name in PROBE_FILES}


def test_the_versions_differ_where_the_upgrade_tests_need_them(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    seen = {}
    for kind in KINDS:
        (tmp_path / kind).mkdir()
        manifest = json.loads(dict(members(probe_release(tmp_path / kind, kind, keys)))[
            "selfhost-release.json"])
        seen[kind] = (manifest["version"], manifest["upgrade_from"],
                      [m["run"][1:] for m in manifest["migrations"]], manifest["run"][2:])
    assert seen == {
        "v1": ("1.0", [], [["contract_probe_migrate.py", "--to", "1"]],
               ["--release-version", "1.0", "--schema-version", "1"]),
        "v2": ("2.0", ["1.0"], [["contract_probe_migrate.py", "--to", "2"]],
               ["--release-version", "2.0", "--schema-version", "2"]),
        "v2-broken-migration": ("2.0", ["1.0"],
                                [["contract_probe_migrate.py", "--to", "2", "--fail"]],
                                ["--release-version", "2.0", "--schema-version", "2"]),
        "v2-unhealthy": ("2.0", ["1.0"], [["contract_probe_migrate.py", "--to", "2"]],
                         ["--release-version", "2.0", "--schema-version", "3"]),
    }


def test_the_upgrade_path_of_v2(tmp_path: Path) -> None:
    from selfhost.release import upgrade_refusal
    from selfhost.release.manifest import parse_manifest

    keys = make_keys(tmp_path)
    v2 = parse_manifest(dict(members(probe_release(tmp_path, "v2", keys)))[
        "selfhost-release.json"])
    assert [upgrade_refusal(v2, running) for running in (None, "1.0", "2.0", "0.9")] == [
        None, None, None,
        "contract-probe 2.0 does not upgrade from 0.9 (it upgrades from 1.0)"]
    stopped = v2.model_copy(update={"required_stops": ["1.0"]})
    assert upgrade_refusal(stopped, "0.9") == (
        "contract-probe 2.0 does not upgrade from 0.9 (it upgrades from 1.0); install the "
        "required stop 1.0 first")
