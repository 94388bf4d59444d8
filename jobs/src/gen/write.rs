//! Parquet writers of the generated tables, in the contract's schemas.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::*;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::sellers::SellerPlan;
use super::{GenBrand, Row};

pub fn clear_table(root: &Path, table: &str) -> Result<()> {
    let dir = root.join(table);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

pub fn write_batch(path: &Path, batch: &RecordBatch) -> Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let tmp = path.with_extension("parquet.tmp");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    w.write(batch)?;
    w.close()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub(super) fn table_schema(name: &str) -> Arc<Schema> {
    let t = dajia_schemas::table(name).expect("known table");
    let s = t.schema();
    Arc::new(Schema::new(
        s.fields()
            .iter()
            .map(|f| f.as_ref().clone().with_metadata(Default::default()))
            .collect::<Vec<_>>(),
    ))
}

pub(super) fn ts(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter(values).with_timezone("UTC"))
}

pub fn listings(path: &Path, rows: &[Row]) -> Result<()> {
    let schema = table_schema("listings");
    let mut image_ids = ListBuilder::new(StringBuilder::new())
        .with_field(Arc::new(Field::new_list_field(DataType::Utf8, true)));
    for r in rows {
        for (id, _) in &r.images {
            image_ids.values().append_value(id);
        }
        image_ids.append(true);
    }
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.listing_id),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.seller_id),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.title.as_str()),
            )),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.description.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.category.as_str()),
            )),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.brand.as_deref()),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.price_cents),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "CNY"))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.ship_from.as_str()),
            )),
            Arc::new(image_ids.finish()),
            ts(rows.iter().map(|r| Some(r.updated_at_us))),
        ],
    )?;
    write_batch(path, &batch)
}

pub fn sellers(root: &Path, plan: &SellerPlan, now_us: i64) -> Result<()> {
    clear_table(root, "sellers")?;
    let s = &plan.sellers;
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(s.iter().map(|x| x.id))),
        ts(s.iter()
            .map(|x| Some(now_us - x.registered_days_ago * 86_400_000_000))),
        Arc::new(StringArray::from_iter_values(s.iter().map(|x| x.status))),
        Arc::new(StringArray::from_iter(s.iter().map(|x| x.closed_reason))),
        ts(s.iter()
            .map(|x| x.closed_days_ago.map(|d| now_us - d * 86_400_000_000))),
        Arc::new(StringArray::from_iter_values(s.iter().map(|x| x.region))),
    ];
    for i in 0..7 {
        cols.push(Arc::new(StringArray::from_iter(
            s.iter().map(|x| x.attrs[i].as_deref()),
        )));
    }
    let batch = RecordBatch::try_new(table_schema("sellers"), cols)?;
    write_batch(&root.join("sellers/part-00000.parquet"), &batch)
}

pub fn brands(root: &Path, brands: &[GenBrand]) -> Result<()> {
    clear_table(root, "brands")?;
    let list_utf8 = |f: &dyn Fn(&GenBrand) -> Vec<String>| -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new())
            .with_field(Arc::new(Field::new_list_field(DataType::Utf8, true)));
        for x in brands {
            for v in f(x) {
                b.values().append_value(v);
            }
            b.append(true);
        }
        Arc::new(b.finish())
    };
    let mut auth = ListBuilder::new(Int64Builder::new())
        .with_field(Arc::new(Field::new_list_field(DataType::Int64, true)));
    for x in brands {
        for v in &x.authorized {
            auth.values().append_value(*v);
        }
        auth.append(true);
    }
    let batch = RecordBatch::try_new(
        table_schema("brands"),
        vec![
            Arc::new(Int64Array::from_iter_values(brands.iter().map(|b| b.id))),
            Arc::new(StringArray::from_iter_values(
                brands.iter().map(|b| b.name.as_str()),
            )),
            list_utf8(&|b| b.aliases.clone()),
            list_utf8(&|b| b.categories.iter().map(|c| c.to_string()).collect()),
            Arc::new(Int64Array::from_iter(
                brands.iter().map(|b| b.min_price_cents),
            )),
            Arc::new(BooleanArray::from_iter(
                brands.iter().map(|b| Some(b.protected)),
            )),
            Arc::new(auth.finish()),
        ],
    )?;
    write_batch(&root.join("brands/part-00000.parquet"), &batch)
}

/// The `images` rows of a part: one per listing image. Returns the count.
pub fn images(path: &Path, rows: &[Row]) -> Result<usize> {
    let imgs: Vec<(&str, i64, &[u8])> = rows
        .iter()
        .flat_map(|r| {
            r.images
                .iter()
                .map(move |(id, b)| (id.as_str(), r.listing_id, b.as_slice()))
        })
        .collect();
    let batch = RecordBatch::try_new(
        table_schema("images"),
        vec![
            Arc::new(StringArray::from_iter_values(imgs.iter().map(|i| i.0))),
            Arc::new(Int64Array::from_iter_values(imgs.iter().map(|i| i.1))),
            Arc::new(BinaryArray::from_iter_values(imgs.iter().map(|i| i.2))),
            Arc::new(StringArray::from(vec![None::<&str>; imgs.len()])),
        ],
    )?;
    write_batch(path, &batch)?;
    Ok(imgs.len())
}

/// Official images of brands.
pub fn brand_images(root: &Path, imgs: &[(i64, String, Vec<u8>)]) -> Result<()> {
    clear_table(root, "brand_images")?;
    let batch = RecordBatch::try_new(
        table_schema("brand_images"),
        vec![
            Arc::new(Int64Array::from_iter_values(imgs.iter().map(|i| i.0))),
            Arc::new(StringArray::from_iter_values(
                imgs.iter().map(|i| i.1.as_str()),
            )),
            Arc::new(BinaryArray::from_iter_values(
                imgs.iter().map(|i| i.2.as_slice()),
            )),
        ],
    )?;
    write_batch(&root.join("brand_images/part-00000.parquet"), &batch)
}

/// Ground truth, beside the catalog: one row per listing.
pub fn labels(root: &Path, rows: &[Row]) -> Result<()> {
    clear_table(root, "ground_truth")?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("listing_id", DataType::Int64, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("technique", DataType::Utf8, true),
        Field::new("evasion", DataType::Utf8, true),
        Field::new("hard_negative", DataType::Utf8, true),
        Field::new("brand_id", DataType::Int64, true),
        Field::new("image_technique", DataType::Utf8, true),
        Field::new("benign_kind", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.listing_id),
            )),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| {
                if r.counterfeit {
                    "counterfeit"
                } else {
                    "genuine"
                }
            }))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.technique))),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.evasion.as_deref()),
            )),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.hard_negative))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.brand_id))),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.image_technique),
            )),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.benign_kind))),
        ],
    )?;
    write_batch(&root.join("ground_truth/labels.parquet"), &batch)
}

/// Ground truth about sellers, beside the catalog: each seller's role and,
/// for the rings of closed counterfeiters, the ring (its closed account's
/// id) and how many links from it.
pub fn seller_truth(root: &Path, plan: &SellerPlan) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("seller_id", DataType::Int64, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("network", DataType::Int64, true),
        Field::new("hops", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(
                plan.sellers.iter().map(|s| s.id),
            )),
            Arc::new(StringArray::from_iter_values(
                plan.truth.iter().map(|t| t.role.as_str()),
            )),
            Arc::new(Int64Array::from_iter(plan.truth.iter().map(|t| t.network))),
            Arc::new(Int64Array::from_iter(plan.truth.iter().map(|t| t.hops))),
        ],
    )?;
    // A folder of its own: `ground_truth/*.parquet` are the listing labels.
    write_batch(&root.join("ground_truth/sellers/truth.parquet"), &batch)
}

/// Orders of the last 90 days: a few per listing on average, many more for
/// the listings of counterfeiters' rings (what makes a ring a lead).
pub fn orders(
    root: &Path,
    rows: &[Row],
    plan: &SellerPlan,
    seed: u64,
    now_us: i64,
) -> Result<usize> {
    clear_table(root, "orders")?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x0bde);
    // Rings differ in size of business: a factor per ring, so that some
    // pass a leads threshold and some do not.
    let ring_scale: std::collections::HashMap<i64, f64> = plan
        .sellers
        .iter()
        .zip(&plan.truth)
        .filter(|(_, t)| t.role == super::sellers::Role::Relapsed)
        .map(|(s, t)| {
            let ring = t.network.unwrap_or(0) as u64;
            let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ ring.wrapping_mul(0x9E37));
            (s.id, r.random_range(0.02..1.5))
        })
        .collect();
    let regions = ["浙江省", "广东省", "江苏省", "北京市", "四川省", "湖北省"];
    let (mut ids, mut listing, mut seller, mut qty, mut amount, mut at, mut to) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for r in rows {
        let mean: f64 = ring_scale.get(&r.seller_id).map_or(1.5, |k| 12.0 * k);
        // Geometric number of orders with that mean.
        let p = 1.0 / (1.0 + mean);
        let mut k = 0;
        while !rng.random_bool(p) && k < 200 {
            k += 1;
        }
        for _ in 0..k {
            let q = rng.random_range(1..=3i64);
            ids.push(ids.len() as i64 + 1);
            listing.push(r.listing_id);
            seller.push(r.seller_id);
            qty.push(q);
            amount.push(r.price_cents.max(0) * q);
            at.push(Some(now_us - rng.random_range(0..86_400_000_000i64 * 90)));
            to.push(*regions.choose(&mut rng).unwrap());
        }
    }
    let n = ids.len();
    let batch = RecordBatch::try_new(
        table_schema("orders"),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Int64Array::from(listing)),
            Arc::new(Int64Array::from(seller)),
            Arc::new(Int64Array::from(qty)),
            Arc::new(Int64Array::from(amount)),
            ts(at),
            Arc::new(StringArray::from(to)),
        ],
    )?;
    write_batch(&root.join("orders/part-00000.parquet"), &batch)?;
    Ok(n)
}

/// Test purchases of about 1% of the listings, with their true verdict:
/// the labelled sample a platform would have.
pub fn test_purchases(root: &Path, rows: &[Row], seed: u64, now_us: i64) -> Result<()> {
    clear_table(root, "test_purchases")?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x7e57);
    let picked: Vec<&Row> = rows.iter().filter(|_| rng.random_bool(0.01)).collect();
    let batch = RecordBatch::try_new(
        table_schema("test_purchases"),
        vec![
            Arc::new(Int64Array::from_iter_values(
                picked.iter().map(|r| r.listing_id),
            )),
            ts(picked
                .iter()
                .map(|_| Some(now_us - rng.random_range(0..86_400_000_000i64 * 90)))),
            Arc::new(StringArray::from_iter_values(picked.iter().map(|r| {
                if r.counterfeit {
                    "counterfeit"
                } else {
                    "genuine"
                }
            }))),
        ],
    )?;
    write_batch(&root.join("test_purchases/part-00000.parquet"), &batch)
}
