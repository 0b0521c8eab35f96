"""``selfhost sandbox``: real Debian target hosts on this machine, for trying and testing."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from selfhost import sandbox as sb
from selfhost.errors import InvalidInput


@contextmanager
def _progress() -> Iterator[Callable[[str], None]]:
    """A live status line on a terminal, plain lines otherwise (CI logs)."""
    if sys.stdout.isatty():
        from rich.console import Console

        console = Console()
        with console.status("starting") as status:

            def update(msg: str) -> None:
                console.log(msg)
                status.update(msg)

            yield update
    else:
        yield lambda msg: click.echo(f"... {msg}")


@click.group()
def sandbox() -> None:
    """Real Debian hosts on this machine: systemd-nspawn guests on a private bridge.

    \b
    Each guest boots systemd, runs sshd and reaches nothing but this machine's
    bridge address, where an apt cache serves Debian packages (no default route,
    no internet). Needs root. State lives in /var/lib/selfhost/sandbox
    ($SELFHOST_SANDBOX_DIR); the subnet is $SELFHOST_SANDBOX_SUBNET (default
    10.213.47.0/24).
    """


@sandbox.command()
@click.option("--hosts", "-n", type=int, default=1, show_default=True,
              help="How many guests the sandbox should have (1-50).")
@click.option("--release", type=click.Choice(list(sb.RELEASES)), default=None,
              help="Debian release of the guests. Default: bookworm for a new sandbox, "
                   "the sandbox's own release otherwise.")
@click.option("--image", type=click.Choice(list(sb.IMAGES)), default=None,
              help="base: a fresh Debian host; server: the packages an all-in-one "
                   "deployment installs already installed (a golden image; its first "
                   "deploy is faster). Default: base for a new sandbox, the sandbox's "
                   "own image otherwise.")
@click.option("--name", default="default", show_default=True,
              help="Sandbox name; several sandboxes can run at once.")
@click.option("--install-prereqs", is_flag=True,
              help="apt-get install the host packages the sandbox needs, if missing.")
def up(hosts: int, release: str | None, image: str | None, name: str,
       install_prereqs: bool) -> None:
    """Create a sandbox of running Debian guests, or complete an existing one.

    Safe to re-run: running guests are kept, stopped ones are booted again and new
    ones are added when --hosts grows (it never removes guests; use `down`). The
    first run per release builds a rootfs with debootstrap (about a minute); later
    guests come from its cache in seconds. Writes an ssh key, a known_hosts file
    with the guests' host keys and an Ansible inventory, and prints where.
    """
    with _progress() as progress:
        box = sb.up(name, hosts, release, image=image, install_prereqs=install_prereqs,
                    progress=progress)
    click.echo(f"sandbox {box.name} (Debian {box.release}), apt proxy {box.apt_proxy}:")
    for guest in box.guests:
        click.echo(f"  {guest.name:<24} {guest.address:<15} {guest.state}")
    click.echo(f"inventory:   {box.inventory}")
    click.echo(f"ssh key:     {box.ssh_key}")
    click.echo(f"known_hosts: {box.known_hosts}")
    first = box.guests[0]
    click.echo(f"try: ansible -i {box.inventory} all -m ping   or   "
               f"ssh -i {box.ssh_key} -o UserKnownHostsFile={box.known_hosts} "
               f"root@{first.address}")


@sandbox.command()
@click.option("--name", default=None,
              help="Sandbox to remove (default: `default`).")
@click.option("--all", "all_", is_flag=True, help="Remove every sandbox.")
def down(name: str | None, all_: bool) -> None:
    """Power off and delete a sandbox's guests.

    Each guest gets a clean poweroff (SIGTERM, then SIGKILL after 30 s). When no
    sandbox is left, the apt cache process is stopped and the bridge removed: no
    processes, mounts, bridges or state files remain. Removing a sandbox that does
    not exist is not an error.

    The rootfs tarballs and the apt package cache under /var/cache/selfhost
    ($SELFHOST_CACHE_DIR) are caches and stay.
    """
    if all_ and name is not None:
        raise InvalidInput("--all and --name exclude each other; give one of them")
    name = name or "default"
    existing = {box.name for box in sb.list_sandboxes()}
    killed = sb.down_all() if all_ else sb.down(name)
    for label in killed:
        click.echo(f"warning: {label} did not power off in time and was killed", err=True)
    if all_:
        click.echo(f"removed {len(existing)} sandbox(es)")
    elif name in existing:
        click.echo(f"removed sandbox {name}")
    else:
        click.echo(f"there was no sandbox named {name}; nothing to remove")


@sandbox.command("list")
def list_() -> None:
    """Show every sandbox guest: sandbox, guest, release, address, pid, state."""
    boxes = sb.list_sandboxes()
    if not boxes:
        click.echo("no sandboxes")
        return
    click.echo(f"{'SANDBOX':<20} {'GUEST':<24} {'RELEASE':<9} {'ADDRESS':<15} {'PID':>7} STATE")
    for box in boxes:
        for g in box.guests:
            pid = str(g.pid) if g.pid else "-"
            click.echo(f"{box.name:<20} {g.name:<24} {g.release:<9} {g.address:<15} "
                       f"{pid:>7} {g.state}")
