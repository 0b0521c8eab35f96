"""What the deploy integration tests share: making a preset's profile for sandbox
guests, deploying it while watching every place a secret could leak, and looking
at the deployed hosts (HTTPS from here, commands over ssh)."""

from __future__ import annotations

import io
import json
import os
import secrets
import socket
import ssl
import subprocess
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from process_secrets import environ_hits, leftover_hits

from selfhost import sandbox as sandbox_mod
from selfhost.deploy import DeployOptions, DeployResult, deploy
from selfhost.deploy.progress import PlainReporter
from selfhost.deploy.record import state_dir
from selfhost.deploy.redact import Hit, Redactor, scan
from selfhost.errors import SelfhostError
from selfhost.init import InitRequest, run_init
from selfhost.models import all_hosts
from selfhost.paths import preset_path
from selfhost.pki import issue
from selfhost.plan import Plan, plan
from selfhost.profile_io import load_profile
from selfhost.secrets import load_secrets
from selfhost.workflows.demo import address_sets

PRESETS = ("air-gapped", "eu-anthropic", "us-openai", "external-db", "split")
RELEASES = ("bookworm", "trixie")
PASSPHRASE = "integration-passphrase-" + secrets.token_urlsafe(12)

#: third-party credentials a person would supply; random so a leak is unambiguous
SUPPLIED = {
    "openai_api_key": "sk-test-" + secrets.token_urlsafe(24),
    "anthropic_api_key": "sk-ant-test-" + secrets.token_urlsafe(24),
    "email_password": "SG.test-" + secrets.token_urlsafe(24),
    "sentry_dsn": f"https://{secrets.token_hex(16)}@o1.ingest.us.sentry.io/1",
    "datadog_api_key": secrets.token_hex(16),
    "database_password": "ext-db-" + secrets.token_urlsafe(24),
    "cache_password": "ext-cache-" + secrets.token_urlsafe(24),
}


def guests_needed(preset: str) -> int:
    return len(all_hosts(load_profile(preset_path(preset))))


def sandbox_name(preset: str, release: str) -> str:
    """Short and unique per (preset, release): sandbox names are at most 20 characters."""
    return f"d{release[:2]}-{preset}"[:20]


def make_profile(workdir: Path, preset: str, box: sandbox_mod.Sandbox) -> Path:
    """``selfhost init`` of the preset with its hosts on the sandbox's guests."""
    workdir.mkdir(parents=True, exist_ok=True)
    output = workdir / f"{preset}.yaml"
    addresses = [g.address for g in box.guests[:guests_needed(preset)]]
    environ = {f"SELFHOST_{k.upper()}": v for k, v in SUPPLIED.items()}
    run_init(InitRequest(output=output, preset=preset, sets=address_sets(preset, addresses),
                         force=True, passphrase=PASSPHRASE, environ=environ), None, None)
    return output


def release_profile(workdir: Path, box: sandbox_mod.Sandbox, public_key: Path) -> Path:
    """An air-gapped profile on ``box``'s first guest that deploys ``release.tar.gz``
    beside it, trusting ``public_key`` (in ``workdir``)."""
    output = workdir / "p.yaml"
    run_init(InitRequest(
        output=output, preset="air-gapped", passphrase=PASSPHRASE,
        environ={f"SELFHOST_{k.upper()}": v for k, v in SUPPLIED.items()},
        sets=(*address_sets("air-gapped", [box.guests[0].address]),
              "app.release=release.tar.gz", f"app.release_keys=[{public_key.name}]")),
        None, None)
    return output


def secret_values(profile_path: Path) -> dict[str, str]:
    """Every secret value of the profile: the secrets file, the passphrase and the
    TLS host keys derived from the CA key."""
    stored = load_secrets(profile_path, passphrase=PASSPHRASE)
    values = {name: stored[name] for name in stored}
    the_plan = plan(load_profile(profile_path))
    material = issue(the_plan, values.get("ca_key"),
                     state_dir(profile_path, the_plan.customer.id))
    values.update({f"tls_key_{h}": k for h, k in material.host_keys.items()})
    values["passphrase"] = PASSPHRASE
    return values


class ProcessWatcher:
    """Samples every process's argv while a deploy runs (the process list)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        # The guests' processes (their own PID namespaces: other machines) are most of
        # /proc once a session has many guests; reading their argv every pass would
        # cost a core. A process's PID namespace is fixed at its creation, so each PID
        # is classified once, for as long as it is listed.
        ours = os.readlink("/proc/self/ns/pid")
        this_machine: dict[str, bool] = {}
        while not self._stop.is_set():
            listed = [e for e in os.listdir("/proc") if e.isdigit()]
            for pid in listed:
                if pid not in this_machine:
                    try:
                        this_machine[pid] = os.readlink(f"/proc/{pid}/ns/pid") == ours
                    except OSError:
                        continue
                if this_machine[pid]:
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as handle:
                            raw = handle.read()
                    except OSError:
                        continue
                    self.seen.add(raw.replace(b"\0", b" ").decode(errors="replace"))
            # An ended PID is forgotten at once: its number may come back in another
            # namespace (PIDs are handed out in order, so not within one pass).
            alive = set(listed)
            this_machine = {p: v for p, v in this_machine.items() if p in alive}
            time.sleep(self._interval)

    def __enter__(self) -> ProcessWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Deployment:
    preset: str
    release: str
    profile_path: Path
    box: sandbox_mod.Sandbox
    result: DeployResult | None = None
    error: str | None = None
    output: str = ""
    artifacts: Path | None = None
    processes: set[str] = field(default_factory=set)
    #: processes holding a secret in their environment (or, for those the deploy
    #: left running, anywhere in their memory) after the deploy returned
    environ_hits: list[str] = field(default_factory=list)

    @property
    def plan(self) -> Plan:
        assert self.result is not None, self.error
        return self.result.plan

    def require(self) -> DeployResult:
        if self.result is None:
            raise AssertionError(f"deploying {self.preset} on {self.release} failed:\n"
                                 f"{self.error}\n--- output ---\n{self.output[-4000:]}")
        return self.result

    def leaks(self) -> list[Hit | str]:
        """Every place a secret value of this profile was found: kept artifacts (job
        events, stdout, command), the deploy's printed output, the process list."""
        redactor = Redactor(secret_values(self.profile_path))
        found: list[Hit | str] = []
        if self.artifacts is not None:
            found += scan([self.artifacts], redactor)
        found += [f"output: {n}" for n in redactor.find(self.output)]
        found += [f"process list: {n}" for line in self.processes for n in redactor.find(line)]
        found += self.environ_hits
        return found


def run_deploy(deployment: Deployment, workdir: Path, *, label: str,
               engine: str | None = None) -> Deployment:
    """Deploy with everything observed; a failure is recorded, not raised."""
    stream = io.StringIO()
    started = time.time()
    artifacts = workdir / f"artifacts-{label}"
    options = DeployOptions(sandbox=deployment.box.name, yes=True, passphrase=PASSPHRASE,
                            engine=engine, keep_artifacts=artifacts)
    with ProcessWatcher() as watcher:
        try:
            deployment.result = deploy(deployment.profile_path, options,
                                       reporter=lambda r: PlainReporter(stream, r))
            deployment.error = None
        except SelfhostError as exc:
            deployment.result, deployment.error = None, exc.message
    deployment.output = stream.getvalue()
    deployment.artifacts = artifacts if artifacts.exists() else None
    deployment.processes = watcher.seen
    # Whatever the run started and left behind (ssh masters, helpers) is still there.
    values = secret_values(deployment.profile_path)
    # Other presets deploy at the same time, and while they run their processes hold
    # their own secrets, the third-party keys in SUPPLIED among them: memory is
    # searched for this profile's generated secrets only, which no other deploy has
    # (a leftover that inherited secrets holds those as much as any other).
    own = {name: value for name, value in values.items()
           if value not in SUPPLIED.values()}
    deployment.environ_hits = environ_hits(values) + leftover_hits(own, started)
    return deployment


def changed_by_plan_host(result: DeployResult) -> dict[str, int | str]:
    """Each host of the run's Plan, by name, and how many tasks changed it; a host the
    run's stats lack (it never ran) reads as such, so it can never pass as 0."""
    return {h.name: result.stats[h.name].changed if h.name in result.stats
            else "absent from the run's stats" for h in result.plan.hosts}


def assert_nothing_changed(result: DeployResult) -> None:
    """The idempotency assertion: changed=0 for every host of the Plan, by name."""
    changed = changed_by_plan_host(result)
    expected: dict[str, int | str] = {h.name: 0 for h in result.plan.hosts}
    assert expected, "the Plan has no host"
    assert changed == expected, f"a redeploy changed something: {changed}"


# -- looking at the hosts ----------------------------------------------------------

def ssh(box: sandbox_mod.Sandbox, guest: str, *argv: str, timeout: float = 60
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(box.ssh_command(guest, *argv), capture_output=True, text=True,
                          timeout=timeout, check=False)


def guest_for(deployment: Deployment, host: str) -> str:
    """The sandbox guest a Plan host was deployed onto."""
    index = [h.name for h in deployment.plan.hosts].index(host)
    return deployment.box.guests[index].name


LOOPBACK_HTTPS = """
import socket, ssl, sys
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
with socket.create_connection(("127.0.0.1", 443), timeout=15) as raw, \\
        context.wrap_socket(raw, server_hostname=sys.argv[1]) as conn:
    conn.sendall(("GET %s HTTP/1.1\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n"
                  % (sys.argv[2], sys.argv[1])).encode())
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
sys.stdout.write(data.decode())
"""


def https_get_on_host(deployment: Deployment, host: str, path: str) -> tuple[int, Any]:
    """GET ``path`` through nginx from the host itself (loopback), where /healthz is
    open; returns (status, parsed JSON body or None)."""
    done = ssh(deployment.box, guest_for(deployment, host), "python3", "-c", LOOPBACK_HTTPS,
               deployment.plan.tls.domain, path)
    assert done.returncode == 0, done.stderr
    # text mode has turned the CRLFs into LFs
    head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    return int(head.split(" ", 2)[1]), parsed


def tls_context(deployment: Deployment, version: ssl.TLSVersion,
                highest: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A client trusting the deployment's CA that offers ``version`` up to ``highest``
    (only ``version`` by default). Below TLS 1.2 it lowers OpenSSL's security level to
    0, without which this side would refuse to offer the version at all: a refusal must
    come from the server."""
    ca = state_dir(deployment.profile_path, deployment.plan.customer.id) / "ca.crt"
    context = ssl.create_default_context(cafile=str(ca))
    with warnings.catch_warnings():
        # TLS 1.0 and 1.1 are deprecated in Python: exactly what is being offered here.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = version
        context.maximum_version = highest or version
    if version < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


@dataclass(frozen=True)
class HttpsReply:
    status: int
    body: bytes
    #: the TLS version negotiated
    version: str
    #: the server's certificate, DER
    certificate: bytes
    #: every response header line as sent, in order, names lower-cased
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]


def https_request(address: str, domain: str, context: ssl.SSLContext, path: str,
                  headers: dict[str, str] | None = None) -> HttpsReply:
    """GET ``path`` from ``address``:443 with ``domain`` as SNI and Host (and any
    extra request ``headers``), the server checked by ``context``."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    with socket.create_connection((address, 443), timeout=15) as raw, \
            context.wrap_socket(raw, server_hostname=domain) as conn:
        certificate = conn.getpeercert(binary_form=True) or b""
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {domain}\r\n{extra}"
                     "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        version = conn.version() or ""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    fields = [(k.strip().lower(), v.strip()) for k, _, v in
              (line.partition(":") for line in lines[1:])]
    return HttpsReply(status=int(lines[0].split(" ", 2)[1]), body=body, version=version,
                      certificate=certificate, headers=fields)


SSLYZE = Path(__file__).resolve().parents[2] / ".venv-sslyze" / "bin" / "sslyze"


def sslyze_modern(address: str, domain: str, ca_pem: str, workdir: Path) -> tuple[int, str]:
    """sslyze's verdict on ``domain`` at ``address``:443 against Mozilla's "modern"
    configuration, trusting ``ca_pem``: (exit code, its compliance section)."""
    assert SSLYZE.exists(), f"{SSLYZE} is missing: run scripts/setup"
    ca = workdir / "sslyze-trusted.pem"
    ca.write_text(ca_pem)
    done = subprocess.run([str(SSLYZE), "--mozilla_config=modern", f"--certinfo_ca_file={ca}",
                           f"{domain}:443{{{address}}}"], capture_output=True, text=True,
                          timeout=300, check=False)
    start = done.stdout.upper().rfind("COMPLIANCE AGAINST")
    return done.returncode, (done.stdout[start:] if start >= 0 else done.stdout + done.stderr)


def https_get(deployment: Deployment, address: str, path: str,
              version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
              highest: ssl.TLSVersion | None = None) -> tuple[int, Any, str]:
    """GET over TLS ``version`` (to ``highest``) with the deployment's domain as SNI and
    Host; returns (status, parsed JSON body or None, negotiated TLS version)."""
    reply = https_request(address, deployment.plan.tls.domain,
                          tls_context(deployment, version, highest), path)
    try:
        parsed = json.loads(reply.body)
    except ValueError:
        parsed = None
    return reply.status, parsed, reply.version


PROBE_EGRESS = """
import json, sys, urllib.request
url = "http://127.0.0.1:%d/egress?host=%s&port=%d" % (int(sys.argv[1]), sys.argv[2],
                                                     int(sys.argv[3]))
print(urllib.request.urlopen(url, timeout=30).read().decode())
"""


def egress_verdict(deployment: Deployment, host: str, target: str, port: int = 443
                   ) -> dict[str, Any]:
    """The app's egress proxy's answer to CONNECT target:port, asked by the app itself."""
    done = ssh(deployment.box, guest_for(deployment, host), "python3", "-c", PROBE_EGRESS,
               str(deployment.plan.app.port), target, str(port))
    assert done.returncode == 0, done.stderr
    verdict: dict[str, Any] = json.loads(done.stdout)
    return verdict


DIRECT_CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
    print("connected")
except OSError as exc:
    print("blocked", type(exc).__name__)
"""


def direct_connect_as_app(deployment: Deployment, host: str, address: str, port: int) -> str:
    """``connected`` or ``blocked ...``: a TCP connect by the app user, not via the proxy."""
    done = ssh(deployment.box, guest_for(deployment, host), "runuser", "-u",
               deployment.plan.app.user, "--", "python3", "-c", DIRECT_CONNECT, address,
               str(port))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def app_env_keys(deployment: Deployment, host: str) -> list[str]:
    done = ssh(deployment.box, guest_for(deployment, host), "cut", "-d=", "-f1",
               deployment.plan.app.env_file)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def run_dirs_of(pid: int) -> list[Path]:
    from selfhost.deploy.runner import RUN_PREFIX, base_dir

    return list(base_dir().glob(f"{RUN_PREFIX}{pid}-*"))


def env_without_secrets() -> dict[str, str]:
    env = dict(os.environ)
    env["SELFHOST_PASSPHRASE"] = PASSPHRASE
    return env


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, parents first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children.get(current, [])
    return out
