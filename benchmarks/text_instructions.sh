#!/usr/bin/env bash
# Instructions the text path executes per listing, counted by callgrind
# (valgrind), for one or more builds of the `assess_throughput` example:
# a figure that, unlike wall time on a shared VM (±15% run to run), is the
# same on every run, for telling small kernel changes apart. Counts only
# inside `KnowledgeBase::assess` (knowledge base build and jieba's
# dictionary load excluded). Cache misses are not modelled: confirm a gain
# in time with benchmarks/scan_ab.sh.
#   usage: benchmarks/text_instructions.sh TEXTS.tsv BIN [BIN ...]
# TEXTS.tsv: `title<TAB>description` lines with a header (e.g. a generated
# catalog's listings); BIN: `cargo build --release -p dajia-kernels
# --example assess_throughput` copied aside per commit. N (default 20000)
# listings are assessed. Writes benchmarks/results/text_instructions.json
# (or $DAJIA_INSN_OUT).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 TEXTS.tsv BIN [BIN ...]" >&2; exit 2; }
command -v valgrind > /dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
# Paths as given, from where the script was started.
TEXTS=$(realpath "$1"); shift
BINS=(); for b in "$@"; do BINS+=("$(realpath "$b")"); done
cd "$(dirname "$0")/.."
N=${N:-20000}
OUT=${DAJIA_INSN_OUT:-benchmarks/results/text_instructions.json}
SMALL=$(mktemp); trap 'rm -f "$SMALL"' EXIT
head -n $((N + 1)) "$TEXTS" > "$SMALL"
RESULTS=()
for bin in "${BINS[@]}"; do
  # Exactly the method (not its closures or other methods, which would
  # toggle counting off while they run).
  ir=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no \
        '--toggle-collect=*KnowledgeBase>::assess' "$bin" "$N" "$SMALL" 2>&1 |
       sed -nE 's/.*Collected : ([0-9]+).*/\1/p')
  [ "${ir:-0}" -gt 0 ] || { echo "$bin: callgrind counted nothing (not an assess_throughput build, or it failed: run it alone)" >&2; exit 1; }
  echo "$bin: $ir instructions, $((ir / N)) per listing" >&2
  RESULTS+=("$bin=$ir")
done
python3 - "$OUT" "$N" "$TEXTS" "${RESULTS[@]}" <<'PY'
import json, sys
out, n, texts = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [dict(zip(("binary", "instructions"), r.rsplit("=", 1))) for r in sys.argv[4:]]
for r in rows:
    r["instructions"] = int(r["instructions"]); r["per_listing"] = r["instructions"] // n
first = rows[0]["instructions"]
for r in rows:
    r["vs_first"] = round(r["instructions"] / first, 3)
json.dump({"what": "callgrind instructions inside KnowledgeBase::assess", "listings": n, "texts": texts,
           "builds": rows}, open(out, "w"), indent=2)
for r in rows:
    print(f"{r['binary']}: {r['per_listing']} instructions per listing ({r['vs_first']}x the first)")
PY
