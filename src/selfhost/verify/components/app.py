"""The app (the app role): its hardened unit, its private environment file wired exactly
as the Plan says, and its own report of its dependencies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TypedDict, cast

from selfhost.verify.components.host import file_stats
from selfhost.verify.contract import (
    AnyCheck,
    CheckDef,
    Component,
    Context,
    Facts,
    Fragment,
    Outcome,
    Part,
    Section,
    bad,
    ok,
    unit_active,
    unit_props,
)
from selfhost.verify.remote_base import describe_stat, env_file

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
HEALTH_PARTS = ("database", "cache", "ai")


class Healthz(TypedDict, total=False):
    error: str
    status: int
    body: dict[str, object] | None


class AppFacts(TypedDict, total=False):
    env_error: str
    #: every key of the environment file; the value only for the keys the spec names public
    env: dict[str, str | None]
    #: the URL keys the spec names, their passwords removed
    url_hosts: dict[str, str]
    healthz: Healthz


def url_without_password(url: str) -> str:
    """The URL with its password removed, from the user part and from the query
    (libpq also takes ``password=`` there)."""
    from urllib.parse import urlsplit  # noqa: PLC0415 - shipped to the host on its own
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if parts.username is not None:
        netloc = f"{parts.username}@{netloc}"
    query = "&".join(p for p in parts.query.split("&")
                     if p.split("=", 1)[0].lower() not in ("password", "sslpassword"))
    return parts._replace(netloc=netloc, query=query).geturl()


def app_healthz(port: int) -> Healthz:
    import urllib.error  # noqa: PLC0415 - shipped to the host on its own
    import urllib.request  # noqa: PLC0415
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            return {"status": resp.status, "body": json.load(resp)}
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
        except ValueError:
            body = None
        return {"status": exc.code, "body": body}
    except (OSError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def collect_app(spec: dict[str, object]) -> AppFacts:
    out: AppFacts = {}
    try:
        env = env_file(str(spec["env_file"]))
    except OSError as exc:
        out["env_error"] = str(exc)
        env = {}
    public = set(cast(list[str], spec["public"]))
    out["env"] = {k: (v if k in public else None) for k, v in env.items()}
    out["url_hosts"] = {k: url_without_password(env[k])
                        for k in cast(list[str], spec["url_keys"]) if k in env}
    if spec.get("healthz", True):
        out["healthz"] = app_healthz(int(cast(int, spec["port"])))
    return out


SECTIONS = (Section("app", collect_app, (url_without_password, app_healthz)),)


def app_facts(facts: Facts) -> AppFacts:
    """The app's environment as the host has it (reconciliation reads it too)."""
    return cast(AppFacts, facts.section("app"))


def fragment(ctx: Context, *, public: list[str], url_keys: list[str], healthz: bool
             ) -> Fragment:
    """What reading the app's environment takes (reconciliation asks for it alone)."""
    return Fragment(sections={"app": {"env_file": ctx.plan.layout.app_env_file,
                                      "port": ctx.plan.app.port, "public": sorted(public),
                                      "url_keys": sorted(url_keys), "healthz": healthz}})


# -- checks ------------------------------------------------------------------------------

@dataclass(frozen=True)
class UnitParams:
    unit: str
    user: str
    hardening: dict[str, str]


def _unit(params: UnitParams, facts: Facts) -> Outcome:
    props = unit_props(facts).get(params.unit, {})
    active, state = unit_active(facts, params.unit)
    wrong = [f"{k}={props.get(k)}" for k, v in params.hardening.items() if props.get(k) != v]
    if props.get("User") != params.user:
        wrong.insert(0, f"User={props.get('User')}")
    if not active or wrong:
        return bad("; ".join([state, *wrong]))
    return ok(f"{state} as {props['User']}, hardened")


@dataclass(frozen=True)
class FileParams:
    path: str
    user: str


def _env_mode(params: FileParams, facts: Facts) -> Outcome:
    st = file_stats(facts).get(params.path, {})
    good = st.get("mode") == "0600" and st.get("owner") == params.user
    return (ok if good else bad)(describe_stat(st))


@dataclass(frozen=True)
class EnvParams:
    keys: tuple[str, ...]
    #: the Plan's values of the keys that hold no secret
    values: dict[str, str]
    #: the Plan's URLs whose password deploy inserts, without it
    url_keys: dict[str, str]


def _env_keys(params: EnvParams, facts: Facts) -> Outcome:
    a = app_facts(facts)
    if "env_error" in a:
        return bad(f"cannot read the environment file: {a['env_error']}")
    env, hosts = a["env"], a.get("url_hosts", {})
    extra = sorted(set(env) - set(params.keys))
    missing = sorted(set(params.keys) - set(env))
    wrong = [f"{k}={env[k]!r} (expected {v!r})" for k, v in params.values.items()
             if k in env and env[k] != v]
    wrong += [f"{k} is {hosts.get(k)!r} (expected {v!r} with its password)"
              for k, v in params.url_keys.items() if k in hosts and hosts[k] != v]
    problems = ([f"keys the Plan does not enable: {', '.join(extra)}"] if extra else []) \
        + ([f"missing keys: {', '.join(missing)}"] if missing else []) + wrong
    return bad("; ".join(problems)) if problems else ok(f"keys {', '.join(sorted(env))}")


def _healthz(ai: str, facts: Facts) -> Outcome:
    h = app_facts(facts)["healthz"]
    if "error" in h:
        return bad(f"/healthz did not answer: {h['error']}")
    body = h.get("body") or {}
    checks = cast(dict[str, dict[str, object]], body.get("checks", {}))
    parts = [f"{name}: {'ok' if checks.get(name, {}).get('ok') else 'FAILED'} "
             f"({checks.get(name, {}).get('detail', 'not reported')})" for name in HEALTH_PARTS]
    provider = checks.get("ai", {}).get("provider")
    good = h.get("status") == 200 and all(checks.get(n, {}).get("ok") for n in HEALTH_PARTS)
    if provider != ai:
        good = False
        parts.append(f"AI provider {provider} (expected {ai})")
    return (ok if good else bad)(f"HTTP {h.get('status')}; " + "; ".join(parts))


UNIT = CheckDef("app.unit", "app", "the app's unit is active as the app user, with "
                "NoNewPrivileges, ProtectSystem=strict and the rest of its hardening", _unit)
ENV_FILE_MODE = CheckDef("app.env_file_mode", "app", "the environment file has mode 0600 and "
                         "is owned by the app user", _env_mode)
ENV_KEYS = CheckDef("app.env_keys", "app", "the environment file has exactly the Plan's keys, "
                    "with the Plan's public values and URLs", _env_keys)
HEALTHZ = CheckDef("app.healthz", "app", "/healthz answers 200 with database, cache and AI "
                   "ok, and the Plan's AI provider", _healthz)
DEFS = (UNIT, ENV_FILE_MODE, ENV_KEYS, HEALTHZ)


def secret_files(ctx: Context) -> list[str]:
    return [ctx.plan.layout.app_env_file] if ctx.has("app") else []


def part(ctx: Context) -> Part:
    if not ctx.has("app"):
        return Part()
    app, layout, host = ctx.plan.app, ctx.plan.layout, ctx.host
    user, path, unit = layout.app_user, layout.app_env_file, layout.app_unit
    values = {e.key: e.value for e in app.env if e.secret is None and e.value is not None}
    url_keys = {e.key: e.value for e in app.env
                if e.placement == "url-password" and e.value is not None}
    ai = values["AI_PROVIDER"]
    checks: list[AnyCheck] = [
        UNIT.make(host, UnitParams(unit, user, dict(APP_UNIT_HARDENING)),
                  description="the app's service runs with its hardening",
                  expected=f"{unit} active as {user}, with "
                  + ", ".join(f"{k}={v}" for k, v in APP_UNIT_HARDENING.items())),
        ENV_FILE_MODE.make(host, FileParams(path, user),
                           description="the environment file is private to the app",
                           expected=f"{path} mode 0600, owned by {user}",
                           fix=f"`chown {user} {path} && chmod 0600 {path}`, or redeploy"),
        ENV_KEYS.make(host, EnvParams(tuple(app.env_keys), values, url_keys),
                      description="the app is wired exactly as the Plan says",
                      expected=f"exactly the keys {', '.join(app.env_keys)}, with the Plan's "
                      "values",
                      fix="redeploy: the app role rewrites the environment file from the "
                      "Plan; a key the Plan lacks is a third party the subprocessor list does "
                      "not name"),
        HEALTHZ.make(host, ai, description="the app reports its wiring on /healthz",
                     expected=f"/healthz ok, with database and cache reachable and AI {ai}",
                     fix=f"`journalctl -u {unit}` on the host shows why a dependency fails"),
    ]
    out = fragment(ctx, public=list(values), url_keys=list(url_keys), healthz=True)
    out.units[unit] = list(APP_UNIT_HARDENING)
    out.files.append(path)
    return Part(checks, out)


COMPONENT = Component("app", DEFS, part, SECTIONS, secret_files)
