#!/usr/bin/env bash
# The test command: installs what is missing, then runs every test, browser tests included.
# Uses DATABASE_URL when given; otherwise starts a private PostgreSQL cluster for the run (the
# same code the console uses) and stops it afterwards. Each test gets its own database.
set -euo pipefail
cd "$(dirname "$0")/.."
export SQLX_OFFLINE=true
# A one-off build gains nothing from incremental data, which would double target/'s size.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
export LEPTOS_SITE_ROOT=${LEPTOS_SITE_ROOT:-$target_dir/site}
# A failing test prints its message, not pages of backtrace that bury it (run one test with
# cargo test and RUST_BACKTRACE=1 to see where it failed).
export RUST_BACKTRACE=0

scripts/setup.sh --with-browser
# The gates: formatting, then lints as errors over both halves of the code, the server build
# (ssr, tests included) and the browser build (hydrate).
cargo fmt --all -- --check
scripts/module-cycles.sh >/dev/null
cargo clippy -p app -p server -p tests --all-targets -- -D warnings
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings
scripts/build-site.sh
# Not --workspace: that would build `app` with both its ssr and hydrate features at once.
packages=(-p app -p server -p tests)
cargo test "${packages[@]}" --no-run
# The binary itself, which starts the private database below.
cargo build -p server --bin duo-admin

if [[ -z "${DATABASE_URL:-}" ]]; then
  # A short path (a Unix socket path may not exceed 107 bytes), enterable by the postgres user
  # that runs the cluster when this script runs as root.
  data_dir=$(mktemp -d /tmp/duo-admin-test.XXXXXX)
  chmod 755 "$data_dir"
  DATABASE_URL=$("$target_dir/debug/duo-admin" --data-dir "$data_dir" database start)
  export DATABASE_URL
  trap '"$target_dir/debug/duo-admin" --data-dir "$data_dir" database stop 2>/dev/null; rm -rf "$data_dir"' EXIT
  # This cluster lives for one run and is thrown away: it need not survive a power cut. Each
  # test creates a database, and on a busy 2-core machine waiting for the disk to confirm those
  # writes stalled requests for seconds. A DATABASE_URL given by the caller is left as it is.
  psql "$DATABASE_URL" -q -v ON_ERROR_STOP=1 \
    -c "ALTER SYSTEM SET fsync = off" -c "ALTER SYSTEM SET synchronous_commit = off" \
    -c "ALTER SYSTEM SET full_page_writes = off" -c "SELECT pg_reload_conf()" >/dev/null
fi

log=$(mktemp)
status=0
cargo test "${packages[@]}" --lib --bins --tests --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run, summed over every test binary, after the failures' names,
# where a log cut to its tail still shows them.
awk '/^test result:/ { passed += $4; failed += $6 }
     / \.\.\. FAILED$/ { names = names "  failed: " $2 "\n" }
     END { printf "%s%d passed, %d failed\n", names, passed, failed }' "$log"
rm -f "$log"
exit "$status"
