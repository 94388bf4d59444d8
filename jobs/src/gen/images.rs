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

/// A product photo: gradient background, an object with a repeated pattern,
/// and a logo block. Fully determined by `seed`.
pub fn photo(seed: u64) -> RgbImage {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let [bg, obj, mark] = palette(seed);
    let mut img = RgbImage::new(SIZE, SIZE);
    for (x, y, p) in img.enumerate_pixels_mut() {
        let t = (x + y) as f32 / (2 * SIZE) as f32;
        *p = Rgb(std::array::from_fn(|i| {
            (bg.0[i] as f32 * (1.0 - 0.5 * t) + 40.0 * t) as u8
        }));
    }
    // The object: an ellipse or a rounded box with stripes or checks.
    let (cx, cy) = (
        r.random_range(120..200) as f32,
        r.random_range(130..190) as f32,
    );
    let (rx, ry) = (
        r.random_range(60..120) as f32,
        r.random_range(50..110) as f32,
    );
    let ellipse = r.random_bool(0.5);
    let period = r.random_range(8..24);
    let checks = r.random_bool(0.5);
    for (x, y, p) in img.enumerate_pixels_mut() {
        let (dx, dy) = ((x as f32 - cx) / rx, (y as f32 - cy) / ry);
        let inside = if ellipse {
            dx * dx + dy * dy <= 1.0
        } else {
            dx.abs() <= 1.0 && dy.abs() <= 1.0
        };
        if inside {
            let on = if checks {
                ((x / period) + (y / period)) % 2 == 0
            } else {
                (x + 2 * y) / period % 2 == 0
            };
            *p = if on {
                obj
            } else {
                Rgb(obj.0.map(|c| c / 2 + 60))
            };
        }
    }
    // A logo block in a corner.
    let (lx, ly): (u32, u32) = (r.random_range(10..60), r.random_range(10..60));
    for y in ly..ly + 36 {
        for x in lx..lx + 36 {
            if (x - lx).abs_diff(18) + (y - ly).abs_diff(18) < 18 {
                img.put_pixel(x, y, mark);
            }
        }
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
    use font8x8::UnicodeFonts;
    let (w, h) = img.dimensions();
    let tw = (text.chars().count() as u32 * 8 * scale).min(w);
    let (x0, y0) = ((w - tw) / 2, h * 2 / 3);
    for y in y0.saturating_sub(scale * 2)..(y0 + 10 * scale).min(h) {
        for x in x0.saturating_sub(scale * 2)..(x0 + tw + scale * 2).min(w) {
            img.put_pixel(x, y, Rgb([250, 250, 250]));
        }
    }
    for (i, c) in text.chars().enumerate() {
        let Some(glyph) = font8x8::BASIC_FONTS.get(c) else {
            continue;
        };
        for (gy, row) in glyph.iter().enumerate() {
            for gx in 0..8u32 {
                if row & (1 << gx) != 0 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let (x, y) = (
                                x0 + (i as u32 * 8 + gx) * scale + dx,
                                y0 + gy as u32 * scale + dy,
                            );
                            if x < w && y < h {
                                img.put_pixel(x, y, Rgb([200, 10, 10]));
                            }
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
