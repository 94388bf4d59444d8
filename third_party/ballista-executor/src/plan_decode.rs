// dajia's patch of Ballista 55.0.0 (see PATCHES.md). Licensed under the
// Apache License, Version 2.0, as the rest of this crate.

//! Decoding a task's plan on an executor, isolated from panics.
//!
//! The executor decodes every plan the scheduler sends it: in the gRPC
//! handlers of push scheduling and in the poll loop of pull scheduling. Both
//! decoded outside any `catch_unwind`, so a decoder that panics on a damaged
//! plan (DataFusion 55.2's aggregate decoder does: "chunk size must be
//! non-zero" for grouping sets without expressions, found by dajia's
//! `plan_codec` fuzz target) took the handler's connection task down, or, in
//! pull scheduling, the executor's poll loop and with it the executor. Here
//! a panic while decoding becomes an error of that one task or request.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use ballista_core::error::BallistaError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{AsExecutionPlan, PhysicalExtensionCodec};

/// Runs `decode` (anything that decodes a plan sent to this executor) so that
/// a panic inside it is returned as an error naming `what`.
pub fn isolated<R>(
    what: &str,
    decode: impl FnOnce() -> Result<R, BallistaError>,
) -> Result<R, BallistaError> {
    match catch_unwind(AssertUnwindSafe(decode)) {
        Ok(result) => result,
        Err(panic) => Err(BallistaError::General(format!(
            "{what}: the plan decoder panicked: {}",
            panic_message(panic.as_ref())
        ))),
    }
}

/// Decodes a task's encoded physical plan as the executor does, with
/// [`isolated`].
pub fn decode_physical_plan<U: AsExecutionPlan>(
    encoded: &[u8],
    task_context: &TaskContext,
    codec: &dyn PhysicalExtensionCodec,
) -> Result<Arc<dyn ExecutionPlan>, BallistaError> {
    isolated("task plan", || {
        Ok(U::try_decode(encoded)?.try_into_physical_plan(task_context, codec)?)
    })
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}
