"""``support_bundle()``: the one function behind ``selfhost support-bundle``.

Profile and secrets -> each host's answer (:mod:`selfhost.bundle.collect`) and
the controller's own records -> parts -> every part scrubbed
(:class:`~selfhost.deploy.redact.Scrubber`: the profile's secret values in all
their encodings, then credential shapes) -> the manifest, shown before anything
is written -> one gzipped tar, 0600, written whole or not at all.

Redaction happens in memory before the archive exists: no unredacted byte is
ever written on the controller. Secret files on the hosts are not even read.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from selfhost import __version__
from selfhost.atomic import write_atomic
from selfhost.bundle import collect, runs
from selfhost.bundle.parts import Gathered, host_parts
from selfhost.deploy import history, record
from selfhost.deploy.redact import Scrubber
from selfhost.deploy.service import DeployOptions, prepare
from selfhost.errors import InvalidInput, SelfhostError
from selfhost.targets import Deployment, resolve

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
DEFAULT_SINCE = "24h"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(\d{1,6})([smhdw])$")

Say = Callable[[str], None]


@dataclass(frozen=True)
class BundleOptions:
    inventory: Path | None = None
    sandbox: str | None = None
    since: str = DEFAULT_SINCE
    #: the archive; None: ``support-bundle-<customer>-<time>.tar.gz`` here
    output: Path | None = None
    #: run verify and include its report (the latest there can be)
    verify: bool = True
    #: directories of kept ansible-runner artifacts (``deploy --keep-artifacts``)
    artifacts: tuple[Path, ...] = ()
    #: list what the bundle would hold, write nothing
    dry_run: bool = False
    passphrase: str | None = field(default=None, repr=False)
    key_file: Path | None = None


@dataclass
class BundleResult:
    manifest: dict[str, Any]
    #: where the archive was written; None for a dry run
    path: Path | None

    @property
    def complete(self) -> bool:
        return not self.manifest["problems"]


def parse_since(value: str, now: float) -> float:
    """``24h``, ``90m``, ``7d``, ``2w``, ``30s`` before ``now``, or a time in ISO 8601
    (UTC unless it says otherwise) -> epoch seconds."""
    text = value.strip()
    if match := _DURATION.match(text):
        return now - int(match.group(1)) * _UNITS[match.group(2)]
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--since {value!r}: not a duration or a time (give a duration "
                           "like 24h, 90m, 7d or a UTC time like 2026-12-01T08:00:00Z)"
                           ) from None
    stamp = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    if stamp > now:
        raise InvalidInput(f"--since {value!r} is in the future (give a time before now)")
    return stamp


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _output(options: BundleOptions, customer: str, now: float) -> Path:
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    path = options.output or Path(f"support-bundle-{customer}-{stamp}.tar.gz")
    if not path.parent.resolve().is_dir():
        raise InvalidInput(f"--output {path}: the directory {path.parent} does not exist "
                           "(create it or choose another path)")
    if path.exists() or path.is_symlink():
        raise InvalidInput(f"--output {path}: the file exists; a bundle never overwrites "
                           "one (move it away or choose another path)")
    return path


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def _controller(deployment: Deployment, options: BundleOptions, say: Say) -> Gathered:
    out = Gathered()
    profile, customer = deployment.profile_path, deployment.plan.customer.id
    try:
        out.parts["controller/profile.yaml"] = profile.read_text(encoding="utf-8")
    except OSError as exc:
        out.problems.append(f"controller: cannot read {profile} ({exc.strerror})")
    for name, path in (("deployment.json", record.record_path(profile, customer)),
                       ("subprocessors.json", record.list_path(profile, customer)),
                       ("runs.json", history.history_path(record.state_dir(profile, customer)))):
        try:
            out.parts[f"controller/{name}"] = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            out.omitted[f"controller/{name}"] = f"{path} does not exist (never deployed)"
        except OSError as exc:
            out.problems.append(f"controller: cannot read {path} ({exc.strerror})")
    if options.artifacts:
        out.parts["controller/kept-runs.json"] = _dump(runs.summaries(list(options.artifacts)))
    if options.verify:
        # Imported here: verify brings pytest and testinfra, which a dry run never needs.
        from selfhost.verify.report import to_json  # noqa: PLC0415
        from selfhost.verify.service import run  # noqa: PLC0415

        say("running verify on every host")
        result, _ = run(deployment)
        out.parts["controller/verify-report.json"] = _dump(to_json(result))
        say(f"verify: {len(result.results) - len(result.failures)}/{len(result.results)} "
            "checks passed")
    return out


def _gather(deployment: Deployment, options: BundleOptions, since: float,
            say: Say) -> Gathered:
    plan = deployment.plan
    hosts = {h.name: h for h in plan.hosts}
    specs = {t.name: collect.spec(plan, hosts[t.name], since) for t in deployment.targets}
    say(f"collecting from {', '.join(specs)} (journal since {_iso(since)})")
    answers = collect.ask_all(deployment.targets, specs)
    total = Gathered()
    for name in sorted(answers):
        answer = answers[name]
        if answer.error is not None:
            total.problems.append(f"{name}: {answer.error}")
            say(f"{name}: FAILED: {answer.error}")
            continue
        got = host_parts(plan, name, answer.data, _iso(since))
        say(f"{name}: {len(got.parts)} parts")
        _merge(total, got)
    _merge(total, _controller(deployment, options, say))
    return total


def _merge(into: Gathered, more: Gathered) -> None:
    into.parts.update(more.parts)
    into.omitted.update(more.omitted)
    into.problems += more.problems


def _scrubbed(gathered: Gathered, scrubber: Scrubber
              ) -> tuple[dict[str, bytes], dict[str, Counter[str]], list[str]]:
    data: dict[str, bytes] = {}
    masked: dict[str, Counter[str]] = {}
    for name, text in sorted(gathered.parts.items()):
        clean, counts = scrubber.scrub(text)
        if left := scrubber.leftovers(clean):
            # Cannot happen by construction; if it did, the bundle must not exist.
            raise SelfhostError(f"redaction left {', '.join(left)} in {name}; no bundle "
                                "was written (report this as a selfhost bug)")
        data[name] = clean.encode()
        if counts:
            masked[name] = counts
    problems = [scrubber.scrub(p)[0] for p in gathered.problems]
    return data, masked, problems


def _manifest(deployment: Deployment, *, since: float, now: float, data: dict[str, bytes],
              masked: dict[str, Counter[str]], gathered: Gathered, problems: list[str],
              root: str) -> dict[str, Any]:
    return {
        "format": MANIFEST_VERSION,
        "root": root,
        "customer_id": deployment.plan.customer.id,
        "profile_fingerprint": deployment.plan.profile_fingerprint,
        "tool_version": __version__,
        "hosts": [t.name for t in deployment.targets],
        "source": deployment.source,
        "created": _iso(now),
        "since": _iso(since),
        "parts": [{"name": name, "bytes": len(blob),
                   "sha256": hashlib.sha256(blob).hexdigest(),
                   "masked": dict(sorted(masked[name].items())) if name in masked else {}}
                  for name, blob in data.items()],
        "omitted": dict(sorted(gathered.omitted.items())),
        "problems": problems,
    }


def _archive(root: str, data: dict[str, bytes], manifest: dict[str, Any],
             now: float) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        entries = {MANIFEST_NAME: _dump(manifest).encode(), **data}
        for name, blob in entries.items():
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size, info.mtime, info.mode = len(blob), int(now), 0o600
            tar.addfile(info, io.BytesIO(blob))
    return buffer.getvalue()


def support_bundle(profile_path: Path, options: BundleOptions, *,
                   say: Say | None = None, show: Callable[[dict[str, Any]], None] | None = None
                   ) -> BundleResult:
    """Collect, scrub, list (``show`` gets the manifest before anything is written),
    then write the archive (unless ``options.dry_run``)."""
    tell: Say = say or (lambda _line: None)
    now = time.time()
    since = parse_since(options.since, now)
    prepared = prepare(profile_path, DeployOptions(
        inventory=options.inventory, sandbox=options.sandbox,
        passphrase=options.passphrase, key_file=options.key_file))
    customer = prepared.target.plan.customer.id
    output = None if options.dry_run else _output(options, customer, now)
    deployment = resolve(profile_path, inventory=options.inventory, sandbox=options.sandbox)
    gathered = _gather(deployment, options, since, tell)
    data, masked, problems = _scrubbed(gathered, Scrubber(prepared.redactor))
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    root = f"support-bundle-{customer}-{stamp}"
    manifest = _manifest(deployment, since=since, now=now, data=data, masked=masked,
                         gathered=gathered, problems=problems, root=root)
    if show is not None:
        show(manifest)
    if output is None:
        return BundleResult(manifest, None)
    write_atomic(output, _archive(root, data, manifest, now), mode=0o600)
    return BundleResult(manifest, output)
