//! `dajia bench images`: decode+embed throughput per core and on all cores,
//! matching throughput, and recall@1 of transformed copies among distractor
//! photos. The JPEGs and the ground truth are written to `--out` so that a
//! peer (benchmarks/images_peer.py: PIL + imagehash) measures the same files.
//! It also measures what the per-image decode time limit costs
//! ([`DecodeGuardCost`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use image::imageops::FilterType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use dajia_kernels::image::{self as kimage, DecodeLimits, ReferenceSet};

use crate::gen::photos::{jpeg, photo, transform, TRANSFORMS};
use crate::images::ImageOptions;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub out: PathBuf,
    /// Reference photos: the originals of the queries plus distractors.
    pub refs: usize,
    /// Transformed copies searched for among the references.
    pub queries: usize,
    pub images: ImageOptions,
    /// Images embedded for the throughput figures.
    pub throughput_images: usize,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TransformRecall {
    pub transform: String,
    pub queries: usize,
    pub recall_at_1: f64,
    pub min_similarity: f32,
}

/// What the decode time limit costs: the time limit runs each image's
/// decoder on a helper thread ([`kimage::decode`]), so decoding alone is
/// timed with and without it on the same images, on one core and on all.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeGuardCost {
    /// The limit measured (the options' `decode_timeout_ms`, or 10 s where
    /// that is off).
    pub timeout_ms: u64,
    pub images: usize,
    /// Images decoded per second, best of [`GUARD_REPEATS`] runs each.
    pub one_core_without_limit: f64,
    pub one_core_with_limit: f64,
    pub all_cores_without_limit: f64,
    pub all_cores_with_limit: f64,
    /// Extra wall time per image on one core, in microseconds.
    pub overhead_us_per_image_one_core: f64,
    /// Throughput with the limit over throughput without it (1.0: free).
    pub ratio_one_core: f64,
    pub ratio_all_cores: f64,
}

/// Runs of each decode timing, alternated; the best is kept (the others are
/// noise from the rest of the machine).
const GUARD_REPEATS: usize = 5;

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub embedder: String,
    /// Where embedding and matching ran.
    pub device: String,
    pub dim: usize,
    pub refs: usize,
    pub queries: usize,
    pub mean_image_bytes: f64,
    pub mean_image_pixels: f64,
    pub images_per_second_one_core: f64,
    pub images_per_second_all_cores: f64,
    pub cores: usize,
    pub match_queries: usize,
    pub match_refs: usize,
    pub match_pairs_per_second: f64,
    pub match_queries_per_second: f64,
    pub recall_at_1: f64,
    pub per_transform: Vec<TransformRecall>,
    /// Similarity of each copy to its original: 1st percentile and median.
    pub copy_similarity_p01: f32,
    pub copy_similarity_p50: f32,
    /// Best similarity of a query to any other reference: median, 99th
    /// percentile and maximum.
    pub unrelated_similarity_p50: f32,
    pub unrelated_similarity_p99: f32,
    pub unrelated_similarity_max: f32,
    pub threshold: f32,
    /// Copies at or above the threshold / unrelated best matches at or above it.
    pub copies_above_threshold: f64,
    pub unrelated_above_threshold: f64,
    pub decode_guard: DecodeGuardCost,
}

/// A reference photo at a size between 320 and 640 px on each side.
fn reference_jpeg(seed: u64) -> Vec<u8> {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0xbe7c);
    let (w, h) = (r.random_range(320..=640), r.random_range(320..=640));
    let img = image::imageops::resize(&photo(seed), w, h, FilterType::Triangle);
    jpeg(&img, 88)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    std::fs::write(dir.join(name), bytes).with_context(|| format!("writing {name}"))
}

fn percentile(v: &mut [f32], p: f64) -> f32 {
    if v.is_empty() {
        return f32::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Decoding alone of `sample`, with and without a time limit per image.
fn decode_guard_cost(
    sample: &[&[u8]],
    limits: &DecodeLimits,
    one: &rayon::ThreadPool,
) -> Result<DecodeGuardCost> {
    let timeout = limits.timeout.unwrap_or(std::time::Duration::from_secs(10));
    let with = DecodeLimits {
        timeout: Some(timeout),
        ..*limits
    };
    let without = DecodeLimits {
        timeout: None,
        ..*limits
    };
    // Seconds to decode `sample` once under `l`, on `pool` or on all cores.
    let time = |l: &DecodeLimits, pool: Option<&rayon::ThreadPool>| -> Result<f64> {
        let t = Instant::now();
        let decode_all = || sample.par_iter().all(|b| kimage::decode(b, l).is_ok());
        let ok = match pool {
            Some(p) => p.install(decode_all),
            None => decode_all(),
        };
        anyhow::ensure!(ok, "a benchmark image failed to decode");
        Ok(t.elapsed().as_secs_f64())
    };
    // Alternated, so that the machine's slow moments fall on both.
    let rates = |pool: Option<&rayon::ThreadPool>| -> Result<(f64, f64)> {
        let (mut without_s, mut with_s) = (f64::MAX, f64::MAX);
        for _ in 0..GUARD_REPEATS {
            without_s = without_s.min(time(&without, pool)?);
            with_s = with_s.min(time(&with, pool)?);
        }
        let n = sample.len() as f64;
        Ok((n / without_s, n / with_s))
    };
    let (one_without, one_with) = rates(Some(one))?;
    let (all_without, all_with) = rates(None)?;
    Ok(DecodeGuardCost {
        timeout_ms: timeout.as_millis() as u64,
        images: sample.len(),
        one_core_without_limit: one_without,
        one_core_with_limit: one_with,
        all_cores_without_limit: all_without,
        all_cores_with_limit: all_with,
        overhead_us_per_image_one_core: (1.0 / one_with - 1.0 / one_without) * 1e6,
        ratio_one_core: one_with / one_without,
        ratio_all_cores: all_with / all_without,
    })
}

pub fn run(o: &BenchOptions) -> Result<BenchReport> {
    anyhow::ensure!(
        o.refs > 0 && o.queries > 0,
        "--refs and --queries must be at least 1"
    );
    anyhow::ensure!(o.queries <= o.refs, "--queries must not exceed --refs");
    anyhow::ensure!(
        o.throughput_images > 0,
        "--throughput-images must be at least 1"
    );
    let device = crate::images::open_device(o.images.device)?;
    let embedder = kimage::embed::load_on(o.images.embedder, &o.images.models_dir, &device)?;
    let ops = kimage::ops::for_device(&device);
    let limits: DecodeLimits = o.images.limits();
    let refs_dir = o.out.join("refs");
    let q_dir = o.out.join("queries");
    std::fs::create_dir_all(&refs_dir)?;
    std::fs::create_dir_all(&q_dir)?;

    // Inputs (written once; a rerun with the same seed reuses them).
    eprintln!(
        "generating {} reference photos and {} copies under {}",
        o.refs,
        o.queries,
        o.out.display()
    );
    let refs: Vec<Vec<u8>> = (0..o.refs as u64)
        .into_par_iter()
        .map(|i| reference_jpeg(o.seed * 1_000_003 + i))
        .collect();
    for (i, b) in refs.iter().enumerate() {
        write(&refs_dir, &format!("{i:06}.jpg"), b)?;
    }
    // Query i copies reference i * step with transform i % TRANSFORMS.len().
    let step = (o.refs / o.queries.max(1)).max(1);
    let queries: Vec<(usize, &str, Vec<u8>)> = (0..o.queries)
        .into_par_iter()
        .map(|i| {
            let target = i * step;
            let kind = TRANSFORMS[i % TRANSFORMS.len()];
            let mut rng = ChaCha8Rng::seed_from_u64(o.seed ^ (i as u64 * 7919));
            let src = image::load_from_memory(&refs[target])
                .expect("own JPEG")
                .into_rgb8();
            let (img, q) = transform(&src, kind, &mut rng);
            (target, kind, jpeg(&img, q))
        })
        .collect();
    let mut truth = String::from("query,reference,transform\n");
    for (i, (target, kind, b)) in queries.iter().enumerate() {
        let name = format!("{i:06}_{kind}.jpg");
        write(&q_dir, &name, b)?;
        truth.push_str(&format!("queries/{name},refs/{target:06}.jpg,{kind}\n"));
    }
    write(&o.out, "truth.csv", truth.as_bytes())?;

    // Throughput: decode + resize + embed, one core, then all cores.
    let sample: Vec<&[u8]> = refs
        .iter()
        .take(o.throughput_images)
        .map(Vec::as_slice)
        .collect();
    let mean_bytes =
        sample.iter().map(|b| b.len()).sum::<usize>() as f64 / sample.len().max(1) as f64;
    let mean_pixels = sample
        .iter()
        .map(|b| {
            kimage::decode::dimensions(b)
                .map(|(_, w, h)| (w * h) as f64)
                .unwrap_or(0.0)
        })
        .sum::<f64>()
        / sample.len().max(1) as f64;
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let t = Instant::now();
    let r1 = one.install(|| embedder.embed_batch(&sample, &limits));
    let one_core = sample.len() as f64 / t.elapsed().as_secs_f64();
    anyhow::ensure!(
        r1.iter().all(|r| r.is_ok()),
        "a benchmark image failed to embed"
    );
    let t = Instant::now();
    let _ = embedder.embed_batch(&sample, &limits);
    let all_cores = sample.len() as f64 / t.elapsed().as_secs_f64();
    let decode_guard = decode_guard_cost(&sample, &limits, &one)?;

    // Accuracy: every reference and every query embedded.
    eprintln!(
        "embedding {} references and {} queries with {}",
        refs.len(),
        queries.len(),
        embedder.kind()
    );
    let dim = embedder.kind().dim();
    let mut set = ReferenceSet::new(dim);
    let all: Vec<&[u8]> = refs.iter().map(Vec::as_slice).collect();
    for e in embedder.embed_batch(&all, &limits) {
        set.push(&e?);
    }
    let qb: Vec<&[u8]> = queries.iter().map(|q| q.2.as_slice()).collect();
    let mut qv = Vec::with_capacity(queries.len() * dim);
    for e in embedder.embed_batch(&qb, &limits) {
        qv.extend(e?);
    }
    let top = ops.top_k(&qv, &set, 2)?;
    let threshold = o.images.threshold();
    let mut copy_sims = Vec::new();
    let mut unrelated = Vec::new();
    let mut per: Vec<(usize, usize, f32)> = vec![(0, 0, f32::MAX); TRANSFORMS.len()];
    for (i, (target, _, _)) in queries.iter().enumerate() {
        let k = i % TRANSFORMS.len();
        let q = &qv[i * dim..(i + 1) * dim];
        let own = dajia_kernels::image::embed::cosine(q, set.row(*target));
        copy_sims.push(own);
        let other = top[i]
            .iter()
            .find(|m| m.index as usize != *target)
            .map(|m| m.similarity)
            .unwrap_or(-1.0);
        unrelated.push(other);
        per[k].0 += 1;
        per[k].2 = per[k].2.min(own);
        if top[i].first().is_some_and(|m| m.index as usize == *target) {
            per[k].1 += 1;
        }
    }
    let hits: usize = per.iter().map(|p| p.1).sum();
    let above =
        |v: &[f32]| v.iter().filter(|&&s| s >= threshold).count() as f64 / v.len().max(1) as f64;
    let copies_above = above(&copy_sims);
    let unrelated_above = above(&unrelated);

    // Matching throughput: every reference as a query against all of them.
    let t = Instant::now();
    let _ = ops.top_k(set.data(), &set, 5)?;
    let secs = t.elapsed().as_secs_f64();
    let n = set.len();

    Ok(BenchReport {
        device: device.describe(),
        embedder: embedder.kind().to_string(),
        dim,
        refs: o.refs,
        queries: o.queries,
        mean_image_bytes: mean_bytes,
        mean_image_pixels: mean_pixels,
        images_per_second_one_core: one_core,
        images_per_second_all_cores: all_cores,
        cores: rayon::current_num_threads(),
        match_queries: n,
        match_refs: n,
        match_pairs_per_second: (n * n) as f64 / secs,
        match_queries_per_second: n as f64 / secs,
        recall_at_1: hits as f64 / queries.len().max(1) as f64,
        per_transform: TRANSFORMS
            .iter()
            .zip(&per)
            .map(|(t, p)| TransformRecall {
                transform: t.to_string(),
                queries: p.0,
                recall_at_1: p.1 as f64 / p.0.max(1) as f64,
                min_similarity: p.2,
            })
            .collect(),
        copy_similarity_p01: percentile(&mut copy_sims.clone(), 0.01),
        copy_similarity_p50: percentile(&mut copy_sims, 0.5),
        unrelated_similarity_p50: percentile(&mut unrelated.clone(), 0.5),
        unrelated_similarity_p99: percentile(&mut unrelated.clone(), 0.99),
        unrelated_similarity_max: percentile(&mut unrelated, 1.0),
        threshold,
        copies_above_threshold: copies_above,
        unrelated_above_threshold: unrelated_above,
        decode_guard,
    })
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "dajia bench images ({} embedder, {} floats)",
            self.embedder, self.dim
        )?;
        writeln!(
            f,
            "  decode+embed: {:.0} images/s on one core, {:.0} images/s on {} cores (mean {:.0} px, {:.0} bytes)",
            self.images_per_second_one_core, self.images_per_second_all_cores, self.cores, self.mean_image_pixels, self.mean_image_bytes
        )?;
        writeln!(
            f,
            "  matching: {} x {} exact top-5 in {:.3}s: {:.2e} pairs/s, {:.0} queries/s",
            self.match_queries,
            self.match_refs,
            (self.match_queries * self.match_refs) as f64 / self.match_pairs_per_second,
            self.match_pairs_per_second,
            self.match_queries_per_second
        )?;
        writeln!(
            f,
            "  recall@1 {:.4} ({} copies among {} references)",
            self.recall_at_1, self.queries, self.refs
        )?;
        for t in &self.per_transform {
            writeln!(
                f,
                "    {:<10} {:>5} copies  recall@1 {:.4}  min similarity {:.3}",
                t.transform, t.queries, t.recall_at_1, t.min_similarity
            )?;
        }
        writeln!(
            f,
            "  similarity: copies p01 {:.3} p50 {:.3}; best unrelated p50 {:.3} p99 {:.3} max {:.3}",
            self.copy_similarity_p01, self.copy_similarity_p50, self.unrelated_similarity_p50, self.unrelated_similarity_p99, self.unrelated_similarity_max
        )?;
        writeln!(
            f,
            "  threshold {:.3}: {:.4} of copies and {:.4} of unrelated best matches at or above it",
            self.threshold, self.copies_above_threshold, self.unrelated_above_threshold
        )?;
        let g = &self.decode_guard;
        write!(
            f,
            "  decode alone, {} images, without / with a {} ms limit per image: one core {:.0} / {:.0} images/s ({:.3}x, {:+.1} us per image); {} cores {:.0} / {:.0} images/s ({:.3}x)",
            g.images, g.timeout_ms, g.one_core_without_limit, g.one_core_with_limit, g.ratio_one_core,
            g.overhead_us_per_image_one_core, self.cores, g.all_cores_without_limit, g.all_cores_with_limit, g.ratio_all_cores
        )
    }
}
