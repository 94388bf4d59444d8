//! The resize kernels' filter tables: the fixed-point bilinear taps that
//! fast_image_resize (the CPU reference, [`super::thumbnail`]) computes for
//! RGB8 images, reproduced bit for bit so that the device kernels give the
//! reference's bytes, not values within a level of them. A one-level
//! difference in a 32×32 thumbnail moves the `descriptor` embedding of a real
//! photo to cosine 0.9989 of the reference; the same taps move it nowhere.
//!
//! Written by hand because fast_image_resize keeps its coefficients private;
//! this follows its `precompute_coefficients` (bilinear filter, support
//! widened by the scale when shrinking, zero taps trimmed at both ends,
//! weights normalised to sum 1) and `Normalizer16` (i16 taps with the largest
//! precision that keeps the largest tap under 2^15, rounding added before the
//! shift, clipped to 0..255). As there, the vertical pass runs first into an
//! RGB8 intermediate (`side` rows of the source's width), then the horizontal
//! pass; an axis whose size does not change gets an identity tap, which gives
//! the same bytes as fast_image_resize skipping that pass.
//! `resample_matches_fast_image_resize` checks it against the crate itself.

/// Extra bits of the i32 accumulator (filter overshoot), as fast_image_resize.
const PRECISION_BITS: u8 = 32 - 8 - 2;
/// Taps are i16.
const MAX_TAP_PRECISION: u8 = 16 - 1;

/// The taps of one axis: for output `o`, `count[o]` taps starting at source
/// index `start[o]`, values `taps[offset[o]..]`, all scaled by 2^precision.
#[derive(Debug, Clone, PartialEq)]
struct AxisTaps {
    precision: i32,
    start: Vec<i32>,
    count: Vec<i32>,
    taps: Vec<i16>,
}

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

fn axis_taps(in_size: u32, out_size: u32) -> AxisTaps {
    debug_assert!(in_size > 0 && out_size > 0);
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let radius = filter_scale; // bilinear support is 1
    let recip = 1.0 / filter_scale;
    let mut weights: Vec<Vec<f64>> = Vec::with_capacity(out_size as usize);
    let mut start = Vec::with_capacity(out_size as usize);
    for o in 0..out_size {
        let in_center = (o as f64 + 0.5) * scale;
        let x_min = (in_center - radius).floor().max(0.0) as u32;
        let x_max = (in_center + radius).ceil().min(in_size as f64) as u32;
        let center = in_center - 0.5;
        let mut first = x_min;
        let mut w: Vec<f64> = Vec::new();
        for x in x_min..x_max {
            let v = bilinear((x as f64 - center) * recip);
            if x == first && v == 0.0 {
                first += 1;
            } else {
                w.push(v);
            }
        }
        let sum: f64 = w.iter().sum();
        while w.last() == Some(&0.0) {
            w.pop();
        }
        if sum != 0.0 {
            w.iter_mut().for_each(|v| *v /= sum);
        }
        start.push(first as i32);
        weights.push(w);
    }
    let max_weight = weights.iter().flatten().copied().fold(0.0f64, f64::max);
    let mut precision = 0u8;
    for p in 0..PRECISION_BITS {
        precision = p;
        if (max_weight * (1i64 << (p + 1)) as f64).round() as i32 >= (1 << MAX_TAP_PRECISION) {
            break;
        }
    }
    let unit = (1i64 << precision) as f64;
    let count = weights.iter().map(|w| w.len() as i32).collect();
    let taps = weights
        .iter()
        .flatten()
        .map(|v| (v * unit).round() as i16)
        .collect();
    AxisTaps {
        precision: precision as i32,
        start,
        count,
        taps,
    }
}

/// A batch's resize tables, laid out as `resize.cu` reads them. Image `i` is
/// `width[i]`×`height[i]` RGB8; its intermediate (vertical pass output) is
/// `side` rows of `width[i]` pixels starting at pixel `tmp_first[i]`.
#[derive(Debug, Clone, Default)]
pub struct ResizeTables {
    pub side: usize,
    pub width: Vec<i32>,
    pub height: Vec<i32>,
    /// Pixel index of each image's intermediate; `n + 1` entries.
    pub tmp_first: Vec<u64>,
    /// Per (image, axis: 0 vertical, 1 horizontal, output): first source
    /// index, tap count, offset into `taps`, as three i32s.
    pub rows: Vec<i32>,
    /// Per (image, axis): the taps' fixed-point precision.
    pub precision: Vec<i32>,
    pub taps: Vec<i16>,
}

impl ResizeTables {
    /// Tables to resize images of `sizes` (width, height) to `side`×`side`.
    pub fn new(sizes: &[(u32, u32)], side: usize) -> Self {
        let mut t = ResizeTables {
            side,
            tmp_first: vec![0],
            ..Default::default()
        };
        for &(w, h) in sizes {
            t.width.push(w as i32);
            t.height.push(h as i32);
            let last = *t.tmp_first.last().expect("starts with 0");
            t.tmp_first.push(last + side as u64 * w as u64);
            for axis in [axis_taps(h, side as u32), axis_taps(w, side as u32)] {
                let mut offset = t.taps.len() as i32;
                for (s, c) in axis.start.iter().zip(&axis.count) {
                    t.rows.extend([*s, *c, offset]);
                    offset += c;
                }
                t.precision.push(axis.precision);
                t.taps.extend(axis.taps);
            }
        }
        t
    }

    pub fn len(&self) -> usize {
        self.width.len()
    }

    pub fn is_empty(&self) -> bool {
        self.width.is_empty()
    }

    /// Pixels of the whole batch's intermediate.
    pub fn tmp_pixels(&self) -> usize {
        *self.tmp_first.last().expect("starts with 0") as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::thumbnail::resize_rgb;
    use image::{Rgb, RgbImage};

    /// The two passes in plain Rust over the tables (what resize.cu does).
    fn resize_with(t: &ResizeTables, i: usize, img: &RgbImage) -> Vec<u8> {
        let (w, h, side) = (img.width() as usize, img.height() as usize, t.side);
        let row = |axis: usize, o: usize| {
            let r = ((i * 2 + axis) * side + o) * 3;
            (
                t.rows[r] as usize,
                t.rows[r + 1] as usize,
                t.rows[r + 2] as usize,
            )
        };
        let apply = |axis: usize, o: usize, get: &dyn Fn(usize) -> u8| -> u8 {
            let p = t.precision[i * 2 + axis];
            let (s, c, off) = row(axis, o);
            let mut acc: i32 = 1 << (p - 1);
            for k in 0..c {
                acc += get(s + k) as i32 * t.taps[off + k] as i32;
            }
            (acc >> p).clamp(0, 255) as u8
        };
        let px = img.as_raw();
        let mut tmp = vec![0u8; side * w * 3];
        for oy in 0..side {
            for x in 0..w {
                for c in 0..3 {
                    tmp[(oy * w + x) * 3 + c] = apply(0, oy, &|y| px[(y * w + x) * 3 + c]);
                }
            }
        }
        let _ = h;
        let mut out = vec![0u8; side * side * 3];
        for oy in 0..side {
            for ox in 0..side {
                for c in 0..3 {
                    out[(oy * side + ox) * 3 + c] = apply(1, ox, &|x| tmp[(oy * w + x) * 3 + c]);
                }
            }
        }
        out
    }

    #[test]
    fn resample_matches_fast_image_resize() {
        let sizes = [
            (640, 480),
            (1600, 1200),
            (321, 977),
            (32, 32),
            (32, 500),
            (17, 23),
            (1, 1),
            (225, 224),
            (7, 300),
        ];
        let mut seed = 0x9e37_79b9u32;
        for side in [32usize, 224] {
            let t = ResizeTables::new(&sizes, side);
            for (i, &(w, h)) in sizes.iter().enumerate() {
                let img = RgbImage::from_fn(w, h, |x, y| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    let n = (seed % 64) as u8;
                    Rgb([
                        ((x * 255 / w) as u8).saturating_add(n),
                        ((y * 255 / h) as u8).saturating_sub(n),
                        if (x / 9 + y / 7) % 2 == 0 {
                            220
                        } else {
                            30 + n
                        },
                    ])
                });
                assert_eq!(
                    resize_with(&t, i, &img),
                    resize_rgb(&img, side as u32),
                    "{w}x{h} -> {side}"
                );
            }
        }
    }

    #[test]
    fn tables_lay_out_every_image() {
        let t = ResizeTables::new(&[(640, 480), (10, 20)], 32);
        assert_eq!(t.len(), 2);
        assert_eq!(t.tmp_first, vec![0, 32 * 640, 32 * 640 + 32 * 10]);
        assert_eq!(t.rows.len(), 2 * 2 * 32 * 3);
        assert_eq!(t.precision.len(), 4);
        // Growing 10 → 32: at most two taps per output.
        assert!(t.rows[(3 * 32) * 3..].chunks(3).all(|r| r[1] <= 2));
        assert!(ResizeTables::new(&[], 32).is_empty());
    }
}
