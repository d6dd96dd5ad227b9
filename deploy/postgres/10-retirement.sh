#!/usr/bin/env bash
# The ledger's own role and database on the stack's PostgreSQL. The postgres image runs this
# once, on an empty data volume (/docker-entrypoint-initdb.d); the password comes from .env.
set -euo pipefail
name=${RETIREMENT_DB_NAME:-retirement}
: "${RETIREMENT_DB_PASSWORD:?RETIREMENT_DB_PASSWORD must be set (make compose-env writes it to .env)}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=name="$name" --set=password="$RETIREMENT_DB_PASSWORD" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
SQL
