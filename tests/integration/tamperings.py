"""One tampering per check id of ``selfhost verify``: the one table.

Each row changes a deployed guest so that one check fails (and says so in its
finding), then undoes the change. The commands run as root on the host the
check is about; ``{name}`` placeholders are filled in by the test from the
deployment (see ``test_verify_tamperings``). A row lists in ``also`` the other
checks its change fails as a matter of course (stopping PostgreSQL fails every
PostgreSQL check), so a row that breaks more than it says, or an undo that
leaves something behind, fails the test.

The undo restores the host exactly (a saved copy, the old mode, the unit
started again); where a tampering changes what cannot be copied back, the
row says why its undo is still exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Topology = Literal["all-in-one", "split"]

#: where the tamperings keep the copies their undo restores
SAVED = "/root/tamper-saved"
PSQL = "cd / && runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d postgres -c"
HBA = f"$({PSQL} 'SHOW hba_file')"
DATA_DIRECTORY = f"$({PSQL} 'SHOW data_directory')"
#: the cluster Debian made (postgresql@15-main on Debian 12, @17-main on 13)
PG_UNITS = "postgresql@$(ls /etc/postgresql)-main.service"
RECORD = "/etc/backend-chat/deployment.json"
ENV_FILE = "/etc/backend-chat/app.env"
REDIS_CONF = "/etc/redis/redis.conf"
REDIS_ACL = "/etc/redis/users.acl"
NGINX_SITE = "/etc/nginx/conf.d/backend-chat.conf"
NGINX_CONF = "/etc/nginx/nginx.conf"
NGINX_CERT = "/etc/nginx/tls/server.crt"
SQUID_CONF = "/etc/squid/squid.conf"
SQUID_LOG = "/var/log/squid/access.log"
NFT = "nft"
TABLE = "inet backend_chat"
#: a listener beyond loopback that the Plan does not know of
STRAY_PORT = 8081
STRAY_UNIT = "tamper-stray-listener"


def save(*paths: str) -> str:
    return f"mkdir -p {SAVED} && " + " && ".join(
        f"cp -p {p} {SAVED}/$(basename {p}).orig" for p in paths)


def restore(*paths: str) -> str:
    return " && ".join(f"cp -p {SAVED}/$(basename {p}).orig {p}" for p in paths)


def squid_allows(domain: str, *, resolved: bool = False) -> str:
    """A squid.conf with one more destination admitted, as a hand edit would add it.

    ``resolved``: the name also resolves, to this host's own nginx (a hosts-file
    entry), so the proxy does connect and the refusal checks see it admit the
    request; unresolved, the guest (which has no DNS) leaves the proxy without an
    answer until the check's timeout. The proxy's log is saved first: the connection
    it then makes is logged, and ``egress.observed`` would report it until the next
    deploy.
    """
    hosts = (save(SQUID_LOG) + f" && echo '127.0.0.1 {domain}' >> /etc/hosts && "
             if resolved else "")
    return (hosts + save(SQUID_CONF) + " && sed -i 's/^http_access deny all$/acl tamper "
            "dstdomain "
            f"{domain}\\nacl tamper_port port 443\\nhttp_access allow tamper tamper_port\\n"
            f"http_access deny all/' {SQUID_CONF} && systemctl restart squid")


SQUID_RESTORE = restore(SQUID_CONF) + " && systemctl restart squid"
#: the destination verify asks the proxy about, which no allowlist holds
UNLISTED = "unlisted.selfhost-verify.invalid"
ADMITTED = "admitted by the proxy (proxy answered 200"
#: an admitted destination is on the proxy's allowlist, and verify's own request to
#: it is then in the proxy's log as contacted
ADMITTED_ALSO = ("egress.allowlist", "egress.observed")


def squid_unresolve(domain: str) -> str:
    # cp onto the open log keeps its inode, which the proxy goes on appending to
    return (f"sed -i '/^127.0.0.1 {domain}$/d' /etc/hosts && " + restore(SQUID_LOG) + " && "
            + SQUID_RESTORE)


def redis_conf(sed: str) -> str:
    return save(REDIS_CONF) + f" && sed -i {sed} {REDIS_CONF} && systemctl restart redis-server"


REDIS_RESTORE = restore(REDIS_CONF) + " && systemctl restart redis-server"


# A restart, not ACL LOAD: the tampering needs no password, and the server then
# reads the file exactly as after a deploy.
def redis_acl(sed: str) -> str:
    return save(REDIS_ACL) + f" && sed -i {sed} {REDIS_ACL} && systemctl restart redis-server"


REDIS_ACL_RESTORE = restore(REDIS_ACL) + " && systemctl restart redis-server"


# restart, not reload: `systemctl reload nginx` returns before the new workers
# serve, so a check right after it could still meet the old configuration.
def nginx_edit(path: str, sed: str) -> str:
    return save(path) + f" && sed -i {sed} {path} && systemctl restart nginx"


def nginx_restore(path: str) -> str:
    return restore(path) + " && systemctl restart nginx"


def hba_first(line: str) -> str:
    """pg_hba.conf with ``line`` first; pg_hba_file_rules (what verify reads) shows the
    file as it is on disk, loaded or not."""
    return f"f={HBA} && " + save("$f") + f" && sed -i '1i {line}' $f"


HBA_RESTORE = f"f={HBA} && " + restore("$f")


def pg_set(setting: str, value: str, *, restart: bool = False) -> str:
    apply = f"systemctl restart {PG_UNITS}" if restart else f"{PSQL} 'SELECT pg_reload_conf()'"
    return f"{PSQL} \"ALTER SYSTEM SET {setting} = '{value}'\" && {apply}"


def pg_reset(setting: str, *, restart: bool = False) -> str:
    # postgresql.auto.conf held nothing before: RESET removes the line ALTER SYSTEM wrote.
    apply = f"systemctl restart {PG_UNITS}" if restart else f"{PSQL} 'SELECT pg_reload_conf()'"
    return f"{PSQL} 'ALTER SYSTEM RESET {setting}' && {apply}"


STRAY_LISTENER = (f"systemd-run --unit {STRAY_UNIT} python3 -m http.server {STRAY_PORT} "
                  f"--bind 0.0.0.0 && for i in $(seq 50); do "
                  f"grep -q ':{STRAY_PORT:04X} 00000000:0000 0A' /proc/net/tcp && break; "
                  "sleep 0.1; done")
STRAY_STOP = f"systemctl stop {STRAY_UNIT}"


@dataclass(frozen=True)
class Tamper:
    #: the check id that must fail
    check: str
    #: what is done to the host, in a few words (the test id)
    name: str
    do: str
    undo: str
    #: a phrase the check's finding must contain, specific to this tampering
    says: str
    #: the other check ids this change fails too
    also: tuple[str, ...] = ()
    topology: Topology = "all-in-one"
    #: the Plan host to tamper with (and whose check fails); None: the only host
    host: str | None = None


def nginx_sed(check: str, name: str, path: str, sed: str, says: str,
              also: tuple[str, ...] = ()) -> Tamper:
    """A row that edits one of nginx's files with ``sed`` and restarts it."""
    return Tamper(check, name, nginx_edit(path, sed), nginx_restore(path), says, also)


PG_ALL = ("postgresql.running", "postgresql.password_encryption", "postgresql.scram_secrets",
          "postgresql.hba_methods", "postgresql.listen", "postgresql.connection_logging",
          "postgresql.data_directory")

TAMPERINGS = [
    # -- host ----------------------------------------------------------------------
    Tamper("host.nftables", "input-policy-accept",
           f"{NFT} 'chain {TABLE} input {{ policy accept ; }}'",
           f"{NFT} 'chain {TABLE} input {{ policy drop ; }}'",
           "no input chain with policy drop"),
    Tamper("host.sysctl", "martians-not-logged",
           "sysctl -qw net.ipv4.conf.all.log_martians=0",
           "sysctl -qw net.ipv4.conf.all.log_martians=1",
           "net.ipv4.conf.all.log_martians=0"),
    Tamper("host.deployment_record", "record-of-another-profile",
           save(RECORD) + " && python3 -c \"import json,sys; p=sys.argv[1]; d=json.load(open(p)); "
           "d['profile_fingerprint']='0000tampered'; json.dump(d, open(p, 'w'))\" " + RECORD,
           restore(RECORD), "profile_fingerprint: 0000tampered"),
    Tamper("host.secret_files", "tls-key-world-readable",
           "chmod 0644 /etc/backend-chat/tls/server.key",
           "chmod 0600 /etc/backend-chat/tls/server.key",
           "/etc/backend-chat/tls/server.key: mode 0644"),
    Tamper("host.exposed_ports", "stray-listener-on-db-host", STRAY_LISTENER, STRAY_STOP,
           f"port(s) {STRAY_PORT}", topology="split", host="db1"),
    # -- PostgreSQL ------------------------------------------------------------------
    Tamper("postgresql.running", "stopped",
           f"systemctl stop {PG_UNITS}", f"systemctl start {PG_UNITS}",
           "PostgreSQL does not answer",
           also=(*PG_ALL[1:], "app.healthz")),
    Tamper("postgresql.password_encryption", "md5",
           pg_set("password_encryption", "md5"), pg_reset("password_encryption"),
           "password_encryption = md5"),
    Tamper("postgresql.scram_secrets", "role-with-md5-secret",
           f"{PSQL} \"SET password_encryption = 'md5'; "
           "CREATE ROLE tamper LOGIN PASSWORD 'tamper-password'\"",
           f"{PSQL} 'DROP ROLE tamper'", "without a SCRAM secret: tamper (md5)"),
    Tamper("postgresql.hba_methods", "trust-line",
           hba_first("host all all 127.0.0.1/32 trust"), HBA_RESTORE,
           "line 1: host 127.0.0.1/32 trust"),
    Tamper("postgresql.listen", "also-ipv6-loopback",
           pg_set("listen_addresses", "127.0.0.1,::1", restart=True),
           pg_reset("listen_addresses", restart=True),
           "PostgreSQL listens on 127.0.0.1, ::1 port 5432"),
    Tamper("postgresql.connection_logging", "connections-not-logged",
           pg_set("log_connections", "off"), pg_reset("log_connections"),
           "log_connections = off"),
    Tamper("postgresql.data_directory", "group-readable",
           f"chmod 0750 {DATA_DIRECTORY}", f"chmod 0700 {DATA_DIRECTORY}", "mode 0750"),
    Tamper("postgresql.hostssl_only", "plain-host-line-for-the-subnet",
           hba_first("host all all {subnet} scram-sha-256"), HBA_RESTORE,
           "not hostssl: line 1: host {subnet} scram-sha-256",
           topology="split", host="db1"),
    # 127.0.0.1/0 is every address: a plain-text line for the world, not for loopback.
    Tamper("postgresql.hostssl_only", "loopback-address-any-netmask",
           hba_first("host all all 127.0.0.1/0 scram-sha-256"), HBA_RESTORE,
           "not hostssl: line 1: host 127.0.0.1/0 scram-sha-256",
           topology="split", host="db1"),
    Tamper("postgresql.ssl", "key-group-readable",
           f"chmod 0640 $({PSQL} 'SHOW ssl_key_file')",
           f"chmod 0600 $({PSQL} 'SHOW ssl_key_file')", "mode 0640",
           topology="split", host="db1"),
    # -- backups -----------------------------------------------------------------------
    Tamper("backup.timer", "disabled",
           "systemctl disable --now backend-chat-backup.timer",
           "systemctl enable --now backend-chat-backup.timer",
           "backend-chat-backup.timer inactive/dead, unit file disabled"),
    Tamper("backup.directory", "world-readable",
           "chmod 0755 /var/backups/backend-chat", "chmod 0700 /var/backups/backend-chat",
           "mode 0755, owner root:root"),
    # -- Redis -------------------------------------------------------------------------
    Tamper("redis.running_as_redis", "runs-as-root",
           "mkdir -p /etc/systemd/system/redis-server.service.d && printf '[Service]\\n"
           "User=root\\nGroup=root\\nPrivateUsers=false\\nCapabilityBoundingSet=~\\n' > "
           "/etc/systemd/system/redis-server.service.d/zz-tamper.conf && "
           "systemctl daemon-reload && systemctl restart redis-server",
           # Running as root, Redis saved its dump as root on the way down: given back
           # to redis (its owner before), or the redis user could not load it.
           "rm /etc/systemd/system/redis-server.service.d/zz-tamper.conf && "
           "rmdir /etc/systemd/system/redis-server.service.d && systemctl daemon-reload && "
           "systemctl stop redis-server && chown redis:redis /var/lib/redis/dump.rdb && "
           "systemctl reset-failed redis-server && systemctl start redis-server",
           "processes owned by root"),
    Tamper("redis.bind", "also-ipv6-loopback",
           redis_conf("'s/^bind 127.0.0.1$/bind 127.0.0.1 ::1/'"), REDIS_RESTORE,
           "Redis listens on 127.0.0.1, ::1 port 6379"),
    Tamper("redis.protected_mode", "off",
           redis_conf("'s/^protected-mode yes/protected-mode no/'"), REDIS_RESTORE,
           "protected-mode no"),
    Tamper("redis.noauth_ping", "default-user-without-password",
           redis_acl("'s/^user default off$/user default on nopass ~* \\&* +@all/'"),
           REDIS_ACL_RESTORE, "PING answered '+PONG'"),
    Tamper("redis.config_file", "world-readable", f"chmod 0644 {REDIS_CONF}",
           f"chmod 0640 {REDIS_CONF}", "mode 0644"),
    Tamper("redis.acl_file", "world-readable", f"chmod 0644 {REDIS_ACL}",
           f"chmod 0640 {REDIS_ACL}", "mode 0644"),
    # The check reads redis.conf: a TLS port written there (not yet restarted into,
    # which without certificates would stop Redis) is what it must catch.
    Tamper("redis.tls", "tls-port-configured", f"echo 'tls-port 6390' >> {REDIS_CONF}",
           f"sed -i '/^tls-port 6390$/d' {REDIS_CONF}", "port 6379, tls-port 6390"),
    Tamper("redis.app_user_config_refused", "app-user-may-administer",
           redis_acl("-E 's/^(user backendchat on #[0-9a-f]+ ~\\* &\\* \\+@all) .*/\\1/'"),
           REDIS_ACL_RESTORE, "CONFIG GET answered '*2'"),
    # -- egress ------------------------------------------------------------------------
    Tamper("egress.scope", "fence-without-drop",
           f"{NFT} delete rule {TABLE} app_egress handle $({NFT} -a list chain {TABLE} "
           "app_egress | sed -n 's/.*\"app egress dropped\" # handle //p')",
           f"{NFT} add rule {TABLE} app_egress counter drop comment '\"app egress dropped\"'",
           "is not fenced", also=("egress.direct_dropped",)),
    Tamper("egress.fence_first", "accept-before-the-jump",
           f"{NFT} insert rule {TABLE} output tcp dport 9 accept",
           f"{NFT} delete rule {TABLE} output handle $({NFT} -a list chain {TABLE} output | "
           "sed -n 's/.*tcp dport 9 accept # handle //p')",
           "rule 1 accepts before the jump"),
    Tamper("egress.allowlist", "unlisted-domain", squid_allows("tamper.example.org"),
           SQUID_RESTORE, "not in the Plan: tamper.example.org:443"),
    Tamper("egress.unlisted_refused", "unlisted-admitted",
           squid_allows(UNLISTED, resolved=True), squid_unresolve(UNLISTED),
           ADMITTED, also=ADMITTED_ALSO),
    Tamper("egress.ai_refused.openai", "openai-admitted",
           squid_allows("api.openai.com", resolved=True), squid_unresolve("api.openai.com"),
           ADMITTED, also=ADMITTED_ALSO),
    Tamper("egress.ai_refused.anthropic", "anthropic-admitted",
           squid_allows("api.anthropic.com", resolved=True),
           squid_unresolve("api.anthropic.com"), ADMITTED, also=ADMITTED_ALSO),
    Tamper("egress.observed", "unlisted-destination-contacted",
           f"printf '%s 12 127.0.0.1 TCP_TUNNEL/200 4321 CONNECT tamper.example.org:443 - "
           f"HIER_DIRECT/192.0.2.99 -\\n' \"$(date +%s.000)\" >> {SQUID_LOG}",
           f"sed -i '/ tamper.example.org:443 /d' {SQUID_LOG}",
           "contacted outside the list: tamper.example.org:443"),
    Tamper("egress.direct_dropped", "app-user-let-out",
           f"{NFT} insert rule {TABLE} app_egress ip daddr {{direct_address}} tcp dport "
           "{direct_port} accept",
           f"{NFT} delete rule {TABLE} app_egress handle $({NFT} -a list chain {TABLE} "
           "app_egress | sed -n 's/.*ip daddr {direct_address} tcp dport {direct_port} accept "
           "# handle //p')",
           "connected to {direct_address}:{direct_port} directly"),
    # -- app ----------------------------------------------------------------------------
    # daemon-reload without a restart: systemd shows what the unit now says, and the
    # app keeps serving, so only the hardening check sees the change.
    Tamper("app.unit", "home-not-protected",
           "mkdir -p /etc/systemd/system/backend-chat.service.d && printf '[Service]\\n"
           "ProtectHome=no\\n' > /etc/systemd/system/backend-chat.service.d/zz-tamper.conf && "
           "systemctl daemon-reload",
           "rm /etc/systemd/system/backend-chat.service.d/zz-tamper.conf && "
           "systemctl daemon-reload", "ProtectHome=no"),
    Tamper("app.env_file_mode", "world-readable", f"chmod 0644 {ENV_FILE}",
           f"chmod 0600 {ENV_FILE}", "mode 0644", also=("host.secret_files",)),
    Tamper("app.env_keys", "ai-key-added",
           f"printf 'OPENAI_API_KEY=\"sk-tampered\"\\n' >> {ENV_FILE}",
           f"sed -i '/^OPENAI_API_KEY=/d' {ENV_FILE}",
           "keys the Plan does not enable: OPENAI_API_KEY"),
    Tamper("app.healthz", "database-refuses-the-app",
           f"{PSQL} 'ALTER ROLE backendchat CONNECTION LIMIT 0'",
           f"{PSQL} 'ALTER ROLE backendchat CONNECTION LIMIT -1'", "database: FAILED"),
    # -- nginx --------------------------------------------------------------------------
    # A file nginx would load on its next start: the running server is not touched.
    Tamper("nginx.config_test", "broken-include",
           "echo 'tamper_directive on;' > /etc/nginx/conf.d/zz-tamper.conf",
           "rm /etc/nginx/conf.d/zz-tamper.conf",
           # the cause `nginx -t` gives on its [emerg] line, not its closing "test failed"
           'unknown directive "tamper_directive" in /etc/nginx/conf.d/zz-tamper.conf:1'),
    nginx_sed("nginx.tls13", "tls12-only", NGINX_SITE,
              "'s/ssl_protocols TLSv1.3;/ssl_protocols TLSv1.2;/'",
              "refused: SSLError: [SSL: TLSV1_ALERT_PROTOCOL_VERSION]",
              also=("nginx.tls12_refused",)),
    nginx_sed("nginx.tls12_refused", "tls12-allowed", NGINX_SITE,
              "'s/ssl_protocols TLSv1.3;/ssl_protocols TLSv1.2 TLSv1.3;/'",
              "TLS 1.2 handshake accepted"),
    Tamper("nginx.certificate", "expires-in-ten-days",
           save(NGINX_CERT) + f" && printf '%s' '{{short_cert}}' > {NGINX_CERT} && "
           "systemctl restart nginx", nginx_restore(NGINX_CERT), "(10 days)"),
    nginx_sed("nginx.hsts", "short-max-age", NGINX_SITE,
              "-E 's/max-age=[0-9]+/max-age=300/'", "Strict-Transport-Security: max-age=300"),
    nginx_sed("nginx.server_header", "version-shown", NGINX_CONF,
              "'s/server_tokens off;/server_tokens on;/'", "Server: nginx/"),
    nginx_sed("nginx.unknown_host", "default-server-answers", NGINX_SITE,
              "'0,/return 444;/s//return 200 tampered;/'", "HTTP: HTTP/1.1 200 OK"),
    nginx_sed("nginx.workers_not_root", "workers-as-root", NGINX_CONF,
              "'s/^user www-data;/user root;/'", "workers owned by root"),
    Tamper("nginx.exposed_ports", "stray-listener", STRAY_LISTENER, STRAY_STOP,
           f"port(s) {STRAY_PORT}"),
]

#: the rows reconciliation must also name (test_verify)
BY_NAME = {f"{t.check}:{t.name}": t for t in TAMPERINGS}
