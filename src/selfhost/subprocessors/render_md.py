"""The Markdown form of a subprocessor list."""

from __future__ import annotations

from selfhost import templating
from selfhost.i18n import DEFAULT, Lang
from selfhost.subprocessors.document import SubprocessorList
from selfhost.subprocessors.views import view

TEMPLATE = "subprocessors.md.j2"


def render_markdown(doc: SubprocessorList, lang: Lang = DEFAULT) -> str:
    return templating.render(TEMPLATE, lang, **view(doc, lang))
