# MLflow tracking server for the aplab stack: PostgreSQL backend, proxied artifacts.
# Versions come from docker/constraints.txt, the stack's one list of pins.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

# [auth] adds Flask-WTF, which the basic-auth app (compose profile "auth") needs.
COPY constraints.txt /tmp/constraints.txt
RUN pip install -c /tmp/constraints.txt "mlflow[auth]" "psycopg[binary]>=3.1,<4"

COPY mlflow-server.sh /usr/local/bin/mlflow-server.sh
RUN chmod 0755 /usr/local/bin/mlflow-server.sh \
    && useradd --create-home --uid 1000 mlflow \
    && mkdir -p /mlflow/artifacts \
    && chown -R mlflow:mlflow /mlflow

USER mlflow
WORKDIR /home/mlflow
EXPOSE 5000
ENTRYPOINT ["/usr/local/bin/mlflow-server.sh"]
