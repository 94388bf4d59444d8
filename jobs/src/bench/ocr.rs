//! `dajia bench ocr`: OCR accuracy and speed on real photographs with text
//! drawn in several CJK and Latin fonts. The images and their ground truth
//! (`truth.jsonl`) are written to `--out`, so that the peer
//! (benchmarks/ocr_peer.py: RapidOCR) reads the same files.
//!
//! Character accuracy = 1 − Σ edit distance / Σ reference characters, over
//! each image's lines concatenated in reading order, NFKC-normalised, with
//! whitespace removed (the peer computes exactly the same).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use image::{Rgb, RgbImage};
use imageproc::drawing::draw_filled_rect_mut;
use imageproc::rect::Rect;
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use dajia_kernels::image::{decode, DecodeLimits};
use dajia_kernels::ocr::{Ocr, OcrOptions, OcrPage};

use crate::gen::photos::jpeg;
use crate::gen::text_render::{draw_line, luminance, measure, Fonts};
use crate::gen::vocab;

#[derive(Debug, Clone)]
pub struct OcrBenchOptions {
    pub out: PathBuf,
    /// Images with text (plus one text-free image per ten).
    pub images: usize,
    pub seed: u64,
    pub models: PathBuf,
    pub ocr: OcrOptions,
}

/// The all-cores (batched) read of the whole set: wall seconds, model runs,
/// and the thread-seconds of each stage (they overlap, so they may sum to
/// more than the wall time).
#[derive(Debug, Clone, Serialize)]
pub struct AllCores {
    pub seconds: f64,
    pub chars_per_second: f64,
    pub det_runs: u64,
    pub rec_runs: u64,
    pub det_thread_seconds: f64,
    pub post_thread_seconds: f64,
    pub rec_thread_seconds: f64,
}

/// One line of `truth.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Truth {
    pub file: String,
    pub lines: Vec<String>,
    pub script: String,
    pub fonts: Vec<String>,
    pub photo: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Worst {
    pub file: String,
    pub reference: String,
    pub hypothesis: String,
    pub errors: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct OcrBenchReport {
    pub engine: String,
    pub images: usize,
    pub text_free_images: usize,
    pub truth_lines: usize,
    pub truth_chars: usize,
    pub detected_lines: usize,
    pub recognised_chars: usize,
    pub decode_seconds: f64,
    pub det_seconds: f64,
    pub rec_seconds: f64,
    pub e2e_seconds: f64,
    pub det_images_per_second: f64,
    pub det_lines_per_second: f64,
    pub rec_lines_per_second: f64,
    pub rec_chars_per_second: f64,
    pub e2e_lines_per_second: f64,
    pub e2e_chars_per_second: f64,
    pub e2e_images_per_second_all_cores: f64,
    /// The all-cores run: wall time, model runs and where the time went.
    pub all_cores: AllCores,
    pub cores: usize,
    pub char_accuracy: f64,
    pub char_accuracy_by_script: BTreeMap<String, f64>,
    pub char_accuracy_by_font: BTreeMap<String, f64>,
    /// Lines read on text-free photos (false positives).
    pub text_free_lines: usize,
    /// Images the text-presence gate skipped (text-free ones should be).
    pub gated_out_text_free: usize,
    pub gated_out_with_text: usize,
    pub worst: Vec<Worst>,
}

pub use dajia_kernels::ocr::accuracy::{edit_distance, normalise, score};

const PHOTOS: &[&str] = &[
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "brick.png",
    "grass.png",
    "gravel.png",
];

struct Sources {
    titles: Vec<Vec<char>>,
    brands_en: Vec<String>,
    brands_zh: Vec<String>,
}

fn sources() -> Sources {
    let titles = vocab::real_titles()
        .into_iter()
        .map(|t| t.title.chars().collect::<Vec<char>>())
        .filter(|t| t.len() >= 6)
        .collect();
    let (mut brands_en, mut brands_zh) = (Vec::new(), Vec::new());
    for line in vocab::BRANDS_TSV.lines().skip(1) {
        let mut f = line.split('\t');
        if let (Some(en), Some(zh)) = (f.next(), f.next()) {
            if !en.is_empty() && en.is_ascii() {
                brands_en.push(en.to_string());
            }
            if !zh.is_empty() {
                brands_zh.push(zh.to_string());
            }
        }
    }
    Sources {
        titles,
        brands_en,
        brands_zh,
    }
}

fn line_text(script: &str, s: &Sources, rng: &mut ChaCha8Rng) -> String {
    match script {
        "cjk" => {
            let t = s.titles.choose(rng).unwrap();
            let n = rng.random_range(4..=14).min(t.len());
            let start = rng.random_range(0..=t.len() - n);
            let text: String = t[start..start + n].iter().collect();
            let text = text.trim().to_string();
            if text.is_empty() {
                "正品保障".into()
            } else {
                text
            }
        }
        "latin" => {
            const WORDS: &[&str] = &[
                "Original",
                "Quality",
                "Free Shipping",
                "New Arrival",
                "Limited",
                "Edition",
                "Sale",
                "Premium",
                "Genuine Leather",
                "Made in Italy",
                "Best Seller",
            ];
            format!(
                "{} {}",
                s.brands_en.choose(rng).unwrap(),
                WORDS.choose(rng).unwrap()
            )
        }
        "digits" => match rng.random_range(0..3) {
            0 => format!(
                "1{}{} {:04} {:04}",
                rng.random_range(3..=9),
                rng.random_range(0..10),
                rng.random_range(0..10_000),
                rng.random_range(0..10_000)
            ),
            1 => format!(
                "¥{}.{:02}",
                rng.random_range(9..20_000),
                rng.random_range(0..100)
            ),
            _ => format!(
                "{}-{:02}-{:02}",
                rng.random_range(2015..2027),
                rng.random_range(1..13),
                rng.random_range(1..29)
            ),
        },
        _ => match rng.random_range(0..3) {
            0 => format!(
                "{} {}",
                vocab::CONTACT_KEYWORDS.choose(rng).unwrap(),
                crate::gen::evasion::wechat_id(rng)
            ),
            1 => format!(
                "{} 1:1 {}",
                vocab::REPLICA_WORDS.choose(rng).unwrap(),
                s.brands_en.choose(rng).unwrap()
            ),
            _ => format!(
                "{} {} {}",
                s.brands_zh.choose(rng).unwrap(),
                s.brands_en.choose(rng).unwrap(),
                rng.random_range(100..999)
            ),
        },
    }
}

/// Renders the image set into `out` (images/*.jpg + truth.jsonl).
pub fn render_set(out: &Path, images: usize, seed: u64, models: &Path) -> Result<Vec<Truth>> {
    let fonts = Fonts::load(&models.join("fonts"))?;
    if fonts.cjk().is_empty() {
        bail!(
            "no CJK font in {}; run `scripts/setup-models.sh`",
            models.join("fonts").display()
        );
    }
    let mut photos = Vec::new();
    for p in PHOTOS {
        let path = models.join("photos").join(p);
        let img = image::open(&path)
            .with_context(|| {
                format!(
                    "{}; run `scripts/setup-models.sh` to fetch the photos",
                    path.display()
                )
            })?
            .to_rgb8();
        photos.push((p.to_string(), img));
    }
    let src = sources();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    std::fs::create_dir_all(out.join("images"))?;
    let mut truths = Vec::new();
    let total = images + images / 10;
    for i in 0..total {
        let text_free = i >= images;
        let (name, photo) = &photos[rng.random_range(0..photos.len())];
        // a crop of 480-800 x 360-640 px (or the whole photo if smaller)
        let (pw, ph) = photo.dimensions();
        let (w, h) = (
            rng.random_range(480..=800).min(pw),
            rng.random_range(360..=640).min(ph),
        );
        let (x0, y0) = (rng.random_range(0..=pw - w), rng.random_range(0..=ph - h));
        let mut img: RgbImage = image::imageops::crop_imm(photo, x0, y0, w, h).to_image();
        let script = ["cjk", "cjk", "latin", "digits", "mixed", "mixed"][rng.random_range(0..6)];
        let mut lines = Vec::new();
        let mut used = Vec::new();
        if !text_free {
            let n = rng.random_range(1..=3);
            let mut y = rng.random_range(10..40) as i32;
            for _ in 0..n {
                let text = line_text(script, &src, &mut rng);
                let face = fonts.pick(&text, &mut rng);
                let text = face.drawable(&text);
                let mut px = rng.random_range(22..=44) as f32;
                let (mut tw, mut th) = measure(face, px, &text);
                while tw + 20 > w && px > 14.0 {
                    px -= 2.0;
                    (tw, th) = measure(face, px, &text);
                }
                if tw + 20 > w || y + th as i32 + 10 > h as i32 {
                    break;
                }
                let x = rng.random_range(10..=(w - tw - 10).max(10)) as i32;
                let lum = luminance(&img, x as u32, y as u32, tw, th);
                // Text straight on the photo where it contrasts; on a
                // coloured band (sellers' usual caption) where the photo is
                // mid-grey, and on a third of the lines anyway.
                let ink = if rng.random_bool(0.3) || (90.0..170.0).contains(&lum) {
                    let band = Rgb([rng.random(), rng.random(), rng.random()]);
                    draw_filled_rect_mut(
                        &mut img,
                        Rect::at(x - 6, y - 4).of_size(tw + 12, th + 10),
                        band,
                    );
                    let l = 0.299 * band.0[0] as f32
                        + 0.587 * band.0[1] as f32
                        + 0.114 * band.0[2] as f32;
                    if l > 128.0 {
                        Rgb([10, 10, 10])
                    } else {
                        Rgb([250, 250, 250])
                    }
                } else if lum >= 170.0 {
                    Rgb([
                        rng.random_range(0..60),
                        rng.random_range(0..60),
                        rng.random_range(0..90),
                    ])
                } else {
                    Rgb([
                        rng.random_range(220..=255),
                        rng.random_range(220..=255),
                        rng.random_range(180..=255),
                    ])
                };
                draw_line(&mut img, face, px, (x, y), ink, &text);
                used.push(face.name.clone());
                lines.push(text);
                // advance by the font's line height, not the ink's height
                y += (th as f32).max(px * 1.25) as i32 + rng.random_range(14..40);
            }
        }
        let file = format!("images/{i:05}.jpg");
        std::fs::write(out.join(&file), jpeg(&img, 90))?;
        truths.push(Truth {
            file,
            lines,
            script: if text_free {
                "none".into()
            } else {
                script.into()
            },
            fonts: used,
            photo: name.clone(),
        });
    }
    let mut f = std::fs::File::create(out.join("truth.jsonl"))?;
    for t in &truths {
        writeln!(f, "{}", serde_json::to_string(t)?)?;
    }
    Ok(truths)
}

/// Renders the set, then reads it on one core (detection, recognition and
/// end-to-end figures) and on all cores.
pub fn run(o: &OcrBenchOptions) -> Result<OcrBenchReport> {
    let truths = render_set(&o.out, o.images, o.seed, &o.models)?;
    let ocr = Ocr::load(&o.models, o.ocr.clone())?;
    ocr.warm_up()?;
    let limits = DecodeLimits::default();
    let bytes: Vec<Vec<u8>> = truths
        .iter()
        .map(|t| std::fs::read(o.out.join(&t.file)))
        .collect::<std::io::Result<_>>()?;

    let refs: Vec<&[u8]> = bytes.iter().map(|b| b.as_slice()).collect();
    // Warm-up, untimed: tract builds one plan per input shape on first use
    // (~0.2 s each); a nightly scan amortises them over millions of images.
    for r in ocr.read_batch(&refs, &limits) {
        r?;
    }

    // one core: decode, then OCR with det and rec timed apart
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let (pages, decode_s) = one.install(|| -> Result<(Vec<OcrPage>, f64)> {
        let mut pages = Vec::new();
        let mut decode_s = 0.0;
        for b in &bytes {
            let t = Instant::now();
            let img = decode(b, &limits)?;
            decode_s += t.elapsed().as_secs_f64();
            pages.push(ocr.read(&img)?);
        }
        Ok((pages, decode_s))
    })?;

    let before = ocr.times();
    let t = Instant::now();
    let all = ocr.read_batch(&refs, &limits);
    let all_cores_s = t.elapsed().as_secs_f64();
    let after = ocr.times();
    for r in all {
        r?;
    }

    let mut by_script: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut by_font: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut worst = Vec::new();
    let (mut errors, mut chars) = (0usize, 0usize);
    let mut r = OcrBenchReport {
        engine: "dajia (PP-OCRv5 mobile, tract-onnx 0.23.9)".into(),
        images: truths.len(),
        text_free_images: 0,
        truth_lines: 0,
        truth_chars: 0,
        detected_lines: 0,
        recognised_chars: 0,
        decode_seconds: decode_s,
        det_seconds: 0.0,
        rec_seconds: 0.0,
        e2e_seconds: 0.0,
        det_images_per_second: 0.0,
        det_lines_per_second: 0.0,
        rec_lines_per_second: 0.0,
        rec_chars_per_second: 0.0,
        e2e_lines_per_second: 0.0,
        e2e_chars_per_second: 0.0,
        e2e_images_per_second_all_cores: truths.len() as f64 / all_cores_s.max(1e-9),
        all_cores: AllCores {
            seconds: all_cores_s,
            det_runs: after.det_runs - before.det_runs,
            rec_runs: after.rec_runs - before.rec_runs,
            det_thread_seconds: after.det_seconds - before.det_seconds,
            post_thread_seconds: after.post_seconds - before.post_seconds,
            rec_thread_seconds: after.rec_seconds - before.rec_seconds,
            chars_per_second: 0.0,
        },
        cores: rayon::current_num_threads(),
        char_accuracy: 0.0,
        char_accuracy_by_script: BTreeMap::new(),
        char_accuracy_by_font: BTreeMap::new(),
        text_free_lines: 0,
        gated_out_text_free: 0,
        gated_out_with_text: 0,
        worst: Vec::new(),
    };
    for (t, p) in truths.iter().zip(&pages) {
        r.det_seconds += p.det_seconds;
        r.rec_seconds += p.rec_seconds;
        r.detected_lines += p.lines.len();
        let hyp = p.text();
        r.recognised_chars += normalise(&hyp).len();
        if t.lines.is_empty() {
            r.text_free_images += 1;
            r.text_free_lines += p.lines.len();
            r.gated_out_text_free += p.gated_out as usize;
            continue;
        }
        r.gated_out_with_text += p.gated_out as usize;
        r.truth_lines += t.lines.len();
        let (e, n) = score(&t.lines, &hyp);
        errors += e;
        chars += n;
        let s = by_script.entry(t.script.clone()).or_default();
        s.0 += e;
        s.1 += n;
        // per font: only single-font images, so errors are attributable
        if t.fonts.iter().all(|f| f == &t.fonts[0]) {
            let f = by_font.entry(t.fonts[0].clone()).or_default();
            f.0 += e;
            f.1 += n;
        }
        worst.push(Worst {
            file: t.file.clone(),
            reference: t.lines.join("\n"),
            hypothesis: hyp,
            errors: e,
        });
    }
    let acc = |(e, n): (usize, usize)| 1.0 - e as f64 / n.max(1) as f64;
    r.truth_chars = chars;
    r.char_accuracy = acc((errors, chars)).max(0.0);
    r.char_accuracy_by_script = by_script.into_iter().map(|(k, v)| (k, acc(v))).collect();
    r.char_accuracy_by_font = by_font.into_iter().map(|(k, v)| (k, acc(v))).collect();
    worst.sort_by(|a, b| b.errors.cmp(&a.errors));
    worst.truncate(8);
    r.worst = worst;
    r.e2e_seconds = r.det_seconds + r.rec_seconds;
    let per = |n: f64, s: f64| n / s.max(1e-9);
    r.det_images_per_second = per(pages.len() as f64, r.det_seconds);
    r.det_lines_per_second = per(r.detected_lines as f64, r.det_seconds);
    r.rec_lines_per_second = per(r.detected_lines as f64, r.rec_seconds);
    r.rec_chars_per_second = per(r.recognised_chars as f64, r.rec_seconds);
    r.e2e_lines_per_second = per(r.detected_lines as f64, r.e2e_seconds);
    r.e2e_chars_per_second = per(r.recognised_chars as f64, r.e2e_seconds);
    r.all_cores.chars_per_second = per(r.recognised_chars as f64, r.all_cores.seconds);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_ignores_width_and_whitespace() {
        assert_eq!(score(&["高仿 1:1".into()], "高仿1：1"), (0, 5));
        assert_eq!(score(&["abc".into(), "de".into()], "abxde"), (1, 5));
        assert_eq!(score(&["abc".into()], ""), (3, 3));
    }
}

impl std::fmt::Display for OcrBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "dajia bench ocr: {} images ({} text-free), {} lines, {} characters of truth",
            self.images, self.text_free_images, self.truth_lines, self.truth_chars
        )?;
        writeln!(f, "  character accuracy {:.4}", self.char_accuracy)?;
        for (k, v) in &self.char_accuracy_by_script {
            writeln!(f, "    script {k:<8} {v:.4}")?;
        }
        for (k, v) in &self.char_accuracy_by_font {
            writeln!(f, "    font {k:<28} {v:.4}")?;
        }
        writeln!(
            f,
            "  one core: detection {:.2} images/s ({:.1} lines/s); recognition {:.1} lines/s, {:.0} chars/s; end to end {:.1} lines/s, {:.0} chars/s",
            self.det_images_per_second,
            self.det_lines_per_second,
            self.rec_lines_per_second,
            self.rec_chars_per_second,
            self.e2e_lines_per_second,
            self.e2e_chars_per_second
        )?;
        let a = &self.all_cores;
        writeln!(
            f,
            "  all {} cores: {:.2} images/s, {:.0} chars/s end to end (with decoding); {} detector runs, {} recogniser runs; thread-seconds det {:.2}, post-processing {:.2}, rec {:.2}",
            self.cores,
            self.e2e_images_per_second_all_cores,
            a.chars_per_second,
            a.det_runs,
            a.rec_runs,
            a.det_thread_seconds,
            a.post_thread_seconds,
            a.rec_thread_seconds
        )?;
        write!(
            f,
            "  text-free photos: {} lines read, {} skipped by the gate; photos with text skipped by the gate: {}",
            self.text_free_lines, self.gated_out_text_free, self.gated_out_with_text
        )
    }
}
