"""The launcher reads the secrets from a named pipe into a memory file that
ansible-playbook inherits, and puts none into an environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from selfhost.deploy.launcher import FD_ENV, FIFO_ENV, memory_file, read_secrets


def _fifo_with(tmp_path: Path, payload: str) -> Path:
    fifo = tmp_path / "secrets.fifo"
    os.mkfifo(fifo, 0o600)

    def feed() -> None:
        with open(fifo, "w", encoding="utf-8") as pipe:
            pipe.write(payload)

    threading.Thread(target=feed, daemon=True).start()
    return fifo


def test_reads_a_mapping_of_strings(tmp_path: Path) -> None:
    fifo = _fifo_with(tmp_path, json.dumps({"SELFHOST_SECRET_A": "x"}))
    assert read_secrets(str(fifo)) == {"SELFHOST_SECRET_A": "x"}


def test_refuses_anything_else(tmp_path: Path) -> None:
    fifo = _fifo_with(tmp_path, json.dumps({"SELFHOST_SECRET_A": 1}))
    with pytest.raises(ValueError, match="mapping of strings"):
        read_secrets(str(fifo))


READ_THE_FD = """#!{python}
import json, os, sys
secrets = json.loads(os.pread(int(os.environ["{fd_env}"]), 65536, 0))
print(secrets["SELFHOST_SECRET_A"], "SELFHOST_SECRET_A" in os.environ,
      "from-the-pipe" in open("/proc/self/environ").read(),
      os.environ.get("{fifo_env}", "unset"), sys.argv[1])
"""


def test_launched_program_reads_the_secret_from_the_fd_not_its_environment(
        tmp_path: Path) -> None:
    fifo = _fifo_with(tmp_path, json.dumps({"SELFHOST_SECRET_A": "from-the-pipe"}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ansible-playbook"
    fake.write_text(READ_THE_FD.format(python=sys.executable, fd_env=FD_ENV,
                                       fifo_env=FIFO_ENV))
    fake.chmod(0o700)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", FIFO_ENV: str(fifo),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "selfhost.deploy.launcher", "site.yml"],
                          env=env, capture_output=True, text=True, check=False, timeout=30)
    assert done.stdout.strip() == "from-the-pipe False False unset site.yml", done.stderr


def test_memory_file_is_sealed() -> None:
    fd = memory_file({"SELFHOST_SECRET_A": "x"})
    try:
        with pytest.raises(PermissionError):
            os.pwrite(fd, b"y", 0)
        assert json.loads(os.pread(fd, 1024, 0)) == {"SELFHOST_SECRET_A": "x"}
    finally:
        os.close(fd)


def test_unreadable_pipe_fails_like_ansible(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], FIFO_ENV: str(tmp_path / "missing.fifo"),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "selfhost.deploy.launcher"], env=env,
                          capture_output=True, text=True, check=False, timeout=30)
    assert (done.returncode, "cannot read the deployment secrets" in done.stderr) == (250, True)


Plugin = Callable[[str], ModuleType]


def test_lookup_reads_the_memory_file_not_the_environment(
        monkeypatch: pytest.MonkeyPatch, lookup_plugin: Plugin) -> None:
    fd = memory_file({"SELFHOST_SECRET_A": "from-memory"})
    monkeypatch.setenv(FD_ENV, str(fd))
    monkeypatch.setenv("SELFHOST_SECRET_A", "from-the-environment")
    try:
        values = lookup_plugin("selfhost_secret").LookupModule().run(
            ["SELFHOST_SECRET_A", "SELFHOST_SECRET_B"])
    finally:
        os.close(fd)
    assert values == ["from-memory", ""]


def test_lookup_run_by_hand_reads_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                  lookup_plugin: Plugin) -> None:
    monkeypatch.setenv("SELFHOST_SECRET_A", "from-the-environment")
    assert lookup_plugin("selfhost_secret").LookupModule().run(["SELFHOST_SECRET_A"]) == [
        "from-the-environment"]


def test_lookup_names_a_descriptor_it_cannot_read(monkeypatch: pytest.MonkeyPatch,
                                                  lookup_plugin: Plugin) -> None:
    monkeypatch.setenv(FD_ENV, "999")
    plugin = lookup_plugin("selfhost_secret")
    with pytest.raises(plugin.AnsibleLookupError, match="descriptor 999"):
        plugin.LookupModule().run(["SELFHOST_SECRET_A"])
