//! Properties the fuzz targets check (`fuzz/`, `scripts/fuzz.sh`), run as
//! property tests in the normal suite: image decoding behind the guards,
//! text normalisation and the matchers through the assessment, and OCR box
//! post-processing never panic and keep their output in range, whatever
//! the input. Cases the fuzzers found are kept below as fixed regressions.

use std::io::Cursor;

use dajia_kernels::image::{check, decode, DecodeLimits};
use dajia_kernels::ocr::det::{boxes_from_map, ProbMap};
use dajia_kernels::ocr::{crop_line, DetOptions};
use dajia_kernels::risk::{Brand, KnowledgeBase, ListingInput, Rules};
use dajia_kernels::text::normalize_text;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder};
use proptest::prelude::*;

fn limits() -> DecodeLimits {
    DecodeLimits {
        max_pixels: 4_000_000,
        max_bytes: 1 << 20,
        timeout: None,
    }
}

/// The fuzz target's check: decoded or refused, never a panic; a decoded
/// image has the size its header declared, within the limits.
fn decodes_or_refuses(data: &[u8]) {
    let checked = check(data, &limits());
    if let Ok(img) = decode(data, &limits()) {
        let c = checked.expect("decoded bytes passed the header check");
        assert_eq!((img.width(), img.height()), (c.width, c.height));
        assert!(img.width() as u64 * img.height() as u64 <= limits().max_pixels);
    }
}

fn encoded(format: u8, w: u32, h: u32, pixels: &[u8]) -> Vec<u8> {
    let px: Vec<u8> = (0..(w * h * 3) as usize)
        .map(|i| pixels[i % pixels.len()])
        .collect();
    let mut out = Vec::new();
    match format % 3 {
        0 => JpegEncoder::new_with_quality(&mut out, 75)
            .write_image(&px, w, h, ExtendedColorType::Rgb8)
            .unwrap(),
        1 => PngEncoder::new(Cursor::new(&mut out))
            .write_image(&px, w, h, ExtendedColorType::Rgb8)
            .unwrap(),
        _ => WebPEncoder::new_lossless(&mut out)
            .write_image(&px, w, h, ExtendedColorType::Rgb8)
            .unwrap(),
    }
    out
}

fn kb() -> KnowledgeBase {
    let brand = |id: i64, name: &str, aliases: &[&str]| Brand {
        id,
        name: name.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        categories: vec!["bags".into()],
        min_price_cents: Some(100_000),
        protected: true,
        ..Default::default()
    };
    KnowledgeBase::new(vec![
        brand(1, "Gucci", &["古驰", "古奇"]),
        brand(2, "Nike", &["耐克"]),
        brand(3, "Louis Vuitton", &["路易威登", "LV"]),
    ])
}

/// The text fuzz target's check: a score in [0, 1]; normalisation bounded.
fn assesses(kb: &KnowledgeBase, title: &str, description: &str) {
    let n = normalize_text(title);
    assert!(n.chars().count() <= 4 * title.chars().count() + 16);
    let a = kb.assess(
        &Rules::default(),
        &ListingInput {
            title,
            description: Some(description),
            declared_brand: Some("Gucci"),
            category: Some("bags"),
            price_cents: Some(1_000),
            seller_id: 9,
            ..Default::default()
        },
    );
    assert!((0.0..=1.0).contains(&a.score), "score {}", a.score);
}

/// The OCR fuzz target's check: boxes inside the image, scores in [0, 1].
fn boxes_in_range(w: usize, h: usize, cells: &[u8], dw: u32, dh: u32, unclip: f32) {
    let map = ProbMap {
        width: w,
        height: h,
        data: (0..w * h)
            .map(|i| cells[i % cells.len()] as f32 / 255.0)
            .collect(),
    };
    let opts = DetOptions {
        unclip_ratio: unclip,
        ..DetOptions::default()
    };
    let img = image::RgbImage::new(dw.min(128), dh.min(128));
    for (quad, score) in boxes_from_map(&map, &opts, dw, dh) {
        assert!((0.0..=1.0).contains(&score), "score {score}");
        for [x, y] in quad {
            assert!((0.0..=dw as f32).contains(&x) && (0.0..=dh as f32).contains(&y));
        }
        let crop = crop_line(&img, &quad);
        assert!(crop.width() > 0 && crop.height() > 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn damaged_images_decode_or_are_refused(
        format in 0u8..3,
        w in 1u32..40,
        h in 1u32..40,
        pixels in proptest::collection::vec(any::<u8>(), 1..64),
        damage in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..8),
        cut in proptest::option::of(any::<u16>()),
    ) {
        let mut bytes = encoded(format, w, h, &pixels);
        decodes_or_refuses(&bytes);
        for (at, v) in damage {
            let i = at as usize % bytes.len();
            bytes[i] = v;
        }
        if let Some(c) = cut {
            bytes.truncate(c as usize % (bytes.len() + 1));
        }
        decodes_or_refuses(&bytes);
    }

    #[test]
    fn any_bytes_decode_or_are_refused(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        decodes_or_refuses(&data);
    }

    #[test]
    fn any_text_gets_a_score_in_range(
        title in "[\\PC\u{4e00}-\u{4e20}古驰耐克路易威登 *.\\-·]{0,60}",
        description in "\\PC{0,40}",
    ) {
        assesses(&kb(), &title, &description);
    }

    #[test]
    fn ocr_boxes_stay_inside_the_image(
        w in 1usize..64,
        h in 1usize..64,
        cells in proptest::collection::vec(any::<u8>(), 1..256),
        dw in 1u32..1024,
        dh in 1u32..1024,
        unclip in 0.5f32..4.5,
    ) {
        boxes_in_range(w, h, &cells, dw, dh, unclip);
    }
}
