"""A backup keeps the files its profile names beside it, and a restore puts them back
where the unpacked profile looks for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfhost.backup.service import profile_named_files
from selfhost.errors import InvalidInput
from selfhost.init import InitRequest, run_init

PASSPHRASE = "profile-files-passphrase-1234"
OVERLAY = "schema_version: 1\nvendors: {}\n"


def _profile(site: Path, *sets: str) -> Path:
    site.mkdir(parents=True, exist_ok=True)
    (site / "lists").mkdir(exist_ok=True)
    (site / "lists" / "overlay.yaml").write_text(OVERLAY)
    path = site / "acme.yaml"
    run_init(InitRequest(output=path, preset="air-gapped", sets=sets, force=True,
                         passphrase=PASSPHRASE, environ={}), None, None)
    return path


def test_relative_files_are_members_at_their_relative_path(tmp_path: Path) -> None:
    profile = _profile(tmp_path / "site", "catalog_overlay=lists/overlay.yaml")
    members, outside = profile_named_files(profile)
    assert members == {"controller/profile/files/lists/overlay.yaml":
                       tmp_path / "site" / "lists" / "overlay.yaml"}
    assert outside == []


def test_absolute_and_escaping_paths_are_named_as_left_out(tmp_path: Path) -> None:
    elsewhere = tmp_path / "shared" / "overlay.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(OVERLAY)
    profile = _profile(tmp_path / "site", f"catalog_overlay={elsewhere}")
    assert profile_named_files(profile) == ({}, [f"catalog_overlay ({elsewhere})"])
    profile = _profile(tmp_path / "site", "catalog_overlay=../shared/overlay.yaml")
    assert profile_named_files(profile) == ({}, ["catalog_overlay (../shared/overlay.yaml)"])


def test_a_named_file_that_is_gone_is_refused_naming_the_field(tmp_path: Path) -> None:
    profile = _profile(tmp_path / "site", "catalog_overlay=lists/overlay.yaml")
    (tmp_path / "site" / "lists" / "overlay.yaml").unlink()
    with pytest.raises(InvalidInput) as caught:
        profile_named_files(profile)
    assert caught.value.message.startswith(f"{profile}: catalog_overlay: ")
    assert "is not a file" in caught.value.message
