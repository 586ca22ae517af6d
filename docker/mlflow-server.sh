#!/bin/sh
# The one definition of aplab's MLflow tracking server: docker compose (services mlflow and
# mlflow-auth) and the native test harness (tests/stack.py) both run exactly this script.
#
# Configured only through environment variables (the names MLflow's own CLI reads, plus two):
#   MLFLOW_BACKEND_STORE_URI      required, e.g. postgresql+psycopg://user:pass@host:5432/mlflow
#   MLFLOW_ARTIFACTS_DESTINATION  required, directory (or URI) where served artifacts are stored
#   MLFLOW_HOST                   interface to bind (default 0.0.0.0)
#   MLFLOW_PORT                   port (default 5000)
#   MLFLOW_WORKERS                uvicorn worker processes (default 2)
#   MLFLOW_SERVER_ALLOWED_HOSTS   comma-separated Host headers accepted (default: MLflow's own,
#                                 localhost and private IPs); fnmatch patterns such as mlflow:*
#   MLFLOW_APP_NAME               "basic-auth" turns on MLflow's login (optional), which reads
#                                 MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD and
#   MLFLOW_AUTH_DATABASE_URI      the user database (required with basic-auth unless
#                                 MLFLOW_AUTH_CONFIG_PATH already names a complete ini file)
#   MLFLOW_BIN                    the mlflow executable (default: mlflow on PATH)
set -eu

: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI, e.g. postgresql+psycopg://user:pass@host:5432/mlflow}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION, a directory or URI for served artifacts}"

set -- server \
    --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
    --serve-artifacts \
    --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
    --host "${MLFLOW_HOST:-0.0.0.0}" \
    --port "${MLFLOW_PORT:-5000}" \
    --workers "${MLFLOW_WORKERS:-2}"

if [ -n "${MLFLOW_SERVER_ALLOWED_HOSTS:-}" ]; then
    set -- "$@" --allowed-hosts "$MLFLOW_SERVER_ALLOWED_HOSTS"
fi

if [ -n "${MLFLOW_APP_NAME:-}" ]; then
    if [ "$MLFLOW_APP_NAME" = "basic-auth" ] && [ -z "${MLFLOW_AUTH_CONFIG_PATH:-}" ]; then
        : "${MLFLOW_AUTH_DATABASE_URI:?basic-auth needs MLFLOW_AUTH_DATABASE_URI (where users are stored)}"
        MLFLOW_AUTH_CONFIG_PATH="$(mktemp "${TMPDIR:-/tmp}/mlflow-basic-auth.XXXXXX")"
        # configparser interpolates '%', so double it in the URI (passwords may contain it).
        cat > "$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
default_permission = ${MLFLOW_AUTH_DEFAULT_PERMISSION:-READ}
database_uri = $(printf '%s' "$MLFLOW_AUTH_DATABASE_URI" | sed 's/%/%%/g')
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
        export MLFLOW_AUTH_CONFIG_PATH
    fi
    set -- "$@" --app-name "$MLFLOW_APP_NAME"
fi

exec "${MLFLOW_BIN:-mlflow}" "$@"
