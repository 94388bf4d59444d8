//! Parity of each image kernel with the CPU reference: one test body per
//! kernel, run on every launcher that can run here: the host launcher (the
//! `.cu` sources compiled as C++, always) and CUDA (skipped with a message
//! when this build or machine has no GPU).

use std::sync::Arc;

use dajia_kernels::device::{self, DeviceChoice};
use dajia_kernels::image::descriptor;
use dajia_kernels::image::ops::{HostKernelOps, ImageOps};
use dajia_kernels::image::ReferenceSet;
use dajia_kernels::parity;
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

fn assert_pass(c: &parity::Check) {
    eprintln!("{c}");
    assert!(c.pass, "{c}");
}

#[test]
fn resize_thumbnails_match_the_reference_within_2_levels() {
    let imgs = images();
    for ops in launchers() {
        assert_pass(&parity::thumbnails(ops.as_ref(), &imgs).unwrap());
    }
}

#[test]
fn resize_imagenet_tensors_match_the_reference() {
    let imgs = images();
    for ops in launchers() {
        assert_pass(&parity::imagenet(ops.as_ref(), &imgs).unwrap());
    }
}

#[test]
fn descriptor_matches_the_reference() {
    let imgs = images();
    for ops in launchers() {
        for c in parity::descriptor(ops.as_ref(), &imgs).unwrap() {
            assert_pass(&c);
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
    for ops in launchers() {
        assert_pass(&parity::top_k(ops.as_ref(), &queries, &refs, 10).unwrap());
        let got = ops.top_k(&queries, &refs, 10).unwrap();
        // The exact duplicate: both copies first, the lower index first.
        assert_eq!(
            (got[300][0].index, got[300][1].index),
            (17, 20_000),
            "{}",
            ops.name()
        );
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

/// The device embedder's pipeline (bounded decode queue, batches, rejects in
/// place) gives the reference's embeddings, on the CPU and on CUDA.
#[test]
fn device_embedder_keeps_order_rejects_and_values() {
    use dajia_kernels::image::device_embed::DeviceEmbedder;
    use dajia_kernels::image::{embed, DecodeLimits, Embedder, EmbedderKind};
    let mut bytes: Vec<Vec<u8>> = Vec::new();
    for (i, img) in images().into_iter().enumerate() {
        let mut b = std::io::Cursor::new(Vec::new());
        img.write_to(&mut b, image::ImageFormat::Png).unwrap();
        bytes.push(b.into_inner());
        if i % 3 == 0 {
            bytes.push(b"not an image".to_vec());
        }
    }
    let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
    let limits = DecodeLimits::default();
    let want = embed::load(EmbedderKind::Descriptor, std::path::Path::new("."))
        .unwrap()
        .embed_batch(&refs, &limits);
    let mut devices = vec![device::Device::Cpu];
    if let Ok(s) = device::select(DeviceChoice::Cuda) {
        devices.push(s.device);
    }
    for d in devices {
        let e = DeviceEmbedder::new(EmbedderKind::Descriptor, d.clone(), None);
        let got = e.embed_batch(&refs, &limits);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            match (g, w) {
                (Ok(a), Ok(b)) => {
                    let c: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                    assert!(c >= 0.999, "{d:?}: cosine {c}");
                }
                (Err(a), Err(b)) => assert_eq!(a, b),
                other => panic!("{d:?}: {other:?}"),
            }
        }
        let t = e.times();
        assert!(t.batches >= 1 && t.cpu_fallback == 0, "{t:?}");
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
                    msg.contains("built without CUDA") && msg.contains("--features dajia/cuda"),
                    "{msg}"
                );
            }
        }
    }
}

/// The set-up script's photographs (`$DAJIA_MODELS/photos`, else
/// ../models/photos), decoded as the scan decodes them; `None` (skipped with
/// a message) without them unless `DAJIA_REQUIRE_MODELS` is set.
fn real_photos() -> Option<Vec<RgbImage>> {
    let dir = std::env::var_os("DAJIA_MODELS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("../models"))
        .join("photos");
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(d) => d.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) if std::env::var_os("DAJIA_REQUIRE_MODELS").is_some() => {
            panic!(
                "DAJIA_REQUIRE_MODELS is set but {} is missing",
                dir.display()
            )
        }
        Err(_) => {
            eprintln!("real-photo parity skipped: no {}", dir.display());
            return None;
        }
    };
    files.sort();
    let limits = dajia_kernels::image::DecodeLimits::default();
    Some(
        files
            .iter()
            .map(|f| dajia_kernels::image::decode(&std::fs::read(f).unwrap(), &limits).unwrap())
            .collect(),
    )
}

#[test]
fn kernels_match_the_reference_on_real_photos() {
    let Some(imgs) = real_photos() else { return };
    for ops in launchers() {
        assert_pass(&parity::thumbnails(ops.as_ref(), &imgs).unwrap());
        assert_pass(&parity::imagenet(ops.as_ref(), &imgs).unwrap());
        for c in parity::descriptor(ops.as_ref(), &imgs).unwrap() {
            assert_pass(&c);
        }
    }
}

/// A launcher that takes JPEGs the way a GPU's nvJPEG does (its own decode,
/// then resize and descriptor where the pixels are), here decoding on the
/// CPU and running the host-compiled kernels; `fail` makes every device
/// decode fail, as a batch nvJPEG refuses.
struct HostJpegOps {
    fail: bool,
}

impl ImageOps for HostJpegOps {
    fn name(&self) -> String {
        "host-kernels+jpeg".into()
    }
    fn thumbnails(&self, images: &[RgbImage], side: usize) -> Result<Vec<u8>, device::DeviceError> {
        HostKernelOps.thumbnails(images, side)
    }
    fn imagenet(&self, images: &[RgbImage], side: usize) -> Result<Vec<f32>, device::DeviceError> {
        HostKernelOps.imagenet(images, side)
    }
    fn describe(&self, thumbs: &[u8]) -> Result<Vec<f32>, device::DeviceError> {
        HostKernelOps.describe(thumbs)
    }
    fn top_k(
        &self,
        queries: &[f32],
        refs: &ReferenceSet,
        k: usize,
    ) -> Result<Vec<Vec<dajia_kernels::image::Match>>, device::DeviceError> {
        HostKernelOps.top_k(queries, refs, k)
    }
    fn decodes_jpeg(&self, _jpeg: &[u8], _width: u32, _height: u32) -> bool {
        true
    }
    fn from_jpegs(
        &self,
        jpegs: &[&[u8]],
        sizes: &[(u32, u32)],
        output: dajia_kernels::image::ops::Output,
    ) -> Result<Vec<f32>, device::DeviceError> {
        if self.fail {
            return Err(device::DeviceError::Driver(
                "nvJPEG batched decode: status 3".into(),
            ));
        }
        let limits = dajia_kernels::image::DecodeLimits::default();
        let imgs: Vec<RgbImage> = jpegs
            .iter()
            .map(|j| dajia_kernels::image::decode(j, &limits).unwrap())
            .collect();
        assert!(imgs
            .iter()
            .map(|i| i.dimensions())
            .eq(sizes.iter().copied()));
        match output {
            dajia_kernels::image::ops::Output::Descriptor => self.describe_images(&imgs),
            dajia_kernels::image::ops::Output::Imagenet(side) => self.imagenet(&imgs, side),
        }
    }
}

/// Baseline JPEGs go to the device's decoder, everything else (PNG, a
/// progressive-marked JPEG, damaged bytes) to the CPU's; results come back
/// in input order with the reference's values, and a failed device decode
/// falls back to the CPU for its batch.
#[test]
fn device_jpeg_route_keeps_order_rejects_and_values() {
    use dajia_kernels::image::device_embed::DeviceEmbedder;
    use dajia_kernels::image::{embed, DecodeLimits, Embedder, EmbedderKind};
    use image::codecs::jpeg::JpegEncoder;
    use image::ImageEncoder;
    let mut bytes: Vec<Vec<u8>> = Vec::new();
    let mut jpegs = 0u64;
    for (i, img) in images().into_iter().enumerate() {
        let mut b = Vec::new();
        if i % 2 == 0 {
            JpegEncoder::new_with_quality(&mut b, 90)
                .write_image(
                    &img,
                    img.width(),
                    img.height(),
                    image::ExtendedColorType::Rgb8,
                )
                .unwrap();
            jpegs += 1;
        } else {
            img.write_to(&mut std::io::Cursor::new(&mut b), image::ImageFormat::Png)
                .unwrap();
        }
        bytes.push(b);
    }
    bytes.push(b"not an image".to_vec());
    let limits = DecodeLimits::default();
    let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
    let want = embed::load(EmbedderKind::Descriptor, std::path::Path::new("."))
        .unwrap()
        .embed_batch(&refs, &limits);
    for fail in [false, true] {
        let e = DeviceEmbedder::with_ops(
            EmbedderKind::Descriptor,
            Arc::new(HostJpegOps { fail }),
            device::Device::Cpu,
            None,
        );
        let got = e.embed_batch(&refs, &limits);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            match (g, w) {
                // The describe kernel sums in another order than the Rust
                // reference (parity::descriptor's 1e-4).
                (Ok(a), Ok(b)) => assert!(
                    a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5),
                    "fail={fail}"
                ),
                (Err(a), Err(b)) => assert_eq!(a, b),
                other => panic!("fail={fail}: {other:?}"),
            }
        }
        let t = e.times();
        if fail {
            assert_eq!((t.device_decoded, t.device_decode_fallback), (0, jpegs));
        } else {
            assert_eq!((t.device_decoded, t.device_decode_fallback), (jpegs, 0));
        }
    }
}
