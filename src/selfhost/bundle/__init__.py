"""Support bundles: one redacted archive of a deployment for the vendor.

Public API::

    support_bundle(profile_path, BundleOptions(...), say=..., show=...) -> BundleResult

Modules: ``collect`` (what each host is asked, over ssh), ``remote`` (the host
side, run by the host's python3), ``parts`` (answers -> archive parts),
``runs`` (summaries of kept deploy runs), ``service`` (scrub, list, write).
"""

from selfhost.bundle.service import BundleOptions, BundleResult, parse_since, support_bundle

__all__ = ["BundleOptions", "BundleResult", "parse_since", "support_bundle"]
