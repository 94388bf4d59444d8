use std::sync::Arc;

use datafusion::arrow::array::*;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use dajia_kernels::risk::{
    assess_batch, ImageHit, ImageMatchKind, KnowledgeBase, ListingInput, OcrText, Reason,
    SellerLink,
};
use dajia_schemas::Ty;

use super::{coerce_string_or_view, kb_identity, strings_arg};

/// `assess_listing(title, description, brand, category, price_cents,
/// seller_id, link_attrs, link_sellers [, image_hits [, ocr_texts [,
/// link_closed_on]]])`: the scan's per-listing assessment as `Struct<score
/// Float32, action Utf8, reasons List<Struct>, brand_id Int64>`.
/// `image_hits` ([`image_hits_type`]) are the listing's images that matched
/// the image indexes; `link_closed_on` (a date) when the chain's closed
/// seller was closed, named in the reason.
pub struct AssessListing {
    pub(crate) kb: Arc<KnowledgeBase>,
    signature: Signature,
}
kb_identity!(AssessListing);

impl AssessListing {
    pub fn new(kb: Arc<KnowledgeBase>) -> Self {
        Self {
            kb,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

pub fn assess_return_type() -> DataType {
    DataType::Struct(Fields::from(vec![
        Field::new("score", DataType::Float32, false),
        Field::new("action", DataType::Utf8, false),
        Field::new("reasons", Ty::Reasons.to_arrow(), false),
        Field::new("brand_id", DataType::Int64, true),
    ]))
}

/// Fields of one image hit, as the scan hands them to `assess_listing`.
pub fn image_hit_fields() -> Fields {
    Fields::from(vec![
        Field::new("kind", DataType::Utf8, false),
        Field::new("image_id", DataType::Utf8, false),
        Field::new("matched_image_id", DataType::Utf8, false),
        Field::new("brand_id", DataType::Int64, true),
        Field::new("matched_listing_id", DataType::Int64, true),
        Field::new("similarity", DataType::Float32, false),
    ])
}

pub fn image_hits_type() -> DataType {
    list_of(DataType::Struct(image_hit_fields()))
}

/// Fields of the text OCR read in one image, as the scan hands it to
/// `assess_listing`. Nullable, so that any list of (image_id,
/// text) structs casts to it (`named_struct` makes nullable fields); a row
/// without text is skipped.
pub fn ocr_text_fields() -> Fields {
    Fields::from(vec![
        Field::new("image_id", DataType::Utf8, true),
        Field::new("text", DataType::Utf8, true),
    ])
}

pub fn ocr_texts_type() -> DataType {
    list_of(DataType::Struct(ocr_text_fields()))
}

/// Row `i` of a `List<Struct>` column as its structs (None when NULL).
fn struct_row(col: &ListArray, i: usize) -> Option<StructArray> {
    (!col.is_null(i)).then(|| {
        col.value(i)
            .as_any()
            .downcast_ref::<StructArray>()
            .expect("coerced to List<Struct>")
            .clone()
    })
}

/// Row `i` of an `ocr_texts` column.
fn ocr_texts(col: &ListArray, i: usize) -> Vec<OcrText> {
    let Some(s) = struct_row(col, i) else {
        return Vec::new();
    };
    let str_col = |k: usize| {
        s.column(k)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("coerced to Utf8")
    };
    let (ids, texts) = (str_col(0), str_col(1));
    (0..s.len())
        .filter(|&j| !s.is_null(j) && !texts.is_null(j))
        .map(|j| OcrText {
            image_id: if ids.is_null(j) {
                "?".into()
            } else {
                ids.value(j).to_string()
            },
            text: texts.value(j).to_string(),
        })
        .collect()
}

/// Row `i` of an `image_hits` column.
fn image_hits(hits: &ListArray, i: usize) -> Vec<ImageHit> {
    let Some(s) = struct_row(hits, i) else {
        return Vec::new();
    };
    let str_col = |k: usize| {
        s.column(k)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("Utf8")
            .clone()
    };
    let i64_col = |k: usize| {
        s.column(k)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("Int64")
            .clone()
    };
    let (kind, image, matched) = (str_col(0), str_col(1), str_col(2));
    let (brand, listing) = (i64_col(3), i64_col(4));
    let sim = s
        .column(5)
        .as_any()
        .downcast_ref::<Float32Array>()
        .expect("Float32");
    (0..s.len())
        .filter(|&j| !s.is_null(j) && !kind.is_null(j))
        .filter_map(|j| {
            Some(ImageHit {
                kind: ImageMatchKind::parse(kind.value(j))?,
                image_id: image.value(j).to_string(),
                matched_image_id: matched.value(j).to_string(),
                brand_id: (!brand.is_null(j)).then(|| brand.value(j)),
                matched_listing_id: (!listing.is_null(j)).then(|| listing.value(j)),
                similarity: sim.value(j),
            })
        })
        .collect()
}

/// An optional argument as an array of `n` rows, or `None` when it is
/// absent or a NULL literal (the scan passes `NULL` when the catalog has no
/// images): then no array of `n` nulls is built and no row is looked at.
fn optional_arg(v: Option<&ColumnarValue>, n: usize) -> Result<Option<ArrayRef>> {
    match v {
        None => Ok(None),
        Some(ColumnarValue::Scalar(s)) if s.is_null() => Ok(None),
        Some(v) => Ok(Some(v.to_array(n)?)),
    }
}

fn list_of(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(t, true)))
}

/// Append reasons as one list entry.
pub(crate) fn append_reasons(b: &mut ListBuilder<StructBuilder>, reasons: &[Reason]) {
    let sb = b.values();
    for r in reasons {
        sb.field_builder::<StringBuilder>(0)
            .unwrap()
            .append_value(r.code.as_str());
        sb.field_builder::<StringBuilder>(1)
            .unwrap()
            .append_value(&r.detail);
        sb.field_builder::<Float32Builder>(2)
            .unwrap()
            .append_value(r.weight);
        sb.append(true);
    }
    b.append(true);
}

pub(crate) fn reasons_builder(capacity: usize) -> ListBuilder<StructBuilder> {
    let fields = dajia_schemas::reason_fields();
    let sb = StructBuilder::from_fields(fields, capacity);
    ListBuilder::new(sb).with_field(Arc::new(Field::new_list_field(
        DataType::Struct(dajia_schemas::reason_fields()),
        true,
    )))
}

impl ScalarUDFImpl for AssessListing {
    fn name(&self) -> &str {
        "assess_listing"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        let f = "assess_listing";
        if !(8..=11).contains(&t.len()) {
            return datafusion::common::plan_err!("{f} takes 8 to 11 arguments (title, description, brand, category, price_cents, seller_id, link_attrs, link_sellers [, image_hits [, ocr_texts [, link_closed_on]]]), got {}", t.len());
        }
        let mut types = vec![
            coerce_string_or_view(&t[0], f, 1)?,
            coerce_string_or_view(&t[1], f, 2)?,
            coerce_string_or_view(&t[2], f, 3)?,
            coerce_string_or_view(&t[3], f, 4)?,
            DataType::Int64,
            DataType::Int64,
            list_of(DataType::Utf8),
            list_of(DataType::Int64),
        ];
        if t.len() >= 9 {
            types.push(image_hits_type());
        }
        if t.len() >= 10 {
            types.push(ocr_texts_type());
        }
        if t.len() == 11 {
            // A date, a timestamp (its day) or 'YYYY-MM-DD' text.
            types.push(DataType::Date32);
        }
        Ok(types)
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(assess_return_type())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let title = strings_arg(&args.args[0], n)?;
        let desc = strings_arg(&args.args[1], n)?;
        let brand = strings_arg(&args.args[2], n)?;
        let category = strings_arg(&args.args[3], n)?;
        let price = args.args[4].to_array(n)?;
        let price = price
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("coerced to Int64");
        let seller = args.args[5].to_array(n)?;
        let seller = seller
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("coerced to Int64");
        let attrs = args.args[6].to_array(n)?;
        let attrs = attrs
            .as_any()
            .downcast_ref::<ListArray>()
            .expect("coerced to List<Utf8>");
        let sellers = args.args[7].to_array(n)?;
        let sellers = sellers
            .as_any()
            .downcast_ref::<ListArray>()
            .expect("coerced to List<Int64>");
        let hits = optional_arg(args.args.get(8), n)?;
        let hits = hits.as_ref().map(|h| {
            h.as_any()
                .downcast_ref::<ListArray>()
                .expect("coerced to List<Struct>")
        });

        let ocr = optional_arg(args.args.get(9), n)?;
        let ocr = ocr.as_ref().map(|h| {
            h.as_any()
                .downcast_ref::<ListArray>()
                .expect("coerced to List<Struct>")
        });

        let closed_on = optional_arg(args.args.get(10), n)?;
        let closed_on = closed_on.as_ref().map(|c| {
            c.as_any()
                .downcast_ref::<Date32Array>()
                .expect("coerced to Date32")
        });

        let inputs: Vec<ListingInput> = (0..n)
            .map(|i| {
                let link = if attrs.is_null(i) || sellers.is_null(i) {
                    None
                } else {
                    let a = attrs.value(i);
                    let a = a.as_any().downcast_ref::<StringArray>().expect("Utf8 list");
                    let s = sellers.value(i);
                    let s = s.as_any().downcast_ref::<Int64Array>().expect("Int64 list");
                    let steps: Vec<(String, i64)> = (0..a.len().min(s.len()))
                        .filter(|&j| !a.is_null(j) && !s.is_null(j))
                        .map(|j| (a.value(j).to_string(), s.value(j)))
                        .collect();
                    let closed_on = closed_on
                        .filter(|c| c.is_valid(i))
                        .and_then(|c| c.value_as_date(i))
                        .map(|d| d.to_string());
                    (!steps.is_empty()).then_some(SellerLink { steps, closed_on })
                };
                ListingInput {
                    title: title.get(i).unwrap_or(""),
                    description: desc.get(i),
                    declared_brand: brand.get(i),
                    category: category.get(i),
                    price_cents: (!price.is_null(i)).then(|| price.value(i)),
                    seller_id: if seller.is_null(i) {
                        -1
                    } else {
                        seller.value(i)
                    },
                    link,
                    images: hits.map(|h| image_hits(h, i)).unwrap_or_default(),
                    ocr: ocr.map(|o| ocr_texts(o, i)).unwrap_or_default(),
                }
            })
            .collect();
        // The session's weights and thresholds (`dajia.weights.*`,
        // `dajia.thresholds.*`), as shipped with the job on a cluster.
        let rules = crate::options::DajiaOptions::of(&args.config_options).rules();
        if let Err(e) = rules.validate() {
            return datafusion::common::exec_err!("assess_listing: {e}");
        }
        let out = assess_batch(&self.kb, &rules, &inputs);

        let mut score = Float32Builder::with_capacity(n);
        let mut action = StringBuilder::with_capacity(n, n * 6);
        let mut reasons = reasons_builder(n);
        let mut brand_id = Int64Builder::with_capacity(n);
        for a in &out {
            score.append_value(a.score);
            action.append_value(a.action.as_str());
            append_reasons(&mut reasons, &a.reasons);
            brand_id.append_option(a.brand_id);
        }
        let DataType::Struct(fields) = assess_return_type() else {
            unreachable!()
        };
        let arr = StructArray::try_new(
            fields,
            vec![
                Arc::new(score.finish()),
                Arc::new(action.finish()),
                Arc::new(reasons.finish()),
                Arc::new(brand_id.finish()),
            ],
            None,
        )?;
        Ok(ColumnarValue::Array(Arc::new(arr)))
    }
}
