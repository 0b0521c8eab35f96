"""One host's collection: the spec from its components' fragments, the script that runs it.

The remote script is :mod:`selfhost.verify.remote_base` followed by the
collection functions every component declares (:class:`Section`), assembled
once per process. It travels with the spec, both base64-encoded, as arguments
of one ``python3`` command: one round trip per host, whatever it runs.
"""

from __future__ import annotations

import base64
import functools
import inspect
import json
from collections.abc import Iterable
from importlib.resources import files

from selfhost.verify.contract import Fragment, Section

#: systemd properties every unit's checks read
UNIT_PROPS = ("ActiveState", "SubState", "User")


def merge(fragments: Iterable[Fragment]) -> dict[str, object]:
    """The spec of one host: every component's sections, and the shared ones merged."""
    spec: dict[str, object] = {"listeners": None}
    units: dict[str, list[str]] = {}
    paths: set[str] = set()
    procs: list[str] = []
    for fragment in fragments:
        for name, args in fragment.sections.items():
            if name in spec:
                raise ValueError(f"remote section {name} is asked for twice")
            spec[name] = args
        for unit, props in fragment.units.items():
            units[unit] = [*dict.fromkeys([*UNIT_PROPS, *units.get(unit, []), *props])]
        paths.update(fragment.files)
        procs += [p for p in fragment.processes if p not in procs]
    spec["units"] = units
    spec["files"] = sorted(paths)
    spec["processes"] = procs
    return spec


@functools.cache
def script(sections: tuple[Section, ...]) -> str:
    """The collector's source: the shared head, each section's code, the entry point."""
    head = files("selfhost.verify").joinpath("remote_base.py").read_text(encoding="utf-8")
    shipped: dict[str, str] = {}
    for section in sections:
        for fn in (*section.helpers, section.collect):
            shipped.setdefault(fn.__name__, inspect.getsource(fn))
    table = ", ".join(f"{s.name!r}: {s.collect.__name__}" for s in sections)
    return "\n\n".join([head, *shipped.values(), f"main({{{table}}})\n"])


#: the name the collector runs under on a host (its code object's file name): what a
#: process listing shows of a verify collecting there
COLLECTOR_NAME = "selfhost_facts"


def remote_command(sections: tuple[Section, ...], spec: dict[str, object]) -> str:
    """The shell command that collects ``spec`` on a host.

    Script and spec travel base64-encoded as arguments, so no quoting can break
    them; neither holds a secret.
    """
    source = base64.b64encode(script(sections).encode()).decode()
    payload = base64.b64encode(json.dumps(spec).encode()).decode()
    loader = ("import base64,sys;exec(compile(base64.b64decode(sys.argv[1]),"
              f"'{COLLECTOR_NAME}','exec'),{{'__name__':'{COLLECTOR_NAME}'}})")
    return f"python3 -c \"{loader}\" {source} {payload}"
