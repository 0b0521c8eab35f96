"""The Plan's schema: what a Profile turns into (:func:`selfhost.plan.plan` derives it).

Every output reads these models: the deployment (which roles run where, with
which wiring), the subprocessor list (which third parties receive personal data,
with what and why) and the verification (what the live hosts must show). They
are frozen: a Plan, once derived, is the same for every reader.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from selfhost.layout import HostLayout

PLAN_SCHEMA_VERSION = 1

#: Roles in the order the playbook applies them on a host.
COMPONENT_ORDER = ("common", "tls", "postgresql", "backup", "redis", "egress", "app", "nginx")

Component = Literal["common", "tls", "postgresql", "backup", "redis", "egress", "app", "nginx"]
Category = Literal["ai", "email", "monitoring", "cdn", "certificate-authority"]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Endpoint(Frozen):
    """An outbound destination. A host starting with ``.`` also covers its
    subdomains (the vendor assigns per-customer names below it)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class PlanHost(Frozen):
    name: str
    address: str
    ssh_port: int
    components: list[Component]


class ServiceWiring(Frozen):
    """How the app reaches its database or cache, and who may connect."""

    mode: Literal["local", "external"]
    #: the host name/address the app connects to
    host: str
    port: int
    tls: bool
    #: local only: addresses the server listens on
    listen: list[str]
    #: local only: client addresses allowed in (app hosts), beside loopback
    allowed_clients: list[str]
    #: the server's host in the Plan (local), or None (external)
    server_host: str | None
    #: the URL handed to the app, without its password
    url: str
    user: str
    name: str | None = None


class EnvEntry(Frozen):
    """One key of the app's environment file.

    ``value`` is final unless ``secret`` names a secret: then deploy inserts it,
    as the whole value (``placement: value``) or as the URL's password.
    """

    key: str
    value: str | None = None
    secret: str | None = None
    placement: Literal["value", "url-password"] = "value"


class TLSPlan(Frozen):
    mode: Literal["self-signed", "provided", "acme"]
    domain: str
    min_version: Literal["1.2", "1.3"]
    #: between hosts (split topology): PostgreSQL and Redis use internal-CA certificates
    internal: bool
    acme_directory: str | None
    acme_provider: Literal["letsencrypt", "customer"] | None
    #: the ACME account's contact e-mail (None: register without one)
    acme_email: str | None = None


class AppPlan(Frozen):
    user: str
    port: int
    public_url: str
    #: None deploys the contract probe app
    release: str | None
    env_file: str
    env: list[EnvEntry]
    #: the pause around an app host's drain (profile ``app.drain_seconds``); an upgrade
    #: drains only when there is another app host to take the requests
    drain_seconds: int

    @property
    def env_keys(self) -> list[str]:
        return [e.key for e in self.env]


class ThirdParty(Frozen):
    """A third party that receives personal data; ``id`` is its catalog key."""

    id: str
    category: Category
    purpose: str
    data: list[str]
    #: environment keys that connect the app to it (empty: not wired through the app)
    wired_by: list[str]
    egress: list[Endpoint]
    #: where this party is reached from: the app via the proxy, or the host itself
    egress_from: Literal["app", "host", "none"]


class SecretSpec(Frozen):
    """A secret the deployment needs. ``generated`` ones are made by init and
    never typed; ``supplied`` ones are third-party credentials a person gives."""

    name: str
    source: Literal["generated", "supplied"]


class NotUsed(Frozen):
    id: str
    reason: str


class CustomerPlan(Frozen):
    name: str
    id: str
    residency: str
    contact_email: str


class Notice(Frozen):
    days: int
    objection_days: int


class Plan(Frozen):
    schema_version: int = PLAN_SCHEMA_VERSION
    profile_fingerprint: str
    customer: CustomerPlan
    topology: Literal["all-in-one", "split"]
    ssh_user: str
    become: bool
    hosts: list[PlanHost]
    database: ServiceWiring
    cache: ServiceWiring
    tls: TLSPlan
    app: AppPlan
    proxy_port: int
    #: what the app may reach through the egress proxy; nothing else
    egress_allowlist: list[Endpoint]
    #: what the app reaches directly, not through the proxy: its database and
    #: cache when they are not on loopback (nftables allows exactly these)
    app_direct: list[Endpoint]
    #: what the hosts themselves contact beside apt (e.g. the ACME directory)
    host_egress: list[Endpoint]
    #: whose outbound traffic the firewall fences: the app user only, or every
    #: user of the host (default-drop output with the deployment's own allowances)
    egress_scope: Literal["app", "host"] = "app"
    third_parties: list[ThirdParty]
    not_used: list[NotUsed]
    secrets_required: list[SecretSpec]
    notice: Notice
    backups: dict[str, str | int | bool] = Field(default_factory=dict)
    #: where the deployment lives on its hosts (roles write it, verify reads it)
    layout: HostLayout = Field(default_factory=HostLayout)

    def hosts_with(self, component: Component) -> list[PlanHost]:
        return [h for h in self.hosts if component in h.components]

    def third_party_ids(self) -> list[str]:
        return [t.id for t in self.third_parties]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
