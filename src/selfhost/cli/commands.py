"""Every top-level command, in the order ``selfhost --help`` lists them."""

from __future__ import annotations

import click

from selfhost.cli.backup import backup, restore
from selfhost.cli.certs import certs
from selfhost.cli.deploy import demo, deploy
from selfhost.cli.destroy import destroy
from selfhost.cli.keys import keys
from selfhost.cli.profile import init, plan, validate
from selfhost.cli.release import release
from selfhost.cli.rotate import rotate
from selfhost.cli.sandbox import sandbox
from selfhost.cli.status import status
from selfhost.cli.subprocessors import subprocessors
from selfhost.cli.support_bundle import support_bundle
from selfhost.cli.upgrade import rollback, upgrade
from selfhost.cli.verify import verify

ALL: list[click.Command] = [init, validate, plan, sandbox]
ALL += [subprocessors, keys]
ALL += [release]
ALL += [deploy, demo]
ALL += [verify]
ALL += [rotate]
ALL += [support_bundle]
ALL += [destroy]
ALL += [backup, restore]
ALL += [certs]
ALL += [status]
ALL += [upgrade, rollback]
