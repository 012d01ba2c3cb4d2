#!/usr/bin/env bash
# Builds the browser half into $SITE_ROOT (default target/site): the hydration bundle under
# pkg/, the style sheet, and public/. `--release` builds a small optimised bundle.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")
site_root=${LEPTOS_SITE_ROOT:-$target_dir/site}
name=duo_admin
if [[ "${1:-}" == "--release" ]]; then profile=wasm-release; else profile=dev; fi
profile_dir=$([[ $profile == dev ]] && echo debug || echo "$profile")

cargo build -p frontend --lib --target wasm32-unknown-unknown --profile "$profile"
mkdir -p "$site_root/pkg"
wasm-bindgen --target web --no-typescript --out-dir "$site_root/pkg" --out-name "$name" \
  "$target_dir/wasm32-unknown-unknown/$profile_dir/frontend.wasm"
# Leptos's hydration script loads NAME_bg.wasm, as wasm-bindgen names it, when the server was
# built without cargo-leptos (which would set LEPTOS_OUTPUT_NAME at compile time).
cp style/main.css "$site_root/pkg/$name.css"
cp -r public/. "$site_root/"
# Compressed copies beside the files: the server sends them to browsers that accept gzip, with no
# compression work per request (the wasm shrinks to about a third).
gzip -9 --keep --force "$site_root/pkg/$name"{_bg.wasm,.js,.css}
echo "site built in $site_root ($(du -h "$site_root/pkg/${name}_bg.wasm" | cut -f1) of wasm, $(du -h "$site_root/pkg/${name}_bg.wasm.gz" | cut -f1) gzipped)"
