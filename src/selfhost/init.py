"""``selfhost init``: answers -> a validated profile and its encrypted secrets.

Answers come from four places, later ones winning: a preset from
``profiles/``, an answers file, ``--set key.path=value`` flags, and (for keys
still missing) the questionnaire. Every path ends in the one Profile model,
so the same rules run however a value arrived. The profile and the secrets
file are written together and atomically: on any error neither is changed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from selfhost import questions, secrets
from selfhost.answers import Source, leaf_paths, merge, parse_set, refuse_secret_key
from selfhost.envvars import PASSPHRASE_ENV
from selfhost.errors import InvalidInput, SecretsError, ValidationFailed
from selfhost.models import Profile, field_errors
from selfhost.paths import preset_names, preset_path
from selfhost.plan import plan
from selfhost.profile_checks import Problem, tls_problems
from selfhost.profile_io import dump_profile, load_profile_data
from selfhost.questions import Answers, Question

#: ``ask(question, default, error)`` returns the answer to one question;
#: ``error`` is the problem with the previous answer when it is asked again
Ask = Callable[[Question, Any, str | None], Any]

#: ``ask_passphrase(new)`` returns the secrets passphrase; ``new`` asks for confirmation
AskPassphrase = Callable[[bool], str]

#: the wizard re-asks a question at most this often before giving up
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class InitRequest:
    output: Path
    preset: str | None = None
    answers_file: Path | None = None
    #: ``key.path=value`` items, values parsed as YAML scalars
    sets: tuple[str, ...] = ()
    force: bool = False
    passphrase: str | None = None
    key_file: Path | None = None
    #: where supplied secrets (``SELFHOST_<NAME>``) are read from
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass
class InitResult:
    profile_path: Path
    secrets_path: Path
    profile: Profile
    generated: list[str]
    supplied: list[str]
    kept: list[str]
    removed: list[str]
    warnings: list[str]


# -- collecting answers -------------------------------------------------------------

def collect(request: InitRequest) -> tuple[Answers, list[Source]]:
    """Preset < answers file < --set, merged; with the sources for error messages."""
    sources: list[Source] = []
    if request.preset is not None:
        path = preset_path(request.preset)
        if not path.is_file():
            raise InvalidInput(f"--preset {request.preset}: no such preset (choose one of: "
                               f"{', '.join(preset_names())})")
        data, lines = load_profile_data(path)
        sources.append(Source(str(path), data, lines))
    if request.answers_file is not None:
        data, lines = load_profile_data(request.answers_file)
        for leaf in leaf_paths(data):
            refuse_secret_key(leaf, f"{request.answers_file}:{lines.line_of(leaf)}:")
        sources.append(Source(str(request.answers_file), data, lines))
    flags: Answers = {}
    for item in request.sets:
        key, value = parse_set(item)
        try:
            questions.put(flags, key, value)
        except ValueError as exc:
            raise InvalidInput(f"--set {key}: {exc}") from None
    if flags:
        sources.append(Source("--set", flags))
    merged: Answers = {}
    for source in sources:
        merged = merge(merged, source.data)
    return merged, sources


# -- asking -------------------------------------------------------------------------

def _ask_until_valid(ask: Ask, question: Question, answers: Answers,
                     error: str | None = None) -> None:
    for _ in range(MAX_ATTEMPTS):
        value = questions.parse_answer(question, ask(question,
                                                     question.default_for(answers), error))
        error = questions.check(question, value)
        if error is None:
            questions.record(answers, question, value)
            return
    raise InvalidInput(f"{question.key}: {error} (no valid answer after {MAX_ATTEMPTS} "
                       "attempts)")


def complete(answers: Answers, ask: Ask | None, ask_defaults: bool) -> list[Question]:
    """Fill in what is missing; returns the questions left unanswered (no ``ask``).

    With ``ask_defaults`` false, questions that have a default are not asked:
    the default is taken, as a preset or answers file implies.
    """
    missing: list[Question] = []
    for question in questions.walk(answers):
        if questions.has(answers, question.key):
            continue
        default = question.default_for(answers)
        if ask is None or (not ask_defaults and (default is not None or question.optional)):
            if default is not None:
                questions.record(answers, question, questions.parse_answer(question, default))
            elif not question.optional:
                missing.append(question)
            continue
        _ask_until_valid(ask, question, answers)
    return missing


def _missing_error(missing: list[Question]) -> InvalidInput:
    lines = [f"{q.key}: no answer (pass --set {q.key}=VALUE or put it in the --answers "
             "file)" for q in missing]
    return ValidationFailed(["answers are missing and there is no terminal to ask:", *lines])


def _validate(answers: Answers, sources: list[Source], ask: Ask | None) -> Profile:
    """The Profile; in the wizard, a question whose answer breaks a rule is re-asked."""
    for _ in range(MAX_ATTEMPTS):
        try:
            return Profile.model_validate(answers)
        except ValidationError as exc:
            problems = field_errors(exc)
        by_key = {q.key: q for q in questions.walk(answers)}
        asked = [(by_key[p], m) for p, m in problems if p in by_key and ask is not None
                 and not any(s.locate(p) for s in sources)]
        if not asked or len(asked) != len(problems):
            raise ValidationFailed([_render(p, m, sources) for p, m in problems])
        for question, message in asked:
            questions.delete(answers, question.key)
            assert ask is not None
            _ask_until_valid(ask, question, answers, message)
    raise ValidationFailed(["the answers do not satisfy the profile rules (run selfhost "
                            "init again)"])


def _render(path: str, message: str, sources: list[Source]) -> str:
    for source in reversed(sources):
        where = source.locate(path)
        if where:
            return f"{where}: {message}"
    return f"{path}: {message}" if path else message


# -- secrets ------------------------------------------------------------------------

def _credential(request: InitRequest,
                ask_passphrase: AskPassphrase | None) -> tuple[str | None, Path | None]:
    """The key file, or else the passphrase: given, from the environment, or asked."""
    if request.key_file is not None:
        return None, request.key_file
    passphrase = request.passphrase or request.environ.get(PASSPHRASE_ENV) or None
    if passphrase is None and ask_passphrase is not None:
        passphrase = ask_passphrase(not secrets.secrets_path(request.output).exists())
    if not passphrase:
        raise SecretsError(f"no passphrase for the secrets file (set "
                           f"{PASSPHRASE_ENV}, or pass --key-file)")
    if (len(passphrase) < secrets.MIN_PASSPHRASE
            and not secrets.secrets_path(request.output).exists()):
        # The passphrase is all that protects the file once it is copied away.
        raise InvalidInput(f"the passphrase has {len(passphrase)} characters; a new secrets "
                           f"file needs at least {secrets.MIN_PASSPHRASE} (choose a longer "
                           "one, or pass --key-file)")
    return passphrase, None


def _existing_secrets(request: InitRequest, passphrase: str | None,
                      key_file: Path | None) -> dict[str, str]:
    if not secrets.secrets_path(request.output).exists():
        return {}
    loaded = secrets.load_secrets(request.output, passphrase, key_file)
    return {name: loaded[name] for name in loaded}


def secret_question(name: str) -> Question:
    return Question(name, f"{name} (hidden input; or set {secrets.env_name(name)})",
                    hidden=True)


def _gather_secrets(profile: Profile, request: InitRequest, ask: Ask | None,
                    result: InitResult, existing: dict[str, str]) -> dict[str, str]:
    required = plan(profile).secrets_required
    values: dict[str, str] = {}
    unsupplied: list[str] = []
    for spec in required:
        variable = secrets.env_name(spec.name)
        if spec.source == "supplied" and request.environ.get(variable):
            # A variable given now replaces a stored value: that is how a key is rotated.
            values[spec.name] = request.environ[variable]
            result.supplied.append(spec.name)
        elif spec.name in existing:
            values[spec.name] = existing[spec.name]
            result.kept.append(spec.name)
        elif spec.source == "generated":
            values[spec.name] = secrets.generate(spec.name)
            result.generated.append(spec.name)
        elif ask is not None:
            value = ask(secret_question(spec.name), None, None)
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput(f"{spec.name}: an empty value is not a credential (enter "
                                   f"it again, or set {variable})")
            values[spec.name] = value.strip()
            result.supplied.append(spec.name)
        else:
            unsupplied.append(spec.name)
        if spec.name in values and spec.source == "supplied" and any(
                ord(c) < 32 or ord(c) == 127 for c in values[spec.name]):
            # It goes into the app's environment file, where a newline ends the value.
            raise InvalidInput(f"{spec.name}: the value contains a newline or another "
                               f"control character (give the credential alone, e.g. "
                               f"{variable}=\"$(tr -d '\\n' < FILE)\")")
    if unsupplied:
        raise ValidationFailed([
            f"{name}: this third-party secret is not supplied (set the environment variable "
            f"{secrets.env_name(name)})" for name in unsupplied
        ])
    result.removed = sorted(set(existing) - set(values))
    return values


# -- writing ------------------------------------------------------------------------

def _write_together(files: list[tuple[Path, bytes, int]]) -> None:
    """Write every file or none: all go to temporary files first, then are renamed.

    Any failure while writing leaves every target untouched. The renames are
    atomic one by one; between the two, only a crash of the machine itself
    could leave a new secrets file beside the old profile, which is why the
    secrets go first: it holds every secret the new profile needs, and the
    old one still finds those it kept.
    """
    temps: list[tuple[str, Path]] = []
    try:
        for path, data, mode in files:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                       suffix=".tmp")
            temps.append((tmp, path))
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        for tmp, path in temps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)


def run_init(request: InitRequest, ask: Ask | None,
             ask_passphrase: AskPassphrase | None = None) -> InitResult:
    """Build, validate and write a profile and its secrets.

    ``ask`` is None without a terminal: then defaults are taken and every
    answer still missing is reported with the flag that supplies it.
    ``ask_passphrase`` is used only when neither a key file nor a passphrase
    (argument or ``SELFHOST_PASSPHRASE``) is given.
    """
    output = request.output
    if secrets.secrets_path(output) == output:
        raise InvalidInput(f"--output {output}: that is the name of the profile's own secrets "
                           f"file, so one would overwrite the other (name the profile "
                           f"{output.with_suffix('.yaml')})")
    if output.exists() and not request.force:
        raise InvalidInput(f"{output} already exists (pass --force to overwrite it; its "
                           "secrets are kept)")
    if not output.parent.is_dir():
        raise InvalidInput(f"{output.parent} is not a directory (create it, or choose "
                           "another --output)")
    answers, sources = collect(request)
    ask_defaults = not sources
    missing = complete(answers, ask, ask_defaults)
    if missing:
        raise _missing_error(missing)
    profile = _validate(answers, sources, ask)
    problems: list[Problem] = tls_problems(profile, output)
    errors = [p for p in problems if not p.warning]
    if errors:
        raise ValidationFailed([_render(p.field, p.message, sources) for p in errors])

    result = InitResult(profile_path=output, secrets_path=secrets.secrets_path(output),
                        profile=profile, generated=[], supplied=[], kept=[], removed=[],
                        warnings=[f"{p.field}: {p.message}" for p in problems if p.warning])
    passphrase, key_file = _credential(request, ask_passphrase)
    existing = _existing_secrets(request, passphrase, key_file)
    values = _gather_secrets(profile, request, ask, result, existing)
    sealed = secrets.seal(values, passphrase=passphrase, key_file=key_file)
    _write_together([
        (result.secrets_path, sealed, 0o600),
        (output, dump_profile(profile).encode(), 0o644),
    ])
    return result
