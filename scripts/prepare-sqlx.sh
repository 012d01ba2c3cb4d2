#!/usr/bin/env bash
# Refreshes .sqlx/, the offline data of the checked queries, so that builds need no database.
# Needs a PostgreSQL server: DATABASE_URL names any database on it (a scratch database
# named after this checkout is created there, migrated, and used to check every query; so
# several checkouts on one server do not drop each other's).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/postgres}"
checkout_name=$(basename "$PWD" | tr -c 'a-zA-Z0-9\n' '_')
database=duo_admin_sqlx_$checkout_name
scratch=${DATABASE_URL%/*}/$database

psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $database" -c "CREATE DATABASE $database"
for migration in migrations/*.sql; do
  psql "${scratch}" -q -v ON_ERROR_STOP=1 -f "$migration"
done
rm -rf .sqlx && mkdir .sqlx
# Touching the sources makes cargo expand every query! again, which writes .sqlx/.
touch app/src/lib.rs server/src/lib.rs server/src/main.rs
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$PWD/.sqlx" DATABASE_URL="$scratch" cargo build -p server
psql "$DATABASE_URL" -qc "DROP DATABASE $database"
echo "$(ls .sqlx | wc -l) queries recorded in .sqlx/"
