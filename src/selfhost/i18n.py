"""The languages documents are written in, and their message catalogs.

Fixed texts (headings, labels, sentences) are English in the code and the
templates and are translated through gettext catalogs shipped as package data
(``data/locale/LANG/LC_MESSAGES/selfhost.po``, compiled to ``.mo`` beside it).
Vendor facts are never translated: they are shown as the catalog gives them.
English needs no catalog: its texts are the msgids themselves.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from functools import cache
from importlib.resources import files
from typing import Literal

from selfhost.errors import InvalidInput

Lang = Literal["en", "de", "fr"]
LANGUAGES: tuple[Lang, ...] = ("en", "de", "fr")
DEFAULT: Lang = "en"
DOMAIN = "selfhost"

#: a function from an English text to its translation
Gettext = Callable[[str], str]


def N_(text: str) -> str:
    """Marks ``text`` as a msgid translated later (where the language is known)."""
    return text


def check(lang: str, where: str = "--lang") -> Lang:
    """``lang`` as a language documents can be written in, else exit 2 with the fix."""
    if lang not in LANGUAGES:
        raise InvalidInput(f"{where}: unknown language {lang!r} (choose one of: "
                           f"{', '.join(LANGUAGES)})")
    return lang


def locale_dir() -> str:
    return str(files("selfhost") / "data" / "locale")


@cache
def translations(lang: Lang) -> gettext.NullTranslations:
    if lang == DEFAULT:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=locale_dir(), languages=[lang])


def gettext_for(lang: Lang) -> Gettext:
    return translations(lang).gettext
