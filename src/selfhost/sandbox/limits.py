"""Kernel limits that many guests on one host run into.

Every guest's systemd (and its journald, udev-less services, logind ...) holds several
inotify instances, all charged to root because the guests do not use user namespaces.
Debian's default ``fs.inotify.max_user_instances`` of 128 is used up by roughly twenty
guests on the whole machine; the next guest's systemd then dies at boot with "Failed to
allocate manager object: Too many open files".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

INOTIFY_LIMIT = Path("/proc/sys/fs/inotify/max_user_instances")
#: measured: an idle guest holds about 6; the margin covers services a deploy adds
PER_GUEST = 10
RAISED_MINIMUM = 1024


def inotify_instances_of_root() -> int:
    """How many inotify instances root processes hold now (one fd each, near enough)."""
    count = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if proc.stat().st_uid != 0:
                continue
            for fd in os.scandir(proc / "fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) == "anon_inode:inotify":
                        count += 1
    return count


def wanted_inotify_limit(current_limit: int, in_use: int, new_guests: int) -> int | None:
    """The limit to set so ``new_guests`` more guests fit, or None if the current one does."""
    needed = in_use + PER_GUEST * new_guests
    if needed <= current_limit:
        return None
    return max(RAISED_MINIMUM, needed + 128, current_limit)


def ensure_inotify_capacity(new_guests: int, say: Callable[[str], None]) -> None:
    """Raise ``fs.inotify.max_user_instances`` (until reboot) when the guests would not fit."""
    if new_guests <= 0 or not INOTIFY_LIMIT.exists():
        return
    current = int(INOTIFY_LIMIT.read_text())
    wanted = wanted_inotify_limit(current, inotify_instances_of_root(), new_guests)
    if wanted is None:
        return
    INOTIFY_LIMIT.write_text(f"{wanted}\n")
    say(f"raised fs.inotify.max_user_instances from {current} to {wanted} (until reboot): "
        f"{new_guests} more guest(s) would not fit")
