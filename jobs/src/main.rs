//! The `dajia` binary: options in, one-line errors out. The work is in the
//! library (`dajia::*`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Parser, Subcommand};

use dajia::options::{resolve, OptionFlags};
use dajia::{bench, eval, gen, images, scan, sql};

#[derive(Parser)]
#[command(
    name = "dajia",
    version,
    about = "dajia (打假): nightly counterfeit-risk scan of a marketplace catalog"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
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
    },
    /// The nightly scan: score every listing of a snapshot.
    Scan {
        #[arg(long, env = "DAJIA_CATALOG")]
        catalog: String,
        #[arg(long, env = "DAJIA_OUT")]
        out: String,
        #[arg(long)]
        date: NaiveDate,
        /// Texts longer than this many bytes are rejected rather than scored.
        #[arg(long, default_value_t = 16_384)]
        max_text_bytes: usize,
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
        #[arg(long, env = "DAJIA_CATALOG")]
        catalog: Option<String>,
        #[arg(long, env = "DAJIA_OUT")]
        out: Option<String>,
        /// Run this SQL and exit.
        #[arg(short = 'c', long = "command")]
        command: Option<String>,
        /// Run the statements of this file and exit.
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: sql::Format,
        /// Image indexes written by `dajia kb` for image_top_matches.
        #[arg(long, env = "DAJIA_IMAGE_KB")]
        image_kb: Option<String>,
        #[command(flatten)]
        options: OptionFlags,
        #[command(flatten)]
        cluster: ClusterArg,
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
    },
}

/// `--cluster df://HOST:PORT`: run the job's queries on a dajia cluster.
#[derive(clap::Args, Debug, Clone, Default)]
struct ClusterArg {
    /// Run on the dajia cluster whose scheduler is at df://HOST:PORT
    /// (default: in this process).
    #[arg(long = "cluster", env = "DAJIA_CLUSTER")]
    url: Option<String>,
}

impl ClusterArg {
    fn target(&self) -> Result<dajia::cluster::Target> {
        Ok(match &self.url {
            None => dajia::cluster::Target::Local,
            Some(u) => dajia::cluster::Target::Remote(u.parse()?),
        })
    }
}

#[derive(Subcommand)]
enum LearnCmd {
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
enum BenchCmd {
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

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DAJIA_LOG")
                // Ballista's client logs a failed job's error before
                // returning it; dajia prints it once, as its one line.
                .unwrap_or_else(|_| {
                    "warn,buoyant_kernel=off,deltalake_core=error,ballista_core::execution_plans::distributed_query=off"
                        .into()
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run() {
        // One line: engines can put whole query plans in their errors.
        let msg = format!("{e:#}").replace('\n', " ");
        let msg = if msg.chars().count() > 600 {
            format!("{}…", msg.chars().take(600).collect::<String>())
        } else {
            msg
        };
        eprintln!("dajia: {msg}");
        std::process::exit(1);
    }
}

/// Prints a benchmark report and writes it as JSON when asked.
fn report(r: &(impl std::fmt::Display + serde::Serialize), json: Option<&PathBuf>) -> Result<()> {
    say(format_args!("{r}\n"));
    if let Some(p) = json {
        std::fs::write(p, serde_json::to_string_pretty(r)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// Print to stdout; a closed pipe (`dajia ... | head`) is not an error.
fn say(args: std::fmt::Arguments) {
    use std::io::Write;
    let _ = std::io::stdout().write_fmt(args);
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.cmd {
        Cmd::Schema { table } => {
            let tables = match table {
                Some(t) => vec![dajia_schemas::table(&t)
                    .with_context(|| format!("unknown table `{t}` (try `dajia schema`)"))?],
                None => dajia_schemas::tables(),
            };
            for t in tables {
                println!("{} ({:?}): {}", t.name, t.kind, t.doc);
                for c in &t.columns {
                    let req = if c.required { "required" } else { "optional" };
                    let null = if c.nullable { "nullable" } else { "not null" };
                    println!(
                        "  {:<20} {:<48} {req}, {null}  {}",
                        c.name,
                        c.ty.name(),
                        c.doc
                    );
                }
                println!();
            }
        }
        Cmd::Gen {
            out,
            listings,
            seed,
            date,
            rows_per_file,
            image_share,
        } => {
            let s = gen::generate(&gen::GenOptions {
                out: out.clone(),
                listings,
                seed,
                date,
                rows_per_file,
                image_share,
            })?;
            println!(
                "generated {} listings ({} counterfeit, {} hard negatives, {} images), {} sellers, {} brands in {:.2}s ({:.0} listings/s) under {}; labels in {}",
                s.listings, s.counterfeit, s.hard_negatives, s.images, s.sellers, s.brands, s.seconds, s.listings as f64 / s.seconds.max(1e-9), out.display(),
                gen::labels_path(&out).display()
            );
        }
        Cmd::Scan {
            catalog,
            out,
            date,
            max_text_bytes,
            no_progress,
            image_kb,
            options,
            cluster,
        } => {
            let mut o = scan::ScanOptions::new(&catalog, &out, date);
            o.max_text_bytes = max_text_bytes;
            o.progress = !no_progress;
            o.options = resolve(&options)?;
            o.image_kb = image_kb;
            o.cluster = cluster.target()?;
            let s = rt.block_on(scan::run(&o))?;
            say(format_args!("{s}\n"));
        }
        Cmd::Learn(LearnCmd::Variants {
            pairs,
            benign,
            out,
            min_count,
            min_share,
            max_benign,
            json,
        }) => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&min_share),
                "--min-share must be within [0, 1]"
            );
            let r = dajia::learn::variants::run(&dajia::learn::variants::VariantsOptions {
                pairs,
                benign,
                out,
                learn: dajia_kernels::text::learn::LearnOptions {
                    min_count,
                    min_share,
                    max_benign,
                },
            })?;
            report(&r, json.as_ref())?;
        }
        Cmd::Learn(LearnCmd::Terms {
            catalog,
            date,
            out,
            min_count,
            min_log_odds,
            top,
            json,
        }) => {
            let r = rt.block_on(dajia::learn::terms::run(
                &dajia::learn::terms::TermsOptions {
                    catalog,
                    date,
                    out,
                    min_count,
                    min_log_odds,
                    top,
                },
            ))?;
            report(&r, json.as_ref())?;
        }
        Cmd::Bench(BenchCmd::Ocr {
            out,
            count,
            seed,
            json,
            render_only,
            options,
        }) => {
            let o = resolve(&options)?;
            if render_only {
                let t = bench::ocr::render_set(&out, count, seed, &o.images.models_dir)?;
                say(format_args!(
                    "dajia bench ocr: rendered {} images and truth.jsonl under {}\n",
                    t.len(),
                    out.display()
                ));
                return Ok(());
            }
            let runtime = dajia::images::open_device(o.images.device)?.runtime();
            let r = bench::ocr::run(&bench::ocr::OcrBenchOptions {
                out,
                images: count,
                seed,
                models: o.images.models_dir.clone(),
                ocr: o.ocr.options(runtime),
            })?;
            report(&r, json.as_ref())?;
        }
        Cmd::Bench(BenchCmd::Images {
            out,
            refs,
            queries,
            throughput_images,
            seed,
            json,
            options,
        }) => {
            let r = bench::images::run(&bench::images::BenchOptions {
                out,
                refs,
                queries,
                images: resolve(&options)?.images.0,
                throughput_images,
                seed,
            })?;
            report(&r, json.as_ref())?;
        }
        Cmd::Kb {
            catalog,
            out,
            scores,
            date,
            options,
        } => {
            let o = images::kb_job::KbOptions {
                catalog,
                out,
                scores,
                date,
                images: resolve(&options)?.images.0,
            };
            let s = rt.block_on(images::kb_job::run(&o))?;
            for (id, why) in &s.rejected {
                eprintln!("warning: reference image {id} skipped: {why}");
            }
            say(format_args!(
                "dajia kb ({} embedder): {} official images -> {}; {} known fakes ({} new) -> {}; {} rejected; {:.1}s\n",
                s.embedder, s.official, s.official_path.display(), s.known_fakes, s.known_fakes_added,
                s.known_fakes_path.display(), s.rejected.len(), s.seconds
            ));
        }
        Cmd::Eval {
            scores,
            labels,
            date,
            json,
            cluster,
        } => {
            let target = cluster.target()?;
            let r = rt.block_on(eval::run_on(&target, &scores, &labels, date.as_deref()))?;
            say(format_args!("{r}"));
            if let Some(p) = json {
                eval::write_json(&r, &p)?;
            }
        }
        Cmd::Sql {
            catalog,
            out,
            command,
            file,
            format,
            image_kb,
            options,
            cluster,
        } => {
            let target = cluster.target()?;
            let options = resolve(&options)?;
            rt.block_on(async {
                let ctx = sql::session_with_options(
                    &target,
                    &options,
                    catalog.as_deref(),
                    out.as_deref(),
                    image_kb.as_deref(),
                )
                .await?;
                if let Some(c) = command {
                    sql::run_script(&ctx, &c, format).await
                } else if let Some(f) = file {
                    let script = std::fs::read_to_string(&f)
                        .with_context(|| format!("reading {}", f.display()))?;
                    sql::run_script(&ctx, &script, format).await
                } else {
                    sql::repl(&ctx, format).await
                }
            })?;
        }
        Cmd::Scheduler {
            bind,
            port,
            external_host,
            executor_timeout,
            task_max_failures,
        } => {
            let o = dajia::cluster::node::SchedulerOptions {
                bind,
                port,
                external_host,
                executor_timeout_seconds: executor_timeout,
                task_max_failures,
            };
            o.validate()?;
            rt.block_on(dajia::cluster::node::run_scheduler(&o))?;
        }
        Cmd::Executor {
            scheduler,
            bind,
            external_host,
            port,
            grpc_port,
            concurrent_tasks,
            memory_pool_size,
            work_dir,
            device,
            models,
            heartbeat,
        } => {
            let o = dajia::cluster::node::ExecutorOptions {
                scheduler: scheduler.parse()?,
                bind,
                external_host,
                port,
                grpc_port,
                concurrent_tasks: concurrent_tasks.unwrap_or_else(|| {
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(2)
                }),
                memory_pool_size: memory_pool_size
                    .as_deref()
                    .map(dajia::cluster::node::parse_bytes)
                    .transpose()?,
                work_dir,
                device: device.parse().map_err(anyhow::Error::msg)?,
                models_dir: models.unwrap_or_else(dajia::images::default_models_dir),
                heartbeat_seconds: heartbeat,
            };
            o.validate()?;
            rt.block_on(dajia::cluster::node::run_executor(&o))?;
        }
    }
    Ok(())
}
