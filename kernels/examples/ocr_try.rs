// Throwaway: render lines, OCR them.
use ab_glyph::{FontRef, PxScale};
use dajia_kernels::ocr::{Ocr, OcrOptions};
use image::{Rgb, RgbImage};
use std::time::Instant;

fn main() {
    let models = std::path::Path::new("models");
    let t = Instant::now();
    let ocr = Ocr::load(models, OcrOptions::default()).unwrap();
    println!("load {:.2}s", t.elapsed().as_secs_f64());
    let data = std::fs::read("models/fonts/wqy-microhei.ttc").unwrap();
    let font = FontRef::try_from_slice_and_index(&data, 0).unwrap();
    let photo = image::open("models/photos/coffee.png").unwrap().to_rgb8();
    let mut img = image::imageops::crop_imm(&photo, 0, 0, 600, 400).to_image();
    for (i, line) in [
        "高仿 1:1 原单 耐克",
        "加微信 lux8888 看实物",
        "Nike Air Max 2024 ¥199",
    ]
    .iter()
    .enumerate()
    {
        imageproc::drawing::draw_text_mut(
            &mut img,
            Rgb([255, 255, 255]),
            30,
            40 + 70 * i as i32,
            PxScale::from(36.0),
            &font,
            line,
        );
    }
    img.save("/tmp/ocr_try.png").unwrap();
    for _ in 0..2 {
        let t = Instant::now();
        let page = ocr.read(&img).unwrap();
        println!(
            "{:.3}s det {:.3} rec {:.3}",
            t.elapsed().as_secs_f64(),
            page.det_seconds,
            page.rec_seconds
        );
        for l in &page.lines {
            println!("  {:?} {:.3} {:?}", l.text, l.confidence, l.quad);
        }
    }
    let blank = RgbImage::from_pixel(400, 300, Rgb([200, 180, 160]));
    println!("blank: {:?}", ocr.read(&blank).unwrap().lines.len());
}
