"""docker-compose.yml read as data: the promises of the tracking stack that need no Docker to check."""

from __future__ import annotations

import configparser
import fnmatch
import importlib
import os
import re
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

# The stack plugin, as in tests/test_stack_native.py (importing it starts nothing).
pytest_plugins = ["tests.stack"]

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
SCRIPT = ROOT / "docker" / "mlflow-server.sh"
REQUIRED = {"postgres", "mlflow", "optuna-dashboard", "trainer"}
VAR_REF = re.compile(r"(?<!\$)\$\{(\w+)")  # ${NAME...}; $${NAME} is escaped for the container
ONLY_VAR = re.compile(r"^\$\{\w+(?::?[-?][^}]*)?\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def dockerfile_of(service: dict[str, Any]) -> Path:
    build = service["build"]
    return ROOT / build["context"] / build.get("dockerfile", "Dockerfile")


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Short-syntax volumes as {container target: host source or named volume}."""
    out = {}
    for spec in service.get("volumes", []):
        m = re.match(r"^((?:\$\{[^}]*\}|[^:])+):([^:]+)", spec)
        assert m, spec
        out[m.group(2)] = m.group(1)
    return out


def host_allowed(patterns: str, host: str) -> bool:
    """MLflow's Host check (security_utils.is_allowed_host_header): fnmatch if '*', else equality."""
    return any(fnmatch.fnmatch(host, p) if "*" in p else host == p for p in patterns.split(","))


def test_the_stack_services_are_declared(services):
    assert REQUIRED <= set(services)


def test_postgres_and_mlflow_have_healthchecks(services):
    pg_check = " ".join(services["postgres"]["healthcheck"]["test"])
    assert "pg_isready" in pg_check
    mlflow_check = " ".join(services["mlflow"]["healthcheck"]["test"])
    assert f"127.0.0.1:{env_of(services['mlflow'])['MLFLOW_PORT']}/health" in mlflow_check


def test_every_published_port_binds_localhost_only(services):
    published = 0
    for name, service in services.items():
        for port in service.get("ports", []):
            published += 1
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", (name, port)
            else:
                assert str(port).startswith("127.0.0.1:"), (name, port)
    assert published >= 3  # postgres, mlflow, dashboard at least


def test_no_literal_password_in_compose(services):
    text = COMPOSE.read_text()
    for name, service in services.items():
        for key, value in env_of(service).items():
            if re.search(r"PASSWORD|SECRET|TOKEN", key):
                assert ONLY_VAR.match(value), f"{name}.{key} must be a ${{VAR}} reference"
    # user:password@ of every connection URL: both parts are ${VAR} references, nothing literal.
    userinfos = re.findall(r"://(.*?)@[\w.-]+:\d+/", text)
    assert len(userinfos) >= 4, "expected the stack's URLs to carry credentials from .env"
    for userinfo in userinfos:
        assert re.sub(r"\$\{[^}]*\}", "", userinfo) == ":", userinfo


def test_env_file_is_ignored_and_every_variable_is_documented():
    ignored = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert ".env" in ignored
    documented = set(re.findall(r"^(\w+)=", (ROOT / ".env.example").read_text(), re.M))
    used = set(VAR_REF.findall(COMPOSE.read_text()))
    assert used <= documented, f"document in .env.example: {sorted(used - documented)}"


def test_mlflow_service_runs_the_script_the_native_harness_runs(services):
    stack = importlib.import_module(pytest_plugins[0])
    assert stack.MLFLOW_SERVER_SCRIPT == SCRIPT
    script_in_image = None
    for line in dockerfile_of(services["mlflow"]).read_text().splitlines():
        if m := re.match(r"COPY\s+(\S+)\s+(\S+)", line):
            if (ROOT / services["mlflow"]["build"]["context"] / m.group(1)).resolve() == SCRIPT:
                script_in_image = m.group(2)
    assert script_in_image is not None
    # Variables the script refuses to run without, set by compose and by the harness alike.
    required = set(re.findall(r'^: "\$\{(\w+):\?', SCRIPT.read_text(), re.M))
    assert required == {"MLFLOW_BACKEND_STORE_URI", "MLFLOW_ARTIFACTS_DESTINATION"}
    harness_env = stack.MlflowServer("postgresql+psycopg://u:p@h/db", Path("/a"), 1, Path("/l")).env()
    assert required <= set(harness_env)
    for name in ("mlflow", "mlflow-auth"):
        assert services[name]["entrypoint"] == [script_in_image]
        assert required <= set(env_of(services[name]))


def test_mlflow_stores_are_postgres_and_a_named_volume(compose, services):
    env = env_of(services["mlflow"])
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://")
    assert env["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/mlflow")
    assert mounts(services["mlflow"])[env["MLFLOW_ARTIFACTS_DESTINATION"]] in compose["volumes"]
    pg = mounts(services["postgres"])
    assert pg["/var/lib/postgresql/data"] in compose["volumes"]
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "mlflow"
    init = [src for target, src in pg.items() if target.startswith("/docker-entrypoint-initdb.d/")]
    assert init == ["./docker/postgres-init.sh"]


def test_mlflow_accepts_the_trainer_and_the_browser_but_not_strangers(services):
    hosts = env_of(services["mlflow"])["MLFLOW_SERVER_ALLOWED_HOSTS"]
    assert host_allowed(hosts, "mlflow:5000")
    assert host_allowed(hosts, "127.0.0.1:5000")
    assert host_allowed(hosts, "localhost:5000")
    assert not host_allowed(hosts, "evil.example.com")
    assert not host_allowed(hosts, "mlflow.evil.example.com:5000")


def test_auth_profile_turns_on_basic_auth(services):
    auth = services["mlflow-auth"]
    assert auth["profiles"] == ["auth"]
    assert env_of(auth)["MLFLOW_APP_NAME"] == "basic-auth"
    assert "--app-name" in SCRIPT.read_text()
    assert "profiles" not in services["mlflow"]


CONSTRAINTS = ROOT / "docker" / "constraints.txt"
PINNED = ("mlflow", "optuna", "optuna-dashboard")


def pins() -> dict[str, str]:
    """docker/constraints.txt as {package: version}."""
    found = re.findall(r"^([\w.-]+)==(\S+)\s*$", CONSTRAINTS.read_text(), re.M)
    return dict(found)


def requirement(name: str):
    """aplab's requirement on a package (pyproject.toml's dependencies), as a packaging Requirement."""
    import tomllib

    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (found,) = [r for r in map(Requirement, deps) if r.name == name]
    return found


def test_server_versions_are_pinned_in_one_file_every_image_installs_with(services):
    assert set(pins()) == set(PINNED)
    for name in ("mlflow", "optuna-dashboard", "trainer"):
        text = dockerfile_of(services[name]).read_text()
        assert re.search(r"pip install -c \S*constraints\.txt ", text), name
        copied = re.search(r"^COPY\s+constraints\.txt\s", text, re.M) or "/workspace/docker/constraints.txt" in text
        assert copied, name
        for package in PINNED:  # no second pin in a Dockerfile
            assert not re.search(rf"\b{re.escape(package)}(\[[\w,]+\])?\s*[=<>~]=", text), (name, package)
    for name in ("mlflow", "optuna-dashboard"):
        assert not re.search(r"\d+\.\d+", services[name]["image"]), "image tags would repeat the version"


@pytest.mark.parametrize("package", ["mlflow", "optuna"])
def test_pinned_and_installed_versions_are_inside_the_supported_range(package):
    """A newer release on the index must not fail this test; a pin or install outside the range must."""
    supported = requirement(package).specifier
    assert pins()[package] in supported, f"docker/constraints.txt pins {package} outside {supported}"
    assert version(package) in supported, f"installed {package} {version(package)} is outside {supported}"


def test_supported_ranges_admit_the_next_major_only_where_meant():
    assert "5.0.0" in requirement("optuna").specifier  # Optuna 5 is supported
    assert "6.0.0" not in requirement("optuna").specifier
    assert "4.0.0" not in requirement("mlflow").specifier


def test_trainer_installs_the_gpu_extra_for_gpu_system_metrics(services):
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("nvidia-ml-py") for dep in extras["gpu"])
    assert '"/workspace[gpu]"' in dockerfile_of(services["trainer"]).read_text()


def test_trainer_reserves_a_gpu_and_points_at_the_stack(services):
    trainer = services["trainer"]
    devices = trainer["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    env = env_of(trainer)
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    storage = env["APLAB_OPTUNA_STORAGE"]
    assert storage.startswith("postgresql+psycopg://") and storage.endswith("@postgres:5432/optuna")
    assert env["APLAB_DATA"] in mounts(trainer)  # datasets persist on the host
    assert "/workspace/aplab_runs" in mounts(trainer)  # aplab's default --workdir under /workspace
    assert trainer["depends_on"]["mlflow"]["condition"] == "service_healthy"
    base = re.search(r"^ARG PYTORCH_IMAGE=(\S+)", dockerfile_of(trainer).read_text(), re.M)
    assert base and base.group(1).startswith("pytorch/pytorch:") and "cuda" in base.group(1)
    assert "profiles" not in trainer


def run_script_with_stub(tmp_path: Path, **env: str) -> tuple[list[str], str]:
    """Run docker/mlflow-server.sh with MLFLOW_BIN replaced by a stub that reports what it got."""
    stub = tmp_path / "mlflow-stub"
    stub.write_text(
        "#!/bin/sh\n"
        'printf "%s\\n" "$@"\n'
        "echo ---\n"
        '[ -n "$MLFLOW_AUTH_CONFIG_PATH" ] && cat "$MLFLOW_AUTH_CONFIG_PATH"\n'
        "exit 0\n"
    )
    stub.chmod(0o755)
    path = os.environ.get("PATH", "/usr/bin:/bin")
    full_env = {"PATH": path, "TMPDIR": str(tmp_path), "MLFLOW_BIN": str(stub), **env}
    out = subprocess.run(["sh", str(SCRIPT)], env=full_env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    args, _, ini = out.stdout.partition("---\n")
    return args.splitlines(), ini


def test_server_script_turns_env_into_exactly_these_flags(tmp_path):
    args, ini = run_script_with_stub(
        tmp_path,
        MLFLOW_BACKEND_STORE_URI="postgresql+psycopg://u:p@db:5432/mlflow",
        MLFLOW_ARTIFACTS_DESTINATION="/srv/artifacts",
        MLFLOW_HOST="127.0.0.1",
        MLFLOW_PORT="5123",
        MLFLOW_WORKERS="3",
        MLFLOW_SERVER_ALLOWED_HOSTS="mlflow:*,localhost:*",
    )
    assert args == [
        "server",
        "--backend-store-uri", "postgresql+psycopg://u:p@db:5432/mlflow",
        "--serve-artifacts",
        "--artifacts-destination", "/srv/artifacts",
        "--host", "127.0.0.1",
        "--port", "5123",
        "--workers", "3",
        "--allowed-hosts", "mlflow:*,localhost:*",
    ]
    assert ini == ""


def test_server_script_basic_auth_writes_a_config_mlflow_can_read(tmp_path):
    auth_uri = "postgresql+psycopg://u:p%25w@db:5432/mlflow_auth"  # '%' must survive configparser
    args, ini = run_script_with_stub(
        tmp_path,
        MLFLOW_BACKEND_STORE_URI="sqlite:///x.db",
        MLFLOW_ARTIFACTS_DESTINATION="/a",
        MLFLOW_APP_NAME="basic-auth",
        MLFLOW_AUTH_DATABASE_URI=auth_uri,
    )
    assert args[-2:] == ["--app-name", "basic-auth"]
    parser = configparser.ConfigParser()  # what mlflow.server.auth.config uses
    parser.read_string(ini)
    assert parser["mlflow"]["database_uri"] == auth_uri
    assert parser["mlflow"]["default_permission"] == "READ"


def test_server_script_refuses_to_start_without_its_stores(tmp_path):
    out = subprocess.run(
        ["sh", str(SCRIPT)], env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MLFLOW_BIN": "true"},
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode != 0
    assert "MLFLOW_BACKEND_STORE_URI" in out.stderr


def test_runuser_is_found_in_sbin_when_path_lacks_it(monkeypatch):
    if not Path("/usr/sbin/runuser").exists():
        pytest.skip("no /usr/sbin/runuser on this machine")
    stack = importlib.import_module(pytest_plugins[0])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert stack.runuser() == "/usr/sbin/runuser"
