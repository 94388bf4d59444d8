//! One read of a date's `risk_scores` for the figures that need every row:
//! counts by action, the score histogram, counts by brand and by reason, and
//! each reason's highest-scored examples.
//!
//! As SQL these were five queries over the partition, two of them unnesting
//! every reason, and the examples a window sorting all of them: at 1M
//! listings 1.0 CPU-second of the page's 1.2, the Parquet decoding of the
//! `reasons` column done twice. Here the rows stream once (decoded by
//! DataFusion's scan on every core) and each figure is a few counters; the
//! results are the queries' rows, as Arrow's JSON writer wrote them (null
//! fields left out), so the page and its JSON do not change; the test below
//! runs the old queries against the pass. The order of each table is the
//! queries' `ORDER BY`.
//!
//! A scan reads none of it: it counts the rows as it writes them
//! ([`ScoreTally`] shown each written batch, through
//! `cluster::write_parts::observe_writes`) and gives the report the
//! figures, which are those of the partition it published.

use std::collections::HashMap;

use anyhow::{Context, Result};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float32Type, Int64Type};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use serde_json::{json, Value};

use super::figures::Row;
use crate::udf::Strings;

/// The actions in the page's order.
const ACTIONS: [&str; 3] = ["allow", "review", "takedown"];
/// Rows kept of the reason and brand tables.
const TOP: usize = 15;
/// Examples kept per reason.
const EXAMPLES: usize = 3;
/// Characters of an example's detail shown.
const DETAIL_CHARS: usize = 160;
/// Score bins of width 0.05.
const BINS: usize = 20;

/// The figures of one pass, as the page's rows.
#[derive(Debug, Clone, Default)]
pub struct ScoreFigures {
    /// `action`, `n`, for allow, review, takedown (0 when none).
    pub actions: Vec<Row>,
    pub histogram: Vec<u64>,
    /// `code`, `listings` (distinct listings), `takedown` (reasons on
    /// listings taken down); the [`TOP`] most frequent.
    pub reasons: Vec<Row>,
    /// `code`, `listing_id`, `score`, `detail`: per code, its highest
    /// scores (ties: the lower listing id), by code.
    pub reason_examples: Vec<Row>,
    /// `brand_id`, `listings`, `flagged`, `takedown` (the caller adds
    /// `name` from the catalog); the [`TOP`] most flagged.
    pub brands: Vec<Row>,
}

#[derive(Default)]
struct ReasonTally {
    listings: u64,
    takedown: u64,
    /// Best first (higher score, then lower listing id): (score, listing
    /// id, detail).
    examples: Vec<(f32, i64, Option<String>)>,
}

#[derive(Default)]
struct BrandTally {
    listings: u64,
    flagged: u64,
    takedown: u64,
}

/// The figures' counters over the rows added so far (those of one read of
/// `risk_scores`, or those the scan wrote: see [`ScoreTally::add_scores`]).
#[derive(Default)]
pub struct ScoreTally {
    actions: [u64; 3],
    histogram: [u64; BINS],
    reasons: HashMap<String, ReasonTally>,
    brands: HashMap<i64, BrandTally>,
}

/// The figures of the rows of `scores` (a SQL table expression with
/// `risk_scores`' columns), read once.
pub async fn gather(ctx: &SessionContext, scores: &str) -> Result<ScoreFigures> {
    let mut stream = ctx
        .sql(&format!(
            "SELECT listing_id, score, action, brand_id, reasons FROM {scores}"
        ))
        .await?
        .execute_stream()
        .await?;
    let mut t = ScoreTally::default();
    while let Some(b) = stream.next().await {
        t.add_scores(&b?)?;
    }
    Ok(t.figures())
}

impl ScoreTally {
    /// Count the rows of `b`, a batch with `risk_scores`' columns
    /// `listing_id`, `score`, `action`, `brand_id` and `reasons` (others are
    /// ignored).
    pub fn add_scores(&mut self, b: &RecordBatch) -> Result<()> {
        let column = |name: &str, to: &DataType| {
            let c = b
                .column_by_name(name)
                .with_context(|| format!("the scores have no `{name}`"))?;
            anyhow::Ok(cast(c, to)?)
        };
        let ids = column("listing_id", &DataType::Int64)?;
        let scores = column("score", &DataType::Float32)?;
        let brands = column("brand_id", &DataType::Int64)?;
        let (ids, scores, brands) = (
            ids.as_primitive::<Int64Type>(),
            scores.as_primitive::<Float32Type>(),
            brands.as_primitive::<Int64Type>(),
        );
        let actions = Strings::of(
            b.column_by_name("action")
                .context("the scores have no `action`")?,
        )?;
        let reasons = b
            .column_by_name("reasons")
            .context("the scores have no `reasons`")?
            .as_list_opt::<i32>()
            .context("`reasons` is not a list")?;
        let fields = reasons
            .values()
            .as_struct_opt()
            .context("`reasons` is not a list of structs")?;
        let field = |name: &str| {
            let c = fields
                .column_by_name(name)
                .with_context(|| format!("a reason has no `{name}`"))?;
            anyhow::Ok(Strings::of(c)?)
        };
        let (codes, details) = (field("code")?, field("detail")?);
        let mut seen: Vec<&str> = Vec::new();
        for i in 0..b.num_rows() {
            let action = actions.get(i);
            let a = action.and_then(|a| ACTIONS.iter().position(|x| *x == a));
            if let Some(a) = a {
                self.actions[a] += 1;
            }
            let takedown = a == Some(2);
            // A null score counts in the last bin, as the query's `least`
            // (which skips nulls) put it.
            let score = scores.is_valid(i).then(|| scores.value(i));
            let last = BINS as i64 - 1;
            let bin = score.map_or(last, |s| ((s * 20.0).floor() as i64).clamp(0, last));
            self.histogram[bin as usize] += 1;
            if brands.is_valid(i) {
                let e = self.brands.entry(brands.value(i)).or_default();
                e.listings += 1;
                e.flagged += u64::from(action.is_some_and(|a| a != "allow"));
                e.takedown += u64::from(takedown);
            }
            if reasons.is_null(i) {
                continue;
            }
            let id = ids.is_valid(i).then(|| ids.value(i));
            seen.clear();
            let offsets = reasons.value_offsets();
            for j in offsets[i] as usize..offsets[i + 1] as usize {
                let Some(code) = codes.get(j) else { continue };
                // A code's name is allocated once, at its first reason.
                let r = match self.reasons.get_mut(code) {
                    Some(r) => r,
                    None => self.reasons.entry(code.to_string()).or_default(),
                };
                // Distinct listings (a listing's rows are unique by id:
                // publishing checks it); takedowns per reason, as the
                // query's sum over unnested reasons counted them.
                if !seen.contains(&code) {
                    seen.push(code);
                    r.listings += 1;
                }
                r.takedown += u64::from(takedown);
                if let (Some(s), Some(id)) = (score, id) {
                    offer(&mut r.examples, s, id, || {
                        details
                            .get(j)
                            .map(|d| d.chars().take(DETAIL_CHARS).collect())
                    });
                }
            }
        }
        Ok(())
    }

    pub fn figures(self) -> ScoreFigures {
        let actions = ACTIONS
            .iter()
            .zip(self.actions)
            .map(|(a, n)| row(json!({"action": a, "n": n})))
            .collect();
        let mut codes: Vec<(&String, &ReasonTally)> = self.reasons.iter().collect();
        codes.sort_by(|a, b| b.1.listings.cmp(&a.1.listings).then(a.0.cmp(b.0)));
        let reasons = codes
            .iter()
            .take(TOP)
            .map(|(c, r)| row(json!({"code": c, "listings": r.listings, "takedown": r.takedown})))
            .collect();
        codes.sort_by(|a, b| a.0.cmp(b.0));
        let reason_examples = codes
            .iter()
            .flat_map(|(c, r)| {
                r.examples.iter().map(move |(s, id, d)| {
                    row(json!({"code": c, "listing_id": id, "score": score_json(*s), "detail": d}))
                })
            })
            .collect();
        let mut brands: Vec<(&i64, &BrandTally)> = self.brands.iter().collect();
        brands.sort_by(|a, b| {
            (b.1.flagged, b.1.listings)
                .cmp(&(a.1.flagged, a.1.listings))
                .then(a.0.cmp(b.0))
        });
        let brands = brands
            .iter()
            .take(TOP)
            .map(|(id, b)| {
                row(json!({"brand_id": id, "listings": b.listings,
                           "flagged": b.flagged, "takedown": b.takedown}))
            })
            .collect();
        ScoreFigures {
            actions,
            histogram: self.histogram.to_vec(),
            reasons,
            reason_examples,
            brands,
        }
    }
}

/// Keep `(score, id)` among the best [`EXAMPLES`] of `best` (higher score
/// first, then the lower id); `detail` is made only when it is kept.
fn offer(
    best: &mut Vec<(f32, i64, Option<String>)>,
    score: f32,
    id: i64,
    detail: impl FnOnce() -> Option<String>,
) {
    // The SQL sort's order: scores by their total order, then ids.
    let before = |(s, i, _): &(f32, i64, Option<String>)| match s.total_cmp(&score) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => *i <= id,
        std::cmp::Ordering::Less => false,
    };
    let at = best.iter().take_while(|e| before(e)).count();
    if at < EXAMPLES {
        best.insert(at, (score, id, detail()));
        best.truncate(EXAMPLES);
    }
}

/// A Float32 score as JSON, written as its shortest decimal (0.85, not
/// 0.8500000238418579), as Arrow's JSON writer writes it.
fn score_json(s: f32) -> Value {
    s.to_string()
        .parse::<f64>()
        .map_or(Value::Null, Value::from)
}

/// A JSON object as a row, its null fields left out (as Arrow's JSON
/// writer, which wrote the queries' rows, leaves them out).
fn row(v: Value) -> Row {
    match v {
        Value::Object(mut m) => {
            m.retain(|_, v| !v.is_null());
            m
        }
        _ => unreachable!("rows are objects"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::figures::rows;

    /// The queries the pass replaced, run on the same rows.
    #[tokio::test]
    async fn the_pass_gives_the_rows_of_the_queries_it_replaced() {
        let ctx = SessionContext::new();
        // 60 listings: tied and bin-edge scores (k * 0.05, 1.0), 20 codes
        // (more than TOP), a code twice in one listing, 18 brands and none.
        let mut values = Vec::new();
        for i in 0..60i64 {
            let score = [0.05, 0.35, 0.5, 0.85, 1.0, 0.0, 0.123, 0.35][(i % 8) as usize];
            let action = ["allow", "review", "takedown"][(i % 3) as usize];
            let brand = if i % 7 == 0 {
                "NULL".to_string()
            } else {
                (i % 18).to_string()
            };
            let reasons: Vec<String> = (0..=(i % 3))
                .map(|k| {
                    let code = format!("c{:02}", (i * 3 + k * 7) % 20);
                    format!(
                        "named_struct('code', '{code}', 'detail', '{code} of {i} {}', 'weight', CAST(0.5 AS REAL))",
                        "长".repeat(200)
                    )
                })
                .chain((i % 5 == 0).then(|| {
                    "named_struct('code', 'c99', 'detail', 'twice', 'weight', CAST(0.1 AS REAL))".to_string()
                }))
                .chain((i % 5 == 0).then(|| {
                    "named_struct('code', 'c99', 'detail', 'twice', 'weight', CAST(0.1 AS REAL))".to_string()
                }))
                .collect();
            let reasons = format!("make_array({})", reasons.join(", "));
            values.push(format!(
                "SELECT CAST({i} AS BIGINT) AS listing_id, CAST({score} AS REAL) AS score, '{action}' AS action, \
                        CAST({brand} AS BIGINT) AS brand_id, {reasons} AS reasons"
            ));
        }
        ctx.sql(&format!("CREATE TABLE s AS {}", values.join(" UNION ALL ")))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let pass = gather(&ctx, "s").await.unwrap();
        let q = |sql: &str| {
            let sql = sql.replace("{scores}", "s");
            let ctx = &ctx;
            async move { rows(ctx, &sql).await.unwrap() }
        };
        assert_eq!(
            pass.actions,
            q("SELECT a.action, coalesce(n, 0) AS n FROM (VALUES ('allow', 0), ('review', 1), ('takedown', 2)) AS a(action, o) \
               LEFT JOIN (SELECT action, count(*) AS n FROM {scores} GROUP BY action) c ON c.action = a.action ORDER BY o").await
        );
        let mut bins = vec![0u64; 20];
        for r in q("SELECT least(CAST(floor(score * 20) AS BIGINT), 19) AS bin, count(*) AS n FROM {scores} GROUP BY 1").await {
            bins[r["bin"].as_i64().unwrap().max(0) as usize] += r["n"].as_u64().unwrap();
        }
        assert_eq!(pass.histogram, bins);
        assert_eq!(
            pass.reasons,
            q("SELECT code, count(DISTINCT listing_id) AS listings, \
                      sum(CASE WHEN action = 'takedown' THEN 1 ELSE 0 END) AS takedown \
               FROM (SELECT listing_id, action, get_field(r, 'code') AS code \
                     FROM (SELECT listing_id, action, unnest(reasons) AS r FROM {scores})) \
               GROUP BY code ORDER BY listings DESC, code LIMIT 15")
            .await
        );
        assert_eq!(pass.reasons.len(), TOP);
        assert_eq!(
            pass.reason_examples,
            q("SELECT code, listing_id, score, substr(detail, 1, 160) AS detail FROM ( \
                 SELECT code, listing_id, score, detail, \
                        row_number() OVER (PARTITION BY code ORDER BY score DESC, listing_id) AS k \
                 FROM (SELECT listing_id, score, get_field(r, 'code') AS code, get_field(r, 'detail') AS detail \
                       FROM (SELECT listing_id, score, unnest(reasons) AS r FROM {scores}))) \
               WHERE k <= 3 ORDER BY code, k").await
        );
        assert_eq!(
            pass.brands,
            q("SELECT s.brand_id, CAST(NULL AS VARCHAR) AS name, s.listings, s.flagged, s.takedown FROM ( \
                 SELECT brand_id, count(*) AS listings, \
                        sum(CASE WHEN action <> 'allow' THEN 1 ELSE 0 END) AS flagged, \
                        sum(CASE WHEN action = 'takedown' THEN 1 ELSE 0 END) AS takedown \
                 FROM {scores} WHERE brand_id IS NOT NULL GROUP BY brand_id) s \
               ORDER BY s.flagged DESC, s.listings DESC, s.brand_id LIMIT 15").await
        );
    }

    #[test]
    fn examples_keep_the_highest_scores_then_the_lowest_ids() {
        let mut best = Vec::new();
        for (s, id) in [(0.5, 9), (0.9, 4), (0.5, 2), (0.7, 8), (0.9, 3), (0.1, 1)] {
            offer(&mut best, s, id, || Some(format!("#{id}")));
        }
        let kept: Vec<(f32, i64)> = best.iter().map(|(s, i, _)| (*s, *i)).collect();
        assert_eq!(kept, vec![(0.9, 3), (0.9, 4), (0.7, 8)]);
        assert_eq!(best[0].2.as_deref(), Some("#3"));
    }

    #[test]
    fn scores_are_written_as_their_shortest_decimal() {
        assert_eq!(score_json(0.85).to_string(), "0.85");
        assert_eq!(score_json(1.0).to_string(), "1.0");
    }
}
