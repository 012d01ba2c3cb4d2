#!/usr/bin/env bash
# Fails if the modules of app/src use each other in a cycle; prints who uses whom otherwise.
# A module is a file (`models/api.rs` is models::api, `chat/client/mod.rs` is chat::client);
# a use is a `crate::...` or `super::...` path naming it. The intended layers, each using only
# those before it: error, auth, audit, catalog <- configuration <- models <- features <- chat,
# with each area's screens (page, list, form, panel) on top. `lib.rs` (the routes) and
# `state.rs` (the server's wiring) use everything and are left out.
set -euo pipefail
cd "$(dirname "$0")/../app/src"

module_of() { # path -> module name
  local name=${1%.rs}
  name=${name%/mod}
  echo "${name//\//::}"
}

mapfile -t files < <(find . -name '*.rs' ! -path ./lib.rs ! -path ./state.rs | sed 's|^\./||' | sort)
declare -A known=()
for file in "${files[@]}"; do known[$(module_of "$file")]=1; done

# The longest known module that a path starts with.
resolve() {
  local path=$1
  while [[ -n "$path" ]]; do
    [[ -n "${known[$path]:-}" ]] && { echo "$path"; return; }
    [[ "$path" == *::* ]] || return 0
    path=${path%::*}
  done
}

edges=$(
  for file in "${files[@]}"; do
    module=$(module_of "$file")
    # The module that `super` means here: a mod.rs's parent folder, else this file's folder.
    if [[ "$file" == */mod.rs ]]; then parent=${module%::*}; [[ "$parent" == "$module" ]] && parent=""
    elif [[ "$module" == *::* ]]; then parent=${module%::*}; else parent=""; fi
    {
      grep -oE 'crate(::[a-z_]+)+' "$file" | sed 's/^crate:://' || true
      if [[ -n "$parent" ]]; then grep -oE 'super(::[a-z_]+)+' "$file" | sed "s/^super/$parent/" || true; fi
    } | sort -u | while read -r path; do
      used=$(resolve "$path")
      # An `if`, not `&&`: a last test that is false must not fail the loop (pipefail).
      if [[ -n "$used" && "$used" != "$module" && "$module" != "$used"::* ]]; then echo "$used $module"; fi
    done
  done | sort -u
)
echo "$edges" | awk '{ printf "  %-26s uses %s\n", $2, $1 }'
# tsort names the loop (on stderr) when there is one.
if loops=$(echo "$edges" | tsort 2>&1 >/dev/null) && [[ -z "$loops" ]]; then
  echo "module-cycles: no cycle among $(echo "${!known[@]}" | wc -w) modules"
else
  echo "module-cycles: the modules of app/src use each other in a cycle:" >&2
  echo "$loops" >&2
  exit 1
fi
