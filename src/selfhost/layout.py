"""Where a deployment lives on its hosts: paths, unit names, users and kernel settings.

One owner for each of these facts. The Plan carries a ``HostLayout``; the
playbook (``ansible/site.yml``) hands ``selfhost_plan.layout`` to the roles as
role variables, and verify reads the same values from the Plan. A path that a
role creates and verify inspects is written here and nowhere else: a unit test
(``tests/unit/test_layout_guard.py``) fails when a role spells one out.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: Kernel settings of a hardened host. Inside a container only the ``net.*`` ones
#: (its own network namespace) are applied: the rest belong to the host's kernel.
KERNEL_SETTINGS: dict[str, int] = {
    "net.ipv4.conf.all.rp_filter": 1,
    "net.ipv4.conf.default.rp_filter": 1,
    "net.ipv4.conf.all.accept_redirects": 0,
    "net.ipv4.conf.default.accept_redirects": 0,
    "net.ipv4.conf.all.secure_redirects": 0,
    "net.ipv4.conf.default.secure_redirects": 0,
    "net.ipv6.conf.all.accept_redirects": 0,
    "net.ipv6.conf.default.accept_redirects": 0,
    "net.ipv4.conf.all.send_redirects": 0,
    "net.ipv4.conf.default.send_redirects": 0,
    "net.ipv4.conf.all.accept_source_route": 0,
    "net.ipv4.conf.default.accept_source_route": 0,
    "net.ipv6.conf.all.accept_source_route": 0,
    "net.ipv4.conf.all.log_martians": 1,
    "net.ipv4.icmp_echo_ignore_broadcasts": 1,
    "net.ipv4.tcp_syncookies": 1,
    "kernel.kptr_restrict": 2,
    "kernel.dmesg_restrict": 1,
    "kernel.yama.ptrace_scope": 1,
    "kernel.unprivileged_bpf_disabled": 1,
    "fs.protected_hardlinks": 1,
    "fs.protected_symlinks": 1,
    "fs.protected_fifos": 2,
    "fs.protected_regular": 2,
    "fs.suid_dumpable": 0,
}


class HostLayout(BaseModel):
    """The host-side names of one deployment. The defaults are Debian's and the
    product's; nothing in a Profile changes them today."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- the deployment's own configuration directory
    config_dir: str = "/etc/backend-chat"
    #: the internal CA certificate every host trusts
    ca_cert: str = "/etc/backend-chat/ca.crt"
    #: the tls role's staged certificate and key (nginx, Redis, PostgreSQL copy from here)
    tls_dir: str = "/etc/backend-chat/tls"
    tls_cert: str = "/etc/backend-chat/tls/server.crt"
    tls_key: str = "/etc/backend-chat/tls/server.key"
    #: what was deployed, by whom, from which profile (the record role writes it;
    #: its schema is ``selfhost.record_schema.DeploymentRecord``)
    deployment_record: str = "/etc/backend-chat/deployment.json"

    # -- the app
    app_user: str = "backendchat"
    app_unit: str = "backend-chat.service"
    app_base_dir: str = "/opt/backend-chat"
    app_env_file: str = "/etc/backend-chat/app.env"
    #: the app's own /etc/hosts and /etc/resolv.conf, bound over the host's in its unit
    app_hosts_file: str = "/opt/backend-chat/hosts"
    app_resolv_file: str = "/opt/backend-chat/resolv.conf"
    #: releases side by side, one directory per version, and the link to the running one
    app_releases_dir: str = "/opt/backend-chat/releases"
    app_current: str = "/opt/backend-chat/current"
    #: in each release directory: the manifest's argv, which the unit starts through
    #: ``app_current``
    app_release_launcher: str = ".selfhost-run"
    #: the link to the release that ran before the last switch (what rollback returns to)
    app_previous: str = "/opt/backend-chat/previous"
    #: on the database host: the pre-upgrade dumps (pg_dump -Fc) and the upgrade's state
    upgrade_dir: str = "/var/backups/backend-chat-upgrade"

    # -- backups
    backup_key: str = "/etc/backend-chat/backup.key"
    backup_script: str = "/usr/local/sbin/backend-chat-backup"
    backup_service: str = "backend-chat-backup.service"
    backup_timer: str = "backend-chat-backup.timer"

    # -- nginx
    nginx_tls_dir: str = "/etc/nginx/tls"
    nginx_tls_cert: str = "/etc/nginx/tls/server.crt"
    nginx_tls_key: str = "/etc/nginx/tls/server.key"
    nginx_site_file: str = "/etc/nginx/conf.d/backend-chat.conf"
    #: while it exists, nginx answers the load balancer's /readyz with 503 (an upgrade
    #: drains the app host it switches); in nginx's directory, which its workers can read
    nginx_drain_flag: str = "/etc/nginx/backend-chat.drained"
    #: ACME: certbot's live certificates, one directory per domain (the tls role has
    #: them made, nginx serves them)
    acme_live_dir: str = "/etc/letsencrypt/live"

    # -- Redis
    redis_config: str = "/etc/redis/redis.conf"
    #: the ACL users (`default` off, the app's, the reload user), their passwords as
    #: SHA-256 hashes; redis.conf names it with `aclfile`
    redis_acl_file: str = "/etc/redis/users.acl"
    #: the password of the user that may only run ACL LOAD: made on the host, never
    #: leaves it
    redis_reload_password_file: str = (
        "/etc/redis/acl-reload.password")  # noqa: S105 - a path, not a password
    redis_tls_dir: str = "/etc/redis/tls"
    redis_tls_cert: str = "/etc/redis/tls/server.crt"
    redis_tls_key: str = "/etc/redis/tls/server.key"
    #: Redis's own copy of the internal CA certificate
    redis_tls_ca: str = "/etc/redis/tls/ca.crt"
    redis_unit: str = "redis-server.service"

    # -- egress: the proxy and the firewall
    proxy_config: str = "/etc/squid/squid.conf"
    proxy_log: str = "/var/log/squid/access.log"
    proxy_unit: str = "squid.service"
    nft_config: str = "/etc/nftables.conf"
    nftables_unit: str = "nftables.service"

    # -- the drift watch: a timer runs the host's checks between deploys
    #: the host-side check code (a subset of selfhost, shipped by the drift role)
    drift_code_dir: str = "/usr/local/lib/backend-chat-drift"
    #: this host's checks and what to collect for them (written at deploy)
    drift_config: str = "/etc/backend-chat/drift.json"
    #: the latest result, which `selfhost status` reads (a directory of its own: the
    #: app's unit owns /var/lib/backend-chat as its StateDirectory)
    drift_status: str = "/var/lib/backend-chat-drift/status.json"
    drift_service: str = "backend-chat-drift.service"
    drift_timer: str = "backend-chat-drift.timer"

    # -- the base system
    sysctl_file: str = "/etc/sysctl.d/60-backend-chat.conf"
    #: the Debian packages installed before the first deploy (the common role writes
    #: it once); ``selfhost destroy`` removes only packages that are not in it
    package_baseline: str = "/var/lib/backend-chat-selfhost/packages-before-deploy.json"
    #: the app unit's StateDirectory (systemd makes it, owned by the app user)
    app_state_dir: str = "/var/lib/backend-chat"
    #: where ``deploy --prune`` archives the data of a removed database or cache
    prune_archive_dir: str = "/var/backups/backend-chat-pruned"
    #: what the common role writes to ``sysctl_file`` and verify reads back
    kernel_settings: dict[str, int] = Field(default_factory=lambda: dict(KERNEL_SETTINGS))


#: the layout every Plan carries
LAYOUT = HostLayout()
