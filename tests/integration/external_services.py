"""A customer-managed PostgreSQL and Redis on a sandbox guest, for the external-db preset.

The external-db profile points the app at a database and cache selfhost does not
deploy. The tests stand them up on a second guest by hand, as a customer's DBA
would: TLS with a server certificate for the guest's address (signed by the
deployment's CA, which the app trusts), SCRAM for PostgreSQL, an ACL user for
Redis. Passwords travel on ssh's standard input, never in an argument list.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from selfhost import sandbox


def server_certificate(ca_key_pem: str, ca_cert_pem: str, address: str) -> tuple[str, str]:
    """A certificate (and its key) for ``address``, signed by the deployment's CA."""
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


SETUP = r"""
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q postgresql redis-server >/dev/null
D=/etc/postgresql/$(ls /etc/postgresql)/main
install -d -o postgres -g postgres -m 0700 "$D/tls"
printf '%s' "$CERT" > "$D/tls/server.crt"
printf '%s' "$KEY" > "$D/tls/server.key"
chown postgres:postgres "$D/tls/server.crt" "$D/tls/server.key"
chmod 0600 "$D/tls/server.key"
cat > "$D/conf.d/external.conf" <<EOF
listen_addresses = '*'
ssl = on
ssl_cert_file = '$D/tls/server.crt'
ssl_key_file = '$D/tls/server.key'
password_encryption = 'scram-sha-256'
EOF
RULE="hostssl backendchat backendchat $APP/32 scram-sha-256"
grep -qxF "$RULE" "$D/pg_hba.conf" || echo "$RULE" >> "$D/pg_hba.conf"
systemctl restart postgresql
cd /
runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -v pw="$DB_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE backendchat LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'backendchat') \gexec
ALTER ROLE backendchat PASSWORD :'pw';
SELECT 'CREATE DATABASE backendchat OWNER backendchat'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'backendchat') \gexec
SQL
install -d -o redis -g redis -m 0700 /etc/redis/tls
printf '%s' "$CERT" > /etc/redis/tls/server.crt
printf '%s' "$KEY" > /etc/redis/tls/server.key
printf '%s' "$CA" > /etc/redis/tls/ca.crt
chown redis:redis /etc/redis/tls/*
chmod 0600 /etc/redis/tls/server.key
grep -qx 'include /etc/redis/external.conf' /etc/redis/redis.conf ||
    echo 'include /etc/redis/external.conf' >> /etc/redis/redis.conf
cat > /etc/redis/external.conf <<EOF
bind 0.0.0.0
port 0
tls-port 6380
tls-cert-file /etc/redis/tls/server.crt
tls-key-file /etc/redis/tls/server.key
tls-ca-cert-file /etc/redis/tls/ca.crt
tls-auth-clients no
user default off
user backendchat on >$CACHE_PASSWORD ~* &* +@all -@admin -@dangerous
EOF
chown root:redis /etc/redis/external.conf
chmod 0640 /etc/redis/external.conf
systemctl restart redis-server
"""


def _quoted(name: str, value: str) -> str:
    # A heredoc per value: no quoting of PEM text or passwords can go wrong.
    return f"{name}=$(cat <<'__VALUE__'\n{value}\n__VALUE__\n)\n"


def stand_up(box: sandbox.Sandbox, guest: sandbox.Guest, *, app_address: str,
             ca_key_pem: str, ca_cert_pem: str, db_password: str,
             cache_password: str) -> None:
    """Install and configure PostgreSQL and Redis on ``guest`` for the app at ``app_address``."""
    cert, key = server_certificate(ca_key_pem, ca_cert_pem, guest.address)
    values = {"CERT": cert, "KEY": key, "CA": ca_cert_pem, "APP": app_address,
              "DB_PASSWORD": db_password, "CACHE_PASSWORD": cache_password}
    script = "".join(_quoted(k, v) for k, v in values.items()) + SETUP
    done = subprocess.run(box.ssh_command(guest, "bash", "-s"), input=script,
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"setting up the external services on {guest.name} failed: "
                           f"{done.stderr.strip()[-1500:]}")
