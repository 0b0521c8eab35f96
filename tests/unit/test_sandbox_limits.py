"""When the inotify instance limit must grow for more guests: pure arithmetic."""

from __future__ import annotations

import pytest

from selfhost.sandbox.limits import PER_GUEST, wanted_inotify_limit


@pytest.mark.parametrize(
    ("limit", "in_use", "new", "expected"),
    [
        (128, 20, 2, None),
        (128, 120, 1, 1024),
        (1024, 1000, 3, 1000 + 3 * PER_GUEST + 128),
        (128, 0, 0, None),
    ],
)
def test_wanted_limit(limit: int, in_use: int, new: int, expected: int | None) -> None:
    assert wanted_inotify_limit(limit, in_use, new) == expected
