//! The image benchmark's photo pool: real photographs (the set-up script's,
//! carried in the bundle) cropped and scaled to long sides from 320 to 1600
//! pixels, encoded the way a marketplace receives them: mostly baseline
//! JPEGs, some progressive JPEGs, some PNG and WebP. Deterministic per seed,
//! and written to a folder so that the PyTorch peer reads the same files.

use std::path::Path;

use anyhow::{Context, Result};
use image::{ImageFormat, RgbImage};
use serde::Serialize;

/// How the pool is made up, by encoding.
#[derive(Debug, Default, Clone, Serialize)]
pub struct PoolMix {
    pub baseline_jpeg: usize,
    pub progressive_jpeg: usize,
    pub png: usize,
    pub webp: usize,
    pub min_side: u32,
    pub max_side: u32,
    pub mean_bytes: usize,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` encoded photos from the photographs in `photos` (JPEG/PNG files).
pub fn make(photos: &Path, n: usize, seed: u64) -> Result<(Vec<(String, Vec<u8>)>, PoolMix)> {
    let mut files: Vec<_> = std::fs::read_dir(photos)
        .with_context(|| format!("reading {}", photos.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let limits = dajia_kernels::image::DecodeLimits::default();
    let sources: Vec<RgbImage> = files
        .iter()
        .filter_map(|f| dajia_kernels::image::decode(&std::fs::read(f).ok()?, &limits).ok())
        .collect();
    anyhow::ensure!(
        !sources.is_empty(),
        "no photographs in {}",
        photos.display()
    );
    let mut rng = Rng(seed);
    let mut mix = PoolMix {
        min_side: u32::MAX,
        ..Default::default()
    };
    let mut out = Vec::with_capacity(n);
    let mut bytes_total = 0usize;
    for i in 0..n {
        let src = &sources[i % sources.len()];
        // A crop of 60-100% of each side, then a long side log-uniform in
        // 320..1600 (never upscaled past 1600 from a smaller photo's crop).
        let cw = ((src.width() as f64) * (0.6 + 0.4 * rng.unit())).max(16.0) as u32;
        let ch = ((src.height() as f64) * (0.6 + 0.4 * rng.unit())).max(16.0) as u32;
        let x = (rng.next() % (src.width() - cw + 1) as u64) as u32;
        let y = (rng.next() % (src.height() - ch + 1) as u64) as u32;
        let crop = image::imageops::crop_imm(src, x, y, cw, ch).to_image();
        let long = (320.0 * (5.0f64).powf(rng.unit())) as u32;
        let (w, h) = if cw >= ch {
            (long, (long as u64 * ch as u64 / cw as u64).max(1) as u32)
        } else {
            ((long as u64 * cw as u64 / ch as u64).max(1) as u32, long)
        };
        let img = dajia_kernels::image::thumbnail::resize_to(&crop, w, h);
        mix.min_side = mix.min_side.min(w.max(h));
        mix.max_side = mix.max_side.max(w.max(h));
        let roll = rng.unit();
        let quality = 75 + (rng.next() % 21) as u8;
        let (ext, data) = if roll < 0.70 {
            mix.baseline_jpeg += 1;
            ("jpg", jpeg(&img, quality, false)?)
        } else if roll < 0.85 {
            mix.progressive_jpeg += 1;
            ("jpg", jpeg(&img, quality, true)?)
        } else if roll < 0.95 {
            mix.png += 1;
            ("png", encode(&img, ImageFormat::Png)?)
        } else {
            mix.webp += 1;
            ("webp", encode(&img, ImageFormat::WebP)?)
        };
        bytes_total += data.len();
        out.push((format!("{i:06}.{ext}"), data));
    }
    mix.mean_bytes = bytes_total / n.max(1);
    Ok((out, mix))
}

fn jpeg(img: &RgbImage, quality: u8, progressive: bool) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality);
    enc.set_progressive(progressive);
    enc.encode(
        img.as_raw(),
        img.width() as u16,
        img.height() as u16,
        jpeg_encoder::ColorType::Rgb,
    )?;
    Ok(out)
}

fn encode(img: &RgbImage, format: ImageFormat) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), format)?;
    Ok(out)
}

/// Writes the pool's files into `dir` (created).
pub fn write(pool: &[(String, Vec<u8>)], dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, data) in pool {
        std::fs::write(dir.join(name), data)?;
    }
    Ok(())
}
