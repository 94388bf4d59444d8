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
///
/// One attribute at a time, each written as its own checkpoint, and
/// `link_values` their union: grouping every (attribute, value) of 10
/// million sellers at once held ~20 GB of hash tables (measured), one
/// attribute's values at a time a seventh of that.
pub async fn shared_values(
    ctx: &SessionContext,
    attrs: &[&str],
    cp: &mut Checkpoints,
) -> Result<u64> {
    let mut rows = 0;
    let mut parts = Vec::new();
    for a in attrs {
        let sql = format!(
            // `|| ''`: a value of its own, without the column's field
            // metadata, which DataFusion 55 keeps on one side of a no-op
            // cast and not the other ("Physical input schema should be the
            // same as the one converted from logical input schema").
            "WITH vals AS (SELECT DISTINCT CAST(seller_id AS BIGINT) AS seller_id, CAST({a} AS VARCHAR) || '' AS v \
                           FROM sellers WHERE {a} IS NOT NULL AND CAST({a} AS VARCHAR) <> ''), \
                  shared AS (SELECT v, count(*) AS n FROM vals GROUP BY v HAVING count(*) > 1) \
             SELECT vals.seller_id, '{a}' AS attr, vals.v, shared.n FROM vals \
             JOIN shared ON vals.v = shared.v"
        );
        let name = format!("link_values_{a}");
        rows += cp.save(ctx, &name, ctx.sql(&sql).await?).await?;
        parts.push(format!("SELECT seller_id, attr, v, n FROM {name}"));
    }
    ctx.deregister_table("link_values")?;
    ctx.sql(&format!(
        "CREATE VIEW link_values AS {}",
        parts.join(" UNION ALL ")
    ))
    .await?
    .collect()
    .await?;
    Ok(rows)
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
/// pair shares, in alphabetical order joined by '+') from `link_values`,
/// leaving out values shared by more than `max` sellers. Returns the edges.
///
/// The attributes of a pair are aggregated as bits (`bit_or`), not as
/// `array_agg`/`count(DISTINCT)`: those keep a list or a set per pair, which
/// at 10 million sellers held more than 20 GB (measured, out of memory); a
/// bit set is one integer per pair.
pub async fn edges(ctx: &SessionContext, max: u64, cp: &mut Checkpoints) -> Result<u64> {
    let hard = quoted(HARD);
    let mut sorted: Vec<&str> = ATTRS.to_vec();
    sorted.sort_unstable();
    let bit = |a: &str| {
        1i64 << sorted
            .iter()
            .position(|x| *x == a)
            .expect("an identity attribute")
    };
    let to_bit = sorted
        .iter()
        .map(|a| format!("WHEN '{a}' THEN {}", bit(a)))
        .collect::<Vec<_>>()
        .join(" ");
    let hard_mask: i64 = HARD.iter().map(|a| bit(a)).sum();
    let names = sorted
        .iter()
        .map(|a| format!("CASE WHEN bits & {} <> 0 THEN '{a}' END", bit(a)))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "WITH usable AS (SELECT * FROM link_values WHERE n <= {max}), \
              roots AS (SELECT attr, v, min(seller_id) AS root FROM usable WHERE attr IN ({hard}) GROUP BY attr, v), \
              hard AS (SELECT u.seller_id AS a, r.root AS b, u.attr FROM usable u \
                       JOIN roots r ON u.attr = r.attr AND u.v = r.v WHERE u.seller_id <> r.root), \
              soft AS (SELECT x.seller_id AS a, y.seller_id AS b, x.attr FROM usable x \
                       JOIN usable y ON x.attr = y.attr AND x.v = y.v AND x.seller_id > y.seller_id \
                       WHERE x.attr NOT IN ({hard})), \
              pairs AS (SELECT a, b, CASE attr {to_bit} END AS bit FROM hard \
                        UNION ALL SELECT a, b, CASE attr {to_bit} END AS bit FROM soft), \
              grouped AS (SELECT a, b, bit_or(bit) AS bits FROM pairs GROUP BY a, b) \
         SELECT a, b, concat_ws('+', {names}) AS attrs FROM grouped \
         WHERE bits & {hard_mask} <> 0 OR bits & (bits - 1) <> 0"
    );
    let df = ctx.sql(&sql).await?;
    cp.save(ctx, "link_edges", df).await
}
