"""Which cgroup hierarchies a guest gets its own leaf in: pure parsing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from selfhost.sandbox.cgroups import join_then_exec, leaf_name, systemd_hierarchies

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
UNIFIED = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"


@pytest.mark.parametrize(
    ("mountinfo", "expected"),
    [
        (HYBRID, [Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified")]),
        (UNIFIED, [Path("/sys/fs/cgroup")]),
        ("", []),
    ],
)
def test_systemd_hierarchies(mountinfo: str, expected: list[Path]) -> None:
    assert systemd_hierarchies(mountinfo) == expected


def test_leaf_differs_between_state_dirs() -> None:
    assert leaf_name(Path("/a/guests/g-1")) != leaf_name(Path("/b/guests/g-1"))


def test_join_then_exec_writes_its_pid_then_runs_the_command(tmp_path: Path) -> None:
    procs = [tmp_path / "one", tmp_path / "two"]
    argv = join_then_exec(procs, ["sh", "-c", "echo $$"])
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    assert [p.read_text().strip() for p in procs] == [out, out]
