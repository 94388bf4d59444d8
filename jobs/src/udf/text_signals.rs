use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use dajia_kernels::risk::{KnowledgeBase, ListingInput, ReasonCode};
use dajia_schemas::Ty;

use super::assess::{append_reasons, reasons_builder};
use super::{kb_identity, one_string_arg, scalar_or_array, string_arg};

/// `text_signals(text)`: the text reasons (replica vocabulary, contact
/// diversion, protected brand mentions) of one text, without price or seller.
pub struct TextSignals {
    pub(crate) kb: Arc<KnowledgeBase>,
    signature: Signature,
}
kb_identity!(TextSignals);

impl TextSignals {
    pub fn new(kb: Arc<KnowledgeBase>) -> Self {
        Self {
            kb,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TextSignals {
    fn name(&self) -> &str {
        "text_signals"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        one_string_arg(t, "text_signals")
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(Ty::Reasons.to_arrow())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let is_scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let text = string_arg(&args.args[0], args.number_rows)?;
        let mut b = reasons_builder(text.len());
        let rules = crate::options::DajiaOptions::of(&args.config_options).rules();
        for i in 0..text.len() {
            if text.is_null(i) {
                b.append_null();
                continue;
            }
            // Price and seller unknown: only text reasons remain (the
            // unauthorised-seller reason needs a seller, so it is dropped).
            let a = self.kb.assess(
                &rules,
                &ListingInput {
                    title: text.value(i),
                    seller_id: -1,
                    ..Default::default()
                },
            );
            let reasons: Vec<_> = a
                .reasons
                .into_iter()
                .filter(|r| r.code != ReasonCode::UnauthorizedSeller)
                .collect();
            append_reasons(&mut b, &reasons);
        }
        scalar_or_array(Arc::new(b.finish()), is_scalar)
    }
}
