"""Redis (the redis role): its user, where it listens, protected mode, no unauthenticated
access, a private configuration and ACL file, TLS exactly when reached from other hosts,
and an app user without administrative commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict, cast

from selfhost.verify.components.postgresql import ListenParams, listen_evaluation
from selfhost.verify.contract import (
    AnyCheck,
    CheckDef,
    Component,
    Context,
    Facts,
    Outcome,
    Part,
    Section,
    bad,
    ok,
    unit_active,
)
from selfhost.verify.remote_base import (
    TIMEOUT,
    StatFacts,
    describe_stat,
    env_file,
    stat_path,
)

# -- facts -------------------------------------------------------------------------------


class RedisServerFacts(TypedDict, total=False):
    conf_stat: StatFacts
    #: the directives verify reads (bind, port, tls-port, protected-mode, ...), includes
    #: followed; ACL lines keep the user name only
    conf: dict[str, list[str]]
    conf_error: str
    #: the ACL file the configuration names (its last `aclfile`); absent when none
    acl_stat: StatFacts
    #: the first line of the answer to an unauthenticated PING
    ping: str
    ping_error: str


class RedisAppFacts(TypedDict, total=False):
    error: str
    auth: str
    config: str
    user: str | None


def redis_conf(path: str, seen: set[str]) -> dict[str, list[str]]:
    """The directives verify reads, following includes; others (passwords) are skipped."""
    wanted = {"bind", "port", "tls-port", "protected-mode", "include", "aclfile", "user"}
    out: dict[str, list[str]] = {}
    if path in seen:
        return out
    seen.add(path)
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            words = line.split()
            if not words or words[0].startswith("#") or words[0].lower() not in wanted:
                continue
            key = words[0].lower()
            if key == "user":  # ACL lines carry password hashes: keep the name only
                out.setdefault("user", []).append(words[1] if len(words) > 1 else "")
            elif key == "include":
                for sub, values in redis_conf(words[1], seen).items():
                    out.setdefault(sub, []).extend(values)
            else:
                out.setdefault(key, []).append(" ".join(words[1:]))
    return out


def redis_exchange(address: str, port: int, use_tls: bool, ca: str,
                   commands: list[list[str]]) -> list[str]:
    """Send RESP commands, return the first line of each reply."""
    import socket  # noqa: PLC0415 - shipped to the host on its own
    import ssl  # noqa: PLC0415
    raw = socket.create_connection((address, port), timeout=TIMEOUT)
    sock: socket.socket = raw
    if use_tls:
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = False  # the address is what the Plan names; the CA is pinned
        sock = ctx.wrap_socket(raw)
    replies = []
    with sock:
        reader = sock.makefile("rb")
        for cmd in commands:
            payload = f"*{len(cmd)}\r\n" + "".join(
                f"${len(p.encode())}\r\n{p}\r\n" for p in cmd)
            sock.sendall(payload.encode())
            replies.append(reader.readline().decode(errors="replace").strip()[:200])
    return replies


def collect_redis_server(spec: dict[str, str]) -> RedisServerFacts:
    import ssl  # noqa: PLC0415 - shipped to the host on its own
    out: RedisServerFacts = {"conf_stat": stat_path(spec["conf"])}
    try:
        out["conf"] = redis_conf(spec["conf"], set())
    except OSError as exc:
        out["conf_error"] = str(exc)
    acl = out.get("conf", {}).get("aclfile", [])
    if acl:
        out["acl_stat"] = stat_path(acl[-1])
    try:
        out["ping"] = redis_exchange(spec["address"], int(spec["port"]), bool(spec["tls"]),
                                     spec["ca"], [["PING"]])[0]
    except (OSError, ssl.SSLError) as exc:
        out["ping_error"] = f"{type(exc).__name__}: {exc}"
    return out


def collect_redis_app(spec: dict[str, str]) -> RedisAppFacts:
    """Authenticate as the app does (its own URL) and ask for CONFIG."""
    import ssl  # noqa: PLC0415 - shipped to the host on its own
    from urllib.parse import unquote, urlsplit  # noqa: PLC0415
    url = urlsplit(env_file(spec["env_file"]).get("REDIS_URL", ""))
    if not url.hostname:
        return {"error": "REDIS_URL is not set in the environment file"}
    auth = ["AUTH", unquote(url.username or "default"), unquote(url.password or "")]
    try:
        replies = redis_exchange(url.hostname, url.port or 6379, url.scheme == "rediss",
                                 spec["ca"], [auth, ["CONFIG", "GET", "maxmemory"]])
    except (OSError, ssl.SSLError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"auth": replies[0], "config": replies[1], "user": url.username}


SECTIONS = (Section("redis_server", collect_redis_server, (redis_conf, redis_exchange)),
            Section("redis_app", collect_redis_app, (redis_exchange,)))


def _server(facts: Facts) -> RedisServerFacts:
    return cast(RedisServerFacts, facts.section("redis_server"))


# -- checks ------------------------------------------------------------------------------

def _running(unit: str, facts: Facts) -> Outcome:
    active, state = unit_active(facts, unit)
    procs: dict[str, list[str]] = facts.section("processes")
    owners = sorted(set(procs.get("redis-server", [])))
    good = active and owners == ["redis"]
    return (ok if good else bad)(f"{state}; processes owned by {', '.join(owners) or 'none'}")


def _protected(_: None, facts: Facts) -> Outcome:
    values = _server(facts).get("conf", {}).get("protected-mode", [])
    value = values[-1] if values else "(not set: Redis defaults to yes)"
    return (ok if not values or values[-1].lower() == "yes" else bad)(f"protected-mode {value}")


def _noauth(_: None, facts: Facts) -> Outcome:
    r = _server(facts)
    if "ping_error" in r:
        return bad(f"could not ask: {r['ping_error']}")
    return (ok if r["ping"].startswith("-NOAUTH") else bad)(f"PING answered {r['ping']!r}")


def _private(st: StatFacts) -> bool:
    return (bool(st.get("exists")) and st.get("group") == "redis"
            and int(st.get("mode", "7777"), 8) & 0o007 == 0)


def _config_file(_: None, facts: Facts) -> Outcome:
    st = _server(facts)["conf_stat"]
    return (ok if _private(st) else bad)(describe_stat(st))


def _acl_file(path: str, facts: Facts) -> Outcome:
    """The users' password hashes are in the file Redis is configured with; one not
    named at all means the users are elsewhere than the deployment keeps them."""
    server = _server(facts)
    named = server.get("conf", {}).get("aclfile", [])
    if not named:
        return bad(f"the configuration names no aclfile ({path} expected)")
    st = server.get("acl_stat", {})
    where = "" if named[-1] == path else f" (the configuration names {named[-1]})"
    return (ok if _private(st) and not where else bad)(f"{describe_stat(st)}{where}")


@dataclass(frozen=True)
class TlsParams:
    tls: bool
    port: int


def _tls(params: TlsParams, facts: Facts) -> Outcome:
    conf = _server(facts).get("conf", {})
    port = (conf.get("port") or ["6379"])[-1]
    tls_port = (conf.get("tls-port") or ["0"])[-1]
    want = str(params.port)
    good = (port == "0" and tls_port == want) if params.tls else (port == want
                                                                  and tls_port == "0")
    return (ok if good else bad)(f"port {port}, tls-port {tls_port}")


def _app_user(_: str, facts: Facts) -> Outcome:
    r = cast(RedisAppFacts, facts.section("redis_app"))
    if "error" in r:
        return bad(f"could not connect as the app: {r['error']}")
    if r["auth"] != "+OK":
        return bad(f"the app's own credentials were refused: {r['auth']!r}")
    return (ok if r["config"].startswith("-NOPERM") else bad)(
        f"as {r.get('user')}: CONFIG GET answered {r['config']!r}")


RUNNING = CheckDef("redis.running_as_redis", "redis", "redis-server is active, its "
                   "processes owned by redis", _running)
BIND = CheckDef("redis.bind", "redis", "Redis listens on the Plan's addresses and port only",
                listen_evaluation("Redis"))
PROTECTED_MODE = CheckDef("redis.protected_mode", "redis", "protected-mode is yes (or left at "
                          "its default, yes)", _protected)
NOAUTH_PING = CheckDef("redis.noauth_ping", "redis", "an unauthenticated PING is answered "
                       "with NOAUTH", _noauth)
CONFIG_FILE = CheckDef("redis.config_file", "redis", "redis.conf is group redis with no "
                       "permissions for others", _config_file)
ACL_FILE = CheckDef("redis.acl_file", "redis", "the ACL file redis.conf names (the users' "
                    "password hashes) is the layout's, group redis with no permissions for "
                    "others", _acl_file)
TLS = CheckDef("redis.tls", "redis", "TLS-only on the Plan's port when other hosts reach "
               "Redis, else plain on loopback and no TLS port", _tls)
APP_USER = CheckDef("redis.app_user_config_refused", "redis", "the app's Redis user, with the "
                    "app's own credentials, gets NOPERM for CONFIG GET", _app_user)
DEFS = (RUNNING, BIND, PROTECTED_MODE, NOAUTH_PING, CONFIG_FILE, ACL_FILE, TLS, APP_USER)


def secret_files(ctx: Context) -> list[str]:
    if not ctx.has("redis"):
        return []
    layout = ctx.plan.layout
    return [layout.redis_reload_password_file] + ([layout.redis_tls_key]
                                                  if ctx.plan.cache.tls else [])


def part(ctx: Context) -> Part:
    layout, cache, host = ctx.plan.layout, ctx.plan.cache, ctx.host
    out = Part()
    if ctx.has("redis"):
        conf = layout.redis_config
        tls_expect = (f"TLS on port {cache.port}, the plain port disabled" if cache.tls else
                      f"plain port {cache.port} on loopback, no TLS port")
        checks: list[AnyCheck] = [
            RUNNING.make(host, layout.redis_unit, description="Redis runs as the redis user",
                         expected="redis-server active, its process owned by redis"),
            BIND.make(host, ListenParams(tuple(cache.listen), cache.port),
                      description="Redis listens only where the Plan says",
                      expected=f"listening on {', '.join(cache.listen)} port {cache.port} "
                      "only"),
            PROTECTED_MODE.make(host, None, description="Redis protected mode is on",
                                expected="protected-mode yes in the Redis configuration",
                                fix=f"set `protected-mode yes` in {conf} (or redeploy) and "
                                f"restart {layout.redis_unit}"),
            NOAUTH_PING.make(host, None, description="Redis refuses unauthenticated clients",
                             expected="an unauthenticated PING answered with NOAUTH"),
            CONFIG_FILE.make(host, None, description="the Redis configuration is not "
                             "world-readable", expected=f"{conf} group redis, no permissions "
                             "for others (0640)",
                             fix=f"`chmod 0640 {conf}`"),
            ACL_FILE.make(host, layout.redis_acl_file, description="the Redis users' file "
                          "is not world-readable", expected=f"redis.conf names "
                          f"`aclfile {layout.redis_acl_file}`, group redis, no permissions "
                          "for others (0640)", fix=f"`chmod 0640 {layout.redis_acl_file}` (it "
                          "holds the password hashes), or redeploy"),
            TLS.make(host, TlsParams(cache.tls, cache.port), description="Redis uses TLS "
                     "exactly when it is reached from other hosts", expected=tls_expect),
        ]
        out.checks += checks
        out.fragment.sections["redis_server"] = {
            "conf": conf, "ca": layout.ca_cert, "address": cache.listen[0],
            "port": cache.port, "tls": cache.tls}
        out.fragment.units[layout.redis_unit] = []
        out.fragment.processes.append("redis-server")
    if ctx.has("app") and cache.mode == "local":
        out.checks.append(APP_USER.make(
            host, cache.user, description="the app's Redis user cannot run administrative "
            "commands", expected=f"CONFIG GET answered with NOPERM for the user {cache.user} "
            f"(connecting from {host.name} with the app's own credentials)",
            fix="the app user's ACL must exclude @admin and @dangerous; redeploy to restore "
            "the ACL file"))
        out.fragment.sections["redis_app"] = {"env_file": layout.app_env_file,
                                              "ca": layout.ca_cert}
    return out


COMPONENT = Component("redis", DEFS, part, SECTIONS, secret_files)
