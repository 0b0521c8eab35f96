"""Profile -> Plan: a pure function, no I/O.

The Plan (its models are in :mod:`selfhost.plan_schema`, importable from here
too) is what every output reads: the deployment, the subprocessor list and the
verification. Because all three read one Plan they cannot disagree.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import quote, urlsplit

from selfhost.layout import LAYOUT
from selfhost.models import PROXY_PORT, Profile, all_hosts
from selfhost.plan_schema import (
    COMPONENT_ORDER,
    PLAN_SCHEMA_VERSION,
    AppPlan,
    Category,
    Component,
    CustomerPlan,
    Endpoint,
    EnvEntry,
    Frozen,
    Notice,
    NotUsed,
    Plan,
    PlanHost,
    SecretSpec,
    ServiceWiring,
    ThirdParty,
    TLSPlan,
)

# the schema's names stay importable from here, beside the derivation's own
__all__ = ["AI_PROVIDERS_ID", "AI_PROVIDER_HOSTS", "APP_ENV_FILE", "APP_USER",
           "CA_CERT_PATH", "COMPONENT_ORDER", "EGRESS_SCOPES", "PLAN_SCHEMA_VERSION",
           "AppPlan", "Category", "Component", "CustomerPlan", "Endpoint", "EnvEntry",
           "Frozen", "NotUsed", "Notice", "Plan", "PlanHost", "SecretSpec", "ServiceWiring",
           "TLSPlan", "ThirdParty", "fingerprint", "plan"]

APP_USER = LAYOUT.app_user
APP_ENV_FILE = LAYOUT.app_env_file
CA_CERT_PATH = LAYOUT.ca_cert
#: stands for every AI provider of the SaaS list when AI is disabled
AI_PROVIDERS_ID = "ai-providers"
#: every AI provider's API host; verify proves the ones not chosen are unreachable
AI_PROVIDER_HOSTS = {"openai": "api.openai.com", "anthropic": "api.anthropic.com"}
#: what each egress scope fences, as `selfhost plan` shows it
EGRESS_SCOPES = {
    "app": "app (the app user's outbound traffic is fenced; other users are not)",
    "host": "host (every user's outbound traffic is dropped but for the hosts' own needs: "
            "replies, apt, DNS, NTP, the proxy's upstream, connections between the hosts)",
}



def fingerprint(profile: Profile) -> str:
    """A stable digest of every choice; two profiles that deploy alike match.

    The catalog overlay changes what the list says, not what is deployed."""
    choices = profile.model_dump(mode="json", exclude={"catalog_overlay"})
    if profile.egress.scope == "app":
        # The default scope leaves the digest of profiles written before it existed as it was.
        del choices["egress"]
    if not profile.app.release_keys:
        # Likewise for profiles written before releases were signed.
        del choices["app"]["release_keys"]
    canonical = json.dumps(choices, sort_keys=True,
                           separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


# -- third parties -------------------------------------------------------------------

_CONVERSATION_DATA = [
    "conversation messages (user questions and context)",
    "knowledge base chunks (for RAG context)",
    "conversation metadata (timestamps, IDs)",
]


def _ai(profile: Profile) -> list[ThirdParty]:
    provider = profile.ai.provider
    if provider == "disabled":
        return []
    host = AI_PROVIDER_HOSTS[provider]
    return [ThirdParty(
        id=provider, category="ai",
        purpose="AI-powered conversation response generation",
        data=_CONVERSATION_DATA,
        wired_by=["AI_PROVIDER", f"{provider.upper()}_API_KEY"],
        egress=[Endpoint(host=host, port=443)], egress_from="app",
    )]


_EMAIL_DATA = ["e-mail addresses", "e-mail content (notifications, alerts)"]


def _email(profile: Profile) -> list[ThirdParty]:
    email = profile.email
    hosts = {
        "sendgrid": "smtp.sendgrid.net",
        "postmark": "smtp.postmarkapp.com",
        "ses": f"email-smtp.{email.ses_region}.amazonaws.com",
    }
    if email.provider not in hosts:
        return []
    return [ThirdParty(
        id={"ses": "amazon-ses"}.get(email.provider, email.provider), category="email",
        purpose="Send notification e-mails, password reset e-mails and alerts",
        data=_EMAIL_DATA, wired_by=["SMTP_URL"],
        egress=[Endpoint(host=hosts[email.provider], port=587)], egress_from="app",
    )]


def _monitoring(profile: Profile) -> list[ThirdParty]:
    mon = profile.monitoring
    data = ["error reports and stack traces (may include user identifiers and request data)",
            "application performance data", "IP addresses"]
    if mon.provider == "sentry":
        return [ThirdParty(
            id="sentry", category="monitoring", purpose="Error tracking and performance "
            "monitoring", data=data, wired_by=["SENTRY_DSN"],
            egress=[Endpoint(host=f".ingest.{mon.sentry_region}.sentry.io", port=443)],
            egress_from="app",
        )]
    if mon.provider == "datadog":
        return [ThirdParty(
            id="datadog", category="monitoring", purpose="Error tracking, logs and "
            "performance monitoring", data=[*data, "application logs"],
            wired_by=["DD_API_KEY", "DD_SITE"],
            egress=[Endpoint(host=f"http-intake.logs.{mon.datadog_site}", port=443),
                    Endpoint(host=f"api.{mon.datadog_site}", port=443)],
            egress_from="app",
        )]
    return []


def _cdn(profile: Profile) -> list[ThirdParty]:
    if profile.cdn.provider == "none":
        return []
    return [ThirdParty(
        id={"cloudfront": "amazon-cloudfront"}.get(profile.cdn.provider, profile.cdn.provider),
        category="cdn", purpose="Deliver the chat widget and web traffic faster; the CDN "
        "terminates visitors' connections in front of the deployment",
        data=["IP addresses", "HTTP requests and responses, including chat traffic",
              "browser metadata (user agent)"],
        wired_by=[], egress=[], egress_from="none",
    )]


def _acme(profile: Profile) -> list[ThirdParty]:
    tls = profile.tls
    if tls.mode != "acme" or tls.acme.provider != "letsencrypt":
        return []
    host = urlsplit(tls.acme.directory_url).hostname or ""
    return [ThirdParty(
        id="letsencrypt", category="certificate-authority",
        purpose="Issue the public TLS certificate for the deployment's domain",
        data=["the deployment's domain name", "ACME account contact e-mail (if given)",
              "IP address of the requesting host"],
        wired_by=[], egress=[Endpoint(host=host, port=443)], egress_from="host",
    )]


# -- wiring --------------------------------------------------------------------------

def _database(profile: Profile, app_addrs: list[str]) -> ServiceWiring:
    db = profile.database
    if db.mode == "external":
        assert db.dsn is not None  # the Profile's rules guarantee it
        parts = urlsplit(db.dsn)
        return ServiceWiring(
            mode="external", host=parts.hostname or "", port=parts.port or 5432, tls=True,
            listen=[], allowed_clients=[], server_host=None, url=db.dsn,
            user=parts.username or db.user, name=parts.path.lstrip("/") or db.name,
        )
    split = profile.topology == "split"
    server = profile.hosts.database if split else profile.hosts.app[0]
    assert server is not None
    host = server.address if split else "127.0.0.1"
    query = f"sslmode=verify-full&sslrootcert={CA_CERT_PATH}" if split else "sslmode=disable"
    return ServiceWiring(
        mode="local", host=host, port=db.port, tls=split,
        listen=[server.address] if split else ["127.0.0.1"],
        allowed_clients=app_addrs if split else [], server_host=server.name,
        url=f"postgresql://{db.user}@{host}:{db.port}/{db.name}?{query}",
        user=db.user, name=db.name,
    )


def _cache(profile: Profile, app_addrs: list[str]) -> ServiceWiring:
    cache = profile.cache
    if cache.mode == "external":
        assert cache.url is not None
        parts = urlsplit(cache.url)
        return ServiceWiring(
            mode="external", host=parts.hostname or "", port=parts.port or 6379, tls=True,
            listen=[], allowed_clients=[], server_host=None, url=cache.url,
            user=parts.username or "default",
        )
    split = profile.topology == "split"
    server = profile.hosts.cache if split else profile.hosts.app[0]
    assert server is not None
    host = server.address if split else "127.0.0.1"
    port = cache.tls_port if split else cache.port
    scheme = "rediss" if split else "redis"
    return ServiceWiring(
        mode="local", host=host, port=port, tls=split,
        listen=[server.address] if split else ["127.0.0.1"],
        allowed_clients=app_addrs if split else [], server_host=server.name,
        url=f"{scheme}://{APP_USER}@{host}:{port}/0", user=APP_USER,
    )


def _env(profile: Profile, db: ServiceWiring, cache: ServiceWiring,
         parties: list[ThirdParty], public_url: str) -> list[EnvEntry]:
    env = [
        EnvEntry(key="DATABASE_URL", value=db.url, secret="database_password",
                 placement="url-password"),
        EnvEntry(key="REDIS_URL", value=cache.url, secret="cache_password",
                 placement="url-password"),
    ]
    if cache.mode == "local" and cache.tls:
        # rediss:// carries no CA (DATABASE_URL's sslrootcert does): a release needs
        # the file that signs the cache host's certificate.
        env.append(EnvEntry(key="REDIS_CA_FILE", value=CA_CERT_PATH))
    env.append(EnvEntry(key="AI_PROVIDER", value={"disabled": "none"}.get(
        profile.ai.provider, profile.ai.provider)))
    if profile.ai.provider != "disabled":
        env.append(EnvEntry(key=f"{profile.ai.provider.upper()}_API_KEY",
                            secret=f"{profile.ai.provider}_api_key"))
        if profile.ai.models:
            env.append(EnvEntry(key="AI_MODELS", value=",".join(profile.ai.models)))
    env.append(EnvEntry(key="HTTPS_PROXY", value=f"http://127.0.0.1:{PROXY_PORT}"))
    env.append(EnvEntry(key="NO_PROXY", value=_no_proxy(db, cache)))
    smtp = _smtp_url(profile, parties)
    if smtp is not None:
        env.append(EnvEntry(key="SMTP_URL", value=smtp, secret="email_password",
                            placement="url-password"))
    if profile.monitoring.provider == "sentry":
        env.append(EnvEntry(key="SENTRY_DSN", secret="sentry_dsn"))
    elif profile.monitoring.provider == "datadog":
        env.append(EnvEntry(key="DD_API_KEY", secret="datadog_api_key"))
        env.append(EnvEntry(key="DD_SITE", value=profile.monitoring.datadog_site))
    elif profile.monitoring.provider == "self-hosted":
        env.append(EnvEntry(key="MONITORING_ENDPOINT",
                            value=f"https://{profile.monitoring.self_hosted_endpoint}"))
    env.append(EnvEntry(key="PUBLIC_URL", value=public_url))
    env.append(EnvEntry(key="SECRET_KEY", secret="app_secret_key"))
    return env


def _no_proxy(db: ServiceWiring, cache: ServiceWiring) -> str:
    # The database and cache are reached directly (nftables allows exactly them),
    # never through the proxy, which only knows third parties.
    hosts = ["127.0.0.1", "localhost", db.host, cache.host]
    return ",".join(dict.fromkeys(hosts))


def _smtp_url(profile: Profile, parties: list[ThirdParty]) -> str | None:
    email = profile.email
    if email.provider == "none":
        return None
    if email.provider == "smtp":
        # URL-encoded: a user name such as ``mail@acme.example`` holds an @ itself.
        user = f"{quote(email.smtp_username, safe='')}@" if email.smtp_username else ""
        return f"smtp://{user}{email.smtp_host}:{email.smtp_port}"
    endpoint = next(p for p in parties if p.category == "email").egress[0]
    user = {"sendgrid": "apikey", "postmark": "token", "ses": "ses"}[email.provider]
    if email.smtp_username:
        user = email.smtp_username
    return f"smtp://{quote(user, safe='')}@{endpoint.host}:{endpoint.port}"


_GENERATED = {"app_secret_key", "ca_key", "backup_key"}


def _secrets_required(profile: Profile, env: list[EnvEntry]) -> list[SecretSpec]:
    names = [e.secret for e in env if e.secret is not None]
    if profile.tls.mode == "self-signed" or profile.topology == "split":
        names.append("ca_key")
    if profile.email.provider == "smtp" and not profile.email.smtp_username:
        names.remove("email_password")
    if profile.backups.enabled and profile.backups.encrypted and profile.database.mode == "local":
        names.append("backup_key")
    generated = set(_GENERATED)
    if profile.database.mode == "local":
        generated.add("database_password")
    if profile.cache.mode == "local":
        generated.add("cache_password")
    return [SecretSpec(name=n, source="generated" if n in generated else "supplied")
            for n in sorted(dict.fromkeys(names))]


def _not_used(profile: Profile, parties: list[ThirdParty]) -> list[NotUsed]:
    """The SaaS list's subprocessors that this deployment does not use, and why."""
    used = {p.id for p in parties}
    out = [
        NotUsed(id="hivelocity", reason="Self-hosted: the application, its cache and its "
                "storage run on the customer's own hosts"),
        NotUsed(id="digitalocean", reason=(
            "Self-hosted: PostgreSQL runs on the customer's own host"
            if profile.database.mode == "local" else
            "Self-hosted: the customer's own managed PostgreSQL is used")),
        NotUsed(id="hivelocity-redis", reason=(
            "Self-hosted: Redis runs on the customer's own host"
            if profile.cache.mode == "local" else
            "Self-hosted: the customer's own Redis is used")),
    ]
    if profile.ai.provider == "disabled":
        # No AI provider is named anywhere in an AI-disabled Plan, not even as
        # "not used": the SaaS list's LLM providers appear as one category.
        out.append(NotUsed(id=AI_PROVIDERS_ID, reason="AI is disabled: no conversation "
                           "data leaves the deployment"))
        return out
    for ai in ("openai", "anthropic"):
        if ai not in used:
            out.append(NotUsed(id=ai, reason=f"Only the selected AI provider "
                               f"({profile.ai.provider}) processes data"))
    return out


def plan(profile: Profile) -> Plan:
    """The deployment a profile describes. Pure: the same profile gives the same Plan."""
    split = profile.topology == "split"
    apps = profile.hosts.app
    app_addrs = [h.address for h in apps]
    db = _database(profile, app_addrs)
    cache = _cache(profile, app_addrs)

    components: dict[str, list[Component]] = {}
    for host in all_hosts(profile):
        components[host.name] = ["common", "tls"]
    for host in apps:
        components[host.name] += ["egress", "app", "nginx"]
    if profile.database.mode == "local":
        db_host = profile.hosts.database if split else apps[0]
        assert db_host is not None
        components[db_host.name].append("postgresql")
        if profile.backups.enabled:
            components[db_host.name].append("backup")
    if profile.cache.mode == "local":
        cache_host = profile.hosts.cache if split else apps[0]
        assert cache_host is not None
        components[cache_host.name].append("redis")
    hosts = [
        PlanHost(name=h.name, address=h.address, ssh_port=h.ssh_port,
                 components=sorted(components[h.name], key=COMPONENT_ORDER.index))
        for h in all_hosts(profile)
    ]

    parties = [*_ai(profile), *_email(profile), *_monitoring(profile), *_cdn(profile),
               *_acme(profile)]
    public_url = f"https://{profile.tls.domain}"
    env = _env(profile, db, cache, parties, public_url)

    allow = {str(e): e for p in parties if p.egress_from == "app" for e in p.egress}
    if profile.email.provider == "smtp":
        relay = Endpoint(host=profile.email.smtp_host or "", port=profile.email.smtp_port)
        allow[str(relay)] = relay
    if profile.monitoring.provider == "self-hosted":
        collector = Endpoint(host=profile.monitoring.self_hosted_endpoint or "", port=443)
        allow[str(collector)] = collector
    host_egress = [e for p in parties if p.egress_from == "host" for e in p.egress]
    if profile.tls.mode == "acme" and profile.tls.acme.provider == "customer":
        parts = urlsplit(profile.tls.acme.directory_url)
        host_egress.append(Endpoint(host=parts.hostname or "", port=parts.port or 443))

    direct = {f"{w.host}:{w.port}": Endpoint(host=w.host, port=w.port) for w in (db, cache)
              if w.host not in ("127.0.0.1", "localhost")}

    return Plan(
        profile_fingerprint=fingerprint(profile),
        customer=CustomerPlan(name=profile.customer.name, id=profile.customer.id,
                              residency=profile.customer.residency,
                              contact_email=profile.customer.contact_email),
        topology=profile.topology,
        ssh_user=profile.hosts.ssh_user,
        become=profile.hosts.become,
        hosts=hosts,
        database=db,
        cache=cache,
        tls=TLSPlan(
            mode=profile.tls.mode, domain=profile.tls.domain,
            min_version=profile.tls.min_version, internal=split,
            acme_directory=profile.tls.acme.directory_url if profile.tls.mode == "acme"
            else None,
            acme_provider=profile.tls.acme.provider if profile.tls.mode == "acme" else None,
            acme_email=profile.tls.acme.email if profile.tls.mode == "acme" else None,
        ),
        app=AppPlan(user=APP_USER, port=profile.app.port, public_url=public_url,
                    release=profile.app.release, env_file=APP_ENV_FILE, env=env,
                    drain_seconds=profile.app.drain_seconds),
        proxy_port=PROXY_PORT,
        egress_allowlist=sorted(allow.values(), key=lambda e: (e.host, e.port)),
        app_direct=list(direct.values()),
        host_egress=host_egress,
        egress_scope=profile.egress.scope,
        third_parties=parties,
        not_used=_not_used(profile, parties),
        secrets_required=_secrets_required(profile, env),
        notice=Notice(days=profile.notice.days, objection_days=profile.notice.objection_days),
        backups={"enabled": profile.backups.enabled, "directory": profile.backups.directory,
                 "encrypted": profile.backups.encrypted,
                 "retention_days": profile.backups.retention_days},
    )
