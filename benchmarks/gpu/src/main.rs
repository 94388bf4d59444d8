//! `dajia-gpu-bench`: what `scripts/gpu-bench.sh` runs on a GPU node.
//!
//! 1. Parity: every image kernel (resize, descriptor, similarity + top-k),
//!    mobilenet and OCR, CPU reference against the GPU, with the tolerances
//!    of `dajia_kernels::parity` (the same checks the tests assert).
//! 2. Images/s end to end for the descriptor path (decode + resize + embed +
//!    match against a reference set), on all CPU cores and on the GPU.
//! 3. OCR lines/s and characters/s (and accuracy against the truth) on the
//!    set `dajia bench ocr --out` renders, on all CPU cores and on the GPU.
//!
//! Writes one JSON file and a markdown table. Kernels and models only (no
//! DataFusion), so a stripped release build is small enough to carry.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use dajia_kernels::device::{self, Device, DeviceChoice, Runtime};
use dajia_kernels::image::matching::ReferenceSet;
use dajia_kernels::image::mobilenet::{self, MobileNet};
use dajia_kernels::image::{decode, embed, ops, DecodeLimits, EmbedderKind};
use dajia_kernels::ocr::{accuracy, Ocr, OcrOptions, OcrTimes};
use dajia_kernels::parity::{self, Check};
use rayon::prelude::*;
use serde::Serialize;

mod export;
mod models;
mod pool;

#[derive(Parser)]
#[command(about = "CPU against CUDA: parity and throughput of dajia's image and OCR work")]
struct Args {
    /// Models folder (scripts/setup-models.sh): mobilenet_v2.onnx, ppocrv5/.
    #[arg(long)]
    models: PathBuf,
    /// Folder of photos (JPEG/PNG) for the image path, reused round-robin;
    /// without it, `--synthetic` photo-like JPEGs are drawn here.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Real photographs (scripts/setup-models.sh's photos/) to make the photo
    /// pool from when no `--images` folder is given: crops scaled to 320-1600
    /// px, 70% baseline JPEG, 15% progressive JPEG, 10% PNG, 5% WebP.
    #[arg(long)]
    photos: Option<PathBuf>,
    /// Photos in that pool.
    #[arg(long, default_value_t = 2_000)]
    pool: usize,
    /// Also write the pool's files here (the PyTorch peer reads them).
    #[arg(long)]
    pool_dir: Option<PathBuf>,
    /// Photo-like 640x480 JPEGs to draw when neither `--images` nor
    /// `--photos` is given.
    #[arg(long, default_value_t = 2_000)]
    synthetic: usize,
    /// The folder `dajia bench ocr --out` wrote (images/*.jpg, truth.jsonl).
    #[arg(long)]
    ocr_set: Option<PathBuf>,
    /// auto, cpu or cuda (cuda fails without a GPU).
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Images through the descriptor path on the GPU.
    #[arg(long, default_value_t = 100_000)]
    gpu_images: usize,
    /// Images through the descriptor path on the CPU.
    #[arg(long, default_value_t = 4_000)]
    cpu_images: usize,
    /// Images through the mobilenet path on the GPU (0: skipped).
    #[arg(long, default_value_t = 20_000)]
    gpu_mobilenet_images: usize,
    /// Images through the mobilenet path on the CPU (0: skipped).
    #[arg(long, default_value_t = 200)]
    cpu_mobilenet_images: usize,
    /// References matched against.
    #[arg(long, default_value_t = 10_000)]
    refs: usize,
    /// OCR images read on the CPU, from the start of the set (default: the
    /// whole set, as the GPU reads it, so the accuracies compare).
    #[arg(long, default_value_t = usize::MAX)]
    cpu_ocr_images: usize,
    /// Skip the models on dajia's runtime (parity and items/s per batch).
    #[arg(long)]
    no_models: bool,
    /// Write dajia's lowered program of each model and shape here for the
    /// PyTorch peer (`benchmarks/gpu/program_peer.py`), then exit.
    #[arg(long)]
    export_programs: Option<PathBuf>,
    #[arg(long, required_unless_present = "export_programs")]
    json: Option<PathBuf>,
    #[arg(long)]
    markdown: Option<PathBuf>,
}

#[derive(Serialize)]
struct ImagesRun {
    device: String,
    embedder: &'static str,
    images: usize,
    references: usize,
    seconds: f64,
    images_per_second: f64,
    /// Decoding alone on all CPU cores (what feeds the GPU).
    decode_images_per_second: Option<f64>,
    gpu_seconds: Option<f64>,
    /// Of the GPU seconds, nvJPEG's batched decode.
    gpu_jpeg_decode_seconds: Option<f64>,
    /// Of the GPU seconds, the model's runs (mobilenet).
    gpu_model_seconds: Option<f64>,
    /// CPU decoding of what the device does not decode, thread-seconds.
    cpu_decode_thread_seconds: Option<f64>,
    out_of_memory_splits: Option<u64>,
    /// Images nvJPEG decoded on the device (the rest on the CPU).
    device_decoded: Option<u64>,
    device_decode_fallback: Option<u64>,
}

#[derive(Serialize)]
struct OcrRun {
    device: String,
    images: usize,
    lines: usize,
    chars: usize,
    seconds: f64,
    lines_per_second: f64,
    chars_per_second: f64,
    char_accuracy: f64,
    images_per_second: f64,
    /// Plans built before reading (shape buckets on a GPU).
    warm_up_plans: usize,
    /// Model runs and thread-seconds per stage (det, post-processing, rec).
    split: OcrTimes,
    placements: Vec<String>,
}

#[derive(Serialize)]
struct Report {
    device: String,
    gpu_unavailable: Option<String>,
    cpu_threads: usize,
    /// The photo pool's make-up, when made from `--photos`.
    pool: Option<pool::PoolMix>,
    parity: Vec<Check>,
    parity_pass: bool,
    images: Vec<ImagesRun>,
    ocr: Vec<OcrRun>,
    /// The three models on dajia's runtime, in f32 and f16.
    models: Vec<models::ModelRun>,
    goal_images_per_second: f64,
    /// mobilenet end to end against the PyTorch peer (images_peer.py).
    goal_mobilenet_over_peer: f64,
    goal_ocr_chars_per_second: f64,
    /// Stages that failed (the run goes on past them): "stage: error".
    errors: Vec<String>,
    /// Seconds each stage took, in order.
    stage_seconds: Vec<(String, f64)>,
}

impl Report {
    /// Runs one stage: its time is recorded, and its error too, without
    /// ending the run (a GPU session is short; one broken stage must not
    /// cost the figures of the others). The JSON is rewritten after each
    /// stage so a run cut short by its time limit still leaves its results.
    fn stage<T>(
        &mut self,
        name: &str,
        json: &Path,
        f: impl FnOnce(&mut Report) -> Result<T>,
    ) -> Option<T> {
        eprintln!("stage {name}: start");
        let t = Instant::now();
        let r = f(self);
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "stage {name}: {:.1}s{}",
            s,
            r.as_ref()
                .err()
                .map(|e| format!(", FAILED: {e:#}"))
                .unwrap_or_default()
        );
        self.stage_seconds.push((name.to_string(), s));
        let out = match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(format!("{name}: {e:#}"));
                None
            }
        };
        if let Ok(bytes) = serde_json::to_vec_pretty(self) {
            let _ = std::fs::write(json, bytes);
        }
        out
    }
}

fn read_images(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension()
                    .and_then(|e| e.to_str())
                    .map(|e| e.to_ascii_lowercase())
                    .as_deref(),
                Some("jpg" | "jpeg" | "png" | "webp")
            )
        })
        .collect();
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no images in {}", dir.display());
    files.iter().map(|p| Ok(std::fs::read(p)?)).collect()
}

/// Decode + embed + match `n` images (round-robin over `pool`) on `device`.
fn images_run(
    device: &Device,
    kind: EmbedderKind,
    pool: &[Vec<u8>],
    refs: &ReferenceSet,
    n: usize,
    models: &Path,
) -> Result<ImagesRun> {
    let limits = DecodeLimits::default();
    let embedder = embed::load_on(kind, models, device)?;
    let ops = ops::for_device(device);
    let batch: Vec<&[u8]> = (0..n).map(|i| pool[i % pool.len()].as_slice()).collect();
    // Warm-up: kernels compiled (or read from the cubin cache), buffers sized.
    let warm = &batch[..batch.len().min(256)];
    let _ = embedder.embed_batch(warm, &limits);
    let t = Instant::now();
    let mut done = 0;
    for chunk in batch.chunks(16_384) {
        let embs = embedder.embed_batch(chunk, &limits);
        let mut flat = Vec::with_capacity(chunk.len() * refs.dim);
        for e in embs {
            flat.extend(e?);
        }
        let top = ops.top_k(&flat, refs, 5)?;
        done += top.len();
    }
    let seconds = t.elapsed().as_secs_f64();
    let decode_rate = if device.is_cuda() {
        let t = Instant::now();
        let m = batch.len().min(20_000);
        batch[..m].par_iter().for_each(|b| {
            let _ = decode(b, &limits);
        });
        Some(m as f64 / t.elapsed().as_secs_f64())
    } else {
        None
    };
    let times = embedder.times();
    Ok(ImagesRun {
        device: device.describe(),
        embedder: kind.name(),
        images: done,
        references: refs.len(),
        seconds,
        images_per_second: done as f64 / seconds,
        decode_images_per_second: decode_rate,
        gpu_seconds: times.map(|t| t.device_seconds),
        gpu_jpeg_decode_seconds: times.map(|t| t.device_jpeg_decode_seconds),
        gpu_model_seconds: times.map(|t| t.device_model_seconds),
        cpu_decode_thread_seconds: times.map(|t| t.decode_thread_seconds),
        out_of_memory_splits: times.map(|t| t.splits),
        device_decoded: times.map(|t| t.device_decoded),
        device_decode_fallback: times.map(|t| t.device_decode_fallback),
    })
}

/// Photo-like JPEGs (640x480, quality 85): gradients, blocks of colour, a
/// disc and noise, different for each index. Carrying real photos to a GPU
/// node would eat the bundle's size budget; decoding cost is what matters.
fn synthetic_photos(n: usize) -> Vec<Vec<u8>> {
    (0..n as u32)
        .into_par_iter()
        .map(|k| {
            let mut x = 0x9E37_79B9u32.wrapping_mul(k + 1) | 1;
            let mut rnd = move || {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x
            };
            let (cx, cy, r) = (rnd() % 640, rnd() % 480, 40 + rnd() % 160);
            let tint = [rnd() as u8, rnd() as u8, rnd() as u8];
            let stripe = 8 + rnd() % 48;
            let img = image::RgbImage::from_fn(640, 480, |px, py| {
                let inside = (px as i64 - cx as i64).pow(2) + (py as i64 - cy as i64).pow(2)
                    < (r * r) as i64;
                let n = (rnd() % 20) as u8;
                if inside {
                    image::Rgb(tint.map(|t| t.saturating_add(n)))
                } else {
                    let band = ((px + k) / stripe + py / stripe) % 2 == 0;
                    image::Rgb([
                        ((px * 255 / 640) as u8).saturating_add(n),
                        ((py * 255 / 480) as u8).saturating_add(n),
                        if band { 190 } else { 50 },
                    ])
                }
            });
            let mut out = std::io::Cursor::new(Vec::new());
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
                .encode_image(&img)
                .expect("in-memory JPEG");
            out.into_inner()
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct Truth {
    file: String,
    lines: Vec<String>,
}

fn read_ocr_set(dir: &Path) -> Result<Vec<(Vec<u8>, Vec<String>)>> {
    let text = std::fs::read_to_string(dir.join("truth.jsonl"))
        .with_context(|| format!("{}/truth.jsonl", dir.display()))?;
    text.lines()
        .map(|l| {
            let t: Truth = serde_json::from_str(l)?;
            Ok((
                std::fs::read(dir.join(&t.file)).with_context(|| t.file.clone())?,
                t.lines,
            ))
        })
        .collect()
}

fn ocr_run(
    runtime: Runtime,
    device: &Device,
    models: &Path,
    set: &[(Vec<u8>, Vec<String>)],
) -> Result<OcrRun> {
    // As `dajia`'s [ocr] options resolve them: batches and shape buckets on
    // a GPU, one image and line at a time on the CPU.
    let gpu = runtime == Runtime::Cuda;
    let opts = OcrOptions {
        runtime,
        rec_batch: if gpu { 128 } else { 1 },
        det_batch: if gpu { 16 } else { 1 },
        det: dajia_kernels::ocr::DetOptions {
            bucket: if gpu { 128 } else { 32 },
            ..Default::default()
        },
        ..Default::default()
    };
    let ocr = Ocr::load(models, opts)?;
    let limits = DecodeLimits::default();
    let bytes: Vec<&[u8]> = set.iter().map(|(b, _)| b.as_slice()).collect();
    let t = Instant::now();
    let plans = ocr.warm_up()?;
    eprintln!(
        "ocr {}: warm-up built {plans} plans in {:.1}s",
        runtime.name(),
        t.elapsed().as_secs_f64()
    );
    let _ = ocr.read_batch(&bytes[..bytes.len().min(8)], &limits); // CPU plans built
    let before = ocr.times();
    let t = Instant::now();
    let pages = ocr.read_batch(&bytes, &limits);
    let seconds = t.elapsed().as_secs_f64();
    let after = ocr.times();
    let (mut lines, mut chars, mut errors, mut truth) = (0, 0, 0, 0);
    for (p, (_, want)) in pages.iter().zip(set) {
        let page = p.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        let text = page.text();
        lines += page.lines.len();
        chars += accuracy::normalise(&text).len();
        let (e, n) = accuracy::score(want, &text);
        errors += e;
        truth += n;
    }
    Ok(OcrRun {
        device: device.describe(),
        images: set.len(),
        lines,
        chars,
        seconds,
        lines_per_second: lines as f64 / seconds,
        chars_per_second: chars as f64 / seconds,
        char_accuracy: 1.0 - errors as f64 / truth.max(1) as f64,
        images_per_second: set.len() as f64 / seconds,
        warm_up_plans: plans,
        split: OcrTimes {
            images: after.images - before.images,
            det_runs: after.det_runs - before.det_runs,
            rec_runs: after.rec_runs - before.rec_runs,
            lines: after.lines - before.lines,
            det_seconds: after.det_seconds - before.det_seconds,
            post_seconds: after.post_seconds - before.post_seconds,
            rec_seconds: after.rec_seconds - before.rec_seconds,
        },
        placements: ocr
            .placements()
            .into_iter()
            .map(|(m, p)| format!("{m}: {p}"))
            .collect(),
    })
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    if let Some(dir) = &a.export_programs {
        export::all(&a.models, dir)?;
        eprintln!("programs written to {}", dir.display());
        return Ok(());
    }
    let json_path = a.json.clone().context("--json is required")?;
    let (pool, mix) = match (&a.images, &a.photos) {
        (Some(dir), _) => (read_images(dir)?, None),
        (None, Some(photos)) => {
            let (named, mix) = pool::make(photos, a.pool, 7)?;
            if let Some(dir) = &a.pool_dir {
                pool::write(&named, dir)?;
            }
            eprintln!("photo pool: {mix:?}");
            (named.into_iter().map(|(_, b)| b).collect(), Some(mix))
        }
        (None, None) => (synthetic_photos(a.synthetic), None),
    };
    let limits = DecodeLimits::default();
    let sel = device::select(a.device).map_err(|e| anyhow::anyhow!("{e}"))?;
    let gpu = sel.device.is_cuda().then(|| sel.device.clone());
    let gpu_unavailable = if gpu.is_none() {
        sel.note.clone()
    } else {
        None
    };
    eprintln!(
        "device: {}{}",
        sel.device.describe(),
        sel.note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    );
    let mut report = Report {
        device: sel.device.describe(),
        gpu_unavailable,
        cpu_threads: rayon::current_num_threads(),
        pool: mix,
        parity: Vec::new(),
        parity_pass: true,
        images: Vec::new(),
        ocr: Vec::new(),
        models: Vec::new(),
        goal_images_per_second: 20_000.0,
        goal_mobilenet_over_peer: 1.5,
        goal_ocr_chars_per_second: 1_000_000.0,
        errors: Vec::new(),
        stage_seconds: Vec::new(),
    };
    let json = json_path.clone();

    // Parity on real photos: the host launcher always, the GPU when present.
    let imgs: Vec<_> = pool
        .iter()
        .take(64)
        .filter_map(|b| decode(b, &limits).ok())
        .collect();
    let mut launchers: Vec<Arc<dyn ops::ImageOps>> = vec![Arc::new(ops::HostKernelOps)];
    if let Some(g) = &gpu {
        launchers.push(ops::for_device(g));
    }
    let refs = report
        .stage("references", &json, |_| {
            let cpu_embedder = embed::load(EmbedderKind::Descriptor, &a.models)?;
            let refs_bytes: Vec<&[u8]> = (0..a.refs)
                .map(|i| pool[i % pool.len()].as_slice())
                .collect();
            let mut refs = ReferenceSet::new(dajia_kernels::image::descriptor::DIM);
            for e in cpu_embedder.embed_batch(&refs_bytes, &limits) {
                refs.push(&e?);
            }
            Ok(refs)
        })
        .context("the reference set is needed by every later stage")?;
    let queries: Vec<f32> = refs.data()[..refs.dim * 512.min(refs.len())].to_vec();
    for l in &launchers {
        report.stage(&format!("parity kernels {}", l.name()), &json, |r| {
            r.parity.push(parity::thumbnails(l.as_ref(), &imgs)?);
            r.parity.push(parity::imagenet(l.as_ref(), &imgs)?);
            r.parity.extend(parity::descriptor(l.as_ref(), &imgs)?);
            r.parity
                .push(parity::top_k(l.as_ref(), &queries, &refs, 10)?);
            Ok(())
        });
    }
    let ocr_set = a.ocr_set.as_deref().map(read_ocr_set).transpose()?;
    if gpu.is_some() {
        report.stage("parity mobilenet", &json, |r| {
            let cpu = MobileNet::load(&a.models, Runtime::Cpu)?;
            let cuda = MobileNet::load(&a.models, Runtime::Cuda)?;
            let placement = cuda.placement().map(|p| p.to_string()).unwrap_or_default();
            eprintln!("mobilenet on {placement}");
            r.parity.push(parity::mobilenet(
                &cpu,
                &cuda,
                &imgs[..imgs.len().min(16)],
                placement,
            )?);
            Ok(())
        });
        if let Some(set) = &ocr_set {
            report.stage("parity ocr", &json, |r| {
                let cpu = Ocr::load(&a.models, OcrOptions::default())?;
                let cuda = Ocr::load(
                    &a.models,
                    OcrOptions {
                        runtime: Runtime::Cuda,
                        rec_batch: 32,
                        ..Default::default()
                    },
                )?;
                let sample: Vec<&[u8]> = set.iter().take(30).map(|(b, _)| b.as_slice()).collect();
                r.parity
                    .push(parity::ocr_text(&cpu, &cuda, &sample, "dajia-cuda".into())?);
                Ok(())
            });
        }
    }
    if !a.no_models {
        report.stage("models cpu reference", &json, |r| {
            r.models = models::cpu_reference(&a.models)?;
            Ok(())
        });
        if gpu.is_some() {
            report.stage("models gpu", &json, |r| {
                models::run(&a.models, &mut r.parity, &mut r.models, &mut r.errors)
            });
        }
    }
    for c in &report.parity {
        eprintln!("parity {c}");
    }
    report.parity_pass = report.parity.iter().all(|c| c.pass);

    // Throughput: each embedder on all CPU cores and on the GPU.
    let random_refs = random_references(mobilenet::DIM, a.refs);
    let mut plan: Vec<(Device, EmbedderKind, usize)> = vec![
        (Device::Cpu, EmbedderKind::Descriptor, a.cpu_images),
        (Device::Cpu, EmbedderKind::Mobilenet, a.cpu_mobilenet_images),
    ];
    if let Some(g) = &gpu {
        plan.push((g.clone(), EmbedderKind::Descriptor, a.gpu_images));
        plan.push((g.clone(), EmbedderKind::Mobilenet, a.gpu_mobilenet_images));
    }
    for (device, kind, n) in plan {
        if n == 0 {
            continue;
        }
        // mobilenet is matched against random unit vectors of its size
        // (matching speed does not depend on the values; embedding 10,000
        // references with mobilenet on the CPU would take the run's time).
        let refs = match kind {
            EmbedderKind::Descriptor => &refs,
            EmbedderKind::Mobilenet => &random_refs,
        };
        let name = format!("images {} {}", device.describe(), kind.name());
        report.stage(&name, &json, |r| {
            let run = images_run(&device, kind, &pool, refs, n, &a.models)?;
            eprintln!(
                "images {} {}: {:.0} images/s ({} images, {:.2}s)",
                run.device, run.embedder, run.images_per_second, run.images, run.seconds
            );
            r.images.push(run);
            Ok(())
        });
    }
    if let Some(set) = &ocr_set {
        let cpu_set = &set[..set.len().min(a.cpu_ocr_images)];
        let mut runs = vec![(Runtime::Cpu, Device::Cpu, cpu_set)];
        if let Some(g) = &gpu {
            runs.push((Runtime::Cuda, g.clone(), &set[..]));
        }
        for (runtime, device, set) in runs {
            report.stage(&format!("ocr {}", runtime.name()), &json, |r| {
                let o = ocr_run(runtime, &device, &a.models, set)?;
                eprintln!(
                    "ocr {}: {:.1} lines/s, {:.0} chars/s, accuracy {:.4}",
                    o.device, o.lines_per_second, o.chars_per_second, o.char_accuracy
                );
                r.ocr.push(o);
                Ok(())
            });
        }
    }

    std::fs::write(&json_path, serde_json::to_vec_pretty(&report)?)?;
    if let Some(md) = &a.markdown {
        std::fs::write(md, markdown(&report))?;
    }
    println!("{}", markdown(&report));
    anyhow::ensure!(
        report.errors.is_empty(),
        "stages failed: {:?}",
        report.errors
    );
    anyhow::ensure!(report.parity_pass, "a parity check failed (see the table)");
    Ok(())
}

/// `n` random unit vectors of `dim` floats, deterministic.
fn random_references(dim: usize, n: usize) -> ReferenceSet {
    let mut set = ReferenceSet::new(dim);
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut v = vec![0f32; dim];
    for _ in 0..n {
        for e in v.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *e = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        }
        let norm = v.iter().map(|e| e * e).sum::<f32>().sqrt().max(1e-12);
        let unit: Vec<f32> = v.iter().map(|e| e / norm).collect();
        set.push(&unit);
    }
    set
}

fn markdown(r: &Report) -> String {
    let mut s = format!("# dajia GPU benchmark\n\ndevice: {}\n", r.device);
    if let Some(why) = &r.gpu_unavailable {
        s += &format!("\nGPU not used: {why}\n");
    }
    for e in &r.errors {
        s += &format!("\nSTAGE FAILED: {e}\n");
    }
    s += "\n## Parity (CPU reference against each launcher)\n\n| check | launcher | metric | value | tolerance | |\n|---|---|---|---|---|---|\n";
    for c in &r.parity {
        s += &format!(
            "| {} | {} | {} | {:.6} | {} | {} |\n",
            c.check,
            c.launcher,
            c.metric,
            c.value,
            c.tolerance,
            if c.pass { "ok" } else { "FAIL" }
        );
    }
    if let Some(p) = &r.pool {
        s += &format!(
            "\nPhoto pool: {} baseline JPEG, {} progressive JPEG, {} PNG, {} WebP; long side {}-{} px; mean {} bytes\n",
            p.baseline_jpeg, p.progressive_jpeg, p.png, p.webp, p.min_side, p.max_side, p.mean_bytes
        );
    }
    s += &format!("\n## Images: decode + embed + top-5, goals: descriptor {:.0}/s per node, mobilenet {:.1}x the PyTorch peer (images-peer.md)\n\n| device | embedder | images | references | seconds | images/s | decode-only images/s (CPU) | decoded on device | GPU s (of which nvJPEG; model) | CPU decode thread-s |\n|---|---|---|---|---|---|---|---|---|---|\n", r.goal_images_per_second, r.goal_mobilenet_over_peer);
    for i in &r.images {
        s += &format!(
            "| {} | {} | {} | {} | {:.2} | {:.0} | {} | {} | {} | {} |\n",
            i.device,
            i.embedder,
            i.images,
            i.references,
            i.seconds,
            i.images_per_second,
            i.decode_images_per_second
                .map(|d| format!("{d:.0}"))
                .unwrap_or_default(),
            i.device_decoded.map(|d| format!("{d}")).unwrap_or_default(),
            i.gpu_seconds
                .map(|g| format!(
                    "{g:.2} ({:.2}; {:.2})",
                    i.gpu_jpeg_decode_seconds.unwrap_or_default(),
                    i.gpu_model_seconds.unwrap_or_default()
                ))
                .unwrap_or_default(),
            i.cpu_decode_thread_seconds
                .map(|d| format!("{d:.2}"))
                .unwrap_or_default()
        );
    }
    if !r.models.is_empty() {
        s += "\n## Models (items/s; PyTorch peer in models-peer.md)\n\n| model | runtime | input | runs | items/s |\n|---|---|---|---|---|\n";
        for m in &r.models {
            s += &format!(
                "| {} | {} | {:?} | {} | {:.1} |\n",
                m.model, m.runtime, m.shape, m.runs, m.items_per_second
            );
        }
    }
    for m in r.models.iter().filter(|m| m.profile.is_some()) {
        let p = m.profile.as_deref().unwrap_or_default();
        let total: f64 = p.iter().map(|e| e.1).sum();
        s += &format!(
            "\nWhere {} {:?} spends one synchronised run ({:.2} ms): {}\n",
            m.model,
            m.shape,
            total * 1e3,
            p.iter()
                .take(6)
                .map(|(k, sec, n)| format!("{k} {:.0}% ({n})", 100.0 * sec / total.max(1e-12)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !r.ocr.is_empty() {
        s += &format!("\n## OCR (PP-OCRv5 mobile), goal {:.0} characters/s per GPU\n\n| device | images | lines | images/s | lines/s | chars/s | accuracy | det runs / s | post s | rec runs / s |\n|---|---|---|---|---|---|---|---|---|---|\n", r.goal_ocr_chars_per_second);
        for o in &r.ocr {
            s += &format!(
                "| {} | {} | {} | {:.1} | {:.1} | {:.0} | {:.4} | {} / {:.2} | {:.2} | {} / {:.2} |\n",
                o.device,
                o.images,
                o.lines,
                o.images_per_second,
                o.lines_per_second,
                o.chars_per_second,
                o.char_accuracy,
                o.split.det_runs,
                o.split.det_seconds,
                o.split.post_seconds,
                o.split.rec_runs,
                o.split.rec_seconds
            );
        }
    }
    s
}
