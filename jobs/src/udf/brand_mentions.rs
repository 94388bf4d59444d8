use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Builder, ListBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use dajia_kernels::risk::KnowledgeBase;
use dajia_schemas::Ty;

use super::{kb_identity, one_string_arg, scalar_or_array, string_arg};

/// `brand_mentions(text) -> List<Int64>`: brand ids named directly.
pub struct BrandMentions {
    pub(crate) kb: Arc<KnowledgeBase>,
    signature: Signature,
}
kb_identity!(BrandMentions);

impl BrandMentions {
    pub fn new(kb: Arc<KnowledgeBase>) -> Self {
        Self {
            kb,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for BrandMentions {
    fn name(&self) -> &str {
        "brand_mentions"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        one_string_arg(t, "brand_mentions")
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(Ty::ListInt64.to_arrow())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let is_scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let text = string_arg(&args.args[0], args.number_rows)?;
        let mut b = ListBuilder::new(Int64Builder::new());
        for i in 0..text.len() {
            if text.is_null(i) {
                b.append_null();
                continue;
            }
            for id in self.kb.mentioned_brand_ids(text.value(i)) {
                b.values().append_value(id);
            }
            b.append(true);
        }
        scalar_or_array(Arc::new(b.finish()), is_scalar)
    }
}
