//! Parity of each image kernel with the CPU reference: one test body per
//! kernel, run on every launcher that can run here: the host launcher (the
//! `.cu` sources compiled as C++, always) and CUDA (skipped with a message
//! when this build or machine has no GPU).

use std::sync::Arc;

use dajia_kernels::device::{self, DeviceChoice};
use dajia_kernels::image::descriptor;
use dajia_kernels::image::ops::{CpuOps, HostKernelOps, ImageOps};
use dajia_kernels::image::ReferenceSet;
use image::{Rgb, RgbImage};

/// The launchers to compare with the reference on this machine.
fn launchers() -> Vec<Arc<dyn ImageOps>> {
    let mut v: Vec<Arc<dyn ImageOps>> = vec![Arc::new(HostKernelOps)];
    match device::select(DeviceChoice::Cuda) {
        Ok(s) => v.push(dajia_kernels::image::ops::for_device(&s.device)),
        Err(e) => eprintln!("CUDA parity skipped: {e}"),
    }
    v
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as u32
    }
}

/// Photos-like test images: gradients, blocks of colour, a disc, noise; in
/// sizes that shrink a lot, a little, not at all, and grow.
fn images() -> Vec<RgbImage> {
    let sizes = [
        (640, 480),
        (1000, 300),
        (32, 32),
        (17, 23),
        (225, 224),
        (301, 977),
        (64, 40),
    ];
    let mut rng = Rng(0x5eed);
    sizes
        .iter()
        .enumerate()
        .map(|(k, &(w, h))| {
            let (cx, cy, r) = (w as f32 * 0.6, h as f32 * 0.4, (w.min(h) as f32) * 0.3);
            let tint = [rng.next() % 256, rng.next() % 256, rng.next() % 256];
            let mut img = RgbImage::new(w, h);
            for (x, y, p) in img.enumerate_pixels_mut() {
                let noise = (rng.next() % 24) as f32;
                let inside = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) < r * r;
                let base = [
                    255.0 * x as f32 / w as f32,
                    255.0 * y as f32 / h as f32,
                    if (x / 16 + y / 16 + k as u32) % 2 == 0 {
                        200.0
                    } else {
                        40.0
                    },
                ];
                let c: [u8; 3] = std::array::from_fn(|i| {
                    let v = if inside { tint[i] as f32 } else { base[i] };
                    (v * 0.9 + noise).clamp(0.0, 255.0) as u8
                });
                *p = Rgb(c);
            }
            img
        })
        .collect()
}

#[test]
fn resize_thumbnails_match_the_reference_within_2_levels() {
    let imgs = images();
    let want = CpuOps.thumbnails(&imgs, descriptor::SIDE).unwrap();
    for ops in launchers() {
        let got = ops.thumbnails(&imgs, descriptor::SIDE).unwrap();
        assert_eq!(got.len(), want.len());
        let diffs: Vec<u8> = got.iter().zip(&want).map(|(a, b)| a.abs_diff(*b)).collect();
        let max = *diffs.iter().max().unwrap();
        let within1 = diffs.iter().filter(|&&d| d <= 1).count() as f64 / diffs.len() as f64;
        eprintln!(
            "{}: thumbnails max diff {max}, {:.4} within 1",
            ops.name(),
            within1
        );
        assert!(max <= 2, "{}: max diff {max}", ops.name());
        assert!(within1 >= 0.99, "{}: {within1}", ops.name());
    }
}

#[test]
fn resize_imagenet_tensors_match_the_reference() {
    let imgs = images();
    let side = 224;
    let want = CpuOps.imagenet(&imgs, side).unwrap();
    for ops in launchers() {
        let got = ops.imagenet(&imgs, side).unwrap();
        assert_eq!(got.len(), want.len());
        let max = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{}: imagenet max diff {max:.4}", ops.name());
        // Two u8 levels over the smallest std (0.224).
        assert!(max <= 2.0 / 255.0 / 0.224 + 1e-4, "{}: {max}", ops.name());
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let d: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    d / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
}

#[test]
fn descriptor_matches_the_reference() {
    let imgs = images();
    let thumbs = CpuOps.thumbnails(&imgs, descriptor::SIDE).unwrap();
    let want = CpuOps.describe(&thumbs).unwrap();
    for ops in launchers() {
        // The kernel alone, on the reference's thumbnails.
        let got = ops.describe(&thumbs).unwrap();
        assert_eq!(got.len(), want.len());
        let max = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{}: descriptor max diff {max:.2e}", ops.name());
        assert!(max <= 1e-4, "{}: {max}", ops.name());
        // Resize and descriptor together, as the scan runs them.
        let e2e = ops
            .describe(&ops.thumbnails(&imgs, descriptor::SIDE).unwrap())
            .unwrap();
        for (i, (a, b)) in e2e
            .chunks(descriptor::DIM)
            .zip(want.chunks(descriptor::DIM))
            .enumerate()
        {
            let c = cosine(a, b);
            assert!(c >= 0.999, "{}: image {i} cosine {c}", ops.name());
        }
    }
}

#[test]
fn top_k_matches_the_reference() {
    let dim = descriptor::DIM;
    let mut rng = Rng(42);
    let mut unit = || -> Vec<f32> {
        let v: Vec<f32> = (0..dim)
            .map(|_| (rng.next() % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    };
    let mut refs = ReferenceSet::new(dim);
    // More than one block of references on every launcher (2,048 on the
    // host, 16,384 on the GPU) and a duplicate to tie.
    let rows: Vec<Vec<f32>> = (0..20_000).map(|_| unit()).collect();
    for r in &rows {
        refs.push(r);
    }
    refs.push(&rows[17]);
    let mut queries: Vec<f32> = (0..300).flat_map(|_| unit()).collect();
    queries.extend_from_slice(&rows[17]);
    queries.extend_from_slice(&rows[19_999]);
    let k = 10;
    let want = CpuOps.top_k(&queries, &refs, k).unwrap();
    for ops in launchers() {
        let got = ops.top_k(&queries, &refs, k).unwrap();
        assert_eq!(got.len(), want.len());
        for (qi, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.len(), k);
            for (j, (a, b)) in g.iter().zip(w).enumerate() {
                assert!(
                    (a.similarity - b.similarity).abs() <= 1e-5,
                    "{}: q{qi} #{j}",
                    ops.name()
                );
                // Indices agree unless two references score within rounding.
                let near_tie = w
                    .iter()
                    .any(|o| o.index != b.index && (o.similarity - b.similarity).abs() <= 1e-5);
                assert!(
                    a.index == b.index || near_tie,
                    "{}: q{qi} #{j} {a:?} vs {b:?}",
                    ops.name()
                );
            }
        }
        // The exact duplicate: both copies first, the lower index first.
        let dup = &got[300];
        assert_eq!((dup[0].index, dup[1].index), (17, 20_000), "{}", ops.name());
        assert_eq!(got[301][0].index, 19_999);
        // Empty cases.
        assert!(ops
            .top_k(&queries, &ReferenceSet::new(dim), 3)
            .unwrap()
            .iter()
            .all(|t| t.is_empty()));
        assert!(ops
            .top_k(&queries, &refs, 0)
            .unwrap()
            .iter()
            .all(|t| t.is_empty()));
    }
}

#[test]
fn cuda_asked_for_without_one_is_a_one_line_error() {
    match device::select(DeviceChoice::Cuda) {
        Ok(s) => eprintln!("a GPU is present: {}", s.device.describe()),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            if cfg!(feature = "cuda") {
                assert!(
                    msg.contains("library not found")
                        || msg.contains("no CUDA device")
                        || msg.contains("driver"),
                    "{msg}"
                );
            } else {
                assert!(
                    msg.contains("built without CUDA") && msg.contains("--features cuda"),
                    "{msg}"
                );
            }
        }
    }
}
