//! Cluster mode: the same jobs on Apache DataFusion Ballista.
//!
//! - [`codec`]: carries dajia's functions (with the run's knowledge base)
//!   through distributed plans;
//! - [`node`]: `dajia scheduler` and `dajia executor`, Ballista's library
//!   entry points with dajia's functions and codecs;
//! - [`publish`]: executors write Parquet parts, the client publishes them in
//!   one Delta Lake commit;
//! - this module: the `df://HOST:PORT` address and the client session.
//!
//! Only file-backed tables (Parquet listing tables, views over them) run
//! distributed: every table a cluster query reads must be at a path or URL
//! that every node can read (a shared `file://` path or `s3://`).

pub mod codec;
pub mod node;
mod settings;
pub mod write_parts;

pub use settings::ClusterSettings;

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ballista::extension::{SessionConfigExt, SessionContextExt};
use datafusion::execution::context::SessionContext;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionConfig;

use dajia_kernels::risk::KnowledgeBase;

use crate::session;

/// Where a job runs: in this process, or on a Ballista cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Target {
    #[default]
    Local,
    /// A scheduler at `df://HOST:PORT`.
    Remote(ClusterUrl),
    /// A scheduler and executor started inside this process (tests).
    InProcess,
}

impl Target {
    pub fn is_cluster(&self) -> bool {
        !matches!(self, Target::Local)
    }
}

/// A scheduler address, `df://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterUrl {
    pub host: String,
    pub port: u16,
}

impl std::str::FromStr for ClusterUrl {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let Some(rest) = s.strip_prefix("df://") else {
            bail!("cluster address `{s}` must look like df://HOST:PORT (a dajia scheduler)");
        };
        let (host, port) = rest
            .rsplit_once(':')
            .with_context(|| format!("cluster address `{s}` has no port (df://HOST:PORT)"))?;
        if host.is_empty() {
            bail!("cluster address `{s}` has no host (df://HOST:PORT)");
        }
        let port = port
            .parse()
            .with_context(|| format!("cluster address `{s}`: `{port}` is not a port number"))?;
        Ok(ClusterUrl {
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for ClusterUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "df://{}:{}", self.host, self.port)
    }
}

/// dajia's configuration for Ballista: the base options, Ballista's own, the
/// S3 options extension (`SET s3.endpoint ...`) and dajia's codecs;
/// `partitions` tasks per stage (a client's `dajia.cluster.partitions`; the
/// client's value travels with its jobs, so a node's is only its default).
pub fn ballista_config(node: codec::NodeImageDefaults, partitions: usize) -> SessionConfig {
    let (logical, physical) = codec::codecs(node.clone());
    // The node's own device and models (an executor's flags): its image
    // functions are built from them; a client's values never replace them.
    let mut options = crate::options::DajiaOptions::default();
    options.images.models_dir = node.models_dir.clone();
    options.images.device = node.device;
    session::base_config()
        .with_option_extension(options)
        .with_target_partitions(partitions)
        .upgrade_for_ballista()
        // Ballista's static planner cuts a stage below every
        // CoalescePartitionsExec: the scan's assessment then runs as one task
        // per listings partition across the executors, and only the final
        // stage (the Parquet writer) is a single task. The adaptive planner
        // (Ballista 55's default) kept scan, assessment and writer in one
        // task on one executor.
        .set_str("ballista.planner.adaptive.enabled", "false")
        .with_option_extension(ballista_core::object_store::S3Options::default())
        .with_ballista_logical_extension_codec(logical)
        .with_ballista_physical_extension_codec(physical)
        .with_ballista_job_name("dajia")
}

/// A session state for `config` with every dajia function registered
/// (knowledge-base functions empty until a client registers its own), whose
/// object stores include `s3://` (from the S3 options, else the standard AWS
/// environment variables).
pub fn state_for(config: SessionConfig) -> Result<datafusion::execution::SessionState> {
    let runtime = ballista_core::object_store::runtime_env_with_s3_support(&config)?;
    state_with_functions(config, runtime)
}

/// `config` and `runtime` as a session state with every dajia function.
pub fn state_with_functions(
    config: SessionConfig,
    runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
) -> Result<datafusion::execution::SessionState> {
    // The scheduler plans `WriteParts` nodes (a client's planner is
    // replaced by Ballista's, which ships the logical plan).
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_query_planner(Arc::new(write_parts::DajiaQueryPlanner))
        .build();
    let ctx = SessionContext::new_with_state(state);
    session::register_functions(&ctx, None);
    Ok(ctx.state())
}

/// A client session on `target` with every dajia function registered (the
/// knowledge-base functions over `kb` when given). `Local` is the ordinary
/// in-process session.
pub async fn session(
    target: &Target,
    options: &crate::options::DajiaOptions,
    kb: Option<Arc<KnowledgeBase>>,
) -> Result<SessionContext> {
    let ctx = match target {
        Target::Local => return Ok(session::new_session(options, kb)),
        Target::Remote(url) => {
            reachable(url).await?;
            let state = state_for(ballista_config(
                Default::default(),
                options.cluster.partitions,
            ))?;
            SessionContext::remote_with_state(&url.to_string(), state)
                .await
                .with_context(|| format!("connecting to the dajia scheduler at {url}"))?
        }
        Target::InProcess => {
            let state = state_for(ballista_config(
                Default::default(),
                options.cluster.partitions,
            ))?;
            SessionContext::standalone_with_state(state)
                .await
                .context("starting an in-process cluster")?
        }
    };
    // The client's settings travel with every job (Ballista ships the
    // session config; every node registers the extension).
    session::set_options(&ctx, options);
    session::register_functions(&ctx, kb);
    Ok(ctx)
}

/// Fail fast, in one line, when nothing listens at the scheduler's address
/// (Ballista would only find out at the first query).
async fn reachable(url: &ClusterUrl) -> Result<()> {
    let addr = (url.host.as_str(), url.port);
    match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => bail!("cannot reach the dajia scheduler at {url}: {e}"),
        Err(_) => bail!("cannot reach the dajia scheduler at {url}: no answer in 10 s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_addresses_parse_and_bad_ones_say_the_form() {
        let u: ClusterUrl = "df://sched.internal:50050".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("sched.internal", 50050));
        assert_eq!(u.to_string(), "df://sched.internal:50050");
        for bad in [
            "http://x:1",
            "df://x",
            "df://:1",
            "df://x:port",
            "df://x:99999",
        ] {
            let e = bad.parse::<ClusterUrl>().unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
