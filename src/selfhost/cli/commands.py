"""Every top-level command, in the order ``selfhost --help`` lists them."""

from __future__ import annotations

import click

from selfhost.cli.deploy import demo, deploy
from selfhost.cli.keys import keys
from selfhost.cli.profile import init, plan, validate
from selfhost.cli.release import release
from selfhost.cli.sandbox import sandbox
from selfhost.cli.subprocessors import subprocessors
from selfhost.cli.upgrade import rollback, upgrade
from selfhost.cli.verify import verify

ALL: list[click.Command] = [init, validate, plan, sandbox]
ALL += [subprocessors, keys]
ALL += [release]
ALL += [deploy, demo]
ALL += [verify]
ALL += [upgrade, rollback]
