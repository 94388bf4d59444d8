//! Listing and brand images for generated catalogs: procedural "product
//! photos" (a brand's official images have the brand's colours and pattern),
//! copies of them as counterfeiters reuse them (cropped, rescaled, mirrored,
//! recompressed), and photos with text drawn over them (contact ids, replica
//! words), as sellers move text out of titles into images.
//!
//! Drawing is hand-written because it is only flat shapes; encoding and
//! resizing use the `image` crate, glyphs come from `font8x8`.

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SIZE: u32 = 320;

fn palette(seed: u64) -> [Rgb<u8>; 3] {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    std::array::from_fn(|_| Rgb([r.random(), r.random(), r.random()]))
}

/// A product photo: a background (gradient at any angle, radial, split in
/// two tones or flat), one or two objects with stripes or checks at any
/// angle, a logo mark and sensor-like noise. Fully determined by `seed`.
pub fn photo(seed: u64) -> RgbImage {
    photo_on(seed, None, true)
}

/// Real photographs (`<models>/photos`, scikit-image's samples fetched by
/// `scripts/setup-models.sh`) resized to the photo size: the stock
/// photographs official images are drawn on. Empty without them.
pub fn stock_photos() -> Vec<RgbImage> {
    let dir = std::env::var_os("DAJIA_MODELS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("models"))
        .join("photos");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| image::open(p).ok())
        .map(|i| image::imageops::resize(&i.to_rgb8(), SIZE, SIZE, FilterType::Triangle))
        .collect()
}

/// A photo drawn over `stock` (a real photograph, already `SIZE`²) instead
/// of a procedural background; with `product` false, only the stock
/// photograph itself (and sensor noise): what a benign seller who bought
/// the same stock photo shows.
pub fn photo_on(seed: u64, stock: Option<&RgbImage>, product: bool) -> RgbImage {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let [bg, obj, mark] = palette(seed);
    let bg2 = Rgb::<u8>([r.random(), r.random(), r.random()]);
    let mix = |a: Rgb<u8>, b: Rgb<u8>, t: f32| {
        Rgb(std::array::from_fn(|i| {
            (a.0[i] as f32 * (1.0 - t) + b.0[i] as f32 * t) as u8
        }))
    };
    let s = SIZE as f32;
    let background = r.random_range(0..4);
    let angle: f32 = r.random_range(0.0..std::f32::consts::TAU);
    let (ca, sa) = (angle.cos(), angle.sin());
    let (fx, fy) = (r.random_range(0.2..0.8) * s, r.random_range(0.2..0.8) * s);
    let mut img = RgbImage::new(SIZE, SIZE);
    for (x, y, p) in img.enumerate_pixels_mut() {
        if let Some(st) = stock {
            *p = *st.get_pixel(x % st.width(), y % st.height());
            continue;
        }
        let (dx, dy) = (x as f32 - fx, y as f32 - fy);
        *p = match background {
            0 => mix(bg, bg2, ((dx * ca + dy * sa) / s + 0.5).clamp(0.0, 1.0)),
            1 => mix(bg, bg2, ((dx * dx + dy * dy).sqrt() / s).min(1.0)),
            2 => {
                if dx * ca + dy * sa > 0.0 {
                    bg
                } else {
                    bg2
                }
            }
            _ => bg,
        };
    }
    // One or two objects: an ellipse or a box, striped or checked.
    let objects = match (product, r.random_bool(0.5)) {
        (false, _) => 0,
        (true, true) => 1,
        (true, false) => 2,
    };
    for k in 0..objects {
        let colour = if k == 0 {
            obj
        } else {
            Rgb([r.random(), r.random(), r.random()])
        };
        let (cx, cy) = (
            r.random_range(0.25..0.75) * s,
            r.random_range(0.25..0.75) * s,
        );
        let scale = if k == 0 { 1.0 } else { 0.5 };
        let (rx, ry) = (
            r.random_range(0.15..0.38) * s * scale,
            r.random_range(0.15..0.35) * s * scale,
        );
        let ellipse = r.random_bool(0.5);
        let period = r.random_range(6.0..28.0f32);
        let checks = r.random_bool(0.4);
        let stripe: f32 = r.random_range(0.0..std::f32::consts::PI);
        let (cs, ss) = (stripe.cos(), stripe.sin());
        for (x, y, p) in img.enumerate_pixels_mut() {
            let (dx, dy) = ((x as f32 - cx) / rx, (y as f32 - cy) / ry);
            let inside = if ellipse {
                dx * dx + dy * dy <= 1.0
            } else {
                dx.abs() <= 1.0 && dy.abs() <= 1.0
            };
            if inside {
                let (xf, yf) = (x as f32, y as f32);
                let on = if checks {
                    ((xf / period).floor() + (yf / period).floor()) as i64 % 2 == 0
                } else {
                    ((xf * cs + yf * ss) / period).floor() as i64 % 2 == 0
                };
                *p = if on {
                    colour
                } else {
                    Rgb(colour.0.map(|c| c / 2 + 60))
                };
            }
        }
    }
    // A logo mark: a diamond or a disc.
    let (lx, ly) = (r.random_range(8..SIZE - 48), r.random_range(8..SIZE - 48));
    let size = r.random_range(20..40u32);
    let disc = r.random_bool(0.5);
    for y in (ly..ly + size).filter(|_| product) {
        for x in lx..lx + size {
            let (ax, ay) = ((x - lx).abs_diff(size / 2), (y - ly).abs_diff(size / 2));
            let inside = if disc {
                ax * ax + ay * ay < size * size / 4
            } else {
                ax + ay < size / 2
            };
            if inside {
                img.put_pixel(x, y, mark);
            }
        }
    }
    // Sensor noise, from a hash of the position (no RNG state per pixel).
    for (x, y, p) in img.enumerate_pixels_mut() {
        let h = (x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663) ^ seed as u32)
            .wrapping_mul(2_654_435_761);
        let n = (h >> 28) as i16 - 8;
        *p = Rgb(p.0.map(|c| (c as i16 + n).clamp(0, 255) as u8));
    }
    img
}

/// A copy as a reseller makes it: crop up to 12%, rescale, maybe mirror,
/// shift brightness a little.
pub fn reuse(src: &RgbImage, rng: &mut impl Rng) -> RgbImage {
    let (w, h) = src.dimensions();
    let cx = (w as f32 * rng.random_range(0.0..0.06)) as u32;
    let cy = (h as f32 * rng.random_range(0.0..0.06)) as u32;
    let cw = w - cx - (w as f32 * rng.random_range(0.0..0.06)) as u32;
    let ch = h - cy - (h as f32 * rng.random_range(0.0..0.06)) as u32;
    let mut img = image::imageops::crop_imm(src, cx, cy, cw, ch).to_image();
    let side = rng.random_range(280..420);
    img = image::imageops::resize(&img, side, side, FilterType::Triangle);
    if rng.random_bool(0.3) {
        image::imageops::flip_horizontal_in_place(&mut img);
    }
    let shift: i16 = rng.random_range(-12..12);
    for p in img.pixels_mut() {
        *p = Rgb(p.0.map(|c| (c as i16 + shift).clamp(0, 255) as u8));
    }
    img
}

/// Draw `text` (ASCII) in a white box across the image, glyphs scaled ×`scale`.
pub fn overlay_text(img: &mut RgbImage, text: &str, scale: u32) {
    let (w, h) = img.dimensions();
    let tw = (text.chars().count() as u32 * 8 * scale).min(w);
    let (x0, y0) = ((w - tw) / 2, h * 2 / 3);
    for y in y0.saturating_sub(scale * 2)..(y0 + 10 * scale).min(h) {
        for x in x0.saturating_sub(scale * 2)..(x0 + tw + scale * 2).min(w) {
            img.put_pixel(x, y, Rgb([250, 250, 250]));
        }
    }
    for_each_glyph_pixel(text, (x0, y0), scale, (w, h), |x, y| {
        img.put_pixel(x, y, Rgb([200, 10, 10]))
    });
}

/// Calls `plot(x, y)` for every pixel of `text` in the 8×8 font scaled
/// ×`scale` from top-left `origin`, clipped to `size`.
fn for_each_glyph_pixel(
    text: &str,
    (x0, y0): (u32, u32),
    scale: u32,
    (w, h): (u32, u32),
    mut plot: impl FnMut(u32, u32),
) {
    use font8x8::UnicodeFonts;
    for (i, c) in text.chars().enumerate() {
        let Some(glyph) = font8x8::BASIC_FONTS.get(c) else {
            continue;
        };
        for (gy, row) in glyph.iter().enumerate() {
            for gx in (0..8u32).filter(|gx| row & (1 << gx) != 0) {
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (x, y) = (
                            x0 + (i as u32 * 8 + gx) * scale + dx,
                            y0 + gy as u32 * scale + dy,
                        );
                        if x < w && y < h {
                            plot(x, y);
                        }
                    }
                }
            }
        }
    }
}

pub fn jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 * 1024);
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .expect("encoding an in-memory RGB image");
    out
}

/// What resellers do to a photo, one kind at a time (the descriptor's
/// invariance tests and `dajia bench images` use them).
pub const TRANSFORMS: &[&str] = &[
    "crop15",
    "rescale",
    "jpeg60",
    "mirror",
    "blur",
    "watermark",
    "combined",
];

/// Applies transform `kind` (one of [`TRANSFORMS`]); returns the image and
/// the JPEG quality to encode it with.
pub fn transform(src: &RgbImage, kind: &str, rng: &mut impl Rng) -> (RgbImage, u8) {
    let (w, h) = src.dimensions();
    let crop = |img: &RgbImage, share: f32, rng: &mut dyn rand::RngCore| {
        let (w, h) = img.dimensions();
        let cut_w = (w as f32 * share) as u32;
        let cut_h = (h as f32 * share) as u32;
        let left = rng.random_range(0..=cut_w);
        let top = rng.random_range(0..=cut_h);
        image::imageops::crop_imm(img, left, top, w - cut_w, h - cut_h).to_image()
    };
    match kind {
        // Up to 15% of the width and of the height cut, split between sides.
        "crop15" => (crop(src, rng.random_range(0.08..0.15), rng), 85),
        "rescale" => {
            let f = rng.random_range(0.5..1.6);
            let img = image::imageops::resize(
                src,
                (w as f32 * f) as u32,
                (h as f32 * f) as u32,
                FilterType::Triangle,
            );
            (img, 85)
        }
        "jpeg60" => (src.clone(), 60),
        "mirror" => (image::imageops::flip_horizontal(src), 85),
        "blur" => (image::imageops::blur(src, 1.2), 85),
        "watermark" => {
            let mut img = src.clone();
            watermark(&mut img, "SAMPLE 88");
            (img, 85)
        }
        "combined" => {
            let mut img = crop(src, 0.08, rng);
            image::imageops::flip_horizontal_in_place(&mut img);
            watermark(&mut img, "shop 66");
            (img, 60)
        }
        other => panic!("unknown transform {other}"),
    }
}

/// Half-transparent white text in the lower right corner.
pub fn watermark(img: &mut RgbImage, text: &str) {
    let (w, h) = img.dimensions();
    let scale = (w / 160).max(1);
    let tw = text.chars().count() as u32 * 8 * scale;
    let (x0, y0) = (
        w.saturating_sub(tw + 8 * scale),
        h.saturating_sub(14 * scale),
    );
    for_each_glyph_pixel(text, (x0, y0), scale, (w, h), |x, y| {
        let p = img.get_pixel_mut(x, y);
        *p = Rgb(p.0.map(|c| ((c as u16 + 255) / 2) as u8));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_decode_and_are_deterministic() {
        let a = jpeg(&photo(7), 85);
        assert_eq!(a, jpeg(&photo(7), 85));
        assert_ne!(a, jpeg(&photo(8), 85));
        let decoded = image::load_from_memory(&a).unwrap();
        assert_eq!(decoded.width(), SIZE);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut copy = reuse(&photo(7), &mut rng);
        overlay_text(&mut copy, "VX lux8888", 3);
        assert!(image::load_from_memory(&jpeg(&copy, 60)).is_ok());
    }
}
