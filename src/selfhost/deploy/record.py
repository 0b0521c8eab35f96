"""The deployment record: what was deployed, kept beside the profile.

Every host gets the same facts in ``/etc/backend-chat/deployment.json`` (written
by the playbook); the copy here, in the profile's state dir, says what was last
deployed from this profile. Beside it, ``subprocessors.json`` is the list as
deployed, which the next ``deploy --check`` compares the new Plan's list with.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from selfhost import paths
from selfhost.atomic import write_atomic
from selfhost.errors import InvalidInput
from selfhost.plan import Endpoint, Plan, ThirdParty
from selfhost.subprocessors.document import SubprocessorList, from_json

RECORD_NAME = "deployment.json"
LIST_NAME = "subprocessors.json"
RECORD_SCHEMA_VERSION = 1


class RecordHost(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    address: str
    components: list[str]


class DeploymentRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = RECORD_SCHEMA_VERSION
    customer_id: str
    profile_fingerprint: str
    tool_version: str
    hosts: list[RecordHost]
    egress_allowlist: list[Endpoint]
    third_parties: list[ThirdParty]
    time: str

    def third_party_ids(self) -> list[str]:
        return [t.id for t in self.third_parties]


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
                           "it was left installed with its data (remove it once nothing "
                           "needs it)")
    return out


def state_dir(profile_path: Path, customer_id: str) -> Path:
    """``<profile dir>/.selfhost/<customer id>``: certificates and the record."""
    return paths.state_dir(profile_path, customer_id)


def record_path(profile_path: Path, customer_id: str) -> Path:
    return state_dir(profile_path, customer_id) / RECORD_NAME


def from_plan(plan: Plan, tool_version: str, now: datetime | None = None) -> DeploymentRecord:
    return DeploymentRecord(
        customer_id=plan.customer.id,
        profile_fingerprint=plan.profile_fingerprint,
        tool_version=tool_version,
        hosts=[RecordHost(name=h.name, address=h.address, components=list(h.components))
               for h in plan.hosts],
        egress_allowlist=plan.egress_allowlist,
        third_parties=plan.third_parties,
        time=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
    )


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
        return DeploymentRecord.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
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
