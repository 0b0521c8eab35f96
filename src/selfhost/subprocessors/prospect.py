"""A prospect's row settles only the choices that shape its subprocessor list.

A sales engineer's prospect has chosen an AI provider, an e-mail service,
monitoring, a CDN and a residency, not a sender address, a relay host, a
collector endpoint or certificate files. Those settings only a deployment
needs are filled with stand-ins that shape nothing in the list (``.invalid``
names, RFC 6761, which never resolve) and the models of a preset are dropped
when the prospect turns AI off. Everything that does shape the list is
validated by the one Profile model as for a deployment, so an unknown provider
or an unacknowledged transfer still fails the row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from selfhost import questions
from selfhost.errors import ValidationFailed
from selfhost.init import InitRequest, collect, complete
from selfhost.models import Profile, field_errors

_Section = dict[str, Any]

#: (section, key, stand-in, whether the section's choice needs the key)
_STAND_INS: tuple[tuple[str, str, str, Callable[[_Section], bool]], ...] = (
    ("email", "from_address", "prospect@example.invalid",
     lambda s: s.get("provider", "none") != "none"),
    ("email", "smtp_host", "smtp.example.invalid", lambda s: s.get("provider") == "smtp"),
    ("monitoring", "self_hosted_endpoint", "monitoring.example.invalid",
     lambda s: s.get("provider") == "self-hosted"),
    ("tls", "cert_file", "prospect.invalid.crt", lambda s: s.get("mode") == "provided"),
    ("tls", "key_file", "prospect.invalid.key", lambda s: s.get("mode") == "provided"),
)


def prospect_data(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a profile as plain data) with the deployment-only gaps filled."""
    out = dict(data)
    for section, key, stand_in, needed in _STAND_INS:
        current = out.get(section)
        if isinstance(current, dict) and needed(current) and current.get(key) in (None, ""):
            out[section] = {**current, key: stand_in}
    ai = out.get("ai")
    if isinstance(ai, dict) and ai.get("provider", "disabled") == "disabled":
        out["ai"] = {k: v for k, v in ai.items() if k != "models"}
    return out


#: answers a prospect has not given that only a deployment needs, with stand-ins:
#: a host's address (a documentation address, RFC 5737, as in the presets) and the
#: domain; the list names neither
_UNASKED: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda key: key.startswith("hosts.") and key.endswith(".address"), "192.0.2.10"),
    (lambda key: key == "tls.domain", "chat.example.invalid"),
    (lambda key: key == "email.from_address", "prospect@example.invalid"),
    (lambda key: key == "email.smtp_host", "smtp.example.invalid"),
    (lambda key: key == "monitoring.self_hosted_endpoint", "monitoring.example.invalid"),
)


def prospect_profile(answers_file: Path, preset: str | None) -> Profile:
    """The Profile of a prospect's answers file (over ``preset``, if given), validated
    for what shapes the list; problems as ``FILE:LINE: field: message``."""
    answers, sources = collect(InitRequest(output=answers_file, preset=preset,
                                           answers_file=answers_file))
    problems = []
    for question in complete(answers, None, ask_defaults=False):
        stand_in = next((v for match, v in _UNASKED if match(question.key)), None)
        if stand_in is None:
            problems.append(f"{answers_file}:1: {question.key}: no answer, and it shapes "
                            "the list (add it to the answers file, or give --preset)")
        else:
            questions.put(answers, question.key, stand_in)
    if problems:
        raise ValidationFailed(problems)
    try:
        return Profile.model_validate(prospect_data(answers))
    except ValidationError as exc:
        raise ValidationFailed([_where(p, m, sources) for p, m in field_errors(exc)]) \
            from None


class _Source(Protocol):
    def locate(self, path: str) -> str | None: ...


def _where(path: str, message: str, sources: Sequence[_Source]) -> str:
    for source in reversed(sources):
        located = source.locate(path)
        if located:
            return f"{located}: {message}"
    return f"{path}: {message}"
