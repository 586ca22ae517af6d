# optuna-dashboard on the stack's PostgreSQL (psycopg 3 driver, same URL form as aplab uses).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

# Versions come from docker/constraints.txt, the stack's one list of pins.
COPY constraints.txt /tmp/constraints.txt
RUN pip install -c /tmp/constraints.txt optuna-dashboard optuna "psycopg[binary]>=3.1,<4" \
    && useradd --create-home --uid 1000 dashboard

USER dashboard
EXPOSE 8080
# The storage URL comes from APLAB_OPTUNA_STORAGE so the password is never in the compose file.
ENTRYPOINT ["/bin/sh", "-c", "exec optuna-dashboard --host 0.0.0.0 --port 8080 \"$APLAB_OPTUNA_STORAGE\""]
