"""A throwaway PostgreSQL server for the tests.

`start_postgres()` returns a running server: either the one named by `$TEST_POSTGRES_URL`
(left alone when stopped), or a fresh cluster made with Debian's PostgreSQL binaries in a
temporary folder: `initdb -A trust`, listening on 127.0.0.1 on a free port, its unix socket
inside the folder, durability switched off (fsync, synchronous_commit, full_page_writes)
because the data is thrown away. As root, the server runs as the `postgres` user through
`runuser` (PostgreSQL refuses to run as root). `stop()` stops it with `pg_ctl stop`, falls
back to signalling the postmaster's PID, and removes the folder.

`scripts/ensure-postgres` installs the binaries when they are missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER = "postgres"
_SERVER_OPTIONS = (
    "-c listen_addresses=127.0.0.1 -p {port} -k {socket_dir} "
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
)


@dataclass
class PostgresServer:
    """A running server: `url` points at its `postgres` database as a superuser."""

    url: str
    data_dir: Path | None = None
    bin_dir: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Stop a server this module started (a `$TEST_POSTGRES_URL` server is left alone)."""
        if self._stopped or self.data_dir is None or self.bin_dir is None:
            return
        self._stopped = True
        root = self.data_dir.parent
        try:
            _run_as_server_user(
                [
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "30",
                    "stop",
                ],
                check=False,
            )
            _kill_leftover_postmaster(self.data_dir)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def find_bin_dir() -> Path | None:
    """The newest `/usr/lib/postgresql/<v>/bin` holding `initdb`, else the one on the PATH."""
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if candidates:
        newest = max(candidates, key=lambda p: int(Path(p).parts[-3].split(".")[0]))
        return Path(newest).parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def start_postgres() -> PostgresServer:
    """Start a throwaway server (or use `$TEST_POSTGRES_URL`); the caller must `stop()` it."""
    external = os.environ.get("TEST_POSTGRES_URL")
    if external:
        return PostgresServer(url=external)
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise RuntimeError(
            "PostgreSQL server binaries (initdb) not found: run scripts/ensure-postgres "
            "or set TEST_POSTGRES_URL"
        )
    root = Path(tempfile.mkdtemp(prefix="pgtest-"))
    try:
        _chown_to_server_user(root)
        data_dir = root / "data"
        _run_as_server_user(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )
        port = _start_on_free_port(bin_dir, data_dir, root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    url = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
    return PostgresServer(url=url, data_dir=data_dir, bin_dir=bin_dir)


def _start_on_free_port(bin_dir: Path, data_dir: Path, root: Path) -> int:
    """Start the postmaster; a port taken between choosing and binding gets another try."""
    last_error = ""
    for _attempt in range(3):
        port = _free_port()
        options = _SERVER_OPTIONS.format(port=port, socket_dir=root)
        done = _run_as_server_user(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data_dir),
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ],
            check=False,
        )
        if done.returncode == 0:
            return port
        last_error = _tail(root / "server.log") or done.stderr
    raise RuntimeError(f"PostgreSQL did not start: {last_error}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _is_root() -> bool:
    return os.geteuid() == 0


def _chown_to_server_user(path: Path) -> None:
    if _is_root():
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(
                "no 'postgres' user to run the test server as (root may not run it): "
                "install PostgreSQL with scripts/ensure-postgres"
            ) from None
        os.chown(path, user.pw_uid, user.pw_gid)


def _run_as_server_user(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
    command = ["runuser", "-u", "postgres", "--", *args] if _is_root() else args
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr or done.stdout}")
    return done


def _kill_leftover_postmaster(data_dir: Path) -> None:
    """If `pg_ctl stop` did not work, stop the postmaster by the PID in postmaster.pid."""
    pid_file = data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    if not _is_postgres_process(pid):
        return  # a stale file: the PID may belong to someone else by now
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        for _ in range(50):
            if not pid_file.exists():
                return
            time.sleep(0.1)


def _is_postgres_process(pid: int) -> bool:
    try:
        return b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
