"""Every check of ``selfhost verify`` seen to fail on a real guest, and verify's exit codes.

An all-in-one and a split deployment (one app host, a database host and a cache
host) are deployed once, side by side, with ``selfhost deploy``. Each row of
:data:`tamperings.TAMPERINGS` then changes one guest, runs ``selfhost verify
--json`` as a user would (the installed command, in a process of its own) and
undoes the change: verify must exit 1, and its report must fail exactly the
row's check (and the ones the row names as failing with it), with the check's
expected text, a finding specific to the tampering, and the fix. A check id
that either deployment generates but no row tampers with fails the module, and
so does a deployment that does not verify clean again at the end.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from ruamel.yaml import YAML
from tamperings import BY_NAME, TAMPERINGS, Tamper, Topology

from conftest import SandboxFactory
from selfhost import sandbox as sandbox_mod
from selfhost.init import InitRequest, run_init
from selfhost.paths import preset_path
from selfhost.secrets import load_secrets
from selfhost.verify.collector import COLLECTOR_NAME
from selfhost.verify.reconcile import reconcile

pytestmark = pytest.mark.slow

SELFHOST = str(Path(sys.executable).with_name("selfhost"))
PASSPHRASE = "verify-tamperings-passphrase"
#: the sandbox host's apt cache: the direct-outbound target of a one-guest sandbox
APT_PORT = 3142
DEPLOY_TIMEOUT = 1200
VERIFY_TIMEOUT = 180
#: the Debian 12 nginx's certificate the tamperings shorten, and its CA on the host
CA_ON_HOST = "/etc/backend-chat/ca.crt"
NGINX_CERT = "/etc/nginx/tls/server.crt"
SHORT_DAYS = 10


@dataclass
class Run:
    """One ``selfhost verify`` process: exit code, its printed report and its JSON."""

    rc: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None

    def failing(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {(c["host"], c["id"]): c for c in self.checks() if c["result"] == "fail"}

    def checks(self) -> list[dict[str, Any]]:
        assert self.report is not None, f"no JSON report (exit {self.rc}): {self.stderr}"
        return list(self.report["checks"])

    def explain(self) -> str:
        return (f"exit {self.rc}\n--- stdout ---\n{self.stdout[-6000:]}\n--- stderr ---\n"
                f"{self.stderr[-2000:]}")


def selfhost(*args: str, cwd: Path, timeout: float = VERIFY_TIMEOUT
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SELFHOST, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False, env=_env())


def _env() -> dict[str, str]:
    # The sandbox fixtures have set SELFHOST_SANDBOX_DIR/SUBNET in this environment.
    return {**os.environ, "SELFHOST_PASSPHRASE": PASSPHRASE}


@dataclass
class Deployment:
    topology: Topology
    profile: Path
    box: sandbox_mod.Sandbox
    #: the clean run right after the deploy
    clean: Run
    #: what the tamperings' ``{name}`` placeholders stand for
    values: dict[str, str]

    @property
    def hosts(self) -> list[str]:
        """The Plan's hosts in Plan order (the order the sandbox maps them to guests)."""
        assert self.clean.report is not None, self.clean.explain()
        return list(self.clean.report["hosts"])

    def on_host(self, host: str, script: str) -> str:
        guest = self.box.guests[self.hosts.index(host)]
        # Rows restart a unit on every tampering and every undo, faster than systemd's
        # start rate limit allows on a quiet machine; the limit guards against a crash
        # loop, not against these deliberate restarts, so each script starts from zero.
        done = subprocess.run(self.box.ssh_command(guest, "bash", "-c",
                                                   f"systemctl reset-failed; {script}"),
                              capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise AssertionError(f"on {host}: {script!r} failed (exit {done.returncode}): "
                                 f"{done.stderr.strip()}")
        return done.stdout

    def fill(self, text: str) -> str:
        for name, value in self.values.items():
            text = text.replace("{" + name + "}", value)
        return text

    def verify(self, workdir: Path) -> Run:
        return verify_run(self.profile, self.box.name, workdir)


def verify_run(profile: Path, box: str, workdir: Path) -> Run:
    workdir.mkdir(parents=True, exist_ok=True)
    report = workdir / "report.json"
    report.unlink(missing_ok=True)
    done = selfhost("verify", str(profile), "--sandbox", box, "--json", str(report),
                    cwd=workdir)
    data = json.loads(report.read_text()) if report.exists() else None
    return Run(done.returncode, done.stdout, done.stderr, data)


# -- the two deployments --------------------------------------------------------------

def _split_answers(path: Path) -> Path:
    """The split preset with one app host: every split-only check, one guest fewer."""
    yaml = YAML()
    profile = yaml.load(preset_path("split").read_text())
    profile["hosts"]["app"] = profile["hosts"]["app"][:1]
    with path.open("w") as handle:
        yaml.dump(profile, handle)
    return path


def _init(workdir: Path, topology: Topology) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    output = workdir / f"{topology}.yaml"
    if topology == "split":
        request = InitRequest(output=output, answers_file=_split_answers(
            workdir / "answers.yaml"), force=True, passphrase=PASSPHRASE, environ={})
    else:
        request = InitRequest(output=output, preset="air-gapped", force=True,
                              passphrase=PASSPHRASE, environ={})
    run_init(request, None, None)
    return output


def short_lived(current_pem: str, ca_cert_pem: str, ca_key_pem: str, days: int) -> str:
    """``current_pem`` issued again by the deployment's CA, expiring in ``days`` days:
    same subject, names and public key (so the host's key still fits), still valid."""
    current = x509.load_pem_x509_certificate(current_pem.encode())
    ca = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey), type(key)
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(current.subject)
               .issuer_name(ca.subject).public_key(current.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               # and an hour: "10 days" is what the finding rounds the days left to
               .not_valid_after(now + dt.timedelta(days=days, hours=1)))
    for extension in current.extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def _values(d: Deployment) -> dict[str, str]:
    subnet = ipaddress.ip_network(f"{d.box.bridge_address}/24", strict=False)
    app = next(h for h in d.hosts if h in ("chat1", "app1"))
    ca_key = load_secrets(d.profile, PASSPHRASE)["ca_key"]
    return {
        "direct_address": d.box.bridge_address, "direct_port": str(APT_PORT),
        "subnet": str(subnet),
        "short_cert": short_lived(d.on_host(app, f"cat {NGINX_CERT}"),
                                  d.on_host(app, f"cat {CA_ON_HOST}"), ca_key, SHORT_DAYS),
    }


@pytest.fixture(scope="module")
def deployments(sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
                ) -> dict[Topology, Deployment]:
    """Both topologies deployed at once (two ``selfhost deploy`` processes), then
    verified clean once each."""
    boxes: dict[Topology, sandbox_mod.Sandbox] = {
        "all-in-one": sandbox_factory("tv-aio", hosts=1, image="server"),
        "split": sandbox_factory("tv-split", hosts=3),
    }
    work = tmp_path_factory.mktemp("tamperings")
    profiles = {t: _init(work / t, t) for t in boxes}

    def deploy(topology: Topology) -> Run:
        done = selfhost("deploy", str(profiles[topology]), "--sandbox", boxes[topology].name,
                        "--yes", cwd=work / topology, timeout=DEPLOY_TIMEOUT)
        if done.returncode != 0:
            return Run(done.returncode, done.stdout, done.stderr, None)
        return verify_run(profiles[topology], boxes[topology].name, work / topology / "clean")

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = dict(zip(boxes, pool.map(deploy, boxes), strict=True))
    failed = [f"{t}: {r.explain()}" for t, r in runs.items() if r.report is None]
    if failed:
        pytest.fail("deploying failed:\n" + "\n".join(failed), pytrace=False)
    out: dict[Topology, Deployment] = {}
    for topology, run in runs.items():
        d = Deployment(topology, profiles[topology], boxes[topology], run, {})
        d.values = _values(d)
        out[topology] = d
    return out


# -- a clean deployment: exit 0 ---------------------------------------------------------

@pytest.mark.parametrize("topology", ["all-in-one", "split"])
def test_verify_exits_0_on_a_clean_deployment(deployments: dict[Topology, Deployment],
                                              topology: Topology) -> None:
    clean = deployments[topology].clean
    assert clean.rc == 0, clean.explain()
    assert clean.failing() == {}
    assert clean.stdout.rstrip().endswith("0 failed: the hosts match the Plan"), clean.stdout


def test_every_check_id_has_a_tampering(deployments: dict[Topology, Deployment]) -> None:
    """The ids come from the product's own check generation for the deployed Plans
    (the clean runs' reports), never from a list kept here."""
    generated: dict[Topology, set[str]] = {}
    for topology, d in deployments.items():
        assert d.clean.report is not None, d.clean.explain()
        generated[topology] = {c["id"] for c in d.clean.report["checks"]}
    every = set().union(*generated.values())
    assert sorted(every - {t.check for t in TAMPERINGS}) == []
    # A row whose check its topology no longer generates would tamper for nothing.
    assert [f"{t.topology}: {t.check}" for t in TAMPERINGS
            if t.check not in generated[t.topology]] == []


# -- every check, failed on purpose: exit 1 -------------------------------------------------

def _tampered(d: Deployment, tamper: Tamper, host: str, workdir: Path) -> Run:
    try:
        d.on_host(host, d.fill(tamper.do))
        return d.verify(workdir)
    finally:
        d.on_host(host, d.fill(tamper.undo))


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=[f"{t.check}-{t.name}" for t in TAMPERINGS])
def test_tampering_fails_its_check(deployments: dict[Topology, Deployment], tamper: Tamper,
                                   tmp_path: Path) -> None:
    d = deployments[tamper.topology]
    assert d.clean.rc == 0, f"the deployment did not verify clean:\n{d.clean.explain()}"
    host = tamper.host or d.hosts[0]
    run = _tampered(d, tamper, host, tmp_path)
    assert run.rc == 1, run.explain()
    failing = run.failing()
    # Exactly this check fails (with what the row says goes with it): a tampering that
    # breaks more, or the undo of the previous row that left something, shows here.
    assert sorted(failing) == sorted({(host, tamper.check), *((host, c) for c in tamper.also)})
    entry = failing[(host, tamper.check)]
    assert d.fill(tamper.says) in entry["found"]
    before = next(c for c in d.clean.checks() if (c["host"], c["id"]) == (host, tamper.check))
    assert (entry["expected"], entry["fix"]) == (before["expected"], before["fix"])
    assert entry["expected"]
    assert entry["fix"]
    # The printed report names it too, with what was expected, found and the fix.
    shown = run.stdout.split(f"FAIL {host}: {entry['description']}\n", 1)
    assert len(shown) == 2, run.stdout
    assert shown[1].startswith(f"         expected: {entry['expected']}\n"
                               f"         found:    {entry['found']}\n"
                               f"         fix:      {entry['fix']}\n"), run.stdout


#: the two rows that bring a third party the list does not name -> what reconciliation says
RECONCILE_SAYS = {"app.env_keys:ai-key-added": "openai: wired but not listed",
                  "egress.ai_refused.openai:openai-admitted": "openai: reachable but not listed"}


@pytest.mark.parametrize("row", list(RECONCILE_SAYS))
def test_reconciliation_names_the_unlisted_party(deployments: dict[Topology, Deployment],
                                                 row: str) -> None:
    d, tamper = deployments["all-in-one"], BY_NAME[row]
    host = tamper.host or d.hosts[0]
    try:
        d.on_host(host, d.fill(tamper.do))
        report = reconcile(d.profile, sandbox=d.box.name).report()
    finally:
        d.on_host(host, d.fill(tamper.undo))
    assert RECONCILE_SAYS[row] in report


@pytest.mark.parametrize("topology", ["all-in-one", "split"])
def test_verify_passes_again_after_the_tamperings(deployments: dict[Topology, Deployment],
                                                  topology: Topology, tmp_path: Path) -> None:
    run = deployments[topology].verify(tmp_path)
    assert (run.rc, run.failing()) == (0, {}), run.explain()


# -- invalid input: exit 2 ------------------------------------------------------------------

@pytest.fixture(scope="module")
def profile_copy(deployments: dict[Topology, Deployment],
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The all-in-one profile and its secrets in a directory of their own."""
    source = deployments["all-in-one"].profile
    work = tmp_path_factory.mktemp("invalid")
    for path in (source, source.with_suffix(".secrets")):
        (work / path.name).write_bytes(path.read_bytes())
        (work / path.name).chmod(0o600)
    return work / source.name


def _with(profile: Path, old: str, new: str, name: str) -> Path:
    text = profile.read_text()
    assert old in text, text
    out = profile.with_name(name)
    out.write_text(text.replace(old, new, 1))
    return out


def test_a_bad_field_exits_2_naming_file_and_field(profile_copy: Path) -> None:
    bad = _with(profile_copy, "min_version: '1.3'", "min_version: '1.1'", "bad-field.yaml")
    report = bad.with_name("bad-field.json")
    done = selfhost("verify", str(bad), "--sandbox", "tv-aio", "--json", str(report),
                    cwd=bad.parent)
    assert done.returncode == 2, done.stderr
    # file:line: field: what is wrong (and the fix)
    assert re.search(rf"^error: {re.escape(str(bad))}:\d+: tls\.min_version: .*'1\.3'",
                     done.stderr, re.MULTILINE), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not report.exists()


@pytest.mark.parametrize(("args", "says"), [
    (["--sandbox", "tv-none"], "there is no sandbox named 'tv-none'"),
    (["--sandbox", "tv-aio", "--inventory", "{dir}/inventory.yml"],
     "--inventory and --sandbox both say where the hosts are"),
    (["--sandbox", "tv-aio", "--json", "{dir}/missing/report.json"],
     "--json {dir}/missing/report.json: the directory {dir}/missing does not exist"),
], ids=["unknown-sandbox", "two-targets", "json-into-a-missing-directory"])
def test_invalid_options_exit_2(profile_copy: Path, args: list[str], says: str) -> None:
    here = str(profile_copy.parent)
    (profile_copy.parent / "inventory.yml").write_text("all: {hosts: {}}\n")
    done = selfhost("verify", str(profile_copy), *(a.replace("{dir}", here) for a in args),
                    cwd=profile_copy.parent)
    assert done.returncode == 2, done.stderr
    assert says.replace("{dir}", here) in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout


# -- interrupted: exit 130 ------------------------------------------------------------------

def _collecting(box: sandbox_mod.Sandbox) -> bool:
    """Whether an ssh to ``box``'s guests is running the remote collection now."""
    key = str(box.ssh_key)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = b" ".join(argv).decode(errors="replace")
        if argv[0].endswith(b"ssh") and key in text and COLLECTOR_NAME in text:
            return True
    return False


def test_ctrl_c_while_checking_exits_130_without_a_report(
        deployments: dict[Topology, Deployment], tmp_path: Path) -> None:
    d = deployments["all-in-one"]
    report = tmp_path / "report.json"
    proc = subprocess.Popen([SELFHOST, "verify", str(d.profile), "--sandbox", d.box.name,
                             "--json", str(report)], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _collecting(d.box):
            assert proc.poll() is None, "verify ended before it reached the host"
            assert time.monotonic() < deadline, "verify never reached the host"
            time.sleep(0.02)
        # Ctrl-C in a terminal: SIGINT to the whole foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, f"exit {proc.returncode}\n{stdout}\n{stderr}"
    assert "interrupted" in stderr
    assert "Traceback" not in stdout + stderr
    # An interrupted run proves nothing: no report says the hosts passed or failed.
    assert not report.exists()
    assert "passed" not in stdout
