"""The Markdown form of a subprocessor list."""

from __future__ import annotations

from selfhost import templating
from selfhost.subprocessors.document import SubprocessorList, view

TEMPLATE = "subprocessors.md.j2"


def render_markdown(doc: SubprocessorList) -> str:
    return templating.render(TEMPLATE, **view(doc))
