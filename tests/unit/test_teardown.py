"""What `deploy --prune` and `selfhost destroy` decide before any host is touched:
what a changed profile dropped, the confirmation that names it, the archive
names, the destroy's no-op, refusals and its retirement entry in the archive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from customer_support import customer_profile

from selfhost.cli.app import main
from selfhost.deploy import prune, record
from selfhost.deploy.teardown import Removal
from selfhost.destroy import DestroyOptions, destroy
from selfhost.destroy.service import retired_path
from selfhost.errors import Aborted, InvalidInput
from selfhost.paths import preset_path
from selfhost.plan import Plan, plan
from selfhost.profile_io import load_profile
from selfhost.subprocessors.archive import archive_path, load
from selfhost.subprocessors.publishing import publish, retire
from selfhost.subprocessors.render import today
from selfhost.subprocessors.signing import generate_keys


def _plan(name: str) -> Plan:
    return plan(load_profile(preset_path(name)))


def _recorded(before: str) -> record.DeploymentRecord:
    return record.from_plan(_plan(before), "0.1.0")


def test_a_dropped_database_and_cache_are_what_prune_removes() -> None:
    app_host = _plan("air-gapped").hosts[0].name
    assert record.dropped(_recorded("air-gapped"), _plan("external-db")) == {
        app_host: ["postgresql", "backup", "redis"]}


def test_nothing_to_prune_without_a_record_or_a_change() -> None:
    assert record.dropped(None, _plan("split")) == {}
    assert record.dropped(_recorded("split"), _plan("split")) == {}


def test_a_host_dropped_from_the_profile_is_not_prune_s() -> None:
    # split -> air-gapped drops every host of split (the new one is chat1): all
    # of them are destroy's, and the deploy names them as left behind.
    previous, now = _recorded("split"), _plan("air-gapped")
    assert record.dropped(previous, now) == {}
    assert len(record.left_behind(previous, now)) == len(previous.hosts)


def test_the_prune_question_names_each_item_and_where_data_goes() -> None:
    the_plan = _plan("external-db")
    asked: list[str] = []
    prune.confirm({"chat1": ["postgresql", "backup"]}, the_plan, check=False, yes=False,
                  confirm=lambda q: asked.append(q) or True)
    assert "chat1: postgresql (its data is archived first in " \
           f"{the_plan.layout.prune_archive_dir})" in asked[0]
    assert "\n  chat1: backup\n" in asked[0]


def test_a_declined_or_unaskable_prune_is_exit_6() -> None:
    the_plan = _plan("external-db")
    with pytest.raises(Aborted, match="not confirmed"):
        prune.confirm({"chat1": ["redis"]}, the_plan, check=False, yes=False,
                      confirm=lambda q: False)
    with pytest.raises(Aborted, match="pass --yes"):
        prune.confirm({"chat1": ["redis"]}, the_plan, check=False, yes=False, confirm=None)
    # --yes and a dry run ask nothing
    prune.confirm({"chat1": ["redis"]}, the_plan, check=True, yes=False, confirm=None)
    prune.confirm({"chat1": ["redis"]}, the_plan, check=False, yes=True, confirm=None)


def test_prune_archives_are_named_by_the_run_s_stamp() -> None:
    the_plan = _plan("air-gapped")
    removal = Removal(components={"chat1": ["postgresql", "redis", "backup"], "x": ["app"]},
                      stamp="20261202T150000Z")
    archive_dir = the_plan.layout.prune_archive_dir
    assert removal.archives(the_plan) == {"chat1": [
        f"{archive_dir}/{the_plan.database.name}-20261202T150000Z.dump",
        f"{archive_dir}/redis-20261202T150000Z.rdb"]}


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    return customer_profile(tmp_path, preset_path("air-gapped"))


def _deployed(profile: Path) -> Path:
    the_plan = plan(load_profile(profile))
    path = record.record_path(profile, the_plan.customer.id)
    record.write(path, record.from_plan(the_plan, "0.1.0"))
    return path


def test_destroying_what_was_never_deployed_is_a_no_op(profile: Path) -> None:
    result = destroy(profile, DestroyOptions(confirmed=True))
    assert result.already is not None
    assert result.already.startswith("nothing to destroy: no deployment")


def test_a_second_destroy_says_when_the_first_was(profile: Path) -> None:
    marker = retired_path(profile, "example-air-gapped")
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"destroyed_at": "2026-12-02T15:00:00Z"}))
    code, output = _cli("destroy", str(profile), "--yes-i-really-mean-it")
    assert (code, output.strip()) == (0, (
        "nothing to destroy: the deployment of example-air-gapped was destroyed on "
        f"2026-12-02T15:00:00Z (see {marker})"))


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_destroy_without_a_terminal_or_the_flag_is_exit_6(profile: Path) -> None:
    rec = _deployed(profile)
    code, output = _cli("destroy", str(profile))
    assert code == 6
    assert "--yes-i-really-mean-it" in output
    assert rec.exists()


def test_destroy_wants_the_customer_id_typed(profile: Path) -> None:
    rec = _deployed(profile)
    with pytest.raises(Aborted, match="customer id was not typed"):
        destroy(profile, DestroyOptions(), ask=lambda q: "example-air-gapped-not")
    assert rec.exists()


def test_destroy_refuses_without_the_archive_s_key(profile: Path, tmp_path: Path) -> None:
    _deployed(profile)
    keys = generate_keys(tmp_path / "sign.key", tmp_path / "sign.pub")
    publish(profile, keys.private_key, on=today())
    with pytest.raises(InvalidInput, match="--sign-key"):
        destroy(profile, DestroyOptions(confirmed=True))


def test_a_record_host_missing_from_the_profile_is_named(profile: Path) -> None:
    the_plan = plan(load_profile(preset_path("split")))
    path = record.record_path(profile, "example-air-gapped")
    data = record.from_plan(the_plan, "0.1.0").model_dump(mode="json")
    data["customer_id"] = "example-air-gapped"
    record.write(path, record.DeploymentRecord.model_validate(data))
    missing = [h.name for h in the_plan.hosts if h.name != "chat1"]
    with pytest.raises(InvalidInput, match=f"lists {', '.join(missing)}"):
        destroy(profile, DestroyOptions(confirmed=True))


def test_retirement_is_a_signed_entry_once(profile: Path, tmp_path: Path) -> None:
    keys = generate_keys(tmp_path / "sign.key", tmp_path / "sign.pub")
    publish(profile, keys.private_key, on=today())
    path = archive_path(profile, "example-air-gapped")
    assert retire(path, keys.private_key, ["chat1"], "selfhost destroy") == 2
    assert retire(path, keys.private_key, ["chat1"], "selfhost destroy") is None
    entries = load(path)
    assert [e.content.kind for e in entries] == ["list", "retired"]
    code, output = _cli("subprocessors", "history", str(profile))
    assert code == 0, output
    assert "deployment retired: removed from chat1" in output
