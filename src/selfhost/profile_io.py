"""Reading and writing profile YAML, with a line number for every problem.

Every profile on disk goes through :func:`load_profile`: YAML that is not a
mapping, duplicate keys, alias bombs (rejected before anything is expanded),
unknown keys, wrong types and every rule of the Profile model come back as one
``FILE:LINE: field.path: message (fix)`` line each. The checks that need the
file system (certificate files, the names stored in the secrets file) run
here too, so a profile that loads is a profile that can be deployed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode
from ruamel.yaml.scalarbool import ScalarBoolean

from selfhost import inputs
from selfhost.errors import ValidationFailed
from selfhost.models import Profile, field_errors
from selfhost.profile_checks import file_problems

#: more nodes than any real profile has; an alias bomb expands far beyond it
MAX_NODES = 5000
MAX_BYTES = 1_000_000


class LineMap:
    """Line numbers (1-based) of the keys and list items of one YAML document."""

    def __init__(self, lines: dict[str, int] | None = None) -> None:
        self._lines: dict[str, int] = dict(lines or {})

    def set(self, path: str, line: int) -> None:
        self._lines[path] = line

    def line_of(self, path: str) -> int:
        """The line of ``path``, or of its nearest ancestor that is in the file."""
        parts = path.split(".") if path else []
        while parts:
            key = ".".join(parts)
            if key in self._lines:
                return self._lines[key]
            parts.pop()
        return 1

    def __contains__(self, path: object) -> bool:
        return path in self._lines


@dataclass(frozen=True)
class Finding:
    """One problem of a profile; warnings are shown but do not fail validation."""

    file: str
    line: int
    path: str
    message: str
    warning: bool = False

    def render(self) -> str:
        prefix = "warning: " if self.warning else ""
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}: {prefix}{where}{self.message}"


@dataclass
class ProfileCheck:
    """The outcome of checking one profile file."""

    path: Path
    profile: Profile | None
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.profile is not None and not self.errors


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


class _RecursiveAlias(Exception):
    """An alias inside the node it refers to: the document is infinite."""


def _expanded_size(root: Node) -> int:
    """How many nodes the document has once every alias is expanded.

    Computed on the composed graph, where an alias is a shared node, so the
    cost is linear in the text even for a billion-laughs document.
    """
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in visiting:
            raise _RecursiveAlias
        visiting.add(key)
        total = 1
        if isinstance(node, MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
        elif isinstance(node, SequenceNode):
            for item in node.value:
                total += size(item)
        visiting.discard(key)
        sizes[key] = total
        return total

    return size(root)


def _duplicate_keys(node: Node, prefix: str, seen: set[int]) -> list[tuple[int, str]]:
    """``(line, path)`` of every repeated key, found on the composed (unexpanded) graph."""
    if id(node) in seen:
        return []
    seen.add(id(node))
    out: list[tuple[int, str]] = []
    if isinstance(node, MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{prefix}.{key}" if prefix else key
            if key in keys:
                out.append((key_node.start_mark.line + 1, path))
            keys.add(key)
            out += _duplicate_keys(value_node, path, seen)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            out += _duplicate_keys(item, f"{prefix}.{index}" if prefix else str(index), seen)
    return out


def _plain(value: Any, prefix: str, lines: LineMap) -> Any:
    """Round-trip YAML objects -> plain dict/list/scalars, recording key lines."""
    if isinstance(value, CommentedMap):
        out: dict[str, Any] = {}
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            lines.set(path, value.lc.key(key)[0] + 1)
            out[str(key)] = _plain(item, path, lines)
        return out
    if isinstance(value, CommentedSeq):
        items = []
        for index, item in enumerate(value):
            path = f"{prefix}.{index}" if prefix else str(index)
            lines.set(path, value.lc.item(index)[0] + 1)
            items.append(_plain(item, path, lines))
        return items
    if isinstance(value, ScalarBoolean):
        return bool(value)
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def load_yaml(text: str, source: str) -> Any:
    """Parse one YAML document safely (size, alias and duplicate-key limits checked
    before anything is expanded); raises :class:`ValidationFailed`."""
    if len(text.encode()) > MAX_BYTES:
        raise ValidationFailed([f"{source}:1: the file is larger than {MAX_BYTES} bytes "
                                "(an input file is a few kilobytes; check the path)"])
    yaml = _yaml()
    try:
        node = yaml.compose(text)
        if node is not None and _expanded_size(node) > MAX_NODES:
            raise ValidationFailed([f"{source}:1: the document expands to more than "
                                    f"{MAX_NODES} nodes through aliases (remove the "
                                    "anchors and aliases)"])
        duplicates = _duplicate_keys(node, "", set()) if node is not None else []
        if duplicates:
            raise ValidationFailed([
                f"{source}:{line}: {path}: duplicate key (keep only one of them)"
                for line, path in duplicates
            ])
        return yaml.load(text)
    except _RecursiveAlias:
        raise ValidationFailed([f"{source}:1: an alias refers to a node that contains it "
                                "(remove the anchors and aliases)"]) from None
    except MarkedYAMLError as exc:
        raise ValidationFailed([_yaml_error_line(exc, source)]) from None
    except YAMLError as exc:
        raise ValidationFailed([f"{source}:1: not valid YAML: {exc}"]) from None


def parse_yaml_mapping(text: str, source: str) -> tuple[dict[str, Any], LineMap]:
    """Parse one YAML mapping safely; raises :class:`ValidationFailed`."""
    data = load_yaml(text, source)
    if not isinstance(data, CommentedMap):
        kind = ("empty" if data is None else "a list" if isinstance(data, CommentedSeq)
                else f"a single value ({type(data).__name__})")
        raise ValidationFailed([f"{source}:1: the document is {kind}, not a mapping "
                                "(write keys such as customer:, topology:, hosts:)"])
    lines = LineMap()
    plain = _plain(data, "", lines)
    return plain, lines


def _yaml_error_line(exc: MarkedYAMLError, source: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    problem = exc.problem or "not valid YAML"
    context = f"{exc.context}, " if exc.context else ""
    return f"{source}:{line}: not valid YAML: {context}{problem}"


def load_profile_data(path: Path) -> tuple[dict[str, Any], LineMap]:
    """The profile file as plain data, with the line of every key."""
    try:
        text = inputs.read_text(path, MAX_BYTES)
    except FileNotFoundError:
        raise ValidationFailed([f"{path}:1: the file does not exist (check the path, or "
                                "create it with selfhost init)"]) from None
    except inputs.UnfitFile as exc:
        raise ValidationFailed([f"{path}:1: cannot read the file: {exc.reason} (give the "
                                "path of a profile file)"]) from None
    except UnicodeDecodeError:
        raise ValidationFailed([f"{path}:1: the file is not UTF-8 text (save it as "
                                "UTF-8)"]) from None
    except OSError as exc:
        raise ValidationFailed([f"{path}:1: cannot read the file ({exc.strerror or exc})"]) \
            from None
    return parse_yaml_mapping(text, str(path))


def model_findings(data: dict[str, Any], lines: LineMap, source: str) -> tuple[
        Profile | None, list[Finding]]:
    """Validate ``data`` with the Profile model; one finding per problem."""
    try:
        return Profile.model_validate(data), []
    except ValidationError as exc:
        return None, [Finding(source, lines.line_of(p), p, m) for p, m in field_errors(exc)]


def check_profile(path: Path) -> ProfileCheck:
    """Every check a profile file gets, errors and warnings apart.

    Raises :class:`ValidationFailed` only when the file is not a YAML mapping;
    everything else is reported in the returned :class:`ProfileCheck`.
    """
    data, lines = load_profile_data(path)
    profile, errors = model_findings(data, lines, str(path))
    check = ProfileCheck(path=path, profile=profile, errors=errors)
    if profile is not None:
        for problem in file_problems(profile, path):
            finding = Finding(str(path), lines.line_of(problem.field), problem.field,
                              problem.message, problem.warning)
            (check.warnings if finding.warning else check.errors).append(finding)
    return check


def load_profile(path: Path) -> Profile:
    """The validated Profile in ``path``; raises :class:`ValidationFailed`."""
    check = check_profile(path)
    if check.profile is None or check.errors:
        raise ValidationFailed([f.render() for f in check.errors])
    return check.profile


# -- writing ------------------------------------------------------------------------

def dump_profile(profile: Profile) -> str:
    """Stable YAML for a profile: model key order, block style, every default
    written out (a later default change must not silently change a deployment),
    unset optional fields left out."""
    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    buffer = io.StringIO()
    yaml.dump(profile.model_dump(mode="json", exclude_none=True), buffer)
    return buffer.getvalue()
