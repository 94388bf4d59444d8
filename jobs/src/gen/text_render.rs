//! TrueType text drawn over photos (ab_glyph through imageproc): the text
//! sellers put in their images, for generated catalogs and the OCR
//! evaluation. Fonts are the Debian CJK and Latin fonts that
//! `scripts/setup-models.sh` puts in `<models>/fonts/`.

use std::path::{Path, PathBuf};

use ab_glyph::{Font, FontArc, FontVec, PxScale};
use anyhow::{bail, Context, Result};
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_text_mut, text_size};
use imageproc::rect::Rect;
use rand::Rng;

pub struct Face {
    /// File name, e.g. `wqy-microhei.ttc`.
    pub name: String,
    pub font: FontArc,
    /// Has Chinese glyphs.
    pub cjk: bool,
}

impl Face {
    /// `text` without the characters this face has no glyph for (they would
    /// be drawn as its empty-box glyph: no font here has `➕`, which real
    /// contact spam uses), spaces left by them collapsed: what is drawn,
    /// and so what an OCR ground truth may expect.
    pub fn drawable(&self, text: &str) -> String {
        let kept: String = text
            .chars()
            .filter(|&c| c.is_whitespace() || self.font.glyph_id(c).0 != 0)
            .collect();
        if kept.len() == text.len() {
            return kept;
        }
        kept.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

pub struct Fonts {
    pub faces: Vec<Face>,
}

impl Fonts {
    /// `$DAJIA_MODELS/fonts`, else `models/fonts`.
    pub fn default_dir() -> PathBuf {
        std::env::var_os("DAJIA_MODELS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("models"))
            .join("fonts")
    }

    /// Every `.ttf`/`.ttc`/`.otf` in `dir` (first face of a collection), sorted by name.
    pub fn load(dir: &Path) -> Result<Fonts> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| {
                format!(
                    "fonts folder {}; run `scripts/setup-models.sh` to fetch the fonts",
                    dir.display()
                )
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "ttf" | "ttc" | "otf"))
            })
            .collect();
        paths.sort();
        let mut faces = Vec::new();
        for p in paths {
            let data = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
            let font = FontVec::try_from_vec_and_index(data, 0)
                .with_context(|| format!("{} is not a usable font", p.display()))?;
            let cjk = font.glyph_id('高').0 != 0 && font.glyph_id('仿').0 != 0;
            faces.push(Face {
                name: p.file_name().unwrap().to_string_lossy().into_owned(),
                font: FontArc::new(font),
                cjk,
            });
        }
        if faces.is_empty() {
            bail!(
                "no fonts in {}; run `scripts/setup-models.sh` to fetch them",
                dir.display()
            );
        }
        Ok(Fonts { faces })
    }

    /// The fonts of the default folder, if it has any.
    pub fn find() -> Option<Fonts> {
        Fonts::load(&Fonts::default_dir()).ok()
    }

    pub fn cjk(&self) -> Vec<&Face> {
        self.faces.iter().filter(|f| f.cjk).collect()
    }

    /// A face that can draw `text` (a CJK face for Chinese text).
    pub fn pick(&self, text: &str, rng: &mut impl Rng) -> &Face {
        let cjk = self.cjk();
        if !text.is_ascii() && !cjk.is_empty() {
            cjk[rng.random_range(0..cjk.len())]
        } else {
            &self.faces[rng.random_range(0..self.faces.len())]
        }
    }
}

/// Size in pixels of `text` drawn at `px`.
pub fn measure(face: &Face, px: f32, text: &str) -> (u32, u32) {
    text_size(PxScale::from(px), &face.font, text)
}

/// Draws one line with its top-left corner at `(x, y)`.
pub fn draw_line(
    img: &mut RgbImage,
    face: &Face,
    px: f32,
    (x, y): (i32, i32),
    colour: Rgb<u8>,
    text: &str,
) {
    draw_text_mut(img, colour, x, y, PxScale::from(px), &face.font, text);
}

/// Mean luminance of a region (for choosing a text colour that contrasts).
pub fn luminance(img: &RgbImage, x: u32, y: u32, w: u32, h: u32) -> f32 {
    let (mut sum, mut n) = (0f64, 0u64);
    for yy in y..(y + h).min(img.height()) {
        for xx in x..(x + w).min(img.width()) {
            let p = img.get_pixel(xx, yy).0;
            sum += 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
            n += 1;
        }
    }
    if n == 0 {
        128.0
    } else {
        (sum / n as f64) as f32
    }
}

/// A seller's caption: `text` on a light band in the lower part of the
/// photo, sized to fit its width.
pub fn caption(img: &mut RgbImage, face: &Face, text: &str, rng: &mut impl Rng) {
    let (w, h) = img.dimensions();
    let mut px = (h as f32 / 10.0).clamp(18.0, 48.0);
    let (mut tw, mut th) = measure(face, px, text);
    while tw + 16 > w && px > 12.0 {
        px -= 2.0;
        (tw, th) = measure(face, px, text);
    }
    let x = rng.random_range(0..=(w.saturating_sub(tw + 16)).max(1) - 1) as i32 + 8;
    let y = (h as f32 * rng.random_range(0.55..0.8)) as i32;
    let band = Rgb([
        rng.random_range(225..=255),
        rng.random_range(225..=255),
        rng.random_range(200..=255),
    ]);
    draw_filled_rect_mut(img, Rect::at(x - 8, y - 6).of_size(tw + 16, th + 14), band);
    let ink = [Rgb([200, 20, 20]), Rgb([20, 20, 20]), Rgb([20, 40, 160])][rng.random_range(0..3)];
    draw_line(img, face, px, (x, y), ink, text);
}
