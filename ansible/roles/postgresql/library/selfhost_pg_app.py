#!/usr/bin/python3
"""Ansible module: the app's PostgreSQL role (password stored as SCRAM) and database.

The SCRAM-SHA-256 verifier is computed here, so the password itself never
reaches the server, its logs or a process list; an unchanged password is
detected by checking it against the stored verifier, which keeps reruns
unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import pwd
import secrets
from collections.abc import Callable
from typing import Any

from ansible.module_utils.basic import AnsibleModule

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:  # reported by main() as a missing package, the Ansible way
    psycopg2 = None

DOCUMENTATION = r"""
module: selfhost_pg_app
short_description: Ensure the app's PostgreSQL login role and database
description:
  - Connects over the local socket as the cluster's OS user (peer authentication).
  - The role gets LOGIN and the password as a SCRAM-SHA-256 verifier.
  - The database is owned by the role.
options:
  user: {type: str, required: true, description: The login role.}
  password: {type: str, required: true, no_log: true, description: The role's password.}
  database: {type: str, required: true, description: The database, owned by the role.}
  port: {type: int, default: 5432, description: The cluster's port.}
  socket_dir: {type: path, default: /var/run/postgresql, description: The socket directory.}
  os_user: {type: str, default: postgres, description: OS user the module connects as.}
"""

SCRAM_ITERATIONS = 4096


def scram_verifier(password: str, salt: bytes, iterations: int) -> str:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
            f"${b64(stored_key).decode()}:{b64(server_key).decode()}")


def matches(password: str, stored: str | None) -> bool:
    """Whether ``stored`` (pg_authid.rolpassword) is a SCRAM verifier of ``password``."""
    if not stored or not stored.startswith("SCRAM-SHA-256$"):
        return False
    try:
        head = stored.split("$")[1]
        iterations, salt = head.split(":")
        expected = scram_verifier(password, base64.b64decode(salt), int(iterations))
    except (IndexError, ValueError):
        return False
    return hmac.compare_digest(expected, stored)


def as_user(os_user: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``work()`` run as ``os_user`` in a child process.

    Peer authentication maps the socket's OS user to the database role, so the
    connection must come from that user; a child drops to it, which works with
    any become method of the caller and leaves this process (and the module's
    files, readable only by root) alone.
    """
    if os.geteuid() != 0:
        return work()
    entry = pwd.getpwnam(os_user)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            result = work()
        except Exception as exc:  # every failure goes back to the parent as a message
            result = {"failed": True, "msg": f"{type(exc).__name__}: {exc}"}
        with os.fdopen(write_end, "w") as pipe:
            json.dump(result, pipe)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data) if data else {"failed": True, "msg": "the worker process died"}


def ensure(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    try:
        conn = psycopg2.connect(dbname="postgres", host=params["socket_dir"],
                                port=params["port"])
    except psycopg2.Error as exc:
        return {"failed": True,
                "msg": f"cannot connect to PostgreSQL over {params['socket_dir']}: {exc}"}
    conn.autocommit = True
    changes: list[str] = []
    role = sql.Identifier(params["user"])
    password = params["password"]
    with conn.cursor() as cur:
        cur.execute("SELECT rolpassword, rolcanlogin FROM pg_authid WHERE rolname = %s",
                    (params["user"],))
        row = cur.fetchone()
        verifier = scram_verifier(password, secrets.token_bytes(16), SCRAM_ITERATIONS)
        if row is None:
            changes.append("role created")
            if not check_mode:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(role), (verifier,))
        else:
            if not row[1]:
                changes.append("login enabled")
                if not check_mode:
                    cur.execute(sql.SQL("ALTER ROLE {} LOGIN").format(role))
            if not matches(password, row[0]):
                changes.append("password set")
                if not check_mode:
                    cur.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(role), (verifier,))
        cur.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                    (params["database"],))
        db = cur.fetchone()
        database = sql.Identifier(params["database"])
        if db is None:
            changes.append("database created")
            if not check_mode:
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, role))
        elif db[0] != params["user"]:
            changes.append("database owner set")
            if not check_mode:
                cur.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(database, role))
    conn.close()
    return {"changed": bool(changes), "changes": changes}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "user": {"type": "str", "required": True},
            "password": {"type": "str", "required": True, "no_log": True},
            "database": {"type": "str", "required": True},
            "port": {"type": "int", "default": 5432},
            "socket_dir": {"type": "path", "default": "/var/run/postgresql"},
            "os_user": {"type": "str", "default": "postgres"},
        },
        supports_check_mode=True,
    )
    if psycopg2 is None:
        module.fail_json(msg="python3-psycopg2 is not installed on the database host")
    params = dict(module.params)
    result = as_user(params["os_user"], lambda: ensure(params, module.check_mode))
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
