use std::sync::Arc;

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use rayon::prelude::*;

use dajia_kernels::text::normalize_text;

use super::{one_string_arg, string_arg};

/// `normalize_text(text) -> Utf8`; NULL in, NULL out.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NormalizeText {
    signature: Signature,
}

impl Default for NormalizeText {
    fn default() -> Self {
        Self::new()
    }
}

impl NormalizeText {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for NormalizeText {
    fn name(&self) -> &str {
        "normalize_text"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        one_string_arg(arg_types, "normalize_text")
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let ColumnarValue::Scalar(s) = &args.args[0] {
            let v = match s {
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                    v.as_deref().map(normalize_text)
                }
                _ => None,
            };
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(v)));
        }
        let input = string_arg(&args.args[0], args.number_rows)?;
        let out: Vec<Option<String>> = (0..input.len())
            .into_par_iter()
            .with_min_len(512)
            .map(|i| {
                if input.is_null(i) {
                    None
                } else {
                    Some(normalize_text(input.value(i)))
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}
