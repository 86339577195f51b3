"""A throwaway PostgreSQL cluster (initdb + pg_ctl on a free port under a temporary directory).

Used when no ``PG_*`` variables point at a server, so tests and the demo never need a manual
database setup. As root the cluster runs as the ``postgres`` user, because pg_ctl refuses root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from totes.settings import DbSettings

SUPERUSER = "totes"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin_dir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) were not found")
    return candidates[0].parent


def _demote() -> tuple[Callable[[], None] | None, int | None, int | None]:
    if os.geteuid() != 0:
        return None, None, None
    pw = pwd.getpwnam("postgres")

    def become_postgres() -> None:
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)

    return become_postgres, pw.pw_uid, pw.pw_gid


@dataclass
class TempCluster:
    """A running throwaway cluster; stop() removes everything it made."""

    root: Path
    port: int
    _bin: Path
    _preexec: Callable[[], None] | None

    def dsn(self, database: str = "postgres") -> DbSettings:
        return DbSettings("127.0.0.1", self.port, SUPERUSER, "", database)

    def stop(self) -> None:
        subprocess.run(
            [str(self._bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"],
            preexec_fn=self._preexec,
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)

    def start(self) -> None:
        subprocess.run(
            [
                str(self._bin / "pg_ctl"),
                "-D",
                str(self.root / "data"),
                "-l",
                str(self.root / "server.log"),
                "-w",
                "-o",
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                "start",
            ],
            preexec_fn=self._preexec,
            capture_output=True,
            check=True,
        )

    def stop_server(self) -> None:
        """Stop the server but keep its data, so a test can see the source go down."""
        subprocess.run(
            [str(self._bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"],
            preexec_fn=self._preexec,
            capture_output=True,
            check=True,
        )


# Members of this role must log in with their password; everyone else is trusted. Tests that
# rotate a password create their login role in it.
PASSWORD_LOGINS = "totes_password_logins"  # noqa: S105 - a role name, not a password
_HBA = f"""local all all trust
host all +{PASSWORD_LOGINS} 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
"""


def start_cluster() -> TempCluster:
    bin_dir = _pg_bin_dir()
    preexec, uid, gid = _demote()
    root = Path(tempfile.mkdtemp(prefix="totes-pg-"))
    if uid is not None and gid is not None:
        os.chown(root, uid, gid)
    subprocess.run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(root / "data"),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        preexec_fn=preexec,
        capture_output=True,
        check=True,
    )
    (root / "data" / "pg_hba.conf").write_text(_HBA)
    cluster = TempCluster(root, free_port(), bin_dir, preexec)
    cluster.start()
    with psycopg.connect(**cluster.dsn().conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(PASSWORD_LOGINS)))
    return cluster


def create_password_login(conn: psycopg.Connection, role: str, password: str) -> None:
    """A login role that must give ``password``: it joins :data:`PASSWORD_LOGINS`, the group
    this server's ``pg_hba.conf`` asks a password of (everyone else logs in by trust)."""
    conn.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
            sql.Identifier(role), sql.Literal(password), sql.Identifier(PASSWORD_LOGINS)
        )
    )


def recreate_database(admin: DbSettings, name: str) -> DbSettings:
    """Drop and create an empty database on the server ``admin`` points at."""
    with psycopg.connect(**admin.conninfo(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return DbSettings(admin.host, admin.port, admin.user, admin.password, name)


@contextlib.contextmanager
def postgres_server(env: Mapping[str, str] | None = None) -> Iterator[DbSettings]:
    """Admin settings of a server for test databases: the configured one, else a throwaway."""
    env = os.environ if env is None else env
    if env.get("PG_HOST"):
        yield DbSettings(
            env["PG_HOST"],
            int(env.get("PG_PORT") or 5432),
            env.get("PG_USER") or "postgres",
            env.get("PG_PASSWORD", ""),
            env.get("TOTES_ADMIN_DATABASE") or "postgres",
        )
        return
    cluster = start_cluster()
    try:
        yield cluster.dsn()
    finally:
        cluster.stop()
