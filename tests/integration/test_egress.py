"""The egress fence from the attacker's side, on real Debian 12 and 13 guests.

One guest per release gets the us-openai preset with its database and cache
external *by name* (so the app has direct endpoints whose names need resolving),
deployed once for the module. The tests then act as the app user (or as another
user for contrast), tamper with the guest where an attack needs it (a hosts-file
entry, a resolver, a second address) and put it back. Every bystander is an
address on the sandbox's bridge that the test itself listens on.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from deploy_support import (
    PASSPHRASE,
    RELEASES,
    SUPPLIED,
    Deployment,
    assert_nothing_changed,
    run_deploy,
    ssh,
)

from conftest import SandboxFactory
from selfhost.deploy import DeployResult
from selfhost.init import InitRequest, run_init
from selfhost.verify import verify

pytestmark = pytest.mark.slow

#: what the deploy-time resolution finds for the external services' names (the
#: guest's hosts file, set before the deploy); documentation addresses, which
#: have no route out of the guest
PINNED = {"db.example.net": "203.0.113.50", "cache.example.net": "203.0.113.51"}
LISTED_NAME = "api.openai.com"
#: where the listed name points in the guest's hosts file, so the proxy's own
#: lookup answers at once (and the connection fails locally: no route)
LISTED_ADDRESS = "203.0.113.8"
#: an address made to reverse-resolve to a listed name (never routed either)
DISGUISED = "203.0.113.7"
PROXY_LOG = "/var/log/squid/access.log"


@dataclass
class Host:
    deployment: Deployment
    guest: str
    address: str
    bridge: str
    app_user: str
    proxy_port: int
    ssh_port: int = 22

    def run(self, *argv: str, timeout: float = 60) -> str:
        done = ssh(self.deployment.box, self.guest, *argv, timeout=timeout)
        assert done.returncode == 0, f"{argv}: {done.stderr}"
        return done.stdout

    def as_user(self, user: str, script: str, *args: str) -> str:
        return self.run("runuser", "-u", user, "--", "python3", "-c", script, *args).strip()


def deploy_fenced_guest(sandbox_factory: SandboxFactory, work: Path, name: str, release: str,
                        *extra_sets: str) -> Host:
    """One guest with the us-openai preset, its database and cache external by
    name (pinned in the guest's hosts file), deployed once."""
    box = sandbox_factory(name, 1, release)
    guest = box.guests[0]
    profile = work / "profile.yaml"
    sets = ("hosts.ssh_user=root", f"hosts.app.0.address={guest.address}",
            "database.mode=external",
            "database.dsn=postgresql://backendchat@db.example.net:5432/backendchat"
            "?sslmode=verify-full",
            "cache.mode=external", "cache.url=rediss://backendchat@cache.example.net:6380/0",
            *extra_sets)
    run_init(InitRequest(output=profile, preset="us-openai", sets=sets, force=True,
                         passphrase=PASSPHRASE,
                         environ={f"SELFHOST_{k.upper()}": v for k, v in SUPPLIED.items()}),
             None, None)
    deployment = Deployment("us-openai", release, profile, box)
    pinned = "".join(f"{address} {name}\n" for name, address in
                     [*PINNED.items(), (LISTED_NAME, LISTED_ADDRESS)])
    # The guest's own resolver is the sandbox host (a bystander that answers
    # nothing): before the fence, the deploy let the app user query it.
    setup = ssh(box, guest.name, "sh", "-c",
                f"printf '%s' '{pinned}' >> /etc/hosts && "
                f"printf 'nameserver {box.bridge_address}\\n' > /etc/resolv.conf")
    assert setup.returncode == 0, setup.stderr
    run_deploy(deployment, work, label="first").require()
    plan = deployment.plan
    return Host(deployment, guest.name, guest.address, box.bridge_address, plan.app.user,
                plan.proxy_port)


@pytest.fixture(scope="module", params=RELEASES)
def host(request: pytest.FixtureRequest, sandbox_factory: SandboxFactory,
         tmp_path_factory: pytest.TempPathFactory) -> Host:
    release: str = request.param
    return deploy_fenced_guest(sandbox_factory, tmp_path_factory.mktemp(f"egress-{release}"),
                               f"e{release[:2]}-egress", release)


# -- a bystander the test owns ---------------------------------------------------

@dataclass
class Listener:
    """TCP (or UDP) on the bridge address; records who connected (or what came in)."""

    seen: list[tuple[str, int]] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)


@contextlib.contextmanager
def listening(address: str, port: int = 0, *, udp: bool = False
              ) -> Iterator[tuple[int, Listener]]:
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    sock = socket.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    if not udp:
        sock.listen(16)
    sock.settimeout(0.2)
    listener, stop = Listener(), threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                if udp:
                    data, peer = sock.recvfrom(4096)
                    listener.payloads.append(data)
                else:
                    conn, peer = sock.accept()
                    conn.close()
                listener.seen.append((peer[0], peer[1]))
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1], listener
    finally:
        stop.set()
        thread.join()
        sock.close()


# -- 1: the proxy matches names only by name ---------------------------------------

RAW_REQUEST = """
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30) as s:
    s.sendall(sys.argv[2].encode().decode("unicode_escape").encode())
    print(s.recv(4096).split(b"\\r\\n")[0].decode())
"""


def proxy_status(host: Host, request: str) -> int:
    """The status the proxy answers the app user's raw ``request`` with."""
    line = host.as_user(host.app_user, RAW_REQUEST, str(host.proxy_port), request)
    return int(line.split()[1])


def connect_request(target: str) -> str:
    return f"CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\n"


def _logged(host: Host, pattern: str, seconds: int) -> bool:
    """Whether the proxy's access log gets a line matching ``pattern`` (grep) within
    ``seconds``: squid's log daemon writes with a delay, longer on a busy host."""
    count = host.run("sh", "-c", f"for i in $(seq {seconds * 10}); do "
                     f"n=$(grep -c -- '{pattern}' {PROXY_LOG}); [ \"$n\" -gt 0 ] && break; "
                     "sleep 0.1; done; echo ${n:-0}", timeout=seconds + 60).strip()
    return int(count) > 0


#: squid's own log (Debian's default place): a reconfigure writes "Reconfiguring Squid
#: Cache", then "Accepting HTTP Socket connections" once it listens again
SQUID_CACHE_LOG = "/var/log/squid/cache.log"
#: on the guest: reload, then wait (60 s at most) until cache.log shows a new
#: reconfigure that has finished; prints "settled" or "pending"
RELOAD_AND_SETTLE = rf"""
log={SQUID_CACHE_LOG}; count() {{ grep -c 'Reconfiguring Squid Cache' $log || true; }}
before=$(count); systemctl reload squid.service
for i in $(seq 600); do
  up=$(tac $log | awk '/Accepting HTTP Socket/{{a=1}}
                      /Reconfiguring Squid Cache/{{print a+0; exit}}')
  [ "$(count)" -gt "$before" ] && [ "$up" = 1 ] && {{ echo settled; exit 0; }}
  sleep 0.1
done
echo pending
"""


def _reload_squid(host: Host) -> None:
    """``systemctl reload`` only signals squid, which reconfigures later and restarts
    its log daemon then (a line handed over meanwhile can be lost): reload, wait until
    squid's own log shows that reconfigure finished, then until a refused request of
    our own is answered and logged."""
    settled = host.run("bash", "-c", RELOAD_AND_SETTLE, timeout=120).strip()
    assert settled == "settled", "squid did not finish reconfiguring within 60 s of a reload"
    for _ in range(6):
        marker = f"settled-{secrets.token_hex(4)}.invalid:443"
        with contextlib.suppress(AssertionError, IndexError, ValueError):
            proxy_status(host, connect_request(marker))
        if _logged(host, f"CONNECT {marker}", 15):
            return
    pytest.fail("squid did not answer and log a refused request within 90 s of a reload")


def test_proxy_refuses_an_address_that_reverse_resolves_to_a_listed_name(host: Host) -> None:
    host.run("sh", "-c", f"echo '{DISGUISED} {LISTED_NAME}' >> /etc/hosts")
    try:
        _reload_squid(host)
        # The attack's premise holds: the address's reverse lookup names the listed host.
        reverse = host.run("getent", "hosts", DISGUISED).split()
        status = proxy_status(host, connect_request(f"{DISGUISED}:443"))
        logged = _logged(host, f"TCP_DENIED/403 .* CONNECT {DISGUISED}:443", 60)
    finally:
        host.run("sh", "-c", f"sed -i '/^{DISGUISED} /d' /etc/hosts")
        _reload_squid(host)
    assert (reverse[1:], status, logged) == ([LISTED_NAME], 403, True)


def test_proxy_admits_the_listed_name_itself(host: Host) -> None:
    # The refusals mean something only because the same proxy admits the name:
    # the guest has no route out, so "admitted but unreachable" is all it gets.
    assert proxy_status(host, connect_request(f"{LISTED_NAME}:443")) in (200, 502, 503, 504)


@pytest.mark.parametrize("request_line", [
    f"GET http://{LISTED_NAME}:443/ HTTP/1.1\\r\\nHost: {LISTED_NAME}\\r\\n\\r\\n",
    f"CONNECT {LISTED_NAME}:8443 HTTP/1.1\\r\\nHost: {LISTED_NAME}:8443\\r\\n\\r\\n",
    "CONNECT 127.0.0.1:22 HTTP/1.1\\r\\nHost: 127.0.0.1:22\\r\\n\\r\\n",
], ids=["plain-http-to-listed", "listed-name-other-port", "loopback-address"])
def test_proxy_refuses_other_methods_ports_and_addresses(host: Host, request_line: str) -> None:
    assert proxy_status(host, request_line) == 403


# -- 2: no accept rule meant for others serves the app user ------------------------

FROM_PORT = """
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(15)
try:
    s.connect((sys.argv[3], int(sys.argv[4])))
    print("connected")
except OSError as exc:
    print("blocked", type(exc).__name__)
"""


@contextlib.contextmanager
def ssh_port_free_on_a_second_address(host: Host) -> Iterator[str]:
    """A second address on the guest whose ssh port the app user may bind: sshd
    listens on the management address only and unprivileged ports start at 0 (as
    on hosts that run services as non-root on low ports)."""
    second = host.address.rsplit(".", 1)[0] + ".250"
    # restart, not reload (a reload re-executes sshd and did not always come back on a
    # busy host); then wait (on a deadline) until it listens as wanted
    # again, so the next ssh connection of the tests finds it.
    def until_listening(address: str) -> str:
        # 60 s, then fail: on a busy host the re-exec can take seconds, and a test
        # that went on before sshd listened again would only see its neighbours fail.
        return (f"(for i in $(seq 600); do ss -Hltn 'sport = :{host.ssh_port}' | "
                f"grep -qF '{address}:{host.ssh_port}' && exit 0; sleep 0.1; done; "
                f"echo 'sshd does not listen on {address}:{host.ssh_port}' >&2; exit 1)")

    host.run("sh", "-c",
             f"echo 'ListenAddress {host.address}' > /etc/ssh/sshd_config.d/00-test.conf && "
             f"systemctl restart ssh.service && {until_listening(host.address)} && "
             "sysctl -qw net.ipv4.ip_unprivileged_port_start=0 && "
             f"ip address add {second}/32 dev host0")
    try:
        yield second
    finally:
        # sshd keeps listening on the management address only, which is all the later
        # tests and deploys use: restarting it back onto every address did not always
        # bring it back, and then every later test of the module failed for it.
        host.run("sh", "-c", "sysctl -qw net.ipv4.ip_unprivileged_port_start=1024; "
                 f"ip address del {second}/32 dev host0")


def test_app_user_cannot_leave_from_the_ssh_port(host: Host) -> None:
    with ssh_port_free_on_a_second_address(host) as second, \
            listening(host.bridge) as (port, bystander):
        as_app = host.as_user(host.app_user, FROM_PORT, second, str(host.ssh_port),
                              host.bridge, str(port))
        seen_by_app = list(bystander.seen)
        # Contrast: the same packet from root (not fenced under scope app) arrives.
        as_root = host.as_user("root", FROM_PORT, second, str(host.ssh_port),
                               host.bridge, str(port))
    assert (as_app.split()[0], seen_by_app, as_root, bystander.seen) == (
        "blocked", [], "connected", [(second, host.ssh_port)])


def test_app_unit_carries_the_kernel_side_fence(host: Host) -> None:
    # systemd drops a directive it cannot parse with only a log line: these are
    # the values it holds. (Sandbox guests mount cgroup v1, where systemd cannot
    # attach the BPF programs; the firewall tests above are the proof there.)
    shown = host.run("systemctl", "show", "backend-chat.service", "-p", "IPAddressDeny",
                     "-p", "IPAddressAllow", "-p", "SocketBindDeny", "-p", "SocketBindAllow",
                     "-p", "RestrictAddressFamilies", "-p", "BindReadOnlyPaths")
    values = dict(line.split("=", 1) for line in shown.splitlines())
    port = host.deployment.plan.app.port
    assert (set(values["IPAddressDeny"].split()), set(values["IPAddressAllow"].split()),
            values["SocketBindDeny"], values["SocketBindAllow"],
            set(values["RestrictAddressFamilies"].split())) == (
        {"0.0.0.0/0", "::/0"}, {"127.0.0.0/8", "::1/128", *(f"{a}/32" for a in PINNED.values())},
        # systemctl prints the bind rule tcp:PORT without its colon
        "any", f"tcp{port}", {"AF_UNIX", "AF_INET", "AF_INET6"})


def test_verify_names_an_accept_rule_inserted_before_the_fence(host: Host) -> None:
    def fence(result_of: str) -> tuple[bool, str]:
        result = verify(host.deployment.profile_path, sandbox=host.deployment.box.name)
        found = next(r for r in result.results if r.check.id == "egress.fence_first")
        return found.passed, result_of

    intact = fence("intact")
    host.run("nft", "insert", "rule", "inet", "backend_chat", "output", "tcp", "sport",
             str(host.ssh_port), "accept")
    try:
        tampered = fence("tampered")
    finally:
        host.run("systemctl", "reload", "nftables.service")
    assert (intact, tampered) == ((True, "intact"), (False, "tampered"))


# -- 3: no DNS leaves the host for the app ----------------------------------------

DNS_QUERY = """
import socket, struct, sys
name, server = sys.argv[1], sys.argv[2]
query = struct.pack(">HHHHHH", 0x5e1f, 0x0100, 1, 0, 0, 0) + b"".join(
    bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(query, (server, 53))
    print("sent")
except OSError as exc:
    print("refused", type(exc).__name__)
"""

LOOKUP = """
import socket, sys
try:
    print(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 443, socket.AF_INET)})[0])
except OSError as exc:
    print("unresolved", type(exc).__name__)
"""


def in_app_namespace(host: Host, script: str, *args: str) -> str:
    """``script`` as the app user inside the app unit's mount namespace (its own
    /etc/hosts and /etc/resolv.conf)."""
    pid = host.run("systemctl", "show", "-P", "MainPID", "backend-chat.service").strip()
    return host.run("nsenter", "-t", pid, "-m", "runuser", "-u", host.app_user, "--",
                    "python3", "-c", script, *args).strip()


def test_app_user_sends_no_dns_query_off_the_host(host: Host) -> None:
    app_name = f"x{secrets.token_hex(6)}.exfil.example.org"
    root_name = f"y{secrets.token_hex(6)}.exfil.example.org"
    with listening(host.bridge, 53, udp=True) as (_, resolver):
        host.as_user(host.app_user, DNS_QUERY, app_name, host.bridge)
        unit_lookup = in_app_namespace(host, LOOKUP, app_name)
        # Contrast: root's query reaches the same resolver.
        host.as_user("root", DNS_QUERY, root_name, host.bridge)
    labels = [name.split(".")[0].encode() for name in (app_name, root_name)]
    arrived = [any(label in p for p in resolver.payloads) for label in labels]
    assert (arrived, unit_lookup.split()[0]) == ([False, True], "unresolved")


def test_app_resolves_its_direct_endpoints_by_pinned_address(host: Host) -> None:
    assert {name: in_app_namespace(host, LOOKUP, name) for name in PINNED} == PINNED


def redeploy(host: Host, workdir: Path) -> DeployResult:
    """The same profile deployed again."""
    again = run_deploy(Deployment(host.deployment.preset, host.deployment.release,
                                  host.deployment.profile_path, host.deployment.box),
                       workdir, label="again")
    return again.require()


def test_redeploy_changes_nothing(host: Host, tmp_path: Path) -> None:
    # The pinned hosts file, the resolver file and the unit's fence are stable.
    assert_nothing_changed(redeploy(host, tmp_path))
