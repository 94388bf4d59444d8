//! Load the brand knowledge base from a registered `brands` table.

use std::collections::HashSet;

use anyhow::Result;
use datafusion::arrow::array::*;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::execution::context::SessionContext;

use dajia_kernels::risk::{Brand, KnowledgeBase};

fn strings(a: &ArrayRef) -> Result<StringArray> {
    Ok(cast(a, &DataType::Utf8)?
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap()
        .clone())
}

fn list_values<T: Clone>(
    l: &ListArray,
    i: usize,
    f: impl Fn(&ArrayRef) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    if l.is_null(i) {
        return Ok(vec![]);
    }
    f(&l.value(i))
}

/// Read `brands` (already registered on `ctx`) into a knowledge base.
pub async fn load(ctx: &SessionContext) -> Result<KnowledgeBase> {
    let schema = ctx.table("brands").await?.schema().clone();
    let has = |c: &str| -> bool { schema.field_with_unqualified_name(c).is_ok() };
    let col = |c: &str, default: &str| {
        if has(c) {
            c.to_string()
        } else {
            format!("{default} AS {c}")
        }
    };
    let sql = format!(
        "SELECT CAST(brand_id AS BIGINT) AS brand_id, CAST(name AS VARCHAR) AS name, {}, {}, CAST({} AS BIGINT) AS min_price_cents, protected, {} FROM brands WHERE brand_id IS NOT NULL AND name IS NOT NULL",
        col("aliases", "CAST(NULL AS VARCHAR[])"),
        col("categories", "CAST(NULL AS VARCHAR[])"),
        if has("min_price_cents") { "min_price_cents" } else { "NULL" },
        col("authorized_sellers", "CAST(NULL AS BIGINT[])"),
    );
    let mut brands = Vec::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        let id = cast(b.column(0), &DataType::Int64)?;
        let id = id.as_any().downcast_ref::<Int64Array>().unwrap();
        let name = strings(b.column(1))?;
        let aliases = cast(
            b.column(2),
            &DataType::List(std::sync::Arc::new(
                datafusion::arrow::datatypes::Field::new_list_field(DataType::Utf8, true),
            )),
        )?;
        let aliases = aliases.as_any().downcast_ref::<ListArray>().unwrap();
        let cats = cast(
            b.column(3),
            &DataType::List(std::sync::Arc::new(
                datafusion::arrow::datatypes::Field::new_list_field(DataType::Utf8, true),
            )),
        )?;
        let cats = cats.as_any().downcast_ref::<ListArray>().unwrap();
        let floor = b
            .column(4)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .clone();
        let protected = b
            .column(5)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .unwrap()
            .clone();
        let auth = cast(
            b.column(6),
            &DataType::List(std::sync::Arc::new(
                datafusion::arrow::datatypes::Field::new_list_field(DataType::Int64, true),
            )),
        )?;
        let auth = auth.as_any().downcast_ref::<ListArray>().unwrap();
        let str_list = |a: &ArrayRef| -> Result<Vec<String>> {
            let s = strings(a)?;
            Ok(s.iter().flatten().map(str::to_string).collect())
        };
        for i in 0..b.num_rows() {
            brands.push(Brand {
                id: id.value(i),
                name: name.value(i).to_string(),
                aliases: list_values(aliases, i, str_list)?,
                categories: list_values(cats, i, str_list)?,
                min_price_cents: (!floor.is_null(i)).then(|| floor.value(i)),
                protected: !protected.is_null(i) && protected.value(i),
                authorized_sellers: list_values(auth, i, |a| {
                    Ok(a.as_any()
                        .downcast_ref::<Int64Array>()
                        .unwrap()
                        .iter()
                        .flatten()
                        .collect())
                })?
                .into_iter()
                .collect::<HashSet<i64>>(),
            });
        }
    }
    Ok(KnowledgeBase::new(brands))
}
