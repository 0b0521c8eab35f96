"""Plan -> the checks the live hosts must pass. Pure: no I/O.

Every check names one host, what it expects (stated in words a reader of the
report understands) and the fix when it fails. ``params`` carries what the
evaluation compares against, all of it taken from the Plan, so a change to the
Profile changes the checks with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from selfhost.plan import AI_PROVIDER_HOSTS, Endpoint, Plan, PlanHost

CheckComponent = Literal["postgresql", "backup", "redis", "nginx", "app", "egress", "host"]
#: the order the summary lists components in
COMPONENTS: tuple[CheckComponent, ...] = ("host", "postgresql", "backup", "redis", "egress",
                                          "app", "nginx")

DEPLOYMENT_RECORD = "/etc/backend-chat/deployment.json"
APP_UNIT = "backend-chat.service"
#: a name no allowlist can contain: ``.invalid`` never resolves (RFC 6761), and the
#: proxy must refuse it before any lookup
UNLISTED_DESTINATION = Endpoint(host="unlisted.selfhost-verify.invalid", port=443)
#: the hardening every app unit carries (systemctl show property -> value)
APP_UNIT_HARDENING: dict[str, str] = {
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
}
#: the common role's kernel hardening (common_sysctl in its defaults; a unit test
#: keeps the two equal). In a container only ``net.*`` is the host's own.
SYSCTL_HARDENING: dict[str, str] = {
    "net.ipv4.conf.all.rp_filter": "1",
    "net.ipv4.conf.default.rp_filter": "1",
    "net.ipv4.conf.all.accept_redirects": "0",
    "net.ipv4.conf.default.accept_redirects": "0",
    "net.ipv4.conf.all.secure_redirects": "0",
    "net.ipv4.conf.default.secure_redirects": "0",
    "net.ipv6.conf.all.accept_redirects": "0",
    "net.ipv6.conf.default.accept_redirects": "0",
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.send_redirects": "0",
    "net.ipv4.conf.all.accept_source_route": "0",
    "net.ipv4.conf.default.accept_source_route": "0",
    "net.ipv6.conf.all.accept_source_route": "0",
    "net.ipv4.conf.all.log_martians": "1",
    "net.ipv4.icmp_echo_ignore_broadcasts": "1",
    "net.ipv4.tcp_syncookies": "1",
    "kernel.kptr_restrict": "2",
    "kernel.dmesg_restrict": "1",
    "kernel.yama.ptrace_scope": "1",
    "kernel.unprivileged_bpf_disabled": "1",
    "fs.protected_hardlinks": "1",
    "fs.protected_symlinks": "1",
    "fs.protected_fifos": "2",
    "fs.protected_regular": "2",
    "fs.suid_dumpable": "0",
}
#: private keys: the tls role's staged copy, and the copies nginx and Redis read
TLS_KEY = "/etc/backend-chat/tls/server.key"
NGINX_TLS_KEY = "/etc/nginx/tls/server.key"
REDIS_TLS_KEY = "/etc/redis/tls/server.key"
FIX_REDEPLOY = "run `selfhost deploy PROFILE` again; it restores the Plan's setting"
BACKUP_TIMER = "backend-chat-backup.timer"
BACKUP_KEY = "/etc/backend-chat/backup.key"


class Check(BaseModel):
    """One thing one host must show."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    component: CheckComponent
    host: str
    description: str
    expected: str
    fix: str
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        """Unique within a run; the test id in reports."""
        return f"{self.host}::{self.id}"


def _check(host: PlanHost | str, component: CheckComponent, name: str, description: str,
           expected: str, *, fix: str = FIX_REDEPLOY, **params: Any) -> Check:
    host_name = host if isinstance(host, str) else host.name
    return Check(id=f"{component}.{name}", component=component, host=host_name,
                 description=description, expected=expected, fix=fix, params=params)


def generate(plan: Plan, direct_targets: Mapping[str, Endpoint] | None = None) -> list[Check]:
    """Every check the Plan implies, in report order.

    ``direct_targets`` maps each app host to an address it can reach on the
    network but its app user must not (another host of the deployment); without
    one the direct-outbound check cannot be generated for that host.
    """
    direct_targets = direct_targets or {}
    out: list[Check] = []
    for host in plan.hosts:
        out += _host_checks(plan, host)
        out.append(_scope_check(plan, host))
        if "postgresql" in host.components:
            out += _postgresql_checks(plan, host)
        if "backup" in host.components:
            out += _backup_checks(plan, host)
        if "redis" in host.components:
            out += _redis_checks(plan, host)
        if "app" in host.components:
            out += _egress_checks(plan, host, direct_targets.get(host.name))
            out += _app_checks(plan, host)
            if plan.cache.mode == "local":
                out.append(_redis_app_user(plan, host))
        if "nginx" in host.components:
            out += _nginx_checks(plan, host)
    order = {c: i for i, c in enumerate(COMPONENTS)}
    return sorted(out, key=lambda c: order[c.component])


# -- host ------------------------------------------------------------------------------

def _secret_files(plan: Plan, host: PlanHost) -> list[str]:
    files = []
    if "app" in host.components:
        files.append(plan.app.env_file)
        if plan.tls.mode != "acme":
            files += [TLS_KEY, NGINX_TLS_KEY]
    elif plan.tls.internal:
        files.append(TLS_KEY)
    if "redis" in host.components and plan.cache.tls:
        files.append(REDIS_TLS_KEY)
    if "backup" in host.components and plan.backups.get("encrypted"):
        files.append(BACKUP_KEY)
    return files


def _exposed_ports(plan: Plan, host: PlanHost) -> list[int]:
    ports = {host.ssh_port}
    if "nginx" in host.components:
        ports |= {80, 443}
    for wiring, component in ((plan.database, "postgresql"), (plan.cache, "redis")):
        if component in host.components and any(
                a not in ("127.0.0.1", "::1") for a in wiring.listen):
            ports.add(wiring.port)
    return sorted(ports)


def _host_checks(plan: Plan, host: PlanHost) -> list[Check]:
    # The fields of the record role's deployment.json that the Plan decides.
    record = {
        "host": host.name,
        "customer_id": plan.customer.id,
        "profile_fingerprint": plan.profile_fingerprint,
        "topology": plan.topology,
        "components": list(host.components),
        "egress_allowlist": sorted(str(e) for e in plan.egress_allowlist),
        "third_parties": sorted(plan.third_party_ids()),
        "env_keys": sorted(plan.app.env_keys) if "app" in host.components else [],
    }
    out = [
        _check(host, "host", "nftables", "nftables is active and drops unexpected traffic",
               "the nftables service active, with an input hook whose policy is drop and "
               f"an output rule for the app user {plan.app.user}",
               fix="run `selfhost deploy PROFILE` (the egress role loads the ruleset); "
               "`systemctl status nftables` on the host shows why it is not active",
               app_user=plan.app.user, app_host="app" in host.components),
        _check(host, "host", "sysctl", "kernel network hardening is in effect",
               ", ".join(f"{k}={v}" for k, v in SYSCTL_HARDENING.items()),
               sysctl=dict(SYSCTL_HARDENING)),
        _check(host, "host", "deployment_record",
               f"the deployment record {DEPLOYMENT_RECORD} matches the Plan",
               f"profile fingerprint {plan.profile_fingerprint}, and the Plan's components, "
               "allowlist, third parties and app keys for this host",
               fix="deploy this profile (`selfhost deploy PROFILE`): the hosts run another "
               "deployment than the profile describes", record=record),
    ]
    if secret := _secret_files(plan, host):
        out.append(_check(host, "host", "secret_files", "secret files are readable by "
                          "their owner only", f"mode 0600: {', '.join(secret)}",
                          fix="`chmod 0600` the file, then redeploy to confirm",
                          files=secret))
    if "nginx" not in host.components:
        ports = _exposed_ports(plan, host)
        out.append(_check(host, "host", "exposed_ports", "only the Plan's services listen "
                          "beyond loopback", f"TCP ports {', '.join(map(str, ports))}",
                          fix="stop the extra service or bind it to 127.0.0.1",
                          ports=ports))
    return out


# -- backups -------------------------------------------------------------------------

def _backup_checks(plan: Plan, host: PlanHost) -> list[Check]:
    directory = str(plan.backups["directory"])
    return [
        _check(host, "backup", "timer", "daily database backups are scheduled",
               f"{BACKUP_TIMER} enabled and active", unit=BACKUP_TIMER,
               fix="run `selfhost deploy PROFILE`; `systemctl status "
               f"{BACKUP_TIMER}` on the host shows why it is not active"),
        _check(host, "backup", "directory", "the backup directory is private to root",
               f"{directory}: a directory, mode 0700, owner root", path=directory,
               fix=f"`chmod 0700 {directory}` and `chown root:root {directory}`"),
    ]


# -- PostgreSQL ----------------------------------------------------------------------

def _postgresql_checks(plan: Plan, host: PlanHost) -> list[Check]:
    db = plan.database
    remote = db.tls
    out = [
        _check(host, "postgresql", "running", "PostgreSQL is running and answers",
               "the postgresql service active and `SELECT 1` answered",
               fix="`systemctl status postgresql@*` and `journalctl -u postgresql@*` on the "
               "host show why it stopped; then redeploy"),
        _check(host, "postgresql", "password_encryption", "new passwords are stored as SCRAM",
               "password_encryption = scram-sha-256"),
        _check(host, "postgresql", "scram_secrets", "every login role has a SCRAM secret",
               f"every login role (here {db.user}) has a SCRAM-SHA-256 secret; only "
               "postgres, reached by peer authentication on the local socket, has none",
               fix="set the role's password again with password_encryption=scram-sha-256 "
               "(redeploy does it)", user=db.user),
        _check(host, "postgresql", "hba_methods", "pg_hba.conf has no weak methods",
               "no host line with trust, password or ident",
               fix="remove the line from pg_hba.conf (or redeploy, which rewrites it) and "
               "reload PostgreSQL"),
        _check(host, "postgresql", "listen", "PostgreSQL listens only where the Plan says",
               f"listening on {', '.join(db.listen)} port {db.port} only",
               listen=list(db.listen), port=db.port),
        _check(host, "postgresql", "connection_logging", "connections are logged",
               "log_connections = on and log_disconnections = on"),
        _check(host, "postgresql", "data_directory", "the data directory is private",
               "data directory owned by postgres, no group or other permissions (0700)",
               fix="`chmod 0700` the data directory (PostgreSQL refuses to start otherwise "
               "after a restart)"),
    ]
    if remote:
        out += [
            _check(host, "postgresql", "hostssl_only", "remote clients must use TLS",
                   "every pg_hba line for a non-loopback address is hostssl, and only the "
                   f"app hosts ({', '.join(db.allowed_clients)}) are allowed",
                   clients=list(db.allowed_clients)),
            _check(host, "postgresql", "ssl", "TLS is on for remote clients",
                   "ssl = on, its key file mode 0600 owned by postgres"),
        ]
    return out


# -- Redis --------------------------------------------------------------------------

def _redis_checks(plan: Plan, host: PlanHost) -> list[Check]:
    cache = plan.cache
    split = cache.tls
    tls_expect = (f"TLS on port {cache.port}, the plain port disabled" if split else
                  f"plain port {cache.port} on loopback, no TLS port")
    return [
        _check(host, "redis", "running_as_redis", "Redis runs as the redis user",
               "redis-server active, its process owned by redis"),
        _check(host, "redis", "bind", "Redis listens only where the Plan says",
               f"listening on {', '.join(cache.listen)} port {cache.port} only",
               listen=list(cache.listen), port=cache.port),
        _check(host, "redis", "protected_mode", "Redis protected mode is on",
               "protected-mode yes in the Redis configuration",
               fix="set `protected-mode yes` in /etc/redis/redis.conf (or redeploy) and "
               "restart redis-server"),
        _check(host, "redis", "noauth_ping", "Redis refuses unauthenticated clients",
               "an unauthenticated PING answered with NOAUTH",
               address=cache.listen[0], port=cache.port, tls=split),
        _check(host, "redis", "config_file", "the Redis configuration is not world-readable",
               "/etc/redis/redis.conf group redis, no permissions for others (0640)",
               fix="`chmod 0640 /etc/redis/redis.conf` (it holds the password hashes)"),
        _check(host, "redis", "tls", "Redis uses TLS exactly when it is reached from other "
               "hosts", tls_expect, tls=split, port=cache.port),
    ]


def _redis_app_user(plan: Plan, host: PlanHost) -> Check:
    return _check(host, "redis", "app_user_config_refused",
                  "the app's Redis user cannot run administrative commands",
                  f"CONFIG GET answered with NOPERM for the user {plan.cache.user} "
                  f"(connecting from {host.name} with the app's own credentials)",
                  fix="the app user's ACL must exclude @admin and @dangerous; redeploy to "
                  "restore the ACL file", user=plan.cache.user)


# -- nginx --------------------------------------------------------------------------

def _nginx_checks(plan: Plan, host: PlanHost) -> list[Check]:
    tls = plan.tls
    out = [
        _check(host, "nginx", "config_test", "the nginx configuration is valid",
               "`nginx -t` succeeds",
               fix="run `nginx -t` on the host to see the error; redeploy to restore the "
               "generated configuration"),
        _check(host, "nginx", "tls13", "TLS 1.3 is accepted", "a TLS 1.3 handshake succeeds",
               domain=tls.domain),
    ]
    if tls.min_version == "1.3":
        out.append(_check(host, "nginx", "tls12_refused", "TLS 1.2 is refused (minimum 1.3)",
                          "a TLS 1.2-only handshake fails",
                          fix="set `ssl_protocols TLSv1.3;` in every server block (or "
                          "redeploy) and reload nginx", domain=tls.domain))
    out += [
        _check(host, "nginx", "certificate", "the certificate is valid for the domain",
               f"a chain that verifies for {tls.domain} and does not expire within 30 days",
               fix="renew or replace the certificate (`selfhost deploy` renews internal "
               "ones; in provided mode update tls.cert_file)", domain=tls.domain,
               mode=tls.mode, min_days=30),
        _check(host, "nginx", "hsts", "HTTPS responses carry HSTS",
               "a Strict-Transport-Security header with max-age of at least one year",
               domain=tls.domain),
        _check(host, "nginx", "server_header", "the Server header shows no version",
               "`Server: nginx` without a version (server_tokens off)", domain=tls.domain),
        _check(host, "nginx", "unknown_host", "requests for other host names are rejected",
               "a request with an unknown Host header gets no content (connection closed, "
               "handshake refused or a 4xx status)", domain=tls.domain),
        _check(host, "nginx", "workers_not_root", "nginx workers do not run as root",
               "every `nginx: worker process` owned by www-data"),
        _check(host, "nginx", "exposed_ports", "only HTTP and HTTPS are exposed",
               f"TCP ports {', '.join(map(str, _exposed_ports(plan, host)))} beyond loopback "
               "(80, 443 and ssh)", fix="stop the extra service or bind it to 127.0.0.1",
               ports=_exposed_ports(plan, host)),
    ]
    return out


# -- app ----------------------------------------------------------------------------

def _app_checks(plan: Plan, host: PlanHost) -> list[Check]:
    app = plan.app
    values = {e.key: e.value for e in app.env if e.secret is None and e.value is not None}
    url_keys = {e.key: e.value for e in app.env
                if e.placement == "url-password" and e.value is not None}
    expected_ai = next(v for k, v in values.items() if k == "AI_PROVIDER")
    return [
        _check(host, "app", "unit", "the app's service runs with its hardening",
               f"{APP_UNIT} active as {app.user}, with "
               + ", ".join(f"{k}={v}" for k, v in APP_UNIT_HARDENING.items()),
               unit=APP_UNIT, user=app.user, hardening=dict(APP_UNIT_HARDENING)),
        _check(host, "app", "env_file_mode", "the environment file is private to the app",
               f"{app.env_file} mode 0600, owned by {app.user}",
               fix=f"`chown {app.user} {app.env_file} && chmod 0600 {app.env_file}`, or "
               "redeploy", path=app.env_file, user=app.user),
        _check(host, "app", "env_keys", "the app is wired exactly as the Plan says",
               f"exactly the keys {', '.join(app.env_keys)}, with the Plan's values",
               fix="redeploy: the app role rewrites the environment file from the Plan; a "
               "key the Plan lacks is a third party the subprocessor list does not name",
               keys=app.env_keys, values=values, url_keys=url_keys),
        _check(host, "app", "healthz", "the app reports its wiring on /healthz",
               f"/healthz ok, with database and cache reachable and AI {expected_ai}",
               fix=f"`journalctl -u {APP_UNIT}` on the host shows why a dependency fails",
               port=app.port, ai=expected_ai),
    ]


# -- egress -------------------------------------------------------------------------

def _scope_check(plan: Plan, host: PlanHost) -> Check:
    app_host = "app" in host.components
    fenced = [f"{plan.app.user} jumps to a chain that ends in a drop"] if app_host else []
    if plan.egress_scope == "host":
        expected = "; ".join([*fenced, "an output chain with policy drop and no accept-all "
                              "rule: every user's new connections dropped but for the "
                              "host's own allowances"])
        fix = ("redeploy: the egress role writes the output chain with policy drop; a policy "
               "changed to accept, or an accept-all rule added (by hand or by another tool), "
               "lets every user of the host out")
    else:
        expected = "; ".join(fenced or ["nothing to fence (scope app, no app on this host)"])
        fix = "redeploy: the egress role writes the app user's chain from the Plan"
    return _check(host, "egress", "scope", f"the firewall enforces egress scope "
                  f"{plan.egress_scope}", expected, fix=fix, scope=plan.egress_scope,
                  user=plan.app.user, app_host=app_host)


def _egress_checks(plan: Plan, host: PlanHost, target: Endpoint | None) -> list[Check]:
    allow = [str(e) for e in plan.egress_allowlist]
    shown = ", ".join(allow) or "nothing"
    out = [
        _check(host, "egress", "fence_first", "no accept rule of the output path can serve "
               "the app user",
               f"in each output chain that fences {plan.app.user}, its jump comes before every "
               "accept rule but the one for established/related connections",
               fix="redeploy: the egress role writes the output chain with the app user's jump "
               "first; an accept rule inserted before it (by hand or by another tool) lets the "
               "app user past its fence", user=plan.app.user),
        _check(host, "egress", "allowlist", "the proxy allows exactly the Plan's destinations",
               f"allowlist: {shown}",
               fix="redeploy: the egress role writes the allowlist from the Plan; a "
               "destination the Plan lacks is a third party the list does not name",
               allowlist=allow),
        _check(host, "egress", "unlisted_refused", "the proxy refuses an unlisted destination",
               f"CONNECT {UNLISTED_DESTINATION} refused by the proxy",
               fix="the proxy must deny everything outside its allowlist; redeploy the egress "
               "role", destination=str(UNLISTED_DESTINATION), port=plan.app.port,
               proxy_port=plan.proxy_port, user=plan.app.user),
        _check(host, "egress", "observed", "every destination contacted since the last "
               "deploy is on the list",
               f"the proxy's log shows connections only to the allowlist ({shown})",
               fix="find which component contacted it (the proxy log has the time); if it "
               "is a new third party, add it to the profile so the list names it",
               allowlist=allow),
    ]
    if target is not None:
        out.append(_check(host, "egress", "direct_dropped",
                          "the app user cannot connect out directly",
                          f"a direct TCP connection from {plan.app.user} to {target} dropped "
                          "(while root reaches it, so the firewall is what stops it)",
                          fix="redeploy: the egress role's nftables output rules drop the "
                          "app user's traffic except to the proxy and the Plan's database "
                          "and cache", target=str(target), user=plan.app.user,
                          scope=plan.egress_scope))
    listed = {e.host for e in plan.egress_allowlist}
    for provider, ai_host in sorted(AI_PROVIDER_HOSTS.items()):
        if ai_host in listed:
            continue
        destination = str(Endpoint(host=ai_host, port=443))
        out.append(_check(host, "egress", f"ai_refused.{provider}",
                          f"the {provider} API is unreachable (not chosen)",
                          f"CONNECT {destination} refused by the proxy",
                          fix=f"remove {ai_host} from the proxy's allowlist (redeploy)",
                          destination=destination, port=plan.app.port,
                          proxy_port=plan.proxy_port, user=plan.app.user))
    return out
