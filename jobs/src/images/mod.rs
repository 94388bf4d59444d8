//! Image signals on the jobs side: the indexes (`index`), the knowledge the
//! scan and SQL match against (`ImageRefs`), the `dajia kb` job (`kb_job`),
//! fetching images by `uri` (`fetch`) and the per-image work of the scan's
//! image stage (`signals`).

pub mod fetch;
pub mod index;
pub mod kb_job;
pub mod signals;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use datafusion::arrow::array::{Array, BinaryArray, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::execution::context::SessionContext;
use documented::DocumentedFields;
use futures::StreamExt;

use dajia_kernels::device::{self, Device, DeviceChoice};
use dajia_kernels::image::{
    self as kimage, DecodeLimits, Embedder, EmbedderKind, ImageError, MatchRules, References,
};
use dajia_kernels::risk::ImageMatchKind;

pub use dajia_kernels::image::{ImageIndex, IndexEntry, RefMatch};

/// How images are embedded and matched: `dajia.images.*` of the options
/// layer (`crate::options`), set by `[images]` in the TOML config, flags and
/// `SET`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct ImageOptions {
    /// `descriptor` (default, no weights) or `mobilenet` (ONNX model).
    #[serde(with = "kind_serde")]
    pub embedder: EmbedderKind,
    /// Folder of model files (`scripts/setup-models.sh` fills it; default
    /// `$DAJIA_MODELS`, else `./models`). On a cluster each executor uses
    /// its own `--models`.
    pub models_dir: PathBuf,
    /// Cosine similarity at or above which an image counts as a copy;
    /// the embedder's default when unset.
    pub threshold: Option<f32>,
    /// Images whose header declares more pixels are rejected unread.
    pub max_pixels: u64,
    /// Images larger than this many bytes are rejected unread.
    pub max_bytes: usize,
    /// Images decoded and embedded at once (bounds memory).
    pub batch_rows: usize,
    /// Decoded pixels one batch holds at once, in bytes (each image counts
    /// width × height × 4, from its header): a batch is decoded in parts
    /// that fit, an image over the budget alone. Memory bounded by bytes,
    /// not by image counts (1,024 images of 36 MP would be ~110 GB).
    pub decode_budget_bytes: u64,
    /// Longest one image may take to decode, in milliseconds: past it the
    /// image is rejected and its decoder abandoned. 0: no limit.
    pub decode_timeout_ms: u64,
    /// Where images are embedded and matched and OCR runs: `auto` (a working
    /// GPU, else the CPU, and says which), `cpu`, or `cuda` (a GPU or an
    /// error naming what is missing). On a cluster each executor uses its
    /// own `--device`.
    #[serde(with = "device_serde")]
    pub device: DeviceChoice,
    /// Local agreement (0-1) a match must also reach before it becomes a
    /// reason: the second, independent check of `kimage::verify` (a stock
    /// photograph shared with an official image is not a copy of it).
    pub verify_threshold: f32,
    /// URL prefixes besides the catalog's own store that image `uri`s may
    /// name, comma-separated (e.g. `https://img.example.com/,s3://photos/`).
    /// Empty: relative paths inside the catalog and its own bucket only.
    pub uri_allow: String,
    /// Images fetched by `uri` at once, per process.
    pub fetch_concurrency: usize,
}

mod device_serde {
    use dajia_kernels::device::DeviceChoice;
    use serde::Deserialize;
    pub fn serialize<S: serde::Serializer>(d: &DeviceChoice, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(d)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DeviceChoice, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Opens the device `choice` names, once per process (a CUDA context and the
/// compiled kernels are kept for every later job and query); `auto` prints
/// the GPU it picked, once.
pub fn open_device(choice: DeviceChoice) -> Result<Device> {
    static OPENED: Mutex<Vec<(DeviceChoice, Device)>> = Mutex::new(Vec::new());
    let mut opened = OPENED.lock().expect("device cache");
    if let Some((_, d)) = opened.iter().find(|(c, _)| *c == choice) {
        return Ok(d.clone());
    }
    let sel = device::select(choice)?;
    if let Some(note) = &sel.note {
        // `auto` says when it picked a GPU; why it did not (no driver, a
        // build without CUDA) is logged, so errors stay one line and CPU
        // users see nothing new. Summaries and manifests name the device.
        if sel.device.is_cuda() {
            eprintln!("dajia: {note}");
        }
        tracing::info!("{note}");
    }
    opened.push((choice, sel.device.clone()));
    Ok(sel.device)
}

mod kind_serde {
    use super::EmbedderKind;
    use serde::Deserialize;
    pub fn serialize<S: serde::Serializer>(k: &EmbedderKind, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(k)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<EmbedderKind, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Default models folder: `$DAJIA_MODELS`, else `./models`.
pub fn default_models_dir() -> PathBuf {
    std::env::var_os("DAJIA_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models"))
}

impl Default for ImageOptions {
    fn default() -> Self {
        let limits = DecodeLimits::default();
        ImageOptions {
            embedder: EmbedderKind::Descriptor,
            models_dir: default_models_dir(),
            threshold: None,
            max_pixels: limits.max_pixels,
            max_bytes: limits.max_bytes,
            batch_rows: 1024,
            decode_budget_bytes: 2 << 30,
            decode_timeout_ms: limits.timeout.map_or(0, |t| t.as_millis() as u64),
            device: DeviceChoice::Auto,
            verify_threshold: kimage::verify::DEFAULT_THRESHOLD,
            uri_allow: String::new(),
            fetch_concurrency: 64,
        }
    }
}

impl ImageOptions {
    /// These options with every resource limit at most `ceiling`'s: what an
    /// executor runs with, whatever a plan asked for (a client cannot make
    /// it decode `max_pixels = u64::MAX` images or hold more of them).
    pub fn clamped_to(mut self, ceiling: &ImageOptions) -> ImageOptions {
        let clamp = |name: &str, v: &mut u64, max: u64| {
            if *v > max {
                tracing::warn!(
                    "images.{name}={v} from the plan is over this node's {max}; using {max}"
                );
                *v = max;
            }
        };
        clamp("max_pixels", &mut self.max_pixels, ceiling.max_pixels);
        let mut n = self.max_bytes as u64;
        clamp("max_bytes", &mut n, ceiling.max_bytes as u64);
        self.max_bytes = n as usize;
        let mut n = self.batch_rows as u64;
        clamp("batch_rows", &mut n, ceiling.batch_rows as u64);
        self.batch_rows = n as usize;
        clamp(
            "decode_budget_bytes",
            &mut self.decode_budget_bytes,
            ceiling.decode_budget_bytes,
        );
        // No limit (0) is the most a plan can ask for.
        let mut t = match self.decode_timeout_ms {
            0 => u64::MAX,
            t => t,
        };
        let max = match ceiling.decode_timeout_ms {
            0 => u64::MAX,
            t => t,
        };
        clamp("decode_timeout_ms", &mut t, max);
        self.decode_timeout_ms = if t == u64::MAX { 0 } else { t };
        let mut n = self.fetch_concurrency as u64;
        clamp(
            "fetch_concurrency",
            &mut n,
            ceiling.fetch_concurrency as u64,
        );
        self.fetch_concurrency = n as usize;
        self
    }

    pub fn limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_pixels: self.max_pixels,
            max_bytes: self.max_bytes,
            timeout: (self.decode_timeout_ms > 0)
                .then(|| std::time::Duration::from_millis(self.decode_timeout_ms)),
        }
    }
    pub fn threshold(&self) -> f32 {
        self.threshold
            .unwrap_or_else(|| self.embedder.default_threshold())
    }
    /// Checks values, apart from any I/O.
    pub fn validate(&self) -> Result<()> {
        let t = self.threshold();
        anyhow::ensure!(
            (-1.0..=1.0).contains(&t),
            "image threshold {t} is not a cosine similarity in [-1, 1]"
        );
        anyhow::ensure!(self.batch_rows > 0, "image batch_rows must be at least 1");
        anyhow::ensure!(
            self.decode_budget_bytes > 0,
            "images.decode_budget_bytes must be at least 1"
        );
        anyhow::ensure!(
            self.fetch_concurrency > 0,
            "images.fetch_concurrency must be at least 1"
        );
        fetch::allow_prefixes(&self.uri_allow)?;
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.verify_threshold),
            "images.verify_threshold {} is not within [0, 1]",
            self.verify_threshold
        );
        anyhow::ensure!(self.max_pixels > 0, "max_pixels must be at least 1");
        Ok(())
    }
}

/// What images are matched against (brands' official photos and images of
/// confirmed fakes, `kimage::References`), on the device this process
/// opened, with the options that made it.
#[derive(Clone)]
pub struct ImageRefs {
    pub device: Device,
    pub refs: References,
    /// Where the indexes were read from (`load`) or saved to (`save`), and
    /// their content hash: how a cluster's executors get the same ones.
    pub source: Option<IndexSource>,
    /// The options it was made with (a cluster client ships them with the
    /// image functions; each executor puts its own device and models in);
    /// the decode guards and thresholds are read from them.
    pub options: ImageOptions,
}

impl ImageRefs {
    /// The decode guards (`ImageOptions::limits`).
    pub fn limits(&self) -> DecodeLimits {
        self.options.limits()
    }

    /// When a near embedding counts as a match, from the options.
    pub fn rules(&self) -> MatchRules {
        MatchRules {
            limits: self.limits(),
            threshold: self.options.threshold(),
            verify_threshold: self.options.verify_threshold,
        }
    }
}

/// Indexes on a path every node can read (`dajia kb`'s output), with the
/// hash of what the client read there.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IndexSource {
    pub dir: PathBuf,
    /// `index::digest` of the files.
    pub digest: String,
}

impl std::fmt::Debug for ImageRefs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.refs.fmt(f)
    }
}

/// The embedder of a node that plans queries but runs none (the
/// scheduler): it knows its kind (the functions' output width) and refuses
/// to embed.
struct PlanOnly(EmbedderKind);

impl Embedder for PlanOnly {
    fn kind(&self) -> EmbedderKind {
        self.0
    }
    fn embed_rgb(&self, _: &image::RgbImage) -> Result<Vec<f32>, ImageError> {
        Err(ImageError::Model {
            model: self.0.to_string(),
            detail: "image functions run on the executors, not on the scheduler".into(),
        })
    }
}

impl ImageRefs {
    /// For the scheduler: `opts`' functions without their model (nothing is
    /// loaded or opened; a call fails saying where it ran).
    pub fn plan_only(opts: &ImageOptions) -> Self {
        Self::with(opts, Device::Cpu, Arc::new(PlanOnly(opts.embedder)))
    }

    /// An empty knowledge base (embedding works, nothing to match).
    pub fn empty(opts: &ImageOptions) -> Result<Self> {
        opts.validate()?;
        let device = open_device(opts.device)?;
        let embedder = kimage::embed::load_on(opts.embedder, &opts.models_dir, &device)?;
        Ok(Self::with(opts, device, embedder))
    }

    /// Empty indexes for `embedder` on `device`, with `opts`' guards and
    /// thresholds.
    fn with(opts: &ImageOptions, device: Device, embedder: Arc<dyn Embedder>) -> Self {
        ImageRefs {
            refs: References::new(embedder, kimage::ops::for_device(&device)),
            device,
            source: None,
            options: opts.clone(),
        }
    }

    /// Loads the indexes `dajia kb` wrote under `dir` (a missing known-fake
    /// index is an empty one; a missing official index is an error), and
    /// records the folder (made absolute: other nodes resolve it too) and
    /// the files' hash as their `source`.
    pub fn load(dir: &Path, opts: &ImageOptions) -> Result<Self> {
        let mut kb = Self::empty(opts)?;
        let dir = &std::path::absolute(dir)?;
        let files = index::read_all(dir, opts.embedder)?;
        kb.refs.official = files.official.with_context(|| {
            format!(
                "no {} image index under {}: run `dajia kb --catalog ... --out {}{}` first",
                opts.embedder,
                dir.display(),
                dir.display(),
                if opts.embedder == EmbedderKind::Descriptor {
                    String::new()
                } else {
                    format!(" --embedder {}", opts.embedder)
                }
            )
        })?;
        if let Some(f) = files.fakes {
            kb.refs.fakes = f;
        }
        kb.source = Some(IndexSource {
            dir: dir.to_path_buf(),
            digest: files.digest,
        });
        Ok(kb)
    }

    /// Loads the indexes `source` names and checks they are the ones its
    /// digest describes (a cluster's executor, given the client's).
    pub fn load_source(source: &IndexSource, opts: &ImageOptions) -> Result<Self> {
        let kb = Self::load(&source.dir, opts)?;
        let found = kb.source.as_ref().map(|s| s.digest.as_str());
        anyhow::ensure!(
            found == Some(source.digest.as_str()),
            "the image indexes under {} are not the ones the client read (sha256 {}, here {}): they changed during the run, or this node sees another folder at that path",
            source.dir.display(),
            source.digest,
            found.unwrap_or("-")
        );
        Ok(kb)
    }

    /// Writes both indexes under `dir` (as `dajia kb` does) and records it
    /// as their source, so that other nodes can load them.
    pub fn save(&mut self, dir: &Path) -> Result<()> {
        let dir = &std::path::absolute(dir)?;
        index::write(&self.refs.official, dir).context("writing the official image index")?;
        index::write(&self.refs.fakes, dir).context("writing the known-fake image index")?;
        self.source = Some(IndexSource {
            dir: dir.to_path_buf(),
            digest: index::digest(dir, self.options.embedder)?,
        });
        Ok(())
    }

    /// Adds to the indexes from a catalog registered on `ctx`: official
    /// photos from `brand_images`, known fakes from counterfeit
    /// `test_purchases` (and takedowns, when a `risk_scores` table is
    /// registered). Bad reference images are returned with their reasons,
    /// not indexed.
    pub async fn add_from_catalog(
        &mut self,
        ctx: &SessionContext,
    ) -> Result<Vec<(ImageMatchKind, String, ImageError)>> {
        let mut bad = Vec::new();
        if ctx.table_exist("brand_images")? {
            let sql = "SELECT image_id, content, CAST(brand_id AS BIGINT) AS brand_id, CAST(NULL AS BIGINT) AS listing_id, 'brand_images' AS source FROM brand_images";
            bad.extend(self.add_query(ctx, sql, ImageMatchKind::Official).await?);
        }
        if let Some(src) = fake_sources(ctx).await? {
            let sql = format!(
                "SELECT i.image_id, i.content, CAST(NULL AS BIGINT) AS brand_id, CAST(i.listing_id AS BIGINT) AS listing_id, c.source \
                 FROM images i JOIN ({src}) c ON i.listing_id = c.listing_id"
            );
            bad.extend(self.add_query(ctx, &sql, ImageMatchKind::KnownFake).await?);
        }
        Ok(bad)
    }

    /// Streams the rows of `sql` (image_id, content, brand_id, listing_id,
    /// source) into the index of `kind`, one record batch at a time.
    async fn add_query(
        &mut self,
        ctx: &SessionContext,
        sql: &str,
        kind: ImageMatchKind,
    ) -> Result<Vec<(ImageMatchKind, String, ImageError)>> {
        let mut stream = ctx.sql(sql).await?.execute_stream().await?;
        let mut bad = Vec::new();
        while let Some(batch) = stream.next().await {
            let rows = image_rows(&batch?)?;
            bad.extend(self.add(kind, rows)?.into_iter().map(|(i, e)| (kind, i, e)));
        }
        Ok(bad)
    }

    /// Embeds and adds reference images (`References::add`); a failure of
    /// the machinery (a model, the GPU) stops it.
    pub fn add(
        &mut self,
        kind: ImageMatchKind,
        rows: Vec<(IndexEntry, Option<Vec<u8>>)>,
    ) -> Result<Vec<(String, ImageError)>> {
        let rules = self.rules();
        // The indexes no longer equal the files they were loaded from.
        self.source = None;
        Ok(self.refs.add(kind, &rows, &rules)?)
    }

    /// Decodes, embeds and matches a batch of listing images with the
    /// options' rules (`References::match_listing_images`).
    pub fn match_listing_images(
        &self,
        contents: &[&[u8]],
        listing_ids: &[Option<i64>],
    ) -> Vec<Result<Vec<RefMatch>, ImageError>> {
        self.refs
            .match_listing_images(contents, listing_ids, &self.rules())
    }
}

/// The query of listings confirmed counterfeit, when the catalog has a
/// source of them.
async fn fake_sources(ctx: &SessionContext) -> Result<Option<String>> {
    let mut parts = Vec::new();
    if !ctx.table_exist("images")? {
        return Ok(None);
    }
    if ctx.table_exist("test_purchases")? {
        parts.push("SELECT CAST(listing_id AS BIGINT) AS listing_id, 'test_purchase' AS source FROM test_purchases WHERE verdict = 'counterfeit'".to_string());
    }
    if ctx.table_exist("risk_scores")? {
        parts.push("SELECT CAST(listing_id AS BIGINT) AS listing_id, 'takedown' AS source FROM risk_scores WHERE action = 'takedown'".to_string());
    }
    if parts.is_empty() {
        return Ok(None);
    }
    // One row per listing: test purchases win over takedowns.
    Ok(Some(format!(
        "SELECT listing_id, CASE WHEN bool_or(source = 'test_purchase') THEN 'test_purchase' ELSE 'takedown' END AS source \
         FROM ({}) GROUP BY listing_id",
        parts.join(" UNION ALL ")
    )))
}

/// The rows of a batch of (image_id, content, brand_id, listing_id, source).
fn image_rows(
    batch: &datafusion::arrow::record_batch::RecordBatch,
) -> Result<Vec<(IndexEntry, Option<Vec<u8>>)>> {
    let s = |i: usize| -> Result<StringArray> {
        Ok(cast(batch.column(i), &DataType::Utf8)?
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("cast to Utf8")
            .clone())
    };
    let ids = s(0)?;
    let content = cast(batch.column(1), &DataType::Binary)?;
    let content = content
        .as_any()
        .downcast_ref::<BinaryArray>()
        .expect("Binary");
    let brand = batch
        .column(2)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("BIGINT");
    let listing = batch
        .column(3)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("BIGINT");
    let source = s(4)?;
    Ok((0..batch.num_rows())
        .filter(|&i| !ids.is_null(i))
        .map(|i| {
            (
                IndexEntry {
                    image_id: ids.value(i).to_string(),
                    brand_id: (!brand.is_null(i)).then(|| brand.value(i)),
                    listing_id: (!listing.is_null(i)).then(|| listing.value(i)),
                    source: source.value(i).to_string(),
                    print: None,
                },
                (!content.is_null(i)).then(|| content.value(i).to_vec()),
            )
        })
        .collect())
}
