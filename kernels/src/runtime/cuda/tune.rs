//! Each convolution's cuDNN algorithm chosen by timing, as PyTorch's
//! `cudnn.benchmark` does, when a program is prepared: cuDNN's heuristic
//! (`cudnnGetConvolutionForwardAlgorithm_v7`, what `pick_algorithm` asks)
//! ranks algorithms without running them, and its first choice is not
//! always the fastest for a shape. `DAJIA_CUDNN_TUNE=0` keeps the
//! heuristic's choice (a program is then ready sooner).
//!
//! cudarc's safe cuDNN layer keeps its raw descriptors private, so
//! `cudnnFindConvolutionForwardAlgorithmEx` is out of reach; the same
//! search is done here through `ConvForward`: each [`candidates`] algorithm
//! cuDNN accepts for the convolution (its workspace query succeeds, within
//! [`TUNE_WORKSPACE`]), launched once to warm up and, unless that took over
//! four times the best so far, [`REPS`] times on the program's own buffers,
//! timed between stream synchronisations.

use std::sync::Arc;
use std::time::Instant;

use cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t as Algo;
use cudarc::cudnn::{ConvForward, CudnnDataType};
use cudarc::driver::{CudaStream, DevicePtr, DeviceSlice};
use half::f16;

use super::{alloc_err, ConvPlan, ConvPlans, CudaProgram, Raw, WorkspaceBytes};
use crate::runtime::launch::Buf;
use crate::runtime::program::{Conv, Op, Program, Step};
use crate::runtime::RuntimeError;

/// The algorithms worth timing for a convolution: the heuristic's choice,
/// the two implicit GEMMs (cuDNN's tensor-core kernels), Winograd for
/// ungrouped 3×3 stride-1 convolutions and tiled FFT for ungrouped kernels
/// of 5 or more. Explicit GEMM (im2col), direct and untiled FFT are left
/// out: rarely fastest, and their trials (workspace, slow runs) cost the
/// most at start-up, where a GPU OCR warm-up prepares ~100 programs.
fn candidates(conv: &Conv, heuristic: Algo) -> Vec<Algo> {
    let mut v = vec![
        heuristic,
        Algo::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
        Algo::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
    ];
    if conv.group == 1 && conv.kernel == [3, 3] && conv.stride == [1, 1] {
        v.push(Algo::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD);
        v.push(Algo::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED);
    }
    if conv.group == 1 && conv.kernel.iter().max() >= Some(&5) {
        v.push(Algo::CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING);
    }
    let mut seen = Vec::with_capacity(v.len());
    v.retain(|a| {
        let new = !seen.contains(a);
        seen.push(*a);
        new
    });
    v
}

/// The most workspace a trial may use (an algorithm asking more is skipped).
const TUNE_WORKSPACE: usize = 256 << 20;
/// Timed launches per algorithm.
const REPS: u32 = 2;

/// Whether programs are tuned (`DAJIA_CUDNN_TUNE`, on unless `0`).
pub fn enabled() -> bool {
    std::env::var("DAJIA_CUDNN_TUNE").map_or(true, |v| v != "0")
}

impl CudaProgram {
    /// Times every algorithm of every convolution and keeps the fastest;
    /// grows the workspace if the winners need more.
    pub(super) fn tune(&self) -> Result<(), RuntimeError> {
        let s = &self.dev.stream;
        let _one = self.dev.launch.lock().expect("launch lock");
        let arena = self.arena.lock().expect("arena");
        let (arena_ptr, _a) = arena.device_ptr(s);
        let (weights_ptr, _w) = self.weights.device_ptr(s);
        let p = &self.compiled.program;
        let raw = |v| {
            let b = if p.is_const(v) {
                Buf::Const(v)
            } else {
                Buf::Arena(self.compiled.plan.range(v))
            };
            self.raw(arena_ptr, weights_ptr, s, &b)
        };
        let trial = s.alloc_zeros::<u8>(TUNE_WORKSPACE).map_err(alloc_err)?;
        let (trial_ptr, _t) = trial.device_ptr(s);
        let trial = WorkspaceBytes {
            ptr: trial_ptr,
            bytes: TUNE_WORKSPACE,
            stream: s.clone(),
        };
        let mut cudnn = self.cudnn.lock().expect("cudnn");
        let most = match &mut cudnn.convs {
            ConvPlans::F32(plans) => tune_plans(plans, p, &raw, s, &trial, (1.0f32, 0.0))?,
            ConvPlans::F16(plans) => tune_plans(plans, p, &raw, s, &trial, (f16::ONE, f16::ZERO))?,
        };
        let mut workspace = self.workspace.lock().expect("workspace");
        if most > workspace.len() {
            *workspace = s.alloc_zeros::<u8>(most).map_err(alloc_err)?;
        }
        Ok(())
    }
}

/// The fastest algorithm per convolution plan; returns the largest
/// workspace (bytes) the chosen algorithms need.
fn tune_plans<T: CudnnDataType + Copy>(
    plans: &mut [Option<ConvPlan<T>>],
    p: &Program,
    raw: &dyn Fn(usize) -> Raw,
    stream: &Arc<CudaStream>,
    trial: &WorkspaceBytes,
    scale: (T, T),
) -> Result<usize, RuntimeError> {
    let sync = || stream.synchronize().map_err(alloc_err);
    let mut most = 1;
    for (step, plan) in p.steps.iter().zip(plans.iter_mut()) {
        let Some(plan) = plan else { continue };
        let chosen = fastest(plan, step, raw, trial, scale, &sync)?;
        if let Some((algo, bytes, secs)) = chosen {
            if algo != plan.algo {
                tracing::debug!(
                    "{}: {:?} ({:.1} us) over the heuristic's {:?}: {}",
                    p.model,
                    algo,
                    secs * 1e6,
                    plan.algo,
                    plan.describe
                );
            }
            plan.algo = algo;
            plan.workspace = bytes;
        }
        most = most.max(plan.workspace);
    }
    Ok(most)
}

/// (algorithm, workspace bytes, seconds per launch) of the fastest
/// algorithm cuDNN runs for one convolution; None if it runs none.
fn fastest<T: CudnnDataType + Copy>(
    plan: &ConvPlan<T>,
    step: &Step,
    raw: &dyn Fn(usize) -> Raw,
    trial: &WorkspaceBytes,
    scale: (T, T),
    sync: &dyn Fn() -> Result<(), RuntimeError>,
) -> Result<Option<(Algo, usize, f64)>, RuntimeError> {
    let op = ConvForward {
        conv: &plan.conv,
        x: &plan.x,
        w: &plan.w,
        y: &plan.y,
    };
    let (x, w, mut y) = (raw(step.inputs[0]), raw(step.inputs[1]), raw(step.output));
    let mut best: Option<(Algo, usize, f64)> = None;
    let Op::Conv(conv) = &step.op else {
        return Ok(None);
    };
    for algo in candidates(conv, plan.algo) {
        let Ok(bytes) = op.get_workspace_size(algo) else {
            continue;
        };
        if bytes > trial.len() {
            continue;
        }
        let mut ws = WorkspaceBytes {
            ptr: trial.ptr,
            bytes,
            stream: trial.stream.clone(),
        };
        // SAFETY: the plan's descriptors match these buffers (the program's
        // own values and weights); the workspace holds `bytes`.
        let mut launch = || unsafe { op.launch(algo, Some(&mut ws), scale, &x, &w, &mut y) };
        // The warm-up launch also tells whether cuDNN takes the algorithm,
        // and one far slower than the best so far is not timed again.
        sync()?;
        let t = Instant::now();
        if launch().is_err() {
            continue;
        }
        sync()?;
        let warm = t.elapsed().as_secs_f64();
        if best.is_some_and(|b| warm > 4.0 * b.2) {
            continue;
        }
        let t = Instant::now();
        let ran = (0..REPS).all(|_| launch().is_ok());
        sync()?;
        if !ran {
            continue;
        }
        let secs = t.elapsed().as_secs_f64() / REPS as f64;
        if best.is_none_or(|b| secs < b.2) {
            best = Some((algo, bytes, secs));
        }
    }
    Ok(best)
}
