#!/usr/bin/env bash
# The project's test command: formatting, the console (unit tests, build, end to end in
# Chromium), lints, licences and duplicates, tests, the API against its OpenAPI document, a scan of their logs, the encoder on arm64 under qemu, a short fuzz run, template checks and the
# Lambda build.
# Stops at the first failing step.
#
# Environment (all optional):
#   SWITCHBOARD_VENV            tools virtual environment (default ~/.cache/switchboard/venv)
#   CARGO_TARGET_DIR            cargo build directory (default ~/.cache/switchboard/target)
#   SWITCHBOARD_SKIP_SAM_BUILD  set to 1 to skip the arm64 release build (sam build)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec </dev/null

./infra/dev-setup.sh --quiet

venv="${SWITCHBOARD_VENV:-$HOME/.cache/switchboard/venv}"
# First on PATH: cargo-lambda runs zig through the first `python3` it finds.
export PATH="$venv/bin:${SWITCHBOARD_TOOLS:-$HOME/.cache/switchboard/tools}/bin:$PATH"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard/target}"
# No incremental compilation: nothing is edited between two builds of a run, and its caches
# would grow the persistent target directory by gigabytes a run.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export SAM_CLI_TELEMETRY="${SAM_CLI_TELEMETRY:-0}"

if ! SWITCHBOARD_MOTO_SERVER="$(command -v moto_server)"; then
  echo "test: moto_server not found on PATH after set-up" >&2
  exit 1
fi
export SWITCHBOARD_MOTO_SERVER
# The urgency model's encoder (fetched and verified by dev-setup): its tests need it.
SWITCHBOARD_MODEL="$(./infra/model.sh)"
export SWITCHBOARD_MODEL

total_start=$SECONDS

step() {
  local name=$1
  shift
  local start=$SECONDS rc=0
  printf '\n==> %s: %s\n' "$name" "$*"
  "$@" || rc=$?
  if ((rc != 0)); then
    printf '\n==> FAILED: %s (exit %d, %d s)\n' "$name" "$rc" "$((SECONDS - start))" >&2
    exit "$rc"
  fi
  printf '==> ok: %s (%d s)\n' "$name" "$((SECONDS - start))"
}

sam_build() {
  local target=aarch64-unknown-linux-gnu
  if ! rustup target list --installed | grep -qx "$target"; then
    echo "The Rust standard library for $target is not installed and could not be fetched." >&2
    echo "Run 'rustup target add $target', or set SWITCHBOARD_SKIP_SAM_BUILD=1 to skip this step." >&2
    return 1
  fi
  # Every function in one cargo invocation first, with the flags SAM's builder passes
  # (`cargo lambda build --release --arm64 --bin NAME`, one call per function, one after the
  # other): cargo links the binaries side by side, and each of SAM's calls then finds its
  # binary up to date.
  local bins=() dir
  for dir in functions/*/; do
    bins+=(--bin "$(basename "$dir")")
  done
  cargo lambda build --release --arm64 "${bins[@]}"
  sam build
  ./infra/size-check.sh .aws-sam/build
}

step "format" cargo fmt --all --check
step "console" ./infra/console.sh build
step "clippy" cargo clippy --workspace --all-targets -- -D warnings
# Licences, duplicate versions and sources of what ships (deny.toml); offline once fetched.
deny() {
  cargo fetch --locked --quiet && cargo deny --offline check licenses bans sources
}
step "deny" deny
# The test log is kept to print one total at the end: cargo prints a result line per test
# binary, and the last of them (doc tests) is often "0 passed".
test_log=$(mktemp)
# Everything the suite logs (switchboard's crates at debug, the stderr of the processes it
# starts), for the log scan after it.
export SWITCHBOARD_TEST_LOG
SWITCHBOARD_TEST_LOG=$(mktemp)
trap 'rm -f "$test_log" "$SWITCHBOARD_TEST_LOG"' EXIT
run_tests() {
  cargo test --workspace 2>&1 | tee "$test_log"
  return "${PIPESTATUS[0]}"
}
step "tests" run_tests
# The running agent API against its OpenAPI document (schemathesis).
step "api check" ./infra/api-check.sh
# No message text, phone number, e-mail address, token or secret the tests used in any log line.
step "log scan" python3 infra/log-scan.py "$SWITCHBOARD_TEST_LOG"
step "console e2e" ./infra/console.sh e2e
# The encoder on arm64, the Lambda's architecture, under qemu: the NEON kernel against the
# portable one, and the embeddings against the reference engine's.
arm64_encoder() {
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
    cargo test -p switchboard-encoder --target aarch64-unknown-linux-gnu
}
step "arm64 encoder" arm64_encoder
# A short run of each fuzz target from the fixtures (the long runs are in BENCHMARKS.md).
step "fuzz" ./fuzz/run.sh -max_total_time=30
step "template" sam validate --lint
if [[ ${SWITCHBOARD_SKIP_SAM_BUILD:-0} == 1 ]]; then
  printf '\n==> skipped: sam build (SWITCHBOARD_SKIP_SAM_BUILD=1)\n'
else
  step "sam build" sam_build
fi

printf '\n==> all steps passed (%d s)\n' "$((SECONDS - total_start))"
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$test_log"
