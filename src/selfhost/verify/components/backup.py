"""Database backups (the backup role): the timer that runs them, a directory private to
root, and the encryption key."""

from __future__ import annotations

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
    bad,
    ok,
    unit_active,
    unit_props,
)
from selfhost.verify.remote_base import describe_stat


def _timer(unit: str, facts: Facts) -> Outcome:
    active, state = unit_active(facts, unit)
    enabled = unit_props(facts).get(unit, {}).get("UnitFileState")
    if not active or enabled != "enabled":
        return bad(f"{state}, unit file {enabled or 'unknown'}")
    return ok(f"{state}, enabled")


def _directory(path: str, facts: Facts) -> Outcome:
    st = file_stats(facts).get(path, {})
    if not st.get("dir") or st.get("mode") != "0700" or st.get("owner") != "root":
        return bad(describe_stat(st))
    return ok(describe_stat(st))


TIMER = CheckDef("backup.timer", "backup", "the backup timer is enabled and active", _timer)
DIRECTORY = CheckDef("backup.directory", "backup", "the backup directory is a directory, "
                     "mode 0700, owned by root", _directory)
DEFS = (TIMER, DIRECTORY)


def secret_files(ctx: Context) -> list[str]:
    encrypted = ctx.has("backup") and ctx.plan.backups.get("encrypted")
    return [ctx.plan.layout.backup_key] if encrypted else []


def part(ctx: Context) -> Part:
    if not ctx.has("backup"):
        return Part()
    timer, directory = ctx.plan.layout.backup_timer, str(ctx.plan.backups["directory"])
    checks: list[AnyCheck] = [
        TIMER.make(ctx.host, timer, description="daily database backups are scheduled",
                   expected=f"{timer} enabled and active",
                   fix=f"run `selfhost deploy PROFILE`; `systemctl status {timer}` on the "
                   "host shows why it is not active"),
        DIRECTORY.make(ctx.host, directory, description="the backup directory is private to "
                       "root", expected=f"{directory}: a directory, mode 0700, owner root",
                       fix=f"`chmod 0700 {directory}` and `chown root:root {directory}`"),
    ]
    return Part(checks, Fragment(units={timer: ["UnitFileState"]}, files=[directory]))


COMPONENT = Component("backup", DEFS, part, secret_files=secret_files)
