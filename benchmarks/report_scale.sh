#!/usr/bin/env bash
# The nightly report at scale: generates N listings (default 1,000,000),
# scans them (text signals; no images), then times `dajia report` (the
# figures' SQL over the published output and the catalog, charts, page) and
# headless Chromium loading the page, against Chromium loading an empty
# page (the difference is what the report costs the browser).
#   usage: benchmarks/report_scale.sh [N]     (DAJIA_BIN=path to a release dajia)
# Writes benchmarks/results/report_scale.json.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000000}"
bin="${DAJIA_BIN:-target/release/dajia}"
[ -x "$bin" ] || { echo "build a release dajia first (cargo build --release), or set DAJIA_BIN" >&2; exit 1; }
command -v chromium >/dev/null || { echo "needs Debian's chromium (apt-get install chromium)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
date=2026-11-28
"$bin" gen --out "$work/cat" --listings "$n" --seed 7 --date "$date" >/dev/null
"$bin" scan --catalog "$work/cat" --out "$work/out" --date "$date" --no-progress | head -1
now() { date +%s.%N; }
t0=$(now)
"$bin" report --out "$work/out" --date "$date" --html "$work/report.html"
t1=$(now)
echo '<!DOCTYPE html><html><body></body></html>' > "$work/empty.html"
browse() {
  local s e
  s=$(now)
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile" --dump-dom "file://$1" >/dev/null 2>&1
  e=$(now)
  echo "$e - $s" | bc -l
}
browse "$work/empty.html" >/dev/null # first start warms the profile
empty=$(browse "$work/empty.html")
page=$(browse "$work/report.html")
bytes=$(stat -c %s "$work/report.html")
write=$(echo "$t1 - $t0" | bc -l)
render=$(echo "$page - $empty" | bc -l)
printf 'listings %d\ndajia report: %.2f s, %d bytes\nchromium: report page %.2f s, empty page %.2f s, the report costs %.2f s\n' \
  "$n" "$write" "$bytes" "$page" "$empty" "$render"
mkdir -p benchmarks/results
f3() { printf '%.3f' "$1"; }
cat > benchmarks/results/report_scale.json <<EOF
{"listings": $n, "report_seconds": $(f3 "$write"), "report_bytes": $bytes,
 "chromium_report_seconds": $(f3 "$page"), "chromium_empty_seconds": $(f3 "$empty"), "render_seconds": $(f3 "$render"),
 "binary": "$bin", "measured_at": "$(date -u +%FT%TZ)"}
EOF
