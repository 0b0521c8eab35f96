"""ansible-runner's event stream, reduced to what a person watching a deploy needs.

Each raw event (a dict written by the runner's ``awx_display`` callback) becomes
at most one :class:`Event`; the run's ``playbook_on_stats`` event becomes the
per-host :class:`HostStats`. Nothing here prints: see ``progress``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["ok", "changed", "failed", "unreachable", "skipped", "ignored"]
Kind = Literal["task", "result", "play", "output", "stats"]

_RESULT_EVENTS: dict[str, Outcome] = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}
#: the line Ansible puts in place of a ``no_log`` result
HIDDEN = "the output has been hidden due to the fact that 'no_log: true' was specified"


@dataclass(frozen=True)
class Event:
    kind: Kind
    #: task name as Ansible shows it (``role : task``), or the play's name
    task: str = ""
    host: str = ""
    outcome: Outcome | None = None
    #: the module (``ansible.builtin.apt``) for task and result events
    action: str = ""
    #: the module's message for failed and unreachable results; output lines otherwise
    message: str = ""
    #: unified diff of what the task changes (``--check --diff``), else empty
    diff: str = ""
    stats: dict[str, HostStats] = field(default_factory=dict)


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass(frozen=True)
class Failure:
    host: str
    task: str
    action: str
    message: str
    unreachable: bool

    def describe(self) -> str:
        if self.unreachable:
            return f"host {self.host} is unreachable: {self.message}"
        module = f" ({self.action})" if self.action else ""
        return f"host {self.host}: task '{self.task}'{module} failed: {self.message}"


def _task_name(data: Mapping[str, Any]) -> str:
    name = str(data.get("task") or "")
    role = str(data.get("role") or "")
    return f"{role} : {name}" if role and not name.startswith(f"{role} :") else name


def module_message(res: Mapping[str, Any]) -> str:
    """The most useful one-paragraph explanation a failed result carries."""
    if res.get("censored"):
        return HIDDEN
    stderr = res.get("stderr")
    if res.get("msg") == "non-zero return code" and isinstance(stderr, str) and stderr.strip():
        # a command's own words say more than Ansible's: the last lines of its stderr
        return f"exit {res.get('rc')}: " + " / ".join(stderr.strip().splitlines()[-3:])[:600]
    for key in ("msg", "reason", "stderr", "module_stderr", "stdout", "module_stdout"):
        value = res.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    results = res.get("results")
    if isinstance(results, list):
        for item in results:
            if isinstance(item, Mapping) and item.get("failed"):
                return module_message(item)
    return "no message (run with more verbosity to see the module's output)"


def parse(raw: Mapping[str, Any]) -> Event | None:
    """One runner event as an :class:`Event`; ``None`` for events nobody watches."""
    name = raw.get("event", "")
    data: Mapping[str, Any] = raw.get("event_data") or {}
    if name == "playbook_on_task_start":
        return Event("task", task=_task_name(data), action=str(data.get("task_action", "")))
    if name == "playbook_on_play_start":
        return Event("play", task=str(data.get("play") or data.get("name") or ""))
    if name in _RESULT_EVENTS or name == "runner_item_on_failed":
        res: Mapping[str, Any] = data.get("res") or {}
        outcome: Outcome = _RESULT_EVENTS.get(name, "failed")
        if outcome == "ok" and res.get("changed"):
            outcome = "changed"
        if outcome == "failed" and data.get("ignore_errors"):
            outcome = "ignored"
        message = module_message(res) if outcome in ("failed", "unreachable", "ignored") else ""
        if name == "runner_item_on_failed":
            # The task's own failed result follows and carries the summary.
            return None
        diff = render_diff(res.get("diff")) if outcome == "changed" else ""
        return Event("result", task=_task_name(data), host=str(data.get("host", "")),
                     outcome=outcome, action=str(data.get("task_action", "")), message=message,
                     diff=diff)
    if name == "playbook_on_stats":
        return Event("stats", stats=stats_from(data))
    if name in ("verbose", "error", "warning", "deprecated") and raw.get("stdout"):
        return Event("output", message=str(raw["stdout"]))
    return None


def render_diff(diff: Any) -> str:
    """Ansible's ``diff`` result (a dict, or a list of them) as unified diff text."""
    items = diff if isinstance(diff, list) else [diff] if isinstance(diff, Mapping) else []
    out: list[str] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        if isinstance(item.get("prepared"), str):
            out.append(item["prepared"].rstrip("\n"))
            continue
        before, after = item.get("before"), item.get("after")
        if not isinstance(before, str) or not isinstance(after, str):
            continue
        out += [line.rstrip("\n") for line in difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True),
            fromfile=str(item.get("before_header", "before")),
            tofile=str(item.get("after_header", "after")))]
    return "\n".join(out)


def stats_from(data: Mapping[str, Any]) -> dict[str, HostStats]:
    fields = {"ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable",
              "skipped": "skipped", "rescued": "rescued", "ignored": "ignored"}
    out: dict[str, HostStats] = {}
    for key, attr in fields.items():
        counts = data.get(key) or {}
        for host, count in counts.items():
            setattr(out.setdefault(host, HostStats()), attr, int(count))
    return out


def failure(event: Event) -> Failure | None:
    """The failure an event reports, if any (ignored errors are not failures)."""
    if event.kind != "result" or event.outcome not in ("failed", "unreachable"):
        return None
    return Failure(host=event.host, task=event.task, action=event.action,
                   message=event.message, unreachable=event.outcome == "unreachable")
