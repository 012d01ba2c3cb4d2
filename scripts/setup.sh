#!/usr/bin/env bash
# Installs whatever is missing to build and run the console (and, with --with-browser, to run
# the browser tests). Safe to run again: each step checks first. Downloads come only from the
# package registries (Debian's packages, crates.io and, for the browser tests' accessibility
# checker, npm); no tool fetches a prebuilt binary.
set -euo pipefail
cd "$(dirname "$0")/.."

# --with-browser: what the browser tests need. --release: what the release bundle's size
# levers need (wasm-opt, brotli, zopfli); without them the bundle builds, only larger.
with_browser=false
release=false
for arg in "$@"; do
  case "$arg" in
    --with-browser) with_browser=true ;;
    --release) release=true ;;
  esac
done

sudo_if_needed() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

apt_packages=()
command -v cc >/dev/null || apt_packages+=(build-essential)
command -v pkg-config >/dev/null || apt_packages+=(pkg-config)
# PostgreSQL's server programs, for the private database used when DATABASE_URL is unset.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || apt_packages+=(postgresql)
if $with_browser; then
  command -v chromium >/dev/null || apt_packages+=(chromium)
  command -v chromedriver >/dev/null || apt_packages+=(chromium-driver)
  command -v npm >/dev/null || apt_packages+=(npm)
fi
if $release; then
  command -v npm >/dev/null || apt_packages+=(npm)
  command -v brotli >/dev/null || apt_packages+=(brotli)
  command -v zopfli >/dev/null || apt_packages+=(zopfli)
fi
if ((${#apt_packages[@]})); then
  echo "setup: installing ${apt_packages[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

# wasm-bindgen's command-line tool must be exactly the version of the library in Cargo.lock.
wanted=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [[ "$have" != "$wanted" ]]; then
  echo "setup: installing wasm-bindgen-cli $wanted (about 5 minutes, once)"
  # Not --locked: its own lock file names a crate version the registry no longer serves.
  cargo install wasm-bindgen-cli --version "$wanted" --quiet
fi

# axe-core, which the browser tests inject into each page to check its accessibility. Kept in
# target/tools (ignored by git), pinned so every run checks by the same rules.
axe_version=4.14.1
if $with_browser && [[ "$(node -p "require('./target/tools/node_modules/axe-core/package.json').version" 2>/dev/null)" != "$axe_version" ]]; then
  echo "setup: installing axe-core $axe_version"
  mkdir -p target/tools
  npm install --prefix target/tools --no-audit --no-fund --no-save "axe-core@$axe_version" >/dev/null
fi

# esbuild from npm, which minifies the release bundle's script and style sheet (cargo-leptos
# would; building without it, they went out as written). Its own folder, like binaryen's.
esbuild_version=0.24.2
esbuild=target/tools/esbuild/node_modules/.bin/esbuild
if $release && [[ "$("$esbuild" --version 2>/dev/null)" != "$esbuild_version" ]]; then
  echo "setup: installing esbuild $esbuild_version"
  mkdir -p target/tools/esbuild
  npm install --prefix target/tools/esbuild --no-audit --no-fund --no-save "esbuild@$esbuild_version" >/dev/null
fi

# wasm-opt from npm's binaryen 132, which shrinks the release bundle and keeps it hydrating
# (Debian's binaryen 108 breaks hydration). Its own folder: one npm install does not prune the
# other's package.
binaryen_version=132
wasm_opt=target/tools/binaryen/node_modules/.bin/wasm-opt
if $release && [[ "$("$wasm_opt" --version 2>/dev/null)" != "wasm-opt version $binaryen_version "* ]]; then
  echo "setup: installing wasm-opt (binaryen $binaryen_version)"
  mkdir -p target/tools/binaryen
  npm install --prefix target/tools/binaryen --no-audit --no-fund --no-save "binaryen@$binaryen_version.0.0" >/dev/null
fi
