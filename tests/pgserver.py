"""A real PostgreSQL server for the tests, started in a temporary directory.

``initdb`` and ``pg_ctl`` come from Debian's ``postgresql`` package (not on PATH there: they
live under /usr/lib/postgresql/<version>/bin). PostgreSQL refuses to run as root, so as root
the server runs as the unprivileged user ``nobody`` in a directory it owns. It listens on
127.0.0.1 only, on a free port, with password (SCRAM) authentication, and is stopped and
deleted at the end. Where it cannot start, ``PgServer.start`` raises ``PgUnavailable`` with
the reason, and the fixtures skip saying so.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_USER = "cvsyncd"
PG_PASSWORD = "pg-test-password-7c1e"  # a throwaway server's password, for the tests only


class PgUnavailable(Exception):
    """PostgreSQL cannot run here (the reason is the message)."""


def pg_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One throwaway PostgreSQL cluster; ``database()`` makes a fresh empty database."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cvsyncd-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.bindir = pg_bindir()
        self._databases = 0
        self._as: list[str] = []
        self.extra_options = ""  # more server settings (the bench logs every statement)

    # -- running the server --------------------------------------------------------------

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        assert self.bindir is not None
        return subprocess.run(
            [*self._as, str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.dir,
        )

    def start(self) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise PgUnavailable(
                "psycopg is not installed (pip install 'cvsyncd[postgres]')"
            ) from None
        if self.bindir is None:
            raise PgUnavailable("PostgreSQL is not installed (apt-get install postgresql)")
        if os.geteuid() == 0:  # initdb refuses root: run the server as nobody
            try:
                user = pwd.getpwnam("nobody")
            except KeyError:
                raise PgUnavailable("running as root and there is no user nobody") from None
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}"]
            self._as += ["--clear-groups", "--"]
        pwfile = self.dir / "pw"
        pwfile.write_text(PG_PASSWORD + "\n")
        if self._as:
            os.chown(pwfile, pwd.getpwnam("nobody").pw_uid, -1)
        init = self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            PG_USER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        if init.returncode != 0:
            raise PgUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
        self.start_server()

    def start_server(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories=''"
            " -c fsync=off -c max_connections=60 -c shared_buffers=16MB"
        ) + (" " + self.extra_options if self.extra_options else "")
        started = self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "log"),
            "-o",
            options,
            "-w",
            "start",
        )
        if started.returncode != 0:
            log = (self.dir / "log").read_text(errors="replace")[-800:] if self.log_exists() else ""
            raise PgUnavailable(f"pg_ctl start failed: {started.stderr.strip()} {log}")

    def log_exists(self) -> bool:
        return (self.dir / "log").exists()

    def stop_server(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def close(self) -> None:
        if self.data.exists():
            self.stop_server("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- databases -----------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """The URL of a database, without the password (give it by file or environment)."""
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """Create a fresh empty database and return its name."""
        import psycopg

        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def password_file(self, where: Path) -> Path:
        path = where / "pg-password"
        path.write_text(PG_PASSWORD + "\n")
        path.chmod(0o600)
        return path
