//! OCR functions: `ocr(content) -> Utf8` (lines joined by `\n`) and
//! `ocr_lines(content) -> List<Struct<text, confidence, box>>`. The models
//! load at the first call, so sessions that never read images' text neither
//! pay for them nor need them installed.

use std::sync::Arc;

use datafusion::arrow::array::*;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use rayon::prelude::*;

use dajia_kernels::image::{DecodeLimits, ImageError};
use dajia_kernels::ocr::OcrPage;

use super::image_fns::{binary_arg, coerce_binary, is_scalar, rows_of};
use super::{arc_identity, scalar_or_array};
use crate::ocr::OcrEngines;
use crate::options::DajiaOptions;

/// What the OCR functions share: the process's engines (loaded on first
/// use). Their settings and the image guards come with each call, from the
/// session's options.
#[derive(Debug)]
pub struct OcrState {
    pub engines: OcrEngines,
}

/// Reads the non-null rows in parallel; row i's page or why it is unreadable.
fn read_rows(
    state: &OcrState,
    args: &ScalarFunctionArgs,
    fname: &str,
) -> Result<Vec<Option<Result<OcrPage, ImageError>>>> {
    let content = binary_arg(&args.args[0], rows_of(args))?;
    if content.null_count() == content.len() {
        // nothing to read: no need for the models
        return Ok((0..content.len()).map(|_| None).collect());
    }
    let options = DajiaOptions::of(&args.config_options);
    let ocr = match state.engines.get(&options.ocr) {
        Ok(o) => o,
        Err(e) => return exec_err!("{fname}: {e:#}"),
    };
    let limits: DecodeLimits = options.images.limits();
    let rows: Vec<Option<Result<OcrPage, ImageError>>> = (0..content.len())
        .into_par_iter()
        .map(|i| (!content.is_null(i)).then(|| ocr.read_bytes(content.value(i), &limits)))
        .collect();
    // A model that fails at run time is the session's problem, not the row's.
    for r in rows.iter().flatten() {
        if let Err(e) = r {
            if e.is_run_failure() {
                return exec_err!("{fname}: {e}");
            }
        }
    }
    Ok(rows)
}

fn one_binary_arg(t: &[DataType], fname: &str) -> Result<Vec<DataType>> {
    if t.len() != 1 {
        return plan_err!("{fname} takes 1 argument (image bytes), got {}", t.len());
    }
    Ok(vec![coerce_binary(&t[0], fname, 1)?])
}

/// `ocr(content) -> Utf8`: the text in an image, lines in reading order
/// joined by `\n`; '' for an image without text; NULL for NULL or unreadable
/// images (`image_error` says why).
pub struct OcrFn {
    pub(crate) state: Arc<OcrState>,
    signature: Signature,
}
arc_identity!(OcrFn, state);

impl OcrFn {
    pub fn new(state: Arc<OcrState>) -> Self {
        Self {
            state,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for OcrFn {
    fn name(&self) -> &str {
        "ocr"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        one_binary_arg(t, "ocr")
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = read_rows(&self.state, &args, "ocr")?;
        let arr: StringArray = rows
            .into_iter()
            .map(|r| r.and_then(|p| p.ok()).map(|p| p.text()))
            .collect();
        scalar_or_array(Arc::new(arr), is_scalar(&args.args[0]))
    }
}

/// The fields of one `ocr_lines` item.
pub fn ocr_line_fields() -> Fields {
    Fields::from(vec![
        Field::new("text", DataType::Utf8, false),
        Field::new("confidence", DataType::Float32, false),
        Field::new(
            "box",
            DataType::List(Arc::new(Field::new_list_field(DataType::Float32, false))),
            false,
        ),
    ])
}

/// `ocr_lines(content) -> List<Struct<text, confidence, box>>`: each line
/// with its mean character probability and its corners
/// `[x0, y0, x1, y1, x2, y2, x3, y3]` (top-left, top-right, bottom-right,
/// bottom-left, in image pixels).
pub struct OcrLines {
    state: Arc<OcrState>,
    signature: Signature,
}
arc_identity!(OcrLines, state);

impl OcrLines {
    pub fn new(state: Arc<OcrState>) -> Self {
        Self {
            state,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for OcrLines {
    fn name(&self) -> &str {
        "ocr_lines"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        one_binary_arg(t, "ocr_lines")
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Struct(ocr_line_fields()),
            true,
        ))))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = read_rows(&self.state, &args, "ocr_lines")?;
        let item = Arc::new(Field::new_list_field(
            DataType::Struct(ocr_line_fields()),
            true,
        ));
        let mut b = ListBuilder::new(StructBuilder::from_fields(ocr_line_fields(), rows.len()))
            .with_field(item);
        for r in rows {
            match r {
                Some(Ok(page)) => {
                    for l in &page.lines {
                        let s = b.values();
                        s.field_builder::<StringBuilder>(0)
                            .unwrap()
                            .append_value(&l.text);
                        s.field_builder::<Float32Builder>(1)
                            .unwrap()
                            .append_value(l.confidence);
                        let bx = s
                            .field_builder::<ListBuilder<Box<dyn ArrayBuilder>>>(2)
                            .unwrap();
                        for p in l.quad {
                            let v = bx
                                .values()
                                .as_any_mut()
                                .downcast_mut::<Float32Builder>()
                                .unwrap();
                            v.append_value(p[0]);
                            v.append_value(p[1]);
                        }
                        bx.append(true);
                        s.append(true);
                    }
                    b.append(true);
                }
                _ => b.append(false),
            }
        }
        scalar_or_array(Arc::new(b.finish()), is_scalar(&args.args[0]))
    }
}
