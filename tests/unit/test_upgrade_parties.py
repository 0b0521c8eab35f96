"""What an upgrade would change in the subprocessors: the profile's list against the one
recorded for the customer; a real upgrade refuses any change."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from selfhost.deploy import record
from selfhost.errors import InvalidInput
from selfhost.models import Profile
from selfhost.paths import preset_path
from selfhost.plan import plan
from selfhost.profile_io import load_profile
from selfhost.subprocessors.document import build_document
from selfhost.upgrade import parties

ON = date(2026, 12, 1)


def _profile(**sections: dict[str, Any]) -> Profile:
    profile = load_profile(preset_path("us-openai"))
    for name, values in sections.items():
        profile = profile.model_copy(
            update={name: getattr(profile, name).model_copy(update=values)})
    return profile


def _change(before: Profile, after: Profile) -> parties.PartyChange:
    return parties.difference(Path("subprocessors.json"),
                              build_document(plan(before), on=ON),
                              build_document(plan(after), on=ON), ON)


def test_the_same_subprocessors_are_no_change() -> None:
    change = _change(_profile(), _profile())
    assert (change.changed, change.summary()) == (False, ["no subprocessor change"])
    parties.refuse_changed(change)


def test_an_added_subprocessor_is_named_and_refused() -> None:
    change = _change(_profile(monitoring={"provider": "none"}), _profile())
    assert change.summary() == ["+ sentry (Sentry): added"]
    with pytest.raises(InvalidInput, match=r"\+ sentry .*run `selfhost deploy` first") as no:
        parties.refuse_changed(change)
    assert no.value.exit_code == 2


def test_a_removed_subprocessor_is_named_and_refused() -> None:
    change = _change(_profile(), _profile(monitoring={"provider": "none"}))
    assert change.summary() == ["- sentry (Sentry): removed"]
    with pytest.raises(InvalidInput, match=r"- sentry "):
        parties.refuse_changed(change)


def test_a_changed_subprocessor_names_its_fields_and_is_refused() -> None:
    change = _change(_profile(), _profile(monitoring={"sentry_region": "de"}))
    assert len(change.summary()) == 1
    assert change.summary()[0].startswith("~ sentry (Sentry): ")
    assert "ingest.de.sentry.io" in change.summary()[0]
    with pytest.raises(InvalidInput, match=r"~ sentry "):
        parties.refuse_changed(change)


def test_without_a_recorded_list_the_change_is_unknown_and_refused() -> None:
    change = parties.difference(None, None, build_document(plan(_profile()), on=ON), ON)
    assert change.changed
    assert "no subprocessor list is recorded" in change.summary()[0]
    with pytest.raises(InvalidInput, match="no subprocessor list is recorded"):
        parties.refuse_changed(change)


def test_the_profile_is_compared_with_the_list_deploy_recorded(tmp_path: Path) -> None:
    profile_path = tmp_path / "customer.yaml"
    shutil.copyfile(preset_path("us-openai"), profile_path)
    the_plan = plan(load_profile(profile_path))
    assert parties.of_profile(profile_path, the_plan, ON).baseline is None
    deployed = build_document(plan(_profile(ai={"provider": "anthropic"})), on=ON)
    record.write_list(record.list_path(profile_path, the_plan.customer.id), deployed)
    change = parties.of_profile(profile_path, the_plan, ON)
    assert change.baseline == record.list_path(profile_path, the_plan.customer.id)
    assert sorted(change.summary()) == ["+ openai (OpenAI): added",
                                        "- anthropic (Anthropic): removed"]
