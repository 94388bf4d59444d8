//! The `dajia` binary: options in, one-line errors out. The work is in the
//! library (`dajia::*`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Parser, Subcommand};

use dajia::{eval, gen, scan, sql};

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
        /// TOML file with [weights] and [thresholds] overriding the defaults.
        #[arg(long, env = "DAJIA_CONFIG")]
        config: Option<PathBuf>,
        /// Do not draw a progress bar.
        #[arg(long)]
        no_progress: bool,
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
    },
}

#[derive(serde::Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    weights: dajia_kernels::risk::Weights,
    #[serde(default)]
    thresholds: dajia_kernels::risk::Thresholds,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DAJIA_LOG")
                .unwrap_or_else(|_| "warn,buoyant_kernel=off,deltalake_core=error".into()),
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
            config,
            no_progress,
        } => {
            let mut o = scan::ScanOptions::new(&catalog, &out, date);
            o.max_text_bytes = max_text_bytes;
            o.progress = !no_progress;
            if let Some(p) = config {
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("reading config {}", p.display()))?;
                let c: ConfigFile = toml::from_str(&text)
                    .with_context(|| format!("parsing config {}", p.display()))?;
                o.weights = c.weights;
                o.thresholds = c.thresholds;
            }
            anyhow::ensure!(
                o.thresholds.review <= o.thresholds.takedown,
                "thresholds.review must not exceed thresholds.takedown"
            );
            let s = rt.block_on(scan::run(&o))?;
            say(format_args!("{s}\n"));
        }
        Cmd::Eval {
            scores,
            labels,
            date,
            json,
        } => {
            let r = rt.block_on(eval::run(&scores, &labels, date.as_deref()))?;
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
        } => {
            rt.block_on(async {
                let ctx = sql::session_for(catalog.as_deref(), out.as_deref()).await?;
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
    }
    Ok(())
}
