#!/usr/bin/env bash
# Zips every function that `sam build` produced, the way Lambda receives it, prints the sizes
# and fails when one is over the budget (default 3.5 MB, zipped).
#
# Usage: infra/size-check.sh [BUILD_DIR] (default .aws-sam/build)
#   SWITCHBOARD_MAX_ZIP_BYTES  the budget in bytes (default 3500000)
set -euo pipefail

build_dir=${1:-.aws-sam/build}
budget=${SWITCHBOARD_MAX_ZIP_BYTES:-3500000}

python3 - "$build_dir" "$budget" <<'PY'
import io, os, sys, zipfile

build_dir, budget = sys.argv[1], int(sys.argv[2])
functions = sorted(
    d for d in os.listdir(build_dir)
    if os.path.isfile(os.path.join(build_dir, d, "bootstrap"))
)
if not functions:
    sys.exit(f"size-check: no function was built in {build_dir} (run sam build first)")
over = []
print(f"{'function':<28} {'bootstrap':>12} {'zipped':>12}  budget {budget}")
for name in functions:
    path = os.path.join(build_dir, name, "bootstrap")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(path, "bootstrap")
    raw, zipped = os.path.getsize(path), len(buf.getvalue())
    print(f"{name:<28} {raw:>12,} {zipped:>12,}")
    if zipped > budget:
        over.append(name)
if over:
    sys.exit(f"size-check: over the budget of {budget} bytes zipped: {', '.join(over)}")
print("size-check: every function within the budget")
PY
