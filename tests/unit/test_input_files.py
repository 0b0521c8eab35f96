"""Every input file is read bounded: regular files only, never more than a limit.

A FIFO must be refused at once (a read would wait for a writer forever), a
device such as /dev/zero never ends, and a huge file must not be loaded into
memory. The FIFO cases run the CLI in a subprocess with a timeout, so a hang
fails the test instead of stalling the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from input_support import PROFILE

from selfhost.cli import main
from selfhost.paths import PROFILES_DIR

CLI = [sys.executable, "-c", "from selfhost.cli import main; main()"]


def _fifo(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    os.mkfifo(path)
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELFHOST_")}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=30,
                          check=False, env=env)


def test_validate_refuses_a_device_without_a_traceback() -> None:
    result = CliRunner().invoke(main, ["validate", "/dev/zero"])
    assert (result.exit_code, result.output.strip()) == (
        2, "error: /dev/zero:1: cannot read the file: it is a character device, not a regular "
           "file (give the path of a profile file)")


def test_validate_refuses_a_fifo_at_once(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path, "p.yaml")
    result = _run("validate", str(fifo))
    assert (result.returncode, "Traceback" in result.stderr) == (2, False)
    assert f"{fifo}:1: cannot read the file: it is a FIFO, not a regular file" in (
        result.stdout + result.stderr)


def test_validate_refuses_a_huge_profile_before_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(3_000_000_000)  # sparse: no disk used, but far over the limit
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert (result.exit_code, result.output.strip()) == (
        2, f"error: {path}:1: cannot read the file: it is larger than 1000000 bytes (give the "
           "path of a profile file)")


def test_init_refuses_an_answers_fifo(tmp_path: Path, key_file: Path) -> None:
    fifo = _fifo(tmp_path, "answers.yaml")
    result = _run("init", "--output", str(tmp_path / "acme.yaml"), "--key-file",
                  str(key_file), "--answers", str(fifo))
    assert (result.returncode, "it is a FIFO" in result.stdout + result.stderr) == (2, True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.yaml", "secrets.key"]


def test_batch_refuses_a_prospects_fifo(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path, "prospects.csv")
    result = _run("subprocessors", "batch", str(fifo), "--output-dir", str(tmp_path / "out"))
    assert (result.returncode, "it is a FIFO" in result.stdout + result.stderr) == (2, True)
    assert not (tmp_path / "out").exists()


def test_batch_refuses_a_device(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["subprocessors", "batch", "/dev/zero", "--output-dir",
                                       str(tmp_path / "out")])
    assert (result.exit_code, "it is a character device" in result.output) == (2, True)
    assert not (tmp_path / "out").exists()


def test_a_certificate_that_is_a_device_is_a_field_error(tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(PROFILE.replace("  domain: chat.acme.example\n",
                                       "  domain: chat.acme.example\n  mode: provided\n"
                                       "  cert_file: /dev/zero\n  key_file: /dev/zero\n"))
    result = CliRunner().invoke(main, ["validate", str(profile)])
    assert result.exit_code == 2
    assert f"{profile}:13: tls.cert_file: cannot read /dev/zero (it is a character device, " \
           "not a regular file)" in result.output
    assert "Traceback" not in result.output


def test_a_key_file_that_is_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path, "fifo.key")
    result = _run("init", "--output", str(tmp_path / "acme.yaml"), "--key-file", str(fifo),
                  "--preset", "air-gapped", "--set", "hosts.app.0.address=192.0.2.10")
    assert (result.returncode, "it is a FIFO" in result.stdout + result.stderr) == (5, True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo.key"]


def test_render_refuses_a_catalog_overlay_fifo(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path, "overlay.yaml")
    result = _run("subprocessors", "render", str(PROFILES_DIR / "air-gapped.yaml"),
                  "--catalog-overlay", str(fifo))
    assert (result.returncode, f"{fifo}:1: cannot read the catalog overlay (it is a FIFO, "
            "not a regular file)" in result.stdout + result.stderr) == (2, True)
