"""Real guests: two of each Debian release, booted, networked, reachable, removed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from selfhost import sandbox
from selfhost.cli.app import main
from selfhost.errors import ExitCode
from selfhost.sandbox import cgroups
from selfhost.sandbox.network import bridge_name
from selfhost.sandbox.state import Paths
from selfhost.sandbox.system import mounts_under, pids_matching

SandboxFactory = Callable[..., sandbox.Sandbox]
IsolatedEnv = Callable[[], AbstractContextManager[Path]]
pytestmark = pytest.mark.integration

GUESTS = [(release, index) for release in sandbox.RELEASES for index in (0, 1)]


@pytest.fixture(scope="module")
def boxes(sandbox_factory: SandboxFactory) -> dict[str, sandbox.Sandbox]:
    """Two guests per release, one sandbox per release."""
    return {r: sandbox_factory(f"it-{r}", hosts=2, release=r) for r in sandbox.RELEASES}


def run_in(box: sandbox.Sandbox, guest: sandbox.Guest, *argv: str,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(box.ssh_command(guest, *argv), capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.mark.parametrize(("release", "index"), GUESTS)
def test_guest_boots_systemd_to_running(boxes: dict[str, sandbox.Sandbox], release: str,
                                        index: int) -> None:
    box = boxes[release]
    assert run_in(box, box.guests[index], "systemctl", "is-system-running").stdout.strip() \
        == "running"


@pytest.mark.parametrize(("release", "index"), GUESTS)
def test_guest_runs_the_release_asked_for(boxes: dict[str, sandbox.Sandbox], release: str,
                                          index: int) -> None:
    box = boxes[release]
    out = run_in(box, box.guests[index], "cat", "/etc/os-release").stdout
    assert f"VERSION_CODENAME={release}" in out


@pytest.mark.parametrize("release", sandbox.RELEASES)
def test_guests_reach_each_other(boxes: dict[str, sandbox.Sandbox], release: str) -> None:
    box = boxes[release]
    peer = box.guests[1].address
    probe = run_in(box, box.guests[0], "bash", "-c", f"</dev/tcp/{peer}/22", timeout=30)
    assert probe.returncode == 0, probe.stderr


@pytest.mark.parametrize("release", sandbox.RELEASES)
def test_apt_update_works_through_the_host_cache(boxes: dict[str, sandbox.Sandbox],
                                                 release: str) -> None:
    box = boxes[release]
    update = run_in(box, box.guests[0], "apt-get", "update", timeout=300)
    assert update.returncode == 0, update.stdout[-2000:] + update.stderr[-2000:]


FETCH = """
import sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": sys.argv[1]}))
try:
    opener.open(sys.argv[2], timeout=30)
    print(200)
except urllib.error.HTTPError as exc:
    print(exc.code)
"""


@pytest.mark.parametrize("release", sandbox.RELEASES)
def test_apt_cache_refuses_anything_but_debian(boxes: dict[str, sandbox.Sandbox],
                                              release: str) -> None:
    # The URL points at the host's own bridge address: were the cache to try it
    # anyway, the request would still not leave the machine.
    box = boxes[release]
    url = f"http://{box.bridge_address}/pool/main/x/x/x.deb"
    answer = run_in(box, box.guests[0], "python3", "-c", FETCH, box.apt_proxy, url)
    assert answer.stdout.strip() == "403", answer.stderr


@pytest.mark.parametrize(("release", "index"), GUESTS)
def test_guest_has_no_route_beyond_the_bridge(boxes: dict[str, sandbox.Sandbox], release: str,
                                              index: int) -> None:
    # `ip route get` only asks the guest's routing table; no packet is sent.
    box = boxes[release]
    assert run_in(box, box.guests[index], "ip", "route", "get", "192.0.2.1").returncode != 0


@pytest.mark.parametrize("release", sandbox.RELEASES)
def test_host_keys_are_checked_strictly(boxes: dict[str, sandbox.Sandbox], release: str,
                                        tmp_path: Path) -> None:
    box = boxes[release]
    stranger = tmp_path / "known_hosts"
    stranger.write_text("")
    argv = [a.replace(str(box.known_hosts), str(stranger))
            for a in box.ssh_command(box.guests[0], "true")]
    assert subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 255


@pytest.mark.parametrize("release", sandbox.RELEASES)
def test_inventory_works_with_ansible(boxes: dict[str, sandbox.Sandbox], release: str) -> None:
    box = boxes[release]
    ansible = Path(sys.executable).parent / "ansible"
    ping = subprocess.run([str(ansible), "-i", str(box.inventory), "all", "-m", "ping"],
                          capture_output=True, text=True, timeout=180, check=False)
    assert ping.returncode == 0, ping.stdout[-2000:] + ping.stderr[-2000:]


def _init_cgroup(guest: sandbox.Guest) -> str:
    """The cgroup (unified hierarchy) of the guest's systemd, seen from the host."""
    children = Path(f"/proc/{guest.pid}/task/{guest.pid}/children").read_text().split()
    lines = Path(f"/proc/{children[0]}/cgroup").read_text().splitlines()
    return next(line for line in lines if line.startswith("0::")).removeprefix("0::")


@pytest.mark.parametrize(("release", "index"), GUESTS)
def test_guest_has_a_cgroup_of_its_own(boxes: dict[str, sandbox.Sandbox], release: str,
                                       index: int) -> None:
    # Shared cgroups make one guest's systemd manage the other's units.
    guest = boxes[release].guests[index]
    own = f"/{cgroups.PARENT}/{cgroups.leaf_name(guest.directory)}/"
    assert _init_cgroup(guest).startswith(own)


@pytest.mark.parametrize(("release", "index"), GUESTS)
def test_list_shows_each_running_guest(boxes: dict[str, sandbox.Sandbox], release: str,
                                       index: int) -> None:
    g = boxes[release].guests[index]
    out = CliRunner().invoke(main, ["sandbox", "list"]).output
    assert any(line.split()[1:] == [g.name, release, g.address, str(g.pid), "running"]
               for line in out.splitlines())


@dataclass(frozen=True)
class Rerun:
    before: sandbox.Sandbox
    after: sandbox.Sandbox
    exit_code: int
    output: str


@pytest.fixture(scope="module")
def rerun(sandbox_factory: SandboxFactory) -> Rerun:
    """A one-guest sandbox, then `selfhost sandbox up --hosts 2` on it again."""
    before = sandbox_factory("it-rerun", hosts=1)
    result = CliRunner().invoke(main, ["sandbox", "up", "--name", "it-rerun", "--hosts", "2"])
    return Rerun(before, sandbox.load("it-rerun"), result.exit_code, result.output)


def test_rerun_succeeds(rerun: Rerun) -> None:
    assert rerun.exit_code == 0, rerun.output


def test_rerun_keeps_the_running_guest(rerun: Rerun) -> None:
    assert rerun.after.guests[0] == rerun.before.guests[0]


def test_rerun_adds_the_missing_guest(rerun: Rerun) -> None:
    assert [g.state for g in rerun.after.guests] == ["running", "running"]


def test_rerun_prints_the_inventory(rerun: Rerun) -> None:
    assert str(rerun.after.inventory) in rerun.output


@dataclass(frozen=True)
class Clash:
    exit_code: int
    output: str
    state: Path


@pytest.fixture(scope="module")
def clash(boxes: dict[str, sandbox.Sandbox], tmp_path_factory: pytest.TempPathFactory) -> Clash:
    """`up` in a fresh state dir whose subnet is already routed (to the test bridge)."""
    state = tmp_path_factory.mktemp("clash") / "state"
    taken = os.environ["SELFHOST_SANDBOX_SUBNET"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SELFHOST_SANDBOX_DIR", str(state))
        mp.setenv("SELFHOST_SANDBOX_SUBNET", taken)
        try:
            result = CliRunner().invoke(main, ["sandbox", "up", "--name", "it-clash"])
        finally:
            sandbox.down_all()
    return Clash(result.exit_code, result.output, state)


def test_subnet_clash_is_invalid_input(clash: Clash) -> None:
    assert clash.exit_code == ExitCode.INVALID, clash.output


def test_subnet_clash_message_names_the_fix(clash: Clash) -> None:
    assert "set SELFHOST_SANDBOX_SUBNET" in clash.output


def test_failed_up_leaves_no_state(clash: Clash) -> None:
    assert not clash.state.exists()


@dataclass(frozen=True)
class Concurrent:
    exit_codes: list[int]
    outputs: list[str]
    addresses: list[str]


@pytest.fixture(scope="module")
def concurrent(sandbox_env: Path) -> Iterator[Concurrent]:
    """Two `selfhost sandbox up` processes started at the same moment."""
    names = ["it-conc-a", "it-conc-b"]
    cli = [sys.executable, "-c", "from selfhost.cli import main; main()", "sandbox", "up"]
    procs = [subprocess.Popen([*cli, "--name", n, "--hosts", "2"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for n in names]
    try:
        outputs = [p.communicate(timeout=600)[0] for p in procs]
        boxes = [sandbox.load(n) for n in names if n in {b.name for b in sandbox.list_sandboxes()}]
        yield Concurrent([p.returncode for p in procs], outputs,
                         [g.address for b in boxes for g in b.guests])
    finally:
        for n in names:
            sandbox.down(n)


def test_concurrent_ups_succeed(concurrent: Concurrent) -> None:
    assert concurrent.exit_codes == [0, 0], "\n".join(concurrent.outputs)


def test_concurrent_ups_get_distinct_addresses(concurrent: Concurrent) -> None:
    assert len(set(concurrent.addresses)) == 4


@dataclass(frozen=True)
class Traces:
    state: Path
    bridge: str
    nspawn_pids: list[int]
    acng_pids: list[int]
    mounts: list[Path]
    bridge_exists: bool
    cgroups: list[Path]


@pytest.fixture(scope="module")
def after_down(isolated_sandbox_env: IsolatedEnv) -> Traces:
    """Up two guests in an empty state dir, take them down, and look for what is left."""
    with isolated_sandbox_env() as state:
        box = sandbox.up("it-trace", 2)
        assert all(g.state == "running" for g in box.guests)
        bridge = bridge_name(Paths.from_env())
        guest_cgroups = [cg for g in box.guests for cg in cgroups.guest_cgroups(g.directory)]
        sandbox.down("it-trace")
        return Traces(
            state=state,
            bridge=bridge,
            nspawn_pids=pids_matching("systemd-nspawn", str(state)),
            acng_pids=pids_matching("apt-cacher-ng", str(state)),
            mounts=mounts_under(state),
            bridge_exists=Path("/sys/class/net", bridge).exists(),
            cgroups=[cg for cg in guest_cgroups if cg.exists()],
        )


def test_down_leaves_no_guest_process(after_down: Traces) -> None:
    assert after_down.nspawn_pids == []


def test_down_leaves_no_apt_cache_process(after_down: Traces) -> None:
    assert after_down.acng_pids == []


def test_down_leaves_no_mount(after_down: Traces) -> None:
    assert after_down.mounts == []


def test_down_removes_the_guest_cgroups(after_down: Traces) -> None:
    assert after_down.cgroups == []


def test_down_removes_the_bridge(after_down: Traces) -> None:
    assert not after_down.bridge_exists


def test_down_leaves_no_state_files(after_down: Traces) -> None:
    assert not after_down.state.exists() or list(after_down.state.iterdir()) == []


def test_down_of_a_missing_sandbox_succeeds(isolated_sandbox_env: IsolatedEnv) -> None:
    with isolated_sandbox_env():
        result = CliRunner().invoke(main, ["sandbox", "down", "--name", "never-made"])
    assert result.exit_code == 0, result.output


@dataclass(frozen=True)
class Killed:
    reported: list[str]
    guest_pids_alive: list[int]
    cgroups: list[Path]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.fixture(scope="module")
def after_kill(isolated_sandbox_env: IsolatedEnv) -> Killed:
    """A guest given no grace at all: SIGKILL to nspawn, then its leftovers killed."""
    with isolated_sandbox_env():
        guest = sandbox.up("it-kill", 1).guests[0]
        guest_cgroups = cgroups.guest_cgroups(guest.directory)
        pids = [int(pid) for cg in guest_cgroups
                for procs in (cg / "payload").rglob("cgroup.procs")
                for pid in procs.read_text().split()]
        assert pids, "the guest's processes were not found in its cgroup"
        reported = sandbox.down("it-kill", grace=0)
        return Killed(reported, [p for p in pids if _alive(p)],
                      [cg for cg in guest_cgroups if cg.exists()])


def test_kill_is_reported(after_kill: Killed) -> None:
    assert after_kill.reported == ["it-kill-1"]


def test_kill_leaves_no_guest_process(after_kill: Killed) -> None:
    assert after_kill.guest_pids_alive == []


def test_kill_leaves_no_cgroup(after_kill: Killed) -> None:
    assert after_kill.cgroups == []


def test_same_guest_name_in_two_state_dirs_runs_side_by_side(
        sandbox_factory: SandboxFactory, isolated_sandbox_env: IsolatedEnv) -> None:
    # Two test runs side by side use the same sandbox names; nspawn names each guest's
    # host-side interface after its machine name, so those must differ per state dir.
    first = sandbox_factory("it-twin", hosts=1)
    with isolated_sandbox_env():
        second = sandbox.up("it-twin", 1)
        states = [g.state for g in (*first.guests, *second.guests)]
        sandbox.down("it-twin")
    assert states == ["running", "running"]
