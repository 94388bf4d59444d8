//! Labelled listings and their features: verdicts from `test_purchases` and
//! resolved `complaints`, each joined with the reasons the nightly scan gave
//! the listing (`risk_scores`), turned into one `z` per reason code.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Result;
use datafusion::arrow::array::{Array, AsArray, StructArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float32Type, Int64Type};
use datafusion::execution::context::SessionContext;

use dajia_kernels::risk::{scaled, ReasonCode, MODEL_VERSION, SIGNALS};

use super::fit::Example;
use super::model_file::ModelFile;

/// Complaint outcomes that mean the listing was counterfeit, and those that
/// mean it was not; any other outcome (pending, withdrawn) is no label.
pub const COMPLAINT_COUNTERFEIT: &[&str] = &["upheld", "confirmed", "counterfeit", "infringing"];
pub const COMPLAINT_GENUINE: &[&str] = &["rejected", "dismissed", "genuine", "not_infringing"];

/// One labelled listing with its features.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub listing_id: i64,
    /// Day of the verdict (days since 1970-01-01), when known.
    pub day: Option<i32>,
    pub example: Example,
}

/// The labelled listings of the window and the counts of those left out.
pub struct Labels {
    pub rows: Vec<Labelled>,
    pub skipped: BTreeMap<String, u64>,
}

async fn columns(ctx: &SessionContext, table: &str) -> Vec<String> {
    match ctx.table(table).await {
        Ok(t) => t
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn list(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The SQL of every verdict as `(listing_id, at, counterfeit)`: test
/// purchases judged counterfeit or genuine, complaints with a decisive
/// outcome (dated when resolved, else when filed). `None` when the catalog
/// has neither table.
async fn verdicts_sql(ctx: &SessionContext) -> Option<String> {
    let ts = "'Timestamp(Microsecond, Some(\"UTC\"))'";
    let mut parts = Vec::new();
    let tp = columns(ctx, "test_purchases").await;
    if tp.iter().any(|c| c == "verdict") {
        let at = if tp.iter().any(|c| c == "purchased_at") {
            format!("arrow_cast(purchased_at, {ts})")
        } else {
            format!("arrow_cast(NULL, {ts})")
        };
        parts.push(format!(
            "SELECT CAST(listing_id AS BIGINT) AS listing_id, {at} AS at, \
                    lower(trim(verdict)) = 'counterfeit' AS counterfeit, 'test_purchase' AS source \
             FROM test_purchases WHERE lower(trim(verdict)) IN ('counterfeit', 'genuine') AND listing_id IS NOT NULL"
        ));
    }
    let cp = columns(ctx, "complaints").await;
    if cp.iter().any(|c| c == "outcome") {
        let time = |c: &str| {
            if cp.iter().any(|x| x == c) {
                format!("arrow_cast({c}, {ts})")
            } else {
                format!("arrow_cast(NULL, {ts})")
            }
        };
        parts.push(format!(
            "SELECT CAST(listing_id AS BIGINT), coalesce({}, {}), lower(trim(outcome)) IN ({}), 'complaint' \
             FROM complaints WHERE lower(trim(outcome)) IN ({}, {}) AND listing_id IS NOT NULL",
            time("resolved_at"),
            time("filed_at"),
            list(COMPLAINT_COUNTERFEIT),
            list(COMPLAINT_COUNTERFEIT),
            list(COMPLAINT_GENUINE)
        ));
    }
    (!parts.is_empty()).then(|| parts.join(" UNION ALL "))
}

/// The labelled listings with a verdict dated within `[from, to]` (days;
/// undated verdicts count as within), the latest verdict of each listing,
/// each with the reasons of the latest scan on or before its verdict (the
/// earliest after it when none was before). `models`: the model files of
/// earlier trainings, by version, so that rows a model scored are read
/// back in default weights.
pub async fn load(
    ctx: &SessionContext,
    from: i32,
    to: i32,
    models: &HashMap<String, ModelFile>,
) -> Result<Labels> {
    let mut skipped = BTreeMap::new();
    let Some(verdicts) = verdicts_sql(ctx).await else {
        anyhow::bail!("the catalog has no labels: neither test_purchases (with verdict) nor complaints (with outcome)");
    };
    let sql = format!(
        "WITH v AS ({verdicts}), \
              d AS (SELECT listing_id, CAST(CAST(at AS DATE) AS INT) AS day, counterfeit, \
                           row_number() OVER (PARTITION BY listing_id ORDER BY at DESC NULLS LAST, counterfeit DESC) AS k \
                    FROM v), \
              labels AS (SELECT listing_id, day, counterfeit FROM d \
                         WHERE k = 1 AND (day IS NULL OR day BETWEEN {from} AND {to})), \
              s AS (SELECT l.listing_id, l.day, l.counterfeit, r.reasons, r.model_version, \
                           row_number() OVER (PARTITION BY l.listing_id ORDER BY \
                               CASE WHEN l.day IS NULL OR CAST(CAST(r.dt AS DATE) AS INT) <= l.day THEN 0 ELSE 1 END, \
                               CASE WHEN l.day IS NULL OR CAST(CAST(r.dt AS DATE) AS INT) <= l.day THEN CAST(CAST(r.dt AS DATE) AS INT) ELSE -CAST(CAST(r.dt AS DATE) AS INT) END DESC) AS k \
                    FROM labels l LEFT JOIN risk_scores r ON l.listing_id = r.listing_id) \
         SELECT listing_id, day, counterfeit, reasons, model_version FROM s WHERE k = 1 ORDER BY listing_id"
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let mut rows = Vec::new();
    for b in &batches {
        let id = b.column(0).as_primitive::<Int64Type>();
        let day = cast(b.column(1), &DataType::Int32)?;
        let day = day.as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        let y = b.column(2).as_boolean();
        let reasons = b.column(3).as_list::<i32>();
        let version = cast(b.column(4), &DataType::Utf8)?;
        let version = version.as_string::<i32>();
        for i in 0..b.num_rows() {
            if reasons.is_null(i) {
                *skipped.entry("never scanned".into()).or_insert(0) += 1;
                continue;
            }
            match features(reasons.value(i).as_struct(), version.value(i), models)? {
                Ok(z) => rows.push(Labelled {
                    listing_id: id.value(i),
                    day: day.is_valid(i).then(|| day.value(i)),
                    example: Example {
                        z,
                        counterfeit: y.value(i),
                    },
                }),
                Err(why) => *skipped.entry(why).or_insert(0) += 1,
            }
        }
    }
    Ok(Labels { rows, skipped })
}

/// One listing's `z` per reason code from its reasons, read back in
/// default weights when `version` is a trained model's; `Err(why)` when it
/// cannot be (rules nobody knows, a model that zeroes a reason).
fn features(
    r: &StructArray,
    version: &str,
    models: &HashMap<String, ModelFile>,
) -> Result<std::result::Result<Vec<f64>, String>> {
    let model = if version == MODEL_VERSION {
        None
    } else if let Some(m) = models.get(version) {
        Some(&m.model)
    } else {
        return Ok(Err(format!(
            "scored by rules {version} (not the defaults nor a known model)"
        )));
    };
    let code = cast(r.column(0), &DataType::Utf8)?;
    let code = code.as_string::<i32>();
    let weight = r.column(2).as_primitive::<Float32Type>();
    let mut z = vec![0.0; SIGNALS.len()];
    for j in 0..r.len() {
        let Some(c) = ReasonCode::parse(code.value(j)) else {
            continue; // a code this build does not know weighs nothing here
        };
        let mut w = weight.value(j);
        if let Some(m) = model {
            // Undo the model's exponent: back to the default weight.
            let s = m.scale(c);
            if s == 0.0 {
                return Ok(Err(format!(
                    "scored by model {version}, which zeroes a reason"
                )));
            }
            w = scaled(w, 1.0 / s);
        }
        let slot = SIGNALS
            .iter()
            .position(|s| s.code == c)
            .expect("known code");
        z[slot] += -(1.0 - f64::from(w).clamp(0.0, 0.999_999)).ln();
    }
    Ok(Ok(z))
}

/// The night's listings the decisions are made on: the `z` of up to
/// `limit` listings with at least one reason from the latest scan on or
/// before `day` (days since 1970-01-01), a sample by hash order when there
/// are more (a top-k, streaming, whatever the catalog's size). Listings
/// without reasons score 0 under any exponents and are left out.
pub async fn population(
    ctx: &SessionContext,
    day: i32,
    limit: usize,
    models: &HashMap<String, ModelFile>,
) -> Result<Vec<Vec<f64>>> {
    let sql = format!(
        "WITH d AS (SELECT max(dt) AS dt FROM risk_scores WHERE CAST(CAST(dt AS DATE) AS INT) <= {day}) \
         SELECT r.reasons, r.model_version FROM risk_scores r JOIN d ON r.dt = d.dt \
         WHERE cardinality(r.reasons) > 0 \
         ORDER BY md5(CAST(r.listing_id AS VARCHAR)) LIMIT {limit}"
    );
    let mut out = Vec::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        let reasons = b.column(0).as_list::<i32>();
        let version = cast(b.column(1), &DataType::Utf8)?;
        let version = version.as_string::<i32>();
        for i in 0..b.num_rows() {
            if let Ok(z) = features(reasons.value(i).as_struct(), version.value(i), models)? {
                out.push(z);
            }
        }
    }
    Ok(out)
}

/// Model files kept under `OUT/models/`, by version.
pub fn known_models(out: &Path) -> HashMap<String, ModelFile> {
    let mut m = HashMap::new();
    let Ok(dir) = std::fs::read_dir(out.join("models")) else {
        return m;
    };
    for e in dir.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json") {
            match ModelFile::read(&p) {
                Ok(f) => {
                    m.insert(f.version.clone(), f);
                }
                Err(e) => tracing::warn!("{e:#}"),
            }
        }
    }
    m
}
