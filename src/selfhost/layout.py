"""Where a deployment lives on its hosts: paths, unit names and users.

One owner for each of these facts. The Plan carries a ``HostLayout``; the roles
receive it (``selfhost_plan.layout``) as variables, and verify reads the same
values from the Plan. A path that a role creates and verify inspects is written
here and nowhere else.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


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
    tls_key: str = "/etc/backend-chat/tls/server.key"
    #: what was deployed, by whom, from which profile (the record role writes it)
    deployment_record: str = "/etc/backend-chat/deployment.json"

    # -- the app
    app_user: str = "backendchat"
    app_unit: str = "backend-chat.service"
    app_base_dir: str = "/opt/backend-chat"
    app_env_file: str = "/etc/backend-chat/app.env"

    # -- backups
    backup_key: str = "/etc/backend-chat/backup.key"
    backup_script: str = "/usr/local/sbin/backend-chat-backup"
    backup_service: str = "backend-chat-backup.service"
    backup_timer: str = "backend-chat-backup.timer"

    # -- nginx
    nginx_tls_dir: str = "/etc/nginx/tls"
    nginx_tls_key: str = "/etc/nginx/tls/server.key"
    nginx_site_file: str = "/etc/nginx/conf.d/backend-chat.conf"

    # -- Redis
    redis_config: str = "/etc/redis/redis.conf"
    redis_tls_dir: str = "/etc/redis/tls"
    redis_tls_key: str = "/etc/redis/tls/server.key"
    redis_unit: str = "redis-server.service"

    # -- egress: the proxy and the firewall
    proxy_config: str = "/etc/squid/squid.conf"
    proxy_log: str = "/var/log/squid/access.log"
    proxy_unit: str = "squid.service"
    nft_config: str = "/etc/nftables.conf"
    nftables_unit: str = "nftables.service"

    # -- the base system
    sysctl_file: str = "/etc/sysctl.d/60-backend-chat.conf"


#: the layout every Plan carries
LAYOUT = HostLayout()
