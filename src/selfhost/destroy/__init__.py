"""``selfhost destroy``: removing a deployment from its hosts.

Public API::

    destroy(profile_path, DestroyOptions(inventory=, sandbox=, backup=, confirmed=,
            engine=, timeout=, sign_key=), ask=, reporter=, say=) -> DestroyResult
"""

from typing import TYPE_CHECKING

from selfhost import lazy

if TYPE_CHECKING:
    from selfhost.destroy.service import DestroyOptions, DestroyResult, destroy
else:
    __getattr__ = lazy.exports(__name__, dict.fromkeys(
        ("DestroyOptions", "DestroyResult", "destroy"), "selfhost.destroy.service"))

__all__ = ["DestroyOptions", "DestroyResult", "destroy"]
