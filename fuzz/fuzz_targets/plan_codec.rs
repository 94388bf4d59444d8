//! The cluster plan codec as an executor meets it: plans that carry dajia's
//! functions (their knowledge base, image options), encoded by a client and
//! then damaged byte by byte, and raw bytes, decoded by a node. Any input is
//! either a plan or an error; never a panic, never options above the node's
//! ceilings (checked by the codec's own unit tests on valid plans).
#![no_main]

use std::sync::{Arc, LazyLock};

use arbitrary::Arbitrary;
use dajia::cluster::codec::{codecs, decode_task_plan, DajiaPhysicalCodec, NodeImageDefaults};
use dajia_kernels::risk::{Brand, KnowledgeBase};
use datafusion::prelude::SessionContext;
use datafusion_proto::bytes::physical_plan_to_bytes_with_extension_codec;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use libfuzzer_sys::fuzz_target;

const FUNCTIONS: &[&str] = &[
    "assess_listing",
    "text_signals",
    "brand_mentions",
    "normalize_text",
    "embed_image",
    "image_error",
    "image_top_matches",
    "image_signals",
    "cosine_similarity",
];

/// Queries whose plans carry each kind of function state.
const QUERIES: &[&str] = &[
    "SELECT brand_mentions(t) AS m, normalize_text(t) AS n FROM v",
    "SELECT text_signals(t) AS s FROM v WHERE length(t) > 2",
    "SELECT embed_image(b) AS e, image_error(b) AS r FROM v",
    "SELECT image_top_matches(b) AS m FROM v WHERE b IS NOT NULL",
    "SELECT t, count(*) AS c FROM v GROUP BY t ORDER BY c DESC LIMIT 3",
];

struct Fixture {
    ctx: SessionContext,
    /// A node that runs functions (no models here: loading one fails cleanly).
    executor: Arc<DajiaPhysicalCodec>,
    /// A node that only plans (the scheduler).
    scheduler: Arc<DajiaPhysicalCodec>,
    encoded: Vec<Vec<u8>>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ctx = SessionContext::new();
    let kb = KnowledgeBase::new(vec![Brand {
        id: 7,
        name: "Gucci".into(),
        aliases: vec!["古驰".into()],
        protected: true,
        ..Default::default()
    }]);
    dajia::session::register_functions(&ctx, Some(Arc::new(kb)));
    // A file-backed table: an in-memory one travels as Arrow IPC inside the
    // plan, where a damaged length makes arrow-ipc zero-fill gigabytes (the
    // first run's open finding, fuzz/findings/plan_codec), which stops the
    // fuzzer at its first time-out.
    let file = std::env::temp_dir().join(format!("dajia-fuzz-plan-{}.parquet", std::process::id()));
    rt.block_on(async {
        ctx.sql(&format!(
            "COPY (SELECT column1 AS t, CAST(column2 AS BYTEA) AS b FROM (VALUES ('古驰 包', 'x'), ('nike', 'y'))) TO '{}' STORED AS PARQUET",
            file.display()
        ))
        .await?
        .collect()
        .await?;
        ctx.register_parquet("v", file.to_str().unwrap(), Default::default())
            .await
    })
    .unwrap();
    let (_, client) = codecs(NodeImageDefaults::default());
    let encoded = QUERIES
        .iter()
        .map(|q| {
            let plan = rt
                .block_on(async { ctx.sql(q).await?.create_physical_plan().await })
                .unwrap();
            physical_plan_to_bytes_with_extension_codec(plan, client.as_ref())
                .unwrap()
                .to_vec()
        })
        .collect();
    let (_, executor) = codecs(NodeImageDefaults {
        models_dir: "/nonexistent/dajia-fuzz-models".into(),
        ..Default::default()
    });
    let (_, scheduler) = codecs(NodeImageDefaults {
        plans_only: true,
        models_dir: "/nonexistent/dajia-fuzz-models".into(),
        ..Default::default()
    });
    Fixture {
        ctx,
        executor,
        scheduler,
        encoded,
    }
});

#[derive(Debug, Arbitrary)]
struct Input {
    function: u8,
    payload: Vec<u8>,
    query: u8,
    damage: Vec<(u16, u8)>,
    raw: Vec<u8>,
}

fuzz_target!(
    init: {
        // libfuzzer-sys aborts on every panic, even one the executor's
        // decoding catches (DataFusion's decoder panics on some damaged
        // plans: fuzz/findings/plan_codec). Caught panics are handled input;
        // one that escapes still aborts (libfuzzer-sys's catch_unwind).
        drop(std::panic::take_hook());
        LazyLock::force(&FIXTURE);
    },
    |inp: Input| {
    let f = &*FIXTURE;
    let name = FUNCTIONS[inp.function as usize % FUNCTIONS.len()];
    for node in [&f.executor, &f.scheduler] {
        let _ = node.try_decode_udf(name, &inp.payload);
    }
    let task = f.ctx.task_ctx();
    let mut bytes = f.encoded[inp.query as usize % f.encoded.len()].clone();
    for (at, value) in &inp.damage {
        let i = *at as usize % bytes.len();
        bytes[i] = *value;
    }
    for node in [&f.executor, &f.scheduler] {
        // As an executor decodes a task's plan (Ballista's decoder, patched to
        // isolate panics: third_party/ballista-executor/PATCHES.md).
        let _ = decode_task_plan(&bytes, &task, node.as_ref());
        let _ = decode_task_plan(&inp.raw, &task, node.as_ref());
    }
    }
);
