//! `dajia scheduler` and `dajia executor`: Ballista's scheduler and executor
//! processes, started through their library entry points so that both carry
//! dajia's functions (by name, from [`crate::session::register_functions`])
//! and dajia's codecs (functions with state, [`super::codec`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;

use dajia_kernels::device::DeviceChoice;

use super::codec::{codecs, NodeImageDefaults};
use super::{ballista_config, state_for, ClusterSettings};

/// A node's own partitions per stage: only a default, since each client's
/// `dajia.cluster.partitions` travels with its jobs.
fn node_partitions() -> usize {
    ClusterSettings::default().partitions
}

/// Options of `dajia scheduler`.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Address to listen on.
    pub bind: String,
    pub port: u16,
    /// Host name executors and clients use to reach this scheduler.
    pub external_host: Option<String>,
    /// Seconds without a heartbeat after which an executor is presumed dead
    /// and its tasks (and shuffle outputs) are run again elsewhere.
    pub executor_timeout_seconds: u64,
    /// Times a task may fail before its job fails.
    pub task_max_failures: usize,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            bind: "127.0.0.1".into(),
            port: 50050,
            external_host: None,
            executor_timeout_seconds: 60,
            task_max_failures: 4,
        }
    }
}

impl SchedulerOptions {
    /// Checks values, apart from any I/O.
    pub fn validate(&self) -> Result<SocketAddr> {
        if self.task_max_failures == 0 {
            bail!("--task-max-failures must be at least 1");
        }
        if self.executor_timeout_seconds < 5 {
            bail!("--executor-timeout must be at least 5 seconds (executors heartbeat every few seconds)");
        }
        format!("{}:{}", self.bind, self.port)
            .parse()
            .with_context(|| {
                format!(
                    "`{}:{}` is not an address to listen on",
                    self.bind, self.port
                )
            })
    }
}

/// Run a scheduler until the process is stopped.
pub async fn run_scheduler(opts: &SchedulerOptions) -> Result<()> {
    let addr = opts.validate()?;
    // The scheduler plans; it never runs a function, so it needs no models.
    let planner = NodeImageDefaults {
        plans_only: true,
        ..Default::default()
    };
    let (logical, physical) = codecs(planner.clone());
    let mut config = SchedulerConfig {
        bind_host: opts.bind.clone(),
        bind_port: opts.port,
        external_host: opts
            .external_host
            .clone()
            .unwrap_or_else(|| opts.bind.clone()),
        executor_timeout_seconds: opts.executor_timeout_seconds,
        // Look for dead executors often enough for the timeout to matter.
        expire_dead_executor_interval_seconds: (opts.executor_timeout_seconds / 4).max(1),
        no_executors_grace_period_seconds: opts.executor_timeout_seconds,
        task_max_failures: opts.task_max_failures,
        override_logical_codec: Some(logical),
        override_physical_codec: Some(physical),
        ..Default::default()
    };
    config = config
        .with_override_config_producer(Arc::new(move || {
            ballista_config(planner.clone(), node_partitions())
        }))
        .with_override_session_builder(Arc::new(|c: SessionConfig| {
            state_for(c).map_err(|e| datafusion::error::DataFusionError::External(e.into()))
        }));
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .context("setting up the scheduler's cluster state")?;
    eprintln!("dajia scheduler listening on {addr}");
    start_server(cluster, addr, Arc::new(config))
        .await
        .with_context(|| format!("scheduler on {addr}"))?;
    Ok(())
}

/// Options of `dajia executor`.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler, `df://HOST:PORT`.
    pub scheduler: super::ClusterUrl,
    /// Address to listen on, and the host others use to reach this executor.
    pub bind: String,
    pub external_host: Option<String>,
    /// Arrow Flight port (shuffle data) and gRPC port.
    pub port: u16,
    pub grpc_port: u16,
    /// Tasks run at once (default: the cores of the host).
    pub concurrent_tasks: usize,
    /// Memory for query execution, bytes (default: 70% of the host's memory;
    /// set it when several executors share a host).
    pub memory_pool_size: Option<u64>,
    /// Shuffle files and spills.
    pub work_dir: PathBuf,
    /// Where image functions run on this executor.
    pub device: DeviceChoice,
    pub models_dir: PathBuf,
    /// Seconds between heartbeats to the scheduler.
    pub heartbeat_seconds: u64,
    /// The most a plan may ask of this executor's image functions
    /// (`--config`'s `[images]`, else the defaults).
    pub image_ceilings: crate::images::ImageOptions,
}

impl ExecutorOptions {
    /// Checks values, apart from any I/O.
    pub fn validate(&self) -> Result<()> {
        if self.port == self.grpc_port {
            bail!("--port and --grpc-port must differ (both {})", self.port);
        }
        if let Some(m) = self.memory_pool_size {
            if m < (64 << 20) {
                bail!("--memory-pool-size {m} is under 64 MiB: too small to run a scan");
            }
        }
        if self.heartbeat_seconds == 0 {
            bail!("--heartbeat must be at least 1 second");
        }
        Ok(())
    }
}

/// Run an executor until the process is stopped.
pub async fn run_executor(opts: &ExecutorOptions) -> Result<()> {
    opts.validate()?;
    std::fs::create_dir_all(&opts.work_dir)
        .with_context(|| format!("creating work directory {}", opts.work_dir.display()))?;
    let work_dir = std::fs::canonicalize(&opts.work_dir)?
        .to_string_lossy()
        .into_owned();
    let node = NodeImageDefaults {
        models_dir: opts.models_dir.clone(),
        device: opts.device,
        plans_only: false,
        ceilings: opts.image_ceilings.clone(),
    };
    // Fail now, not at the first task, when the device asked for is absent.
    if opts.device != DeviceChoice::Cpu {
        let d = crate::images::open_device(opts.device)?;
        eprintln!("dajia executor: image functions on {}", d.describe());
    }
    let (logical, physical) = codecs(node.clone());
    let state = state_for(ballista_config(node.clone(), node_partitions()))?;
    let registry = BallistaFunctionRegistry::from(&state);
    let spill_dir = work_dir.clone();
    let config = ExecutorProcessConfig {
        bind_host: opts.bind.clone(),
        external_host: opts.external_host.clone(),
        port: opts.port,
        grpc_port: opts.grpc_port,
        scheduler_host: opts.scheduler.host.clone(),
        scheduler_port: opts.scheduler.port,
        scheduler_connect_timeout_seconds: 30,
        vcores: opts.concurrent_tasks,
        work_dir: Some(work_dir),
        memory_pool_size: opts.memory_pool_size,
        executor_heartbeat_interval_seconds: opts.heartbeat_seconds,
        override_function_registry: Some(Arc::new(registry)),
        override_logical_codec: Some(logical),
        override_physical_codec: Some(physical),
        override_config_producer: Some(Arc::new(move || {
            ballista_config(node.clone(), node_partitions())
        })),
        // Ballista's default runtime, plus s3:// (its S3 options, else the
        // AWS environment variables).
        override_runtime_producer: Some(Arc::new(move |c: &SessionConfig| {
            let s3 = c
                .options()
                .extensions
                .get::<ballista_core::object_store::S3Options>()
                .cloned()
                .unwrap_or_default();
            let runtime = RuntimeEnvBuilder::new()
                .with_temp_file_path(spill_dir.clone())
                .with_object_store_registry(Arc::new(
                    ballista_core::object_store::CustomObjectStoreRegistry::new(s3),
                ))
                .build()?;
            Ok(Arc::new(runtime))
        })),
        ..Default::default()
    };
    eprintln!(
        "dajia executor: scheduler {}, {} concurrent tasks, work dir {}",
        opts.scheduler,
        opts.concurrent_tasks,
        opts.work_dir.display()
    );
    start_executor_process(Arc::new(config))
        .await
        .with_context(|| format!("executor of scheduler {}", opts.scheduler))?;
    Ok(())
}

/// `123`, `512M`, `4G` as bytes.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => anyhow::bail!("`{s}`: unknown size suffix `{c}` (use K, M, G or T)"),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .with_context(|| format!("`{s}` is not a size in bytes (e.g. 512M, 4G)"))?;
    n.checked_mul(mul)
        .with_context(|| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes_and_bad_ones_are_refused() {
        assert_eq!(parse_bytes("123").unwrap(), 123);
        assert_eq!(parse_bytes("512M").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("4g").unwrap(), 4 << 30);
        assert!(parse_bytes("4X")
            .unwrap_err()
            .to_string()
            .contains("suffix"));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("99999999999T")
            .unwrap_err()
            .to_string()
            .contains("too large"));
    }

    #[test]
    fn options_are_checked_before_any_io() {
        assert!(SchedulerOptions::default().validate().is_ok());
        let bad = SchedulerOptions {
            bind: "not an address".into(),
            ..Default::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("not an address"));
        let bad = SchedulerOptions {
            task_max_failures: 0,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let e = ExecutorOptions {
            scheduler: "df://h:1".parse().unwrap(),
            bind: "127.0.0.1".into(),
            external_host: None,
            port: 1,
            grpc_port: 1,
            concurrent_tasks: 1,
            memory_pool_size: None,
            work_dir: "/tmp/x".into(),
            device: DeviceChoice::Cpu,
            models_dir: "models".into(),
            heartbeat_seconds: 5,
            image_ceilings: Default::default(),
        };
        assert!(e
            .validate()
            .unwrap_err()
            .to_string()
            .contains("must differ"));
        let small = ExecutorOptions {
            grpc_port: 2,
            memory_pool_size: Some(1 << 20),
            ..e.clone()
        };
        assert!(small.validate().unwrap_err().to_string().contains("64 MiB"));
    }
}
