//! `dajia eval`: precision, recall and F1 of a scan against ground truth,
//! overall and per counterfeit technique, and the false-positive rate on
//! hard negatives. A listing counts as flagged when its action is `review`
//! or `takedown`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use serde::Serialize;

use crate::catalog::{local_path, register_files};
use crate::delta;

#[derive(Debug, Default, Clone, Serialize)]
pub struct Counts {
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
    pub tn: u64,
}

impl Counts {
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

/// Counts one listing of `key` in a (listings, flagged, rate) table; the
/// rates are filled in at the end.
fn tally(table: &mut BTreeMap<String, (u64, u64, f64)>, key: &str, flagged: bool) {
    let e = table.entry(key.to_string()).or_default();
    e.0 += 1;
    e.1 += flagged as u64;
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[derive(Debug, Default, Serialize)]
pub struct EvalReport {
    pub date: Option<String>,
    pub listings: u64,
    pub overall: Counts,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Per technique: (listings, flagged, recall).
    pub per_technique: BTreeMap<String, (u64, u64, f64)>,
    /// Per hard-negative kind: (listings, flagged, false-positive rate).
    pub hard_negatives: BTreeMap<String, (u64, u64, f64)>,
    pub hard_negative_fpr: f64,
    pub takedown_precision: f64,
    /// Per image technique of counterfeits (official_image_reuse, ...):
    /// (listings, flagged by an image reason, image recall).
    pub per_image_technique: BTreeMap<String, (u64, u64, f64)>,
    /// Per evasion family of counterfeits (the generator's `evasion` label,
    /// e.g. "brand homophone", "contact keyword_slang account_name"):
    /// (listings, flagged, recall).
    pub per_evasion: BTreeMap<String, (u64, u64, f64)>,
    /// Negatives by kind (`real_title`, `genuine_brand`, `stock_photo`):
    /// (listings, flagged, false-positive rate). `real_title` is the rate
    /// on real product titles as written, apart from the hard negatives.
    pub benign: BTreeMap<String, (u64, u64, f64)>,
    /// Seller networks (`seller_clusters`) against the generated truth
    /// about sellers, when both exist.
    pub links: Option<LinkEval>,
}

/// `seller_clusters` against `ground_truth/sellers/` (from `dajia gen`).
#[derive(Debug, Default, Clone, Serialize)]
pub struct LinkEval {
    /// Accounts of closed counterfeiters' rings.
    pub relapsed: u64,
    /// ... of which have a chain to a seller closed for counterfeiting.
    pub relapsed_found: u64,
    pub relapsed_recall: f64,
    /// ... of which are linked to the closed seller of their own ring.
    pub relapsed_right_network: u64,
    /// Sellers with a chain to a closed counterfeiter, and how many of them
    /// are in a ring (membership precision).
    pub linked_to_closed: u64,
    pub linked_to_closed_right: u64,
    pub membership_precision: f64,
    /// Sellers sharing a hub value with hundreds of strangers, and how many
    /// of them any cluster holds (false links through hubs).
    pub hub_members: u64,
    pub hub_members_linked: u64,
    pub hub_false_link_rate: f64,
    /// Benign sellers (not in a ring) with a chain to a closed counterfeiter.
    pub benign_linked_to_closed: u64,
    /// Recall by hops from the closed seller: (relapsed, found, recall).
    pub per_hops: BTreeMap<i64, (u64, u64, f64)>,
}

/// Seller truth of a generated catalog (`ground_truth/sellers/`), if any.
fn seller_truth_dir(labels: &str) -> Option<std::path::PathBuf> {
    let p = local_path(labels).ok()?;
    [p.join("ground_truth/sellers"), p.join("sellers")]
        .into_iter()
        .find(|d| d.join("truth.parquet").is_file())
}

/// [`LinkEval`] of partition `date` of the `seller_clusters` table at
/// `clusters` (registered as `seller_clusters`) against `truth`.
async fn eval_links(
    ctx: &datafusion::prelude::SessionContext,
    truth: &Path,
    date: &str,
) -> Result<LinkEval> {
    register_files(ctx, "seller_truth", &[truth.join("truth.parquet")]).await?;
    let sql = format!(
        "WITH c AS (SELECT * FROM seller_clusters WHERE dt = '{date}') \
         SELECT t.role, t.network, t.hops, c.cluster_id IS NOT NULL AS clustered, \
                c.path_sellers IS NOT NULL AS chained, \
                CASE WHEN c.path_sellers IS NOT NULL THEN c.path_sellers[CAST(array_length(c.path_sellers) AS BIGINT)] END AS reached \
         FROM seller_truth t LEFT JOIN c ON t.seller_id = c.seller_id"
    );
    let mut e = LinkEval::default();
    for b in ctx.sql(&sql).await?.collect().await? {
        let role = cast(b.column(0), &DataType::Utf8)?;
        let role = role.as_string::<i32>();
        let network = b
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let hops = b
            .column(2)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let clustered = b.column(3).as_boolean();
        let chained = b.column(4).as_boolean();
        let reached = b
            .column(5)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        for i in 0..b.num_rows() {
            let (r, chain) = (role.value(i), chained.value(i));
            if r == "relapsed" {
                e.relapsed += 1;
                e.relapsed_found += chain as u64;
                let right = chain && !reached.is_null(i) && reached.value(i) == network.value(i);
                e.relapsed_right_network += right as u64;
                let h = e.per_hops.entry(hops.value(i)).or_default();
                h.0 += 1;
                h.1 += chain as u64;
            }
            if chain {
                e.linked_to_closed += 1;
                if r == "relapsed" {
                    e.linked_to_closed_right += 1;
                } else {
                    e.benign_linked_to_closed += 1;
                }
            }
            if r == "hub_member" {
                e.hub_members += 1;
                e.hub_members_linked += clustered.value(i) as u64;
            }
        }
    }
    e.relapsed_recall = ratio(e.relapsed_found, e.relapsed);
    e.membership_precision = ratio(e.linked_to_closed_right, e.linked_to_closed);
    e.hub_false_link_rate = ratio(e.hub_members_linked, e.hub_members);
    for v in e.per_hops.values_mut() {
        v.2 = ratio(v.1, v.0);
    }
    Ok(e)
}

/// Find the `risk_scores` table: the URI itself or `URI/risk_scores`.
fn scores_dir(uri: &str) -> Result<std::path::PathBuf> {
    let p = local_path(uri)?;
    if p.join("_delta_log").is_dir() {
        return Ok(p);
    }
    if p.join("risk_scores/_delta_log").is_dir() {
        return Ok(p.join("risk_scores"));
    }
    bail!(
        "no risk_scores Delta table at {} (run `dajia scan` first)",
        p.display()
    )
}

fn label_files(uri: &str) -> Result<Vec<std::path::PathBuf>> {
    let p = local_path(uri)?;
    let dir = if p.join("ground_truth").is_dir() {
        p.join("ground_truth")
    } else {
        p.clone()
    };
    if dir.is_file() {
        return Ok(vec![dir]);
    }
    if !dir.is_dir() {
        bail!("labels not found at {}", p.display());
    }
    let mut v: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    v.sort();
    if v.is_empty() {
        bail!("no Parquet label files under {}", dir.display());
    }
    Ok(v)
}

pub async fn run(scores: &str, labels: &str, date: Option<&str>) -> Result<EvalReport> {
    run_on(&crate::cluster::Target::Local, scores, labels, date).await
}

/// [`run`] with its queries on `target` (in process or a cluster).
pub async fn run_on(
    target: &crate::cluster::Target,
    scores: &str,
    labels: &str,
    date: Option<&str>,
) -> Result<EvalReport> {
    let ctx = crate::cluster::session(target, &Default::default(), None).await?;
    let cluster = target.is_cluster();
    delta::register_for(&ctx, "risk_scores", &scores_dir(scores)?, cluster).await?;
    register_files(&ctx, "labels", &label_files(labels)?).await?;
    let schema = ctx.table("labels").await?.schema().clone();
    let has = |c: &str| schema.field_with_unqualified_name(c).is_ok();
    // Ground truth from `dajia gen` (label, technique, hard_negative) or from
    // test purchases (verdict).
    let label = if has("label") {
        "l.label"
    } else if has("verdict") {
        "l.verdict"
    } else {
        bail!("labels need a `label` or `verdict` column")
    };
    let technique = if has("technique") {
        "l.technique"
    } else {
        "CAST(NULL AS VARCHAR)"
    };
    let image_technique = if has("image_technique") {
        "l.image_technique"
    } else {
        "CAST(NULL AS VARCHAR)"
    };
    let hard = if has("hard_negative") {
        "l.hard_negative"
    } else {
        "CAST(NULL AS VARCHAR)"
    };
    let evasion = if has("evasion") {
        "l.evasion"
    } else {
        "CAST(NULL AS VARCHAR)"
    };
    let benign = if has("benign_kind") {
        "l.benign_kind"
    } else {
        "CAST(NULL AS VARCHAR)"
    };
    let date = match date {
        Some(d) => d.to_string(),
        None => {
            let b = ctx
                .sql("SELECT max(dt) FROM risk_scores")
                .await?
                .collect()
                .await?;
            let v = cast(b[0].column(0), &DataType::Utf8)?;
            let v = v.as_string::<i32>();
            if v.is_null(0) {
                bail!("risk_scores is empty")
            }
            v.value(0).to_string()
        }
    };
    let sql = format!(
        "SELECT {label} = 'counterfeit' AS positive, {technique} AS technique, {hard} AS hard, s.action, {image_technique} AS image_technique, s.reasons, {evasion} AS evasion, {benign} AS benign \
         FROM labels l JOIN risk_scores s ON l.listing_id = s.listing_id WHERE s.dt = '{date}'"
    );
    let mut r = EvalReport {
        date: Some(date),
        ..Default::default()
    };
    let mut takedown = Counts::default();
    for b in ctx.sql(&sql).await?.collect().await? {
        let pos = b.column(0).as_boolean();
        let tech = cast(b.column(1), &DataType::Utf8)?;
        let tech = tech.as_string::<i32>();
        let hard = cast(b.column(2), &DataType::Utf8)?;
        let hard = hard.as_string::<i32>();
        let action = cast(b.column(3), &DataType::Utf8)?;
        let action = action.as_string::<i32>();
        let itech = cast(b.column(4), &DataType::Utf8)?;
        let itech = itech.as_string::<i32>();
        let reasons = b.column(5).as_list::<i32>();
        let evasion = cast(b.column(6), &DataType::Utf8)?;
        let evasion = evasion.as_string::<i32>();
        let benign = cast(b.column(7), &DataType::Utf8)?;
        let benign = benign.as_string::<i32>();
        for i in 0..b.num_rows() {
            let positive = pos.value(i);
            let flagged = action.value(i) != "allow";
            r.listings += 1;
            match (positive, flagged) {
                (true, true) => r.overall.tp += 1,
                (false, true) => r.overall.fp += 1,
                (true, false) => r.overall.fn_ += 1,
                (false, false) => r.overall.tn += 1,
            }
            if action.value(i) == "takedown" {
                if positive {
                    takedown.tp += 1
                } else {
                    takedown.fp += 1
                }
            }
            if positive && !tech.is_null(i) {
                tally(&mut r.per_technique, tech.value(i), flagged);
            }
            if positive && !evasion.is_null(i) {
                tally(&mut r.per_evasion, evasion.value(i), flagged);
            }
            if !positive && !benign.is_null(i) {
                tally(&mut r.benign, benign.value(i), flagged);
            }
            if positive && !itech.is_null(i) {
                let by_image = !reasons.is_null(i) && {
                    let v = reasons.value(i);
                    let codes = cast(v.as_struct().column(0), &DataType::Utf8)?;
                    let codes = codes.as_string::<i32>();
                    let details = cast(v.as_struct().column(1), &DataType::Utf8)?;
                    let details = details.as_string::<i32>();
                    // image matches, or text signals read from an image (OCR)
                    (0..codes.len()).any(|j| {
                        codes.value(j).starts_with("image_matches")
                            || details.value(j).starts_with("ocr:")
                    })
                };
                tally(&mut r.per_image_technique, itech.value(i), by_image);
            }
            if !positive && !hard.is_null(i) {
                tally(&mut r.hard_negatives, hard.value(i), flagged);
            }
        }
    }
    for v in r
        .per_technique
        .values_mut()
        .chain(r.hard_negatives.values_mut())
        .chain(r.per_image_technique.values_mut())
        .chain(r.per_evasion.values_mut())
        .chain(r.benign.values_mut())
    {
        v.2 = ratio(v.1, v.0);
    }
    let (hn, hf) = r
        .hard_negatives
        .values()
        .fold((0, 0), |a, v| (a.0 + v.0, a.1 + v.1));
    r.hard_negative_fpr = ratio(hf, hn);
    r.precision = r.overall.precision();
    r.recall = r.overall.recall();
    r.f1 = r.overall.f1();
    r.takedown_precision = takedown.precision();
    // Seller networks, when the output has them and the labels say who is
    // in a ring.
    let clusters = scores_dir(scores)?
        .parent()
        .map(|p| p.join("seller_clusters"))
        .filter(|d| d.join("_delta_log").is_dir());
    if let (Some(dir), Some(truth)) = (clusters, seller_truth_dir(labels)) {
        delta::register_for(&ctx, "seller_clusters", &dir, cluster).await?;
        let date = r.date.clone().unwrap_or_default();
        r.links = Some(eval_links(&ctx, &truth, &date).await?);
    }
    Ok(r)
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.overall;
        writeln!(
            f,
            "dajia eval {}: {} labelled listings",
            self.date.as_deref().unwrap_or("?"),
            self.listings
        )?;
        writeln!(
            f,
            "  precision {:.4}  recall {:.4}  F1 {:.4}  (tp {} fp {} fn {} tn {})",
            self.precision, self.recall, self.f1, c.tp, c.fp, c.fn_, c.tn
        )?;
        writeln!(f, "  takedown precision {:.4}", self.takedown_precision)?;
        writeln!(f, "  per technique (listings, flagged, recall):")?;
        for (k, (n, d, r)) in &self.per_technique {
            writeln!(f, "    {k:<22} {n:>8} {d:>8}  {r:.4}")?;
        }
        if !self.per_image_technique.is_empty() {
            writeln!(
                f,
                "  per image technique (listings, flagged by an image or OCR reason, image recall):"
            )?;
            for (k, (n, d, r)) in &self.per_image_technique {
                writeln!(f, "    {k:<22} {n:>8} {d:>8}  {r:.4}")?;
            }
        }
        if !self.per_evasion.is_empty() {
            writeln!(f, "  per evasion family (listings, flagged, recall):")?;
            for (k, (n, d, r)) in &self.per_evasion {
                writeln!(f, "    {k:<40} {n:>8} {d:>8}  {r:.4}")?;
            }
        }
        if !self.benign.is_empty() {
            writeln!(
                f,
                "  negatives by kind (listings, flagged, false-positive rate):"
            )?;
            for (k, (n, d, r)) in &self.benign {
                writeln!(f, "    {k:<22} {n:>8} {d:>8}  {r:.4}")?;
            }
        }
        writeln!(
            f,
            "  hard negatives (listings, flagged, false-positive rate): overall {:.4}",
            self.hard_negative_fpr
        )?;
        for (k, (n, d, r)) in &self.hard_negatives {
            writeln!(f, "    {k:<22} {n:>8} {d:>8}  {r:.4}")?;
        }
        if let Some(l) = &self.links {
            writeln!(
                f,
                "  seller networks: relapsed-seller recall {:.4} ({} of {}; {} to their own ring's closed seller)",
                l.relapsed_recall, l.relapsed_found, l.relapsed, l.relapsed_right_network
            )?;
            writeln!(
                f,
                "    membership precision {:.4} ({} of {} sellers linked to a closed counterfeiter are in a ring)",
                l.membership_precision, l.linked_to_closed_right, l.linked_to_closed
            )?;
            writeln!(
                f,
                "    hub members in any cluster {} of {} (false-link rate {:.4})",
                l.hub_members_linked, l.hub_members, l.hub_false_link_rate
            )?;
            for (h, (n, d, r)) in &l.per_hops {
                writeln!(
                    f,
                    "    {h} hop(s) from the closed seller: {d} of {n}  {r:.4}"
                )?;
            }
        }
        Ok(())
    }
}

pub fn write_json(r: &EvalReport, path: &Path) -> Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(r)?)?;
    Ok(())
}
