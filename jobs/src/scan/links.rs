//! Seller linkage (the seed report's "same-person model"): sellers that share
//! an identity attribute with a seller closed for counterfeiting. Computed as
//! equi-joins on DataFusion, one per attribute the `sellers` table carries.

use anyhow::Result;
use datafusion::execution::context::SessionContext;

use dajia_schemas::IDENTITY_ATTRIBUTES as ATTRS;

/// Register the view `seller_links(seller_id, link_attrs List<Utf8>,
/// link_sellers List<Int64>)`: one row per linked seller.
pub async fn register_seller_links(ctx: &SessionContext) -> Result<()> {
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
    let sql = if present.is_empty() {
        "CREATE VIEW seller_links AS SELECT CAST(NULL AS BIGINT) AS seller_id, CAST(NULL AS VARCHAR[]) AS link_attrs, CAST(NULL AS BIGINT[]) AS link_sellers WHERE false".to_string()
    } else {
        let pairs: Vec<String> = present
            .iter()
            .map(|a| {
                format!(
                    "SELECT CAST(s.seller_id AS BIGINT) AS seller_id, '{a}' AS attr, CAST(c.seller_id AS BIGINT) AS closed_id \
                     FROM sellers s JOIN closed c ON s.{a} = c.{a} \
                     WHERE s.seller_id <> c.seller_id AND s.{a} IS NOT NULL AND s.{a} <> ''"
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
    Ok(())
}
