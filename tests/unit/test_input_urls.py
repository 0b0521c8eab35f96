"""External DSN and Redis URLs, read as libpq and redis-py read them.

libpq takes the last of repeated keys and accepts password/host/hostaddr in
the query; redis-py accepts ``ssl_cert_reqs=none``. Each such URL is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from selfhost.cli import main
from selfhost.paths import preset_path

DSN = "postgresql://backendchat@db.example.net:5432/backendchat?sslmode=verify-full"
REDIS = "rediss://backendchat@cache.example.net:6380/0"
DSN_LINE, REDIS_LINE = 15, 18


def _validate(tmp_path: Path, dsn: str = DSN, url: str = REDIS) -> tuple[int, str]:
    text = preset_path("external-db").read_text()
    assert DSN in text
    assert REDIS in text
    path = tmp_path / "p.yaml"
    path.write_text(text.replace(DSN, f"'{dsn}'").replace(REDIS, f"'{url}'")
                    .replace("192.0.2.10", "10.0.0.5"))
    result = CliRunner().invoke(main, ["validate", str(path)])
    return result.exit_code, result.output.removeprefix("error: ").replace(
        str(path), "P").strip()


def test_the_preset_urls_are_valid(tmp_path: Path) -> None:
    assert _validate(tmp_path)[0] == 0


@pytest.mark.parametrize(("query", "message"), [
    ("sslmode=verify-full&sslmode=disable",
     "the parameter sslmode is given 2 times, and the client would use the last one "
     "(give it once)\nP:15: database.dsn: sslmode=disable does not require TLS with full "
     "verification (use sslmode=verify-full)"),
    ("sslmode=require", "sslmode=require does not require TLS with full verification (use "
     "sslmode=verify-full)"),
    ("sslmode=verify-ca", "sslmode=verify-ca does not require TLS with full verification "
     "(use sslmode=verify-full)"),
    ("sslmode=verify-full&password=hunter2",
     "the parameter password= overrides what the URL says (remove it; that belongs in the "
     "encrypted secrets file as database_password)"),
    ("sslmode=verify-full&host=evil.example",
     "the parameter host= overrides what the URL says (remove it; that belongs in the URL's "
     "host, port, user and path)"),
    ("sslmode=verify-full&hostaddr=198.51.100.7",
     "the parameter hostaddr= overrides what the URL says (remove it; that belongs in the "
     "URL's host, port, user and path)"),
    ("sslmode=verify-full&sslcompression=1",
     "unknown parameter sslcompression (remove it; allowed: sslmode, sslrootcert, "
     "connect_timeout, application_name, target_session_attrs)"),
])
def test_dsn_query_is_read_as_libpq_reads_it(tmp_path: Path, query: str,
                                             message: str) -> None:
    dsn = DSN.replace("sslmode=verify-full", query)
    assert _validate(tmp_path, dsn=dsn) == (2, f"P:{DSN_LINE}: database.dsn: {message}")


def test_a_dsn_with_an_empty_password_is_refused(tmp_path: Path) -> None:
    dsn = DSN.replace("backendchat@", "backendchat:@")
    assert _validate(tmp_path, dsn=dsn) == (
        2, f"P:{DSN_LINE}: database.dsn: the DSN contains a password (remove it; selfhost "
           "keeps it in the encrypted secrets file as database_password)")


@pytest.mark.parametrize(("suffix", "message"), [
    ("?ssl_cert_reqs=none", "ssl_cert_reqs=none does not require TLS with full "
     "verification (use ssl_cert_reqs=required)"),
    ("?ssl_check_hostname=false", "ssl_check_hostname=false does not require TLS with full "
     "verification (use ssl_check_hostname=true)"),
    ("?password=hunter2", "the parameter password= overrides what the URL says (remove it; "
     "that belongs in the encrypted secrets file as cache_password)"),
    ("?db=1&db=2", "the parameter db is given 2 times, and the client would use the last "
     "one (give it once)\nP:18: cache.url: the parameter db= overrides what the URL says "
     "(remove it; that belongs in the URL's host, port, user and path)"),
    ("?retry_on_timeout=yes", "unknown parameter retry_on_timeout (remove it; allowed: "
     "ssl_cert_reqs, ssl_check_hostname, ssl_ca_certs, socket_timeout, "
     "socket_connect_timeout, health_check_interval)"),
])
def test_redis_query_is_read_as_redis_py_reads_it(tmp_path: Path, suffix: str,
                                                  message: str) -> None:
    assert _validate(tmp_path, url=REDIS + suffix) == (
        2, f"P:{REDIS_LINE}: cache.url: {message}")


def test_smtp_user_names_are_url_encoded_in_the_built_url(tmp_path: Path,
                                                          key_file: Path) -> None:
    path = tmp_path / "acme.yaml"
    result = CliRunner().invoke(main, [
        "init", "--output", str(path), "--key-file", str(key_file), "--preset", "air-gapped",
        "--set", "hosts.app.0.address=192.0.2.10", "--set", "email.provider=smtp",
        "--set", "email.smtp_host=relay.acme.example",
        "--set", "email.smtp_username=mail@acme.example",
        "--set", "email.from_address=chat@acme.example"],
        env={"SELFHOST_EMAIL_PASSWORD": "relay-password"})
    assert result.exit_code == 0, result.output
    shown = CliRunner().invoke(main, ["plan", str(path), "--json"])
    env = {e["key"]: e["value"] for e in json.loads(shown.output)["app"]["env"]}
    assert env["SMTP_URL"] == "smtp://mail%40acme.example@relay.acme.example:587"
