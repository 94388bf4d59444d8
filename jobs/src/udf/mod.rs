//! dajia's SQL functions, registered by [`register_all`] for the scan, the
//! REPL and the tests alike. Each is a `ScalarUDFImpl` that takes scalar and
//! array arguments and accepts every string encoding (Utf8, LargeUtf8,
//! Utf8View).

mod assess;
mod brand_mentions;
mod image_fns;
mod image_signals;
mod normalize;
mod ocr;
mod text_signals;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray, StringViewArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF};

use dajia_kernels::risk::KnowledgeBase;

pub use assess::{
    assess_return_type, image_hit_fields, image_hits_type, ocr_text_fields, ocr_texts_type,
    AssessListing,
};
pub use brand_mentions::BrandMentions;
pub use image_fns::{match_fields, CosineSimilarity, EmbedImage, ImageErrorFn, ImageTopMatches};
pub(crate) use image_signals::{append_image_hits, image_hits_builder};
pub use image_signals::{image_signal_fields, ImageSignals};
pub use normalize::NormalizeText;
pub use ocr::{ocr_line_fields, OcrFn, OcrLines, OcrState};
pub use text_signals::TextSignals;

/// Name, synopsis and example of each function, for `dajia sql` help.
pub const FUNCTION_HELP: &[(&str, &str, &str)] = &[
    ("normalize_text(text) -> Utf8", "NFKC, full-width→half-width, traditional→simplified, case folding, homoglyph skeletons, separators inside words removed, disguised digits read as digits.", "SELECT normalize_text('高.仿 ＧＵＣＣＩ 壹叁捌');  -- 高仿 gucci 138"),
    ("text_signals(text) -> List<Struct<code, detail, weight>>", "Replica vocabulary, contact diversion and protected brand mentions found in one text.", "SELECT text_signals('加V信 lux8888a 高仿包');"),
    ("brand_mentions(text) -> List<Int64>", "Brand ids of the knowledge base named directly in a text (not \"for iPhone\" accessories). Needs a catalog with brands.", "SELECT listing_id, brand_mentions(title) FROM listings LIMIT 5;"),
    ("assess_listing(title, description, brand, category, price_cents, seller_id, link_attrs, link_sellers [, image_hits [, ocr_texts [, link_closed_on]]]) -> Struct<score, action, reasons, brand_id>", "The scan's full per-listing assessment; link_attrs/link_sellers are the chain of links to a seller closed for counterfeiting, one entry per step: the attributes shared at that step ('phone_hash', 'device_hash+address_hash') and the seller reached, the last one closed (seller_clusters.path_attributes/path_sellers; NULL when none); image_hits the listing's images that matched the image indexes (List<Struct<kind, image_id, matched_image_id, brand_id, matched_listing_id, similarity>>, optional); ocr_texts the text read in them; link_closed_on the day the chain's closed seller was closed (a date, named in the reason). Needs brands.", "SELECT listing_id, assess_listing(title, description, brand, category, price_cents, seller_id, NULL, NULL)['score'] FROM listings LIMIT 5;"),
    ("embed_image(content) -> FixedSizeList<Float32>", "L2-normalised embedding of JPEG/PNG/WebP bytes with the session's embedder (descriptor: 155 floats; mobilenet: 1280). NULL when the image cannot be read (see image_error).", "SELECT image_id, embed_image(content) FROM images LIMIT 3;"),
    ("cosine_similarity(a, b) -> Float32", "Cosine similarity of two float vectors, e.g. two embeddings.", "SELECT cosine_similarity(embed_image(a.content), embed_image(b.content)) FROM images a, brand_images b LIMIT 5;"),
    ("image_top_matches(content [, k]) -> List<Struct<kind, image_id, brand_id, listing_id, similarity>>", "The k (default 3) nearest reference images: brands' official photos (kind 'official') and images of confirmed fakes ('known_fake'), best first.", "SELECT image_id, image_top_matches(content, 1)[1] FROM images LIMIT 5;"),
    ("ocr(content) -> Utf8", "The text inside an image (PP-OCRv5: detection, then recognition of each line), lines in reading order joined by '\\n'; '' when the image has no text; NULL for unreadable images (see image_error). Models from scripts/setup-models.sh, loaded at the first call.", "SELECT image_id, ocr(content) FROM images WHERE normalize_text(ocr(content)) LIKE '%高仿%';"),
    ("ocr_lines(content) -> List<Struct<text, confidence, box>>", "Each line OCR reads, with its mean character probability and its corners [x0,y0, x1,y1, x2,y2, x3,y3] (top-left, top-right, bottom-right, bottom-left, pixels).", "SELECT image_id, l['text'], l['confidence'] FROM (SELECT image_id, unnest(ocr_lines(content)) AS l FROM images) LIMIT 10;"),
    ("image_signals(image_id, listing_id, content, uri) -> Struct<reject, hits, ocr, ocr_lines, ocr_gated_out, ocr_seconds>", "The scan's image stage for one image row: its bytes (content, else fetched by uri inside the catalog), decoded, embedded and matched against the reference images (hits: as assess_listing takes them, for images of a listing), and the text OCR reads in it when dajia.ocr.mode is on; reject says why the image or its text could not be read.", "SELECT image_id, s['reject'], cardinality(s['hits']) FROM (SELECT image_id, image_signals(image_id, listing_id, content, uri) AS s FROM images) LIMIT 5;"),
    ("image_error(content) -> Utf8", "Why an image cannot be read (empty, not an image, unsupported format, over the pixel limit, corrupt or truncated); NULL when it can.", "SELECT image_id, image_error(content) FROM images WHERE image_error(content) IS NOT NULL;"),
];

/// The knowledge base of sessions given none: built once per process (its
/// matchers take ~10 ms to build, and a scan opens several sessions).
static EMPTY_KB: std::sync::LazyLock<Arc<KnowledgeBase>> =
    std::sync::LazyLock::new(|| Arc::new(KnowledgeBase::new(Vec::new())));

/// Register every dajia function on `ctx`. Functions needing the knowledge
/// base are registered only when `kb` is given. The OCR functions run where
/// `ctx`'s options say (`images.device`, `images.models_dir`: the process's
/// own); their other settings come with each call.
pub fn register_all(ctx: &SessionContext, kb: Option<Arc<KnowledgeBase>>) {
    ctx.register_udf(ScalarUDF::from(NormalizeText::new()));
    let kb = kb.unwrap_or_else(|| EMPTY_KB.clone());
    ctx.register_udf(ScalarUDF::from(TextSignals::new(kb.clone())));
    ctx.register_udf(ScalarUDF::from(BrandMentions::new(kb.clone())));
    ctx.register_udf(ScalarUDF::from(AssessListing::new(kb)));
    ctx.register_udf(ScalarUDF::from(CosineSimilarity::default()));
    let node = crate::session::options(ctx);
    register_ocr(
        ctx,
        crate::ocr::OcrEngines::new(node.images.models_dir.clone(), node.images.device),
    );
    // A CPU placeholder: jobs that embed images register their own ImageRefs
    // (with the user's embedder and --device) over it, and a session that
    // never embeds must not open a GPU.
    let images = crate::images::ImageRefs::empty(&crate::images::ImageOptions {
        device: dajia_kernels::device::DeviceChoice::Cpu,
        ..Default::default()
    })
    .expect("the descriptor embedder on the CPU needs no files");
    register_images(ctx, Arc::new(images), None);
}

/// Register `ocr` and `ocr_lines` over `engines` (models loaded at the
/// first call with given settings).
pub fn register_ocr(ctx: &SessionContext, engines: crate::ocr::OcrEngines) {
    let state = Arc::new(ocr::OcrState { engines });
    ctx.register_udf(ScalarUDF::from(ocr::OcrFn::new(state.clone())));
    ctx.register_udf(ScalarUDF::from(ocr::OcrLines::new(state)));
}

/// Register the image functions over `images` (embedder, limits and
/// reference indexes), replacing earlier ones. `image_signals` resolves
/// relative `uri`s inside `uri_root` (the catalog's folder or `s3://`
/// prefix) and reads text with the session's OCR engines.
pub fn register_images(
    ctx: &SessionContext,
    images: Arc<crate::images::ImageRefs>,
    uri_root: Option<String>,
) {
    ctx.register_udf(ScalarUDF::from(EmbedImage::new(images.clone())));
    ctx.register_udf(ScalarUDF::from(ImageErrorFn::new(images.clone())));
    ctx.register_udf(ScalarUDF::from(ImageTopMatches::new(images.clone())));
    register_image_signals(ctx, images, uri_root, None);
}

/// Register `image_signals` over `images`; `ocr_mode` fixes whether it
/// reads text (else the session's `dajia.ocr.mode` decides at each call).
pub fn register_image_signals(
    ctx: &SessionContext,
    images: Arc<crate::images::ImageRefs>,
    uri_root: Option<String>,
    ocr_mode: Option<crate::ocr::OcrMode>,
) {
    ctx.register_udf(ScalarUDF::from(
        ImageSignals::new(images, ocr_state(ctx), uri_root).with_ocr_mode(ocr_mode),
    ));
}

/// The OCR state `ocr` was registered with on `ctx` (so that `ocr` and
/// `image_signals` load the models once), else a new one for the session's
/// device and models.
fn ocr_state(ctx: &SessionContext) -> Arc<OcrState> {
    datafusion::execution::FunctionRegistry::udf(ctx, "ocr")
        .ok()
        .and_then(|f| f.inner().downcast_ref::<OcrFn>().map(|o| o.state.clone()))
        .unwrap_or_else(|| {
            let node = crate::session::options(ctx);
            Arc::new(OcrState {
                engines: crate::ocr::OcrEngines::new(
                    node.images.models_dir.clone(),
                    node.images.device,
                ),
            })
        })
}

/// The argument as a plain `StringArray` of `rows` rows (scalars expanded,
/// other string encodings cast).
pub(crate) fn string_arg(v: &ColumnarValue, rows: usize) -> Result<StringArray> {
    let arr: ArrayRef = v.to_array(rows)?;
    let arr = if arr.data_type() == &DataType::Utf8 {
        arr
    } else {
        cast(&arr, &DataType::Utf8)?
    };
    Ok(arr
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8")
        .clone())
}

/// A string column read where it lies, `Utf8View` (how Delta tables and
/// Parquet files with view types read) or `Utf8`; anything else is cast to
/// `Utf8`. Casting views to `Utf8` would copy every string.
pub(crate) enum Strings {
    Utf8(StringArray),
    View(StringViewArray),
}

impl Strings {
    /// `arr` as it is when `Utf8View` or `Utf8`; other string encodings
    /// (LargeUtf8, dictionaries of strings) cast to `Utf8`; an error for
    /// anything else.
    pub(crate) fn of(arr: &ArrayRef) -> Result<Strings> {
        Ok(match arr.data_type() {
            DataType::Utf8View => Strings::View(arr.as_string_view().clone()),
            DataType::Utf8 => Strings::Utf8(arr.as_string::<i32>().clone()),
            DataType::LargeUtf8 | DataType::Null => {
                Strings::Utf8(cast(arr, &DataType::Utf8)?.as_string::<i32>().clone())
            }
            DataType::Dictionary(_, v)
                if matches!(
                    **v,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) =>
            {
                Strings::Utf8(cast(arr, &DataType::Utf8)?.as_string::<i32>().clone())
            }
            other => return datafusion::common::exec_err!("expected strings, got {other}"),
        })
    }

    /// Row `i`, `None` when null.
    pub(crate) fn get(&self, i: usize) -> Option<&str> {
        match self {
            Strings::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            Strings::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

/// The argument as [`Strings`] of `rows` rows (scalars expanded).
pub(crate) fn strings_arg(v: &ColumnarValue, rows: usize) -> Result<Strings> {
    Strings::of(&v.to_array(rows)?)
}

/// Coercion for an argument read by [`strings_arg`]: `Utf8View` stays,
/// any other string (or null) becomes Utf8.
pub(crate) fn coerce_string_or_view(t: &DataType, fname: &str, pos: usize) -> Result<DataType> {
    match t {
        DataType::Utf8View => Ok(DataType::Utf8View),
        t => coerce_string(t, fname, pos),
    }
}

/// Canonical string type for coercion: any string (or null) becomes Utf8.
pub(crate) fn coerce_string(t: &DataType, fname: &str, pos: usize) -> Result<DataType> {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
            Ok(DataType::Utf8)
        }
        other => {
            datafusion::common::plan_err!("{fname}: argument {pos} must be a string, got {other}")
        }
    }
}

/// `coerce_types` of a function taking one string argument.
pub(crate) fn one_string_arg(t: &[DataType], fname: &str) -> Result<Vec<DataType>> {
    if t.len() != 1 {
        return datafusion::common::plan_err!("{fname} takes 1 argument, got {}", t.len());
    }
    Ok(vec![coerce_string(&t[0], fname, 1)?])
}

/// A one-row result back as a scalar when the input was a scalar.
pub(crate) fn scalar_or_array(arr: ArrayRef, input_was_scalar: bool) -> Result<ColumnarValue> {
    if input_was_scalar {
        Ok(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::try_from_array(&arr, 0)?,
        ))
    } else {
        Ok(ColumnarValue::Array(arr))
    }
}

/// Identity of a function that carries a knowledge base: two instances are
/// equal when they share the same knowledge base.
macro_rules! kb_identity {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.kb, &other.kb)
            }
        }
        impl Eq for $t {}
        impl std::hash::Hash for $t {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                (Arc::as_ptr(&self.kb) as usize).hash(state)
            }
        }
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("brands", &self.kb.brands.len())
                    .finish()
            }
        }
    };
}
pub(crate) use kb_identity;

/// Identity of a function carrying shared state in `Arc` field `$field`
/// (whose `Debug` is short): equal when they share it.
macro_rules! arc_identity {
    ($t:ty, $field:ident) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.$field, &other.$field)
            }
        }
        impl Eq for $t {}
        impl std::hash::Hash for $t {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                (Arc::as_ptr(&self.$field) as usize).hash(state)
            }
        }
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    .field(stringify!($field), &self.$field)
                    .finish()
            }
        }
    };
}
pub(crate) use arc_identity;
