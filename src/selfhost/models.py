"""The Profile: every data-sovereignty choice of one customer deployment.

These models are the single source of validation. The wizard, ``--set``
flags, answers files and presets all end in :meth:`Profile.model_validate`, so
the same rules run on every path. Dotted field paths (``ai.provider``) are a
public contract used by ``--set`` and by prospects files.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from selfhost import validation
from selfhost.external_urls import check_pg_dsn, check_redis_url
from selfhost.profile_fields import (
    BackupDirectory,
    Email,
    HostName,
    HostOrIP,
    Port,
    Residency,
    Slug,
    TLSVersion,
    refuse_control,
)
from selfhost.residency import is_us
from selfhost.validation import CrossFieldErrors


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    _no_control = field_validator("*", mode="before")(refuse_control)


class Customer(Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    id: Slug
    contact_email: Email
    #: EU, or an ISO 3166-1 alpha-2 country code; compared with each third
    #: party's data location to flag international transfers
    residency: Residency


class Host(Strict):
    name: HostName
    address: HostOrIP
    ssh_port: Port = 22


class Hosts(Strict):
    ssh_user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")] = "root"
    #: use sudo for privileged tasks when ``ssh_user`` is not root
    become: bool = True
    app: list[Host] = Field(default_factory=list)
    database: Host | None = None
    cache: Host | None = None


class Database(Strict):
    mode: Literal["local", "external"] = "local"
    name: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = "backendchat"
    user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = "backendchat"
    port: Port = 5432
    #: external only: ``postgresql://user@host:port/db?sslmode=verify-full``;
    #: the password goes into the secrets file, never here
    dsn: str | None = None


class Cache(Strict):
    mode: Literal["local", "external"] = "local"
    port: Port = 6379
    #: TLS port between hosts in split topology (the plain port is then off)
    tls_port: Port = 6380
    #: external only: ``rediss://user@host:port/0``; the password goes into secrets
    url: str | None = None


class AI(Strict):
    provider: Literal["openai", "anthropic", "disabled"] = "disabled"
    models: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list
    )
    #: required when a US provider serves a customer resident outside the US
    international_transfer_acknowledged: bool = False


class Acme(Strict):
    #: letsencrypt is a third party (it receives the domain and the account
    #: e-mail); customer means an ACME CA the customer operates itself
    provider: Literal["letsencrypt", "customer"] = "letsencrypt"
    directory_url: Annotated[str, Field(pattern=r"^https://\S+$")] = (
        "https://acme-v02.api.letsencrypt.org/directory"
    )
    email: Email | None = None
    #: CA bundle that signs the ACME directory's TLS certificate (for a private ACME CA)
    ca_file: str | None = None


class TLS(Strict):
    mode: Literal["self-signed", "provided", "acme"] = "self-signed"
    domain: HostName = "chat.example.internal"
    min_version: TLSVersion = "1.3"
    #: provided mode: PEM files on the controller
    cert_file: str | None = None
    key_file: str | None = None
    acme: Acme = Field(default_factory=Acme)


class Email_(Strict):
    provider: Literal["none", "smtp", "sendgrid", "postmark", "ses"] = "none"
    from_address: Email | None = None
    #: smtp only: the customer's own relay
    smtp_host: HostName | None = None
    smtp_port: Port = 587
    smtp_username: str | None = None
    #: ses only: the AWS region of the SES endpoint
    ses_region: Annotated[str, Field(pattern=r"^[a-z]{2}-[a-z]+-\d$")] = "eu-west-1"


class Monitoring(Strict):
    provider: Literal["none", "self-hosted", "sentry", "datadog"] = "none"
    #: sentry: the ingest region; datadog: the site
    sentry_region: Literal["us", "de"] = "us"
    datadog_site: Literal["datadoghq.com", "datadoghq.eu", "us3.datadoghq.com",
                          "us5.datadoghq.com", "ap1.datadoghq.com"] = "datadoghq.eu"
    #: self-hosted only: where the customer's own collector listens
    self_hosted_endpoint: HostOrIP | None = None


class CDN(Strict):
    provider: Literal["none", "cloudflare", "cloudfront"] = "none"


class Backups(Strict):
    enabled: bool = True
    directory: BackupDirectory = "/var/backups/backend-chat"
    encrypted: bool = True
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 14


class Notice(Strict):
    days: Annotated[int, Field(ge=0, le=365)] = 30
    objection_days: Annotated[int, Field(ge=0, le=365)] = 14


class App(Strict):
    #: a backend.chat release tarball on the controller; empty deploys the
    #: contract probe app, which honours the same contract
    release: str | None = None
    #: the vendor's Ed25519 public keys (PEM files, relative to the profile's
    #: directory) that a release must be signed with; see README, Releases
    release_keys: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        default_factory=list, max_length=16)
    port: Port = 8000
    #: with more than one app host: how long an upgrade keeps an app host drained
    #: (/readyz answers 503) before it restarts it, and ready again before it drains
    #: the next; set it to the load balancer's check interval times its threshold
    drain_seconds: Annotated[int, Field(ge=0, le=600)] = 10


class Egress(Strict):
    #: app: only the app user's outbound traffic is fenced (the customer's own agents
    #: on the host keep the network); host: every user's outbound traffic is dropped
    #: but for the deployment's own needs (proxy upstream, apt, DNS, NTP, ...)
    scope: Literal["app", "host"] = "app"


class Profile(Strict):
    schema_version: Literal[1] = 1
    customer: Customer
    topology: Literal["all-in-one", "split"] = "all-in-one"
    hosts: Hosts = Field(default_factory=Hosts)
    database: Database = Field(default_factory=Database)
    cache: Cache = Field(default_factory=Cache)
    ai: AI = Field(default_factory=AI)
    tls: TLS = Field(default_factory=TLS)
    email: Email_ = Field(default_factory=Email_)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    cdn: CDN = Field(default_factory=CDN)
    backups: Backups = Field(default_factory=Backups)
    notice: Notice = Field(default_factory=Notice)
    app: App = Field(default_factory=App)
    egress: Egress = Field(default_factory=Egress)
    #: the customer's own vendor facts for the subprocessor list (a YAML file,
    #: relative to the profile's directory); see selfhost.catalog_overlay
    catalog_overlay: str | None = None

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        problems: list[tuple[str, str]] = []
        problems += _topology_rules(self)
        problems += _external_rules(self)
        if (
            self.ai.provider != "disabled"
            and not is_us(self.customer.residency)
            and not self.ai.international_transfer_acknowledged
        ):
            problems.append((
                "ai.international_transfer_acknowledged",
                f"residency {self.customer.residency} with the US provider {self.ai.provider} "
                "is an international transfer under Standard Contractual Clauses (set "
                "ai.international_transfer_acknowledged: true to acknowledge it, or set "
                "ai.provider: disabled)",
            ))
        if self.ai.provider == "disabled" and self.ai.models:
            problems.append(("ai.models", "models are listed but AI is disabled "
                             "(remove ai.models or choose ai.provider)"))
        if self.tls.mode == "provided" and not (self.tls.cert_file and self.tls.key_file):
            problems.append(("tls.cert_file", "provided TLS needs tls.cert_file and "
                             "tls.key_file (paths to PEM files)"))
        if self.tls.mode == "acme":
            problems += _acme_rules(self.tls.acme)
        if self.email.provider == "smtp" and not self.email.smtp_host:
            problems.append(("email.smtp_host", "email.provider smtp needs the relay's host "
                             "name (set email.smtp_host)"))
        if self.email.provider != "none" and not self.email.from_address:
            problems.append(("email.from_address", "sending e-mail needs a sender address "
                             "(set email.from_address)"))
        if self.app.release and not self.app.release_keys:
            problems.append(("app.release_keys", "a release is deployed only when it is "
                             "signed by a key the profile trusts (add app.release_keys: "
                             "[vendor-release.pub], the vendor's public key file)"))
        if self.monitoring.provider == "self-hosted" and not self.monitoring.self_hosted_endpoint:
            problems.append(("monitoring.self_hosted_endpoint", "self-hosted monitoring needs "
                             "the collector's host (set monitoring.self_hosted_endpoint)"))
        if problems:
            raise CrossFieldErrors(problems)
        return self


def _topology_rules(p: Profile) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if not p.hosts.app:
        out.append(("hosts.app", "at least one app host is needed "
                    "(add hosts.app: [{name: app1, address: 192.0.2.10}])"))
    if p.topology == "all-in-one":
        if len(p.hosts.app) > 1:
            out.append(("hosts.app", "all-in-one runs on exactly one host "
                        "(list one host or set topology: split)"))
        for role in ("database", "cache"):
            if getattr(p.hosts, role) is not None:
                out.append((f"hosts.{role}", f"all-in-one puts the {role} on the app host "
                            f"(remove hosts.{role} or set topology: split)"))
    else:
        if p.database.mode == "local" and p.hosts.database is None:
            out.append(("hosts.database", "split topology with a local database needs "
                        "its host (set hosts.database: {name: db1, address: ...})"))
        if p.cache.mode == "local" and p.hosts.cache is None:
            out.append(("hosts.cache", "split topology with a local cache needs its host "
                        "(set hosts.cache: {name: cache1, address: ...})"))
        if p.database.mode == "external" and p.hosts.database is not None:
            out.append(("hosts.database", "the database is external, so no database host "
                        "is deployed (remove hosts.database)"))
        if p.cache.mode == "external" and p.hosts.cache is not None:
            out.append(("hosts.cache", "the cache is external, so no cache host is "
                        "deployed (remove hosts.cache)"))
    names = [h.name for h in all_hosts(p)]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        out.append(("hosts", f"host name {dup!r} is used twice (give each host its own name)"))
    by_token: dict[str, list[str]] = {}
    for name in dict.fromkeys(names):
        by_token.setdefault(host_token(name), []).append(name)
    for token, same in sorted(by_token.items()):
        if len(same) > 1:
            # One would receive the other's TLS key and secrets variables.
            out.append(("hosts", f"host names {' and '.join(map(repr, same))} both become "
                        f"{token} in variable and file names (rename one of them)"))
    return out + _port_rules(p)


def host_token(name: str) -> str:
    """A host name as it appears in variable names (``SELFHOST_SECRET_TLS_KEY_<TOKEN>``)."""
    return re.sub(r"[-.]", "_", name).upper()


#: the proxy every app host runs for the app's egress, and nginx's HTTP and HTTPS
PROXY_PORT = 3128
PUBLIC_PORTS = (80, 443)


def _port_rules(p: Profile) -> list[tuple[str, str]]:
    """``app.port`` must not be a port something else on an app host listens on."""
    taken = {PROXY_PORT: "the egress proxy", PUBLIC_PORTS[0]: "nginx (HTTP)",
             PUBLIC_PORTS[1]: "nginx (HTTPS)"}
    for host in p.hosts.app:
        taken.setdefault(host.ssh_port, f"ssh on {host.name}")
    if p.topology == "all-in-one":
        # The database and cache run on the app host.
        if p.database.mode == "local":
            taken.setdefault(p.database.port, "the database (database.port)")
        if p.cache.mode == "local":
            taken.setdefault(p.cache.port, "the cache (cache.port)")
    if p.app.port in taken:
        return [("app.port", f"port {p.app.port} is already used by {taken[p.app.port]} on "
                 "the app host (choose another app.port, e.g. 8000)")]
    return []


LETSENCRYPT_HOSTS = ("acme-v02.api.letsencrypt.org", "acme-staging-v02.api.letsencrypt.org")


def _acme_rules(acme: Acme) -> list[tuple[str, str]]:
    host = urlsplit(acme.directory_url).hostname or ""
    if acme.provider == "letsencrypt" and host not in LETSENCRYPT_HOSTS:
        return [("tls.acme.provider", f"the directory {host} is not Let's Encrypt (set "
                 "tls.acme.provider: customer for a CA you operate)")]
    if acme.provider == "customer" and host in LETSENCRYPT_HOSTS:
        return [("tls.acme.provider", "the directory is Let's Encrypt, a third party (set "
                 "tls.acme.provider: letsencrypt)")]
    return []


def all_hosts(p: Profile) -> list[Host]:
    """The profile's hosts in plan order: app hosts, then database, then cache."""
    hosts = list(p.hosts.app)
    hosts += [h for h in (p.hosts.database, p.hosts.cache) if h is not None]
    return hosts


def _external_rules(p: Profile) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if p.database.mode == "external":
        if not p.database.dsn:
            out.append(("database.dsn", "an external database needs its DSN "
                        "(postgresql://user@host:5432/db?sslmode=verify-full)"))
        else:
            out += [("database.dsn", m) for m in check_pg_dsn(p.database.dsn)]
    elif p.database.dsn:
        out.append(("database.dsn", "a DSN is only used with database.mode: external "
                    "(remove it or set the mode)"))
    if p.cache.mode == "external":
        if not p.cache.url:
            out.append(("cache.url", "an external cache needs its URL "
                        "(rediss://user@host:6380/0)"))
        else:
            out += [("cache.url", m) for m in check_redis_url(p.cache.url)]
    elif p.cache.url:
        out.append(("cache.url", "a URL is only used with cache.mode: external "
                    "(remove it or set the mode)"))
    return out


def _profile_model(exc: ValidationError) -> type[BaseModel] | None:
    return Profile if exc.title == Profile.__name__ else None


def field_errors(exc: ValidationError,
                 model: type[BaseModel] | None = None) -> list[tuple[str, str]]:
    """``(dotted.path, message)`` for each problem, cross-field rules unpacked.

    Every input path (wizard, flags, answers file, preset) reports through this,
    so a rule reads the same wherever it fires. ``model`` (the Profile when the
    error is the Profile's) is where an unknown key finds its did-you-mean.
    """
    return validation.field_errors(exc, model or _profile_model(exc))


def known_keys(path: str) -> list[str]:
    """The keys a Profile mapping at dotted ``path`` may hold."""
    return validation.known_keys(Profile, path)


def is_known_key(path: str) -> bool:
    """Whether dotted ``path`` names a field (or list item) of the Profile."""
    return validation.is_known_key(Profile, path)


def validate_field(path: str, value: Any) -> str | None:
    """The problem with ``value`` for the one Profile field at ``path``, or None."""
    return validation.validate_field(Profile, path, value)
