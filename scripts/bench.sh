#!/usr/bin/env bash
# The benchmark command. Builds the release console and bundle, starts it on a private
# database, seeds 20 models with every GA feature assigned, signs in, and prints side by side:
# each main page's requests per second and latency (p50, p99) at 64 connections; the same bytes
# served as a static file by the same server, and the page's share of that speed; a signed-in
# request that does nothing; resident memory idle after sign-ins, at its highest under each page's load,
# under the whole run's and after it; the bundle's sizes. Load comes from wrk (Debian's package, installed when
# missing). Client, server and database share this machine, so nothing else should run.
#
# BENCH_SECONDS (default 10) per measurement, BENCH_CONNECTIONS (default 64), BENCH_PAGES (the
# pages to load, default the four main ones).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${BENCH_SECONDS:-10}
connections=${BENCH_CONNECTIONS:-64}
pages=${BENCH_PAGES:-/admin/gitlab_duo/self_hosted/features /admin/gitlab_duo/self_hosted/models /admin/gitlab_duo/configuration /admin}
export SQLX_OFFLINE=true
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
# A site of its own: the tests' debug bundle in target/site stays as it is.
site=$target_dir/bench-site
bin=$target_dir/release/duo-admin

scripts/setup.sh --release
if ! command -v wrk >/dev/null; then
  echo "bench: installing wrk"
  if [[ $(id -u) -eq 0 ]]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
bundle=$(LEPTOS_SITE_ROOT=$site scripts/build-site.sh --release | tail -n 1)
cargo build --release -p server --bin duo-admin

# The private cluster needs a short path its postgres user can enter.
work=$(mktemp -d /tmp/duo-bench.XXXXXX)
chmod 755 "$work"
server_pid=
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  "$bin" --data-dir "$work" database stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
export RUST_BACKTRACE=0 RUST_LOG=warn
export DATABASE_URL
DATABASE_URL=$("$bin" --data-dir "$work" database start)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
password=bench-password-$RANDOM$RANDOM
ADMIN_PASSWORD=$password LEPTOS_SITE_ADDR=127.0.0.1:$port LEPTOS_SITE_ROOT=$site DUO_DATA_DIR=$work \
  API_RATE_LIMIT_PER_MINUTE=100000000 "$bin" serve 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do curl -fs "$base/readyz" >/dev/null && break; sleep 0.1; done
curl -fs "$base/readyz" >/dev/null || { cat "$work/server.log"; exit 1; }

# 20 models (half Bedrock, half OpenAI-compatible with a key), every GA feature assigned,
# through the console's own configuration import.
"$bin" config export -o "$work/exported.json"
python3 - "$work/exported.json" "$work/seed.json" <<'EOF'
import json, sys, tomllib
document = json.load(open(sys.argv[1]))
catalog = tomllib.load(open("app/features.toml", "rb"))
families = ["claude_3", "mistral", "mixtral", "gpt", "llama3"]
models = []
for n in range(20):
    family = "claude_3" if n % 2 == 0 else families[1 + n // 2 % 3]
    if n % 2 == 0:
        models.append({"name": f"Bedrock model {n + 1}", "platform": "bedrock", "model_family": family,
                       "identifier": f"bedrock/us.anthropic.claude-3-5-sonnet-{n + 1}-v1:0"})
    else:
        models.append({"name": f"vLLM model {n + 1}", "platform": "api", "model_family": family,
                       "endpoint": f"http://vllm-{n + 1}.internal:8000/v1",
                       "identifier": f"custom_openai/model-{n + 1}", "api_key": {"env": "BENCH_API_KEY"}})
document["models"] = models
for i, feature in enumerate(f for f in catalog["features"] if f["release"] == "ga"):
    usable = [m for m in models if m["model_family"] in feature["families"]]
    document["features"][feature["key"]] = {"model": usable[i % len(usable)]["name"]}
json.dump(document, open(sys.argv[2], "w"), indent=2)
EOF
BENCH_API_KEY=sk-bench-key "$bin" config import "$work/seed.json" >/dev/null

sign_in() {
  curl -fs -o /dev/null -c "$1" --data-urlencode login=root --data-urlencode "password=$password" \
    "$base/users/sign_in"
}
# Several sign-ins, as a day's admins would make, before the idle figure.
for n in $(seq 10); do sign_in "$work/jar$n"; done
sign_in "$work/jar"
cookie=$(awk '!/^#/ || /^#HttpOnly_/ { if (NF >= 7) print $6 "=" $7 }' "$work/jar" | paste -sd ';')
rss() { awk '/^VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$server_pid/status"; }
# At rest: the allocator gives freed memory back as it goes on working, within seconds.
settle() { for _ in $(seq 20); do curl -fs -o /dev/null "$base/healthz"; sleep 0.5; done; }
settle
idle_rss=$(rss)

# Highest resident memory while the load runs, sampled every 100 ms.
# The whole run's highest in $peak_file; the current page's in $phase_file, which is reset to 0
# before each page.
peak_file=$work/peak
phase_file=$work/phase-peak
echo 0 >"$peak_file"
echo 0 >"$phase_file"
(
  peak=0
  while kill -0 "$server_pid" 2>/dev/null; do
    now=$(rss 2>/dev/null || echo 0)
    ((now > peak)) && peak=$now && echo "$peak" >"$peak_file"
    (("$now" > $(cat "$phase_file" 2>/dev/null || echo 0))) && echo "$now" >"$phase_file"
    sleep 0.1
  done
) &
sampler=$!

# wrk's figures: requests per second, then p50 and p99 in milliseconds.
load() {
  wrk -t2 -c"$connections" -d"${seconds}s" --latency -H "Cookie: $cookie" "$1" | awk '
    function ms(value) {
      if (value ~ /us$/) return value / 1000
      if (value ~ /ms$/) return value + 0
      if (value ~ /s$/) return value * 1000
      return value
    }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
    /Non-2xx/ { bad = $NF }
    END { printf "%d %.1f %.1f %d\n", rps, p50, p99, bad }'
}
printf '\n%-34s %9s %8s %8s %10s %7s | %-9s %9s %8s %6s\n' \
  "signed-in request ($connections conns)" "bytes" "req/s" "p50 ms" "p99 ms" "RSS MB" "static" "req/s" "p99 ms" "ratio"
for path in $pages; do
  page=$work/page.html
  curl -fs -H "Cookie: $cookie" -o "$page" "$base$path"
  bytes=$(stat -c %s "$page")
  # The very bytes, served as a file by the same server (its /pkg/ files are public).
  static_name=bench-$(basename "$path").html
  cp "$page" "$site/pkg/$static_name"
  # The highest resident memory while this page is under load, from rest.
  settle
  echo 0 >"$phase_file"
  read -r rps p50 p99 bad < <(load "$base$path")
  phase_peak=$(cat "$phase_file")
  read -r srps _ sp99 _ < <(load "$base/pkg/$static_name")
  rm -f "$site/pkg/$static_name"
  [[ $bad -gt 0 ]] && echo "bench: $bad answers to $path were not 2xx" >&2
  printf '%-34s %9s %8s %8s %10s %7s | %-9s %9s %8s %5s%%\n' "$path" "$bytes" "$rps" "$p50" "$p99" "$phase_peak" "" \
    "$srps" "$sp99" \
    "$((100 * rps / (srps > 0 ? srps : 1)))"
done
read -r rps p50 p99 _ < <(load "$base/api/current_user")
printf '%-34s %9s %8s %8s %10s\n' "/api/current_user (no-op)" "" "$rps" "$p50" "$p99"
read -r rps p50 p99 _ < <(load "$base/healthz")
printf '%-34s %9s %8s %8s %10s\n' "/healthz (no session)" "" "$rps" "$p50" "$p99"
kill "$sampler" 2>/dev/null || true
settle
printf '\nresident memory: %s MB idle after 11 sign-ins, %s MB at most under load, %s MB after it\n' \
  "$idle_rss" "$(cat "$peak_file")" "$(rss)"
echo "bundle: ${bundle#site built in * }"
