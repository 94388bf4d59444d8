//! `dajia gen`: a synthetic catalog in the contract, deterministic for a
//! seed, with ground-truth labels in `ground_truth/` beside the tables.
//!
//! Mix (fractions of listings): 80% benign background (real titles from
//! `jobs/data/`), 5% genuine brand listings by authorised sellers, 5% hard
//! negatives, 10% counterfeits made with one technique of the evasion
//! catalogue (`evasion.rs`, documented in README "Generated catalogs").

pub mod buyer;
pub(crate) mod evasion;
pub mod photos;
mod sellers;
pub mod text_render;
pub(crate) mod vocab;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use chrono::NaiveDate;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use dajia_kernels::text::brands::{BrandMatcher, MentionKind};
use dajia_kernels::text::normalize_text;

pub use vocab::{GenBrand, CATEGORIES};
pub use write::write_batch as write_parquet;

#[derive(Debug, Clone)]
pub struct GenOptions {
    pub out: PathBuf,
    pub listings: usize,
    pub seed: u64,
    pub date: NaiveDate,
    /// Rows per listings Parquet file.
    pub rows_per_file: usize,
    /// Share of listings with an image (JPEG bytes in the `images` table).
    pub image_share: f64,
    /// Sellers to generate (default: one per 40 listings, at least 200):
    /// many more than the listings need, to measure `dajia link` alone.
    pub sellers: Option<usize>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct GenSummary {
    pub listings: usize,
    pub sellers: usize,
    pub brands: usize,
    pub counterfeit: usize,
    pub hard_negatives: usize,
    pub orders: usize,
    pub files: usize,
    pub images: usize,
    pub seconds: f64,
}

/// One generated listing with its label.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub listing_id: i64,
    pub seller_id: i64,
    pub title: String,
    pub description: Option<String>,
    pub category: String,
    pub brand: Option<String>,
    pub price_cents: i64,
    pub ship_from: String,
    pub updated_at_us: i64,
    // labels
    pub counterfeit: bool,
    pub technique: Option<&'static str>,
    pub evasion: Option<String>,
    pub hard_negative: Option<&'static str>,
    /// Negatives by kind: `real_title` (a real product title as written),
    /// `genuine_brand` (an authorised seller), `stock_photo` (a benign
    /// listing whose photo is a stock photograph an official image uses).
    pub benign_kind: Option<&'static str>,
    pub brand_id: Option<i64>,
    /// (image_id, JPEG bytes) of the listing's images.
    pub images: Vec<(String, Vec<u8>)>,
    pub image_technique: Option<&'static str>,
    /// Text a seller could draw over a photo (contact id, replica words):
    /// `(text, ASCII fallback for the bitmap font when no fonts are installed)`.
    pub overlay: Option<(String, String)>,
    /// The title without the evasion, for sellers who move it into the photo.
    pub clean_title: Option<String>,
}

pub const TECHNIQUES: &[&str] = &[
    "replica_vocabulary",
    "contact_diversion",
    "brand_obfuscation",
    "price_below_floor",
    "linked_seller",
];
pub const HARD_NEGATIVES: &[&str] = &[
    "accessory_for_brand",
    "wechat_pay",
    "scale_model",
    "genuine_discount",
    "artificial_flowers",
    "aaa_battery",
    "putian_specialty",
    "shared_address_seller",
];

const REGIONS: &[&str] = &[
    "浙江省杭州市",
    "广东省广州市",
    "广东省深圳市",
    "江苏省苏州市",
    "上海市",
    "北京市",
    "福建省泉州市",
    "山东省青岛市",
    "四川省成都市",
    "湖北省武汉市",
];
const PUTIAN: &str = "福建省莆田市";

/// Everything the row generator reads; built once.
struct Ctx {
    titles: Vec<(vocab::RealTitle, Option<usize>)>,
    brands: Vec<GenBrand>,
    /// Indexes of protected brands with products and a floor.
    counterfeitable: Vec<usize>,
    /// Apple and Samsung: brands accessories are made "for".
    device_brands: Vec<usize>,
    sellers: sellers::SellerPlan,
    snapshot_us: i64,
    image_share: f64,
    /// TrueType fonts for text drawn over photos (`<models>/fonts`); without
    /// them overlays are ASCII in an 8x8 bitmap font.
    fonts: Option<text_render::Fonts>,
    /// Real photographs official images are drawn on (`<models>/photos`);
    /// without them official images have procedural backgrounds.
    stock: Vec<image::RgbImage>,
}

impl Ctx {
    /// Official image `k` of a brand: the brand's product and mark, drawn
    /// on a stock photograph when there are some.
    fn official(&self, brand_id: i64, k: u64) -> image::RgbImage {
        match self.stock_of(brand_id, k) {
            Some(st) => photos::photo_on(official_seed(brand_id, k), Some(st), true),
            None => photos::photo(official_seed(brand_id, k)),
        }
    }

    fn stock_of(&self, brand_id: i64, k: u64) -> Option<&image::RgbImage> {
        (!self.stock.is_empty())
            .then(|| &self.stock[(official_seed(brand_id, k) % self.stock.len() as u64) as usize])
    }
}

/// Seed of official image `k` of a brand.
fn official_seed(brand_id: i64, k: u64) -> u64 {
    brand_id as u64 * 1000 + k
}

/// Counterfeit factories sell the same product photos to many resellers:
/// fakes that reuse a counterfeiter's photo draw it from this small pool.
const FACTORY_PHOTOS: u64 = 24;
fn factory_seed(k: u64) -> u64 {
    900_000 + k
}

pub fn generate(opts: &GenOptions) -> Result<GenSummary> {
    let start = std::time::Instant::now();
    anyhow::ensure!(opts.listings > 0, "--listings must be at least 1");
    anyhow::ensure!(opts.rows_per_file > 0, "rows per file must be at least 1");
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let plan = sellers::plan(opts.listings, opts.sellers, &mut rng);
    let brands = vocab::brands(&mut rng, &plan.flagship);
    let matcher = BrandMatcher::new(brands.iter().enumerate().map(|(i, b)| {
        let mut n = vec![b.name.as_str()];
        n.extend(b.aliases.iter().map(String::as_str));
        (i, n)
    }));
    // Real titles that name a brand with a floor are priced as genuine goods.
    let titles = vocab::real_titles()
        .into_iter()
        .map(|t| {
            let b = matcher
                .find(&normalize_text(&t.title))
                .into_iter()
                .find(|m| {
                    m.kind == MentionKind::Direct && brands[m.brand].min_price_cents.is_some()
                })
                .map(|m| m.brand);
            (t, b)
        })
        .collect();
    let counterfeitable = (0..brands.len())
        .filter(|&i| brands[i].protected && !brands[i].products.is_empty())
        .collect();
    let device_brands = (0..brands.len())
        .filter(|&i| matches!(brands[i].name.as_str(), "Apple" | "Samsung"))
        .collect();
    let snapshot_us = opts
        .date
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros();
    anyhow::ensure!(
        (0.0..=1.0).contains(&opts.image_share),
        "--image-share must be within [0, 1]"
    );
    let ctx = Arc::new(Ctx {
        titles,
        brands,
        counterfeitable,
        device_brands,
        sellers: plan,
        snapshot_us,
        image_share: opts.image_share,
        fonts: if opts.image_share > 0.0 {
            text_render::Fonts::find()
        } else {
            None
        },
        stock: if opts.image_share > 0.0 {
            photos::stock_photos()
        } else {
            Vec::new()
        },
    });
    if opts.image_share > 0.0 && ctx.fonts.is_none() {
        tracing::warn!(
            "no fonts in {}: text over photos is ASCII in a bitmap font (run scripts/setup-models.sh)",
            text_render::Fonts::default_dir().display()
        );
    }

    let root = &opts.out;
    std::fs::create_dir_all(root)?;
    let mut labels: Vec<Row> = Vec::new();
    let mut files = 0;
    let mut n_images = 0;
    let mut counterfeit = 0;
    let mut hard = 0;
    let n_files = opts.listings.div_ceil(opts.rows_per_file);
    write::clear_table(root, "listings")?;
    write::clear_table(root, "images")?;
    for f in 0..n_files {
        let lo = f * opts.rows_per_file;
        let hi = ((f + 1) * opts.rows_per_file).min(opts.listings);
        const CHUNK: usize = 4096;
        let rows: Vec<Row> = (lo..hi)
            .step_by(CHUNK)
            .collect::<Vec<_>>()
            .into_par_iter()
            .flat_map_iter(|c| {
                let mut rng = ChaCha8Rng::seed_from_u64(
                    opts.seed ^ (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                let ctx = ctx.clone();
                (c..(c + CHUNK).min(hi))
                    .map(move |i| make_row(&ctx, i as i64 + 1, &mut rng))
                    .collect::<Vec<_>>()
            })
            .collect();
        counterfeit += rows.iter().filter(|r| r.counterfeit).count();
        hard += rows.iter().filter(|r| r.hard_negative.is_some()).count();
        write::listings(
            &root.join("listings").join(format!("part-{f:05}.parquet")),
            &rows,
        )?;
        files += 1;
        if rows.iter().any(|r| !r.images.is_empty()) {
            n_images += write::images(
                &root.join("images").join(format!("part-{f:05}.parquet")),
                &rows,
            )?;
            files += 1;
        }
        labels.extend(rows.into_iter().map(|r| Row {
            title: String::new(),
            description: None,
            images: Vec::new(),
            ..r
        }));
    }
    write::sellers(root, &ctx.sellers, ctx.snapshot_us)?;
    write::brands(root, &ctx.brands)?;
    if opts.image_share > 0.0 {
        let official: Vec<(i64, String, Vec<u8>)> = ctx
            .counterfeitable
            .par_iter()
            .flat_map_iter(|&b| {
                let id = ctx.brands[b].id;
                let ctx = ctx.clone();
                (0..2).map(move |k| {
                    (
                        id,
                        format!("brand-{id}-{k}"),
                        photos::jpeg(&ctx.official(id, k), 92),
                    )
                })
            })
            .collect();
        write::brand_images(root, &official)?;
        files += 1;
    }
    write::labels(root, &labels)?;
    write::seller_truth(root, &ctx.sellers)?;
    write::test_purchases(root, &labels, opts.seed, ctx.snapshot_us)?;
    let orders = write::orders(root, &labels, &ctx.sellers, opts.seed, ctx.snapshot_us)?;
    Ok(GenSummary {
        listings: opts.listings,
        sellers: ctx.sellers.count(),
        brands: ctx.brands.len(),
        counterfeit,
        hard_negatives: hard,
        images: n_images,
        orders,
        files: files + 5,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Where labels live for a generated catalog.
pub fn labels_path(catalog: &Path) -> PathBuf {
    catalog.join("ground_truth")
}

fn make_row(ctx: &Ctx, id: i64, rng: &mut ChaCha8Rng) -> Row {
    let mut row = Row {
        listing_id: id,
        ship_from: REGIONS.choose(rng).unwrap().to_string(),
        updated_at_us: ctx.snapshot_us - rng.random_range(0..86_400_000_000i64 * 30),
        ..Default::default()
    };
    let r: f64 = rng.random();
    if r < 0.10 {
        counterfeit(ctx, &mut row, rng);
    } else if r < 0.15 {
        hard_negative(ctx, &mut row, rng);
        row.benign_kind = None;
    } else if r < 0.20 {
        genuine(ctx, &mut row, rng, 1.0, 2.5);
    } else {
        background(ctx, &mut row, rng);
    }
    if ctx.image_share > 0.0 && rng.random_bool(ctx.image_share) {
        attach_image(ctx, &mut row, rng);
    }
    row
}

/// One image for a listing: authorised sellers use the brand's official
/// photo; counterfeiters reuse it (or each other's photos) or draw their
/// contact id or replica words over a photo; everyone else has their own.
fn attach_image(ctx: &Ctx, row: &mut Row, rng: &mut ChaCha8Rng) {
    let brand = row
        .brand_id
        .and_then(|id| ctx.brands.iter().find(|b| b.id == id));
    let authorised = brand.is_some_and(|b| b.authorized.contains(&row.seller_id));
    let (img, technique) = match (row.counterfeit, brand) {
        (false, Some(b)) if authorised => (ctx.official(b.id, rng.random_range(0..2)), None),
        (true, Some(b)) => {
            let r: f64 = rng.random();
            if r < 0.4 {
                (
                    photos::reuse(&ctx.official(b.id, rng.random_range(0..2)), rng),
                    Some("official_image_reuse"),
                )
            } else if r < 0.6 {
                (
                    photos::reuse(
                        &photos::photo(factory_seed(rng.random_range(0..FACTORY_PHOTOS))),
                        rng,
                    ),
                    Some("fake_image_reuse"),
                )
            } else if let Some((text, ascii)) = row.overlay.clone() {
                let mut img = photos::photo(rng.random());
                match &ctx.fonts {
                    Some(f) => text_render::caption(&mut img, f.pick(&text, rng), &text, rng),
                    None => photos::overlay_text(&mut img, &ascii, 3),
                }
                // Half of them move the evasion out of the text entirely.
                match row.clean_title.clone() {
                    Some(clean) if rng.random_bool(0.5) => {
                        row.title = clean;
                        row.description = None;
                        (img, Some("text_in_image_only"))
                    }
                    _ => (img, Some("text_overlay")),
                }
            } else {
                (photos::photo(rng.random()), None)
            }
        }
        // A benign seller whose photo is the stock photograph an official
        // image was drawn on, without the brand's product and mark.
        (false, _)
            if row.benign_kind == Some("real_title")
                && !ctx.stock.is_empty()
                && rng.random_bool(0.1) =>
        {
            let b = &ctx.brands[*ctx.counterfeitable.choose(rng).unwrap()];
            row.benign_kind = Some("stock_photo");
            let st = ctx
                .stock_of(b.id, rng.random_range(0..2))
                .expect("stock photos");
            (photos::photo_on(rng.random(), Some(st), false), None)
        }
        _ => (photos::photo(rng.random()), None),
    };
    let quality = if technique.is_some() {
        rng.random_range(60..90)
    } else {
        88
    };
    row.images.push((
        format!("img-{}-0", row.listing_id),
        photos::jpeg(&img, quality),
    ));
    row.image_technique = technique;
}

fn background(ctx: &Ctx, row: &mut Row, rng: &mut ChaCha8Rng) {
    row.benign_kind = Some("real_title");
    let (t, brand) = ctx.titles.choose(rng).unwrap();
    row.title = t.title.clone();
    row.category = t.category.to_string();
    row.seller_id = *ctx.sellers.regular.choose(rng).unwrap();
    row.price_cents = match brand.and_then(|b| ctx.brands[b].min_price_cents) {
        Some(floor) => (floor as f64 * rng.random_range(1.0..1.6)) as i64,
        None => rng.random_range(990..50_000),
    };
    if rng.random_bool(0.3) {
        row.description = Some(format!(
            "{} {}",
            vocab::SUFFIXES.choose(rng).unwrap(),
            "欢迎选购"
        ));
    }
}

fn brand_alias<'a>(b: &'a GenBrand, rng: &mut ChaCha8Rng) -> &'a str {
    if b.aliases.is_empty() || rng.random_bool(0.4) {
        &b.name
    } else {
        b.aliases.choose(rng).unwrap()
    }
}

fn product_category(b: &GenBrand, product: &str) -> String {
    let c = vocab::category_of(product);
    if c == "其他" {
        b.categories.first().copied().unwrap_or("其他").to_string()
    } else {
        c.to_string()
    }
}

fn genuine(ctx: &Ctx, row: &mut Row, rng: &mut ChaCha8Rng, lo: f64, hi: f64) {
    let bi = *ctx.counterfeitable.choose(rng).unwrap();
    let b = &ctx.brands[bi];
    let product = *b.products.choose(rng).unwrap();
    // Genuine sellers write the brand as simplified-Chinese listings do
    // (a traditional alias amid simplified text is a disguise).
    let alias = (0..8)
        .map(|_| brand_alias(b, rng))
        .find(|a| !a.chars().any(dajia_kernels::text::evasion::is_traditional))
        .unwrap_or(&b.name);
    row.title = format!(
        "{} {} {} {}",
        alias,
        product,
        vocab::GENUINE_WORDS.choose(rng).unwrap(),
        vocab::SUFFIXES.choose(rng).unwrap()
    );
    row.category = product_category(b, product);
    row.brand = Some(b.name.clone());
    row.seller_id = *b.authorized.choose(rng).unwrap();
    row.price_cents = (b.min_price_cents.unwrap() as f64 * rng.random_range(lo..hi)) as i64;
    row.brand_id = Some(b.id);
    row.benign_kind = Some("genuine_brand");
}

fn counterfeit(ctx: &Ctx, row: &mut Row, rng: &mut ChaCha8Rng) {
    let technique = *TECHNIQUES.choose(rng).unwrap();
    row.counterfeit = true;
    row.technique = Some(technique);
    let bi = *ctx.counterfeitable.choose(rng).unwrap();
    let b = &ctx.brands[bi];
    let floor = b.min_price_cents.unwrap() as f64;
    let product = *b.products.choose(rng).unwrap();
    let alias = brand_alias(b, rng).to_string();
    let suffix = *vocab::SUFFIXES.choose(rng).unwrap();
    row.brand_id = Some(b.id);
    row.category = product_category(b, product);
    row.seller_id = *ctx.sellers.regular.choose(rng).unwrap();
    if rng.random_bool(0.3) {
        row.ship_from = PUTIAN.to_string();
    }
    match technique {
        "replica_vocabulary" => {
            let (word, how) = if rng.random_bool(0.1) {
                // Slang the seed vocabulary lacks (see `learn terms`).
                (
                    vocab::UNSEEN_REPLICA_WORDS.choose(rng).unwrap().to_string(),
                    "unseen_slang",
                )
            } else {
                evasion::disguise(vocab::REPLICA_WORDS.choose(rng).unwrap(), rng)
            };
            row.evasion = Some(format!("replica word {how}"));
            let plain = *vocab::REPLICA_WORDS.choose(rng).unwrap();
            row.overlay = Some((
                format!(
                    "{plain} 1:1 {}",
                    ["AAA", "原单", "顶级", "正品品质"][rng.random_range(0..4)]
                ),
                ["1:1 AAA", "REPLICA", "TOP 1:1", "AAA+"][rng.random_range(0..4)].to_string(),
            ));
            row.clean_title = Some(format!("{alias} {product} {suffix}"));
            if rng.random_bool(0.75) {
                row.title = format!("{word}{alias} {product} {suffix}");
            } else {
                row.title = format!("{alias} {product} {suffix}");
                row.description = Some(format!("{word} 做工精细 实物拍摄"));
            }
            row.price_cents = (floor * rng.random_range(0.05..1.0)) as i64;
        }
        "contact_diversion" => {
            let (kw, kw_how) = evasion::contact_keyword(rng);
            let kw = kw.as_str();
            let (id, how) = match rng.random_range(0..3) {
                0 => evasion::disguise_digits(&evasion::phone(rng), rng),
                1 => (evasion::wechat_id(rng), "account_name"),
                _ => evasion::disguise_digits(
                    &rng.random_range(10_000_000u64..3_000_000_000).to_string(),
                    rng,
                ),
            };
            let phrase = format!("{kw} {id}");
            row.evasion = Some(format!("contact {kw_how} {how}"));
            if id.is_ascii() {
                // "➕V"/"+v" drawn small read as "IV"/"V": captions use a keyword
                // that survives a photo.
                let shown = if !kw.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
                    && !matches!(kw, "VX:" | "QQ" | "vx" | "wx")
                {
                    "加V信"
                } else {
                    kw
                };
                row.overlay = Some((format!("{shown} {id}"), format!("VX {id}")));
                row.clean_title = Some(format!("{alias} {product} {suffix}"));
            }
            if rng.random_bool(0.6) {
                row.title = format!("{alias} {product} {phrase} 看实物");
            } else {
                row.title = format!("{alias} {product} {suffix}");
                row.description = Some(format!("更多款式 {phrase}"));
            }
            row.price_cents = (floor * rng.random_range(0.5..1.2)) as i64;
        }
        "brand_obfuscation" => {
            // A disguise that changes the name (a Latin name has no
            // homophone; separators always apply).
            let (disguised, how) = (0..16)
                .map(|_| evasion::disguise(&alias, rng))
                .find(|(d, _)| *d != alias)
                .unwrap_or_else(|| (evasion::separate(&alias, rng), "separators"));
            row.evasion = Some(format!("brand {how}"));
            // Half priced like the genuine article: the disguise and the
            // seller are then the only evidence.
            if rng.random_bool(0.5) {
                row.title = format!(
                    "{disguised} {product} {} {suffix}",
                    vocab::CHEAP_WORDS.choose(rng).unwrap()
                );
                row.price_cents = (floor * rng.random_range(0.03..0.4)) as i64;
            } else {
                row.title = format!("{disguised} {product} {suffix}");
                row.price_cents = (floor * rng.random_range(0.6..1.1)) as i64;
            }
        }
        "price_below_floor" => {
            row.evasion = Some("price".into());
            row.title = format!(
                "{alias} {product} {} {}",
                vocab::GENUINE_WORDS.choose(rng).unwrap(),
                vocab::CHEAP_WORDS.choose(rng).unwrap()
            );
            row.price_cents = (floor * rng.random_range(0.03..0.35)) as i64;
        }
        _ => {
            // linked_seller: a new account of a seller closed for counterfeiting.
            let (seller, how) = ctx.sellers.reopeners.choose(rng).unwrap();
            row.seller_id = *seller;
            row.evasion = Some(format!("seller {how}"));
            if rng.random_bool(0.5) {
                row.title = format!("{alias} {product} {suffix}");
                row.price_cents = (floor * rng.random_range(0.5..1.0)) as i64;
            } else {
                let (t, _) = ctx.titles.choose(rng).unwrap();
                row.title = t.title.clone();
                row.category = t.category.to_string();
                row.brand_id = None;
                row.price_cents = rng.random_range(990..50_000);
            }
        }
    }
}

fn hard_negative(ctx: &Ctx, row: &mut Row, rng: &mut ChaCha8Rng) {
    let kind = *HARD_NEGATIVES.choose(rng).unwrap();
    row.hard_negative = Some(kind);
    row.seller_id = *ctx.sellers.regular.choose(rng).unwrap();
    match kind {
        "accessory_for_brand" => {
            let b = &ctx.brands[*ctx.device_brands.choose(rng).unwrap()];
            let alias = brand_alias(b, rng);
            let model = rng.random_range(11..17);
            row.title = match rng.random_range(0..4) {
                0 => format!("适用于{alias}{model}手机壳 透明防摔"),
                1 => format!("Case for {alias} {model} Pro Max 硅胶"),
                2 => format!("{alias}专用充电线 快充 1米"),
                _ => format!("兼容{alias}耳机保护套 可爱"),
            };
            row.category = "手机配件".into();
            row.price_cents = rng.random_range(990..5_900);
        }
        "wechat_pay" => {
            background(ctx, row, rng);
            let pay = [
                "支持微信支付",
                "可微信付款",
                "微信扫码领券",
                "WeChat Pay accepted",
                "加微信群享优惠",
            ]
            .choose(rng)
            .unwrap();
            row.title = format!("{} {pay}", row.title);
        }
        "scale_model" => {
            let b = &ctx.brands[*ctx.counterfeitable.choose(rng).unwrap()];
            row.title = match rng.random_range(0..3) {
                0 => format!(
                    "1:18 合金车模 {} 收藏摆件",
                    ["法拉利", "保时捷", "兰博基尼"].choose(rng).unwrap()
                ),
                1 => "1:1 比例 仿真模型 手办 摆件".to_string(),
                _ => format!(
                    "{} 1:12 场景模型 娃娃屋",
                    ["复古", "迷你"].choose(rng).unwrap()
                ),
            };
            let _ = b;
            row.category = "玩具".into();
            row.price_cents = rng.random_range(2_900..60_000);
        }
        "genuine_discount" => {
            genuine(ctx, row, rng, 0.75, 1.0);
            row.title = format!("{} 清仓折扣", row.title);
            if rng.random_bool(0.5) {
                row.seller_id = *ctx.sellers.regular.choose(rng).unwrap();
            }
            row.hard_negative = Some(kind);
        }
        "artificial_flowers" => {
            row.title = [
                "高仿真绿植 假花 客厅摆件",
                "仿真花 高仿真玫瑰 婚庆",
                "高仿真 多肉 盆栽 装饰",
            ]
            .choose(rng)
            .unwrap()
            .to_string();
            row.category = "家居".into();
            row.price_cents = rng.random_range(990..9_900);
        }
        "aaa_battery" => {
            row.title = format!("南孚 AAA 7号电池 {}粒 碱性", rng.random_range(2..40));
            row.category = "数码".into();
            row.price_cents = rng.random_range(990..5_900);
        }
        "putian_specialty" => {
            row.title = [
                "福建莆田特产 桂圆干 500g",
                "莆田荔枝干 新货 特产",
                "莆田卤面 手工 小吃",
            ]
            .choose(rng)
            .unwrap()
            .to_string();
            row.category = "食品".into();
            row.ship_from = PUTIAN.into();
            row.price_cents = rng.random_range(1_990..9_900);
        }
        _ => {
            // A benign seller at the same address as a closed counterfeiter.
            let (t, _) = ctx.titles.choose(rng).unwrap();
            row.title = t.title.clone();
            row.category = t.category.into();
            row.seller_id = *ctx.sellers.address_sharers.choose(rng).unwrap();
            row.price_cents = rng.random_range(990..30_000);
        }
    }
}
