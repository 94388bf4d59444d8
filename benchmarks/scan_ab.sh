#!/usr/bin/env bash
# Two builds of `dajia scan` on the same catalog, side by side: runs them
# alternately RUNS times each (default 5; single runs on a shared 2-core
# machine vary by ±15%), prints the median wall, user CPU and
# score_and_publish seconds of each and the ratio, checks both published the
# same risk_scores (ids, scores, actions, brands, reasons), and writes
# benchmarks/results/scan_ab.json (or $DAJIA_AB_OUT).
#   usage: benchmarks/scan_ab.sh BIN_BEFORE BIN_AFTER [RUNS]
# The catalog is $DAJIA_BENCH_DIR/catalog (default /tmp/dajia-bench, as
# scan_vs_duckdb.sh leaves it); when missing, BIN_BEFORE generates 1M listings.
# DAJIA_AB_RULES_DIFFER=1 compares builds whose rules differ (e.g. a release
# before a detection change): the risk_scores are still compared and the
# result recorded, but a difference is not an error.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BIN_BEFORE BIN_AFTER [RUNS]" >&2; exit 2; }
# Paths as given, from where the script was started.
A=$(realpath "$1") B=$(realpath "$2") RUNS=${3:-5}
cd "$(dirname "$0")/.."
WORK=${DAJIA_BENCH_DIR:-/tmp/dajia-bench}
OUT=${DAJIA_AB_OUT:-benchmarks/results/scan_ab.json}
if [ ! -d "$WORK/catalog/listings" ]; then
  mkdir -p "$WORK"
  "$A" gen --out "$WORK/catalog" --listings 1000000 --seed 1
fi
TIMES=$(mktemp)
trap 'rm -f "$TIMES"' EXIT
for i in $(seq "$RUNS"); do
  for side in before after; do
    bin=$A; [ "$side" = after ] && bin=$B
    rm -rf "$WORK/ab-$side"
    /usr/bin/time -f "%e %U %S" -o "$WORK/time.txt" \
      "$bin" scan --catalog "$WORK/catalog" --out "$WORK/ab-$side" --date 2026-11-28 --no-progress > /dev/null
    # The stage's seconds from the run's manifest (a failure here stops the script).
    score=$(python3 -c "import json,glob,sys; d=json.load(open(glob.glob(sys.argv[1] + '/runs/*.json')[0])); print(dict(d['stages_seconds'])['score_and_publish'])" "$WORK/ab-$side")
    echo "$side $(cat "$WORK/time.txt") $score" | tee -a "$TIMES" >&2
  done
done
python3 - "$TIMES" "$WORK" "$OUT" "$A" "$B" "${DAJIA_AB_RULES_DIFFER:-0}" <<'PY'
import json, statistics, sys
import pyarrow.dataset as ds
times, work, out, a, b, rules_differ = sys.argv[1:7]
runs = {"before": [], "after": []}
for line in open(times):
    side, wall, user, sys_, score = line.split()
    runs[side].append({"wall": float(wall), "user": float(user), "sys": float(sys_), "score_and_publish": float(score)})
def table(side):
    t = ds.dataset(f"{work}/ab-{side}/risk_scores", format="parquet", partitioning="hive")
    return t.to_table(columns=["listing_id", "score", "action", "brand_id", "reasons"]).sort_by("listing_id")
try:
    same = table("before").equals(table("after"))
except Exception as e:  # e.g. an older build's table lacks a column
    if rules_differ != "1":
        raise
    print(f"risk_scores not comparable: {e}", file=sys.stderr)
    same = False
res = {"what": "dajia scan of one catalog by two builds, alternating", "binaries": {"before": a, "after": b},
       "same_risk_scores": same, "rules_differ": rules_differ == "1"}
for side, rs in runs.items():
    res[side] = {k: [r[k] for r in rs] for k in ("wall", "user", "sys", "score_and_publish")}
    res[side].update({f"median_{k}": statistics.median(r[k] for r in rs) for k in ("wall", "user", "score_and_publish")})
for k in ("wall", "user", "score_and_publish"):
    res[f"ratio_{k}"] = round(res["before"][f"median_{k}"] / res["after"][f"median_{k}"], 3)
json.dump(res, open(out, "w"), indent=2)
print(f"median wall {res['before']['median_wall']:.2f} s -> {res['after']['median_wall']:.2f} s ({res['ratio_wall']}x); "
      f"user {res['before']['median_user']:.2f} -> {res['after']['median_user']:.2f} s ({res['ratio_user']}x); "
      f"score_and_publish {res['before']['median_score_and_publish']:.2f} -> {res['after']['median_score_and_publish']:.2f} s "
      f"({res['ratio_score_and_publish']}x); same risk_scores: {same}")
if not same and rules_differ != "1":
    sys.exit("the two builds published different risk_scores")
PY
