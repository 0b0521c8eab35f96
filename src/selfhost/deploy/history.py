"""The controller's last deploy runs: one summary each, kept beside the profile.

``<state dir>/runs.json`` holds the newest :data:`KEEP` runs (dry runs and
failed ones too), each with its outcome, per-host counts and failed tasks, so
that a support bundle can show what the last runs did without the runner's
artifacts (which are removed after every run). The text is redacted with the
run's own redactor before it is written: a module that echoed a secret in its
failure message leaves it nowhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from selfhost.atomic import write_atomic
from selfhost.deploy.redact import Redactor
from selfhost.deploy.runner import RunOutcome

HISTORY_NAME = "runs.json"
#: runs kept, the newest
KEEP = 20


def history_path(state_dir: Path) -> Path:
    return state_dir / HISTORY_NAME


def read(path: Path) -> list[dict[str, Any]]:
    """The runs recorded at ``path``, oldest first; an unreadable file counts as none
    (it is history, not state: the next run starts it again)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


def entry(outcome: RunOutcome, *, check: bool, limit: str | None, tool_version: str,
          now: datetime | None = None) -> dict[str, Any]:
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"finished": stamp, "tool_version": tool_version, "check": check, "limit": limit,
            "status": outcome.status, "rc": outcome.rc, "seconds": round(outcome.seconds, 1),
            "stats": {h: asdict(s) for h, s in sorted(outcome.stats.items())},
            "failures": [asdict(f) for f in outcome.failures],
            "leaked_secrets": sorted({h.secret for h in outcome.leaks})}


def append(path: Path, run: dict[str, Any], redactor: Redactor) -> None:
    """Add ``run`` to the history at ``path``, redacted, keeping the newest :data:`KEEP`."""
    runs = [*read(path), run][-KEEP:]
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = redactor.redact(json.dumps(runs, indent=2, sort_keys=True)) + "\n"
    write_atomic(path, text.encode(), mode=0o600)
