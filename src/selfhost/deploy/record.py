"""The deployment record: what was deployed, kept beside the profile.

Every host carries a record in ``HostLayout.deployment_record`` (written by the
playbook's record role); the copy here, in the profile's state dir, says what was
last deployed from this profile. Both follow one schema,
``selfhost.record_schema.DeploymentRecord``. Beside it, ``subprocessors.json`` is
the list as deployed, which the next ``deploy --check`` compares the new Plan's
list with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from selfhost import paths
from selfhost.atomic import write_atomic
from selfhost.errors import InvalidInput
from selfhost.plan import Plan
from selfhost.record_schema import DeploymentRecord, RecordRelease, build
from selfhost.subprocessors.document import SubprocessorList, from_json

RECORD_NAME = "deployment.json"
#: the name of a release recorded by its version alone (the manifest's default name)
UNNAMED_RELEASE = "backend-chat"
LIST_NAME = "subprocessors.json"


def left_behind(previous: DeploymentRecord | None, plan: Plan) -> list[str]:
    """What the last deployment put on hosts that the new Plan no longer uses.

    A deploy never removes a component or touches a host the profile dropped: the
    data there (a database, a cache) may not have moved yet. It says so instead.
    """
    if previous is None:
        return []
    now = {h.name: set(h.components) for h in plan.hosts}
    out = []
    for host in previous.hosts:
        if host.name not in now:
            out.append(f"{host.name} ({host.address}) is no longer in the profile; it was "
                       f"left as it was, still running {', '.join(host.components)}")
            continue
        for component in host.components:
            if component not in now[host.name]:
                out.append(f"{host.name}: {component} is no longer part of the deployment; "
                           "it was left installed with its data (`selfhost deploy --prune` "
                           "removes it once nothing needs it)")
    return out


def dropped(previous: DeploymentRecord | None, plan: Plan) -> dict[str, list[str]]:
    """Host -> the components the last deployment put there that the new Plan no
    longer runs there, for the hosts still in the Plan (what ``deploy --prune``
    removes; a host dropped from the profile is ``selfhost destroy``'s)."""
    if previous is None:
        return {}
    now = {h.name: set(h.components) for h in plan.hosts}
    out = {host.name: [c for c in host.components if c not in now[host.name]]
           for host in previous.hosts if host.name in now}
    return {name: comps for name, comps in out.items() if comps}


def state_dir(profile_path: Path, customer_id: str) -> Path:
    """``<profile dir>/.selfhost/<customer id>``: certificates and the record."""
    return paths.state_dir(profile_path, customer_id)


def record_path(profile_path: Path, customer_id: str) -> Path:
    return state_dir(profile_path, customer_id) / RECORD_NAME


def release_of(manifest: Mapping[str, Any]) -> RecordRelease | None:
    """The release a checked manifest (as the playbook gets it) makes run; None for
    the empty manifest of the contract probe app."""
    if not manifest:
        return None
    return RecordRelease(name=str(manifest["name"]), version=str(manifest["version"]))


def from_plan(plan: Plan, tool_version: str, now: datetime | None = None, *,
              release: RecordRelease | None = None) -> DeploymentRecord:
    """The controller's copy: the deployment as a whole, on no host; ``release`` is
    the release that runs (None: the contract probe app, without a release artifact)."""
    extra = {"release": release.model_dump()} if release is not None else {}
    return build({**extra,
        "host": None,
        "customer_id": plan.customer.id,
        "profile_fingerprint": plan.profile_fingerprint,
        "tool_version": tool_version,
        "topology": plan.topology,
        "hosts": [{"name": h.name, "address": h.address, "components": list(h.components)}
                  for h in plan.hosts],
        "components": [],
        "egress_allowlist": [str(e) for e in plan.egress_allowlist],
        "third_parties": [{"id": t.id, "category": t.category} for t in plan.third_parties],
        "env_keys": [],
    }, now)


def _from_first_format(data: dict[str, Any]) -> DeploymentRecord:
    """A record as selfhost wrote it before the host and controller copies shared a
    schema (``schema_version: 1``), read so that an upgrade still knows what it left."""
    hosts = data["hosts"]
    return build({
        "host": None,
        "customer_id": data["customer_id"],
        "profile_fingerprint": data["profile_fingerprint"],
        "tool_version": data["tool_version"],
        # Only a split deployment has hosts without the app.
        "topology": "split" if any("app" not in h["components"] for h in hosts) else "all-in-one",
        "hosts": hosts,
        "components": [],
        "egress_allowlist": [f"{e['host']}:{e['port']}" for e in data["egress_allowlist"]],
        "third_parties": [{"id": t["id"], "category": t["category"]}
                          for t in data["third_parties"]],
        "env_keys": [],
    }, datetime.fromisoformat(data["time"]))


def read(path: Path) -> DeploymentRecord | None:
    """The record at ``path``; ``None`` before the first deployment."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidInput(f"cannot read the deployment record {path} "
                           f"({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
        if isinstance(data, dict) and data.get("schema_version") == 1:
            return _from_first_format(data)
        if isinstance(data, dict) and isinstance(data.get("release"), str):
            # the controller's copy named only the version before it named the release
            data["release"] = {"name": UNNAMED_RELEASE, "version": data["release"]}
        return DeploymentRecord.model_validate(data)
    except (ValueError, ValidationError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{path} is not a deployment record ({exc.__class__.__name__}); "
                           "move it away: the next deploy writes a fresh one") from None


def write(path: Path, record: DeploymentRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = json.dumps(record.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    write_atomic(path, text.encode(), mode=0o644)


def list_path(profile_path: Path, customer_id: str) -> Path:
    return state_dir(profile_path, customer_id) / LIST_NAME


def read_list(path: Path) -> SubprocessorList | None:
    """The subprocessor list last deployed; ``None`` before the first deployment."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path} ({exc.strerror or exc})") from None
    return from_json(text, str(path))


def write_list(path: Path, doc: SubprocessorList) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, doc.to_json().encode(), mode=0o644)
