//! The jobs behind the commands: each command's arguments resolved into its
//! options (`crate::options::resolve` for the `dajia.*` ones), the job run,
//! its report printed.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::args::{BenchCmd, Cli, Cmd, LearnCmd};
use crate::options::{resolve, resolve_with};
use crate::{bench, eval, gen, images, scan, sql};

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

/// The commands' runtime. A default tokio runtime, dropped, waits for every
/// blocking task to end; after a job fails mid-stage (a cluster executor
/// lost during the image stage, say) a blocking task can be left waiting
/// for input that will never come, and the process hung there instead of
/// exiting with its error (seen once on a cluster test). Dropped, this one
/// waits at most [`SHUTDOWN_GRACE`], then lets the process exit.
struct Runtime(Option<tokio::runtime::Runtime>);

const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

impl std::ops::Deref for Runtime {
    type Target = tokio::runtime::Runtime;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("present until dropped")
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_timeout(SHUTDOWN_GRACE);
        }
    }
}

/// Run the command `cli` names.
pub fn run(cli: Cli) -> Result<()> {
    let rt = Runtime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
    ));
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
            sellers,
            answer_plan,
        } => {
            if let Some(plan) = answer_plan {
                let b = rt.block_on(gen::buyer::answer(&out, &plan, date, seed))?;
                say(format_args!("{b}\n"));
                return Ok(());
            }
            let s = gen::generate(&gen::GenOptions {
                out: out.clone(),
                listings,
                seed,
                date,
                rows_per_file,
                image_share,
                sellers,
            })?;
            println!(
                "generated {} listings ({} counterfeit, {} hard negatives, {} images), {} sellers, {} brands, {} orders in {:.2}s ({:.0} listings/s) under {}; labels in {}",
                s.listings, s.counterfeit, s.hard_negatives, s.images, s.sellers, s.brands, s.orders, s.seconds, s.listings as f64 / s.seconds.max(1e-9), out.display(),
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
            o.progress = !no_progress;
            o.options = resolve_with(
                &options,
                max_text_bytes
                    .map(|v| ("scan.max_text_bytes", v.to_string()))
                    .into_iter()
                    .collect(),
            )?;
            o.image_kb = image_kb;
            o.cluster = cluster.target()?;
            let s = rt.block_on(scan::run(&o))?;
            say(format_args!("{s}\n"));
        }
        Cmd::Link {
            catalog,
            out,
            date,
            max_sellers_per_value,
            options,
            cluster,
        } => {
            let o = crate::link::LinkOptions {
                catalog,
                out,
                date,
                options: resolve_with(
                    &options,
                    max_sellers_per_value
                        .map(|v| ("scan.max_sellers_per_identity", v.to_string()))
                        .into_iter()
                        .collect(),
                )?,
                cluster: cluster.target()?,
            };
            let r = rt.block_on(crate::link::run(&o))?;
            say(format_args!("{r}\n"));
        }
        Cmd::Train {
            catalog,
            out,
            date,
            window_days,
            holdout_share,
            l2,
            min_labels,
            min_per_class,
            model_out,
        } => {
            let mut o = crate::train::TrainOptions::new(&catalog, &out, date);
            o.window_days = window_days;
            o.holdout_share = holdout_share;
            o.l2 = l2;
            o.min_labels = min_labels;
            o.min_per_class = min_per_class;
            o.model_out = model_out;
            let r = rt.block_on(crate::train::run(&o))?;
            say(format_args!("{r}\n"));
        }
        Cmd::Sample {
            catalog,
            out,
            date,
            budget,
            random_share,
            explore_share,
            max_per_seller,
            max_per_brand,
            cooldown_days,
            confidence,
            seed,
        } => {
            let mut o = crate::sample::SampleOptions::new(&catalog, &out, date, budget);
            o.random_share = random_share;
            o.explore_share = explore_share;
            o.max_per_seller = max_per_seller;
            o.max_per_brand = max_per_brand;
            o.cooldown_days = cooldown_days;
            o.confidence = confidence;
            o.seed = seed;
            let r = rt.block_on(crate::sample::run(&o))?;
            say(format_args!("{r}\n"));
        }
        Cmd::Leads {
            catalog,
            out,
            date,
            threshold,
            window_days,
            export,
            cluster,
        } => {
            anyhow::ensure!(
                threshold.is_finite() && threshold > 0.0,
                "--threshold must be a positive amount in CNY"
            );
            let mut o = crate::leads::LeadsOptions::new(&catalog, &out, date);
            o.threshold_cents = (threshold * 100.0).round() as i64;
            o.window_days = window_days;
            o.export = export;
            o.cluster = cluster.target()?;
            let r = rt.block_on(crate::leads::run(&o))?;
            say(format_args!("{r}\n"));
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
            let r = crate::learn::variants::run(&crate::learn::variants::VariantsOptions {
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
            let r = rt.block_on(crate::learn::terms::run(
                &crate::learn::terms::TermsOptions {
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
            let runtime = crate::images::open_device(o.images.device)?.runtime();
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
            session,
            command,
            file,
            format,
            allow_writes,
        } => {
            rt.block_on(async {
                let (ctx, _) = open_session(&session).await?;
                if allow_writes {
                    sql::allow_writes(&ctx);
                }
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
        Cmd::Serve {
            flight_sql,
            session,
            token_file,
            tls_cert,
            tls_key,
            allow_plaintext,
            max_rows,
            max_result_bytes,
            query_timeout,
            max_concurrent_queries,
        } => {
            use crate::serve::{Limits, ServeOptions, TlsFiles, Token};
            let limits = Limits {
                max_rows,
                max_bytes: max_result_bytes,
                timeout: std::time::Duration::from_secs(query_timeout),
                max_concurrent: max_concurrent_queries,
            };
            let tls = tls_cert
                .zip(tls_key)
                .map(|(cert, key)| TlsFiles { cert, key });
            let serve = ServeOptions::new(flight_sql, tls, allow_plaintext, limits)?;
            let token = Token::load(token_file.as_deref(), "DAJIA_FLIGHT_TOKEN")?;
            rt.block_on(async {
                let (ctx, target) = open_session(&session).await?;
                let scheme = if serve.tls.is_some() {
                    "grpc+tls"
                } else {
                    "grpc"
                };
                let on = |addr| {
                    say(format_args!(
                        "dajia: Arrow Flight SQL on {scheme}://{addr} ({}); Ctrl-C stops\n",
                        if target.is_cluster() {
                            "queries run on the cluster"
                        } else {
                            "queries run in this process"
                        }
                    ));
                    use std::io::Write;
                    let _ = std::io::stdout().flush();
                };
                crate::serve::serve(ctx, &serve, &token, on, shutdown_signal()).await
            })?;
        }
        Cmd::Report {
            out,
            date,
            html,
            catalog,
        } => {
            let o = crate::report::ReportOptions {
                out,
                date,
                html,
                catalog,
                scores: None,
            };
            let r = rt.block_on(crate::report::run(o))?;
            say(format_args!("{r}"));
        }
        Cmd::Vacuum {
            out,
            retain,
            dry_run,
        } => {
            let dir = crate::catalog::local_path(&out)?;
            for v in rt.block_on(crate::vacuum::run(&dir, retain, dry_run))? {
                let verb = if dry_run { "would delete" } else { "deleted" };
                say(format_args!("{}: {verb} {} files", v.table, v.files.len()));
            }
        }
        Cmd::Scheduler {
            bind,
            port,
            external_host,
            executor_timeout,
            task_max_failures,
        } => {
            let o = crate::cluster::node::SchedulerOptions {
                bind,
                port,
                external_host,
                executor_timeout_seconds: executor_timeout,
                task_max_failures,
            };
            o.validate()?;
            rt.block_on(crate::cluster::node::run_scheduler(&o))?;
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
            config,
        } => {
            let mut limits = crate::options::DajiaOptions::default();
            if let Some(path) = &config {
                crate::options::resolve::apply_file(&mut limits, path)?;
                limits.validate()?;
            }
            let o = crate::cluster::node::ExecutorOptions {
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
                    .map(crate::cluster::node::parse_bytes)
                    .transpose()?,
                work_dir,
                device: device.parse().map_err(anyhow::Error::msg)?,
                models_dir: models.unwrap_or_else(crate::images::default_models_dir),
                heartbeat_seconds: heartbeat,
                image_ceilings: limits.images.0,
            };
            o.validate()?;
            rt.block_on(crate::cluster::node::run_executor(&o))?;
        }
    }
    Ok(())
}

/// Resolves at Ctrl-C or SIGTERM (a service manager's stop).
async fn shutdown_signal() {
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// The session of `dajia sql` and `dajia serve`, and where its queries run.
async fn open_session(
    s: &super::args::SessionArgs,
) -> Result<(datafusion::prelude::SessionContext, crate::cluster::Target)> {
    let target = s.cluster.target()?;
    let options = resolve(&s.options)?;
    let ctx = sql::session_with_options(
        &target,
        &options,
        s.catalog.as_deref(),
        s.out.as_deref(),
        s.image_kb.as_deref(),
        &s.read_files_under,
    )
    .await?;
    Ok((ctx, target))
}
