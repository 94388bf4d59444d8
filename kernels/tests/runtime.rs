//! dajia's model runtime on its CPU reference executor against tract's CPU
//! runtime, on the project's three models: the lowering, fusion and memory
//! plan are checked on every machine (the CUDA executor is checked against
//! the same executor on a GPU). Models come from `scripts/setup-models.sh`
//! (`$DAJIA_MODELS`, else ./models); without them the tests skip, unless
//! `DAJIA_REQUIRE_MODELS` is set, as in CI.

use std::path::{Path, PathBuf};

use dajia_kernels::image::thumbnail::{imagenet_chw, resize_rgb};
use dajia_kernels::parity;
use dajia_kernels::runtime::program::Op;
use dajia_kernels::runtime::{Compiled, Precision};
use tract_onnx::prelude::*;

fn models() -> Option<PathBuf> {
    let dir = std::env::var_os("DAJIA_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../models"));
    if dir.join("mobilenet_v2.onnx").is_file() && dir.join("ppocrv5").is_dir() {
        Some(dir)
    } else if std::env::var_os("DAJIA_REQUIRE_MODELS").is_some() {
        panic!(
            "DAJIA_REQUIRE_MODELS is set but {} lacks the models",
            dir.display()
        )
    } else {
        eprintln!("runtime tests skipped: no models in {}", dir.display());
        None
    }
}

/// tract's CPU output (all outputs) for `input`.
fn tract_cpu(path: &Path, shape: &[usize], input: &[f32]) -> Vec<Vec<f32>> {
    let mut m = tract_onnx::onnx().model_for_path(path).unwrap();
    m.set_input_fact(0, f32::fact(shape).into()).unwrap();
    let plan = m.into_optimized().unwrap().into_runnable().unwrap();
    let t = Tensor::from_shape(shape, input).unwrap();
    plan.run(tvec!(t.into_tvalue()))
        .unwrap()
        .iter()
        .map(|o| {
            o.to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect()
        })
        .collect()
}

/// Real photographs, resized and normalised as the image stage does.
fn photos(dir: &Path, n: usize, h: usize, w: usize) -> Vec<f32> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("photos"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files.iter().cycle().take(n) {
        let img = image::open(f).unwrap().to_rgb8();
        let img = image::imageops::resize(
            &img,
            w as u32,
            h as u32,
            image::imageops::FilterType::Triangle,
        );
        if h == w {
            imagenet_chw(&resize_rgb(&img, w as u32), w, &mut out);
        } else {
            // Detector/recogniser input: (x/255 - 0.5) / 0.5 per channel.
            for c in 0..3 {
                out.extend(img.pixels().map(|p| p[c] as f32 / 127.5 - 1.0));
            }
        }
    }
    out
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The kernels the GPU runs (`runtime/cuda/ops.cu`, compiled for the host)
/// give the reference executor's answer. Within 1e-3 of the largest value,
/// as tract and the reference agree: long reductions sum in chunks, as on
/// the GPU (`launch::reduction_chunks`), not in the reference's order, and
/// the recogniser's layers carry that rounding to its output (4e-4 there).
fn same_on_host_kernels(c: &Compiled, input: &[f32], reference: &[Vec<f32>]) {
    let host = c.run_host_kernels(input).unwrap();
    for (h, r) in host.iter().zip(reference) {
        let scale = r.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let d = max_abs_diff(h, r);
        assert!(
            d <= 1e-3 * scale,
            "{}: host kernels differ by {d} (values up to {scale})",
            c.program.model
        );
    }
}

/// The program with values stored in half, as the GPU runs it by default
/// (the host kernels round where the GPU rounds: every stored value, the
/// convolutions' and matmuls' outputs after f32 accumulation), keeps each
/// model's parity with tract's f32 output (`parity::runtime_output`).
fn same_in_half(c: &Compiled, input: &[f32], theirs: &[Vec<f32>]) {
    let half = c.run_host_kernels_in(input, Precision::F16).unwrap();
    let p = &c.program;
    let rows = *p.shape(p.outputs[0]).last().unwrap();
    let check = parity::runtime_output(&p.model, rows, &half[0], &theirs[0], "host f16".into());
    eprintln!("{check}");
    assert!(check.pass, "{check}");
}

#[test]
fn mobilenet_matches_tract() {
    let Some(dir) = models() else { return };
    let path = dir.join("mobilenet_v2.onnx");
    let shape = [3, 3, 224, 224];
    let c = Compiled::from_onnx("mobilenet_v2", &path, &shape).unwrap();
    eprintln!("mobilenet: {}", c.program.summary());
    // Biases and ReLU6 are folded into the convolutions (52 convolutions and
    // the classifier's GEMM), residual additions too: no map or binary step
    // reads a convolution's output.
    let p = &c.program;
    let convs: Vec<usize> = p
        .steps
        .iter()
        .filter(|s| matches!(s.op, Op::Conv(_)))
        .map(|s| s.output)
        .collect();
    assert_eq!(convs.len(), 53, "{}", p.summary());
    for s in &p.steps {
        if matches!(s.op, Op::Map(_) | Op::Binary(_)) {
            assert!(
                s.inputs.iter().all(|i| !convs.contains(i)),
                "unfused: {}",
                p.summary()
            );
        }
    }
    let input = photos(&dir, 3, 224, 224);
    let ours = c.run_cpu(&input).unwrap();
    same_on_host_kernels(&c, &input, &ours);
    let theirs = tract_cpu(&path, &shape, &input);
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(&theirs) {
        assert_eq!(o.len(), t.len());
        let per = o.len() / 3;
        for i in 0..3 {
            let cos = cosine(&o[i * per..(i + 1) * per], &t[i * per..(i + 1) * per]);
            assert!(cos >= 0.9999, "image {i}: cosine {cos}");
        }
        eprintln!("max abs diff {}", max_abs_diff(o, t));
    }
    same_in_half(&c, &input, &theirs);
}

#[test]
fn ocr_detector_matches_tract() {
    let Some(dir) = models() else { return };
    let path = dir.join("ppocrv5/ppocrv5_det.onnx");
    let shape = [2, 3, 192, 256];
    let c = Compiled::from_onnx("ppocrv5_det", &path, &shape).unwrap();
    eprintln!("det: {}", c.program.summary());
    let input = photos(&dir, 2, 192, 256);
    let ours = c.run_cpu(&input).unwrap();
    same_on_host_kernels(&c, &input, &ours);
    let theirs = tract_cpu(&path, &shape, &input);
    let d = max_abs_diff(&ours[0], &theirs[0]);
    eprintln!("det probability map max abs diff {d}");
    assert!(d <= 0.02, "probability map differs by {d}");
    same_in_half(&c, &input, &theirs);
}

#[test]
fn ocr_recogniser_matches_tract() {
    let Some(dir) = models() else { return };
    let path = dir.join("ppocrv5/ppocrv5_rec.onnx");
    let shape = [2, 3, 48, 320];
    let c = Compiled::from_onnx("ppocrv5_rec", &path, &shape).unwrap();
    eprintln!("rec: {}", c.program.summary());
    // Reshapes of values read nowhere else share their input's memory.
    let p = &c.program;
    let reshapes: Vec<_> = p
        .steps
        .iter()
        .filter(|s| matches!(s.op, Op::Reshape))
        .collect();
    let in_place = reshapes
        .iter()
        .filter(|s| {
            !p.is_const(s.inputs[0]) && c.plan.offset(s.inputs[0]) == c.plan.offset(s.output)
        })
        .count();
    eprintln!("rec: {in_place} of {} reshapes in place", reshapes.len());
    assert!(
        in_place * 2 >= reshapes.len(),
        "{in_place} of {} reshapes in place",
        reshapes.len()
    );
    let input = photos(&dir, 2, 48, 320);
    let ours = c.run_cpu(&input).unwrap();
    same_on_host_kernels(&c, &input, &ours);
    let theirs = tract_cpu(&path, &shape, &input);
    let (o, t) = (&ours[0], &theirs[0]);
    assert_eq!(o.len(), t.len());
    let d = max_abs_diff(o, t);
    eprintln!("rec max abs diff {d}");
    // The same character at every time step (argmax over the alphabet).
    let classes = *c.program.shape(c.program.outputs[0]).last().unwrap();
    let argmax = |v: &[f32]| {
        v.chunks(classes)
            .map(|r| {
                r.iter()
                    .enumerate()
                    .fold(0, |b, (i, x)| if *x > r[b] { i } else { b })
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(argmax(o), argmax(t));
    assert!(d <= 1e-3, "probabilities differ by {d}");
    same_in_half(&c, &input, &theirs);
}

#[test]
fn unknown_ops_are_named() {
    // A model the lowering does not cover fails at plan time with the op and
    // the model named, never by running elsewhere.
    let mut m = TypedModel::default();
    let x = m.add_source("x", f32::fact([4])).unwrap();
    let y = m
        .wire_node("cosine", tract_onnx::tract_core::ops::math::cos(), &[x])
        .unwrap();
    m.select_output_outlets(&y).unwrap();
    let e = Compiled::new("toy", &m).unwrap_err().to_string();
    assert!(
        e.contains("toy") && e.contains("cosine") && e.contains("Cos"),
        "{e}"
    );
}

/// Half precision at the sizes the GPU runs (detector 640×640, recogniser
/// 48×320, MobileNetV2 224×224) on inputs spread over the whole normalised
/// range: no stored value overflows half (a global average's sum did, before
/// `fuse::reduce_mean`), and each model keeps its parity measure against the
/// f32 reference executor.
#[test]
fn half_precision_holds_at_full_size() {
    let Some(dir) = models() else { return };
    let cases = [
        ("mobilenet_v2", "mobilenet_v2.onnx", [1, 3, 224, 224]),
        ("ppocrv5_det", "ppocrv5/ppocrv5_det.onnx", [1, 3, 640, 640]),
        ("ppocrv5_rec", "ppocrv5/ppocrv5_rec.onnx", [1, 3, 48, 320]),
    ];
    for (name, file, shape) in cases {
        let c = Compiled::from_onnx(name, &dir.join(file), &shape).unwrap();
        let n: usize = shape.iter().product();
        // A fixed spread over [-2, 2) (ImageNet-normalised pixels reach ±2.6).
        let x: Vec<f32> = (0..n)
            .map(|i| ((i as u64 * 2654435761) % 4096) as f32 / 1024.0 - 2.0)
            .collect();
        let reference = c.run_cpu(&x).unwrap();
        let half = c.run_host_kernels_in(&x, Precision::F16).unwrap();
        assert!(half[0].iter().all(|v| v.is_finite()), "{name}: not finite");
        let rows = *c.program.shape(c.program.outputs[0]).last().unwrap();
        let check = parity::runtime_output(name, rows, &half[0], &reference[0], "host f16".into());
        eprintln!("{check}");
        assert!(check.pass, "{check}");
    }
}

/// Text drawn with the CJK font on a light background, `w`×`h`, a line per
/// entry of `lines` (`size` px, `step` px apart).
fn drawn_text(dir: &Path, w: u32, h: u32, lines: &[&str], size: f32, step: i32) -> image::RgbImage {
    use ab_glyph::{FontRef, PxScale};
    use image::{Rgb, RgbImage};

    let font = std::fs::read(dir.join("fonts/wqy-microhei.ttc")).unwrap();
    let font = FontRef::try_from_slice(&font).unwrap();
    let mut img = RgbImage::from_pixel(w, h, Rgb([245, 242, 235]));
    for (k, text) in lines.iter().enumerate() {
        imageproc::drawing::draw_text_mut(
            &mut img,
            Rgb([20, 20, 30]),
            12,
            6 + step * k as i32,
            PxScale::from(size),
            &font,
            text,
        );
    }
    img
}

const LINES: [&str; 4] = [
    "顶级复刻 1:1 AAA",
    "加微信 lux8888 看实物",
    "NIKE AIR MAX 90",
    "¥199.00 包邮",
];

/// Half precision on drawn text, as the GPU reads it. The detector (640×640
/// page) finds the same boxes (corners within 2 px) but its probability map
/// moves by more than 0.02 at the edges of text, so it runs in f32 unless
/// told otherwise; the recogniser (four 48×320 lines) reads the same
/// character at ≥ 99.5% of time steps, so it runs in half.
/// `Precision::for_model` is asserted against these measurements.
#[test]
fn half_precision_on_drawn_text() {
    use dajia_kernels::ocr::det::{self, DetOptions, ProbMap};

    let Some(dir) = models() else { return };
    let auto = std::env::var_os("DAJIA_GPU_PRECISION").is_none();
    // The detector.
    let page = drawn_text(&dir, 640, 640, &LINES, 48.0, 150);
    let shape = [1, 3, 640, 640];
    let c =
        Compiled::from_onnx("ppocrv5_det", &dir.join("ppocrv5/ppocrv5_det.onnx"), &shape).unwrap();
    let x = det::input_tensor(&page, 640, 640);
    let reference = c.run_cpu(&x).unwrap().swap_remove(0);
    let half = c
        .run_host_kernels_in(&x, Precision::F16)
        .unwrap()
        .swap_remove(0);
    let check = parity::runtime_output("ppocrv5_det", 640, &half, &reference, "host f16".into());
    let off = half
        .iter()
        .zip(&reference)
        .filter(|(a, b)| (*a - *b).abs() > 0.02)
        .count();
    eprintln!("{check}; {off} of {} pixels off by > 0.02", half.len());
    let opts = DetOptions::default();
    let boxes = |data: Vec<f32>| {
        let map = ProbMap {
            width: 640,
            height: 640,
            data,
        };
        det::boxes_from_map(&map, &opts, 640, 640)
    };
    let (want, got) = (boxes(reference), boxes(half));
    eprintln!(
        "detector boxes: {} in f32, {} in f16",
        want.len(),
        got.len()
    );
    assert!(want.len() >= LINES.len(), "{want:?}");
    assert_eq!(want.len(), got.len(), "{want:?}\n{got:?}");
    for ((w, _), (g, _)) in want.iter().zip(&got) {
        for (a, b) in w.iter().zip(g) {
            assert!(
                (a[0] - b[0]).abs() <= 2.0 && (a[1] - b[1]).abs() <= 2.0,
                "{w:?} vs {g:?}"
            );
        }
    }
    if auto {
        let runs_half = Precision::for_model("ppocrv5_det").unwrap() == Precision::F16;
        assert_eq!(
            runs_half, check.pass,
            "the detector's default precision against {check}"
        );
    }
    // The recogniser: each line on its own 48×320 strip, (x/255-0.5)/0.5.
    let shape = [LINES.len(), 3, 48, 320];
    let c =
        Compiled::from_onnx("ppocrv5_rec", &dir.join("ppocrv5/ppocrv5_rec.onnx"), &shape).unwrap();
    let mut x = Vec::new();
    for line in LINES {
        let strip = drawn_text(&dir, 320, 48, &[line], 30.0, 0);
        for ch in (0..3).rev() {
            x.extend(strip.pixels().map(|p| p[ch] as f32 / 127.5 - 1.0));
        }
    }
    let reference = c.run_cpu(&x).unwrap().swap_remove(0);
    let half = c
        .run_host_kernels_in(&x, Precision::F16)
        .unwrap()
        .swap_remove(0);
    let classes = *c.program.shape(c.program.outputs[0]).last().unwrap();
    let check =
        parity::runtime_output("ppocrv5_rec", classes, &half, &reference, "host f16".into());
    eprintln!("{check}");
    assert!(check.pass, "{check}");
    if auto {
        assert_eq!(Precision::for_model("ppocrv5_rec").unwrap(), Precision::F16);
        assert_eq!(
            Precision::for_model("mobilenet_v2").unwrap(),
            Precision::F16
        );
    }
}
