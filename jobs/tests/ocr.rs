//! OCR: golden texts of rendered lines (Chinese, Latin, digits, mixed,
//! coloured backgrounds), multi-line detection, text-free images, the SQL
//! functions, and the scan flagging text drawn over photos. The PP-OCRv5
//! models and fonts come from scripts/setup-models.sh; without them these
//! tests skip (CI sets DAJIA_REQUIRE_MODELS, so there they cannot).

mod common;

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};

use dajia::bench::ocr::{normalise, score};
use dajia::gen::text_render::{draw_line, Fonts};
use dajia_kernels::ocr::{Ocr, OcrOptions};

fn models() -> Option<PathBuf> {
    common::models_with("ppocrv5/ppocrv5_det.onnx")
}

fn engine(dir: &Path) -> Ocr {
    Ocr::load(dir, OcrOptions::default()).expect("load PP-OCRv5")
}

fn fonts(dir: &Path) -> Fonts {
    Fonts::load(&dir.join("fonts")).expect("fonts from scripts/setup-models.sh")
}

/// `lines` drawn with `font` at 32 px on a `bg` canvas, one per 60 px row.
fn render(fonts: &Fonts, font: &str, bg: Rgb<u8>, ink: Rgb<u8>, lines: &[&str]) -> RgbImage {
    let face = fonts
        .faces
        .iter()
        .find(|f| f.name == font)
        .unwrap_or_else(|| panic!("font {font}"));
    let mut img = RgbImage::from_pixel(640, 60 * lines.len() as u32 + 40, bg);
    for (i, l) in lines.iter().enumerate() {
        draw_line(&mut img, face, 32.0, (30, 24 + 60 * i as i32), ink, l);
    }
    img
}

#[test]
fn golden_lines_in_each_script_and_on_coloured_backgrounds() {
    let Some(dir) = models() else { return };
    let (ocr, fonts) = (engine(&dir), fonts(&dir));
    let white = Rgb([255, 255, 255]);
    let black = Rgb([0, 0, 0]);
    let cases: &[(&str, Rgb<u8>, Rgb<u8>, &str)] = &[
        ("wqy-microhei.ttc", white, black, "高仿原单耐克运动鞋"),
        ("uming.ttc", white, black, "专柜正品保障假一赔十"),
        (
            "LiberationSans-Regular.ttf",
            white,
            black,
            "Original Quality Free Shipping",
        ),
        (
            "LiberationSerif-Regular.ttf",
            white,
            black,
            "Genuine Leather Handbag",
        ),
        ("LiberationSans-Bold.ttf", white, black, "138 0013 8000"),
        ("wqy-zenhei.ttc", white, black, "¥199.00 2026-11-28"),
        ("wqy-microhei.ttc", white, black, "加微信 lux8888 看实物"),
        (
            "wqy-zenhei.ttc",
            Rgb([200, 30, 30]),
            white,
            "顶级复刻 1:1 AAA",
        ),
        (
            "wqy-microhei.ttc",
            Rgb([20, 60, 160]),
            Rgb([250, 230, 60]),
            "VX: shop2024 包邮",
        ),
        (
            "LiberationSans-Bold.ttf",
            Rgb([240, 200, 40]),
            Rgb([30, 30, 30]),
            "NIKE AIR MAX 90",
        ),
    ];
    let mut report = Vec::new();
    let mut errors = 0;
    for (font, bg, ink, text) in cases {
        let page = ocr.read(&render(&fonts, font, *bg, *ink, &[text])).unwrap();
        let (e, _) = score(&[text.to_string()], &page.text());
        errors += e;
        report.push(format!(
            "{font}: {text:?} -> {:?} ({e} errors)",
            page.text()
        ));
        assert_eq!(page.lines.len(), 1, "{report:?}");
        assert!(
            page.lines[0].confidence > 0.8,
            "{report:?} {:?}",
            page.lines
        );
    }
    // Each line read exactly (NFKC, whitespace ignored): a golden test.
    assert_eq!(errors, 0, "{}", report.join("\n"));
}

#[test]
fn multi_line_images_give_one_box_per_line_in_reading_order() {
    let Some(dir) = models() else { return };
    let (ocr, fonts) = (engine(&dir), fonts(&dir));
    let lines = ["第一行 高仿包包", "Second line 2024", "第三行 加V信 abc123"];
    let img = render(
        &fonts,
        "wqy-microhei.ttc",
        Rgb([250, 250, 245]),
        Rgb([10, 10, 10]),
        &lines,
    );
    let page = ocr.read(&img).unwrap();
    let got: Vec<String> = page
        .lines
        .iter()
        .map(|l| normalise(&l.text).into_iter().collect())
        .collect();
    let want: Vec<String> = lines
        .iter()
        .map(|l| normalise(l).into_iter().collect())
        .collect();
    assert_eq!(got, want);
    // boxes are where the lines are drawn, top to bottom
    for (i, l) in page.lines.iter().enumerate() {
        let top = l.quad[0][1];
        let expected = 24.0 + 60.0 * i as f32;
        assert!(
            (top - expected).abs() < 14.0,
            "line {i} top {top} vs {expected}"
        );
        assert!(l.quad[2][1] > top + 20.0, "{:?}", l.quad);
    }
    // a line in a rotated image is still read (perspective crop of a rotated box)
    let rotated = imageproc::geometric_transformations::rotate_about_center(
        &render(
            &fonts,
            "wqy-microhei.ttc",
            Rgb([255, 255, 255]),
            Rgb([0, 0, 0]),
            &["旋转的文字 ROTATED"],
        ),
        0.12,
        imageproc::geometric_transformations::Interpolation::Bilinear,
        Rgb([255, 255, 255]),
    );
    let (e, n) = score(
        &["旋转的文字 ROTATED".to_string()],
        &ocr.read(&rotated).unwrap().text(),
    );
    assert!(e <= 1, "rotated line: {e} errors of {n}");
}

#[test]
fn the_benchmark_truth_holds_only_what_a_font_can_draw() {
    let Some(dir) = models() else { return };
    let fonts = fonts(&dir);
    for face in &fonts.faces {
        // No font here draws `➕`: it would be an empty box in the image,
        // never readable, so the truth leaves it out with its space.
        assert_eq!(
            face.drawable("➕V bag5562688"),
            "V bag5562688",
            "{}",
            face.name
        );
        assert_eq!(face.drawable("a  b ➕ c"), "a b c", "{}", face.name);
        // What the face has stays as it is.
        assert_eq!(face.drawable("VX: mall  97817x"), "VX: mall  97817x");
    }
    for face in fonts.cjk() {
        assert_eq!(
            face.drawable("高仿货 1:1 nanoblock"),
            "高仿货 1:1 nanoblock"
        );
    }
    // Latin-only faces have no Chinese.
    let sans = fonts
        .faces
        .iter()
        .find(|f| f.name == "LiberationSans-Regular.ttf")
        .expect("LiberationSans");
    assert_eq!(sans.drawable("高仿 1:1 Nike"), "1:1 Nike");
}

#[test]
fn empty_and_text_free_images_give_no_text() {
    let Some(dir) = models() else { return };
    let ocr = engine(&dir);
    let flat = RgbImage::from_pixel(400, 300, Rgb([180, 160, 140]));
    assert_eq!(ocr.read(&flat).unwrap().text(), "");
    assert_eq!(ocr.read(&RgbImage::new(1, 1)).unwrap().text(), "");
    // a real photograph without text, and a large one the gate skips
    let cat = image::open(dir.join("photos/chelsea.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(ocr.read(&cat).unwrap().text(), "");
    let big = image::imageops::resize(&cat, 1400, 930, image::imageops::FilterType::Triangle);
    let page = ocr.read(&big).unwrap();
    assert_eq!(page.text(), "");
    // corrupt bytes are an image error, not a crash
    let e = ocr
        .read_bytes(b"\xff\xd8\xff\xe0 not really a jpeg", &Default::default())
        .unwrap_err();
    assert!(e.to_string().contains("corrupt"), "{e}");
}

#[test]
fn missing_models_name_the_setup_script() {
    let tmp = tempfile::tempdir().unwrap();
    let e = Ocr::load(tmp.path(), OcrOptions::default()).err().unwrap();
    assert!(e.to_string().contains("setup-models.sh"), "{e}");
    // a corrupt model file
    std::fs::create_dir_all(tmp.path().join("ppocrv5")).unwrap();
    std::fs::write(tmp.path().join("ppocrv5/ppocrv5_det.onnx"), b"junk").unwrap();
    let e = Ocr::load(tmp.path(), OcrOptions::default()).err().unwrap();
    assert!(e.to_string().contains("could not be loaded"), "{e}");
    // through the CLI: --ocr on without models is one clear line
    let cat = tmp.path().join("cat");
    common::gen_with_images(&cat, 50, 3, 0.2);
    let out = tmp.path().join("out");
    let (ok, _, err) = common::scan_with(
        &cat,
        &out,
        &["--ocr", "on", "--models", tmp.path().to_str().unwrap()],
    );
    assert!(!ok);
    assert!(
        err.contains("setup-models.sh") && err.lines().count() == 1,
        "{err}"
    );
    assert!(
        !out.join("risk_scores").exists(),
        "a failed run publishes nothing"
    );
    // bad options are refused before any I/O
    let (ok, _, err) = common::scan_with(&cat, &out, &["--ocr", "sometimes"]);
    assert!(!ok && err.contains("unknown OCR mode `sometimes`"), "{err}");
}

#[test]
fn scan_flags_text_drawn_over_photos_and_sql_reads_it() {
    let Some(dir) = models() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (cat, out) = (tmp.path().join("cat"), tmp.path().join("out"));
    common::gen_with_images(&cat, 1500, 11, 0.3);
    let (ok, stdout, err) = common::scan_with(
        &cat,
        &out,
        &["--ocr", "on", "--models", dir.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    assert!(
        stdout.contains("images with text (PP-OCRv5 mobile"),
        "{stdout}"
    );
    // every listing whose reasons cite an image's text had text drawn on its photo
    let flagged = common::sql_csv(
        &out,
        "SELECT DISTINCT listing_id FROM (SELECT listing_id, unnest(reasons) AS r FROM risk_scores) \
         WHERE r['detail'] LIKE 'ocr:%' ORDER BY listing_id",
    );
    let flagged: Vec<&str> = flagged.lines().skip(1).collect();
    let labels = common::sql_csv_reading(
        &out,
        &cat,
        &format!(
            "SELECT listing_id FROM '{}/ground_truth/' WHERE image_technique IN ('text_overlay', 'text_in_image_only') ORDER BY listing_id",
            cat.display()
        ),
    );
    let drawn: Vec<&str> = labels.lines().skip(1).collect();
    assert!(drawn.len() >= 3, "too few captions generated: {drawn:?}");
    assert!(
        flagged.len() * 10 >= drawn.len() * 6,
        "OCR reasons on {flagged:?} of the captioned listings {drawn:?}"
    );
    for l in &flagged {
        assert!(
            drawn.contains(l),
            "listing {l} has an ocr: reason but no caption"
        );
    }
    // the same through SQL
    let (ok, csv, err) = common::run(&[
        "sql", "--catalog", cat.to_str().unwrap(), "--models", dir.to_str().unwrap(), "--format", "csv", "-c",
        &format!(
            "SELECT count(*) AS n FROM images WHERE listing_id IN ({}) AND length(ocr(content)) > 0 \
             AND cardinality(ocr_lines(content)) > 0",
            drawn.join(",")
        ),
    ]);
    assert!(ok, "{err}");
    let n: usize = csv.lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(
        n * 10 >= drawn.len() * 8,
        "ocr() read {n} of {} captions",
        drawn.len()
    );
}

#[test]
fn orientation_classifier_turns_upside_down_lines() {
    let Some(dir) = models() else { return };
    let fonts = fonts(&dir);
    let text = "正品保障 Genuine 2024";
    let img = render(
        &fonts,
        "wqy-microhei.ttc",
        Rgb([255, 255, 255]),
        Rgb([0, 0, 0]),
        &[text],
    );
    let upside_down = image::imageops::rotate180(&img);
    let with_cls = Ocr::load(
        &dir,
        OcrOptions {
            use_cls: true,
            ..OcrOptions::default()
        },
    )
    .unwrap();
    let (e, n) = score(
        &[text.to_string()],
        &with_cls.read(&upside_down).unwrap().text(),
    );
    assert!(e <= 1, "with the classifier: {e} errors of {n}");
    // and upright lines stay upright
    let (e, _) = score(&[text.to_string()], &with_cls.read(&img).unwrap().text());
    assert_eq!(e, 0);
    // without it the upside-down line is not read as the text
    let (e, _) = score(
        &[text.to_string()],
        &engine(&dir).read(&upside_down).unwrap().text(),
    );
    assert!(e > n / 2, "without the classifier {e} errors");
}
