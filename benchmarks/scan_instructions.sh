#!/usr/bin/env bash
# Instructions a whole `dajia scan` executes, counted by callgrind (valgrind),
# for one or more builds on one catalog: unlike wall time on a shared VM
# (±15% run to run), the same figure on every run (±0.1%), and it counts
# what the text path's count (text_instructions.sh) leaves out: reading the
# catalog, the join, the assessment function's glue, writing and checking
# the output, linking sellers, the report, startup. Cache misses are not
# modelled: confirm a gain in time with benchmarks/scan_ab.sh. About 50x
# slower than a scan (8 minutes per build for 1M listings here).
#   usage: benchmarks/scan_instructions.sh BIN [BIN ...]
# The catalog is $DAJIA_BENCH_DIR/catalog (default /tmp/dajia-bench, as
# scan_vs_duckdb.sh leaves it); when missing, the first BIN generates 1M
# listings. Each build's risk_scores must equal the first's. Writes
# benchmarks/results/scan_instructions.json (or $DAJIA_SCAN_INSN_OUT).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BIN [BIN ...]" >&2; exit 2; }
command -v valgrind > /dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
# Paths as given, from where the script was started.
BINS=(); for b in "$@"; do BINS+=("$(realpath "$b")"); done
cd "$(dirname "$0")/.."
WORK=${DAJIA_BENCH_DIR:-/tmp/dajia-bench}
OUT=${DAJIA_SCAN_INSN_OUT:-benchmarks/results/scan_instructions.json}
if [ ! -d "$WORK/catalog/listings" ]; then
  mkdir -p "$WORK"
  "${BINS[0]}" gen --out "$WORK/catalog" --listings 1000000 --seed 1
fi
RESULTS=()
i=0
for bin in "${BINS[@]}"; do
  dir="$WORK/insn-$i"
  rm -rf "$dir"
  ir=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" scan \
        --catalog "$WORK/catalog" --out "$dir" --date 2026-11-28 --no-progress 2>&1 > /dev/null |
       sed -nE 's/.*Collected : ([0-9]+).*/\1/p')
  [ "${ir:-0}" -gt 0 ] || { echo "$bin: callgrind counted nothing (run the scan alone)" >&2; exit 1; }
  echo "$bin: $ir instructions" >&2
  RESULTS+=("$bin=$ir=$dir")
  i=$((i + 1))
done
python3 - "$OUT" "$WORK" "${RESULTS[@]}" <<'PY'
import json, sys
import pyarrow.dataset as ds
out, work = sys.argv[1], sys.argv[2]
rows = [dict(zip(("binary", "instructions", "out"), r.rsplit("=", 2))) for r in sys.argv[3:]]
def table(d):
    t = ds.dataset(f"{d}/risk_scores", format="parquet", partitioning="hive")
    return t.to_table(columns=["listing_id", "score", "action", "brand_id", "reasons"]).sort_by("listing_id")
first = table(rows[0]["out"])
n = first.num_rows
for r in rows:
    r["instructions"] = int(r["instructions"])
    r["per_listing"] = round(r["instructions"] / n)
    r["ratio_to_first"] = round(r["instructions"] / rows[0]["instructions"], 4)
    r["same_risk_scores_as_first"] = table(r.pop("out")).equals(first)
    print(f"{r['binary']}: {r['instructions']:,} instructions, {r['per_listing']:,} per listing "
          f"({r['ratio_to_first']}x the first), same risk_scores: {r['same_risk_scores_as_first']}")
json.dump({"what": "instructions of a whole dajia scan (callgrind)", "catalog": f"{work}/catalog",
           "listings": n, "builds": rows}, open(out, "w"), indent=2)
if not all(r["same_risk_scores_as_first"] for r in rows):
    sys.exit("the builds published different risk_scores")
PY
