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
//!
//! In-memory tables travel inside a plan as Arrow IPC streams, and arrow-ipc
//! 59.3 zero-fills a buffer as long as a message declares before reading it:
//! a damaged length costs gigabytes and minutes (the same fuzz target's other
//! finding). [`check_memory_scans`] compares every declared length with the
//! bytes that are there, before anything is decoded.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use ballista_core::error::BallistaError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{AsExecutionPlan, PhysicalExtensionCodec};
use datafusion_proto::protobuf::PhysicalPlanNode;
use datafusion_proto::protobuf::physical_plan_node::PhysicalPlanType;

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
            crate::execution_loop::any_to_string(&panic)
        ))),
    }
}

/// Decodes a task's encoded physical plan as the executor does: its
/// in-memory tables checked first ([`check_memory_scans`]), then decoded
/// [`isolated`].
pub fn decode_physical_plan<U: AsExecutionPlan>(
    encoded: &[u8],
    task_context: &TaskContext,
    codec: &dyn PhysicalExtensionCodec,
) -> Result<Arc<dyn ExecutionPlan>, BallistaError> {
    isolated("task plan", || {
        check_memory_scans(encoded)?;
        Ok(U::try_decode(encoded)?.try_into_physical_plan(task_context, codec)?)
    })
}

/// Refuses an encoded physical plan with an in-memory table whose Arrow IPC
/// stream declares a message (metadata or body) longer than the bytes that
/// follow it. Bytes that are not a plan pass: decoding them reports that.
pub fn check_memory_scans(encoded: &[u8]) -> Result<(), BallistaError> {
    let Ok(root) = <PhysicalPlanNode as AsExecutionPlan>::try_decode(encoded) else {
        return Ok(());
    };
    let mut pending = vec![&root];
    while let Some(node) = pending.pop() {
        let Some(kind) = node.physical_plan_type.as_ref() else {
            continue;
        };
        use PhysicalPlanType as T;
        match kind {
            T::MemoryScan(scan) => {
                for (i, partition) in scan.partitions.iter().enumerate() {
                    check_ipc_stream(partition).map_err(|e| {
                        BallistaError::General(format!(
                            "task plan: in-memory table, partition {i}: {e}"
                        ))
                    })?;
                }
            }
            T::Projection(n) => pending.extend(n.input.as_deref()),
            T::GlobalLimit(n) => pending.extend(n.input.as_deref()),
            T::LocalLimit(n) => pending.extend(n.input.as_deref()),
            T::Aggregate(n) => pending.extend(n.input.as_deref()),
            T::Sort(n) => pending.extend(n.input.as_deref()),
            T::CoalesceBatches(n) => pending.extend(n.input.as_deref()),
            T::Filter(n) => pending.extend(n.input.as_deref()),
            T::Merge(n) => pending.extend(n.input.as_deref()),
            T::Repartition(n) => pending.extend(n.input.as_deref()),
            T::Window(n) => pending.extend(n.input.as_deref()),
            T::SortPreservingMerge(n) => pending.extend(n.input.as_deref()),
            T::Analyze(n) => pending.extend(n.input.as_deref()),
            T::JsonSink(n) => pending.extend(n.input.as_deref()),
            T::CsvSink(n) => pending.extend(n.input.as_deref()),
            T::ParquetSink(n) => pending.extend(n.input.as_deref()),
            T::Unnest(n) => pending.extend(n.input.as_deref()),
            T::Cooperative(n) => pending.extend(n.input.as_deref()),
            T::AsyncFunc(n) => pending.extend(n.input.as_deref()),
            T::Buffer(n) => pending.extend(n.input.as_deref()),
            T::HashJoin(n) => pending.extend(n.left.as_deref().into_iter().chain(n.right.as_deref())),
            T::CrossJoin(n) => pending.extend(n.left.as_deref().into_iter().chain(n.right.as_deref())),
            T::NestedLoopJoin(n) => pending.extend(n.left.as_deref().into_iter().chain(n.right.as_deref())),
            T::SymmetricHashJoin(n) => pending.extend(n.left.as_deref().into_iter().chain(n.right.as_deref())),
            T::SortMergeJoin(n) => pending.extend(n.left.as_deref().into_iter().chain(n.right.as_deref())),
            T::Extension(n) => pending.extend(n.inputs.iter()),
            T::Union(n) => pending.extend(n.inputs.iter()),
            T::Interleave(n) => pending.extend(n.inputs.iter()),
            T::ScalarSubquery(n) => {
                pending.extend(n.input.as_deref().into_iter().chain(n.subqueries.iter()))
            }
            // Leaves: scans of files, empty and placeholder rows, series.
            _ => {}
        }
    }
    Ok(())
}

/// Walks an Arrow IPC stream's framing (`[0xFFFFFFFF] <metadata length>
/// <metadata> <body>` per message, a zero length at the end) and checks that
/// every declared length fits in what is left. Compressed batches are
/// refused: each compressed buffer declares its uncompressed length, which
/// arrow-ipc allocates before decompressing, and DataFusion never compresses
/// an in-memory table it encodes.
fn check_ipc_stream(bytes: &[u8]) -> Result<(), String> {
    let word = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
    };
    let mut at = 0;
    while at < bytes.len() {
        // Fewer than 4 bytes left: the end, as arrow-ipc's reader takes it.
        let Some(mut len) = word(at) else {
            return Ok(());
        };
        at += 4;
        if len == 0xFFFF_FFFF {
            len = word(at).ok_or("a message length cut short")?;
            at += 4;
        }
        if len == 0 {
            return Ok(()); // end of stream
        }
        let left = bytes.len() - at;
        if len as usize > left || len > i32::MAX as u32 {
            return Err(format!(
                "a message declares {len} bytes of metadata, {left} bytes follow"
            ));
        }
        let message = arrow::ipc::root_as_message(&bytes[at..at + len as usize])
            .map_err(|e| format!("unreadable message metadata: {e}"))?;
        at += len as usize;
        let left = bytes.len() - at;
        let compressed = message
            .header_as_record_batch()
            .or_else(|| message.header_as_dictionary_batch().and_then(|d| d.data()))
            .is_some_and(|batch| batch.compression().is_some());
        if compressed {
            return Err("a compressed batch (in-memory tables are not compressed)".into());
        }
        let body = message.bodyLength();
        if body < 0 || body as u64 > left as u64 {
            return Err(format!(
                "a message declares a body of {body} bytes, {left} bytes follow"
            ));
        }
        at += body as usize;
    }
    Ok(())
}
