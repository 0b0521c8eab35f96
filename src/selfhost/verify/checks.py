"""The checks a Plan implies: the stable entry point for callers outside verify.

Each component's checks live in its module under :mod:`selfhost.verify.components`;
this module names what code elsewhere (tests, tools) enumerates them with.
"""

from __future__ import annotations

from selfhost.verify.components import DEFS, generate
from selfhost.verify.contract import COMPONENTS, Check, CheckDef, Outcome

__all__ = ["COMPONENTS", "DEFS", "Check", "CheckDef", "Outcome", "generate"]
