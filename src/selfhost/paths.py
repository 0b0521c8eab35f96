"""Where the files shipped with the package live.

``ansible/`` and ``profiles/`` sit at the top of the source tree; the package
reaches them through links so an installed wheel carries them too.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ANSIBLE_DIR = (PACKAGE_DIR / "ansible").resolve()
PROFILES_DIR = (PACKAGE_DIR / "profiles").resolve()
DATA_DIR = PACKAGE_DIR / "data"
#: the preset `selfhost demo` deploys unless told another
DEFAULT_PRESET = "air-gapped"


def preset_path(name: str) -> Path:
    return PROFILES_DIR / f"{name}.yaml"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def state_dir(profile_path: Path, customer_id: str) -> Path:
    """``<profile dir>/.selfhost/<customer id>``: what selfhost keeps about a customer's
    deployment (certificates, the deployment record, the subprocessor archive)."""
    return profile_path.resolve().parent / ".selfhost" / customer_id
