"""Summaries of the controller's last deploy runs, from ansible-runner's artifacts.

``deploy --keep-artifacts DIR`` keeps a run's artifacts (one directory per run,
named by the runner's ident). A bundle carries a summary of each, not the
artifacts themselves: status, exit code, per-host counts and each failed
task with its message, which is what the vendor needs to see why a run failed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from selfhost.deploy.events import failure, parse, stats_from

#: at most this many runs, the newest, per directory given
MAX_RUNS = 20


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def run_dirs(root: Path) -> list[Path]:
    """The runs under ``root`` (itself one run, or a directory of runs), newest first."""
    if (root / "job_events").is_dir():
        return [root]
    found = [p for p in root.iterdir() if (p / "job_events").is_dir()] if root.is_dir() else []
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)[:MAX_RUNS]


def summary(run: Path) -> dict[str, Any]:
    """What one run did, from its job events."""
    stats: dict[str, Any] = {}
    failures: list[dict[str, Any]] = []
    started = None
    events = sorted((run / "job_events").glob("*.json"),
                    key=lambda p: int(p.name.split("-", 1)[0]) if p.name[0].isdigit() else 0)
    for path in events:
        try:
            raw = json.loads(path.read_text(encoding="utf-8", errors="replace"))
        except (OSError, ValueError):
            continue
        if not isinstance(raw, dict):
            continue
        started = started or raw.get("created")
        if raw.get("event") == "playbook_on_stats":
            stats = {h: vars(s) for h, s in stats_from(raw.get("event_data") or {}).items()}
        event = parse(raw)
        if event is not None and (failed := failure(event)) is not None:
            failures.append({"host": failed.host, "task": failed.task,
                             "action": failed.action, "message": failed.message,
                             "unreachable": failed.unreachable})
    finished = datetime.fromtimestamp(run.stat().st_mtime, UTC).isoformat(timespec="seconds")
    return {"ident": run.name, "status": _read(run / "status"), "rc": _read(run / "rc"),
            "started": started, "finished": finished, "events": len(events),
            "stats": stats, "failures": failures}


def summaries(roots: list[Path]) -> list[dict[str, Any]]:
    return [summary(run) for root in roots for run in run_dirs(root)]
