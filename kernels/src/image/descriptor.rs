//! The `descriptor` embedder: a global image descriptor with no learned
//! weights, built to survive what resellers do to a photo (crop a little,
//! rescale, recompress, mirror, blur, stamp a watermark) while telling
//! different photos apart.
//!
//! From a 32×32 RGB thumbnail, every part mirror-invariant by construction:
//! 1. layout: the 63 lowest 2-D DCT-II frequencies of the grey thumbnail (DC
//!    dropped: brightness shifts do not matter; odd horizontal frequencies as
//!    magnitudes, since mirroring only flips their sign), lower ones weighted
//!    up since crops disturb the higher ones most;
//! 2. colour layout: mean chroma (two opponent channels, brightness-free) on
//!    a 4×4 grid, mirrored columns folded into sum and absolute difference;
//! 3. colour histogram: soft hue×saturation and grey-level bins (28);
//! 4. texture: gradient-orientation histograms (8 bins, θ and π−θ folded)
//!    over four mirror-symmetric regions (whole, centre, top, bottom),
//!    weighted by gradient magnitude.
//!
//! Histograms are square-rooted (Hellinger) and centred, every block is
//! L2-normalised and weighted, and the whole is L2-normalised. Each step is a
//! fixed loop over the thumbnail's pixels: the CUDA backend mirrors it one
//! image per thread block.

use std::f32::consts::PI;
use std::sync::OnceLock;

/// Thumbnail side the descriptor reads.
pub const SIDE: usize = 32;
const DCT_K: usize = 8;
const DCT_LEN: usize = DCT_K * DCT_K - 1;
const GRID: usize = 4;
const CHROMA_LEN: usize = GRID * GRID * 2;
const HUE_BINS: usize = 12;
const GREY_BINS: usize = 4;
const COLOUR_LEN: usize = HUE_BINS * 2 + GREY_BINS;
const ORIENT_BINS: usize = 8;
const ORIENT_LEN: usize = ORIENT_BINS * 4;
/// Length of a descriptor.
pub const DIM: usize = DCT_LEN + CHROMA_LEN + COLOUR_LEN + ORIENT_LEN;

/// Relative weights of the blocks (layout, colour layout, colour histogram,
/// texture), chosen with `dajia bench images`.
const BLOCK_WEIGHTS: [f32; 4] = [0.5, 1.0, 1.0, 0.5];

fn cos_table() -> &'static [[f32; SIDE]; DCT_K] {
    static T: OnceLock<[[f32; SIDE]; DCT_K]> = OnceLock::new();
    T.get_or_init(|| {
        std::array::from_fn(|k| {
            std::array::from_fn(|n| (PI * (2 * n + 1) as f32 * k as f32 / (2 * SIDE) as f32).cos())
        })
    })
}

/// Adds `w` to a histogram at fractional position `pos` split linearly
/// between the two nearest bins (`wrap` for circular quantities).
#[inline]
fn soft_add(hist: &mut [f32], pos: f32, w: f32, wrap: bool) {
    let n = hist.len();
    let p = pos - 0.5;
    let lo = p.floor();
    let f = p - lo;
    let (i0, i1) = if wrap {
        (
            (lo as isize).rem_euclid(n as isize) as usize,
            (lo as isize + 1).rem_euclid(n as isize) as usize,
        )
    } else {
        (
            (lo.max(0.0) as usize).min(n - 1),
            ((lo + 1.0).max(0.0) as usize).min(n - 1),
        )
    };
    hist[i0] += w * (1.0 - f);
    hist[i1] += w * f;
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 1e-12 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Hellinger-map and centre a histogram block (so that unrelated images are
/// not similar merely because all histograms are positive).
fn hellinger_centred(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = x.max(0.0).sqrt());
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    v.iter_mut().for_each(|x| *x -= mean);
}

/// The descriptor of one `SIDE`×`SIDE` RGB8 thumbnail, L2-normalised.
pub fn describe(thumb: &[u8]) -> Vec<f32> {
    assert_eq!(
        thumb.len(),
        SIDE * SIDE * 3,
        "descriptor wants a {SIDE}x{SIDE} RGB thumbnail"
    );
    let c = cos_table();
    let px = |x: usize, y: usize| -> [f32; 3] {
        let p = &thumb[(y * SIDE + x) * 3..][..3];
        [
            p[0] as f32 / 255.0,
            p[1] as f32 / 255.0,
            p[2] as f32 / 255.0,
        ]
    };
    let luma = |p: [f32; 3]| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];

    let mut grey = [[0f32; SIDE]; SIDE];
    let mut chroma = [0f32; CHROMA_LEN];
    let mut colour = [0f32; COLOUR_LEN];
    let cell = SIDE / GRID;
    for y in 0..SIDE {
        for x in 0..SIDE {
            let [r, g, b] = px(x, y);
            grey[y][x] = luma([r, g, b]);
            let k = ((y / cell) * GRID + x / cell) * 2;
            chroma[k] += (r - g) * std::f32::consts::FRAC_1_SQRT_2;
            chroma[k + 1] += (r + g - 2.0 * b) / 6f32.sqrt();
            let max = r.max(g).max(b);
            let min = r.min(g).min(b);
            let sat = if max > 0.0 { (max - min) / max } else { 0.0 };
            if sat < 0.2 || max < 0.15 {
                soft_add(
                    &mut colour[HUE_BINS * 2..],
                    max * GREY_BINS as f32,
                    1.0,
                    false,
                );
            } else {
                let d = max - min;
                let h6 = if max == r {
                    ((g - b) / d).rem_euclid(6.0)
                } else if max == g {
                    (b - r) / d + 2.0
                } else {
                    (r - g) / d + 4.0
                };
                let level = if sat < 0.55 { 0 } else { HUE_BINS };
                soft_add(
                    &mut colour[level..level + HUE_BINS],
                    h6 / 6.0 * HUE_BINS as f32,
                    1.0,
                    true,
                );
            }
        }
    }

    // Layout: separable DCT-II of the grey thumbnail.
    let mut rows = [[0f32; DCT_K]; SIDE];
    for y in 0..SIDE {
        for u in 0..DCT_K {
            rows[y][u] = (0..SIDE).map(|x| grey[y][x] * c[u][x]).sum();
        }
    }
    let mut layout = Vec::with_capacity(DCT_LEN);
    for v in 0..DCT_K {
        for u in 0..DCT_K {
            if u == 0 && v == 0 {
                continue;
            }
            let coef: f32 = (0..SIDE).map(|y| c[v][y] * rows[y][u]).sum();
            // Mirroring flips the sign of odd horizontal frequencies only.
            let coef = if u % 2 == 1 { coef.abs() } else { coef };
            layout.push(coef / (1.0 + 0.3 * (u + v) as f32));
        }
    }

    // Texture: folded gradient orientations.
    let mut orient = [0f32; ORIENT_LEN];
    for y in 1..SIDE - 1 {
        for x in 1..SIDE - 1 {
            let gx = grey[y][x + 1] - grey[y][x - 1];
            let gy = grey[y + 1][x] - grey[y - 1][x];
            let mag = (gx * gx + gy * gy).sqrt();
            if mag < 1e-3 {
                continue;
            }
            let theta = gy.atan2(gx).rem_euclid(PI);
            // Mirror-symmetric regions (whole, centre, top, bottom) and
            // folded orientations: θ and π−θ are mirror images.
            let folded = theta.min(PI - theta);
            let c4 = SIDE / 4..SIDE * 3 / 4;
            let regs = [
                true,
                c4.contains(&x) && c4.contains(&y),
                y < SIDE / 2,
                y >= SIDE / 2,
            ];
            for (k, inside) in regs.iter().enumerate() {
                if *inside {
                    soft_add(
                        &mut orient[k * ORIENT_BINS..][..ORIENT_BINS],
                        folded / (PI / 2.0) * ORIENT_BINS as f32,
                        mag,
                        false,
                    );
                }
            }
        }
    }

    let mut chroma = chroma.to_vec();
    let mut colour = colour.to_vec();
    let mut orient = orient.to_vec();
    hellinger_centred(&mut colour);
    for k in 0..4 {
        hellinger_centred(&mut orient[k * ORIENT_BINS..][..ORIENT_BINS]);
    }
    // Chroma means are already signed and centred on grey. Mirrored columns
    // (0,3) and (1,2) are folded into their sum and absolute difference.
    chroma.iter_mut().for_each(|v| *v /= (cell * cell) as f32);
    {
        let mut folded = Vec::with_capacity(CHROMA_LEN);
        for gy in 0..GRID {
            for gx in 0..GRID / 2 {
                for ch in 0..2 {
                    let a = chroma[(gy * GRID + gx) * 2 + ch];
                    let b = chroma[(gy * GRID + GRID - 1 - gx) * 2 + ch];
                    folded.push(a + b);
                    folded.push((a - b).abs());
                }
            }
        }
        chroma = folded;
    }

    let mut out = Vec::with_capacity(DIM);
    for (mut block, w) in [layout, chroma, colour, orient]
        .into_iter()
        .zip(BLOCK_WEIGHTS)
    {
        normalise(&mut block);
        out.extend(block.iter().map(|v| v * w));
    }
    normalise(&mut out);
    out
}
