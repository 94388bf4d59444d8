//! Seller linkage (the seed report's "same-person model"): sellers that share
//! an identity attribute with a seller closed for counterfeiting. Computed as
//! equi-joins on DataFusion, one per attribute the `sellers` table carries.
//!
//! A value shared by very many sellers (a placeholder hash, a logistics
//! hub's address, a default device id) is not evidence of one person, and
//! joining on it pairs every seller that has it: such *hot* values (more
//! than `scan.max_sellers_per_identity` sellers) are left out of the joins
//! and reported.

use anyhow::Result;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::execution::context::SessionContext;
use serde::Serialize;

use dajia_schemas::IDENTITY_ATTRIBUTES as ATTRS;

/// An identity value left out of the links, and how many sellers share it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HotValue {
    pub attribute: String,
    pub value: String,
    pub sellers: u64,
}

/// Report at most this many hot values (the most shared first).
const REPORTED: usize = 100;

/// Register the view `seller_links(seller_id, link_attrs List<Utf8>,
/// link_sellers List<Int64>)`: one row per linked seller. Returns the hot
/// values left out (the most shared first, at most [`REPORTED`]).
pub async fn register_seller_links(
    ctx: &SessionContext,
    max_sellers_per_value: u64,
) -> Result<Vec<HotValue>> {
    let schema = ctx.table("sellers").await?.schema().clone();
    let present: Vec<&str> = ATTRS
        .iter()
        .copied()
        .filter(|a| schema.field_with_unqualified_name(a).is_ok())
        .collect();
    let has = |c: &str| schema.field_with_unqualified_name(c).is_ok();
    let closed_filter = if has("closed_reason") {
        "AND closed_reason = 'counterfeit'"
    } else {
        ""
    };
    let hot = |a: &str| {
        format!(
            "SELECT CAST({a} AS VARCHAR) AS v, count(*) AS n FROM sellers \
             WHERE {a} IS NOT NULL AND {a} <> '' GROUP BY {a} HAVING count(*) > {max_sellers_per_value}"
        )
    };
    let sql = if present.is_empty() {
        "CREATE VIEW seller_links AS SELECT CAST(NULL AS BIGINT) AS seller_id, CAST(NULL AS VARCHAR[]) AS link_attrs, CAST(NULL AS BIGINT[]) AS link_sellers WHERE false".to_string()
    } else {
        let pairs: Vec<String> = present
            .iter()
            .map(|a| {
                format!(
                    "SELECT CAST(s.seller_id AS BIGINT) AS seller_id, '{a}' AS attr, CAST(c.seller_id AS BIGINT) AS closed_id \
                     FROM sellers s JOIN closed c ON s.{a} = c.{a} \
                     WHERE s.seller_id <> c.seller_id AND s.{a} IS NOT NULL AND s.{a} <> '' \
                       AND CAST(c.{a} AS VARCHAR) NOT IN (SELECT v FROM ({}))",
                    hot(a)
                )
            })
            .collect();
        format!(
            "CREATE VIEW seller_links AS \
             WITH closed AS (SELECT * FROM sellers WHERE status = 'closed' {closed_filter}), \
             pairs AS ({}) \
             SELECT seller_id, array_agg(attr) AS link_attrs, array_agg(closed_id) AS link_sellers FROM pairs GROUP BY seller_id",
            pairs.join(" UNION ALL ")
        )
    };
    ctx.sql(&sql).await?.collect().await?;
    let mut found = Vec::new();
    for a in &present {
        for b in ctx.sql(&hot(a)).await?.collect().await? {
            let n = b.column(1).as_primitive::<Int64Type>();
            let v = datafusion::arrow::compute::cast(
                b.column(0),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )?;
            let v = v.as_string::<i32>();
            for i in 0..b.num_rows() {
                found.push(HotValue {
                    attribute: a.to_string(),
                    value: v.value(i).to_string(),
                    sellers: n.value(i) as u64,
                });
            }
        }
    }
    found.sort_by(|x, y| y.sellers.cmp(&x.sellers).then(x.value.cmp(&y.value)));
    if found.len() > REPORTED {
        tracing::warn!(
            "{} identity values are shared by more than {max_sellers_per_value} sellers; the manifest lists the {REPORTED} most shared",
            found.len()
        );
        found.truncate(REPORTED);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    /// Seller 1 is closed for counterfeiting; sellers 2..=n share its
    /// address (a hub's, when n is large); seller 100 shares its phone.
    fn sellers(n: i64) -> RecordBatch {
        let ids: Vec<i64> = (1..=n).chain([100]).collect();
        let status: Vec<&str> = ids
            .iter()
            .map(|&i| if i == 1 { "closed" } else { "active" })
            .collect();
        let reason: Vec<Option<&str>> = ids
            .iter()
            .map(|&i| (i == 1).then_some("counterfeit"))
            .collect();
        let address: Vec<Option<&str>> = ids.iter().map(|&i| (i != 100).then_some("hub")).collect();
        let phone: Vec<Option<&str>> = ids
            .iter()
            .map(|&i| (i == 1 || i == 100).then_some("p1"))
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("seller_id", DataType::Int64, false),
                Field::new("status", DataType::Utf8, true),
                Field::new("closed_reason", DataType::Utf8, true),
                Field::new("address_hash", DataType::Utf8, true),
                Field::new("phone_hash", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(status)),
                Arc::new(StringArray::from(reason)),
                Arc::new(StringArray::from(address)),
                Arc::new(StringArray::from(phone)),
            ],
        )
        .unwrap()
    }

    async fn linked(n: i64, max: u64) -> (usize, Vec<HotValue>) {
        let ctx = SessionContext::new();
        ctx.register_batch("sellers", sellers(n)).unwrap();
        let hot = register_seller_links(&ctx, max).await.unwrap();
        let rows = ctx
            .sql("SELECT * FROM seller_links")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        (rows.iter().map(|b| b.num_rows()).sum(), hot)
    }

    #[tokio::test]
    async fn a_value_shared_by_too_many_sellers_links_nobody_and_is_reported() {
        assert!(ATTRS.contains(&"address_hash") && ATTRS.contains(&"phone_hash"));
        // A few sellers at one address: all linked to the closed one.
        assert_eq!(linked(5, 50).await, (5, vec![]));
        // A hub shared by 200: only the phone link stays.
        let (rows, hot) = linked(200, 50).await;
        assert_eq!(rows, 1);
        assert_eq!(
            hot,
            vec![HotValue {
                attribute: "address_hash".into(),
                value: "hub".into(),
                sellers: 199 // all but seller 100
            }]
        );
    }
}
