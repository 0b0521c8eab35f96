"""Reconciliation: the subprocessor list against what the live hosts really do.

From every app host it reads the deployment record, the app's wiring (the keys
of its environment file, and the public part of its URLs), the allowlist the
egress proxy enforces and where nftables lets the app user connect, and
compares them with the third parties the profile's list names. A party listed
but not wired, or wired or reachable but not listed, is a difference; with
none, the result carries the evidence that the list embeds (and a signature
then covers), the release each app host runs among it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from selfhost import __version__
from selfhost.errors import ChecksFailed, InvalidInput
from selfhost.hostnames import is_ip
from selfhost.models import Profile
from selfhost.plan import Plan, plan
from selfhost.subprocessors.document import Evidence, EvidenceCheck
from selfhost.targets import resolve
from selfhost.verify import collector, nft_rules
from selfhost.verify.components import app, context, egress, host, record
from selfhost.verify.contract import Facts, Fragment, SectionError

Kind = Literal["listed-not-wired", "wired-not-listed", "reachable-not-listed",
               "record-differs", "unreadable"]


@dataclass(frozen=True)
class Difference:
    kind: Kind
    host: str
    party: str
    detail: str

    def render(self) -> str:
        what = {
            "listed-not-wired": "listed but not wired",
            "wired-not-listed": "wired but not listed",
            "reachable-not-listed": "reachable but not listed",
            "record-differs": "deployment record differs",
            "unreadable": "could not be read",
        }[self.kind]
        return f"{self.host}: {self.party}: {what}: {self.detail}"


DiffMaker = Callable[[Kind, str, str], Difference]


@dataclass(frozen=True)
class Reconciliation:
    hosts: list[str]
    listed: list[str]
    differences: list[Difference]
    evidence: Evidence

    @property
    def ok(self) -> bool:
        return not self.differences

    def report(self) -> str:
        if self.ok:
            return (f"the list ({', '.join(self.listed) or 'no third party'}) matches "
                    f"{', '.join(self.hosts)}")
        return "the subprocessor list does not match the live hosts:\n" + "\n".join(
            f"  {d.render()}" for d in self.differences)


@dataclass(frozen=True)
class Vendors:
    """Which third party an environment key or a destination belongs to."""

    by_key: dict[str, str]
    by_destination: dict[str, str]

    def name_key(self, key: str) -> str:
        return self.by_key.get(key, f"unknown third party ({key})")

    def name_destination(self, dest: str) -> str:
        return self.by_destination.get(dest, f"unknown third party ({dest})")


def known_vendors(profile: Profile) -> Vendors:
    """Every vendor the profile could choose, as the Plan would wire it.

    Derived from :func:`selfhost.plan.plan` on variants of the profile, so the
    names come from the same rules that build the list.
    """
    variants: list[dict[str, Any]] = [
        {"ai": {"provider": p}} for p in ("openai", "anthropic")]
    variants += [{"email": {"provider": p}} for p in ("sendgrid", "postmark", "ses")]
    variants += [{"monitoring": {"provider": "sentry", "sentry_region": r}} for r in ("us", "de")]
    variants += [{"monitoring": {"provider": "datadog", "datadog_site": s}}
                 for s in ("datadoghq.com", "datadoghq.eu", "us3.datadoghq.com",
                           "us5.datadoghq.com", "ap1.datadoghq.com")]
    by_key: dict[str, str] = {}
    by_dest: dict[str, str] = {}
    for change in variants:
        section, values = next(iter(change.items()))
        updated = getattr(profile, section).model_copy(update=values)
        variant = plan(profile.model_copy(update={section: updated}))
        for party in variant.third_parties:
            for key in party.wired_by:
                if key not in ("AI_PROVIDER", "SMTP_URL", "DD_SITE"):
                    by_key.setdefault(key, party.id)
            for endpoint in party.egress:
                by_dest.setdefault(str(endpoint), party.id)
    return Vendors(by_key, by_dest)


def _own_keys(p: Plan) -> set[str]:
    """Environment keys that wire the deployment's own parts, not a third party."""
    wired = {k for party in p.third_parties for k in party.wired_by}
    return {k for k in p.app.env_keys if k not in wired or k == "AI_PROVIDER"}


def compare_host(p: Plan, host: str, facts: Facts, vendors: Vendors) -> list[Difference]:
    """Differences between the listed third parties and one app host's live facts."""
    def diff(kind: Kind, party: str, detail: str) -> Difference:
        return Difference(kind, host, party, detail)

    if facts.unreachable is not None:
        return [diff("unreadable", "host", facts.unreachable)]
    out = _record_differences(p, host, facts, diff)
    try:
        wiring = app.app_facts(facts)
    except SectionError as exc:
        return [*out, diff("unreadable", "app environment", str(exc))]
    if "env_error" in wiring:
        return [*out, diff("unreadable", "app environment", wiring["env_error"])]
    listed = {t.id: t for t in p.third_parties}
    env = wiring["env"]
    for party in listed.values():
        missing = [k for k in party.wired_by if k not in env]
        if missing:
            out.append(diff("listed-not-wired", party.id,
                            f"the app has no {', '.join(missing)}"))
    own = _own_keys(p)
    wired_keys = {k for party in listed.values() for k in party.wired_by}
    for key in sorted(set(env) - own - wired_keys):
        out.append(diff("wired-not-listed", vendors.name_key(key),
                        f"the app's environment has {key}"))
    ai = env.get("AI_PROVIDER")
    if ai not in (None, "none") and ai not in listed:
        out.append(diff("wired-not-listed", str(ai), f"AI_PROVIDER={ai}"))
    smtp = wiring.get("url_hosts", {}).get("SMTP_URL")
    if smtp:
        parts = urlsplit(smtp)
        dest = f"{parts.hostname}:{parts.port}"
        allowed_dest = {str(e) for e in p.egress_allowlist}
        if dest not in allowed_dest:
            out.append(diff("wired-not-listed", vendors.name_destination(dest),
                            f"SMTP_URL points at {dest}"))
    out += _allowlist_differences(p, facts, vendors, diff)
    out += _firewall_differences(p, facts, vendors, diff)
    return out


def _record_differences(p: Plan, host: str, facts: Facts, diff: DiffMaker
                        ) -> list[Difference]:
    """The verify check of the deployment record, judged on the same facts."""
    check = record.part(context(p, next(h for h in p.hosts if h.name == host))).checks[0]
    outcome = check.evaluate(facts)
    return [] if outcome.passed else [diff("record-differs", "deployment record",
                                           outcome.found)]


def _allowlist_differences(p: Plan, facts: Facts, vendors: Vendors,
                           diff: DiffMaker) -> list[Difference]:
    try:
        enforced = set(egress.enforced_allowlist(facts))
    except (SectionError, ValueError) as exc:
        return [diff("unreadable", "egress allowlist", str(exc))]
    out = []
    for party in p.third_parties:
        if party.egress_from != "app":
            continue
        missing = [str(e) for e in party.egress if str(e) not in enforced]
        if missing:
            out.append(diff("listed-not-wired", party.id,
                            f"the proxy does not allow {', '.join(missing)}"))
    planned = {str(e) for e in p.egress_allowlist}
    for dest in sorted(enforced - planned):
        out.append(diff("reachable-not-listed", vendors.name_destination(dest),
                        f"the proxy allows {dest}"))
    return out


def _firewall_differences(p: Plan, facts: Facts, vendors: Vendors,
                          diff: DiffMaker) -> list[Difference]:
    """Destinations nftables lets the app user reach directly that the Plan does not
    name: the proxy is not the only way out if a rule opens another (the split
    topology's direct database and cache are the Plan's; names resolved at deploy
    time are matched by port, as the host resolved them then)."""
    try:
        nft = host.nftables(facts)
    except SectionError as exc:
        return [diff("unreadable", "nftables ruleset", str(exc))]
    if "error" in nft:
        return [diff("unreadable", "nftables ruleset", nft["error"])]
    planned = {str(e) for e in p.app_direct}
    named_ports = {str(e.port) for e in p.app_direct if not is_ip(e.host)}
    out = []
    for rule in nft_rules.app_user_accepts(nft.get("output_rules", {}),
                                           nft.get("chain_rules", {}), p.app.user):
        if rule.stays_on_the_host():
            continue
        for dest in rule.destinations():
            if dest in planned or dest.rsplit(":", 1)[1] in named_ports:
                continue
            out.append(diff("reachable-not-listed", vendors.name_destination(dest),
                            f"nftables lets {p.app.user} connect to {dest} "
                            f"({rule.chain} rule {rule.position})"))
    return out


def running_release(data: dict[str, object]) -> str:
    """The release a host's deployment record names, as the evidence states it."""
    found = data.get("release")
    if isinstance(found, dict) and found.get("name") and found.get("version"):
        return f"{found['name']} {found['version']}"
    return "the contract probe app (no release recorded)"


def evidence_from(p: Plan, facts: dict[str, Facts]) -> Evidence:
    rows = []
    for target in p.hosts_with("app"):
        f = facts[target.name]
        data = record.data(f) or {}
        rows += [
            EvidenceCheck(host=target.name, check="deployment record", result="pass",
                          detail=f"deployment fingerprint {data.get('content_digest')}, "
                          f"profile fingerprint {data.get('profile_fingerprint')}, deployed "
                          f"{data.get('deployed_at')} by selfhost {data.get('tool_version')}"),
            EvidenceCheck(host=target.name, check="running release", result="pass",
                          detail=running_release(data)),
            EvidenceCheck(host=target.name, check="wired third parties", result="pass",
                          detail="environment keys " + ", ".join(sorted(app.app_facts(f)["env"]))
                          + "; third parties " + (", ".join(p.third_party_ids()) or "none")),
            EvidenceCheck(host=target.name, check="enforced egress allowlist", result="pass",
                          detail=", ".join(egress.enforced_allowlist(f))
                          or "empty: nothing may leave"),
        ]
    return Evidence(collected_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    tool_version=__version__, checks=rows)


def _spec(p: Plan, host: str) -> dict[str, object]:
    """The record, the app's wiring and the proxy's allowlist: the facts verify reads
    for them, without the probes."""
    ctx = context(p, next(h for h in p.hosts if h.name == host))
    return collector.merge([
        record.fragment(ctx),
        app.fragment(ctx, public=["AI_PROVIDER"], url_keys=["SMTP_URL"], healthz=False),
        egress.fragment(ctx, destinations=[], direct=None, log=False),
        Fragment(sections={"nftables": None})])


def reconcile(profile_path: Path, *, inventory: Path | None = None,
              sandbox: str | None = None) -> Reconciliation:
    """Compare the profile's list with its live app hosts."""
    # Imported here: pytest and testinfra would slow down every other command.
    from selfhost.verify.testinfra_suite import collect_all  # noqa: PLC0415
    deployment = resolve(profile_path, inventory=inventory, sandbox=sandbox)
    p = deployment.plan
    apps = [t for t in deployment.targets if t.name in {h.name for h in p.hosts_with("app")}]
    facts = collect_all({t.name: t for t in apps}, {t.name: _spec(p, t.name) for t in apps})
    vendors = known_vendors(deployment.profile)
    differences = [d for t in apps for d in compare_host(p, t.name, facts[t.name], vendors)]
    evidence = evidence_from(p, facts) if not differences else Evidence(
        collected_at=datetime.now(UTC).isoformat(timespec="seconds"),
        tool_version=__version__, checks=[])
    return Reconciliation(hosts=[t.name for t in apps], listed=p.third_party_ids(),
                          differences=differences, evidence=evidence)


def reconcile_evidence(profile_path: Path, *, inventory: Path | None = None,
                       sandbox: str | None = None) -> Evidence:
    """The evidence for the list when it matches the live hosts.

    Raises :class:`ChecksFailed` naming every difference when it does not.
    """
    if inventory is None and sandbox is None:
        raise InvalidInput("--verify needs the hosts: give --inventory FILE or --sandbox NAME")
    result = reconcile(profile_path, inventory=inventory, sandbox=sandbox)
    if not result.ok:
        raise ChecksFailed(result.report())
    return result.evidence
