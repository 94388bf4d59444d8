//! OCR detection post-processing (threshold, contours, minimum-area boxes,
//! unclip, crops) on any probability map: boxes lie inside the image, scores
//! are probabilities, crops are non-empty; no panic.
#![no_main]

use arbitrary::Arbitrary;
use dajia_kernels::ocr::det::{boxes_from_map, ProbMap};
use dajia_kernels::ocr::{crop_line, DetOptions};
use image::RgbImage;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    width: u8,
    height: u8,
    dest_w: u16,
    dest_h: u16,
    unclip: u8,
    cells: Vec<u8>,
}

fuzz_target!(|inp: Input| {
    let (w, h) = (inp.width as usize % 96 + 1, inp.height as usize % 96 + 1);
    if inp.cells.is_empty() {
        return;
    }
    let data: Vec<f32> = (0..w * h)
        .map(|i| inp.cells[i % inp.cells.len()] as f32 / 255.0)
        .collect();
    let map = ProbMap {
        width: w,
        height: h,
        data,
    };
    let opts = DetOptions {
        unclip_ratio: 0.5 + inp.unclip as f32 / 64.0,
        ..DetOptions::default()
    };
    let (dw, dh) = (
        (inp.dest_w as u32 % 1024) + 1,
        (inp.dest_h as u32 % 1024) + 1,
    );
    let img = RgbImage::new(dw.min(256), dh.min(256));
    for (quad, score) in boxes_from_map(&map, &opts, dw, dh) {
        assert!((0.0..=1.0).contains(&score), "score {score}");
        for [x, y] in quad {
            assert!(x.is_finite() && y.is_finite());
            assert!(
                (0.0..=dw as f32).contains(&x) && (0.0..=dh as f32).contains(&y),
                "corner ({x}, {y}) outside {dw}x{dh}"
            );
        }
        let crop = crop_line(&img, &quad);
        assert!(crop.width() > 0 && crop.height() > 0);
    }
});
