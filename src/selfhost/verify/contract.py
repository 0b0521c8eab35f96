"""What a component's contract is made of: checks, their outcome, the facts they read. Pure.

Each component module under :mod:`selfhost.verify.components` declares its
checks as :class:`CheckDef` values (id, what it expects in general words, the
evaluation) and, per host of the Plan, a :class:`Part`: the checks that host
gets, with the Plan's values, and the fragment of the collection spec that
gathers the facts those checks read. The evaluation receives the check's own
typed parameters and the host's :class:`Facts`; nothing is dispatched by a
string.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

if TYPE_CHECKING:
    # Types only: the drift watch imports the checks on hosts, which have no pydantic.
    from selfhost.plan import Endpoint, Plan, PlanHost

CheckComponent = Literal["postgresql", "backup", "redis", "nginx", "app", "egress", "host"]
#: the order the summary lists components in
COMPONENTS: tuple[CheckComponent, ...] = ("host", "postgresql", "backup", "redis", "egress",
                                          "app", "nginx")
FIX_REDEPLOY = "run `selfhost deploy PROFILE` again; it restores the Plan's setting"

P = TypeVar("P")


@dataclass(frozen=True)
class Outcome:
    passed: bool
    found: str
    #: passed, but something needs the operator's attention soon (a certificate to renew)
    warning: bool = False


def ok(found: str) -> Outcome:
    return Outcome(True, found)


def warn(found: str) -> Outcome:
    return Outcome(True, found, warning=True)


def bad(found: str) -> Outcome:
    return Outcome(False, found)


class SectionError(Exception):
    """A section of the facts a check reads is missing or failed on the host."""


class Facts:
    """One host's collected facts: the JSON object the remote collector printed.

    Each component reads its own sections through a typed accessor; a section
    the host could not collect raises :class:`SectionError`, which makes the
    checks reading it fail with the reason instead of a guess.
    """

    def __init__(self, raw: Mapping[str, object]) -> None:
        self.raw: dict[str, object] = dict(raw)

    @property
    def unreachable(self) -> str | None:
        """Why nothing could be collected from the host, if so."""
        value = self.raw.get("unreachable")
        return str(value) if value is not None else None

    def error(self, name: str) -> str | None:
        """The error the section ``name`` failed with on the host, if it did."""
        value = self.raw.get(name)
        if isinstance(value, dict) and "section_error" in value:
            return str(value["section_error"])
        return None

    def section(self, name: str) -> Any:
        if name not in self.raw:
            raise SectionError(f"{name} was not collected from the host")
        if (error := self.error(name)) is not None:
            raise SectionError(f"could not be determined (collecting {name} failed: {error})")
        return self.raw[name]


Evaluation = Callable[[P, Facts], Outcome]


@dataclass(frozen=True)
class CheckDef(Generic[P]):
    """One kind of check: its id, what it expects in general words, its evaluation."""

    id: str
    component: CheckComponent
    #: what the check expects, independent of any Plan (the README's list of checks)
    summary: str
    evaluate: Evaluation[P]
    #: ids of this kind carry a suffix (``egress.ai_refused.openai``)
    suffixed: bool = False

    def make(self, host: PlanHost | str, params: P, *, description: str, expected: str,
             fix: str = FIX_REDEPLOY, suffix: str = "") -> Check[P]:
        if bool(suffix) != self.suffixed:
            need = "required" if self.suffixed else "not allowed"
            raise ValueError(f"{self.id}: a suffix is {need}")
        name = host if isinstance(host, str) else host.name
        return Check(self, name, description, expected, fix, params, suffix)


@dataclass(frozen=True)
class Check(Generic[P]):
    """One thing one host must show, with the Plan's values it is judged against."""

    definition: CheckDef[P]
    host: str
    description: str
    expected: str
    fix: str
    params: P
    suffix: str = ""

    @property
    def id(self) -> str:
        return f"{self.definition.id}.{self.suffix}" if self.suffix else self.definition.id

    @property
    def component(self) -> CheckComponent:
        return self.definition.component

    @property
    def key(self) -> str:
        """Unique within a run; the test id in reports."""
        return f"{self.host}::{self.id}"

    def evaluate(self, facts: Facts) -> Outcome:
        """The outcome of this check on facts collected from its host."""
        try:
            return self.definition.evaluate(self.params, facts)
        except SectionError as exc:
            return bad(str(exc))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            return bad(f"could not be determined ({type(exc).__name__}: {exc})")


AnyCheck = Check[Any]


@dataclass
class Fragment:
    """The part of one host's collection spec a component needs.

    ``sections`` are the component's own remote sections with their arguments;
    units, files and processes are asked for in shared sections, merged over
    the components of a host.
    """

    sections: dict[str, object] = field(default_factory=dict)
    units: dict[str, list[str]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    processes: list[str] = field(default_factory=list)


@dataclass
class Part:
    """What a component contributes on one host: its checks and their facts."""

    checks: list[AnyCheck] = field(default_factory=list)
    fragment: Fragment = field(default_factory=Fragment)


@dataclass(frozen=True)
class Section:
    """A remote section: the function run on the host, and the helpers it calls
    that :mod:`remote_base` does not define (shipped with it)."""

    name: str
    collect: Callable[[Any], object]
    helpers: tuple[Callable[..., object], ...] = ()


@dataclass(frozen=True)
class Component:
    """A component's contract: its kinds of check, its remote sections, and per host
    the checks with their facts; ``secret_files`` names the files only their owner
    may read (``host.secret_files`` checks them)."""

    name: str
    defs: tuple[CheckDef[Any], ...]
    part: Callable[[Context], Part]
    sections: tuple[Section, ...] = ()
    secret_files: Callable[[Context], list[str]] | None = None


@dataclass(frozen=True)
class Context:
    """What a component's contract on one host is built from."""

    plan: Plan
    host: PlanHost
    #: an address the app host can reach but its app user must not (another host)
    direct_target: Endpoint | None
    #: the secret files of every component on this host (``host.secret_files``)
    secret_files: tuple[str, ...] = ()

    def has(self, component: str) -> bool:
        return component in self.host.components


def unit_props(facts: Facts) -> dict[str, dict[str, str]]:
    """``systemctl show`` properties per unit (the shared ``units`` section)."""
    units: dict[str, dict[str, str]] = facts.section("units")
    return units


def unit_active(facts: Facts, unit: str) -> tuple[bool, str]:
    props = unit_props(facts).get(unit, {})
    state = f"{props.get('ActiveState', 'unknown')}/{props.get('SubState', 'unknown')}"
    return props.get("ActiveState") == "active", f"{unit} {state}"


def listening(facts: Facts, port: int | None = None) -> list[tuple[str, int]]:
    """Listening TCP sockets (the shared ``listeners`` section)."""
    return [(a, p) for a, p in facts.section("listeners") if port is None or p == port]
