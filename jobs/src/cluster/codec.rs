//! Codecs that carry dajia's functions through Ballista's distributed plans.
//!
//! DataFusion serialises a scalar function as its name plus whatever bytes
//! the codec adds; with nothing added the receiving node looks the name up
//! in its own registry. That is enough for stateless functions
//! (`normalize_text`, `cosine_similarity`), but `assess_listing`,
//! `text_signals` and `brand_mentions` carry the brand knowledge base of the
//! run's catalog, and the image functions carry the embedder and limits of the
//! session: an executor's registry holds neither. These codecs add that state
//! to the plan (a small JSON document), and rebuild the function on the
//! scheduler and executors, caching the rebuilt state by its hash so that the
//! matchers are built once per run and node, not once per task.
//!
//! They wrap Ballista's own codecs (which handle its shuffle plans, file
//! formats and table providers) and must be installed on all three sides:
//! client ([`super::client_state`]), scheduler and executors ([`super::node`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{plan_err, DataFusionError, Result, TableReference};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use dajia_kernels::device::DeviceChoice;
use dajia_kernels::risk::{Brand, KnowledgeBase};

use super::write_parts;
use crate::images::{ImageOptions, ImageRefs, IndexSource};
use crate::udf;

/// What a node contributes when it rebuilds image functions: its own model
/// folder and device (an executor may have a GPU the client lacks).
#[derive(Debug, Clone)]
pub struct NodeImageDefaults {
    pub models_dir: PathBuf,
    pub device: DeviceChoice,
    /// The node plans queries but runs no function (the scheduler): image
    /// functions are rebuilt without loading a model (their output types
    /// need only the embedder's kind), so the scheduler needs no models.
    pub plans_only: bool,
    /// The most a plan may ask of this node (image size, bytes, batch,
    /// fetches at once): plan values above are lowered to these.
    pub ceilings: ImageOptions,
}

impl Default for NodeImageDefaults {
    fn default() -> Self {
        NodeImageDefaults {
            models_dir: crate::images::default_models_dir(),
            device: DeviceChoice::Cpu,
            plans_only: false,
            ceilings: ImageOptions::default(),
        }
    }
}

/// The state a function carries, as it travels.
#[derive(Serialize, Deserialize)]
#[serde(tag = "carries", rename_all = "snake_case")]
enum Payload {
    /// The brands only: weights and thresholds are session options, which
    /// Ballista ships with the job.
    KnowledgeBase { brands: Vec<Brand> },
    /// Every image option (a new one travels without a change here); the
    /// receiving node replaces the device and models folder with its own.
    /// `image_top_matches` also names its reference indexes: a path every
    /// node reads, and their hash (each node loads them once per run).
    ImageOptions {
        options: ImageOptions,
        references: Option<IndexSource>,
        /// `image_signals`: where relative `uri`s resolve (the catalog).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uri_root: Option<String>,
        /// `image_signals`: whether it reads text, when the client fixed it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ocr_mode: Option<String>,
    },
    /// A function that cannot run on the cluster, and why: the receiving
    /// node fails the query with the reason.
    Refused { reason: String },
}

/// Encoding and decoding of dajia's functions, shared by both codecs.
#[derive(Default)]
struct Functions {
    node: NodeImageDefaults,
    /// Rebuilt state by payload hash: a plan is decoded once per task.
    kbs: Mutex<HashMap<[u8; 32], Arc<KnowledgeBase>>>,
    images: Mutex<HashMap<[u8; 32], Arc<ImageRefs>>>,
    /// The node's OCR engines for `image_signals` (models loaded at the
    /// first call that reads text).
    ocr: std::sync::OnceLock<Arc<udf::OcrState>>,
}

impl std::fmt::Debug for Functions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Functions")
            .field("node", &self.node)
            .finish()
    }
}

/// Keep this many rebuilt states per kind (a long-lived executor serves
/// many runs; each run has one knowledge base).
const CACHE_ENTRIES: usize = 8;

fn cached<T>(
    cache: &Mutex<HashMap<[u8; 32], Arc<T>>>,
    key: [u8; 32],
    build: impl FnOnce() -> Result<T>,
) -> Result<Arc<T>> {
    if let Some(v) = cache.lock().expect("codec cache").get(&key) {
        return Ok(v.clone());
    }
    let v = Arc::new(build()?);
    let mut c = cache.lock().expect("codec cache");
    if c.len() >= CACHE_ENTRIES {
        c.clear();
    }
    c.insert(key, v.clone());
    Ok(v)
}

impl Functions {
    fn encode(&self, f: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        let inner = f.inner();
        let kb = inner
            .downcast_ref::<udf::AssessListing>()
            .map(|u| &u.kb)
            .or_else(|| inner.downcast_ref::<udf::TextSignals>().map(|u| &u.kb))
            .or_else(|| inner.downcast_ref::<udf::BrandMentions>().map(|u| &u.kb));
        let payload = if let Some(kb) = kb {
            Payload::KnowledgeBase {
                brands: kb.brands.clone(),
            }
        } else if let Some(images) = image_state(f) {
            // Only matching reads the indexes; the other functions embed. A
            // scheduler's plan-only copy has no entries but keeps the source
            // it was given, and passes it on to the executors.
            let matches = matches!(f.name(), "image_top_matches" | "image_signals");
            let filled = !(images.refs.official.is_empty() && images.refs.fakes.is_empty());
            let references = match &images.source {
                Some(s) if matches => Some(s.clone()),
                None if matches && filled => {
                    // DataFusion's plan serialisation ignores an encoder's
                    // error and sends the function by name (each executor
                    // would then match against its own empty indexes): the
                    // refusal travels instead, and decoding fails with it.
                    let refused = Payload::Refused {
                        reason: format!(
                            "{} over reference images ({} official, {} known fakes) built in the client's memory cannot reach the executors: write them with `dajia kb --catalog ... --out DIR` and pass `--image-kb DIR` (a path every executor can read)",
                            f.name(),
                            images.refs.official.len(),
                            images.refs.fakes.len()
                        ),
                    };
                    return serde_json::to_writer(buf, &refused)
                        .map_err(|e| DataFusionError::External(e.into()));
                }
                _ => None,
            };
            let signals = f.inner().downcast_ref::<udf::ImageSignals>();
            Payload::ImageOptions {
                options: images.options.clone(),
                references,
                uri_root: signals.and_then(|u| u.uri_root.clone()),
                ocr_mode: signals
                    .and_then(|u| u.ocr_mode)
                    .map(|m| m.as_str().to_string()),
            }
        } else {
            // Stateless, or DataFusion's own: travels by name.
            return Ok(());
        };
        serde_json::to_writer(buf, &payload).map_err(|e| DataFusionError::External(e.into()))
    }

    fn decode(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        if buf.is_empty() {
            return plan_err!(
                "function `{name}` is not registered on this node: is it running dajia's scheduler and executors (`dajia scheduler`, `dajia executor`) of the same version as the client?"
            );
        }
        let key: [u8; 32] = Sha256::digest(buf).into();
        let payload: Payload = serde_json::from_slice(buf).map_err(|e| {
            DataFusionError::Plan(format!(
                "function `{name}`: unreadable state in the plan: {e}"
            ))
        })?;
        let f = match payload {
            Payload::Refused { reason } => return plan_err!("{reason}"),
            Payload::KnowledgeBase { brands } => {
                let kb = cached(&self.kbs, key, || Ok(KnowledgeBase::new(brands)))?;
                match name {
                    "assess_listing" => ScalarUDF::from(udf::AssessListing::new(kb)),
                    "text_signals" => ScalarUDF::from(udf::TextSignals::new(kb)),
                    "brand_mentions" => ScalarUDF::from(udf::BrandMentions::new(kb)),
                    other => return plan_err!("function `{other}` does not take a knowledge base"),
                }
            }
            Payload::ImageOptions {
                options,
                references,
                uri_root,
                ocr_mode,
            } => {
                let images = cached(&self.images, key, || {
                    let opts = ImageOptions {
                        models_dir: self.node.models_dir.clone(),
                        device: self.node.device,
                        ..options
                    }
                    .clamped_to(&self.node.ceilings);
                    let built = match &references {
                        // The scheduler only plans: output types need no index.
                        _ if self.node.plans_only => {
                            let mut plan = ImageRefs::plan_only(&opts);
                            plan.source = references.clone();
                            return Ok(plan);
                        }
                        Some(source) => ImageRefs::load_source(source, &opts),
                        None => ImageRefs::empty(&opts),
                    };
                    built.map_err(|e| DataFusionError::External(e.into()))
                })?;
                match name {
                    "embed_image" => ScalarUDF::from(udf::EmbedImage::new(images)),
                    "image_error" => ScalarUDF::from(udf::ImageErrorFn::new(images)),
                    "image_top_matches" => ScalarUDF::from(udf::ImageTopMatches::new(images)),
                    "image_signals" => {
                        let ocr = self.ocr.get_or_init(|| {
                            Arc::new(udf::OcrState {
                                engines: crate::ocr::OcrEngines::new(
                                    self.node.models_dir.clone(),
                                    self.node.device,
                                ),
                            })
                        });
                        let mode = ocr_mode
                            .map(|m| m.parse::<crate::ocr::OcrMode>())
                            .transpose()
                            .map_err(|e| DataFusionError::Plan(format!("image_signals: {e}")))?;
                        ScalarUDF::from(
                            udf::ImageSignals::new(images, ocr.clone(), uri_root)
                                .with_ocr_mode(mode),
                        )
                    }
                    other => return plan_err!("function `{other}` does not take image options"),
                }
            }
        };
        Ok(Arc::new(f))
    }
}

/// The image state of an image function, if `f` is one.
fn image_state(f: &ScalarUDF) -> Option<&Arc<ImageRefs>> {
    let inner = f.inner();
    inner
        .downcast_ref::<udf::EmbedImage>()
        .map(|u| &u.images)
        .or_else(|| inner.downcast_ref::<udf::ImageErrorFn>().map(|u| &u.images))
        .or_else(|| {
            inner
                .downcast_ref::<udf::ImageTopMatches>()
                .map(|u| &u.images)
        })
        .or_else(|| inner.downcast_ref::<udf::ImageSignals>().map(|u| &u.images))
}

/// Ballista's logical codec, plus dajia's functions.
#[derive(Debug)]
pub struct DajiaLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
    functions: Functions,
}

/// Ballista's physical codec, plus dajia's functions.
#[derive(Debug)]
pub struct DajiaPhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
    functions: Functions,
}

/// The pair of codecs for a node whose image functions use `node`'s models
/// and device.
pub fn codecs(node: NodeImageDefaults) -> (Arc<DajiaLogicalCodec>, Arc<DajiaPhysicalCodec>) {
    let functions = || Functions {
        node: node.clone(),
        ..Default::default()
    };
    (
        Arc::new(DajiaLogicalCodec {
            inner: Default::default(),
            functions: functions(),
        }),
        Arc::new(DajiaPhysicalCodec {
            inner: Default::default(),
            functions: functions(),
        }),
    )
}

impl LogicalExtensionCodec for DajiaLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        if let Some(dir) = write_parts::decode_dir(buf) {
            let input = inputs.first().cloned().ok_or_else(|| {
                datafusion::error::DataFusionError::Internal("WriteParts without input".into())
            })?;
            return Ok(Extension {
                node: Arc::new(write_parts::WritePartsNode::new(input, dir?)?),
            });
        }
        self.inner.try_decode(buf, inputs, ctx)
    }
    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        if write_parts::encode_node(node.node.as_ref(), buf) {
            return Ok(());
        }
        self.inner.try_encode(node, buf)
    }
    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        self.inner
            .try_decode_table_provider(buf, table_ref, schema, ctx)
    }
    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }
    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }
    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }
    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.functions.decode(name, buf)
    }
    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.functions.encode(node, buf)
    }
}

impl PhysicalExtensionCodec for DajiaPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if let Some(dir) = write_parts::decode_dir(buf) {
            let input = inputs.first().cloned().ok_or_else(|| {
                datafusion::error::DataFusionError::Internal("WritePartsExec without input".into())
            })?;
            return Ok(Arc::new(write_parts::WritePartsExec::new(input, dir?)));
        }
        self.inner.try_decode(buf, inputs, ctx, proto_converter)
    }
    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if write_parts::encode_exec(node.as_ref(), buf) {
            return Ok(());
        }
        self.inner.try_encode(node, buf, proto_converter)
    }
    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.functions.decode(name, buf)
    }
    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.functions.encode(node, buf)
    }
}

/// Decodes a task's encoded physical plan exactly as dajia's executors do:
/// Ballista's decoder, patched so that a panic inside DataFusion's plan
/// decoder (a damaged plan) is an error of that task, not of the executor
/// (`third_party/ballista-executor/PATCHES.md`). The fuzz target
/// `plan_codec` and the tests below decode through it.
pub fn decode_task_plan(
    encoded: &[u8],
    task_context: &TaskContext,
    codec: &DajiaPhysicalCodec,
) -> Result<Arc<dyn ExecutionPlan>> {
    ballista_executor::plan_decode::decode_physical_plan::<
        datafusion_proto::protobuf::PhysicalPlanNode,
    >(encoded, task_context, codec)
    .map_err(|e| DataFusionError::External(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kb() -> Arc<KnowledgeBase> {
        let brand = Brand {
            id: 7,
            name: "Gucci".into(),
            aliases: vec!["古驰".into()],
            protected: true,
            ..Default::default()
        };
        Arc::new(KnowledgeBase::new(vec![brand]))
    }

    #[test]
    fn knowledge_base_functions_travel_with_their_brands() {
        let (_, physical) = codecs(NodeImageDefaults::default());
        let f = ScalarUDF::from(udf::BrandMentions::new(kb()));
        let mut buf = Vec::new();
        physical.try_encode_udf(&f, &mut buf).unwrap();
        assert!(!buf.is_empty());
        let g = physical.try_decode_udf("brand_mentions", &buf).unwrap();
        let decoded = g.inner().downcast_ref::<udf::BrandMentions>().unwrap();
        assert_eq!(decoded.kb.brands.len(), 1);
        assert_eq!(decoded.kb.brands[0].aliases, vec!["古驰".to_string()]);
        // Decoding the same plan again reuses the rebuilt knowledge base.
        let h = physical.try_decode_udf("brand_mentions", &buf).unwrap();
        let again = h.inner().downcast_ref::<udf::BrandMentions>().unwrap();
        assert!(Arc::ptr_eq(&decoded.kb, &again.kb));
        // The same payload under another knowledge-base function works, under
        // an unrelated name it is an error.
        assert!(physical.try_decode_udf("assess_listing", &buf).is_ok());
        assert!(physical.try_decode_udf("normalize_text", &buf).is_err());
    }

    #[test]
    fn stateless_functions_travel_by_name_and_garbage_is_an_error() {
        let (logical, _) = codecs(NodeImageDefaults::default());
        let f = ScalarUDF::from(udf::NormalizeText::new());
        let mut buf = Vec::new();
        logical.try_encode_udf(&f, &mut buf).unwrap();
        assert!(buf.is_empty(), "by name: the node's registry has it");
        let e = logical.try_decode_udf("normalize_text", &[]).unwrap_err();
        assert!(e.to_string().contains("dajia executor"), "{e}");
        let e = logical
            .try_decode_udf("assess_listing", b"{not json")
            .unwrap_err();
        assert!(e.to_string().contains("unreadable state"), "{e}");
    }

    #[test]
    fn the_scheduler_plans_image_functions_without_their_models() {
        let (_, client) = codecs(NodeImageDefaults::default());
        let (_, scheduler) = codecs(NodeImageDefaults {
            plans_only: true,
            models_dir: "/nonexistent/models".into(),
            ..Default::default()
        });
        // MobileNet's model is nowhere here; the scheduler needs only its kind.
        let images = ImageRefs::plan_only(&ImageOptions {
            embedder: dajia_kernels::image::EmbedderKind::Mobilenet,
            device: DeviceChoice::Cpu,
            ..Default::default()
        });
        let f = ScalarUDF::from(udf::EmbedImage::new(Arc::new(images)));
        let mut buf = Vec::new();
        client.try_encode_udf(&f, &mut buf).unwrap();
        let g = scheduler.try_decode_udf("embed_image", &buf).unwrap();
        let d = g.inner().downcast_ref::<udf::EmbedImage>().unwrap();
        assert_eq!(
            d.images.refs.embedder.kind(),
            dajia_kernels::image::EmbedderKind::Mobilenet
        );
        let e = d
            .images
            .refs
            .embedder
            .embed_rgb(&image::RgbImage::new(8, 8))
            .unwrap_err();
        assert!(e.to_string().contains("not on the scheduler"), "{e}");
    }

    /// Indexes of `opts`'s embedder holding one official photo, in memory.
    fn one_official_photo(opts: &ImageOptions) -> ImageRefs {
        let mut refs = ImageRefs::empty(opts).unwrap();
        let img =
            image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 90]));
        let e = refs.refs.embedder.embed_rgb(&img).unwrap();
        refs.refs.official.push(
            crate::images::IndexEntry {
                image_id: "b1".into(),
                brand_id: Some(2),
                listing_id: None,
                source: "brand_images".into(),
                print: None,
            },
            &e,
        );
        refs
    }

    #[test]
    fn image_functions_carry_options_and_reference_indexes_travel_by_path() {
        let (_, physical) = codecs(NodeImageDefaults::default());
        let opts = ImageOptions {
            device: DeviceChoice::Cpu,
            threshold: Some(0.8),
            verify_threshold: 0.5,
            max_pixels: 1234,
            models_dir: "/client/models".into(),
            ..Default::default()
        };
        let images = Arc::new(ImageRefs::empty(&opts).unwrap());
        let f = ScalarUDF::from(udf::EmbedImage::new(images.clone()));
        let mut buf = Vec::new();
        physical.try_encode_udf(&f, &mut buf).unwrap();
        let g = physical.try_decode_udf("embed_image", &buf).unwrap();
        let d = g.inner().downcast_ref::<udf::EmbedImage>().unwrap();
        assert_eq!(d.images.options.threshold(), 0.8);
        // Every option travels, not a hand-picked few; where the models are
        // is the receiving node's.
        assert_eq!(d.images.options.verify_threshold, 0.5);
        assert_eq!(d.images.limits().max_pixels, 1234);
        // ... but never above the node's own limits.
        let greedy = ImageOptions {
            max_pixels: u64::MAX,
            max_bytes: usize::MAX,
            batch_rows: 1 << 30,
            ..opts.clone()
        };
        let f = ScalarUDF::from(udf::EmbedImage::new(Arc::new(
            ImageRefs::empty(&greedy).unwrap(),
        )));
        let mut buf = Vec::new();
        physical.try_encode_udf(&f, &mut buf).unwrap();
        let g = physical.try_decode_udf("embed_image", &buf).unwrap();
        let d = g.inner().downcast_ref::<udf::EmbedImage>().unwrap();
        let node = ImageOptions::default();
        assert_eq!(
            (d.images.limits(), d.images.options.batch_rows),
            (node.limits(), node.batch_rows)
        );
        assert_eq!(
            d.images.options.models_dir,
            NodeImageDefaults::default().models_dir
        );
        // An empty index travels as options; a filled one by its path.
        let f = ScalarUDF::from(udf::ImageTopMatches::new(images));
        physical.try_encode_udf(&f, &mut Vec::new()).unwrap();
        let mut filled = one_official_photo(&opts);
        // Built in this process, nowhere an executor can read: refused,
        // saying what to do.
        let encode = |refs: &ImageRefs| {
            let f = ScalarUDF::from(udf::ImageTopMatches::new(Arc::new(refs.clone())));
            let mut buf = Vec::new();
            physical.try_encode_udf(&f, &mut buf).map(|_| buf)
        };
        let refused = encode(&filled).unwrap();
        let err = physical
            .try_decode_udf("image_top_matches", &refused)
            .unwrap_err();
        assert!(err.to_string().contains("--image-kb DIR"), "{err}");
        // Saved where executors read: the receiving node loads the same
        // entries from the path, once per run (cached by the payload).
        let dir = tempfile::tempdir().unwrap();
        filled.save(dir.path()).unwrap();
        let buf = encode(&filled).unwrap();
        let g = physical.try_decode_udf("image_top_matches", &buf).unwrap();
        let d = g.inner().downcast_ref::<udf::ImageTopMatches>().unwrap();
        assert_eq!(d.images.refs.official.entries, filled.refs.official.entries);
        assert_eq!(d.images.source, filled.source);
        let again = physical.try_decode_udf("image_top_matches", &buf).unwrap();
        let again = again
            .inner()
            .downcast_ref::<udf::ImageTopMatches>()
            .unwrap();
        assert!(Arc::ptr_eq(&d.images, &again.images));
        // Through the scheduler, which loads nothing but passes the source on.
        let (_, scheduler) = codecs(NodeImageDefaults {
            plans_only: true,
            ..Default::default()
        });
        let planned = scheduler.try_decode_udf("image_top_matches", &buf).unwrap();
        assert!(planned
            .inner()
            .downcast_ref::<udf::ImageTopMatches>()
            .unwrap()
            .images
            .refs
            .official
            .is_empty());
        let mut hop = Vec::new();
        scheduler.try_encode_udf(&planned, &mut hop).unwrap();
        let (_, executor) = codecs(NodeImageDefaults::default());
        let e = executor.try_decode_udf("image_top_matches", &hop).unwrap();
        let e = e.inner().downcast_ref::<udf::ImageTopMatches>().unwrap();
        assert_eq!(e.images.refs.official.len(), 1);
        // Indexes that changed under the path since the client read them:
        // refused (a fresh node, whose cache is empty), not matched against.
        filled.refs.official.entries[0].brand_id = Some(3);
        crate::images::index::write(&filled.refs.official, dir.path()).unwrap();
        let (_, fresh) = codecs(NodeImageDefaults::default());
        let err = fresh.try_decode_udf("image_top_matches", &buf).unwrap_err();
        assert!(
            err.to_string().contains("not the ones the client read"),
            "{err}"
        );
    }

    #[test]
    fn image_signals_carries_its_catalog_root_ocr_decision_and_indexes() {
        let opts = ImageOptions {
            device: DeviceChoice::Cpu,
            ..Default::default()
        };
        let mut refs = one_official_photo(&opts);
        let ocr = Arc::new(udf::OcrState {
            engines: crate::ocr::OcrEngines::new("/client/models".into(), DeviceChoice::Cpu),
        });
        let signals = |refs: &ImageRefs, mode| {
            ScalarUDF::from(
                udf::ImageSignals::new(
                    Arc::new(refs.clone()),
                    ocr.clone(),
                    Some("/data/catalog".into()),
                )
                .with_ocr_mode(mode),
            )
        };
        let (_, client) = codecs(NodeImageDefaults::default());
        // In the client's memory only: refused like image_top_matches.
        let mut buf = Vec::new();
        client
            .try_encode_udf(&signals(&refs, None), &mut buf)
            .unwrap();
        let err = client.try_decode_udf("image_signals", &buf).unwrap_err();
        assert!(
            err.to_string()
                .contains("image_signals over reference images"),
            "{err}"
        );
        // Saved (as the scan does to its staging folder): client →
        // scheduler (plans only) → executor, everything kept.
        let dir = tempfile::tempdir().unwrap();
        refs.save(dir.path()).unwrap();
        let mut buf = Vec::new();
        client
            .try_encode_udf(&signals(&refs, Some(crate::ocr::OcrMode::Off)), &mut buf)
            .unwrap();
        let (_, scheduler) = codecs(NodeImageDefaults {
            plans_only: true,
            ..Default::default()
        });
        let planned = scheduler.try_decode_udf("image_signals", &buf).unwrap();
        let mut hop = Vec::new();
        scheduler.try_encode_udf(&planned, &mut hop).unwrap();
        let (_, executor) = codecs(NodeImageDefaults::default());
        let f = executor.try_decode_udf("image_signals", &hop).unwrap();
        let d = f.inner().downcast_ref::<udf::ImageSignals>().unwrap();
        assert_eq!(d.uri_root.as_deref(), Some("/data/catalog"));
        assert_eq!(d.ocr_mode, Some(crate::ocr::OcrMode::Off));
        assert_eq!(d.images.refs.official.entries, refs.refs.official.entries);
        assert!(!Arc::ptr_eq(&d.ocr, &ocr), "the executor's own OCR engines");
    }

    /// The first aggregate of a plan, through the nodes a GROUP BY plan has.
    fn first_aggregate(
        node: &mut datafusion_proto::protobuf::PhysicalPlanNode,
    ) -> Option<&mut datafusion_proto::protobuf::AggregateExecNode> {
        use datafusion_proto::protobuf::physical_plan_node::PhysicalPlanType as T;
        let input = match node.physical_plan_type.as_mut()? {
            T::Aggregate(a) => return Some(a),
            T::Projection(p) => p.input.as_mut(),
            T::Repartition(r) => r.input.as_mut(),
            T::CoalesceBatches(c) => c.input.as_mut(),
            T::Merge(m) => m.input.as_mut(),
            T::Sort(s) => s.input.as_mut(),
            T::SortPreservingMerge(s) => s.input.as_mut(),
            T::Filter(f) => f.input.as_mut(),
            _ => None,
        }?;
        first_aggregate(input)
    }

    /// The physical plan of `sql` as a client encodes it for an executor, with
    /// a task context and an executor's codec to decode it.
    async fn plan_as_sent(
        sql: &str,
    ) -> (
        Arc<datafusion::execution::TaskContext>,
        Arc<DajiaPhysicalCodec>,
        Vec<u8>,
    ) {
        let ctx = datafusion::prelude::SessionContext::new();
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let (_, client) = codecs(NodeImageDefaults::default());
        let (_, executor) = codecs(NodeImageDefaults {
            models_dir: "/nonexistent/models".into(),
            ..Default::default()
        });
        let encoded = datafusion_proto::bytes::physical_plan_to_bytes_with_extension_codec(
            plan,
            client.as_ref(),
        )
        .unwrap();
        (ctx.task_ctx(), executor, encoded.to_vec())
    }

    /// The `plan_codec` fuzz target's finding: an aggregate whose grouping
    /// sets have no grouping expressions makes DataFusion 55.2's decoder
    /// panic. Decoded as an executor decodes it, it is an error.
    #[tokio::test]
    async fn a_plan_whose_decoder_panics_is_an_error_on_an_executor() {
        use prost::Message;
        let (task, executor, encoded) = plan_as_sent(
            "SELECT column1 AS t, count(*) AS c FROM (VALUES ('a'), ('b'), ('a')) GROUP BY column1",
        )
        .await;
        // Undamaged, the executor's decoding gives the plan back.
        assert!(decode_task_plan(&encoded, &task, &executor).is_ok());
        let mut node = datafusion_proto::protobuf::PhysicalPlanNode::decode(&encoded[..]).unwrap();
        let aggregate = first_aggregate(&mut node).expect("a GROUP BY plan has an aggregate");
        aggregate.group_expr.clear();
        aggregate.group_expr_name.clear();
        if aggregate.groups.is_empty() {
            aggregate.groups.push(false);
        }
        let damaged = node.encode_to_vec();
        // DataFusion's own decoder panics on it (what an executor met before
        // the patch)...
        let unpatched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            datafusion_proto::bytes::physical_plan_from_bytes_with_extension_codec(
                &damaged,
                &task,
                executor.as_ref(),
            )
        }));
        assert!(
            unpatched.is_err(),
            "DataFusion's decoder no longer panics here: the patch may be dropped"
        );
        // ...and the executor's decoding turns that into an error.
        let e = decode_task_plan(&damaged, &task, &executor).unwrap_err();
        assert!(e.to_string().contains("the plan decoder panicked"), "{e}");
        assert!(e.to_string().contains("chunk size must be non-zero"), "{e}");
    }

    /// The plan's first in-memory table, through the nodes a VALUES plan has.
    fn first_memory_scan(
        node: &mut datafusion_proto::protobuf::PhysicalPlanNode,
    ) -> Option<&mut datafusion_proto::protobuf::MemoryScanExecNode> {
        use datafusion_proto::protobuf::physical_plan_node::PhysicalPlanType as T;
        match node.physical_plan_type.as_mut()? {
            T::MemoryScan(m) => Some(m),
            T::Projection(p) => first_memory_scan(p.input.as_mut()?),
            T::Filter(f) => first_memory_scan(f.input.as_mut()?),
            T::CoalesceBatches(c) => first_memory_scan(c.input.as_mut()?),
            T::Repartition(r) => first_memory_scan(r.input.as_mut()?),
            _ => None,
        }
    }

    /// The `plan_codec` fuzz target's other finding: an in-memory table whose
    /// Arrow IPC message declares more bytes than follow made arrow-ipc
    /// zero-fill that many (~1.7 GB) before reading. An executor refuses the
    /// plan from the lengths alone.
    #[tokio::test]
    async fn an_in_memory_table_declaring_more_bytes_than_it_has_is_refused_unread() {
        use prost::Message;
        let (task, executor, encoded) =
            plan_as_sent("SELECT column1 AS t FROM (VALUES ('a'), ('b')) WHERE column1 <> 'c'")
                .await;
        assert!(decode_task_plan(&encoded, &task, &executor).is_ok());
        let node = datafusion_proto::protobuf::PhysicalPlanNode::decode(&encoded[..]).unwrap();
        for (what, at, declared) in [
            ("metadata", 4usize, 0x6a00_0000u32),
            ("cut", 4, 0),
            ("body", 0, 0),
        ] {
            let mut node = node.clone();
            let scan = first_memory_scan(&mut node).expect("a VALUES plan reads a memory table");
            let partition = scan
                .partitions
                .iter_mut()
                .find(|p| !p.is_empty())
                .expect("a partition with rows");
            assert_eq!(partition[..4], [0xff; 4], "IPC stream framing");
            if what == "cut" {
                partition.truncate(6);
            } else if what == "body" {
                // The end-of-stream marker and 8 bytes of the last body gone:
                // that body declares more than follows.
                partition.truncate(partition.len() - 16);
            } else {
                partition[at..at + 4].copy_from_slice(&declared.to_le_bytes());
            }
            let damaged = node.encode_to_vec();
            let started = std::time::Instant::now();
            let e = decode_task_plan(&damaged, &task, &executor).unwrap_err();
            assert!(e.to_string().contains("in-memory table"), "{what}: {e}");
            if what != "cut" {
                assert!(e.to_string().contains(what), "{what}: {e}");
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{what}: read before refused"
            );
        }
    }

    // The `plan_codec` fuzz target's property (fuzz/): a function's state
    // damaged in transit is decoded or refused, never a panic.
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        #[test]
        fn damaged_function_state_is_decoded_or_refused(
            which in 0usize..3,
            damage in proptest::collection::vec((proptest::prelude::any::<u16>(), proptest::prelude::any::<u8>()), 1..6),
        ) {
            let (_, physical) = codecs(NodeImageDefaults {
                plans_only: true,
                ..Default::default()
            });
            let f = match which {
                0 => ScalarUDF::from(udf::BrandMentions::new(kb())),
                1 => ScalarUDF::from(udf::AssessListing::new(kb())),
                _ => ScalarUDF::from(udf::EmbedImage::new(Arc::new(
                    ImageRefs::empty(&ImageOptions {
                        device: DeviceChoice::Cpu,
                        ..Default::default()
                    })
                    .unwrap(),
                ))),
            };
            let mut buf = Vec::new();
            physical.try_encode_udf(&f, &mut buf).unwrap();
            for (at, v) in damage {
                let i = at as usize % buf.len();
                buf[i] = v;
            }
            let _ = physical.try_decode_udf(f.name(), &buf);
        }
    }
}
