"""The one ssh command line of the commands that ask hosts directly."""

from __future__ import annotations

from selfhost.targets import SshTarget
from selfhost.targets.ssh import ask_json, ssh_argv


def _target(sudo: bool, identity: str | None = "/keys/id") -> SshTarget:
    return SshTarget(name="chat1", address="10.0.0.5", port=2222, user="ops",
                     identity_file=identity, ssh_args=("-o", "UserKnownHostsFile=/k"),
                     sudo=sudo)


def test_a_sudo_target_runs_the_quoted_argv_through_sudo_without_a_prompt() -> None:
    argv = ssh_argv(_target(sudo=True), ["sh", "-c", "cat '/etc/a b'; echo $HOME"])
    assert argv[:2] == ["ssh", "-o"]
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[argv.index("-i") + 1] == "/keys/id"
    assert "BatchMode=yes" in argv
    assert argv[-2:] == ["ops@10.0.0.5",
                         "sudo -n -- sh -c 'cat '\"'\"'/etc/a b'\"'\"'; echo $HOME'"]


def test_a_root_target_runs_the_argv_itself_and_no_key_means_no_identity_option() -> None:
    argv = ssh_argv(_target(sudo=False, identity=None), ["python3", "-"])
    assert "-i" not in argv
    assert argv[-3:] == ["UserKnownHostsFile=/k", "ops@10.0.0.5", "python3 -"]


def test_an_unreachable_host_is_an_answer_naming_the_failure() -> None:
    # Port 1 on loopback: refused at once, so ssh exits 255 and says why.
    target = SshTarget(name="h", address="127.0.0.1", port=1, user="nobody",
                       identity_file=None, ssh_args=(), sudo=False)
    answer = ask_json(target, ["true"], timeout=30)
    assert isinstance(answer, str)
    assert answer.startswith("ssh to nobody@127.0.0.1:1 failed (exit 255):"), answer
    assert "refused" in answer, answer
