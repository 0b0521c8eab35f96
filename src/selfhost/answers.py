"""Answers as ``selfhost init`` (and a prospects file) takes them from flags and files.

``--set key.path=value`` is parsed here, answers from several places are merged
(later ones win, host entries item by item) and each remembers where it came
from, so a problem points at the file and line, or the flag, to fix. No
third-party key is ever accepted this way: it would show in the process list,
the shell history or the file.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from selfhost import questions, secrets
from selfhost.errors import InvalidInput
from selfhost.models import is_known_key
from selfhost.profile_io import LineMap
from selfhost.questions import Answers

_SECRET_WORDS = re.compile(r"(password|passwd|passphrase|secret|token|api_?key|private_?key|"
                           r"credential|dsn)",
                           re.IGNORECASE)
_SUPPLIED = ("openai_api_key", "anthropic_api_key", "email_password", "sentry_dsn",
             "datadog_api_key", "database_password", "cache_password")


@dataclass
class Source:
    """Where a value came from, to point a problem at the place to fix it."""

    label: str
    data: Answers
    lines: LineMap | None = None

    def locate(self, path: str) -> str | None:
        if questions.get(self.data, path) is None:
            return None
        if self.lines is None:
            return f"{self.label} {path}"
        return f"{self.label}:{self.lines.line_of(path)}: {path}"


def parse_set(item: str) -> tuple[str, Any]:
    """``key.path=value`` -> (path, value); the value is read as a YAML scalar or
    flow collection, so ``ai.models=[gpt-4o]`` gives a list."""
    path, sep, text = item.partition("=")
    path = path.strip()
    if not sep or not path:
        # The item is not echoed: a mistyped one may hold a credential.
        raise InvalidInput("--set expects key.path=value (e.g. --set customer.name=ACME)")
    refuse_secret_key(path, "--set")
    if text.strip() == "":
        return path, ""
    try:
        value = YAML(typ="safe", pure=True).load(text)
    except YAMLError:
        value = text
    return path, value


def refuse_secret_key(path: str, where: str) -> None:
    """Third-party keys never travel in a flag or a profile: they would show in
    the process list, shell history or the file. Point at the variable instead."""
    if is_known_key(path):
        return
    last = path.rpartition(".")[2].lower()
    if not _SECRET_WORDS.search(path):
        return
    name = next((n for n in _SUPPLIED if last == n or path.lower().replace(".", "_") == n),
                None)
    hint = (f"set the environment variable {secrets.env_name(name)}" if name else
            "third-party keys come from environment variables such as "
            "SELFHOST_OPENAI_API_KEY or SELFHOST_EMAIL_PASSWORD, or from the hidden prompt")
    raise InvalidInput(f"{where} {path}: secrets are not accepted here ({hint}; "
                       "generated secrets are created by selfhost init)")


def leaf_paths(data: Any, prefix: str = "") -> list[str]:
    """Every dotted path to a value in ``data`` (``hosts.app.0.address``)."""
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in leaf_paths(v, f"{prefix}{k}.")]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in leaf_paths(v, f"{prefix}{i}.")]
    return [prefix[:-1]]


def merge(base: Any, over: Any) -> Any:
    """``over`` laid over ``base``, both left as they were."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return out
    if (isinstance(base, list) and isinstance(over, list) and over
            and all(isinstance(item, dict) for item in over)):
        # Host entries merge item by item, so --set hosts.app.0.address keeps the name;
        # any other list (ai.models, or an empty one) replaces the earlier value.
        merged = [merge(b, o) for b, o in zip(base, over, strict=False)]
        return merged + copy.deepcopy(base[len(over):] or over[len(base):])
    return copy.deepcopy(over)
