#!/usr/bin/env bash
# Build dajia, generate a demo catalog, run the nightly scan on it, and show
# its summary and its accuracy against the generated ground truth. Then the
# image loop: `dajia kb` turns the night's takedowns into known fakes, and the
# next night's scan matches copies of them. With the OCR models installed the
# scans also read the captions drawn over photos (`ocr:` reasons).
#   usage: scripts/demo.sh [LISTINGS]   (default 100000; output under ./demo/)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
cargo build -p dajia
BIN=target/debug/dajia
# OCR models and the fonts the generated captions are drawn in (idempotent).
bash scripts/setup-models.sh >&2
rm -rf demo
"$BIN" gen --out demo/catalog --listings "$N" --seed 42 --image-share 0.05
"$BIN" scan --catalog demo/catalog --out demo/out --date 2026-11-28
"$BIN" eval --scores demo/out --labels demo/catalog
"$BIN" kb --catalog demo/catalog --out demo/kb --scores demo/out
"$BIN" scan --catalog demo/catalog --out demo/out --date 2026-11-29 --image-kb demo/kb --no-progress
"$BIN" eval --scores demo/out --labels demo/catalog --date 2026-11-29
echo
echo "Query the results: $BIN sql --catalog demo/catalog --out demo/out --image-kb demo/kb"
