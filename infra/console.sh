#!/usr/bin/env bash
# The web console's checks (console/): what ./infra/test.sh runs.
#
#   infra/console.sh build   install the npm packages of the lock file, run the unit tests
#                            (Vitest), build console/dist, and fail if the committed
#                            console/dist differs from the fresh build (the binaries embed it)
#   infra/console.sh e2e     the end-to-end test in Debian's headless Chromium against the
#                            real `switchboard serve` (built here); screenshots in
#                            console/e2e/out/; UPDATE_SCREENSHOTS=1 copies them to
#                            docs/screenshots/ for the README; then the README's widget
#                            back end (docs/examples/) against the same binary
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

case "${1:-}" in
  build)
    cd console
    npm ci --no-audit --no-fund --loglevel=error
    npm test
    npm run build
    cd ..
    if git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet -- console/dist; then
      git --no-pager diff --stat -- console/dist >&2
      echo "console/dist differs from a fresh build: run 'npm run build' in console/ and commit it" >&2
      exit 1
    fi
    ;;
  e2e)
    cargo build --quiet -p switchboard --bin switchboard
    target="${CARGO_TARGET_DIR:-target}"
    export SWITCHBOARD_BIN
    SWITCHBOARD_BIN="$(cd "$target" && pwd)/debug/switchboard"
    cd console
    node e2e/console.e2e.mjs
    node e2e/widget.e2e.mjs
    ;;
  *)
    echo "usage: $0 build|e2e" >&2
    exit 2
    ;;
esac
