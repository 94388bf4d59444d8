#!/usr/bin/env bash
# The test-purchase loop on generated data (issue 21): night 1 is scanned
# with the default weights, `dajia sample` plans BUDGET purchases, the
# generator's simulated buyer answers them from its ground truth, `dajia
# train` learns from every verdict, and night 2 (a catalog generated with
# another seed, never seen in training) is scanned with the defaults and with
# the model. Prints precision/recall before and after, and the plan's hit
# rate per part against its random slice (what a random plan of the same
# budget finds); writes benchmarks/results/learning_loop.json.
#   usage: benchmarks/learning_loop.sh [LISTINGS] [BUDGET]   (default 50000 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50000}
BUDGET=${2:-1000}
WORK=${DAJIA_BENCH_DIR:-/tmp/dajia-loop}
if [ -n "${DAJIA_BIN:-}" ]; then BIN=$DAJIA_BIN
else cargo build -p dajia >&2; BIN=target/debug/dajia; fi
D1=2026-11-28
# Training after the purchases came back (the buyer dates them 1-14 days on).
DT=2026-12-12

rm -rf "$WORK"; mkdir -p "$WORK"
"$BIN" gen --out "$WORK/night1" --listings "$N" --seed 1 --date $D1 >&2
"$BIN" gen --out "$WORK/night2" --listings "$N" --seed 2 --date $D1 >&2
"$BIN" scan --catalog "$WORK/night1" --out "$WORK/out1" --date $D1 --no-progress >&2
"$BIN" sample --catalog "$WORK/night1" --out "$WORK/out1" --date $D1 --budget "$BUDGET" | tee "$WORK/sample.txt" >&2
"$BIN" gen --out "$WORK/night1" --answer-plan "$WORK/out1" --date $D1 | tee "$WORK/bought.txt" >&2
"$BIN" train --catalog "$WORK/night1" --out "$WORK/out1" --date $DT --model-out "$WORK/model.json" | tee "$WORK/train.txt" >&2

eval_night() { # OUT JSON [scan flags]
  "$BIN" scan --catalog "$WORK/night2" --out "$1" --date $D1 --no-progress "${@:3}" >&2
  "$BIN" eval --scores "$1" --labels "$WORK/night2" --json "$2" >/dev/null
}
eval_night "$WORK/out2-default" "$WORK/default.json"
eval_night "$WORK/out2-trained" "$WORK/trained.json" --model "$WORK/model.json"

HITS=$("$BIN" sql --out "$WORK/out1" --read-files-under "$WORK/night1" --format csv -c "
  SELECT p.why, count(*) AS bought, sum(CASE WHEN t.verdict = 'counterfeit' THEN 1 ELSE 0 END) AS counterfeit
  FROM purchase_plan p JOIN '$WORK/night1/test_purchases/part-plan-$D1.parquet' t ON p.listing_id = t.listing_id
  GROUP BY p.why ORDER BY p.why" | tail -n +2)
python3 - "$WORK" "$N" "$BUDGET" "$HITS" <<'PY'
import json, sys
work, n, budget, hits = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
d = json.load(open(f"{work}/default.json"))
t = json.load(open(f"{work}/trained.json"))
m = json.load(open(f"{work}/model.json"))
parts = {}
for line in hits.strip().splitlines():
    why, bought, bad = line.split(",")
    parts[why] = {"bought": int(bought), "counterfeit": int(bad), "hit_rate": int(bad) / max(int(bought), 1)}
plan_bought = sum(p["bought"] for p in parts.values())
plan_bad = sum(p["counterfeit"] for p in parts.values())
plan_rate = plan_bad / max(plan_bought, 1)
random_rate = parts.get("random", {}).get("hit_rate", 0.0)
print(f"night 2 ({n} listings, never trained on)   precision  recall   f1    takedown precision")
for name, e in [("default weights", d), ("trained " + m["version"], t)]:
    print(f"  {name:<38} {e['precision']:.4f}   {e['recall']:.4f}  {e['f1']:.4f}  {e['takedown_precision']:.4f}")
print(f"plan of {budget}: hit rate {plan_rate:.3f} ({plan_bad}/{plan_bought}); random slice {random_rate:.3f}; "
      f"ratio {plan_rate / random_rate if random_rate else float('inf'):.1f}x")
for why, p in sorted(parts.items()):
    print(f"  {why:<8} {p['counterfeit']:>5}/{p['bought']:<5} hit rate {p['hit_rate']:.3f}")
worse = [k for k in ("precision", "recall") if t[k] < d[k]]
print("trained vs default on night 2: " + ("no lower precision or recall" if not worse else "LOWER " + ", ".join(worse)))
out = {"benchmark": "learning_loop", "listings": n, "budget": budget, "model_version": m["version"],
       "night2_default": {k: d[k] for k in ("precision", "recall", "f1", "takedown_precision")},
       "night2_trained": {k: t[k] for k in ("precision", "recall", "f1", "takedown_precision")},
       "plan": parts, "plan_hit_rate": plan_rate, "random_slice_hit_rate": random_rate,
       "exponents": {k: v for k, v in m["model"].items() if k != "name"}, "thresholds": m["thresholds"]}
import os
os.makedirs("benchmarks/results", exist_ok=True)
json.dump(out, open("benchmarks/results/learning_loop.json", "w"), indent=1)
PY
echo "wrote benchmarks/results/learning_loop.json" >&2
