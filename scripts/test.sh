#!/usr/bin/env bash
# Every test, with what the tests need installed first: the models (PyPI
# wheels and Debian fonts checked by sha256), NVRTC for the CUDA build's
# kernel compilation, the S3 test's local server (moto, from PyPI), the
# Flight SQL test's ADBC client (PyPI) and Chromium for the report's browser
# test (Debian). The
# REQUIRE variables turn a missing model, S3 server or NVRTC into a failure,
# not a skip; a test that still skips says why ("... skipped: ..."), and the
# summary at the end lists them. `.ci/run` is this script.
#   usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo --version
# The build shares a small disk: say how much is free (a full debug build of
# both feature sets needs ~20 GB), and build without incremental state (a
# fresh clone gains nothing from it and it doubles the size of the workspace
# crates' artifacts).
df -h . || true
export CARGO_INCREMENTAL=0
export DAJIA_MODELS="${DAJIA_MODELS:-$PWD/models}"
export DAJIA_REQUIRE_MODELS=1
bash scripts/setup-models.sh "$DAJIA_MODELS"
bash scripts/setup-nvrtc.sh "$DAJIA_MODELS/nvrtc"
# The S3 test's local S3-compatible server (jobs/tests/s3.rs starts it).
python3 -m pip install --quiet --disable-pip-version-check "moto[server]==5.2.1"
export DAJIA_REQUIRE_S3=1
# The Flight SQL test's client: ADBC's Flight SQL driver, as a notebook
# user installs it (jobs/tests/fixtures/adbc_client.py).
python3 -m pip install --quiet --disable-pip-version-check \
  "adbc-driver-flightsql==1.13.0" "pyarrow==26.0.1"
export DAJIA_REQUIRE_ADBC=1
# Headless Chromium renders the nightly HTML report in a test (Debian's
# package, installed as root or with passwordless sudo). Where it is
# installed the test must run; where it cannot be, the test skips and says
# so in the summary below, rather than failing every other test's run.
if ! command -v chromium >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  { $sudo apt-get update -qq &&
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ||
    echo "warning: could not install chromium; the report's browser test will skip"
fi
if command -v chromium >/dev/null; then
  export DAJIA_REQUIRE_CHROMIUM=1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# 1. The default (CPU) build.
status=0
cargo test --workspace --locked --no-fail-fast -- --show-output 2>&1 | tee -a "$log" || status=1
# 2. The CUDA build, on a machine with or without a GPU: it must compile
# without a CUDA toolkit, every kernel must compile with NVRTC
# (DAJIA_REQUIRE_NVRTC), and without a GPU the GPU tests skip with a message.
# The jobs crate has no CUDA code of its own, so of its integration tests
# only `device` (the "no CUDA device" path) runs again: each links DataFusion
# and Ballista (~0.8 GB apiece), and the disk is small. The whole workspace
# stays selected so that dependencies resolve to the same features as above
# and are not built a second time.
export LD_LIBRARY_PATH="$DAJIA_MODELS/nvrtc/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export DAJIA_REQUIRE_NVRTC=1
# (`--bin dajia-gpu-bench` compiles the GPU benchmark with CUDA; the dajia
# binary is built for the `device` test. Neither has unit tests, and a test
# harness of the dajia binary would be one more ~1 GB link.) No `--lib`: the
# libraries' unit tests do not depend on the feature (what does, the device
# choice and nvJPEG loading, is in `device_choice`), and their test harnesses
# under `cuda` cost CI minutes of compiling (the jobs crate's above all).
cargo test --workspace --locked --no-fail-fast --features dajia-kernels/cuda \
  --bin dajia-gpu-bench --test nvrtc --test parity --test runtime --test models_parity --test device --test device_choice \
  -- --show-output 2>&1 | tee -a "$log" || status=1
df -h . || true
echo
echo "== summary =="
grep -E '^test result:' "$log" | awk '{p+=$4; f+=$6; i+=$8} END {printf "%d passed, %d failed, %d ignored\n", p, f, i}'
# Passing tests' output is shown (--show-output), so their skip messages
# ("... skipped: why") are in the log.
skipped=$(grep -E 'skipped:' "$log" | sort | uniq -c || true)
echo "$(printf '%s' "$skipped" | grep -c . || true) kinds of skip (a test that found no GPU, say; each says why):"
printf '%s\n' "$skipped"
exit "$status"
