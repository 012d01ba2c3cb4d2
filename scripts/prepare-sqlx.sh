#!/usr/bin/env bash
# Refreshes .sqlx/, the offline data of the checked queries, so that builds need no database.
# Needs a PostgreSQL server: DATABASE_URL names any database on it (a scratch database
# `duo_admin_sqlx` is created there, migrated, and used to check every query).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/postgres}"
scratch=${DATABASE_URL%/*}/duo_admin_sqlx

psql "$DATABASE_URL" -qc 'DROP DATABASE IF EXISTS duo_admin_sqlx' -c 'CREATE DATABASE duo_admin_sqlx'
for migration in migrations/*.sql; do
  psql "${scratch}" -q -v ON_ERROR_STOP=1 -f "$migration"
done
rm -rf .sqlx && mkdir .sqlx
# Touching the sources makes cargo expand every query! again, which writes .sqlx/.
touch app/src/lib.rs server/src/lib.rs server/src/main.rs
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$PWD/.sqlx" DATABASE_URL="$scratch" cargo build -p server
psql "$DATABASE_URL" -qc 'DROP DATABASE duo_admin_sqlx'
echo "$(ls .sqlx | wc -l) queries recorded in .sqlx/"
