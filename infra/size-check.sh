#!/usr/bin/env bash
# Zips every function and layer that `sam build` produced, the way Lambda receives them, prints
# the sizes and fails when one is over its budget (zipped):
#
#   every function, its own code       3.5 MB  (SWITCHBOARD_MAX_ZIP_BYTES)
#   the prioritizer's model layer      25 MB   (SWITCHBOARD_MAX_LAYER_ZIP_BYTES)
#
# The prioritizer is the one function with a layer: its code keeps the common budget (the
# encoder adds little code), and the urgency model's file is the layer's budget — 23.9 MB of
# 4-bit weights that barely compress, so the budget fails a build that ships a larger model
# (the full vocabulary is 72 MB) or anything else by mistake. Together: what the prioritizer's
# cold start reads is at most 28.5 MB, a tenth of Lambda's 250 MB unzipped limit.
#
# Usage: infra/size-check.sh [BUILD_DIR] (default .aws-sam/build)
set -euo pipefail

build_dir=${1:-.aws-sam/build}
budget=${SWITCHBOARD_MAX_ZIP_BYTES:-3500000}
layer_budget=${SWITCHBOARD_MAX_LAYER_ZIP_BYTES:-25000000}

python3 - "$build_dir" "$budget" "$layer_budget" <<'PY'
import io, os, sys, zipfile

build_dir, budget, layer_budget = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
entries = sorted(d for d in os.listdir(build_dir) if os.path.isdir(os.path.join(build_dir, d)))
functions = [d for d in entries if os.path.isfile(os.path.join(build_dir, d, "bootstrap"))]
layers = [d for d in entries if d.endswith("Layer")]
if not functions:
    sys.exit(f"size-check: no function was built in {build_dir} (run sam build first)")

def zipped(root):
    buf, raw = io.BytesIO(), 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for folder, _, files in os.walk(root):
            for name in sorted(files):
                path = os.path.join(folder, name)
                raw += os.path.getsize(path)
                z.write(path, os.path.relpath(path, root))
    return raw, len(buf.getvalue())

over = []
print(f"{'function or layer':<28} {'unzipped':>12} {'zipped':>12}  budget")
for name in functions + layers:
    limit = layer_budget if name in layers else budget
    raw, size = zipped(os.path.join(build_dir, name))
    print(f"{name:<28} {raw:>12,} {size:>12,}  {limit:,}")
    if size > limit:
        over.append(name)
if over:
    sys.exit(f"size-check: over the budget: {', '.join(over)}")
print("size-check: every function and layer within its budget")
PY
