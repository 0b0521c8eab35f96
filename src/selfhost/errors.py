"""The one error family the CLI turns into a message and an exit code.

Every library module raises a subclass of :class:`SelfhostError` for anything
a user can fix; the CLI prints ``message`` (never a traceback) and exits with
``exit_code``. The codes are documented in the README and listed here.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    #: a comparison found a difference (``subprocessors diff``), or checks failed (``verify``)
    DIFFERENCE = 1
    #: bad input: a profile, answers file, option or prospect row is invalid
    INVALID = 2
    #: this machine lacks something: root, a package, a kernel feature
    PREREQUISITE = 3
    #: the deployment itself failed on a host (Ansible task failure, unreachable host)
    DEPLOY_FAILED = 4
    #: secrets could not be opened: wrong passphrase, tampered or missing file
    SECRETS = 5
    #: the user declined a confirmation
    ABORTED = 6
    INTERRUPTED = 130


class SelfhostError(Exception):
    """A failure with a message meant for the user."""

    exit_code: int = ExitCode.INVALID

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code


class InvalidInput(SelfhostError):
    exit_code = ExitCode.INVALID


class ValidationFailed(InvalidInput):
    """A document failed validation; ``problems`` holds one rendered line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class PrerequisiteMissing(SelfhostError):
    exit_code = ExitCode.PREREQUISITE


class DeployFailed(SelfhostError):
    exit_code = ExitCode.DEPLOY_FAILED


class SecretsError(SelfhostError):
    exit_code = ExitCode.SECRETS


class Aborted(SelfhostError):
    exit_code = ExitCode.ABORTED


class ChecksFailed(SelfhostError):
    exit_code = ExitCode.DIFFERENCE
