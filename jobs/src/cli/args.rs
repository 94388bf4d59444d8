//! The command line, as clap parses it: commands and their flags. Nothing
//! here reads a file or opens a device (ripgrep's split: these are the
//! low-level arguments; `run` turns them into each job's options).

use std::path::PathBuf;

use anyhow::Result;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};

use crate::options::OptionFlags;
use crate::sql;

#[derive(Parser)]
#[command(
    name = "dajia",
    version,
    about = "dajia (打假): nightly counterfeit-risk scan of a marketplace catalog"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Print the schema of one table of the contract, or of all.
    Schema { table: Option<String> },
    /// Generate a synthetic catalog with ground-truth labels.
    Gen {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        listings: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Snapshot date (timestamps are relative to it).
        #[arg(long, default_value = "2026-11-28")]
        date: NaiveDate,
        #[arg(long, default_value_t = 250_000)]
        rows_per_file: usize,
        /// Share of listings given an image (JPEG bytes in `images`, plus
        /// official brand photos in `brand_images`); 0 writes no images.
        #[arg(long, default_value_t = 0.0)]
        image_share: f64,
        /// Sellers to generate (default: one per 40 listings, at least
        /// 200), e.g. millions with few listings to measure `dajia link`.
        #[arg(long)]
        sellers: Option<usize>,
        /// Instead of generating: answer the purchase plan of --date under
        /// this output (`dajia sample`) with verdicts from the ground truth
        /// of the catalog at --out (a simulated buyer), added to its
        /// test_purchases.
        #[arg(long, value_name = "OUT")]
        answer_plan: Option<PathBuf>,
    },
    /// The nightly scan: score every listing of a snapshot.
    Scan {
        #[arg(long, env = "DAJIA_CATALOG")]
        catalog: String,
        #[arg(long, env = "DAJIA_OUT")]
        out: String,
        #[arg(long)]
        date: NaiveDate,
        /// Texts longer than this many bytes are rejected rather than scored
        /// (`scan.max_text_bytes`, default 16384).
        #[arg(long)]
        max_text_bytes: Option<usize>,
        /// Do not draw a progress bar.
        #[arg(long)]
        no_progress: bool,
        /// Image indexes written by `dajia kb` (default: built from the catalog's brand_images).
        #[arg(long, env = "DAJIA_IMAGE_KB")]
        image_kb: Option<String>,
        #[command(flatten)]
        options: OptionFlags,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Link sellers into networks by shared identity values and publish
    /// `seller_clusters` for the date.
    Link {
        #[arg(long, env = "DAJIA_CATALOG")]
        catalog: String,
        #[arg(long, env = "DAJIA_OUT")]
        out: String,
        #[arg(long)]
        date: NaiveDate,
        /// Values shared by more sellers than this link nobody
        /// (`scan.max_sellers_per_identity`, default 50).
        #[arg(long)]
        max_sellers_per_value: Option<u64>,
        #[command(flatten)]
        options: OptionFlags,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Seller networks whose estimated counterfeit sales pass a threshold,
    /// per region, with evidence packs: publishes `leads` for the date.
    Leads {
        #[arg(long, env = "DAJIA_CATALOG")]
        catalog: String,
        #[arg(long, env = "DAJIA_OUT")]
        out: String,
        #[arg(long)]
        date: NaiveDate,
        /// Estimated counterfeit sales a network must reach, in CNY.
        #[arg(long, default_value_t = 50_000.0)]
        threshold: f64,
        /// Orders of this many days up to --date count.
        #[arg(long, default_value_t = 365)]
        window_days: u32,
        /// Also write leads.csv and one Markdown page per lead here.
        #[arg(long)]
        export: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Learn the reasons' weights and the action thresholds from verdicts
    /// (test purchases, resolved complaints) and write a model file that
    /// `--model FILE` scores with.
    Train {
        #[arg(long, env = "DAJIA_CATALOG")]
        catalog: String,
        /// The output holding `risk_scores` (the reasons of the labelled
        /// listings); the model goes to OUT/models/VERSION.json.
        #[arg(long, env = "DAJIA_OUT")]
        out: String,
        /// Last day of the training window.
        #[arg(long)]
        date: NaiveDate,
        /// Verdicts of this many days up to --date count.
        #[arg(long, default_value_t = 90)]
        window_days: u32,
        /// Share of the verdicts, the latest, held out to evaluate.
        #[arg(long, default_value_t = 0.25)]
        holdout_share: f64,
        /// Pull of each exponent towards the default weights (0: none).
        #[arg(long, default_value_t = 1.0)]
        l2: f64,
        /// Fewest training verdicts to train at all.
        #[arg(long, default_value_t = 50)]
        min_labels: u64,
        /// Fewest verdicts of each kind (counterfeit, genuine) in training.
        #[arg(long, default_value_t = 10)]
        min_per_class: u64,
        /// Also write the model file here.
        #[arg(long)]
        model_out: Option<PathBuf>,
    },
    /// Choose listings to test-buy under a budget (exploit, explore, and a
    /// random slice that measures the counterfeit rate): publishes
    /// `purchase_plan` for the date.
    Sample {
        #[arg(long, env = "DAJIA_CATALOG")]
        catalog: String,
        #[arg(long, env = "DAJIA_OUT")]
        out: String,
        #[arg(long)]
        date: NaiveDate,
        /// Purchases to plan.
        #[arg(long)]
        budget: u64,
        /// Share of the budget drawn at random (the rate estimate's sample).
        #[arg(long, default_value_t = 0.1)]
        random_share: f64,
        /// Share of the budget for exploration (Thompson sampling).
        #[arg(long, default_value_t = 0.2)]
        explore_share: f64,
        /// Purchases per seller at most.
        #[arg(long, default_value_t = 2)]
        max_per_seller: u64,
        /// Purchases per brand at most (default: a fifth of the budget).
        #[arg(long)]
        max_per_brand: Option<u64>,
        /// A listing bought within this many days is not bought again.
        #[arg(long, default_value_t = 180)]
        cooldown_days: u32,
        /// Confidence of the rate's interval: 0.8, 0.9, 0.95 or 0.99.
        #[arg(long, default_value_t = 0.9)]
        confidence: f64,
        /// Seed of the random slice and the exploration draws.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Benchmarks (figures and JSON, not tests).
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Vocabulary learned from real data: variant characters, replica terms.
    #[command(subcommand)]
    Learn(LearnCmd),
    /// Build the brand image index and update the known-fake image index.
    Kb {
        #[arg(long, env = "DAJIA_CATALOG")]
        catalog: String,
        /// Folder of the indexes (one subfolder per embedder).
        #[arg(long, env = "DAJIA_IMAGE_KB")]
        out: String,
        /// A scan's output: its takedowns become known fakes.
        #[arg(long)]
        scores: Option<String>,
        #[arg(long)]
        date: Option<NaiveDate>,
        #[command(flatten)]
        options: OptionFlags,
    },
    /// Precision, recall and F1 of a scan against labels.
    Eval {
        /// risk_scores table, or the scan's output prefix.
        #[arg(long)]
        scores: String,
        /// Labels: a generated catalog, its ground_truth/ folder, or test purchases.
        #[arg(long)]
        labels: String,
        #[arg(long)]
        date: Option<String>,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Ad-hoc SQL over a catalog and the outputs, with every dajia function.
    Sql {
        #[command(flatten)]
        session: SessionArgs,
        /// Run this SQL and exit.
        #[arg(short = 'c', long = "command")]
        command: Option<String>,
        /// Run the statements of this file and exit.
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: sql::Format,
        /// Allow statements that write files or define tables (COPY TO,
        /// CREATE, INSERT, DROP); without it the session is read-only.
        #[arg(long)]
        allow_writes: bool,
    },
    /// Arrow Flight SQL over a catalog and the outputs, with every dajia
    /// function, for ADBC, JDBC (DBeaver) and BI clients: read-only, every
    /// call authenticated with a bearer token, results bounded.
    Serve {
        /// Address to serve Arrow Flight SQL on (port 0: any free port,
        /// printed once listening). Loopback unless TLS or --allow-plaintext.
        #[arg(long = "flight-sql", value_name = "HOST:PORT", default_value = "127.0.0.1:32010", value_parser = parse_socket_addr)]
        flight_sql: std::net::SocketAddr,
        #[command(flatten)]
        session: SessionArgs,
        /// File whose first line is the bearer token every client must send
        /// (default: the DAJIA_FLIGHT_TOKEN environment variable). Never logged.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// TLS certificate chain (PEM); with --tls-key.
        #[arg(long, value_name = "PEM", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM); with --tls-cert.
        #[arg(long, value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Serve a non-loopback address without TLS (the token then travels
        /// in clear: only on a network you trust).
        #[arg(long)]
        allow_plaintext: bool,
        /// Rows one result may have; a larger one fails with this limit named.
        #[arg(long, default_value_t = crate::serve::Limits::default().max_rows)]
        max_rows: u64,
        /// In-memory bytes one result may have.
        #[arg(long, default_value_t = crate::serve::Limits::default().max_bytes)]
        max_result_bytes: u64,
        /// Seconds one query may run, planning to last batch.
        #[arg(long, value_name = "SECONDS", default_value_t = crate::serve::Limits::default().timeout.as_secs())]
        query_timeout: u64,
        /// Queries that may run at once; more are refused until one ends.
        #[arg(long, default_value_t = crate::serve::Limits::default().max_concurrent)]
        max_concurrent_queries: usize,
    },
    /// One night's results as one self-contained HTML page with charts
    /// (also written by every scan, next to its manifest).
    Report {
        #[arg(long, env = "DAJIA_OUT")]
        out: String,
        #[arg(long)]
        date: NaiveDate,
        /// Where to write the page (default: OUT/reports/RUN_ID.html, named
        /// like the manifest of the run readers see for the date).
        #[arg(long)]
        html: Option<PathBuf>,
        /// The catalog for categories, regions and brand names (default:
        /// the one the run's manifest names).
        #[arg(long)]
        catalog: Option<String>,
    },
    /// Delete output files no reader needs: replaced partitions' files out
    /// of the tables for longer than --retain, and files of killed runs.
    Vacuum {
        #[arg(long, env = "DAJIA_OUT")]
        out: String,
        /// How long a replaced file is kept for readers of older versions
        /// (e.g. 7d, 36h, 90m).
        #[arg(long, default_value = "7d", value_parser = parse_retention)]
        retain: chrono::Duration,
        /// List what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// A Ballista scheduler carrying dajia's functions (cluster mode).
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        #[arg(long, default_value_t = 50050)]
        port: u16,
        /// Host name executors and clients use to reach this scheduler (default: --bind).
        #[arg(long)]
        external_host: Option<String>,
        /// Seconds without a heartbeat before an executor's tasks are run elsewhere.
        #[arg(long, default_value_t = 60)]
        executor_timeout: u64,
        /// Times a task may fail before its job fails.
        #[arg(long, default_value_t = 4)]
        task_max_failures: usize,
    },
    /// A Ballista executor carrying dajia's functions (cluster mode).
    Executor {
        /// The scheduler, df://HOST:PORT.
        #[arg(long, env = "DAJIA_CLUSTER")]
        scheduler: String,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// Host name the scheduler and other executors use to reach this one (default: --bind).
        #[arg(long)]
        external_host: Option<String>,
        /// Arrow Flight port (shuffle data).
        #[arg(long, default_value_t = 50051)]
        port: u16,
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Tasks run at once (default: the host's cores).
        #[arg(long)]
        concurrent_tasks: Option<usize>,
        /// Memory for query execution in bytes, with an optional K/M/G suffix
        /// (default: 70% of the host's memory; set it when executors share a host).
        #[arg(long)]
        memory_pool_size: Option<String>,
        /// Shuffle files and spills.
        #[arg(long, default_value = "/tmp/dajia-executor")]
        work_dir: PathBuf,
        /// Where image functions run on this executor: auto, cpu, cuda.
        #[arg(long, env = "DAJIA_DEVICE", default_value = "cpu")]
        device: String,
        /// Folder of model files (default $DAJIA_MODELS or ./models).
        #[arg(long)]
        models: Option<PathBuf>,
        /// Seconds between heartbeats to the scheduler.
        #[arg(long, default_value_t = 5)]
        heartbeat: u64,
        /// TOML config whose `[images]` limits (max_pixels, max_bytes,
        /// batch_rows, decode_budget_bytes, decode_timeout_ms,
        /// fetch_concurrency) are this executor's ceilings: a plan asking
        /// for more gets these (default: the built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// The session `dajia sql` and `dajia serve` open: the catalog's tables,
/// the output tables, image indexes, files by path, options, and where
/// queries run.
#[derive(clap::Args)]
pub struct SessionArgs {
    #[arg(long, env = "DAJIA_CATALOG")]
    pub catalog: Option<String>,
    #[arg(long, env = "DAJIA_OUT")]
    pub out: Option<String>,
    /// Image indexes written by `dajia kb` for image_top_matches.
    #[arg(long, env = "DAJIA_IMAGE_KB")]
    pub image_kb: Option<String>,
    /// Also allow reading files by path (`SELECT * FROM 'DIR/x.parquet'`)
    /// under DIR; without it, only under --catalog and --out. Repeatable.
    #[arg(long = "read-files-under", value_name = "DIR")]
    pub read_files_under: Vec<String>,
    #[command(flatten)]
    pub options: OptionFlags,
    #[command(flatten)]
    pub cluster: ClusterArg,
}

/// `--cluster df://HOST:PORT`: run the job's queries on a dajia cluster.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClusterArg {
    /// Run on the dajia cluster whose scheduler is at df://HOST:PORT
    /// (default: in this process).
    #[arg(long = "cluster", env = "DAJIA_CLUSTER")]
    pub url: Option<String>,
}

impl ClusterArg {
    pub fn target(&self) -> Result<crate::cluster::Target> {
        Ok(match &self.url {
            None => crate::cluster::Target::Local,
            Some(u) => crate::cluster::Target::Remote(u.parse()?),
        })
    }
}

#[derive(Subcommand)]
pub enum LearnCmd {
    /// Learn variant characters from spam pairs (raw<TAB>normalised); every
    /// fifth pair is held out and the normaliser measured on it before and after.
    Variants {
        #[arg(long, default_value = "jobs/data/spam_variant_pairs_train.tsv")]
        pairs: PathBuf,
        /// Real benign text (TSV with a `title` or `brand` column), repeatable:
        /// a variant occurring there more than --max-benign times is not learned.
        #[arg(
            long,
            default_values = ["jobs/data/product_titles_train.tsv", "kernels/data/brand_gazetteer_zh.tsv"]
        )]
        benign: Vec<PathBuf>,
        /// Write the table here (the scan's is kernels/data/variant_chars.tsv).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 2)]
        min_count: u32,
        #[arg(long, default_value_t = 0.6)]
        min_share: f32,
        #[arg(long, default_value_t = 0)]
        max_benign: u32,
        /// Also write the report here as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Candidate replica terms: over-represented in listings test purchases
    /// found counterfeit against those found genuine, for review.
    Terms {
        #[arg(long, env = "DAJIA_CATALOG")]
        catalog: String,
        #[arg(long)]
        date: Option<NaiveDate>,
        /// Write all candidates here as TSV.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 5)]
        min_count: u64,
        #[arg(long, default_value_t = 2.0)]
        min_log_odds: f64,
        #[arg(long, default_value_t = 30)]
        top: usize,
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum BenchCmd {
    /// OCR character accuracy and lines/s, characters/s on photos with drawn text.
    Ocr {
        /// Folder for the rendered JPEGs and truth.jsonl (a peer reads the same files).
        #[arg(long)]
        out: PathBuf,
        /// Images with text (one text-free photo is added per ten).
        #[arg(long, default_value_t = 300)]
        count: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also write the report here as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Only write the images and truth.jsonl (for a peer or a GPU node).
        #[arg(long)]
        render_only: bool,
        #[command(flatten)]
        options: OptionFlags,
    },
    /// Decode+embed images/s, matching throughput, recall@1 of transformed copies.
    Images {
        /// Folder for the generated JPEGs and truth.csv (a peer reads the same files).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        refs: usize,
        #[arg(long, default_value_t = 700)]
        queries: usize,
        #[arg(long, default_value_t = 2_000)]
        throughput_images: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also write the report here as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        #[command(flatten)]
        options: OptionFlags,
    },
}

/// HOST:PORT, the host a name or an address (the first address it resolves to).
fn parse_socket_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .map_err(|e| format!("`{s}` is not HOST:PORT ({e})"))?
        .next()
        .ok_or_else(|| format!("`{s}` resolves to no address"))
}

fn parse_retention(s: &str) -> Result<chrono::Duration, String> {
    crate::vacuum::parse_retention(s).map_err(|e| format!("{e:#}"))
}
