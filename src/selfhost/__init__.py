"""selfhost: deploy backend.chat on a customer's own Debian hosts."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    __version__: str
else:

    def __getattr__(name: str) -> str:
        # importlib.metadata costs more than the rest of `selfhost --help`: read on demand
        if name != "__version__":
            raise AttributeError(f"module 'selfhost' has no attribute {name!r}")
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            found = version("selfhost")
        except PackageNotFoundError:  # running from a source tree without install
            found = "0.0.0"
        globals()["__version__"] = found
        return found
