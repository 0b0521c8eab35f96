"""`selfhost subprocessors render --verify` on one deployed Debian 12 guest (us-openai).

Reconciliation fails all three ways, each made on the live host by the test and
undone right after: a listed party that is not wired (the OpenAI key removed from
the app's environment), a wired party that is not listed (an Anthropic key added),
and a destination reachable but not listed, once through the proxy (an allow rule
in squid.conf) and once through nftables alone (an accept rule for the app user to
an address off the Plan, which the app user then really reaches). Each time the
command exits 1 naming the vendor and the evidence, and no signed list is written:
neither the new output nor its signature appears, and the list written earlier,
while the hosts agreed, keeps its bytes. That earlier list carries the evidence,
and its detached signature is checked with OpenSSL, not with selfhost.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_support import (
    Deployment,
    direct_connect_as_app,
    env_without_secrets,
    make_profile,
    run_deploy,
    ssh,
)
from ruamel.yaml import YAML

from conftest import SandboxFactory
from selfhost.layout import LAYOUT
from selfhost.paths import ANSIBLE_DIR

pytestmark = pytest.mark.slow

#: the installed command, as a user runs it
SELFHOST = Path(sys.executable).parent / "selfhost"
HOST = "chat1"
ENV_FILE = LAYOUT.app_env_file
SQUID_CONF = LAYOUT.proxy_config
#: the egress role's table (a knob of the role, at its default here) and the chain the
#: app user's packets jump to
NFT_TABLE = ("inet", YAML(typ="safe").load(
    (ANSIBLE_DIR / "roles/egress/defaults/main.yml").read_text())["egress_nft_table"])


@dataclass
class Agreed:
    deployment: Deployment
    workdir: Path
    private_key: Path
    public_key: Path
    #: the list rendered while the hosts agreed, and its detached signature
    listed: Path
    signature: Path
    output: str


def selfhost(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SELFHOST), *argv],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env=env_without_secrets())


def render(agreed: Agreed, output: Path) -> subprocess.CompletedProcess[str]:
    d = agreed.deployment
    return selfhost("subprocessors", "render", str(d.profile_path), "--format", "json",
                    "--verify", "--sandbox", d.box.name, "--sign-key", str(agreed.private_key),
                    "--detached", "--output", str(output))


@pytest.fixture(scope="module")
def agreed(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
           ) -> Agreed:
    work = tmp_path_factory.mktemp("reconcile-cli")
    box = sandbox_factory("rc-us-openai", 1, "bookworm", image="server")
    deployment = Deployment("us-openai", "bookworm", make_profile(work, "us-openai", box), box)
    run_deploy(deployment, work, label="first").require()
    (work / "keys").mkdir()
    keys = selfhost("keys", "generate", "--output-dir", str(work / "keys"))
    assert keys.returncode == 0, keys.stderr
    partial = Agreed(deployment, work, work / "keys" / "subprocessors-signing.key",
                     work / "keys" / "subprocessors-signing.pub", work / "lists" / "list.json",
                     work / "lists" / "list.json.sig", "")
    partial.listed.parent.mkdir()
    done = render(partial, partial.listed)
    assert done.returncode == 0, done.stderr
    partial.output = done.stderr
    return partial


# -- the hosts agree: the list carries the evidence and is signed ------------------------

def test_agreeing_hosts_give_a_list_with_their_evidence(agreed: Agreed) -> None:
    evidence = json.loads(agreed.listed.read_text())["evidence"]
    rows = {(c["host"], c["check"]): c for c in evidence["checks"]}
    p = agreed.deployment.plan
    wired = rows[(HOST, "wired third parties")]["detail"]
    assert (sorted(rows), all(c["result"] == "pass" for c in rows.values()),
            [k for k in ("OPENAI_API_KEY", "SENTRY_DSN") if k not in wired],
            [t for t in p.third_party_ids() if t not in wired],
            rows[(HOST, "enforced egress allowlist")]["detail"],
            rows[(HOST, "running release")]["detail"]) == (
        [(HOST, "deployment record"), (HOST, "enforced egress allowlist"),
         (HOST, "running release"), (HOST, "wired third parties")], True, [], [],
        ", ".join(sorted(str(e) for e in p.egress_allowlist)),
        # this deployment runs the built-in contract probe app, without a release
        "the contract probe app (no release recorded)")


def test_the_signature_checks_out_with_openssl(agreed: Agreed) -> None:
    # The detached form signs the file's exact bytes; OpenSSL checks them on its own.
    import base64

    sig = json.loads(agreed.signature.read_text())
    raw = agreed.workdir / "list.sig.raw"
    raw.write_bytes(base64.b64decode(sig["value"]))
    done = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey",
                           str(agreed.public_key), "-rawin", "-in", str(agreed.listed),
                           "-sigfile", str(raw)], capture_output=True, text=True, check=False)
    tampered = agreed.workdir / "list-tampered.json"
    tampered.write_bytes(agreed.listed.read_bytes().replace(b"openai", b"0penai", 1))
    forged = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey",
                             str(agreed.public_key), "-rawin", "-in", str(tampered),
                             "-sigfile", str(raw)], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout.strip(), forged.returncode, sig["covers"],
            sig["file"]) == (0, "Signature Verified Successfully", 1, "file-bytes", "list.json")


# -- the hosts disagree: exit 1, the vendor and the evidence named, nothing written ------

@dataclass(frozen=True)
class Tamper:
    name: str
    do: str
    undo: str
    #: the line the command must print: host, vendor, kind, evidence
    says: str


TAMPERINGS = [
    Tamper("listed-not-wired",
           f"cp -p {ENV_FILE} /root/app.env.orig && sed -i '/^OPENAI_API_KEY=/d' {ENV_FILE}",
           f"cp -p /root/app.env.orig {ENV_FILE}",
           f"{HOST}: openai: listed but not wired: the app has no OPENAI_API_KEY"),
    Tamper("wired-not-listed",
           f"cp -p {ENV_FILE} /root/app.env.orig && "
           f"printf 'ANTHROPIC_API_KEY=\"sk-ant-tampered\"\\n' >> {ENV_FILE}",
           f"cp -p /root/app.env.orig {ENV_FILE}",
           f"{HOST}: anthropic: wired but not listed: the app's environment has "
           "ANTHROPIC_API_KEY"),
    Tamper("reachable-through-the-proxy",
           f"cp -p {SQUID_CONF} /root/squid.conf.orig && sed -i 's/^http_access deny all$/"
           "acl tamper dstdomain api.anthropic.com\\nacl tamper_port port 443\\nhttp_access "
           f"allow tamper tamper_port\\nhttp_access deny all/' {SQUID_CONF} && "
           "systemctl restart squid",
           f"cp -p /root/squid.conf.orig {SQUID_CONF} && systemctl restart squid",
           f"{HOST}: anthropic: reachable but not listed: the proxy allows "
           "api.anthropic.com:443"),
]


def _on_host(agreed: Agreed, script: str) -> None:
    done = ssh(agreed.deployment.box, agreed.deployment.box.guests[0].name, "bash", "-c",
               script)
    assert done.returncode == 0, f"{script!r}: {done.stderr}"


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _refused(agreed: Agreed) -> tuple[int, int, list[str], bool, list[str]]:
    """Render onto the earlier list and to a new file while the hosts disagree: (exit code
    of each, the lines naming a difference, the earlier files' bytes untouched, the files
    that appeared)."""
    before = _files(agreed.listed.parent)
    again = render(agreed, agreed.listed)
    fresh = render(agreed, agreed.listed.parent / "new.json")
    after = _files(agreed.listed.parent)
    lines = sorted({line.strip() for r in (again, fresh) for line in r.stderr.splitlines()
                    if line.startswith("  ")})
    untouched = {k: v for k, v in after.items() if k in before} == before
    return again.returncode, fresh.returncode, lines, untouched, sorted(set(after) - set(before))


@pytest.fixture
def tampered(request: pytest.FixtureRequest, agreed: Agreed) -> Iterator[Tamper]:
    tamper: Tamper = request.param
    _on_host(agreed, tamper.do)
    try:
        yield tamper
    finally:
        _on_host(agreed, tamper.undo)


@pytest.mark.parametrize("tampered", TAMPERINGS, ids=[t.name for t in TAMPERINGS],
                         indirect=True)
def test_a_difference_fails_the_render_and_writes_nothing(tampered: Tamper, agreed: Agreed
                                                          ) -> None:
    assert _refused(agreed) == (1, 1, [tampered.says], True, [])


@pytest.fixture
def listener(agreed: Agreed) -> Iterator[tuple[str, int]]:
    """A TCP listener on this machine's bridge address: a host the tests make, which
    the guest can reach but the app user may not."""
    address = agreed.deployment.box.bridge_address
    with socket.create_server((address, 0)) as server:
        yield address, server.getsockname()[1]


def test_nftables_alone_making_a_destination_reachable_fails_the_render(
        agreed: Agreed, listener: tuple[str, int]) -> None:
    address, port = listener
    d = agreed.deployment
    fenced = direct_connect_as_app(d, HOST, address, port)
    family, table = NFT_TABLE
    _on_host(agreed, f"nft insert rule {family} {table} app_egress ip daddr {address} "
             f"tcp dport {port} accept")
    try:
        opened = direct_connect_as_app(d, HOST, address, port)
        refused = _refused(agreed)
    finally:
        _on_host(agreed, "systemctl reload nftables.service")
    says = (f"{HOST}: unknown third party ({address}:{port}): reachable but not listed: "
            f"nftables lets {d.plan.app.user} connect to {address}:{port} "
            f"({family} {table}/app_egress rule 1)")
    assert (fenced.split()[0], opened, refused) == ("blocked", "connected",
                                                    (1, 1, [says], True, []))


def test_the_hosts_agree_again_after_the_tamperings(agreed: Agreed) -> None:
    done = render(agreed, agreed.listed.parent / "after.json")
    assert (done.returncode, (agreed.listed.parent / "after.json.sig").exists()) == (0, True), \
        done.stderr
