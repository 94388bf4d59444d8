//! `dajia scan`: the nightly job. Reads a catalog snapshot, assesses every
//! listing on DataFusion, and publishes `risk_scores` and `rejects` (Delta
//! Lake, partition `dt`) and a run manifest in `runs/`.

mod failpoint;
mod image_stage;
mod image_stage_cluster;
mod manifest;
mod progress;
mod settings;
mod summary;
mod unreadable;
mod written;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;

use crate::catalog::{local_path, register_files, register_files_as, Catalog};
use crate::cluster::write_parts;
use crate::report::ScoreFigures;
use crate::{cluster, delta, kb, session, udf};

pub use image_stage::ImageStageSummary;
pub use manifest::{write_json, Manifest};
pub use progress::Tally;
pub use settings::ScanSettings;
pub use summary::ScanSummary;
use written::Written;

#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub catalog: String,
    pub out: String,
    pub date: NaiveDate,
    pub progress: bool,
    /// Every setting (`dajia.*`): images, OCR, weights, thresholds, the
    /// scan's own (`scan.max_text_bytes`), the cluster's partitions. The
    /// scoring sessions carry them, so the functions see the same values
    /// in this process and on a cluster.
    pub options: crate::options::DajiaOptions,
    /// Image indexes written by `dajia kb`; without it the official index
    /// is built from the catalog's `brand_images` and the known-fake index
    /// from its counterfeit `test_purchases`.
    pub image_kb: Option<String>,
    /// Where the image stage and the scoring run: in this process, or on
    /// a Ballista cluster (`--cluster df://HOST:PORT`). Loading the
    /// knowledge base stays in this process either way.
    pub cluster: crate::cluster::Target,
}

impl ScanOptions {
    pub fn new(catalog: &str, out: &str, date: NaiveDate) -> Self {
        ScanOptions {
            catalog: catalog.into(),
            out: out.into(),
            date,
            progress: false,
            options: Default::default(),
            image_kb: None,
            cluster: Default::default(),
        }
    }
}

/// Run the scan; on failure the manifest records the error and nothing is
/// published: readers keep the last succeeded run's versions of both
/// tables, and any commit this run made is rolled back.
pub async fn run(opts: &ScanOptions) -> Result<ScanSummary> {
    opts.options.validate()?;
    let out = local_path(&opts.out)?;
    let mut manifest = Manifest::start(opts);
    // Before any work: a second scan of this output fails here.
    let lease =
        crate::lease::Lease::acquire(&out, &manifest.run_id, opts.options.scan.lease_seconds)?;
    remove_stale_staging(&out.join("_staging"));
    let runs = out.join("runs");
    manifest.write(&runs).context("writing the run manifest")?;
    // Commits of a run that was killed (or failed) after committing are
    // undone, so the latest versions agree with what readers see.
    let result = match delta::published::roll_back(&out, &manifest.run_id).await {
        // A run that stalled past its lease must not call itself succeeded:
        // another run may have rolled its commits back.
        Ok(_) => run_inner(opts, &out, &mut manifest, &lease)
            .await
            .and_then(|r| lease.check().map(|_| r)),
        Err(e) => Err(e.context("rolling back an unfinished run's commits")),
    };
    if result.is_err() {
        // Staged files of a failed run (salvaged rows, image hits) are
        // never read; remove them rather than let them pile up.
        let _ = std::fs::remove_dir_all(out.join("_staging").join(&manifest.run_id));
        let _ = std::fs::remove_dir(out.join("_staging"));
        // Any commit this run made (a check after a commit may have failed)
        // is undone now, unless another run took the output meanwhile.
        if lease.check().is_ok() {
            if let Err(e) = delta::published::roll_back(&out, &manifest.run_id).await {
                tracing::warn!("rolling back this run's commits: {e:#} (the next scan will)");
            }
        }
    }
    match &result {
        Ok((s, _)) => manifest.finish_ok(s),
        Err(e) => manifest.finish_err(e),
    }
    manifest.write(&runs).context("writing the run manifest")?;
    drop(lease);
    let (mut summary, scores) = result?;
    // The night's report, from what readers now see (the scores' figures as
    // counted while they were written). The run has published: a report
    // that cannot be written is a warning, not a failed run.
    let report = crate::report::ReportOptions {
        out: out.display().to_string(),
        date: opts.date,
        html: Some(crate::report::default_path(
            &out,
            &summary.date,
            Some(&manifest.run_id),
        )),
        catalog: Some(opts.catalog.clone()),
        scores,
    };
    match crate::report::run(report).await {
        Ok(r) => summary.report = Some(r.path),
        Err(e) => tracing::warn!("writing the night's report: {e:#} (run `dajia report`)"),
    }
    Ok(summary)
}

/// A run's staged files older than this belong to a run that was killed
/// (runs remove their own at the end, failed or not); no run lasts this long.
const STALE_STAGING: std::time::Duration = std::time::Duration::from_secs(48 * 3600);

/// Remove what killed runs left in `_staging/` (never read by anyone).
/// Folders of runs that may still be going (younger than [`STALE_STAGING`])
/// are left alone.
fn remove_stale_staging(staging: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(staging) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_STAGING);
        if old {
            tracing::info!("removing {} (left by a killed run)", e.path().display());
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

async fn run_inner(
    opts: &ScanOptions,
    out: &std::path::Path,
    manifest: &mut Manifest,
    lease: &crate::lease::Lease,
) -> Result<(ScanSummary, Option<ScoreFigures>)> {
    let started = Instant::now();
    let dt = opts.date.to_string();
    // The text kernels' dictionaries load while the catalog is read.
    std::thread::spawn(dajia_kernels::text::homophones::warm_up);

    let t = Instant::now();
    let mut catalog = Catalog::open_any(&opts.catalog, Some(opts.date)).await?;
    catalog.require(&["listings", "sellers", "brands"])?;
    let ctx = session::new_session(&opts.options, None);
    catalog.register(&ctx).await?;
    let mut rejects: Vec<unreadable::RejectRow> = Vec::new();
    // Salvaged rows and image hits live here until the run is published.
    let staging = out.join("_staging").join(&manifest.run_id);
    unreadable::salvage_tables(&ctx, &mut catalog, &staging, &mut rejects).await?;
    let kb = Arc::new(kb::load(&ctx).await?);
    let counter = progress::Counter::default();
    udf::register_all(&ctx, Some(kb.clone()));
    ctx.register_udf(progress::counting_assess(kb.clone(), counter.clone()));
    // The session that scores: this one, or a cluster client with the same
    // tables (file-backed, so executors read them) and functions. Connected
    // before the image stage, so that a wrong address fails at once.
    let remote = if opts.cluster.is_cluster() {
        let c = cluster::session(&opts.cluster, &opts.options, Some(kb.clone())).await?;
        catalog.register(&c).await?;
        Some(c)
    } else {
        None
    };
    manifest.stage("load", t.elapsed());
    let t = Instant::now();
    // Seller networks (`dajia link`'s computation, on the session that
    // scores): each seller's chain of links to a seller closed for
    // counterfeiting becomes `seller_links`.
    // The valid listings are counted meanwhile (linking is mostly small
    // queries one after another, leaving the cores idle): publishing checks
    // the rows it wrote against this count. A failed count here is no
    // error yet: publishing counts again, under the salvage of unreadable
    // files.
    let scoring = remote.as_ref().unwrap_or(&ctx);
    let (linked, valid) = tokio::join!(
        crate::link::register_seller_links(scoring, &opts.options, &staging, remote.is_some()),
        caught(count_valid(scoring, opts)),
    );
    let linked = linked.context("linking sellers")?;
    let mut valid = valid.ok();
    manifest.hot_identity_values = linked.hot_values.clone();
    manifest.links = Some(linked);
    manifest.stage("link_sellers", t.elapsed());
    manifest.inputs(&catalog);
    failpoint::reached("catalog");

    let t = Instant::now();
    let image_summary = if catalog.table("images").is_none() {
        tracing::info!("catalog has no images table: scanning without image signals");
        None
    } else {
        let mut ikb = match &opts.image_kb {
            Some(dir) => crate::images::ImageRefs::load(&local_path(dir)?, &opts.options.images)?,
            None => crate::images::ImageRefs::empty(&opts.options.images)?,
        };
        if opts.image_kb.is_none() {
            for (kind, id, e) in ikb.add_from_catalog(&ctx).await? {
                // Unreadable known fakes are listing images: the image
                // stage rejects them once, below.
                if kind == dajia_kernels::risk::ImageMatchKind::Official {
                    rejects.push([
                        Some("brand_images".into()),
                        None,
                        Some(id),
                        Some(e.to_string()),
                    ]);
                }
            }
        }
        manifest.device = ikb.device.describe();
        // OCR runs on the same device as the embedder; on a cluster on the
        // executors', so the client only decides whether text is read.
        let models = &opts.options.images.models_dir;
        let (ocr, ocr_status, reads_text) = if remote.is_some() {
            match opts.options.ocr.off_reason(models)? {
                Some(why) => (None, why, false),
                None => (None, "PP-OCRv5 mobile on the executors".into(), true),
            }
        } else {
            let (ocr, status) = opts.options.ocr.load(models, ikb.device.runtime())?;
            let on = ocr.is_some();
            (ocr, status, on)
        };
        if ikb.refs.official.is_empty() && ikb.refs.fakes.is_empty() && !reads_text {
            tracing::warn!(
                "no reference images (brand_images, known fakes) and OCR {ocr_status}: scanning without image signals"
            );
            None
        } else {
            // Relative image URIs resolve against the catalog (a folder or an s3:// prefix).
            let root = crate::images::fetch::catalog_root(&opts.catalog)?;
            let out = match &remote {
                // The executors do the image work; `image_hits` is
                // registered on the cluster session.
                Some(c) => {
                    image_stage_cluster::run(c, ikb, &ocr_status, reads_text, root, &staging)
                        .await?
                }
                None => {
                    image_stage::run(
                        &ctx,
                        &ikb,
                        ocr.as_deref(),
                        &ocr_status,
                        opts.options.images.batch_rows,
                        Path::new(&root),
                        &staging,
                    )
                    .await?
                }
            };
            Some(out.summary)
        }
    };
    manifest.stage("images", t.elapsed());
    failpoint::reached("images");
    for t in &catalog.tables {
        for (file, reason) in &t.corrupt {
            rejects.push([
                Some(t.name.clone()),
                Some(file.display().to_string()),
                None,
                Some(reason.clone()),
            ]);
        }
    }

    let run_id = manifest.run_id.clone();
    let scorer = Scorer {
        ctx: remote.as_ref().unwrap_or(&ctx),
        remote: remote.is_some(),
        staging: &staging,
        run_id: &run_id,
    };

    // Score and publish. A file that fails mid-read (e.g. bytes that are not
    // UTF-8 in a string column) fails the write, which commits nothing; the
    // scan then finds such files, rejects them whole and tries once more.
    let t = Instant::now();
    let listings = catalog.table("listings").expect("required above");
    let total_rows = listings.rows;
    // A cluster's executors cannot report to this process's counter.
    let bar = progress::Bar::start(opts.progress && !scorer.remote, total_rows, counter.clone());
    let risk_dir = delta::output_dir(out, "risk_scores");
    let mut files = listings.files.clone();
    lease.check()?;
    // Every listings row valid (the count equals the files' rows): the
    // rejects query has no listings row to find, and need not read them.
    let mut all_valid = valid == Some(total_rows);
    let ScoresPublished {
        version,
        cluster_tally,
        figures,
    } = match caught(publish_scores(&scorer, opts, &risk_dir, &dt, valid.take())).await {
        Ok(v) => v,
        Err(first) => {
            all_valid = false;
            let bad = crate::salvage::find_unreadable(&ctx, &files, false).await?;
            if bad.is_empty() {
                bar.abandon();
                return Err(first);
            }
            tracing::warn!(
                "{} listings file(s) unreadable: salvaging their readable rows, then retrying",
                bad.len()
            );
            files =
                unreadable::salvage_files(&ctx, "listings", &files, &bad, &staging, &mut rejects)
                    .await?;
            scorer.ctx.deregister_table("listings")?;
            register_files_as(scorer.ctx, "listings", &files, listings.schema.clone()).await?;
            counter.reset();
            publish_scores(&scorer, opts, &risk_dir, &dt, None).await?
        }
    };
    bar.finish();
    manifest.stage("score_and_publish", t.elapsed());
    manifest.committed("risk_scores", version);
    manifest.write(&out.join("runs"))?;
    failpoint::reached("between_commits");

    let t = Instant::now();
    let rejects_dir = delta::output_dir(out, "rejects");
    lease.check()?;
    let (n_rejects, rejects_version) =
        publish_rejects(&scorer, opts, &rejects_dir, &dt, rejects, all_valid).await?;
    manifest.stage("rejects", t.elapsed());
    manifest.committed("rejects", rejects_version);
    manifest.write(&out.join("runs"))?;
    failpoint::reached("after_commits");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
        let _ = std::fs::remove_dir(out.join("_staging")); // only when empty
    }

    let t = Instant::now();
    let tally = cluster_tally.unwrap_or_else(|| counter.tally());
    let mut summary = ScanSummary::from_tally(&dt, &tally);
    summary.rejects = n_rejects;
    summary.table_version = version;
    summary.images = image_summary;
    summary.links = manifest.links.clone();
    summary.seconds = started.elapsed().as_secs_f64();
    summary.rows_per_second = summary.scored as f64 / summary.seconds.max(1e-9);
    manifest.stage("summary", t.elapsed());
    Ok((summary, figures))
}

async fn has_col(ctx: &SessionContext, table: &str, c: &str) -> bool {
    ctx.table(table)
        .await
        .map(|t| t.schema().field_with_unqualified_name(c).is_ok())
        .unwrap_or(false)
}

/// The condition a listings row must meet to be scored.
fn valid_row(max: usize, has_desc: bool) -> String {
    let desc = if has_desc {
        format!(" AND (l.description IS NULL OR octet_length(l.description) <= {max})")
    } else {
        String::new()
    };
    format!("l.listing_id IS NOT NULL AND l.seller_id IS NOT NULL AND l.title IS NOT NULL AND octet_length(l.title) <= {max}{desc}")
}

/// The session that scores, and whether it is a cluster's.
struct Scorer<'a> {
    ctx: &'a SessionContext,
    remote: bool,
    /// The run's staging folder (on the output's store, seen by every node).
    staging: &'a std::path::Path,
    /// Written in every row and named in every commit.
    run_id: &'a str,
}

/// How many rows of `listings` are valid (scored).
async fn count_valid(ctx: &SessionContext, opts: &ScanOptions) -> Result<u64> {
    let has_desc = has_col(ctx, "listings", "description").await;
    count(
        ctx,
        &format!(
            "SELECT count(*) FROM listings l WHERE {}",
            valid_row(opts.options.scan.max_text_bytes, has_desc)
        ),
    )
    .await
}

/// What publishing the scores made.
struct ScoresPublished {
    version: i64,
    /// On a cluster, the tally of what was published (locally the counting
    /// function tallies as rows stream).
    cluster_tally: Option<progress::Tally>,
    /// In one process, the report's figures of the rows written.
    figures: Option<ScoreFigures>,
}

/// Score every valid listing and publish partition `dt` of `risk_scores`;
/// `valid` is how many there are when already counted.
async fn publish_scores(
    scorer: &Scorer<'_>,
    opts: &ScanOptions,
    dir: &std::path::Path,
    dt: &str,
    valid: Option<u64>,
) -> Result<ScoresPublished> {
    let ctx = scorer.ctx;
    // The counting variant reports to this process; executors get the
    // plain function (its knowledge base travels in the plan).
    let assess = if scorer.remote {
        "assess_listing"
    } else {
        "dajia_assess_counted"
    };
    let has_desc = has_col(ctx, "listings", "description").await;
    let has_brand = has_col(ctx, "listings", "brand").await;
    let has_hits = ctx.table_exist("image_hits")?;
    // The rules that score: the default version, or one naming a hash of
    // the effective weights and thresholds (also in the manifest).
    let model_version = opts.options.model_version();
    // `unnest(a)` splits the assessment struct into columns in one Unnest
    // node. Selecting `a['score']`, `a['action']`, ... instead would let
    // DataFusion 55's optimize_projections inline the UDF call into every
    // field access (get_field counts as cheap), assessing each listing four
    // times.
    let sql = format!(
        "SELECT listing_id, seller_id, \"a.score\" AS score, \"a.action\" AS action, \"a.reasons\" AS reasons, \
                \"a.brand_id\" AS brand_id, '{model_version}' AS model_version, '{run_id}' AS run_id, '{dt}' AS dt \
         FROM (SELECT listing_id, seller_id, unnest(a) FROM \
               (SELECT CAST(l.listing_id AS BIGINT) AS listing_id, CAST(l.seller_id AS BIGINT) AS seller_id, \
                       {assess}(l.title, {desc}, {brand}, l.category, l.price_cents, l.seller_id, sl.link_attrs, sl.link_sellers, {hits}, {ocr}, sl.link_closed_on) AS a \
                FROM listings l LEFT JOIN seller_links sl ON l.seller_id = sl.seller_id{hits_join} \
                WHERE {valid}))",
        hits = if has_hits { "ih.hits" } else { "NULL" },
        ocr = if has_hits { "ih.ocr" } else { "NULL" },
        hits_join = if has_hits { " LEFT JOIN image_hits ih ON l.listing_id = ih.listing_id" } else { "" },
        desc = if has_desc { "l.description" } else { "NULL" },
        brand = if has_brand { "l.brand" } else { "NULL" },
        valid = valid_row(opts.options.scan.max_text_bytes, has_desc),
        run_id = scorer.run_id,
    );
    // Exactly the valid listings are published, each once.
    let valid = match valid {
        Some(n) => n,
        None => count_valid(ctx, opts).await?,
    };
    let mut df = ctx.sql(&sql).await?;
    // In one process the rows are counted as they are written (a
    // cluster's executors write them out of reach): each listing once, and
    // the report's figures.
    let written = (!scorer.remote).then(Written::default);
    if let Some(w) = &written {
        df = write_parts::observe_writes(df, w.observer());
    }
    // Written part by part where the rows are computed (the cluster's tasks,
    // or this process's partitions), then checked before the one commit
    // that publishes them: exactly the valid listings, each once (a retried
    // task that wrote twice, a join that multiplied rows), else nothing is
    // published.
    let expect = delta::publish::Expect {
        rows: Some(valid),
        // In one process, by the ids seen written.
        unique: written.is_none().then_some("listing_id"),
        counted: written.as_ref().map(Written::check_each_once),
    };
    let writers = if scorer.remote {
        delta::publish::Writers::Cluster
    } else {
        delta::publish::Writers::Here
    };
    let p = delta::publish::replace_partition(
        df,
        dir,
        &scorer.staging.join("risk_scores"),
        dt,
        scorer.run_id,
        expect,
        writers,
    )
    .await?;
    let figures = written.map(|w| w.figures()).transpose()?;
    Ok(ScoresPublished {
        version: p.version,
        cluster_tally: p.tally,
        figures,
    })
}

/// Rows of partition `dt` in the latest version of the table at `dir`.
async fn partition_rows(dir: &Path, dt: &str) -> Result<u64> {
    let table = delta::open(dir).await?;
    let ctx = SessionContext::new();
    ctx.register_table("written", table.table_provider().await?)?;
    let c = session::counts(
        &ctx,
        &format!("SELECT count(*) FROM written WHERE dt = '{dt}'"),
    )
    .await?;
    Ok(c[0])
}

/// `f`'s result, with a panic while it runs (a Parquet decoder bug met by
/// a damaged catalog file: fuzzing found one, `fuzz/findings/`) turned into
/// an error, so that the scan looks for unreadable files and salvages them
/// instead of dying.
async fn caught<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(f)
        .catch_unwind()
        .await
        .unwrap_or_else(|p| {
            anyhow::bail!(
                "reading the catalog panicked: {}",
                crate::catalog::panic_message(&p)
            )
        })
}

/// The single integer a `SELECT count(...)` returns.
async fn count(ctx: &SessionContext, sql: &str) -> Result<u64> {
    Ok(session::counts(ctx, sql).await?[0])
}

/// Publish partition `dt` of `rejects`: invalid listings rows (a query,
/// which reads no listings when `all_valid`), unreadable images (on a
/// cluster, a query over the image stage's results) and `extra` (files,
/// reference images, salvaged rows). Returns how many rows, and the table
/// version.
async fn publish_rejects(
    scorer: &Scorer<'_>,
    opts: &ScanOptions,
    dir: &std::path::Path,
    dt: &str,
    extra: Vec<[Option<String>; 4]>,
    all_valid: bool,
) -> Result<(usize, i64)> {
    let run_id = scorer.run_id;
    let ctx = scorer.ctx;
    let has_desc = has_col(ctx, "listings", "description").await;
    let max = opts.options.scan.max_text_bytes;
    let desc_reason = if has_desc {
        format!("WHEN octet_length(l.description) > {max} THEN concat('description is ', octet_length(l.description), ' bytes, over max_text_bytes=', {max})")
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT 'listings' AS table_name, CAST(NULL AS VARCHAR) AS file, CAST(l.listing_id AS VARCHAR) AS row_key, \
           CASE WHEN l.listing_id IS NULL THEN 'listing_id is null' \
                WHEN l.seller_id IS NULL THEN 'seller_id is null' \
                WHEN l.title IS NULL THEN 'title is null' \
                WHEN octet_length(l.title) > {max} THEN concat('title is ', octet_length(l.title), ' bytes, over max_text_bytes=', {max}) \
                {desc_reason} ELSE 'invalid row' END AS reason, '{run_id}' AS run_id, '{dt}' AS dt \
         FROM listings l WHERE {invalid}",
        // `false` plans no scan at all (an empty relation of the same columns).
        invalid = if all_valid {
            "false".to_string()
        } else {
            format!("NOT ({})", valid_row(max, has_desc))
        }
    );
    // Names and types from the contract (`schemas/`); every column but `dt`
    // written nullable, as since the first release, so that tables written
    // by earlier versions still accept the partition.
    let contract = dajia_schemas::table("rejects").expect("rejects is in the contract");
    let schema = Arc::new(Schema::new(
        contract
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(f.name() != "dt"))
            .collect::<Vec<Field>>(),
    ));
    let col = |i: usize| -> ArrayRef {
        Arc::new(StringArray::from(
            extra.iter().map(|r| r[i].clone()).collect::<Vec<_>>(),
        ))
    };
    // Unreadable images, from the image stage's staged results (in
    // process and on a cluster).
    let images = if ctx.table_exist("image_results")? {
        format!(" UNION ALL SELECT 'images', CAST(NULL AS VARCHAR), image_id, reject, '{run_id}', '{dt}' FROM image_results WHERE reject IS NOT NULL")
    } else {
        String::new()
    };
    let extra_batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            col(0),
            col(1),
            col(2),
            col(3),
            Arc::new(StringArray::from(vec![run_id; extra.len()])),
            Arc::new(StringArray::from(vec![dt; extra.len()])),
        ],
    )?;
    if scorer.remote {
        // Every row is written by the executors; the few the client holds
        // travel as a staged file (a cluster reads files, not memory), which
        // also gives the union the contract's nullable columns.
        let extra_file = scorer.staging.join("rejects_extra.parquet");
        crate::gen::write_parquet(&extra_file, &extra_batch)?;
        register_files(ctx, "rejects_extra", &[extra_file]).await?;
        let all = format!(
            "{sql} UNION ALL SELECT table_name, file, row_key, reason, run_id, dt FROM rejects_extra{images}"
        );
        let p = delta::publish::replace_partition(
            ctx.sql(&all).await?,
            dir,
            &scorer.staging.join("rejects"),
            dt,
            run_id,
            Default::default(),
            delta::publish::Writers::Cluster,
        )
        .await?;
        return Ok((p.rows as usize, p.version));
    }
    // Streamed to the writer, never collected: a night with millions of
    // bad rows needs no more memory than one with none. The few rows held
    // here join as a small in-memory table.
    ctx.register_table(
        "rejects_extra",
        Arc::new(MemTable::try_new(schema.clone(), vec![vec![extra_batch]])?),
    )?;
    // The table stores Utf8 (SQL strings may be Utf8View).
    let utf8 = |c: &str| format!("arrow_cast({c}, 'Utf8') AS {c}");
    let cols: Vec<String> = schema.fields().iter().map(|f| utf8(f.name())).collect();
    let all = format!(
        "SELECT {} FROM ({sql} UNION ALL SELECT * FROM rejects_extra{images})",
        cols.join(", ")
    );
    let plan = ctx.sql(&all).await?.into_optimized_plan();
    ctx.deregister_table("rejects_extra")?;
    let version = delta::replace_partition(dir, plan?, dt, run_id, Some(ctx)).await?;
    let rows = partition_rows(dir, dt).await?;
    Ok((rows as usize, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_while_reading_becomes_an_error() {
        let boom = async {
            if true {
                panic!("attempt to divide by zero");
            }
            Ok(())
        };
        let e = caught::<()>(boom).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "reading the catalog panicked: attempt to divide by zero"
        );
        assert_eq!(caught(async { Ok(7) }).await.unwrap(), 7);
    }
}
