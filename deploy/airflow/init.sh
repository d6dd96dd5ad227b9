#!/usr/bin/env bash
# airflow-init (docker-compose.yaml), run once before every other Airflow container starts.
#   As root, and only for this: hand the shared folders named as arguments to the airflow user
#   (AIRFLOW_UID); then re-run itself as that user.
#   As the airflow user: the image's entrypoint migrates the metadata database and creates the
#   admin user (_AIRFLOW_DB_MIGRATE, _AIRFLOW_WWW_USER_CREATE); `airflow config list` writes the
#   one config file every container reads ($AIRFLOW_CONFIG, on a shared volume). The signing keys
#   Airflow generates into that file are deleted from it: they come from .env only
#   (AIRFLOW__API_AUTH__JWT_SECRET, AIRFLOW__API__SECRET_KEY), so the file holds no secret, and a
#   stack started without them fails at once instead of each container signing with its own key.
set -euo pipefail
: "${AIRFLOW_UID:?AIRFLOW_UID must be set (make compose-env writes it to .env)}"
: "${AIRFLOW_CONFIG:?AIRFLOW_CONFIG must name the shared config file}"
if [ "$(id -u)" != "$AIRFLOW_UID" ]; then
  for dir in "$@"; do
    mkdir -p "$dir"
    chown "$AIRFLOW_UID:0" "$dir"
    chmod u+rwx,g+rwx,o-rwx "$dir"
  done
  exec setpriv --reuid="$AIRFLOW_UID" --regid=0 --clear-groups -- \
    env HOME="${AIRFLOW_USER_HOME_DIR:-/home/airflow}" "$0"
fi
"${AIRFLOW_ENTRYPOINT:-/entrypoint}" airflow version
airflow config list >/dev/null
sed -i -E '/^(jwt_secret|secret_key) = /d' "$AIRFLOW_CONFIG"
echo "airflow-init: database migrated, admin user created, config $AIRFLOW_CONFIG written"
