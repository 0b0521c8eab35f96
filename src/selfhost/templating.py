"""The one place a jinja Environment is built.

Templates live in ``data/templates``. Undefined variables are errors
(StrictUndefined), so a template cannot silently print an empty value; HTML
templates (``*.html.j2``) are autoescaped. Each Environment is built once per
process and caches its compiled templates.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape

from selfhost.catalog import show


def _md(value: object) -> str:
    """Text safe inside a Markdown table cell or list item."""
    text = " ".join(str(value).split())
    for char in ("\\", "|", "*", "_", "`", "[", "]", "<", ">"):
        text = text.replace(char, "\\" + char)
    return text


@cache
def environment() -> Environment:
    env = Environment(
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
    env.filters["fact"] = show
    env.filters["md"] = _md
    return env


def template(name: str) -> Template:
    return environment().get_template(name)


def render(name: str, **context: Any) -> str:
    return template(name).render(**context)
