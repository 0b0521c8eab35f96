"""selfhost: deploy backend.chat on a customer's own Debian hosts."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("selfhost")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"
