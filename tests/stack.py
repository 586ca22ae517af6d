"""The tracking stack, natively: a real PostgreSQL and a real ``mlflow server`` for stack tests.

A pytest plugin (test modules name it in ``pytest_plugins``, so one stack serves the session):
session fixtures start one PostgreSQL (databases ``mlflow``, ``optuna``, ``mlflow_auth`` made by
docker/postgres-init.sh, as in compose) and one MLflow server run through docker/mlflow-server.sh,
the script the compose ``mlflow`` service runs. Helpers read what arrived over MLflow's REST API and stop/start the
server for outage tests. No Docker needed; PostgreSQL comes from ``apt-get install postgresql``.
"""

from __future__ import annotations

import multiprocessing
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
MLFLOW_SERVER_SCRIPT = REPO_ROOT / "docker" / "mlflow-server.sh"
POSTGRES_INIT_SCRIPT = REPO_ROOT / "docker" / "postgres-init.sh"

PG_USER = "aplab"
PG_PASSWORD = "aplab-test-pw"  # throwaway cluster on 127.0.0.1, deleted at session end
MLFLOW_DB = "mlflow"
OPTUNA_DB = "optuna"
SERVER_START_TIMEOUT_S = 120.0


# --------------------------------------------------------------------------- small utilities


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def find_postgres_bin() -> Path:
    """The directory holding initdb/pg_ctl/psql: $APLAB_PG_BIN, /usr/lib/postgresql/<newest>/bin, PATH.

    Fails the test with the install command when PostgreSQL is missing.
    """
    candidates: list[Path] = []
    if os.environ.get("APLAB_PG_BIN"):
        candidates.append(Path(os.environ["APLAB_PG_BIN"]))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1,
        reverse=True,
    )
    candidates.extend(versions)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for c in candidates:
        if all((c / tool).exists() for tool in ("initdb", "pg_ctl", "psql")):
            return c
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl, psql) not found in $APLAB_PG_BIN, "
        "/usr/lib/postgresql/*/bin or PATH. Install them with "
        "`apt-get update && apt-get install -y postgresql`, or deselect with -m 'not stack'.",
        pytrace=False,
    )


def runuser() -> str:
    """util-linux's runuser: on PATH, else in /usr/sbin or /sbin (a non-login root shell's PATH may lack them)."""
    found = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if found is None:
        raise RuntimeError("runuser (util-linux) not found on PATH, /usr/sbin or /sbin: install util-linux")
    return found


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "<no log>"


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class PostgresInstance:
    """A throwaway PostgreSQL cluster on 127.0.0.1:port, socket and data inside ``root``.

    As root, initdb/pg_ctl run as the ``postgres`` OS user (PostgreSQL refuses root), so the
    cluster directory is owned by postgres. The superuser ``aplab`` has a password (scram over
    TCP), like POSTGRES_USER in the compose stack; the local socket trusts.
    """

    bin_dir: Path
    root: Path
    port: int
    user: str = PG_USER
    password: str = PG_PASSWORD

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        """SQLAlchemy URL of one database over TCP with the password (what apps use)."""
        return f"{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    @property
    def mlflow_backend_uri(self) -> str:
        return self.url(MLFLOW_DB)

    @property
    def optuna_storage(self) -> str:
        return self.url(OPTUNA_DB)

    def _as_owner(self) -> list[str]:
        return [runuser(), "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, args: list[str], env: dict[str, str] | None = None) -> None:
        proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n"
                f"postgres log:\n{_tail(self.log_path)}"
            )

    def _psql_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PGHOST=str(self.socket_dir),
            PGPORT=str(self.port),
            PATH=f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}",
        )
        env.pop("PGPASSWORD", None)
        return env

    def start(self) -> None:
        """initdb, start on 127.0.0.1:port, create MLflow's database, then run the compose init script."""
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail(
                    "running as root but there is no 'postgres' OS user to own the cluster; "
                    "`apt-get install -y postgresql` creates it.",
                    pytrace=False,
                )
        self.root.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        os.chmod(self.root, 0o700)
        self._run(
            self._as_owner()
            + [
                str(self.bin_dir / "initdb"),
                "-D", str(self.data_dir),
                "-U", self.user,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--wal-segsize=1",  # 1 MB WAL files: a small cluster, quick to delete
            ]
        )
        pwfile.unlink()
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.socket_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c min_wal_size=2MB -c max_wal_size=32MB"
        )
        self._run(
            self._as_owner()
            + [
                str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path),
                "-o", options, "-w", "-t", "60", "start",
            ]
        )
        env = self._psql_env()
        self._run(
            [str(self.bin_dir / "psql"), "-v", "ON_ERROR_STOP=1", "-U", self.user, "-d", "postgres",
             "-c", f'CREATE DATABASE "{MLFLOW_DB}" OWNER "{self.user}"'],
            env=env,
        )
        # The same script the postgres image runs from /docker-entrypoint-initdb.d.
        env.update(POSTGRES_USER=self.user, POSTGRES_DB=MLFLOW_DB)
        self._run(["sh", str(POSTGRES_INIT_SCRIPT)], env=env)

    def query(self, database: str, sql: str) -> list[str]:
        """Rows of one SQL query as text lines (psql over the socket), for checks beside the apps."""
        out = subprocess.run(
            [str(self.bin_dir / "psql"), "-v", "ON_ERROR_STOP=1", "-U", self.user, "-d", database,
             "-At", "-c", sql],
            capture_output=True, text=True, env=self._psql_env(), timeout=30,
        )
        if out.returncode != 0:
            raise RuntimeError(f"psql on {database} failed: {out.stderr}")
        return out.stdout.splitlines()

    def stop(self) -> None:
        """pg_ctl stop -m fast (no-op when the cluster never started)."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run(
                self._as_owner()
                + [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]
            )


# --------------------------------------------------------------------------- MLflow server


def mlflow_executable() -> str:
    """The mlflow CLI of the Python running the tests (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "mlflow"
    return str(beside) if beside.exists() else (shutil.which("mlflow") or "mlflow")


@dataclass
class MlflowServer:
    """``mlflow server`` started through docker/mlflow-server.sh; stop/start keep the same port.

    The process runs in its own session, so stop() signals exactly the process group it
    created (the mlflow CLI and its uvicorn workers) and nothing else.
    """

    backend_uri: str
    artifacts_dir: Path
    port: int
    log_path: Path
    workers: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def env(self) -> dict[str, str]:
        """The environment the shared script reads (same variable names as compose sets)."""
        # Hermetic: no MLFLOW_* from the caller's shell (the CLI reads many of them as defaults).
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env.update(
            MLFLOW_BIN=mlflow_executable(),
            MLFLOW_BACKEND_STORE_URI=self.backend_uri,
            MLFLOW_ARTIFACTS_DESTINATION=str(self.artifacts_dir),
            MLFLOW_HOST="127.0.0.1",
            MLFLOW_PORT=str(self.port),
            MLFLOW_WORKERS=str(self.workers),
            MLFLOW_DISABLE_TELEMETRY="true",
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = SERVER_START_TIMEOUT_S) -> None:
        """Run the shared script and wait (bounded) until /health answers OK."""
        if self.running:
            return
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["sh", str(MLFLOW_SERVER_SCRIPT)],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with {self.proc.returncode}:\n{_tail(self.log_path)}"
                )
            if self.healthy():
                return
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"mlflow server not healthy after {timeout:.0f}s:\n{_tail(self.log_path)}")

    def healthy(self) -> bool:
        """Whether GET /health answers 200 right now."""
        try:
            return requests.get(f"{self.url}/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the server's process group; SIGKILL what is left after ``timeout``; port freed."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session=True: the group id is the child's pid
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self.proc.poll() is None or port_open(self.port)):
            time.sleep(0.2)
        if self.proc.poll() is None or port_open(self.port):
            _signal_group(pgid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and port_open(self.port):
                time.sleep(0.2)
        self.proc = None

    def restart(self) -> None:
        """stop() then start() on the same port and stores (data survives: it lives in PostgreSQL)."""
        self.stop()
        self.start()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


# --------------------------------------------------------------------------- REST client


class MlflowRest:
    """Reads what reached the server through MLflow's REST API (never through the client library)."""

    def __init__(self, base_url: str, auth: tuple[str, str] | None = None, timeout: float = 15.0):
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.auth = auth
        self.timeout = timeout

    def _get(self, route: str, params: dict[str, Any]) -> dict[str, Any]:
        r = self.session.get(f"{self.base_url}{route}", params=params, timeout=self.timeout)
        r.raise_for_status()
        return r.json()

    def _post(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.session.post(f"{self.base_url}{route}", json=body, timeout=self.timeout)
        r.raise_for_status()
        return r.json()

    def _pages(self, send, route: str, request: dict[str, Any], key: str) -> list[dict[str, Any]]:
        """Every item under ``key`` of a paginated REST call, following next_page_token."""
        out: list[dict[str, Any]] = []
        token = None
        while True:
            page = send(route, {**request, "page_token": token} if token else request)
            out.extend(page.get(key, []))
            token = page.get("next_page_token")
            if not token:
                return out

    def search_experiments(self, filter_string: str = "") -> list[dict[str, Any]]:
        """All active experiments matching ``filter_string`` (paginated)."""
        return self._pages(self._post, "/api/2.0/mlflow/experiments/search",
                           {"max_results": 1000, "filter": filter_string}, "experiments")

    def experiment_by_name(self, name: str) -> dict[str, Any]:
        return self._get("/api/2.0/mlflow/experiments/get-by-name", {"experiment_name": name})["experiment"]

    def search_runs(self, experiment_ids: list[str], filter_string: str = "") -> list[dict[str, Any]]:
        """All runs of the experiments matching ``filter_string`` (paginated)."""
        return self._pages(self._post, "/api/2.0/mlflow/runs/search",
                           {"experiment_ids": experiment_ids, "filter": filter_string, "max_results": 1000}, "runs")

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self._get("/api/2.0/mlflow/runs/get", {"run_id": run_id})["run"]

    def metric_history(self, run_id: str, key: str) -> list[dict[str, Any]]:
        """Every logged value of one metric, sorted by (step, timestamp)."""
        out = self._pages(self._get, "/api/2.0/mlflow/metrics/get-history",
                          {"run_id": run_id, "metric_key": key, "max_results": 25000}, "metrics")
        return sorted(out, key=lambda m: (int(m.get("step", 0)), int(m["timestamp"])))

    def list_artifacts(self, run_id: str, path: str = "") -> list[dict[str, Any]]:
        """One directory level of a run's artifacts: dicts with path, is_dir, file_size."""
        params: dict[str, Any] = {"run_id": run_id}
        if path:
            params["path"] = path
        return self._get("/api/2.0/mlflow/artifacts/list", params).get("files", [])

    def artifact_paths(self, run_id: str, path: str = "") -> list[str]:
        """All artifact file paths of a run, recursively, sorted."""
        out: list[str] = []
        for f in self.list_artifacts(run_id, path):
            if f.get("is_dir"):
                out.extend(self.artifact_paths(run_id, f["path"]))
            else:
                out.append(f["path"])
        return sorted(out)

    def download_artifact(self, run_id: str, path: str) -> bytes:
        """One artifact's bytes through the server's artifact proxy (mlflow-artifacts API)."""
        root = self.get_run(run_id)["info"]["artifact_uri"]
        prefix = "mlflow-artifacts:"
        if not root.startswith(prefix):
            raise ValueError(f"run {run_id} does not use proxied artifacts: {root}")
        rel = root[len(prefix):].lstrip("/")
        if "/" in rel and rel.split("/", 1)[0].count(":"):  # mlflow-artifacts://host:port/...
            rel = rel.split("/", 1)[1]
        r = self.session.get(
            f"{self.base_url}/api/2.0/mlflow-artifacts/artifacts/{rel}/{path}", timeout=self.timeout
        )
        r.raise_for_status()
        return r.content


# --------------------------------------------------------------------------- Optuna helpers


def _quadratic(trial: Any) -> float:
    """A trivial objective: x² for x in [-1, 1]; records the worker's pid as a user attribute."""
    trial.set_user_attr("pid", os.getpid())
    x = trial.suggest_float("x", -1.0, 1.0)
    return x * x


def _optuna_worker(storage: str, study_name: str, n_trials: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=storage)
    study.optimize(_quadratic, n_trials=n_trials)


def run_optuna_workers(storage: str, study_name: str, n_workers: int, trials_per_worker: int) -> list[int]:
    """Run ``n_workers`` separate processes (spawn) on one stored study; return their exit codes."""
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_optuna_worker, args=(storage, study_name, trials_per_worker))
        for _ in range(n_workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
        if p.is_alive():
            p.kill()
            p.join()
    return [int(p.exitcode if p.exitcode is not None else -1) for p in procs]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def stack_dir() -> Iterator[Path]:
    """A temp directory (mode 755 so the postgres user can reach its part), removed at the end."""
    root = Path(tempfile.mkdtemp(prefix="aplab-stack-"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(stack_dir: Path) -> Iterator[PostgresInstance]:
    """A running PostgreSQL with databases mlflow, optuna, mlflow_auth (session-wide)."""
    pg = PostgresInstance(bin_dir=find_postgres_bin(), root=stack_dir / "pg", port=free_port())
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def mlflow_server(postgres: PostgresInstance, stack_dir: Path) -> Iterator[MlflowServer]:
    """A running MLflow server on PostgreSQL with proxied artifacts (session-wide).

    A test that stops it must start it again (``restart()``) before it ends.
    """
    server = MlflowServer(
        backend_uri=postgres.mlflow_backend_uri,
        artifacts_dir=stack_dir / "mlartifacts",
        port=free_port(),
        log_path=stack_dir / "mlflow-server.log",
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_rest(mlflow_server: MlflowServer) -> MlflowRest:
    """REST reader bound to the session's MLflow server."""
    return MlflowRest(mlflow_server.url)


@pytest.fixture(scope="session")
def optuna_storage(postgres: PostgresInstance) -> str:
    """Optuna RDB storage URL on the session's PostgreSQL (``postgresql+psycopg://…/optuna``)."""
    return postgres.optuna_storage
