"""What the hosts run: each host's facts from the preflight, and the release running on
the app hosts (or the upgrade that did not finish), judged before anything changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from selfhost.errors import InvalidInput
from selfhost.record_schema import RecordRelease


@dataclass(frozen=True)
class HostFacts:
    name: str
    app: bool
    database: bool
    current: str
    previous: str
    free_bytes: int
    database_bytes: int
    state: dict[str, Any]
    #: the release the host's deployment record names (None: none)
    recorded: RecordRelease | None = None


def running_release(apps: list[HostFacts], db: HostFacts | None, to: str
                    ) -> tuple[str, dict[str, Any]]:
    """The running release, and the state of an upgrade to ``to`` that did not finish
    (empty when there is none); :class:`InvalidInput` when the hosts cannot be upgraded
    as they are."""
    state = db.state if db is not None else {}
    unfinished = state if state and not state.get("finished") else {}
    versions = sorted({h.current for h in apps})
    if unfinished:
        if unfinished.get("to") != to:
            raise InvalidInput(
                f"an upgrade from {unfinished.get('from')} to {unfinished.get('to')} did not "
                f"finish: upgrade to {unfinished.get('to')} again to resume it, or run "
                "`selfhost rollback` to go back")
        stray = [h.name for h in apps if h.current not in (unfinished["from"], to)]
        if stray:
            raise InvalidInput(f"app hosts {', '.join(stray)} run neither "
                               f"{unfinished['from']} nor {to}")
        return str(unfinished["from"]), unfinished
    if "" in versions:
        missing = [h.name for h in apps if not h.current]
        raise InvalidInput(f"app hosts {', '.join(missing)} run no release of their own (the "
                           "contract probe app, or a deployment from before releases): "
                           "deploy a release first (app.release in the profile)")
    if len(versions) > 1:
        raise InvalidInput("the app hosts run different releases ("
                           + ", ".join(f"{h.name}: {h.current}" for h in apps)
                           + "): deploy first so they agree")
    return versions[0], {}
