//! Batch sizing from free device memory, and what happens when a batch does
//! not fit after all: a CUDA out-of-memory error halves the batch and retries,
//! down to one item; an item that still does not fit runs on the CPU with a
//! warning. Any other error is returned (it is not a matter of size).

use super::DeviceError;

/// Items per batch so that `bytes_per_item` each fit in `fraction` of
/// `free_bytes` (the rest is left to other work on the device: cuBLAS
/// workspaces, tract's buffers, other processes), between 1 and `cap`.
pub fn batch_for_memory(
    free_bytes: usize,
    bytes_per_item: usize,
    fraction: f64,
    cap: usize,
) -> usize {
    let budget = (free_bytes as f64 * fraction.clamp(0.0, 1.0)) as usize;
    (budget / bytes_per_item.max(1)).clamp(1, cap.max(1))
}

/// What splitting did, for the run's log and manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SplitStats {
    /// Batches that ran out of memory and were split.
    pub splits: usize,
    /// Items that ran on the CPU because even one alone did not fit.
    pub cpu_fallback: usize,
}

/// Runs `items` through `gpu` in batches of at most `max_batch`, splitting on
/// out-of-memory as described above; results come back in input order.
pub fn run_split<T, R>(
    items: &[T],
    max_batch: usize,
    gpu: &mut dyn FnMut(&[T]) -> Result<Vec<R>, DeviceError>,
    cpu: &mut dyn FnMut(&[T]) -> Result<Vec<R>, DeviceError>,
    stats: &mut SplitStats,
) -> Result<Vec<R>, DeviceError> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(max_batch.max(1)) {
        run_one(chunk, gpu, cpu, stats, &mut out)?;
    }
    Ok(out)
}

fn run_one<T, R>(
    chunk: &[T],
    gpu: &mut dyn FnMut(&[T]) -> Result<Vec<R>, DeviceError>,
    cpu: &mut dyn FnMut(&[T]) -> Result<Vec<R>, DeviceError>,
    stats: &mut SplitStats,
    out: &mut Vec<R>,
) -> Result<(), DeviceError> {
    match gpu(chunk) {
        Ok(r) => {
            debug_assert_eq!(r.len(), chunk.len());
            out.extend(r);
            Ok(())
        }
        Err(e) if e.is_out_of_memory() && chunk.len() > 1 => {
            stats.splits += 1;
            tracing::debug!(
                "{e}: splitting a batch of {} into two and retrying",
                chunk.len()
            );
            let (a, b) = chunk.split_at(chunk.len() / 2);
            run_one(a, gpu, cpu, stats, out)?;
            run_one(b, gpu, cpu, stats, out)
        }
        Err(e) if e.is_out_of_memory() => {
            stats.cpu_fallback += 1;
            tracing::warn!("{e}: one item alone does not fit on the GPU; running it on the CPU");
            out.extend(cpu(chunk)?);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_size_follows_free_memory() {
        // 1 GiB free, half of it usable, 1 MiB per item: 512 items.
        assert_eq!(batch_for_memory(1 << 30, 1 << 20, 0.5, 100_000), 512);
        assert_eq!(batch_for_memory(1 << 30, 1 << 20, 0.5, 64), 64);
        // Nothing free still gives batches of one (and OOM handling).
        assert_eq!(batch_for_memory(0, 1 << 20, 0.5, 64), 1);
    }

    #[test]
    fn out_of_memory_splits_down_to_one_then_falls_back_to_cpu() {
        let items: Vec<u32> = (0..37).collect();
        // A "device" that holds at most 5 items, and none of item 13.
        let mut calls = Vec::new();
        let mut gpu = |b: &[u32]| -> Result<Vec<u32>, DeviceError> {
            calls.push(b.len());
            if b.len() > 5 || b.contains(&13) {
                Err(DeviceError::OutOfMemory(format!("{} items", b.len())))
            } else {
                Ok(b.iter().map(|x| x * 10).collect())
            }
        };
        let mut cpu = |b: &[u32]| -> Result<Vec<u32>, DeviceError> {
            Ok(b.iter().map(|x| x * 10 + 1).collect())
        };
        let mut stats = SplitStats::default();
        let out = run_split(&items, 16, &mut gpu, &mut cpu, &mut stats).unwrap();
        let want: Vec<u32> = items
            .iter()
            .map(|&x| if x == 13 { 131 } else { x * 10 })
            .collect();
        assert_eq!(out, want, "every item once, in order");
        assert_eq!(stats.cpu_fallback, 1);
        assert!(stats.splits >= 4, "{stats:?}");
        assert!(calls.iter().all(|&n| n <= 16));
    }

    #[test]
    fn other_errors_are_not_retried() {
        let mut n = 0;
        let mut gpu = |_: &[u8]| -> Result<Vec<u8>, DeviceError> {
            n += 1;
            Err(DeviceError::Driver("launch failed".into()))
        };
        let mut cpu = |b: &[u8]| -> Result<Vec<u8>, DeviceError> { Ok(b.to_vec()) };
        let err = run_split(
            &[1u8, 2, 3],
            8,
            &mut gpu,
            &mut cpu,
            &mut SplitStats::default(),
        )
        .unwrap_err();
        assert_eq!(err, DeviceError::Driver("launch failed".into()));
        assert_eq!(n, 1);
    }
}
