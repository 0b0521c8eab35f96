"""The one place a jinja Environment is built.

Templates live in ``data/templates``. Undefined variables are errors
(StrictUndefined), so a template cannot silently print an empty value; HTML
templates (``*.html.j2``) are autoescaped. Each Environment is built once per
process and caches its compiled templates.

Each document language has its Environment, with jinja's i18n extension
carrying that language's gettext catalog (:mod:`selfhost.i18n`): templates
write ``{{ _("English text") }}`` and the ``fact`` filter shows an unknown fact
as "to be confirmed" in the same language.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape

from selfhost.catalog import show
from selfhost.i18n import DEFAULT, Lang, gettext_for, translations


def _md(value: object) -> str:
    """Text safe inside a Markdown table cell or list item."""
    text = " ".join(str(value).split())
    for char in ("\\", "|", "*", "_", "`", "[", "]", "<", ">"):
        text = text.replace(char, "\\" + char)
    return text


@cache
def environment(lang: Lang = DEFAULT) -> Environment:
    env = Environment(
        extensions=["jinja2.ext.i18n"],
        loader=PackageLoader("selfhost", "data/templates"),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html.j2", "svg.j2"),
                                     default_for_string=False, default=False),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    #: a catalog fact as documents show it ("to be confirmed" for unknown)
    _ = gettext_for(lang)
    env.filters["fact"] = lambda value: show(value, _)
    env.filters["md"] = _md
    # newstyle: _("... %(name)s", name=value) escapes value in HTML templates
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    return env


def template(name: str, lang: Lang = DEFAULT) -> Template:
    return environment(lang).get_template(name)


def render(name: str, lang: Lang = DEFAULT, **context: Any) -> str:
    """``name`` rendered in ``lang`` (also given to the template as ``lang``)."""
    return template(name, lang).render(lang=lang, **context)
