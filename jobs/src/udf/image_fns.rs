//! Image functions: `embed_image`, `cosine_similarity`, `image_top_matches`
//! and `image_error`. They share the session's [`ImageRefs`] (embedder, decode
//! limits and reference indexes).

use std::sync::Arc;

use datafusion::arrow::array::*;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{arc_identity, scalar_or_array};
use crate::images::ImageRefs;
use dajia_kernels::image::DecodeLimits;

pub(crate) fn coerce_binary(t: &DataType, fname: &str, pos: usize) -> Result<DataType> {
    match t {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null => {
            Ok(DataType::Binary)
        }
        other => plan_err!("{fname}: argument {pos} must be image bytes (Binary), got {other}"),
    }
}

pub(crate) fn binary_arg(v: &ColumnarValue, rows: usize) -> Result<BinaryArray> {
    let arr = v.to_array(rows)?;
    let arr = if arr.data_type() == &DataType::Binary {
        arr
    } else {
        cast(&arr, &DataType::Binary)?
    };
    Ok(arr
        .as_any()
        .downcast_ref::<BinaryArray>()
        .expect("Binary")
        .clone())
}

pub(crate) fn is_scalar(v: &ColumnarValue) -> bool {
    matches!(v, ColumnarValue::Scalar(_))
}

/// Rows to compute: one for a scalar argument (decoded once, not per row).
pub(crate) fn rows_of(args: &ScalarFunctionArgs) -> usize {
    if args.args.iter().all(is_scalar) {
        1
    } else {
        args.number_rows
    }
}

/// The image guards of the call's session (`dajia.images.max_pixels`,
/// `max_bytes`: `SET` changes them; a cluster client ships them). The
/// embedder, thresholds and reference indexes are the session's from its
/// start: a `SET` of those afterwards is refused here rather than ignored.
fn session_limits(images: &ImageRefs, args: &ScalarFunctionArgs) -> Result<DecodeLimits> {
    let now = crate::options::DajiaOptions::of(&args.config_options).images;
    let then = &images.options;
    for (key, same) in [
        ("embedder", now.embedder == then.embedder),
        ("threshold", now.threshold == then.threshold),
        (
            "verify_threshold",
            now.verify_threshold == then.verify_threshold,
        ),
    ] {
        if !same {
            return exec_err!(
                "dajia.images.{key} was changed after the image functions were set up (their embedder and reference images are built at the start of a session); start `dajia sql` again with --set images.{key}=..."
            );
        }
    }
    Ok(now.limits())
}

/// Decodes and embeds the non-null rows in parallel; row i's embedding or error.
/// A model or device failure is the query's error, not a NULL row.
fn embed_rows(
    images: &ImageRefs,
    content: &BinaryArray,
    limits: &DecodeLimits,
) -> Result<Vec<Option<Result<Vec<f32>, dajia_kernels::image::ImageError>>>> {
    let idx: Vec<usize> = (0..content.len())
        .filter(|&i| !content.is_null(i))
        .collect();
    let bytes: Vec<&[u8]> = idx.iter().map(|&i| content.value(i)).collect();
    let mut embs = images.refs.embedder.embed_batch(&bytes, limits).into_iter();
    let mut out: Vec<Option<_>> = (0..content.len()).map(|_| None).collect();
    for i in idx {
        let e = embs.next();
        if let Some(Err(err)) = &e {
            if err.is_run_failure() {
                return exec_err!("{err}");
            }
        }
        out[i] = e;
    }
    Ok(out)
}

/// `embed_image(content) -> FixedSizeList<Float32>`: the L2-normalised
/// embedding of the session's embedder; NULL for NULL or unreadable images
/// (`image_error` says why).
pub struct EmbedImage {
    pub(crate) images: Arc<ImageRefs>,
    signature: Signature,
}
arc_identity!(EmbedImage, images);

impl EmbedImage {
    pub fn new(images: Arc<ImageRefs>) -> Self {
        Self {
            images,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
    fn item() -> Arc<Field> {
        Arc::new(Field::new_list_field(DataType::Float32, false))
    }
}

impl ScalarUDFImpl for EmbedImage {
    fn name(&self) -> &str {
        "embed_image"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        if t.len() != 1 {
            return plan_err!(
                "embed_image takes 1 argument (image bytes), got {}",
                t.len()
            );
        }
        Ok(vec![coerce_binary(&t[0], "embed_image", 1)?])
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::FixedSizeList(
            Self::item(),
            self.images.refs.embedder.kind().dim() as i32,
        ))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let content = binary_arg(&args.args[0], rows_of(&args))?;
        let dim = self.images.refs.embedder.kind().dim();
        let rows = embed_rows(
            &self.images,
            &content,
            &session_limits(&self.images, &args)?,
        )?;
        let mut values = Vec::with_capacity(rows.len() * dim);
        let mut valid = Vec::with_capacity(rows.len());
        for r in rows {
            match r {
                Some(Ok(v)) => {
                    values.extend_from_slice(&v);
                    valid.push(true);
                }
                _ => {
                    values.extend(std::iter::repeat_n(0.0, dim));
                    valid.push(false);
                }
            }
        }
        let arr = FixedSizeListArray::try_new(
            Self::item(),
            dim as i32,
            Arc::new(Float32Array::from(values)),
            Some(valid.into()),
        )?;
        scalar_or_array(Arc::new(arr), is_scalar(&args.args[0]))
    }
}

/// `image_error(content) -> Utf8`: why an image cannot be read (empty, not
/// an image, unsupported format, over the pixel limit, corrupt), NULL when it
/// can.
pub struct ImageErrorFn {
    pub(crate) images: Arc<ImageRefs>,
    signature: Signature,
}
arc_identity!(ImageErrorFn, images);

impl ImageErrorFn {
    pub fn new(images: Arc<ImageRefs>) -> Self {
        Self {
            images,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ImageErrorFn {
    fn name(&self) -> &str {
        "image_error"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        if t.len() != 1 {
            return plan_err!(
                "image_error takes 1 argument (image bytes), got {}",
                t.len()
            );
        }
        Ok(vec![coerce_binary(&t[0], "image_error", 1)?])
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use rayon::prelude::*;
        let content = binary_arg(&args.args[0], rows_of(&args))?;
        let limits = session_limits(&self.images, &args)?;
        let out: Vec<Option<String>> = (0..content.len())
            .into_par_iter()
            .map(|i| {
                if content.is_null(i) {
                    return None;
                }
                dajia_kernels::image::decode(content.value(i), &limits)
                    .err()
                    .map(|e| e.to_string())
            })
            .collect();
        scalar_or_array(Arc::new(StringArray::from(out)), is_scalar(&args.args[0]))
    }
}

/// `cosine_similarity(a, b) -> Float32` of two float vectors (lists or
/// fixed-size lists, e.g. two `embed_image` results); NULL when either is
/// NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CosineSimilarity {
    signature: Signature,
}

impl Default for CosineSimilarity {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn float_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true)))
}

impl ScalarUDFImpl for CosineSimilarity {
    fn name(&self) -> &str {
        "cosine_similarity"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        if t.len() != 2 {
            return plan_err!(
                "cosine_similarity takes 2 arguments (two vectors), got {}",
                t.len()
            );
        }
        for (i, ty) in t.iter().enumerate() {
            let ok = match ty {
                DataType::Null => true,
                DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                    f.data_type().is_numeric()
                }
                _ => false,
            };
            if !ok {
                return plan_err!(
                    "cosine_similarity: argument {} must be a list of numbers, got {ty}",
                    i + 1
                );
            }
        }
        Ok(vec![float_list(), float_list()])
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float32)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = rows_of(&args);
        let a = args.args[0].to_array(n)?;
        let b = args.args[1].to_array(n)?;
        let a = a
            .as_any()
            .downcast_ref::<ListArray>()
            .expect("coerced to List<Float32>");
        let b = b
            .as_any()
            .downcast_ref::<ListArray>()
            .expect("coerced to List<Float32>");
        let mut out = Float32Builder::with_capacity(n);
        for i in 0..n {
            if a.is_null(i) || b.is_null(i) {
                out.append_null();
                continue;
            }
            let (x, y) = (a.value(i), b.value(i));
            let x = x.as_any().downcast_ref::<Float32Array>().expect("Float32");
            let y = y.as_any().downcast_ref::<Float32Array>().expect("Float32");
            if x.len() != y.len() {
                return exec_err!(
                    "cosine_similarity: vectors of lengths {} and {} in row {i}",
                    x.len(),
                    y.len()
                );
            }
            if x.null_count() > 0 || y.null_count() > 0 {
                out.append_null();
                continue;
            }
            out.append_value(dajia_kernels::image::embed::cosine(x.values(), y.values()));
        }
        let scalar = is_scalar(&args.args[0]) && is_scalar(&args.args[1]);
        scalar_or_array(Arc::new(out.finish()), scalar)
    }
}

/// `image_top_matches(content [, k]) -> List<Struct<kind, image_id,
/// brand_id, listing_id, similarity>>`: the k (default 3) most similar
/// reference images, official photos and known fakes together, best first,
/// without threshold.
pub struct ImageTopMatches {
    pub(crate) images: Arc<ImageRefs>,
    signature: Signature,
}
arc_identity!(ImageTopMatches, images);

pub fn match_fields() -> Fields {
    Fields::from(vec![
        Field::new("kind", DataType::Utf8, false),
        Field::new("image_id", DataType::Utf8, false),
        Field::new("brand_id", DataType::Int64, true),
        Field::new("listing_id", DataType::Int64, true),
        Field::new("similarity", DataType::Float32, false),
    ])
}

impl ImageTopMatches {
    pub fn new(images: Arc<ImageRefs>) -> Self {
        Self {
            images,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ImageTopMatches {
    fn name(&self) -> &str {
        "image_top_matches"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        match t.len() {
            1 => Ok(vec![coerce_binary(&t[0], "image_top_matches", 1)?]),
            2 if t[1].is_integer() || t[1] == DataType::Null => Ok(vec![
                coerce_binary(&t[0], "image_top_matches", 1)?,
                DataType::Int64,
            ]),
            2 => plan_err!(
                "image_top_matches: argument 2 (k) must be an integer, got {}",
                t[1]
            ),
            n => plan_err!("image_top_matches takes 1 or 2 arguments (content [, k]), got {n}"),
        }
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Struct(match_fields()),
            true,
        ))))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let content = binary_arg(&args.args[0], n)?;
        let k = match args.args.get(1) {
            Some(v) => {
                let a = v.to_array(n)?;
                let a = a.as_any().downcast_ref::<Int64Array>().expect("Int64");
                let k = if a.is_empty() || a.is_null(0) {
                    3
                } else {
                    a.value(0)
                };
                if !(1..=1000).contains(&k) {
                    return exec_err!("image_top_matches: k must be in 1..=1000, got {k}");
                }
                k as usize
            }
            None => 3,
        };
        let rows = embed_rows(
            &self.images,
            &content,
            &session_limits(&self.images, &args)?,
        )?;
        let dim = self.images.refs.embedder.kind().dim();
        let ok: Vec<usize> = (0..n).filter(|&i| matches!(rows[i], Some(Ok(_)))).collect();
        let mut flat = Vec::with_capacity(ok.len() * dim);
        for &i in &ok {
            if let Some(Ok(v)) = &rows[i] {
                flat.extend_from_slice(v);
            }
        }
        let mut near = match self.images.refs.nearest(&flat, k) {
            Ok(n) => n.into_iter(),
            Err(e) => return exec_err!("image_top_matches: {e}"),
        };
        let mut b =
            ListBuilder::new(StructBuilder::from_fields(match_fields(), n)).with_field(Arc::new(
                Field::new_list_field(DataType::Struct(match_fields()), true),
            ));
        for r in &rows {
            if !matches!(r, Some(Ok(_))) {
                b.append(false);
                continue;
            }
            for m in near.next().unwrap_or_default() {
                let s = b.values();
                s.field_builder::<StringBuilder>(0)
                    .unwrap()
                    .append_value(m.kind.as_str());
                s.field_builder::<StringBuilder>(1)
                    .unwrap()
                    .append_value(&m.entry.image_id);
                s.field_builder::<Int64Builder>(2)
                    .unwrap()
                    .append_option(m.entry.brand_id);
                s.field_builder::<Int64Builder>(3)
                    .unwrap()
                    .append_option(m.entry.listing_id);
                s.field_builder::<Float32Builder>(4)
                    .unwrap()
                    .append_value(m.similarity);
                s.append(true);
            }
            b.append(true);
        }
        scalar_or_array(Arc::new(b.finish()), is_scalar(&args.args[0]))
    }
}
