"""The import graph keeps the layers: cli -> workflows -> services -> models.

Read from the source with ``ast`` (imports inside functions and under
``TYPE_CHECKING`` count too: they are dependencies all the same), so a failure
names the file, line and import that breaks a rule.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import selfhost

SRC = Path(selfhost.__file__).resolve().parent
#: code that runs under Ansible or on the hosts, never imported by the package
_NOT_PACKAGE = ("ansible",)
#: the service units: each is a package or module directly under ``selfhost``
SERVICES = frozenset({"plan", "deploy", "verify", "subprocessors", "secrets", "pki",
                      "targets", "sandbox", "init"})
#: the Plan is derived without I/O: no file, process, socket or environment
PURE = frozenset({"plan", "plan_schema"})
_IO = frozenset({"os", "io", "pathlib", "shutil", "subprocess", "socket", "tempfile",
                 "inputs", "profile_io", "atomic", "paths", "catalog"})


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source} imports {self.target}"


def _module_name(package_dir: Path, path: Path) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(package_dir: Path) -> list[Import]:
    """Every import statement of the package's modules, with the module it loads."""
    files = {_module_name(package_dir, p): p for p in sorted(package_dir.rglob("*.py"))
             if p.relative_to(package_dir).parts[0] not in _NOT_PACKAGE}
    found: list[Import] = []
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found += [Import(path, node.lineno, name, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    # `from selfhost import sandbox` loads the module selfhost.sandbox
                    sub = f"{node.module}.{alias.name}"
                    found.append(Import(path, node.lineno, name,
                                        sub if sub in files else node.module))
    return list(dict.fromkeys(found))  # `from m import a, b` is one import of m


def unit(module: str) -> str:
    """``selfhost.deploy.service`` -> ``deploy``; ``click.core`` -> ``click``."""
    parts = module.split(".")
    if parts[0] != "selfhost":
        return parts[0]
    return parts[1] if len(parts) > 1 else ""


def _cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return out


def problems(found: list[Import]) -> list[str]:
    """One line per import that breaks a layering rule, naming it."""
    out: list[str] = []
    edges: dict[str, set[str]] = {}
    for imp in found:
        src, dst = unit(imp.source), unit(imp.target)
        if dst == "click" and src != "cli":
            out.append(f"{imp}: only selfhost.cli may import click")
        if dst == "cli" and src != "cli":
            out.append(f"{imp}: nothing imports selfhost.cli")
        if dst == "workflows" and src not in ("cli", "workflows"):
            out.append(f"{imp}: only selfhost.cli may import a workflow")
        if {src, dst} == {"deploy", "verify"}:
            out.append(f"{imp}: deploy and verify do not import each other")
        if src == "models" and (dst in SERVICES or dst in ("cli", "workflows")):
            out.append(f"{imp}: the models import no layer above them")
        if src in PURE and dst in _IO:
            out.append(f"{imp}: the Plan is derived without I/O")
        if imp.target.startswith("selfhost.") and src and dst != src:
            edges.setdefault(src, set()).add(dst)
    for component in _cycles(edges):
        members = ", ".join(sorted(component))
        out += [f"{imp}: part of the import cycle {members}" for imp in found
                if unit(imp.source) in component and unit(imp.target) in component
                and unit(imp.source) != unit(imp.target)]
    return out


def test_the_package_keeps_its_layers() -> None:
    found = imports(SRC)
    assert len({i.source for i in found}) > 50  # the walk saw the package
    assert problems(found) == []


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "selfhost" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "selfhost"


def test_each_broken_rule_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    package = _tree(tmp_path, {
        "__init__.py": "",
        "models.py": "from selfhost.plan import Plan\n",
        "plan.py": "import os\n\nfrom selfhost import models\n",
        "plan_schema.py": "import json\nfrom pathlib import Path\n",
        "cli/__init__.py": "import click\n",
        "workflows/__init__.py": "from selfhost import cli\n"
                                 "from selfhost.deploy import service\n",
        "deploy/__init__.py": "",
        "deploy/service.py": "def run() -> None:\n    from selfhost.verify import checks\n",
        "verify/__init__.py": "",
        "verify/checks.py": "import click.core\nfrom selfhost.workflows import demo\n",
    })
    found = sorted(p.replace(str(package), "") for p in problems(imports(package)))
    assert found == sorted([
        "/deploy/service.py:2: selfhost.deploy.service imports selfhost.verify.checks: "
        "deploy and verify do not import each other",
        "/deploy/service.py:2: selfhost.deploy.service imports selfhost.verify.checks: "
        "part of the import cycle deploy, verify, workflows",
        "/models.py:1: selfhost.models imports selfhost.plan: the models import no layer "
        "above them",
        "/models.py:1: selfhost.models imports selfhost.plan: part of the import cycle "
        "models, plan",
        "/plan.py:1: selfhost.plan imports os: the Plan is derived without I/O",
        "/plan.py:3: selfhost.plan imports selfhost.models: part of the import cycle "
        "models, plan",
        "/plan_schema.py:2: selfhost.plan_schema imports pathlib: the Plan is derived "
        "without I/O",
        "/verify/checks.py:1: selfhost.verify.checks imports click.core: only selfhost.cli "
        "may import click",
        "/verify/checks.py:2: selfhost.verify.checks imports selfhost.workflows: only "
        "selfhost.cli may import a workflow",
        "/verify/checks.py:2: selfhost.verify.checks imports selfhost.workflows: part of "
        "the import cycle deploy, verify, workflows",
        "/workflows/__init__.py:1: selfhost.workflows imports selfhost.cli: nothing "
        "imports selfhost.cli",
        "/workflows/__init__.py:2: selfhost.workflows imports selfhost.deploy.service: "
        "part of the import cycle deploy, verify, workflows",
    ])
