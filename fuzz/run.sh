#!/usr/bin/env bash
# Runs the fuzz targets (cargo fuzz, nightly), each seeded with the test fixtures:
#   fuzz/run.sh [-runs=N | -max_total_time=S]   (default: -runs=10000000, each target)
# FUZZ_SANITIZER=none builds without AddressSanitizer (about three times the executions a
# second; the code fuzzed has no unsafe of its own); the default is address.
# The corpus grows in fuzz/corpus/<target> (not committed); a crash is written to
# fuzz/artifacts/<target> and fails the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
limit="${1:--runs=10000000}"
fixtures=../tests/fixtures
seeds="$(mktemp -d)"
trap 'rm -rf "$seeds"' EXIT

# records: every fixture body as it is (JSON deliveries, raw signed bodies, e-mails).
mkdir -p "$seeds/records" "$seeds/verify"
find "$fixtures" -type f \( -name '*.json' ! -name '*.meta.json' -o -name '*.raw' -o -name '*.eml' \) \
  -exec cp -t "$seeds/records" {} +
# verify: each signature vector as header lines, a blank line, then its raw body.
for meta in "$fixtures"/*/*.meta.json; do
  python3 - "$meta" "$seeds/verify/$(basename "$meta" .meta.json)" <<'PY'
import json, pathlib, sys
meta = pathlib.Path(sys.argv[1]); vector = json.loads(meta.read_text())
head = "".join(f"{k}: {v}\n" for k, v in vector.get("headers", {}).items())
body = (meta.parent / vector["raw_body_file"]).read_bytes()
pathlib.Path(sys.argv[2]).write_bytes(head.encode() + b"\n" + body)
PY
done

for target in records verify; do
  mkdir -p "corpus/$target"
  cargo +nightly fuzz run --sanitizer "${FUZZ_SANITIZER:-address}" "$target" "corpus/$target" "$seeds/$target" -- \
    "$limit" -max_len=65536 -print_final_stats=1
done
