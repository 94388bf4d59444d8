//! A lead's evidence pack: what ties its sellers together and what they
//! sold, as a case handler reads it (JSON in `leads.evidence`, Markdown in
//! the export).

use std::collections::BTreeMap;

use anyhow::Result;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::execution::context::SessionContext;
use serde::Serialize;

/// Listings shown per lead (the largest estimated sales first).
const LISTINGS_SHOWN: usize = 20;

#[derive(Debug, Clone, Default, Serialize)]
pub struct EvidencePack {
    /// Identity values shared inside the cluster: attribute, value hash,
    /// sellers sharing it.
    pub linking_values: Vec<(String, String, i64)>,
    /// Members: seller id, status, closed reason, region, chain to a closed
    /// counterfeiter (`phone_hash → 12, ...`) when there is one.
    pub members: Vec<Member>,
    /// The listings with the largest estimated counterfeit sales.
    pub listings: Vec<ListingEvidence>,
    /// Test purchases of the members' listings: (listing, verdict).
    pub verdicts: Vec<(i64, String)>,
    /// Orders of the members' flagged or confirmed listings by month
    /// (YYYY-MM → minor units).
    pub sales_by_month: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Member {
    pub seller_id: i64,
    pub status: Option<String>,
    pub closed_reason: Option<String>,
    pub region: Option<String>,
    pub chain: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ListingEvidence {
    pub listing_id: i64,
    pub seller_id: i64,
    pub title: String,
    pub action: String,
    pub score: f64,
    pub sales_cents: i64,
    pub estimated_counterfeit_cents: i64,
    /// `code: detail` of each reason.
    pub reasons: Vec<String>,
}

fn strings(a: &dyn Array) -> Result<Vec<Option<String>>> {
    let a = cast(a, &DataType::Utf8)?;
    let a = a.as_string::<i32>();
    Ok((0..a.len())
        .map(|i| (!a.is_null(i)).then(|| a.value(i).to_string()))
        .collect())
}

/// The evidence pack of cluster `id` on date `dt` (views of `leads::run`).
pub async fn build(ctx: &SessionContext, id: i64, dt: &str) -> Result<EvidencePack> {
    let mut p = EvidencePack::default();
    let q = |sql: String| async move { ctx.sql(&sql).await?.collect().await };
    for b in q(format!(
        "SELECT e['attribute'], e['value_hash'], e['sellers'] FROM \
         (SELECT unnest(evidence) AS e FROM \
          (SELECT evidence FROM seller_clusters WHERE dt = '{dt}' AND cluster_id = {id} LIMIT 1))"
    ))
    .await?
    {
        let (a, v) = (strings(b.column(0))?, strings(b.column(1))?);
        let n = cast(b.column(2), &DataType::Int64)?;
        let n = n.as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            p.linking_values.push((
                a[i].clone().unwrap_or_default(),
                v[i].clone().unwrap_or_default(),
                n.value(i),
            ));
        }
    }
    let has = |c: &'static str| async move {
        ctx.table("sellers")
            .await
            .map(|t| t.schema().field_with_unqualified_name(c).is_ok())
            .unwrap_or(false)
    };
    let col = |present: bool, c: &str| {
        if present {
            format!("CAST(s.{c} AS VARCHAR)")
        } else {
            "CAST(NULL AS VARCHAR)".into()
        }
    };
    let (status, reason, region) = (
        col(has("status").await, "status"),
        col(has("closed_reason").await, "closed_reason"),
        col(has("region").await, "region"),
    );
    for b in q(format!(
        "SELECT c.seller_id, {status}, {reason}, {region}, \
                array_to_string(c.path_attributes, '|'), array_to_string(c.path_sellers, '|') \
         FROM seller_clusters c LEFT JOIN sellers s ON c.seller_id = s.seller_id \
         WHERE c.dt = '{dt}' AND c.cluster_id = {id} ORDER BY c.seller_id"
    ))
    .await?
    {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let (st, re, rg, pa, ps) = (
            strings(b.column(1))?,
            strings(b.column(2))?,
            strings(b.column(3))?,
            strings(b.column(4))?,
            strings(b.column(5))?,
        );
        for i in 0..b.num_rows() {
            let chain = match (&pa[i], &ps[i]) {
                (Some(a), Some(s)) if !a.is_empty() => Some(
                    a.split('|')
                        .zip(s.split('|'))
                        .map(|(a, s)| format!("{a} → {s}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                _ => None,
            };
            p.members.push(Member {
                seller_id: ids.value(i),
                status: st[i].clone(),
                closed_reason: re[i].clone(),
                region: rg[i].clone(),
                chain,
            });
        }
    }
    for b in q(format!(
        "SELECT l.listing_id, l.seller_id, CAST(li.title AS VARCHAR), CAST(r.action AS VARCHAR), \
                CAST(r.score AS DOUBLE), l.cents, CAST(l.cents * l.p AS BIGINT) \
         FROM (SELECT * FROM lead_listings WHERE cluster_id = {id} AND p > 0) l \
         JOIN (SELECT listing_id, action, score FROM risk_scores WHERE dt = '{dt}') r ON l.listing_id = r.listing_id \
         LEFT JOIN listings li ON l.listing_id = li.listing_id \
         ORDER BY l.cents * l.p DESC, l.listing_id LIMIT {LISTINGS_SHOWN}"
    ))
    .await?
    {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let sellers = b.column(1).as_primitive::<Int64Type>();
        let (title, action) = (strings(b.column(2))?, strings(b.column(3))?);
        let score = b.column(4).as_primitive::<Float64Type>();
        let cents = b.column(5).as_primitive::<Int64Type>();
        let est = b.column(6).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            p.listings.push(ListingEvidence {
                listing_id: ids.value(i),
                seller_id: sellers.value(i),
                title: title[i].clone().unwrap_or_default(),
                action: action[i].clone().unwrap_or_default(),
                score: score.value(i),
                sales_cents: cents.value(i),
                estimated_counterfeit_cents: est.value(i),
                reasons: vec![],
            });
        }
    }
    // Reasons of the listings shown, code and detail.
    if !p.listings.is_empty() {
        let ids: Vec<String> = p
            .listings
            .iter()
            .map(|l| l.listing_id.to_string())
            .collect();
        for b in q(format!(
            "SELECT listing_id, u['code'], u['detail'] FROM \
             (SELECT listing_id, unnest(reasons) AS u FROM risk_scores WHERE dt = '{dt}' AND listing_id IN ({}))",
            ids.join(", ")
        ))
        .await?
        {
            let id = b.column(0).as_primitive::<Int64Type>();
            let (code, detail) = (strings(b.column(1))?, strings(b.column(2))?);
            for i in 0..b.num_rows() {
                if let Some(l) = p.listings.iter_mut().find(|l| l.listing_id == id.value(i)) {
                    l.reasons.push(format!(
                        "{}: {}",
                        code[i].as_deref().unwrap_or(""),
                        detail[i].as_deref().unwrap_or("")
                    ));
                }
            }
        }
    }
    for b in q(format!(
        "SELECT l.listing_id, CAST(t.verdict AS VARCHAR) FROM lead_listings l JOIN test_purchases t \
         ON l.listing_id = t.listing_id WHERE l.cluster_id = {id} ORDER BY l.listing_id"
    ))
    .await?
    {
        let id = b.column(0).as_primitive::<Int64Type>();
        let v = strings(b.column(1))?;
        for i in 0..b.num_rows() {
            p.verdicts.push((id.value(i), v[i].clone().unwrap_or_default()));
        }
    }
    for b in q(format!(
        "SELECT to_char(o.ordered_at, '%Y-%m') AS m, CAST(sum(o.amount_cents) AS BIGINT) FROM orders o \
         JOIN lead_listings l ON o.listing_id = l.listing_id WHERE l.cluster_id = {id} AND l.p > 0 GROUP BY 1"
    ))
    .await?
    {
        let m = strings(b.column(0))?;
        let c = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            if let Some(m) = &m[i] {
                p.sales_by_month.insert(m.clone(), c.value(i));
            }
        }
    }
    Ok(p)
}
