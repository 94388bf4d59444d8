//! `image_signals(image_id, listing_id, content, uri)`: the scan's image
//! stage for each image row, as a function, so that a cluster runs it on its
//! executors. The bytes are the row's `content`, else fetched by `uri`
//! (within the catalog, bounded concurrency, byte limit while reading); then
//! decode, embed, match against the session's reference indexes, and OCR
//! when `dajia.ocr.mode` is on (or `auto` and this node has the models).
//! The work per batch is `images::signals::read`, the same the in-process
//! stage does.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::*;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use dajia_kernels::ocr::Ocr;
use dajia_kernels::risk::ImageHit;

use super::image_fns::{binary_arg, coerce_binary, is_scalar, rows_of};
use super::ocr::OcrState;
use super::{image_hit_fields, scalar_or_array, string_arg};
use crate::images::fetch::Fetcher;
use crate::images::signals::{self, BatchTimes, Fetched, ImageOutcome};
use crate::images::ImageRefs;
use crate::ocr::OcrMode;
use crate::options::DajiaOptions;

/// The fields of `image_signals`' result.
pub fn image_signal_fields() -> Fields {
    Fields::from(vec![
        Field::new("reject", DataType::Utf8, true),
        Field::new("hits", super::image_hits_type(), false),
        Field::new("ocr", DataType::Utf8, true),
        Field::new("ocr_lines", DataType::Int64, false),
        Field::new("ocr_gated_out", DataType::Boolean, false),
        Field::new("ocr_seconds", DataType::Float64, false),
    ])
}

/// Appends one list of hits (`image_hit_fields`) to `b`.
pub(crate) fn append_image_hits(b: &mut ListBuilder<StructBuilder>, hits: &[ImageHit]) {
    for h in hits {
        let s = b.values();
        s.field_builder::<StringBuilder>(0)
            .expect("kind")
            .append_value(h.kind.as_str());
        s.field_builder::<StringBuilder>(1)
            .expect("image_id")
            .append_value(&h.image_id);
        s.field_builder::<StringBuilder>(2)
            .expect("matched_image_id")
            .append_value(&h.matched_image_id);
        s.field_builder::<Int64Builder>(3)
            .expect("brand_id")
            .append_option(h.brand_id);
        s.field_builder::<Int64Builder>(4)
            .expect("matched_listing_id")
            .append_option(h.matched_listing_id);
        s.field_builder::<Float32Builder>(5)
            .expect("similarity")
            .append_value(h.similarity);
        s.append(true);
    }
    b.append(true);
}

/// A builder of `image_hits_type()` lists.
pub(crate) fn image_hits_builder(capacity: usize) -> ListBuilder<StructBuilder> {
    let item = Arc::new(Field::new_list_field(
        DataType::Struct(image_hit_fields()),
        true,
    ));
    ListBuilder::new(StructBuilder::from_fields(image_hit_fields(), capacity)).with_field(item)
}

/// Fetches run on a runtime of their own: a function is called
/// synchronously on one of the query runtime's threads, and waiting there
/// with the query runtime's own `block_on` panics; the calling thread waits
/// for the fetches instead (image work is CPU-bound and holds it anyway).
/// Object-store clients stay on the runtime that made them.
fn fetch_runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    match RT.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("dajia-fetch")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    }) {
        Ok(rt) => Ok(rt),
        Err(e) => exec_err!("image_signals: starting the fetch runtime: {e}"),
    }
}

/// `image_signals(image_id, listing_id, content, uri) -> Struct<reject,
/// hits, ocr, ocr_lines, ocr_gated_out, ocr_seconds>`.
pub struct ImageSignals {
    pub(crate) images: Arc<ImageRefs>,
    pub(crate) ocr: Arc<OcrState>,
    /// Where relative `uri`s resolve: the catalog's folder or `s3://`
    /// prefix (none: only inline content is read).
    pub(crate) uri_root: Option<String>,
    /// Whether text is read, when fixed by the caller (the scan decides
    /// once for the whole cluster); else the session's `dajia.ocr.mode`.
    pub(crate) ocr_mode: Option<OcrMode>,
    fetcher: OnceLock<std::result::Result<Arc<Fetcher>, String>>,
    signature: Signature,
}

impl PartialEq for ImageSignals {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.images, &other.images)
            && Arc::ptr_eq(&self.ocr, &other.ocr)
            && self.uri_root == other.uri_root
            && self.ocr_mode == other.ocr_mode
    }
}
impl Eq for ImageSignals {}
impl std::hash::Hash for ImageSignals {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.images) as usize).hash(state);
        self.uri_root.hash(state);
    }
}
impl std::fmt::Debug for ImageSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageSignals")
            .field("images", &self.images)
            .field("uri_root", &self.uri_root)
            .field("ocr_mode", &self.ocr_mode)
            .finish()
    }
}

impl ImageSignals {
    pub fn new(images: Arc<ImageRefs>, ocr: Arc<OcrState>, uri_root: Option<String>) -> Self {
        Self {
            images,
            ocr,
            uri_root,
            ocr_mode: None,
            fetcher: OnceLock::new(),
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    /// Reads text exactly when `mode` says, whatever the session's mode.
    pub fn with_ocr_mode(mut self, mode: Option<OcrMode>) -> Self {
        self.ocr_mode = mode;
        self
    }

    /// One fetcher (and object-store client per store) per function; none
    /// without a catalog to resolve `uri`s in.
    fn fetcher(&self) -> Result<Option<Arc<Fetcher>>> {
        let Some(root) = &self.uri_root else {
            return Ok(None);
        };
        let built = self.fetcher.get_or_init(|| {
            let o = &self.images.options;
            Fetcher::new(root, &o.uri_allow, o.max_bytes, o.fetch_concurrency)
                .map(Arc::new)
                .map_err(|e| format!("{e:#}"))
        });
        match built {
            Ok(f) => Ok(Some(f.clone())),
            Err(e) => exec_err!("image_signals: {e}"),
        }
    }

    /// Row i's bytes when not inline, or why there are none.
    fn fetch(&self, content: &BinaryArray, uri: &StringArray) -> Result<Fetched> {
        let (mut fetched, wanted) = Fetched::plan(content, uri);
        if wanted.is_empty() {
            return Ok(fetched);
        }
        let results = match self.fetcher()? {
            Some(fetcher) => {
                let task = fetch_runtime()?.spawn(async move { fetcher.fetch_all(wanted).await });
                match futures::executor::block_on(task) {
                    Ok(results) => results,
                    Err(e) => return exec_err!("image_signals: fetching images: {e}"),
                }
            }
            None => wanted
                .into_iter()
                .map(|(i, _)| {
                    (
                        i,
                        Err(anyhow::anyhow!(
                            "refused: this session has no catalog to resolve it in (start `dajia sql --catalog ...`)"
                        )),
                    )
                })
                .collect(),
        };
        fetched.settle(results, uri);
        Ok(fetched)
    }

    /// The OCR engine the call's session asks for, if any.
    fn ocr_engine(&self, args: &ScalarFunctionArgs) -> Result<Option<Arc<Ocr>>> {
        let mut config = DajiaOptions::of(&args.config_options).ocr.0;
        if let Some(mode) = self.ocr_mode {
            config.mode = mode;
        }
        self.ocr
            .engines
            .for_mode(&config)
            .or_else(|e| exec_err!("image_signals: OCR: {e:#}"))
    }

    fn to_array(outcomes: Vec<ImageOutcome>) -> Result<ArrayRef> {
        let n = outcomes.len();
        let mut reject = StringBuilder::new();
        let mut hits = image_hits_builder(n);
        let mut text = StringBuilder::new();
        let mut lines = Int64Builder::with_capacity(n);
        let mut gated = BooleanBuilder::with_capacity(n);
        let mut seconds = Float64Builder::with_capacity(n);
        for o in outcomes {
            reject.append_option(o.reject);
            append_image_hits(&mut hits, &o.hits);
            let read = o.ocr.as_ref();
            text.append_option(read.map(|r| r.text.as_str()).filter(|t| !t.is_empty()));
            lines.append_value(read.map_or(0, |r| r.lines as i64));
            gated.append_value(read.is_some_and(|r| r.gated_out));
            seconds.append_value(read.map_or(0.0, |r| r.thread_seconds));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(reject.finish()),
            Arc::new(hits.finish()),
            Arc::new(text.finish()),
            Arc::new(lines.finish()),
            Arc::new(gated.finish()),
            Arc::new(seconds.finish()),
        ];
        Ok(Arc::new(StructArray::try_new(
            image_signal_fields(),
            columns,
            None,
        )?))
    }
}

impl ScalarUDFImpl for ImageSignals {
    fn name(&self) -> &str {
        "image_signals"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        const F: &str = "image_signals";
        if t.len() != 4 {
            return plan_err!(
                "{F} takes 4 arguments (image_id, listing_id, content, uri), got {}",
                t.len()
            );
        }
        let id = match &t[0] {
            t if t.is_integer() || t.is_null() => DataType::Utf8,
            t => super::coerce_string(t, F, 1)?,
        };
        let listing = match &t[1] {
            t if t.is_integer() || t.is_null() => DataType::Int64,
            other => {
                return plan_err!("{F}: argument 2 must be a listing id (integer), got {other}")
            }
        };
        Ok(vec![
            id,
            listing,
            coerce_binary(&t[2], F, 3)?,
            super::coerce_string(&t[3], F, 4)?,
        ])
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(image_signal_fields()))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = rows_of(&args);
        let ids = string_arg(&args.args[0], rows)?;
        let listing = cast(&args.args[1].to_array(rows)?, &DataType::Int64)?;
        let listing = listing
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("cast to Int64");
        let content = binary_arg(&args.args[2], rows)?;
        let uri = string_arg(&args.args[3], rows)?;
        let lids: Vec<Option<i64>> = (0..rows)
            .map(|i| (!listing.is_null(i)).then(|| listing.value(i)))
            .collect();

        let ocr = self.ocr_engine(&args)?;
        // At most `images.batch_rows` images decoded at once, whatever the
        // batches the query hands over.
        let chunk = self.images.options.batch_rows.max(1);
        let mut outcomes = Vec::with_capacity(rows);
        let mut times = BatchTimes::default();
        for start in (0..rows).step_by(chunk) {
            let n = chunk.min(rows - start);
            let content = content.slice(start, n);
            let uri = uri.slice(start, n);
            let ids = ids.slice(start, n);
            let fetched = self.fetch(&content, &uri)?;
            outcomes.extend(
                signals::read(
                    &self.images,
                    ocr.as_deref(),
                    &ids,
                    &lids[start..start + n],
                    &content,
                    &fetched,
                    &mut times,
                )
                .or_else(|e| exec_err!("image_signals: {e:#}"))?,
            );
        }
        let all_scalar = args.args.iter().all(is_scalar);
        scalar_or_array(Self::to_array(outcomes)?, all_scalar)
    }
}
