//! The DataFusion session every job uses: one place for configuration and
//! function registration, so the scan, `dajia sql`, the cluster's scheduler
//! and executors, and the tests see the same functions.

use std::sync::Arc;

use datafusion::execution::context::SessionContext;
use datafusion::prelude::SessionConfig;

use dajia_kernels::risk::KnowledgeBase;

use crate::options::DajiaOptions;

/// dajia's session configuration, local or on a cluster.
pub fn base_config() -> SessionConfig {
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
    // dajia's options (`dajia.*`): registered on every node so that the
    // values a client ships with a job parse there too.
    config.with_option_extension(DajiaOptions::default())
}

/// Make `options` the session's `dajia.*` settings (functions read them at
/// each call; a cluster client ships them with each job).
pub fn set_options(ctx: &SessionContext, options: &DajiaOptions) {
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .extensions
        .insert(options.clone());
}

/// The session's `dajia.*` settings.
pub fn options(ctx: &SessionContext) -> DajiaOptions {
    DajiaOptions::of(ctx.state_ref().read().config().options())
}

/// A session with dajia's configuration, `options` and every UDF registered.
/// Functions that need the brand knowledge base are registered when one is
/// given.
pub fn new_session(options: &DajiaOptions, kb: Option<Arc<KnowledgeBase>>) -> SessionContext {
    // Files by path (SELECT * FROM 'x.parquet') only in `dajia sql`, under
    // its folders: see `crate::file_tables`.
    let ctx = SessionContext::new_with_config(base_config());
    set_options(&ctx, options);
    register_functions(&ctx, kb);
    ctx
}

/// Register every dajia function on `ctx`: the one registration that the
/// local session, the cluster client, the scheduler and the executors share
/// (see `cluster::node`). New functions go in `udf::register_all`. Where
/// image work runs is read from `ctx`'s options now (the process's device
/// and models); everything else at each call.
pub fn register_functions(ctx: &SessionContext, kb: Option<Arc<KnowledgeBase>>) {
    crate::udf::register_all(ctx, kb);
}

/// The integers of the one row a query such as `SELECT count(*), ...`
/// returns (zeros when it returns none).
pub async fn counts(ctx: &SessionContext, sql: &str) -> anyhow::Result<Vec<u64>> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    let batches = ctx.sql(sql).await?.collect().await?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        let n = batches.first().map_or(1, |b| b.num_columns());
        return Ok(vec![0; n]);
    };
    Ok(b.columns()
        .iter()
        .map(|c| c.as_primitive::<Int64Type>().value(0) as u64)
        .collect())
}
