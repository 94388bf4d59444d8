//! The figures of one night's report, computed with SQL over the output's
//! published tables (and the catalog, for categories, regions and brand
//! names) plus the run's manifest. Every table is a list of JSON rows so
//! that the page's template shows them as they are.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use datafusion::prelude::SessionContext;
use serde::Serialize;
use serde_json::{Map, Value};

/// One row of a query's result, by column name.
pub type Row = Map<String, Value>;

#[derive(Debug, Default, Serialize)]
pub struct Figures {
    pub date: String,
    /// The run whose rows these are, and its manifest (when found).
    pub run_id: Option<String>,
    pub manifest: Option<Value>,
    pub listings: u64,
    /// `action`, `n`, in the order allow, review, takedown.
    pub actions: Vec<Row>,
    /// The latest earlier date of the output, with its counts by action.
    pub previous_date: Option<String>,
    pub previous_actions: Vec<Row>,
    /// Listings per score bin of width 0.05 (20 bins).
    pub histogram: Vec<u64>,
    /// `name`, `listings`, `flagged`, `rate` (flagged: review or takedown).
    pub categories: Vec<Row>,
    pub regions: Vec<Row>,
    /// `brand_id`, `name`, `listings`, `flagged`, `takedown`.
    pub brands: Vec<Row>,
    /// `code`, `listings`, and up to three examples (`listing_id`, `detail`).
    pub reasons: Vec<Row>,
    pub reason_examples: Vec<Row>,
    /// `table_name`, `reason`, `n`.
    pub rejects: Vec<Row>,
    pub rejects_total: u64,
    /// `stage`, `seconds` (wall), from the manifest.
    pub stages: Vec<(String, f64)>,
    /// Where the image work's time went (wall or CPU/GPU seconds by part).
    pub image_split: Vec<(String, f64)>,
    pub leads: Option<Vec<Row>>,
    pub plan: Option<Vec<Row>>,
    /// Sections left out, and why (e.g. the catalog cannot be read).
    pub notes: Vec<String>,
}

/// The rows of `sql`, as JSON objects.
pub async fn rows(ctx: &SessionContext, sql: &str) -> Result<Vec<Row>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let mut w = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    for b in &batches {
        w.write(b)?;
    }
    w.finish()?;
    let bytes = w.into_inner();
    if bytes.is_empty() {
        return Ok(vec![]);
    }
    let v: Vec<Row> = serde_json::from_slice(&bytes).context("reading query rows")?;
    Ok(v)
}

pub fn num(r: &Row, k: &str) -> f64 {
    match r.get(k) {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

pub fn text(r: &Row, k: &str) -> String {
    match r.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "(none)".into(),
        Some(v) => v.to_string(),
    }
}

/// A date as a SQL literal (dates are validated `YYYY-MM-DD` by the caller).
fn lit(d: &str) -> String {
    format!("'{}'", d.replace('\'', "''"))
}

/// Gather the figures of `date` from `ctx`, whose `risk_scores` and
/// `rejects` (and `leads`, `purchase_plan` when they exist) are the
/// output's published tables, and whose `listings`, `sellers` and `brands`
/// are the catalog's when `catalog` is true; `scores`: the figures of the
/// date's `risk_scores` rows when already counted.
pub async fn gather(
    ctx: &SessionContext,
    date: &str,
    catalog: bool,
    manifest: Option<Value>,
    scores: Option<super::ScoreFigures>,
    has: impl Fn(&str) -> bool,
) -> Result<Figures> {
    let d = lit(date);
    let mut f = Figures {
        date: date.into(),
        run_id: manifest
            .as_ref()
            .and_then(|m| m["run_id"].as_str().map(String::from)),
        ..Default::default()
    };
    let scores_sql = format!("(SELECT * FROM risk_scores WHERE dt = {d})");
    // The queries are independent: they run at once, so that one query's
    // single-threaded parts (planning, a final merge) overlap another's
    // scan (at 1M listings the page took 1.2 s with them one after another).
    let q = |sql: String| async move { rows(ctx, &sql).await };
    // Actions, histogram, brands, reasons and their examples: one read,
    // unless counted already.
    let pass = async {
        match scores {
            Some(counted) => Ok(counted),
            None => super::score_pass::gather(ctx, &scores_sql).await,
        }
    };
    let previous = async {
        let prev = q(format!(
            "SELECT max(dt) AS d FROM risk_scores WHERE dt < {d}"
        ))
        .await?
        .first()
        .and_then(|r| r.get("d").and_then(|v| v.as_str().map(String::from)));
        let Some(prev) = prev else {
            return Ok(None);
        };
        let counts = q(format!(
            "SELECT action, count(*) AS n FROM risk_scores WHERE dt = {} GROUP BY action",
            lit(&prev)
        ))
        .await?;
        anyhow::Ok(Some((prev, counts)))
    };
    // Brand names from the catalog.
    let brand_names = async {
        if !catalog {
            return Ok(vec![]);
        }
        rows(
            ctx,
            "SELECT brand_id, min(name) AS name FROM brands GROUP BY brand_id",
        )
        .await
    };
    // Flag rate of the listings grouped by a catalog column: the
    // listing's category, its seller's region.
    let flag_rate = |name: &str, join: &str| {
        let sql = format!(
            "SELECT coalesce({name}, '(none)') AS name, count(*) AS listings, \
                    sum(CASE WHEN s.action <> 'allow' THEN 1 ELSE 0 END) AS flagged \
             FROM {scores_sql} s JOIN {join} \
             GROUP BY 1 ORDER BY listings DESC, name LIMIT 15"
        );
        async move {
            if !catalog {
                return None;
            }
            let mut rs = rows(ctx, &sql).await;
            for r in rs.iter_mut().flatten() {
                let rate = num(r, "flagged") / num(r, "listings").max(1.0);
                r.insert("rate".into(), serde_json::json!(rate));
            }
            Some(rs)
        }
    };
    let categories = flag_rate("c.category", "listings c ON c.listing_id = s.listing_id");
    let regions = flag_rate("c.region", "sellers c ON c.seller_id = s.seller_id");
    let rejects = q(format!(
        "SELECT table_name, substr(reason, 1, 90) AS reason, count(*) AS n \
         FROM rejects WHERE dt = {d} GROUP BY 1, 2 ORDER BY n DESC, table_name, reason LIMIT 12"
    ));
    let rejects_total = q(format!("SELECT count(*) AS n FROM rejects WHERE dt = {d}"));
    // The night's other outputs, when this output has them; a section that
    // cannot be read is left out with its reason, not the whole page.
    let optional = |table: &str, sql: String| {
        let present = has(table);
        async move {
            if present {
                Some(rows(ctx, &sql).await)
            } else {
                None
            }
        }
    };
    let leads = optional(
        "leads",
        format!(
        "SELECT rank, region, cluster_id, cardinality(sellers) AS sellers, listings, \
                estimated_counterfeit_sales_cents / 100.0 AS estimated_sales, confirmed_purchases \
         FROM leads WHERE dt = {d} ORDER BY estimated_counterfeit_sales_cents DESC, cluster_id LIMIT 10"
    ));
    let plan = optional(
        "purchase_plan",
        format!(
            "SELECT why, count(*) AS listings, avg(inclusion_probability) AS inclusion_probability, \
                    avg(expected_counterfeit) AS expected_counterfeit \
             FROM purchase_plan WHERE dt = {d} GROUP BY why ORDER BY why"
        ),
    );
    let (pass, previous, brand_names, categories, regions, rejects, rejects_total, leads, plan) = futures::join!(
        pass,
        previous,
        brand_names,
        categories,
        regions,
        rejects,
        rejects_total,
        leads,
        plan
    );

    let pass = pass.context("reading the date's scores")?;
    f.actions = pass.actions;
    f.listings = f.actions.iter().map(|r| num(r, "n") as u64).sum();
    if let Some((prev, counts)) = previous? {
        f.previous_actions = counts;
        f.previous_date = Some(prev);
    }
    f.histogram = pass.histogram;
    f.reasons = pass.reasons;
    f.reason_examples = pass.reason_examples;
    let names: HashMap<i64, Value> = brand_names
        .context("reading brand names")?
        .into_iter()
        .filter_map(|mut r| Some((r.get("brand_id")?.as_i64()?, r.remove("name")?)))
        .collect();
    f.brands = pass.brands;
    for b in &mut f.brands {
        if let Some(n) = b
            .get("brand_id")
            .and_then(Value::as_i64)
            .and_then(|id| names.get(&id))
        {
            b.insert("name".into(), n.clone());
        }
    }
    if catalog {
        for (what, result, table) in [
            ("categories", categories, &mut f.categories),
            ("regions", regions, &mut f.regions),
        ] {
            match result.expect("run with the catalog") {
                Ok(rs) => *table = rs,
                Err(e) => f.notes.push(format!("flag rate by {what}: {e:#}")),
            }
        }
    } else {
        f.notes.push(
            "flag rate by category and by region, brand names: the catalog could not be read \
             (give --catalog)"
                .into(),
        );
    }
    f.rejects = rejects.unwrap_or_default();
    f.rejects_total = rejects_total
        .ok()
        .and_then(|r| r.first().map(|r| num(r, "n") as u64))
        .unwrap_or(0);
    match leads {
        Some(Ok(r)) => f.leads = Some(r),
        Some(Err(e)) => f.notes.push(format!("leads: {e:#}")),
        None => {}
    }
    match plan {
        Some(Ok(r)) => f.plan = Some(r),
        Some(Err(e)) => f.notes.push(format!("purchase plan: {e:#}")),
        None => {}
    }
    if let Some(m) = &manifest {
        f.stages = m["stages_seconds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| Some((s[0].as_str()?.to_string(), s[1].as_f64()?)))
            .collect();
        let i = &m["summary"]["images"];
        if i.is_object() {
            let mut split = vec![
                ("fetch (wall)", i["fetch_seconds"].as_f64()),
                (
                    "decode + embed + match (wall)",
                    i["embed_match_seconds"].as_f64(),
                ),
                ("OCR (wall)", i["ocr_seconds"].as_f64()),
                ("OCR (CPU thread-seconds)", i["ocr_thread_seconds"].as_f64()),
                ("process CPU", i["process_cpu_seconds"].as_f64()),
            ];
            if i["gpu"].is_object() {
                split.push(("GPU device", i["gpu"]["device_seconds"].as_f64()));
                split.push((
                    "decode (CPU thread-seconds)",
                    i["gpu"]["decode_thread_seconds"].as_f64(),
                ));
            }
            f.image_split = split
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_string(), v?)))
                .collect();
        }
    }
    f.manifest = manifest;
    Ok(f)
}

/// The manifest of the scan of `date` whose commits readers see (the
/// succeeded one with the highest versions), if any.
pub fn published_manifest(out: &Path, date: &str) -> Option<Value> {
    crate::delta::published::scan_manifests(out)?
        .into_iter()
        .filter(|m| m["outcome"] == "succeeded" && m["date"] == date)
        .max_by_key(|m| m["commits"]["risk_scores"].as_i64().unwrap_or(-1))
}
