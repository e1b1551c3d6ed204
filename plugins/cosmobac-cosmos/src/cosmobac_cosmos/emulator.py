"""The local Cosmos DB-compatible server: ``@vercel/cosmosdb-server`` (npm) started by a small Node
launcher on loopback, with connections kept alive.

* :func:`ensure_installed` installs the pinned server (``package.json`` + ``package-lock.json`` in
  this package's ``server/`` folder) with ``npm ci`` on first use, into a cache directory — or uses
  the package folder itself where ``npm ci`` already ran (a development checkout);
* :func:`start_server` runs ``node launcher.js`` on ``127.0.0.1`` (port 0: a free one) and returns
  once it listens; stop it by its pid (:meth:`LocalServer.stop`);
* :func:`start_background` / :func:`stop_background` / :func:`background_status` are what
  ``cosmobac emulator start|stop|status`` use: one server per user, recorded in a state file.

The server keeps data in memory only (a restart empties it), accepts any key, and answers plain
HTTP. See the project's notes on what it does and does not do like real Cosmos DB.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Final

import attrs

from cosmobac.errors import CosmobacError

__all__ = [
    "LOCAL_KEY",
    "SERVER_DIR",
    "EmulatorError",
    "LocalServer",
    "background_status",
    "drop",
    "ensure_installed",
    "node_available",
    "start_background",
    "start_server",
    "stop_background",
]

SERVER_DIR: Final = Path(__file__).resolve().parent / "server"
SERVER_FILES: Final = ("package.json", "package-lock.json", "launcher.js")
PACKAGE: Final = "@vercel/cosmosdb-server"
LOCAL_KEY: Final = base64.b64encode(b"cosmobac local server: any key works").decode()
"""A key for the local server (it accepts any base64 text; real accounts never use this)."""
ENV_CACHE: Final = "COSMOBAC_CACHE_DIR"
DEFAULT_PORT: Final = 8081
_STATE: Final = "emulator.json"


class EmulatorError(CosmobacError):
    """The local server cannot be installed or started; the message says what to do."""


def node_available() -> bool:
    """True when ``node`` (Node.js ≥ 20) and ``npm`` are on PATH."""
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        return False
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    try:
        return int(out.stdout.strip().lstrip("v").split(".")[0]) >= 20
    except ValueError:
        return False


def cache_dir() -> Path:
    """Where cosmobac keeps the installed server and the background server's state:
    ``$COSMOBAC_CACHE_DIR``, else ``$XDG_CACHE_HOME/cosmobac``, else ``~/.cache/cosmobac``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cosmobac"


def _pinned_version() -> str:
    data = json.loads((SERVER_DIR / "package.json").read_text(encoding="utf-8"))
    return str(data["dependencies"][PACKAGE])


def _lock_digest() -> str:
    return hashlib.sha256((SERVER_DIR / "package-lock.json").read_bytes()).hexdigest()[:12]


def is_installed(directory: Path) -> bool:
    """True when ``directory`` holds the launcher and the pinned server package."""
    manifest = directory / "node_modules" / PACKAGE / "package.json"
    if not (directory / "launcher.js").is_file() or not manifest.is_file():
        return False
    try:
        version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return False
    return bool(version == _pinned_version())


def install_dir() -> Path:
    """The package's own ``server/`` folder when ``npm ci`` already ran there (a development
    checkout); otherwise a cache directory named after the lock file's digest."""
    if is_installed(SERVER_DIR):
        return SERVER_DIR
    return cache_dir() / f"cosmosdb-server-{_pinned_version()}-{_lock_digest()}"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_installed(
    directory: Path | None = None, *, echo: Callable[[str], Any] | None = None
) -> Path:
    """The directory of an installed server, running ``npm ci`` there first if needed.

    ``directory`` defaults to :func:`install_dir`. Another process installing at the same time is
    waited for (a file lock)."""
    directory = Path(directory) if directory is not None else install_dir()
    if is_installed(directory) and _same_files(directory):
        return directory
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise EmulatorError(
            "Node.js ≥ 20 and npm are needed for the local Cosmos DB server; install them "
            "(e.g. apt-get install nodejs npm) and try again"
        )
    with _file_lock(directory.parent / f".{directory.name}.lock"):
        directory.mkdir(parents=True, exist_ok=True)
        if directory.resolve() != SERVER_DIR:
            for name in SERVER_FILES:
                shutil.copyfile(SERVER_DIR / name, directory / name)
        if is_installed(directory):
            return directory
        if echo is not None:
            echo(f"installing {PACKAGE} {_pinned_version()} with npm into {directory} (first use)")
        try:
            result = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=directory,
                capture_output=True,
                text=True,
                timeout=900,
            )
        except subprocess.TimeoutExpired:
            raise EmulatorError(f"npm ci in {directory} did not finish in 15 minutes") from None
        if result.returncode != 0 or not is_installed(directory):
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
            raise EmulatorError(f"npm ci in {directory} failed (exit {result.returncode}):\n{tail}")
    return directory


def _same_files(directory: Path) -> bool:
    if directory.resolve() == SERVER_DIR:
        return True
    return all(
        (directory / name).is_file()
        and (directory / name).read_bytes() == (SERVER_DIR / name).read_bytes()
        for name in SERVER_FILES
    )


@attrs.frozen
class LocalServer:
    """A running local server: its process id and where it listens."""

    pid: int
    host: str
    port: int
    protocol: str = "http"
    log: str | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.protocol}://{self.host}:{self.port}/"

    def alive(self) -> bool:
        return _is_our_server(self.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; only if the pid is still the launcher."""
        if not _is_our_server(self.pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _pid_running(self.pid):
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def as_json(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "endpoint": self.endpoint}


def _pid_running(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def _is_our_server(pid: int) -> bool:
    if not _pid_running(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the state file
    return any(part.endswith(b"launcher.js") for part in cmdline)


def _launch_args(
    directory: Path, host: str, port: int, cert: Path | None, key: Path | None
) -> list[str]:
    node = shutil.which("node")
    if node is None:
        raise EmulatorError("Node.js is not on PATH; install Node.js ≥ 20")
    args = [node, str(directory / "launcher.js"), "--host", host, "--port", str(port)]
    if cert is not None and key is not None:
        args += ["--cert", str(cert), "--key", str(key)]
    return args


def _ready_line(stream: IO[str], proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if selector.select(timeout=0.1):
                line = stream.readline()
                if line:
                    return dict(json.loads(line))
            if proc.poll() is not None:
                break
    finally:
        selector.close()
    raise EmulatorError("the local Cosmos DB server did not start")


def start_server(
    directory: Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    cert: Path | None = None,
    key: Path | None = None,
    timeout: float = 30.0,
) -> tuple[subprocess.Popen[str], LocalServer]:
    """Start a server that lives as long as the caller keeps it (stop it with
    :meth:`LocalServer.stop` or ``proc.terminate()``). ``port=0`` takes a free port. With ``cert``
    and ``key`` (PEM files) it answers HTTPS."""
    directory = ensure_installed(directory)
    proc = subprocess.Popen(
        _launch_args(directory, host, port, cert, key),
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = _ready_line(proc.stdout, proc, timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, LocalServer(proc.pid, str(ready["host"]), int(ready["port"]), ready["protocol"])


# -- the background server of `cosmobac emulator` ------------------------------------------------
def _state_path() -> Path:
    return cache_dir() / _STATE


def background_status() -> LocalServer | None:
    """The background server, if one is running."""
    path = _state_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        server = LocalServer(
            int(data["pid"]), data["host"], int(data["port"]), data["protocol"], data.get("log")
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not server.alive():
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return server


def start_background(
    *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, echo: Callable[[str], Any] | None = None
) -> tuple[LocalServer, bool]:
    """Start the background server (or find the one running); returns it and whether it was
    started now."""
    running = background_status()
    if running is not None:
        return running, False
    directory = ensure_installed(echo=echo)
    log_path = cache_dir() / "emulator.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            _launch_args(directory, host, port, None, None),
            cwd=directory,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the command that started it
        )
    deadline = time.monotonic() + 30
    ready: dict[str, Any] | None = None
    while time.monotonic() < deadline and ready is None:
        for line in log_path.read_text(encoding="utf-8").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    ready = json.loads(line)
        if ready is None:
            if proc.poll() is not None:
                text = log_path.read_text(encoding="utf-8")
                hint = " (port in use? try --port 0)" if "EADDRINUSE" in text else ""
                raise EmulatorError(
                    f"the local Cosmos DB server exited at start{hint}; see {log_path}"
                )
            time.sleep(0.05)
    if ready is None:
        proc.kill()
        raise EmulatorError(f"the local Cosmos DB server did not start in 30 s; see {log_path}")
    server = LocalServer(
        proc.pid, str(ready["host"]), int(ready["port"]), ready["protocol"], str(log_path)
    )
    _state_path().write_text(json.dumps(attrs.asdict(server)), encoding="utf-8")
    return server, True


def stop_background() -> LocalServer | None:
    """Stop the background server; returns what was stopped (``None`` if none was running)."""
    server = background_status()
    if server is None:
        return None
    server.stop()
    with contextlib.suppress(OSError):
        _state_path().unlink()
    return server


def drop(endpoint: str, database: str, container: str | None = None, key: str = LOCAL_KEY) -> bool:
    """Delete a database (or one container of it) on a local server; False if it did not exist.
    For tests, benchmarks and the demo, which clean up their own data."""
    from azure.cosmos import CosmosClient
    from azure.cosmos.exceptions import CosmosResourceNotFoundError

    from .connection import wait_for_background_refresh

    client = CosmosClient(
        endpoint, key, enable_endpoint_discovery=False, connection_timeout=5, read_timeout=30
    )
    try:
        if container is None:
            client.delete_database(database)
        else:
            client.get_database_client(database).delete_container(container)
        return True
    except CosmosResourceNotFoundError:
        return False
    finally:
        wait_for_background_refresh(client, timeout=6)
        client.__exit__(None, None, None)


def reachable(endpoint: str, timeout: float = 2.0) -> bool:
    """True when the server answers its account read (``GET /``)."""
    try:
        with urllib.request.urlopen(endpoint, timeout=timeout) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as exc:
        return exc.code in (401, 403)
    except OSError as exc:
        if getattr(exc, "errno", None) == errno.ECONNREFUSED:
            return False
        return False
