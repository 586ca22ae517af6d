#!/bin/sh
# Creates the aplab stack's extra databases beside POSTGRES_DB (MLflow's): optuna (Optuna's
# RDB storage) and mlflow_auth (users of the optional basic-auth server), owned by POSTGRES_USER.
# Run once by the postgres image on an empty volume (/docker-entrypoint-initdb.d) and by
# tests/stack.py natively; psql finds the server through PGHOST/PGPORT or the default socket.
set -e
for db in ${APLAB_EXTRA_DATABASES:-optuna mlflow_auth}; do
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        -c "CREATE DATABASE \"$db\" OWNER \"$POSTGRES_USER\""
done
