//! The second, independent check of an image match. A global descriptor
//! (or embedding) says two photos look alike overall; a photo that shares
//! a stock photograph with a brand's official image, without the brand's
//! product or mark, looks alike overall too. Before a match becomes a
//! reason, the two images are compared *locally*: both are reduced to small
//! grey prints (96×96), the reference is aligned to the query (mirror, and crops of
//! up to a sixth of each side, as resellers crop: found from the row and
//! column brightness profiles, then refined pixel by pixel), and the share of grid
//! cells that agree in structure (normalised cross-correlation) and
//! brightness is the agreement. A copy agrees almost everywhere; a
//! different product on the same background disagrees where the product
//! and its mark are.
//!
//! Hand-written: a few hundred pixel comparisons over prints of 48×48; no
//! image crate does aligned cell-wise correlation.

use image::RgbImage;

use super::decode::{decode, DecodeLimits};
use super::thumbnail::resize_rgb;
use super::ImageError;

/// Side of a print.
pub const SIDE: usize = 96;
const CELL: usize = 8;
const GRID: usize = SIDE / CELL;
/// Most print pixels cropped from one side of the reference (about 16%).
const MAX_CROP: usize = 15;

/// Default agreement at or above which a match holds (config
/// `images.verify_threshold`). Chosen between copies and stock-photo
/// look-alikes of `dajia gen` and `dajia bench images` (README, "Images").
pub const DEFAULT_THRESHOLD: f32 = 0.93;

/// The grey print of an image.
pub fn print(img: &RgbImage) -> Vec<u8> {
    let rgb = resize_rgb(img, SIDE as u32);
    rgb.chunks_exact(3)
        .map(|p| ((p[0] as u32 * 77 + p[1] as u32 * 150 + p[2] as u32 * 29) >> 8) as u8)
        .collect()
}

/// Decodes (with the scan's guards) and prints.
pub fn print_bytes(bytes: &[u8], limits: &DecodeLimits) -> Result<Vec<u8>, ImageError> {
    decode(bytes, limits).map(|img| print(&img))
}

/// Samples `reference` (a print) over the window `[x0, x1) × [y0, y1)`,
/// stretched to a full print, mirrored when asked (bilinear).
fn warp(reference: &[u8], x0: f32, x1: f32, y0: f32, y1: f32, mirror: bool, out: &mut [f32]) {
    let sx = (x1 - x0) / SIDE as f32;
    let sy = (y1 - y0) / SIDE as f32;
    for y in 0..SIDE {
        let fy = (y0 + (y as f32 + 0.5) * sy - 0.5).clamp(0.0, (SIDE - 1) as f32);
        let (iy, ty) = (fy as usize, fy.fract());
        let iy1 = (iy + 1).min(SIDE - 1);
        for x in 0..SIDE {
            let xs = if mirror { SIDE - 1 - x } else { x };
            let fx = (x0 + (xs as f32 + 0.5) * sx - 0.5).clamp(0.0, (SIDE - 1) as f32);
            let (ix, tx) = (fx as usize, fx.fract());
            let ix1 = (ix + 1).min(SIDE - 1);
            let p = |yy: usize, xx: usize| reference[yy * SIDE + xx] as f32;
            let top = p(iy, ix) * (1.0 - tx) + p(iy, ix1) * tx;
            let bottom = p(iy1, ix) * (1.0 - tx) + p(iy1, ix1) * tx;
            out[y * SIDE + x] = top * (1.0 - ty) + bottom * ty;
        }
    }
}

/// Share of cells of `q` and `w` (prints as floats) that agree.
fn cells_agree(q: &[f32], w: &[f32]) -> f32 {
    let mut agree = 0;
    for gy in 0..GRID {
        for gx in 0..GRID {
            let (mut sq, mut sw, mut sqq, mut sww, mut sqw) = (0f32, 0f32, 0f32, 0f32, 0f32);
            for y in gy * CELL..(gy + 1) * CELL {
                for x in gx * CELL..(gx + 1) * CELL {
                    let (a, b) = (q[y * SIDE + x], w[y * SIDE + x]);
                    sq += a;
                    sw += b;
                    sqq += a * a;
                    sww += b * b;
                    sqw += a * b;
                }
            }
            let n = (CELL * CELL) as f32;
            let (mq, mw) = (sq / n, sw / n);
            let vq = (sqq / n - mq * mq).max(0.0);
            let vw = (sww / n - mw * mw).max(0.0);
            let (dq, dw) = (vq.sqrt(), vw.sqrt());
            let dmean = (mq - mw).abs();
            let ok = if dq < 6.0 && dw < 6.0 {
                // Both flat: the same tone.
                dmean <= 25.0
            } else if dq < 12.0 || dw < 12.0 {
                // Faint texture on one side: tone and contrast alike.
                dmean <= 25.0 && (dq - dw).abs() <= 8.0
            } else {
                let ncc = (sqw / n - mq * mw) / (dq * dw);
                ncc >= 0.5 && dmean <= 40.0
            };
            agree += ok as usize;
        }
    }
    agree as f32 / (GRID * GRID) as f32
}

/// Mean brightness of each column and each row of a print.
fn profiles(p: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut cols = vec![0f32; SIDE];
    let mut rows = vec![0f32; SIDE];
    for y in 0..SIDE {
        for x in 0..SIDE {
            cols[x] += p[y * SIDE + x];
            rows[y] += p[y * SIDE + x];
        }
    }
    (cols, rows)
}

fn ncc(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len() as f32;
    let (ma, mb) = (a.iter().sum::<f32>() / n, b.iter().sum::<f32>() / n);
    let (mut sab, mut saa, mut sbb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (x - ma, y - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt().max(1e-6)
}

/// The window `[lo, SIDE - hi)` of the reference profile that, stretched to
/// the full side, best matches the query profile.
fn best_window(query: &[f32], reference: &[f32]) -> (usize, usize) {
    let mut best = (0, 0, f32::MIN);
    let mut s = vec![0f32; SIDE];
    for lo in 0..=MAX_CROP {
        for hi in 0..=MAX_CROP {
            let (a, b) = (lo as f32, (SIDE - hi) as f32);
            let step = (b - a) / SIDE as f32;
            for (i, v) in s.iter_mut().enumerate() {
                let f = (a + (i as f32 + 0.5) * step - 0.5).clamp(0.0, (SIDE - 1) as f32);
                let (j, t) = (f as usize, f.fract());
                *v = reference[j] * (1.0 - t) + reference[(j + 1).min(SIDE - 1)] * t;
            }
            let c = ncc(query, &s);
            if c > best.2 {
                best = (lo, hi, c);
            }
        }
    }
    (best.0, best.1)
}

/// Agreement of a query print with a reference print, in [0, 1]: the best
/// over mirroring and crops of the reference.
pub fn agreement(query: &[u8], reference: &[u8]) -> f32 {
    if query.len() != SIDE * SIDE || reference.len() != SIDE * SIDE {
        return 0.0;
    }
    let q: Vec<f32> = query.iter().map(|&v| v as f32).collect();
    let r: Vec<f32> = reference.iter().map(|&v| v as f32).collect();
    let (q_cols, q_rows) = profiles(&q);
    let (r_cols, r_rows) = profiles(&r);
    let (t, b) = best_window(&q_rows, &r_rows);
    let mut w = vec![0f32; SIDE * SIDE];
    let mut best = 0f32;
    for mirror in [false, true] {
        let cols: Vec<f32> = if mirror {
            q_cols.iter().rev().copied().collect()
        } else {
            q_cols.clone()
        };
        let (l, rr) = best_window(&cols, &r_cols);
        // The profiles give the crop to a pixel or so; refine around it.
        let near = |v: usize| v.saturating_sub(1)..=(v + 1).min(MAX_CROP);
        for l in near(l) {
            for rr in near(rr) {
                for t in near(t) {
                    for b in near(b) {
                        // For a mirrored query, (l, rr) came from its reversed
                        // profile: the window is the same, read right to left.
                        let (x0, x1) = (l as f32, (SIDE - rr) as f32);
                        warp(
                            reference,
                            x0,
                            x1,
                            t as f32,
                            (SIDE - b) as f32,
                            mirror,
                            &mut w,
                        );
                        best = best.max(cells_agree(&q, &w));
                        if best >= 0.98 {
                            return best;
                        }
                    }
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A textured scene with a product (a striped box) at `(px, py)`.
    fn scene(seed: u32, product: Option<(u32, u32, u8)>) -> RgbImage {
        let mut img = RgbImage::new(320, 320);
        for (x, y, p) in img.enumerate_pixels_mut() {
            let h = (x / 20 * 7 + y / 24 * 13 + seed) % 9;
            let v = (40 + h * 20 + (x + y) % 7) as u8;
            *p = Rgb([v, v / 2 + 60, 255 - v]);
        }
        if let Some((px, py, tone)) = product {
            for y in py..py + 140 {
                for x in px..px + 140 {
                    let stripe = (x + y) / 10 % 2 == 0;
                    img.put_pixel(
                        x,
                        y,
                        if stripe {
                            Rgb([tone, 20, 20])
                        } else {
                            Rgb([250, 250, 240])
                        },
                    );
                }
            }
        }
        img
    }

    fn crop_resize(img: &RgbImage, c: u32) -> RgbImage {
        let sub = image::imageops::crop_imm(img, c, c / 2, 320 - 2 * c, 320 - c).to_image();
        image::imageops::resize(&sub, 300, 300, image::imageops::FilterType::Triangle)
    }

    #[test]
    fn copies_agree_and_stock_photo_lookalikes_do_not() {
        let official = scene(3, Some((90, 80, 200)));
        let p_off = print(&official);
        // A reseller's copy: cropped, rescaled, mirrored.
        let mut copy = crop_resize(&official, 14);
        image::imageops::flip_horizontal_in_place(&mut copy);
        let a_copy = agreement(&print(&copy), &p_off);
        assert!(a_copy >= DEFAULT_THRESHOLD, "copy agreement {a_copy}");
        // The same stock photograph without the brand's product.
        let stock = scene(3, None);
        let a_stock = agreement(&print(&stock), &p_off);
        assert!(a_stock < DEFAULT_THRESHOLD, "stock agreement {a_stock}");
        // Another scene altogether.
        let other = scene(7, Some((30, 150, 90)));
        assert!(agreement(&print(&other), &p_off) < a_stock.max(0.6));
        // Identity.
        assert!(agreement(&p_off, &p_off) >= 0.97);
    }

    #[test]
    fn malformed_prints_never_agree() {
        assert_eq!(agreement(&[0; 10], &[0; SIDE * SIDE]), 0.0);
        assert_eq!(agreement(&[], &[]), 0.0);
    }
}
