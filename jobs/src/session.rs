//! The DataFusion session every job uses: one place for configuration and
//! function registration, so the scan, `dajia sql` and tests see the same
//! functions.

use std::sync::Arc;

use datafusion::execution::context::SessionContext;
use datafusion::prelude::SessionConfig;

use dajia_kernels::risk::KnowledgeBase;

/// A session with dajia's configuration and every UDF registered. Functions
/// that need the brand knowledge base are registered when one is given.
pub fn new_session(kb: Option<Arc<KnowledgeBase>>) -> SessionContext {
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_target_partitions(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        );
    // Read strings as Utf8 (not Utf8View): Delta Lake and most readers of
    // our outputs expect plain strings, and the UDFs accept both anyway.
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    // Files can be queried by path, as in datafusion-cli: SELECT * FROM 'x.parquet'.
    let ctx = SessionContext::new_with_config(config).enable_url_table();
    crate::udf::register_all(&ctx, kb);
    ctx
}
