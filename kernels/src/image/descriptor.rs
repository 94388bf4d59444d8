//! The `descriptor` embedder: a global image descriptor with no learned
//! weights, built to survive what resellers do to a photo (crop a little,
//! rescale, recompress, mirror, blur, stamp a watermark) while telling
//! different photos apart.
//!
//! From a 32×32 RGB thumbnail it concatenates three L2-normalised blocks:
//! - layout: the 35 lowest 2-D DCT-II frequencies of the grey thumbnail (DC
//!   dropped, so brightness shifts do not matter; odd horizontal frequencies
//!   as magnitudes, since mirroring only flips their sign);
//! - colour: soft hue×saturation and grey-level histograms (28 bins) over
//!   four mirror-symmetric regions (whole, centre, top half, bottom half);
//! - texture: gradient-orientation histograms (6 bins, orientations folded
//!   so θ and π−θ, mirror images of each other, share a bin) over the same
//!   regions, weighted by gradient magnitude.
//!
//! Histograms are square-rooted (Hellinger) before normalising. Every step is
//! a fixed loop over the thumbnail's pixels: the CUDA backend mirrors it one
//! image per thread block.

use std::f32::consts::PI;
use std::sync::OnceLock;

/// Thumbnail side the descriptor reads.
pub const SIDE: usize = 32;
const DCT_K: usize = 6;
const DCT_LEN: usize = DCT_K * DCT_K - 1;
const HUE_BINS: usize = 12;
const GREY_BINS: usize = 4;
const COLOUR_BINS: usize = HUE_BINS * 2 + GREY_BINS;
const ORIENT_BINS: usize = 6;
const REGIONS: usize = 4;
const COLOUR_LEN: usize = COLOUR_BINS * REGIONS;
const ORIENT_LEN: usize = ORIENT_BINS * REGIONS;
/// Length of a descriptor.
pub const DIM: usize = DCT_LEN + COLOUR_LEN + ORIENT_LEN;

/// Relative weights of the blocks (layout, colour, texture).
const BLOCK_WEIGHTS: [f32; 3] = [1.0, 1.0, 0.6];

fn cos_table() -> &'static [[f32; SIDE]; DCT_K] {
    static T: OnceLock<[[f32; SIDE]; DCT_K]> = OnceLock::new();
    T.get_or_init(|| {
        std::array::from_fn(|k| {
            std::array::from_fn(|n| (PI * (2 * n + 1) as f32 * k as f32 / (2 * SIDE) as f32).cos())
        })
    })
}

/// Which of the four regions a pixel belongs to (a pixel is in "whole" and
/// in one half, and maybe in the centre).
#[inline]
fn regions(x: usize, y: usize) -> [bool; REGIONS] {
    let c = SIDE / 4..SIDE * 3 / 4;
    [true, c.contains(&x) && c.contains(&y), y < SIDE / 2, y >= SIDE / 2]
}

/// Adds `w` to a histogram at fractional position `pos` split linearly
/// between the two nearest bins (`wrap` for circular hue).
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

/// The descriptor of one `SIDE`×`SIDE` RGB8 thumbnail, L2-normalised.
pub fn describe(thumb: &[u8]) -> Vec<f32> {
    assert_eq!(thumb.len(), SIDE * SIDE * 3, "descriptor wants a {SIDE}x{SIDE} RGB thumbnail");
    let mut grey = [[0f32; SIDE]; SIDE];
    let mut colour = [0f32; COLOUR_LEN];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let p = &thumb[(y * SIDE + x) * 3..][..3];
            let (r, g, b) = (p[0] as f32 / 255.0, p[1] as f32 / 255.0, p[2] as f32 / 255.0);
            grey[y][x] = 0.299 * r + 0.587 * g + 0.114 * b;
            let max = r.max(g).max(b);
            let min = r.min(g).min(b);
            let sat = if max > 0.0 { (max - min) / max } else { 0.0 };
            let reg = regions(x, y);
            for (k, inside) in reg.iter().enumerate() {
                if !inside {
                    continue;
                }
                let hist = &mut colour[k * COLOUR_BINS..][..COLOUR_BINS];
                if sat < 0.2 || max < 0.15 {
                    soft_add(&mut hist[HUE_BINS * 2..], max * GREY_BINS as f32, 1.0, false);
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
                        &mut hist[level..level + HUE_BINS],
                        h6 / 6.0 * HUE_BINS as f32,
                        1.0,
                        true,
                    );
                }
            }
        }
    }

    // Layout: separable DCT-II of the grey thumbnail, lowest DCT_K² terms.
    let c = cos_table();
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
            layout.push(if u % 2 == 1 { coef.abs() } else { coef });
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
            let folded = theta.min(PI - theta); // [0, π/2]
            let pos = folded / (PI / 2.0) * ORIENT_BINS as f32;
            for (k, inside) in regions(x, y).iter().enumerate() {
                if *inside {
                    soft_add(&mut orient[k * ORIENT_BINS..][..ORIENT_BINS], pos, mag, false);
                }
            }
        }
    }

    let mut out = Vec::with_capacity(DIM);
    let mut push = |mut block: Vec<f32>, w: f32, sqrt: bool| {
        if sqrt {
            block.iter_mut().for_each(|v| *v = v.sqrt());
        }
        normalise(&mut block);
        out.extend(block.iter().map(|v| v * w));
    };
    push(layout, BLOCK_WEIGHTS[0], false);
    push(colour.to_vec(), BLOCK_WEIGHTS[1], true);
    push(orient.to_vec(), BLOCK_WEIGHTS[2], true);
    normalise(&mut out);
    out
}
