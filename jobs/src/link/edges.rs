//! From `sellers` to the seller graph, as SQL: which identity values link
//! sellers, which are too common to mean one person, and the edges.
//!
//! - A value shared by 2..=`max` sellers is evidence (`link_values`).
//! - A value shared by more than `max` sellers (a logistics hub's address, a
//!   default device id, a placeholder) links nobody and is reported: joining
//!   on it would pair every seller that has it, and they are strangers.
//! - A hard attribute (ID number or photo, bank account, phone;
//!   `dajia_schemas::HARD_IDENTITY_ATTRIBUTES`) links every seller sharing the
//!   value, as a star around the smallest seller id (no pairs, so a value
//!   shared by `max` sellers costs `max` edges, not `max²`).
//! - A soft attribute (device, address, name) links a pair only when the
//!   pair shares at least two soft values: an office, a family or a common
//!   name shares one.

use anyhow::Result;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::execution::context::SessionContext;
use serde::Serialize;

use dajia_schemas::{HARD_IDENTITY_ATTRIBUTES as HARD, IDENTITY_ATTRIBUTES as ATTRS};

use super::checkpoint::Checkpoints;

/// An identity value left out of the links, and how many sellers share it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HotValue {
    pub attribute: String,
    pub value: String,
    pub sellers: u64,
}

/// Report at most this many hot values (the most shared first).
pub const REPORTED: usize = 100;

/// The identity columns `sellers` has.
pub async fn present_attributes(ctx: &SessionContext) -> Result<Vec<&'static str>> {
    let schema = ctx.table("sellers").await?.schema().clone();
    Ok(ATTRS
        .iter()
        .copied()
        .filter(|a| schema.field_with_unqualified_name(a).is_ok())
        .collect())
}

fn quoted(attrs: &[&str]) -> String {
    attrs
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Register `link_values(seller_id, attr, v, n)`: every identity value
/// shared by two sellers or more (hot ones included, `n` sellers), one row
/// per seller holding it. `attrs` must be non-empty.
pub async fn shared_values(
    ctx: &SessionContext,
    attrs: &[&str],
    cp: &mut Checkpoints,
) -> Result<u64> {
    let vals: Vec<String> = attrs
        .iter()
        .map(|a| {
            format!(
                "SELECT CAST(seller_id AS BIGINT) AS seller_id, '{a}' AS attr, CAST({a} AS VARCHAR) AS v \
                 FROM sellers WHERE {a} IS NOT NULL AND CAST({a} AS VARCHAR) <> ''"
            )
        })
        .collect();
    let sql = format!(
        "WITH vals AS (SELECT DISTINCT * FROM ({})), \
              shared AS (SELECT attr, v, count(*) AS n FROM vals GROUP BY attr, v HAVING count(*) > 1) \
         SELECT vals.seller_id, vals.attr, vals.v, shared.n FROM vals \
         JOIN shared ON vals.attr = shared.attr AND vals.v = shared.v",
        vals.join(" UNION ALL ")
    );
    let df = ctx.sql(&sql).await?;
    cp.save(ctx, "link_values", df).await
}

/// Values shared by more than `max` sellers, the most shared first (at most
/// [`REPORTED`]), and how many there are in all.
pub async fn hot_values(ctx: &SessionContext, max: u64) -> Result<(Vec<HotValue>, u64)> {
    let all = crate::session::counts(
        ctx,
        &format!("SELECT count(*) FROM (SELECT DISTINCT attr, v FROM link_values WHERE n > {max})"),
    )
    .await?[0];
    let mut found = Vec::new();
    let batches = ctx
        .sql(&format!(
            "SELECT DISTINCT attr, v, n FROM link_values WHERE n > {max} ORDER BY n DESC, attr, v LIMIT {REPORTED}"
        ))
        .await?
        .collect()
        .await?;
    for b in batches {
        // Strings may come back as views: read them as plain Utf8.
        let a = cast(b.column(0), &DataType::Utf8)?;
        let v = cast(b.column(1), &DataType::Utf8)?;
        let (a, v, n) = (
            a.as_string::<i32>(),
            v.as_string::<i32>(),
            b.column(2).as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            found.push(HotValue {
                attribute: a.value(i).to_string(),
                value: v.value(i).to_string(),
                sellers: n.value(i) as u64,
            });
        }
    }
    if all > REPORTED as u64 {
        tracing::warn!(
            "{all} identity values are shared by more than {max} sellers; reporting the {REPORTED} most shared"
        );
    }
    Ok((found, all))
}

/// Register `link_edges(a, b, attrs)` (`a > b`, `attrs` the attributes the
/// pair shares, joined by '+') from `link_values`, leaving out values shared
/// by more than `max` sellers. Returns the edges.
pub async fn edges(ctx: &SessionContext, max: u64, cp: &mut Checkpoints) -> Result<u64> {
    let hard = quoted(HARD);
    let sql = format!(
        "WITH usable AS (SELECT * FROM link_values WHERE n <= {max}), \
              roots AS (SELECT attr, v, min(seller_id) AS root FROM usable WHERE attr IN ({hard}) GROUP BY attr, v), \
              hard AS (SELECT u.seller_id AS a, r.root AS b, u.attr, true AS strong FROM usable u \
                       JOIN roots r ON u.attr = r.attr AND u.v = r.v WHERE u.seller_id <> r.root), \
              soft AS (SELECT x.seller_id AS a, y.seller_id AS b, x.attr, false AS strong FROM usable x \
                       JOIN usable y ON x.attr = y.attr AND x.v = y.v AND x.seller_id > y.seller_id \
                       WHERE x.attr NOT IN ({hard})), \
              pairs AS (SELECT * FROM hard UNION ALL SELECT * FROM soft) \
         SELECT a, b, array_to_string(array_sort(array_distinct(array_agg(attr))), '+') AS attrs \
         FROM pairs GROUP BY a, b \
         HAVING bool_or(strong) OR count(DISTINCT attr) >= 2"
    );
    let df = ctx.sql(&sql).await?;
    cp.save(ctx, "link_edges", df).await
}
