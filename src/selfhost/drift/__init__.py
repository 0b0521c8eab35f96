"""The drift watch: the host-side checks between deploys, and what ``selfhost deploy``
ships for them (:mod:`selfhost.drift.bundle`). Nothing here imports pydantic: the
host-side run (:mod:`selfhost.drift.host`) imports this package on the hosts."""
