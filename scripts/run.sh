#!/usr/bin/env bash
# The run command: installs what is missing, builds the console in release mode and serves it at
# http://127.0.0.1:3000 (LEPTOS_SITE_ADDR changes that). With no DATABASE_URL, it keeps its
# database in ./.data/postgres. Arguments are passed on to duo-admin (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
export SQLX_OFFLINE=true
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
export LEPTOS_SITE_ROOT=${LEPTOS_SITE_ROOT:-$target_dir/site}
scripts/setup.sh --release
scripts/build-site.sh --release
cargo build --release -p server
exec "$target_dir/release/duo-admin" "$@"
