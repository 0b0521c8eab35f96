"""The deployment record: what was deployed, from which profile, by which selfhost.

One schema for every copy. Each host carries one (the record role writes it to
``HostLayout.deployment_record``, ``/etc/backend-chat/deployment.json``), and the
controller keeps one beside the profile (``<profile dir>/.selfhost/<customer
id>/deployment.json``, written by ``selfhost deploy`` after a successful run).
The copies differ only in ``host`` and in what runs there (``components``,
``env_keys``): the controller's copy has ``host: null`` and runs nothing. Both carry
the release that runs (``release``), written by ``selfhost deploy`` and again by
``selfhost upgrade``/``rollback`` once the app hosts were switched.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

#: the version of the record's format (the record role writes the same number)
RECORD_FORMAT = 2
#: the fields that are not part of ``content_digest``: the digest itself and the time
UNDIGESTED = ("content_digest", "deployed_at")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordHost(_Frozen):
    name: str
    address: str
    components: list[str]


class RecordParty(_Frozen):
    id: str
    category: str


class RecordRelease(_Frozen):
    #: the release manifest's ``name`` and ``version``
    name: str
    version: str

    def render(self) -> str:
        return f"{self.name} {self.version}"


class DeploymentRecord(_Frozen):
    format: Literal[2]
    #: the host this copy is on; ``None`` for the controller's copy
    host: str | None
    customer_id: str
    profile_fingerprint: str
    tool_version: str
    topology: Literal["all-in-one", "split"]
    #: every host of the deployment and what runs on it
    hosts: list[RecordHost]
    #: what runs on ``host`` (nothing on the controller)
    components: list[str]
    #: ``host:port`` of every destination the egress proxy admits
    egress_allowlist: list[str]
    third_parties: list[RecordParty]
    #: the keys of the app's environment file on ``host`` (empty where no app runs)
    env_keys: list[str]
    #: the release that runs (written by ``selfhost deploy`` and by ``selfhost
    #: upgrade``/``rollback`` after the switch); None: the built-in contract probe app,
    #: deployed without a release artifact
    release: RecordRelease | None = None
    #: ``sha256:`` of the record's JSON (sorted keys) without these two last fields,
    #: so a redeploy of the same content leaves the record as it is
    content_digest: str
    #: when the content last changed (UTC, ISO 8601)
    deployed_at: str

    def third_party_ids(self) -> list[str]:
        return [t.id for t in self.third_parties]


def content_digest(fields: dict[str, Any]) -> str:
    """The digest the record role computes: Ansible's ``to_json(sort_keys=True)``
    is ``json.dumps`` with its default separators."""
    # an absent release leaves the digest of records written before it existed as it was
    content = {k: v for k, v in fields.items()
               if k not in UNDIGESTED and not (k == "release" and v is None)}
    return "sha256:" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def build(fields: dict[str, Any], now: datetime | None = None) -> DeploymentRecord:
    """A record of ``fields`` (every field but the two computed ones), digested and
    stamped with ``now``."""
    content = {"format": RECORD_FORMAT, **fields}
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return DeploymentRecord.model_validate(
        {**content, "content_digest": content_digest(content), "deployed_at": stamp})
