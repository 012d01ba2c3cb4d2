#!/usr/bin/env bash
# Builds the browser half into $SITE_ROOT (default target/site): the hydration bundle under
# pkg/, the style sheet, and public/. `--release` builds a small optimised bundle: no name
# section, wasm-opt -Oz when `scripts/setup.sh --release` installed it, brotli copies.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
site_root=${LEPTOS_SITE_ROOT:-$target_dir/site}
name=duo_admin
release=false
[[ "${1:-}" == "--release" ]] && release=true
if $release; then profile=wasm-release; else profile=dev; fi
profile_dir=$([[ $profile == dev ]] && echo debug || echo "$profile")

# Components are type-erased on both halves (`--cfg erase_components`, .cargo/config.toml).
cargo build -p frontend --lib --target wasm32-unknown-unknown --profile "$profile"
mkdir -p "$site_root/pkg"
# The name section (function names for stack traces) is most of a release bundle's bytes.
strip_names=()
$release && strip_names=(--remove-name-section --remove-producers-section)
wasm-bindgen --target web --no-typescript "${strip_names[@]}" --out-dir "$site_root/pkg" --out-name "$name" \
  "$target_dir/wasm32-unknown-unknown/$profile_dir/frontend.wasm"
wasm="$site_root/pkg/${name}_bg.wasm"
wasm_opt=target/tools/binaryen/node_modules/.bin/wasm-opt
if $release && [[ -x "$wasm_opt" ]]; then
  # Flattened and its control flow rebuilt before two rounds of -Oz: 3.5 KB less gzip than -Oz
  # alone (measured on this bundle; -Oz --converge, --gufa or -Os gain under 1 KB).
  "$wasm_opt" --flatten --rereloop -Oz -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-reference-types --enable-multivalue --enable-mutable-globals "$wasm" -o "$wasm.opt"
  mv "$wasm.opt" "$wasm"
elif $release; then
  echo "build-site: no wasm-opt (scripts/setup.sh --release installs it); the bundle stays larger" >&2
fi
# Leptos's hydration script loads NAME_bg.wasm, as wasm-bindgen names it, when the server was
# built without cargo-leptos (which would set LEPTOS_OUTPUT_NAME at compile time).
cp style/main.css "$site_root/pkg/$name.css"
# A release bundle's script and style sheet are minified (a quarter of their compressed size),
# when `scripts/setup.sh --release` installed esbuild. The script keeps its exports' names: the
# islands are found by them.
esbuild=target/tools/esbuild/node_modules/.bin/esbuild
if $release && [[ -x "$esbuild" ]]; then
  "$esbuild" "$site_root/pkg/$name.js" --minify --format=esm --log-level=warning --allow-overwrite --outfile="$site_root/pkg/$name.js"
  "$esbuild" "$site_root/pkg/$name.css" --minify --log-level=warning --allow-overwrite --outfile="$site_root/pkg/$name.css"
elif $release; then
  echo "build-site: no esbuild (scripts/setup.sh --release installs it); the script and style stay as written" >&2
fi
cp -r public/. "$site_root/"
# Compressed copies beside the files: the server sends them to browsers that accept them, with
# no compression work per request (gzip always; brotli for a release bundle, when installed:
# at its best setting it takes too long on a debug bundle to be worth it there).
files=("$site_root/pkg/$name"{_bg.wasm,.js,.css})
# A release bundle's gzip copies come from zopfli, when installed: plain gzip that every browser
# reads, 5% smaller than `gzip -9` (595 against 624 KB of wasm), for seconds of build time.
if $release && command -v zopfli >/dev/null; then
  zopfli "${files[@]}"
else
  gzip -9 --keep --force "${files[@]}"
fi
if $release && command -v brotli >/dev/null; then
  brotli --keep --force --best "${files[@]}"
else
  rm -f "${files[@]/%/.br}"
fi
# The bundle's version, a hash of its contents: pages name the files under /pkg/VERSION/, which
# browsers may then keep for a year (server/src/bundle.rs).
cat "${files[@]}" | sha256sum | cut -c1-16 >"$site_root/pkg/VERSION"
size() { if [[ -f "$1" ]]; then du -b "$1" | cut -f1; else echo 0; fi; }
total() { local sum=0 file; for file in "$@"; do sum=$((sum + $(size "$file"))); done; echo "$sum"; }
echo "site built in $site_root: wasm $(size "$wasm") bytes ($(size "$wasm.gz") gzip, $(size "$wasm.br") brotli);" \
  "wasm + js + css $(total "${files[@]}") bytes, $(total "${files[@]/%/.gz}") gzip, $(total "${files[@]/%/.br}") brotli"
