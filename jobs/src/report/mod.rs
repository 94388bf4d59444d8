//! `dajia report`: one night's results as one self-contained HTML page
//! (inline SVG charts, inline styles, no network), also written by every
//! scan that succeeds (`OUT/reports/RUN_ID.html`, named like its manifest).
//!
//! - [`figures`]: the numbers, by SQL over the published output tables, the
//!   catalog and the run's manifest, except those over every scored row,
//!   read once by `score_pass`;
//! - [`charts`]: the SVG charts (plotters);
//! - `page.html`: the page (a minijinja template, escaped by default).

pub mod charts;
pub mod figures;
mod score_pass;

pub use score_pass::{ScoreFigures, ScoreTally};

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::catalog::local_path;
use crate::catalog::Catalog;
use crate::delta;

const PAGE: &str = include_str!("page.html");

#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub out: String,
    pub date: chrono::NaiveDate,
    /// Where to write the page; default next to the run's manifest.
    pub html: Option<PathBuf>,
    /// The catalog to read categories, regions and brand names from;
    /// default the one the run's manifest names.
    pub catalog: Option<String>,
    /// The figures of the date's scores, when the caller counted them as it
    /// wrote them (the scan); else they are read from `risk_scores`.
    pub scores: Option<ScoreFigures>,
}

#[derive(Debug, Serialize)]
pub struct ReportSummary {
    pub path: PathBuf,
    pub date: String,
    pub run_id: Option<String>,
    pub listings: u64,
    pub bytes: usize,
    pub seconds: f64,
    pub left_out: Vec<String>,
}

impl std::fmt::Display for ReportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "report of {} ({} listings, run {}) written to {} ({} bytes) in {:.2} s",
            self.date,
            self.listings,
            self.run_id.as_deref().unwrap_or("unknown"),
            self.path.display(),
            self.bytes,
            self.seconds
        )?;
        for n in &self.left_out {
            writeln!(f, "left out: {n}")?;
        }
        Ok(())
    }
}

pub async fn run(o: ReportOptions) -> Result<ReportSummary> {
    let started = Instant::now();
    let out = local_path(&o.out)?;
    let date = o.date.to_string();
    if !out.join("risk_scores").join("_delta_log").is_dir() {
        bail!(
            "{} has no risk_scores table: run `dajia scan --out {}` first",
            out.display(),
            out.display()
        );
    }
    let manifest = figures::published_manifest(&out, &date);
    let ctx = crate::session::new_session(&Default::default(), None);
    let mut registered = Vec::new();
    for t in delta::output_tables() {
        if delta::register(&ctx, t, &out.join(t)).await? {
            registered.push(t);
        }
    }
    if !registered.contains(&"risk_scores") {
        bail!(
            "{}: no published risk_scores (no scan of this output has succeeded)",
            out.display()
        );
    }
    let catalog = o.catalog.clone().or_else(|| {
        manifest
            .as_ref()
            .and_then(|m| m["catalog"].as_str().map(String::from))
    });
    let mut catalog_note = None;
    let with_catalog = match &catalog {
        Some(c) => match open_catalog(&ctx, c, o.date).await {
            Ok(()) => true,
            Err(e) => {
                catalog_note = Some(format!("catalog {c}: {e:#}"));
                false
            }
        },
        None => false,
    };
    let mut f = figures::gather(&ctx, &date, with_catalog, manifest, o.scores, |t| {
        registered.contains(&t)
    })
    .await?;
    if f.listings == 0 {
        let dates = figures::rows(
            &ctx,
            "SELECT DISTINCT dt FROM risk_scores ORDER BY dt DESC LIMIT 5",
        )
        .await?
        .iter()
        .map(|r| figures::text(r, "dt"))
        .collect::<Vec<_>>();
        bail!(
            "{} has no scores for {date} (latest dates: {})",
            out.display(),
            if dates.is_empty() {
                "none".into()
            } else {
                dates.join(", ")
            }
        );
    }
    f.notes.extend(catalog_note);
    let page = render(&f)?;
    let path = match &o.html {
        Some(p) => p.clone(),
        None => default_path(&out, &date, f.run_id.as_deref()),
    };
    write_atomic(&path, page.as_bytes())?;
    Ok(ReportSummary {
        path,
        date,
        run_id: f.run_id.clone(),
        listings: f.listings,
        bytes: page.len(),
        seconds: started.elapsed().as_secs_f64(),
        left_out: f.notes.clone(),
    })
}

/// A run's page is named like its manifest (`runs/RUN_ID.json`), in
/// `OUT/reports/` (readers of `runs/` expect manifests only).
pub fn default_path(out: &Path, date: &str, run_id: Option<&str>) -> PathBuf {
    match run_id {
        Some(r) => out.join("reports").join(format!("{r}.html")),
        None => out.join("reports").join(format!("{date}.html")),
    }
}

async fn open_catalog(
    ctx: &datafusion::prelude::SessionContext,
    uri: &str,
    date: chrono::NaiveDate,
) -> Result<()> {
    let cat = Catalog::open_any(uri, Some(date)).await?;
    cat.require(&["listings", "sellers"])?;
    cat.register(ctx).await
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("html.tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[derive(Serialize)]
struct Change {
    action: String,
    before: u64,
    now: u64,
    delta: i64,
    pct: Option<f64>,
}

/// The page: the figures, their charts, the template.
pub fn render(f: &figures::Figures) -> Result<String> {
    use figures::{num, text};
    let pairs = |rows: &[figures::Row], k: &str, v: &str| -> Vec<(String, f64)> {
        rows.iter().map(|r| (text(r, k), num(r, v))).collect()
    };
    let percent = |v: f64| format!("{:.0}%", v * 100.0);
    let mut charts = std::collections::BTreeMap::new();
    charts.insert(
        "actions",
        charts::actions(&pairs(&f.actions, "action", "n"))?,
    );
    charts.insert(
        "histogram",
        charts::histogram("Listings by risk score", &f.histogram)?,
    );
    if !f.categories.is_empty() {
        charts.insert(
            "categories",
            charts::bars(
                "Flagged share by category (the largest categories)",
                &pairs(&f.categories, "name", "rate"),
                &percent,
            )?,
        );
    }
    if !f.regions.is_empty() {
        charts.insert(
            "regions",
            charts::bars(
                "Flagged share by seller region (the largest regions)",
                &pairs(&f.regions, "name", "rate"),
                &percent,
            )?,
        );
    }
    if !f.reasons.is_empty() {
        charts.insert(
            "reasons",
            charts::bars(
                "Listings by reason",
                &pairs(&f.reasons, "code", "listings"),
                &|v| format!("{v:.0}"),
            )?,
        );
    }
    if !f.stages.is_empty() {
        charts.insert(
            "stages",
            charts::bars("Wall seconds by stage", &f.stages, &|v| format!("{v:.1} s"))?,
        );
    }
    if !f.image_split.is_empty() {
        charts.insert(
            "image_split",
            charts::bars(
                "Image stage: where the time went (seconds)",
                &f.image_split,
                &|v| format!("{v:.1} s"),
            )?,
        );
    }
    let before = |a: &str| {
        f.previous_actions
            .iter()
            .find(|r| text(r, "action") == a)
            .map_or(0, |r| num(r, "n") as u64)
    };
    let change: Vec<Change> = f
        .actions
        .iter()
        .map(|r| {
            let action = text(r, "action");
            let (b, now) = (before(&action), num(r, "n") as u64);
            Change {
                delta: now as i64 - b as i64,
                pct: (b > 0).then(|| (now as f64 - b as f64) * 100.0 / b as f64),
                action,
                before: b,
                now,
            }
        })
        .collect();
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", PAGE)?;
    let page = env
        .get_template("report.html")?
        .render(minijinja::context! {
            f => f,
            charts => charts,
            change => change,
            generated_at => chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        })?;
    Ok(page)
}
