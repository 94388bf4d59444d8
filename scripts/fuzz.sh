#!/usr/bin/env bash
# Fuzzing (issue 19, item 5): builds the cargo-fuzz targets in fuzz/ (nightly
# toolchain, cargo-fuzz: `cargo install cargo-fuzz`) and runs each for
# SECONDS (default 600), JOBS targets at a time (default 1), one libFuzzer
# process each. Corpora grow in fuzz/corpus/<target> (seeded from
# fuzz/seeds/<target> where it exists), crashes land in
# fuzz/artifacts/<target>/. Prints executions, corpus size and crashes per
# target and writes benchmarks/results/fuzz.json (REPORT_ONLY=1: only that).
#   usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(image_decode parquet_salvage text_signals ocr_boxes plan_codec sql_split)
JOBS=${JOBS:-1}
# REPORT_ONLY=1: no build, no fuzzing; summarise the logs of the last run.
if [ -z "${REPORT_ONLY:-}" ]; then
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2; exit 2; }
# --dev: debug assertions on (an overflow is a finding); -s none: safe Rust,
# no sanitizer needed, and a build this machine can afford.
(cd fuzz && CARGO_INCREMENTAL=0 cargo +nightly fuzz build --dev -s none) >&2
BIN=fuzz/target/x86_64-unknown-linux-gnu/debug
mkdir -p fuzz/logs
one() {
  local t=$1
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  [ -d "fuzz/seeds/$t" ] && cp -n fuzz/seeds/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
  # -rss_limit_mb: a decoder that allocates past it is a finding too.
  "$BIN/$t" "fuzz/corpus/$t" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=20 \
    -max_len=65536 -len_control=0 -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
    > "fuzz/logs/$t.log" 2>&1 || true
}
export -f one; export SECS BIN
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'one {}'
fi

printf '%-16s %14s %10s %8s %8s\n' target executions exec/s corpus crashes
rows=""
for t in "${TARGETS[@]}"; do
  log=fuzz/logs/$t.log
  runs=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$log" | tail -1 || true)
  rate=$(grep -oP 'stat::average_exec_per_sec:\s*\K[0-9]+' "$log" | tail -1 || true)
  corpus=$(ls "fuzz/corpus/$t" | wc -l)
  crashes=$(ls "fuzz/artifacts/$t" | wc -l)
  printf '%-16s %14s %10s %8s %8s\n' "$t" "${runs:-?}" "${rate:-?}" "$corpus" "$crashes"
  rows+="$t ${runs:-null} ${rate:-null} $corpus $crashes"$'\n'
done
# Merged into the results file by target: a run of some targets keeps the
# others' figures.
mkdir -p benchmarks/results
ROWS="$rows" SECS="$SECS" TOOLCHAIN="$(rustc +nightly --version)" python3 - <<'PY'
import json, os, datetime
path = "benchmarks/results/fuzz.json"
try:
    doc = json.load(open(path))
except (OSError, ValueError):
    doc = {"targets": []}
by = {t["target"]: t for t in doc.get("targets", [])}
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
for line in os.environ["ROWS"].splitlines():
    t, runs, rate, corpus, crashes = line.split()
    num = lambda v: None if v == "null" else int(v)
    by[t] = {"target": t, "date": now, "seconds": int(os.environ["SECS"]), "executions": num(runs),
             "exec_per_second": num(rate), "corpus": int(corpus), "crashes": int(crashes)}
doc = {"toolchain": os.environ["TOOLCHAIN"], "build": "cargo fuzz build --dev -s none",
       "targets": [by[k] for k in sorted(by)]}
json.dump(doc, open(path, "w"), indent=1)
PY
echo "wrote benchmarks/results/fuzz.json" >&2
