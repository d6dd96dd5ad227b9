#!/usr/bin/env bash
# What the apache/airflow image's /entrypoint does with the variables docker-compose.yaml gives
# airflow-init, for the native stack (tests/e2e/native.py): migrate the metadata database, create
# the admin user, then run the command (an airflow subcommand when it does not name a program).
set -euo pipefail
if [ "${_AIRFLOW_DB_MIGRATE:-}" = true ]; then
  airflow db migrate
fi
if [ "${_AIRFLOW_WWW_USER_CREATE:-}" = true ]; then
  airflow users create --username "${_AIRFLOW_WWW_USER_USERNAME:-admin}" \
    --password "${_AIRFLOW_WWW_USER_PASSWORD:?}" --role Admin --firstname Airflow \
    --lastname Admin --email airflowadmin@example.com
fi
case "${1:-}" in
  airflow|bash|python) exec "$@" ;;
  *) exec airflow "$@" ;;
esac
