"""``selfhost status``: each host's drift status, deployment and egress at a glance."""

from selfhost.status.report import render
from selfhost.status.service import HostStatus, StatusResult, status

__all__ = ["HostStatus", "StatusResult", "render", "status"]
