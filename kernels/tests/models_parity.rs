//! Parity of the neural models across runtimes and batch sizes: mobilenet
//! and OCR on tract's CPU runtime against dajia's GPU runtime (skipped with a message
//! without a GPU), and the batched paths a GPU uses against the one-at-a-time
//! CPU path (run here). Models come from `scripts/setup-models.sh`
//! (`$DAJIA_MODELS`, else ./models); without them the tests skip, unless
//! `DAJIA_REQUIRE_MODELS` is set, as in CI.

use std::path::PathBuf;

use ab_glyph::{FontRef, PxScale};
use dajia_kernels::device::{self, DeviceChoice, Runtime};
use dajia_kernels::image::mobilenet::{self, MobileNet};
use dajia_kernels::image::thumbnail::imagenet_chw;
use dajia_kernels::image::thumbnail::resize_rgb;
use dajia_kernels::ocr::{accuracy, Ocr, OcrOptions};
use dajia_kernels::parity;
use image::{Rgb, RgbImage};

fn models() -> Option<PathBuf> {
    let dir = std::env::var_os("DAJIA_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../models"));
    let ok = dir.join(mobilenet::FILE).is_file()
        && dir.join("ppocrv5").is_dir()
        && dir.join("fonts").is_dir();
    if ok {
        Some(dir)
    } else if std::env::var_os("DAJIA_REQUIRE_MODELS").is_some() {
        panic!(
            "DAJIA_REQUIRE_MODELS is set but {} lacks the models",
            dir.display()
        )
    } else {
        eprintln!(
            "model parity skipped: no models in {} (scripts/setup-models.sh)",
            dir.display()
        );
        None
    }
}

fn gpu() -> bool {
    match device::select(DeviceChoice::Cuda) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("CUDA model parity skipped: {e}");
            false
        }
    }
}

fn photos(n: usize) -> Vec<RgbImage> {
    (0..n as u32)
        .map(|k| {
            RgbImage::from_fn(300 + 40 * k, 240 + 30 * k, |x, y| {
                Rgb([
                    ((x * 7 + k * 40) % 256) as u8,
                    ((y * 5) % 256) as u8,
                    (((x + y) / 3 + k * 60) % 256) as u8,
                ])
            })
        })
        .collect()
}

/// Lines of text drawn on light and coloured backgrounds, PNG-encoded.
fn text_images(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let cjk = std::fs::read(dir.join("fonts/wqy-microhei.ttc")).unwrap();
    let font = FontRef::try_from_slice(&cjk).unwrap();
    let lines = [
        ("顶级复刻 1:1 AAA", [255, 255, 255], [200, 20, 20]),
        ("加微信 lux8888 看实物", [250, 250, 240], [10, 10, 10]),
        ("NIKE AIR MAX 90", [250, 220, 0], [0, 0, 0]),
        ("¥199.00 2026-11-28", [230, 240, 255], [20, 40, 160]),
    ];
    lines
        .iter()
        .map(|(text, bg, fg)| {
            let mut img = RgbImage::from_pixel(640, 160, Rgb(*bg));
            imageproc::drawing::draw_text_mut(
                &mut img,
                Rgb(*fg),
                30,
                50,
                PxScale::from(48.0),
                &font,
                text,
            );
            let mut b = std::io::Cursor::new(Vec::new());
            img.write_to(&mut b, image::ImageFormat::Png).unwrap();
            b.into_inner()
        })
        .collect()
}

#[test]
fn mobilenet_batches_and_runtimes_agree() {
    let Some(dir) = models() else { return };
    let cpu = MobileNet::load(&dir, Runtime::Cpu).unwrap();
    let imgs = photos(4);
    // The batched run a GPU gets, padded as the device embedder pads it,
    // against one image at a time.
    let mut chw = Vec::new();
    for img in &imgs {
        imagenet_chw(
            &resize_rgb(img, mobilenet::SIDE as u32),
            mobilenet::SIDE,
            &mut chw,
        );
    }
    let batched = cpu.embed_batch(&chw).unwrap();
    for (img, b) in imgs.iter().zip(&batched) {
        let one = cpu.embed(&resize_rgb(img, mobilenet::SIDE as u32)).unwrap();
        let c: f32 = one.iter().zip(b).map(|(x, y)| x * y).sum();
        assert!(c >= 0.9999, "batched vs single cosine {c}");
    }
    if gpu() {
        let cuda = MobileNet::load(&dir, Runtime::Cuda).unwrap();
        eprintln!(
            "mobilenet on {}",
            cuda.placement().map(|p| p.to_string()).unwrap_or_default()
        );
        let c = parity::mobilenet(&cpu, &cuda, &imgs, "dajia-cuda".into()).unwrap();
        eprintln!("{c}");
        assert!(c.pass, "{c}");
    }
}

#[test]
fn ocr_text_agrees_across_batch_sizes_and_runtimes() {
    let Some(dir) = models() else { return };
    let imgs = text_images(&dir);
    let refs: Vec<&[u8]> = imgs.iter().map(Vec::as_slice).collect();
    let cpu = Ocr::load(&dir, OcrOptions::default()).unwrap();
    // What a GPU gets, on the CPU: detection letterboxed into 128-px
    // buckets, 16 images per detector run, 128 lines per recogniser run,
    // all images read together.
    let gpu_like = || OcrOptions {
        rec_batch: 128,
        det_batch: 16,
        det: dajia_kernels::ocr::DetOptions {
            bucket: 128,
            ..Default::default()
        },
        ..Default::default()
    };
    let batched = Ocr::load(&dir, gpu_like()).unwrap();
    let c = parity::ocr_text(&cpu, &batched, &refs, "cpu, GPU batch options".into()).unwrap();
    eprintln!("{c}");
    assert!(c.pass, "{c}");
    // Across images: one read of all (plus a text-free photo and a
    // differently sized copy, another bucket) against one at a time.
    let mut all: Vec<Vec<u8>> = imgs.clone();
    let mut b = std::io::Cursor::new(Vec::new());
    RgbImage::from_fn(300, 220, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, 120])
    })
    .write_to(&mut b, image::ImageFormat::Png)
    .unwrap();
    all.push(b.into_inner());
    let big = image::load_from_memory(&imgs[1]).unwrap().resize_exact(
        900,
        230,
        image::imageops::FilterType::Triangle,
    );
    let mut b = std::io::Cursor::new(Vec::new());
    big.write_to(&mut b, image::ImageFormat::Png).unwrap();
    all.push(b.into_inner());
    let all_refs: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
    let limits = dajia_kernels::image::DecodeLimits::default();
    let before = batched.times();
    let pages = batched.read_batch(&all_refs, &limits);
    let after = batched.times();
    let (mut errors, mut chars) = (0, 0);
    for (b, p) in all_refs.iter().zip(&pages) {
        let want = cpu.read_bytes(b, &limits).unwrap().text();
        let got = p.as_ref().unwrap().text();
        let (w, g) = (accuracy::normalise(&want), accuracy::normalise(&got));
        errors += accuracy::edit_distance(&g, &w);
        chars += w.len().max(g.len());
    }
    let agreement = 1.0 - errors as f64 / chars as f64;
    assert!(agreement >= 0.99, "batched across images: {agreement}");
    assert!(
        pages[4].as_ref().unwrap().lines.is_empty(),
        "text-free photo"
    );
    // 4 images of one bucket in one run, the other two in their own.
    assert_eq!(after.det_runs - before.det_runs, 3, "{after:?}");
    assert!(
        after.rec_runs - before.rec_runs < after.lines - before.lines,
        "{after:?}"
    );
    // Warm-up builds every plan reading needs: with 128-px buckets up to
    // 256 px, 4 detector shapes (and the 29 recogniser widths); reading then
    // builds none.
    let small = Ocr::load(
        &dir,
        OcrOptions {
            rec_batch: 2,
            det_batch: 2,
            det: dajia_kernels::ocr::DetOptions {
                bucket: 128,
                max_side: 256,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(small.warm_up().unwrap(), 4 + 29);
    let warm = small.plan_counts();
    small.read_batch(&refs, &limits);
    assert_eq!(small.plan_counts(), warm, "plans built while reading");
    if gpu() {
        let cuda = Ocr::load(
            &dir,
            OcrOptions {
                rec_batch: 32,
                runtime: Runtime::Cuda,
                ..Default::default()
            },
        )
        .unwrap();
        let c = parity::ocr_text(&cpu, &cuda, &refs, "dajia-cuda".into()).unwrap();
        for (m, p) in cuda.placements() {
            eprintln!("{m} on {p}");
        }
        eprintln!("{c}");
        assert!(c.pass, "{c}");
    }
}
