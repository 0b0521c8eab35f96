"""The HTML form: one standalone file (no external resources) that reads and
prints well, with the data-flow picture inline."""

from __future__ import annotations

from markupsafe import Markup

from selfhost import templating
from selfhost.i18n import DEFAULT, Lang
from selfhost.subprocessors.document import SubprocessorList
from selfhost.subprocessors.svg import data_flow_svg
from selfhost.subprocessors.views import view

TEMPLATE = "subprocessors.html.j2"


def render_html(doc: SubprocessorList, lang: Lang = DEFAULT) -> str:
    # The SVG is built with every text escaped, so it is inserted as markup.
    svg = Markup(data_flow_svg(doc, lang))  # noqa: S704
    return templating.render(TEMPLATE, lang, svg=svg, **view(doc, lang))
