//! Image decoding behind dajia's guards: any bytes either decode within the
//! limits or fail with an error; never a panic, never a buffer beyond the
//! pixel limit. The header check and the full decode agree on the size.
//!
//! Self-seeding: each input also encodes a small valid JPEG, PNG or WebP
//! from fuzzer-chosen pixels and settings, then damages it byte by byte
//! (and may cut it short), so the decoders' deep paths are reached without
//! a corpus of files.
#![no_main]

use std::io::Cursor;

use arbitrary::Arbitrary;
use dajia_kernels::image::{check, decode, DecodeLimits};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    format: u8,
    width: u8,
    height: u8,
    quality: u8,
    gray: bool,
    pixels: Vec<u8>,
    damage: Vec<(u16, u8)>,
    cut: Option<u16>,
    raw: Vec<u8>,
}

fn limits() -> DecodeLimits {
    // Small limits so that the fuzzer explores parsing, not allocation.
    DecodeLimits {
        max_pixels: 4_000_000,
        max_bytes: 1 << 20,
        timeout: None,
    }
}

fn exercise(data: &[u8]) {
    let limits = limits();
    let checked = check(data, &limits);
    match decode(data, &limits) {
        Ok(img) => {
            let c = checked.expect("decoded bytes passed the header check");
            assert_eq!((img.width(), img.height()), (c.width, c.height));
            assert!(img.width() as u64 * img.height() as u64 <= limits.max_pixels);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fn encode(inp: &Input) -> Option<Vec<u8>> {
    let (w, h) = (inp.width as u32 % 48 + 1, inp.height as u32 % 48 + 1);
    let channels = if inp.gray { 1 } else { 3 };
    let color = if inp.gray {
        ExtendedColorType::L8
    } else {
        ExtendedColorType::Rgb8
    };
    if inp.pixels.is_empty() {
        return None;
    }
    let n = (w * h) as usize * channels;
    let px: Vec<u8> = (0..n).map(|i| inp.pixels[i % inp.pixels.len()]).collect();
    let mut out = Vec::new();
    let ok = match inp.format % 3 {
        0 => JpegEncoder::new_with_quality(&mut out, inp.quality % 100 + 1)
            .write_image(&px, w, h, color)
            .is_ok(),
        1 => PngEncoder::new_with_quality(
            Cursor::new(&mut out),
            CompressionType::Fast,
            FilterType::Adaptive,
        )
        .write_image(&px, w, h, color)
        .is_ok(),
        _ => WebPEncoder::new_lossless(&mut out)
            .write_image(&px, w, h, color)
            .is_ok(),
    };
    ok.then_some(out)
}

fuzz_target!(|inp: Input| {
    exercise(&inp.raw);
    if let Some(mut bytes) = encode(&inp) {
        exercise(&bytes);
        for (at, value) in &inp.damage {
            let i = *at as usize % bytes.len();
            bytes[i] = *value;
        }
        if let Some(cut) = inp.cut {
            bytes.truncate(cut as usize % (bytes.len() + 1));
        }
        exercise(&bytes);
    }
});
