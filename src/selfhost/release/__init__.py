"""Release tarballs: their manifest, building and signing one, checking one.

See the README's "Releases" section for the format.
"""

from selfhost.release.artifact import VerifiedRelease, verified, verify_release
from selfhost.release.manifest import (
    MANIFEST,
    NotGenuine,
    ReleaseError,
    ReleaseManifest,
    upgrade_refusal,
)

__all__ = ["MANIFEST", "NotGenuine", "ReleaseError", "ReleaseManifest", "VerifiedRelease",
           "upgrade_refusal", "verified", "verify_release"]
