"""Validation problems as ``(dotted.path, message with its fix)`` pairs.

pydantic's own messages say what is wrong; a user also needs to know what to
write instead. This module adds that, and a did-you-mean for unknown keys,
for any model (the Profile, the vendor catalog, prospects rows).
"""

from __future__ import annotations

import difflib
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails


class CrossFieldErrors(ValueError):
    """Several rule violations at once, each tied to the field a user must change."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in problems))


#: what a pattern-checked Profile field expects, by dotted path
_PATTERN_HINTS = {
    "hosts.ssh_user": "a Unix user name: lower-case letters, digits, _ and -, e.g. deploy",
    "database.name": "a PostgreSQL name: lower-case letters, digits and _, e.g. backendchat",
    "database.user": "a PostgreSQL role: lower-case letters, digits and _, e.g. backendchat",
    "tls.acme.directory_url": "an https:// URL, e.g. https://acme.example.com/directory",
    "email.ses_region": "an AWS region, e.g. eu-west-1",
    "backups.directory": "an absolute path, e.g. /var/backups/backend-chat",
}

_TYPE_HINTS = {
    "int_parsing": "write a whole number",
    "int_type": "write a whole number",
    "int_from_float": "write a whole number",
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "string_type": "write text; quote it if it looks like a number or a date",
    "list_type": "write a list, e.g. [a, b] or one '- item' per line",
    "model_type": "write a mapping of keys below it",
    "model_attributes_type": "write a mapping of keys below it",
    "dict_type": "write a mapping of keys below it",
    "literal_error": "use one of those values",
    "enum": "use one of those values",
    "string_too_short": "give a value",
    "string_too_long": "shorten it",
    "greater_than_equal": "change the value",
    "less_than_equal": "change the value",
    "greater_than": "change the value",
    "less_than": "change the value",
}


def _unwrap(annotation: Any) -> Any:
    """The type inside Optional[...] and Annotated[...]."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) == 1:
                annotation = args[0]
                continue
        return annotation


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def field_at(model: type[BaseModel], path: str) -> tuple[Any, FieldInfo | None]:
    """The unwrapped type at dotted ``path`` and its FieldInfo (None for list items
    and the root); ``(None, None)`` when the path is not in the model."""
    kind: Any = model
    info: FieldInfo | None = None
    for part in [p for p in path.split(".") if p]:
        if part.isdigit():
            if get_origin(kind) is not list:
                return None, None
            kind, info = _unwrap(get_args(kind)[0]), None
            continue
        if not _is_model(kind):
            return None, None
        info = kind.model_fields.get(part)
        if info is None:
            return None, None
        kind = _unwrap(info.annotation)
    return kind, info


def known_keys(model: type[BaseModel], path: str) -> list[str]:
    """The keys a mapping at dotted ``path`` may hold ([] if it is not a mapping)."""
    kind, _ = field_at(model, path)
    return list(kind.model_fields) if _is_model(kind) else []


def is_known_key(model: type[BaseModel], path: str) -> bool:
    kind, _ = field_at(model, path)
    return kind is not None


def validate_field(model: type[BaseModel], path: str, value: Any) -> str | None:
    """The problem with ``value`` for the one field at ``path``, or None.

    Lets a wizard re-ask a question at once; rules that compare fields still
    run when the whole model is validated.
    """
    _, info = field_at(model, path)
    if info is None:
        return None
    kind: Any = (Annotated[(info.annotation, *info.metadata)] if info.metadata
                 else info.annotation)
    try:
        TypeAdapter(kind).validate_python(value)
    except ValidationError as exc:
        return "; ".join(error_message(model, path, err) for err in exc.errors())
    return None


def _unknown_key_message(model: type[BaseModel] | None, path: str) -> str:
    if model is None:
        return "unknown key (remove it, or check its spelling)"
    parent, _, key = path.rpartition(".")
    keys = known_keys(model, parent)
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    if keys:
        return f"unknown key (remove it; valid keys here: {', '.join(keys)})"
    return "unknown key (remove it)"


def error_message(model: type[BaseModel] | None, path: str, err: ErrorDetails) -> str:
    """pydantic's message for one error, with how to fix it."""
    kind = err["type"]
    message = err["msg"].removeprefix("Value error, ")
    last = path.rpartition(".")[2]
    if kind == "extra_forbidden":
        return _unknown_key_message(model, path)
    if kind == "missing":
        return f"required field is missing (add {last}: to the file)"
    if last.endswith("port") and kind in ("greater_than_equal", "less_than_equal"):
        return "not a port number (use a number from 1 to 65535)"
    if kind == "string_pattern_mismatch" and path in _PATTERN_HINTS:
        return f"invalid value (expected {_PATTERN_HINTS[path]})"
    hint = _TYPE_HINTS.get(kind)
    if hint and "(" not in message:
        return f"{message} ({hint})"
    return message


def field_errors(exc: ValidationError,
                 model: type[BaseModel] | None = None) -> list[tuple[str, str]]:
    """``(dotted.path, message)`` for each problem, cross-field rules unpacked."""
    out: list[tuple[str, str]] = []
    for err in exc.errors():
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, CrossFieldErrors):
            out.extend(error.problems)
            continue
        path = ".".join(str(part) for part in err["loc"])
        out.append((path, error_message(model, path, err)))
    return out
