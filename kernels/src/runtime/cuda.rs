//! The CUDA backend of the kernel driver (`cuda` feature): convolutions on
//! cuDNN, matmuls on cuBLAS, everything else the `cuda/ops.cu` kernels
//! compiled by NVRTC (cached by content hash, as the image kernels are).
//! Weights are converted to the program's [`Precision`] and uploaded once,
//! the arena is allocated once from the memory plan, every cuDNN descriptor
//! and algorithm is chosen when the program is prepared (the algorithm by
//! timing each cuDNN accepts, `cuda/tune.rs`); a run copies the
//! input in (converted to half on the device in f16), launches on one stream
//! without synchronising, and copies the outputs back (widened to f32).

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::cudnn::sys::{
    cudnnConvolutionFwdAlgo_t, cudnnConvolutionMode_t, cudnnMathType_t, cudnnTensorFormat_t,
};
use cudarc::cudnn::{
    ConvDescriptor, ConvForward, Cudnn, CudnnDataType, FilterDescriptor, TensorDescriptor,
};
use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{
    CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr, DeviceSlice, LaunchConfig,
    PushKernelArg, SyncOnDrop,
};
use half::f16;

mod tune;

use super::launch::{drive, Backend, Buf, RtChain, RtView};
use super::program::{nchw, Conv, Op};
use super::OPS;
use super::{Compiled, Precision, RuntimeError};
use crate::device::cuda::driver_err;
use crate::device::CudaDevice;
use crate::image::kernels::BLOCK;

// SAFETY: plain #[repr(C)] structs of integers and floats, laid out as
// `RtChain`/`RtView` in ops.cu.
unsafe impl DeviceRepr for RtChain {}
unsafe impl DeviceRepr for RtView {}

fn err(what: &str, e: impl std::fmt::Debug) -> RuntimeError {
    RuntimeError::Device(format!("{what}: {e:?}"))
}

/// A range of device memory the program owns, as cudarc's operand traits
/// want it (the arena's values and the weights are sub-ranges of two
/// allocations; one stream orders every use).
struct Raw {
    ptr: CUdeviceptr,
    len: usize,
    stream: Arc<CudaStream>,
}

impl<T> DeviceSlice<T> for Raw {
    fn len(&self) -> usize {
        self.len
    }
    fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }
}

impl<T> DevicePtr<T> for Raw {
    fn device_ptr<'a>(&'a self, _: &'a CudaStream) -> (CUdeviceptr, SyncOnDrop<'a>) {
        (self.ptr, SyncOnDrop::Record(None))
    }
}

impl<T> DevicePtrMut<T> for Raw {
    fn device_ptr_mut<'a>(&'a mut self, _: &'a CudaStream) -> (CUdeviceptr, SyncOnDrop<'a>) {
        (self.ptr, SyncOnDrop::Record(None))
    }
}

/// A convolution's cuDNN descriptors and algorithm, chosen once. Data in
/// `T` (f32 or half), computed and accumulated in f32.
struct ConvPlan<T: CudnnDataType> {
    x: TensorDescriptor<T>,
    w: FilterDescriptor<T>,
    y: TensorDescriptor<T>,
    conv: ConvDescriptor<f32>,
    algo: cudnnConvolutionFwdAlgo_t,
    /// Workspace bytes `algo` needs.
    workspace: usize,
    /// Shapes and parameters, for error messages.
    describe: String,
}

/// The cuDNN side of a program: its handle is not `Send`, so it is only
/// used under the device's launch lock.
struct CudnnState {
    _handle: Arc<Cudnn>,
    convs: ConvPlans,
}

/// Per step: the plan of a convolution step, `None` for other steps.
type Plans<T> = Vec<Option<ConvPlan<T>>>;

/// A program's conv plans in its precision.
enum ConvPlans {
    F32(Plans<f32>),
    F16(Plans<f16>),
}

impl ConvPlans {
    fn new(
        handle: &Arc<Cudnn>,
        p: &super::Program,
        precision: Precision,
    ) -> Result<(Self, usize), RuntimeError> {
        match precision {
            Precision::F32 => plans::<f32>(handle, p).map(|(v, w)| (ConvPlans::F32(v), w)),
            Precision::F16 => plans::<f16>(handle, p).map(|(v, w)| (ConvPlans::F16(v), w)),
        }
    }
}

/// The conv plans of a program's steps, and the largest workspace (bytes).
fn plans<T: CudnnDataType>(
    handle: &Arc<Cudnn>,
    p: &super::Program,
) -> Result<(Plans<T>, usize), RuntimeError> {
    let mut convs = Vec::with_capacity(p.steps.len());
    let mut workspace = 1usize;
    for step in &p.steps {
        let Op::Conv(c) = &step.op else {
            convs.push(None);
            continue;
        };
        let plan = conv_plan::<T>(
            handle,
            c,
            p.shape(step.inputs[0]),
            p.shape(step.inputs[1]),
            p.shape(step.output),
        )
        .map_err(|e| RuntimeError::Unsupported {
            model: p.model.clone(),
            node: format!("step {} (conv)", convs.len()),
            detail: e,
        })?;
        workspace = workspace.max(plan.workspace);
        convs.push(Some(plan));
    }
    Ok((convs, workspace))
}
// SAFETY: every use is under `CudaDevice::launch` (one thread at a time),
// on the stream the handle was created for.
unsafe impl Send for CudnnState {}

/// A compiled program prepared on one GPU.
pub struct CudaProgram {
    dev: Arc<CudaDevice>,
    compiled: Compiled,
    precision: Precision,
    /// Every constant a step reads, in `precision`, packed.
    weights: CudaSlice<u8>,
    /// Offset of each constant in `weights` (elements).
    weight_at: Vec<Option<usize>>,
    /// Values (in `precision`) and the f32 scratch, as the memory plan lays
    /// them out.
    arena: Mutex<CudaSlice<u8>>,
    /// The f32 input and outputs on their way in and out (converted from
    /// and to the arena's precision on the device).
    staging: Mutex<CudaSlice<f32>>,
    workspace: Mutex<CudaSlice<u8>>,
    cudnn: Mutex<CudnnState>,
}

fn alloc_err(e: cudarc::driver::DriverError) -> RuntimeError {
    RuntimeError::Device(driver_err(e).to_string())
}

impl CudaProgram {
    pub fn new(
        dev: Arc<CudaDevice>,
        compiled: Compiled,
        precision: Precision,
    ) -> Result<Self, RuntimeError> {
        let p = &compiled.program;
        // SAFETY: dlopens the library by name (a missing cuDNN panics later otherwise).
        if !unsafe { cudarc::cudnn::sys::is_culib_present() } {
            return Err(RuntimeError::Device(
                "cuDNN (libcudnn.so.9) not found: add its directory to LD_LIBRARY_PATH".into(),
            ));
        }
        let s = dev.stream.clone();
        // Constants the steps read, packed into one upload, each from an
        // offset of 64 elements.
        let mut weight_at = vec![None; p.values.len()];
        let mut packed: Vec<f32> = Vec::new();
        for step in &p.steps {
            for &v in &step.inputs {
                if let (Some(d), None) = (&p.values[v].data, weight_at[v]) {
                    weight_at[v] = Some(packed.len());
                    packed.extend_from_slice(d);
                    packed.resize(packed.len().div_ceil(64) * 64, 0.0);
                }
            }
        }
        packed.push(0.0);
        let bytes: Vec<u8> = match precision {
            Precision::F32 => packed.iter().flat_map(|v| v.to_ne_bytes()).collect(),
            // Rounded to nearest even, as the kernels' rt_f2h rounds.
            Precision::F16 => packed
                .iter()
                .flat_map(|v| f16::from_f32(*v).to_ne_bytes())
                .collect(),
        };
        let weights = s.clone_htod(&bytes).map_err(alloc_err)?;
        let arena = s
            .alloc_zeros::<u8>(compiled.plan.arena_bytes(precision).max(4))
            .map_err(alloc_err)?;
        let staging_len = p
            .outputs
            .iter()
            .map(|&o| p.values[o].len())
            .chain([p.values[p.input].len(), 1])
            .max()
            .unwrap_or(1);
        let staging = s.alloc_zeros::<f32>(staging_len).map_err(alloc_err)?;
        let handle = Cudnn::new(s.clone()).map_err(|e| err("cuDNN", e))?;
        let (convs, workspace) = ConvPlans::new(&handle, p, precision)?;
        let workspace = s.alloc_zeros::<u8>(workspace).map_err(alloc_err)?;
        let program = CudaProgram {
            dev,
            compiled,
            precision,
            weights,
            weight_at,
            arena: Mutex::new(arena),
            staging: Mutex::new(staging),
            workspace: Mutex::new(workspace),
            cudnn: Mutex::new(CudnnState {
                _handle: handle,
                convs,
            }),
        };
        if tune::enabled() {
            program.tune()?;
        }
        Ok(program)
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Where `b` lives, given the device addresses of the arena and the
    /// weights (held for the caller's run).
    fn raw(
        &self,
        arena: CUdeviceptr,
        weights: CUdeviceptr,
        stream: &Arc<CudaStream>,
        b: &Buf,
    ) -> Raw {
        let bytes = self.precision.bytes();
        let (ptr, len) = match b {
            Buf::Arena(r) => (arena + (r.start * bytes) as u64, r.len()),
            Buf::Scratch(r) => {
                let at = self.compiled.plan.scratch_at(self.precision);
                (arena + (at + r.start * 4) as u64, r.len())
            }
            Buf::Const(v) => {
                let at = self.weight_at[*v].expect("constants read by a step are uploaded");
                (
                    weights + (at * bytes) as u64,
                    self.compiled.program.values[*v].len(),
                )
            }
        };
        Raw {
            ptr,
            len,
            stream: stream.clone(),
        }
    }

    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// Runs the program on `input`; returns its outputs.
    pub fn run(&self, input: &[f32]) -> Result<Vec<Vec<f32>>, RuntimeError> {
        self.run_with(input, None)
    }

    /// Runs the program once, synchronising after every step: seconds and
    /// launches per step kind (conv, conv epilogue, binary, ...), largest
    /// first. For finding where a model's time goes; a normal run never
    /// synchronises between steps.
    pub fn profile(&self, input: &[f32]) -> Result<Vec<(&'static str, f64, usize)>, RuntimeError> {
        let cell = RefCell::new((Instant::now(), Vec::new()));
        self.run_with(input, Some(&cell))?;
        let mut v: Vec<(&'static str, f64, usize)> = cell.into_inner().1;
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(v)
    }

    fn run_with(
        &self,
        input: &[f32],
        profile: Option<&Profile>,
    ) -> Result<Vec<Vec<f32>>, RuntimeError> {
        self.compiled.program.check_input(input)?;
        let (p, plan) = (&self.compiled.program, &self.compiled.plan);
        let _one = self.dev.launch.lock().expect("launch lock");
        let s = &self.dev.stream;
        let arena = self.arena.lock().expect("arena");
        let mut staging = self.staging.lock().expect("staging");
        let (arena_ptr, _a) = arena.device_ptr(s);
        let (weights_ptr, _w) = self.weights.device_ptr(s);
        let mut workspace = self.workspace.lock().expect("workspace");
        let ws_len = workspace.len();
        let (ws_ptr, _ws) = workspace.device_ptr_mut(s);
        let cudnn = self.cudnn.lock().expect("cudnn");
        let gpu = Gpu {
            prog: self,
            stream: s.clone(),
            arena: arena_ptr,
            weights: weights_ptr,
            workspace: (ws_ptr, ws_len),
            convs: &cudnn.convs,
            step: Cell::new(0),
            profile,
        };
        s.memcpy_htod(input, &mut staging.slice_mut(0..input.len()))
            .map_err(alloc_err)?;
        let staged = {
            let (ptr, _st) = staging.device_ptr(s);
            ptr
        };
        gpu.convert(staged, false, &Buf::Arena(plan.range(p.input)))?;
        if let Some(p) = profile {
            s.synchronize().map_err(alloc_err)?;
            p.borrow_mut().0 = Instant::now();
        }
        drive(p, plan, &gpu)?;
        let mut out = Vec::with_capacity(p.outputs.len());
        for &o in &p.outputs {
            out.push(match &p.values[o].data {
                Some(d) => d.to_vec(),
                None => {
                    let r = plan.range(o);
                    gpu.convert(staged, true, &Buf::Arena(r.clone()))?;
                    s.clone_dtoh(&staging.slice(0..r.len()))
                        .map_err(alloc_err)?
                }
            });
        }
        Ok(out)
    }
}

fn conv_plan<T: CudnnDataType>(
    handle: &Arc<Cudnn>,
    c: &Conv,
    xs: &[usize],
    ws: &[usize],
    ys: &[usize],
) -> Result<ConvPlan<T>, String> {
    let nchw = |s: &[usize]| nchw(s).map(|d| d as i32);
    if c.pads[0] != c.pads[2] || c.pads[1] != c.pads[3] {
        return Err(format!(
            "asymmetric padding {:?} (cuDNN pads both sides alike)",
            c.pads
        ));
    }
    let e = |e: cudarc::cudnn::CudnnError| format!("cuDNN: {e:?}");
    let f = cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
    let x = handle.create_4d_tensor::<T>(f, nchw(xs)).map_err(e)?;
    let w = handle.create_4d_filter::<T>(f, nchw(ws)).map_err(e)?;
    let y = handle.create_4d_tensor::<T>(f, nchw(ys)).map_err(e)?;
    let mut conv = handle
        .create_conv2d::<f32>(
            [c.pads[0] as i32, c.pads[1] as i32],
            [c.stride[0] as i32, c.stride[1] as i32],
            [c.dilation[0] as i32, c.dilation[1] as i32],
            cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
        )
        .map_err(e)?;
    conv.set_group_count(c.group as i32).map_err(e)?;
    // Tensor cores where cuDNN finds them worth it (TF32 for f32 data, f16
    // with f32 accumulation for half: the descriptor's compute type is f32).
    conv.set_math_type(cudnnMathType_t::CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)
        .map_err(e)?;
    let algo = ConvForward {
        conv: &conv,
        x: &x,
        w: &w,
        y: &y,
    }
    .pick_algorithm()
    .map_err(e)?;
    let workspace = ConvForward {
        conv: &conv,
        x: &x,
        w: &w,
        y: &y,
    }
    .get_workspace_size(algo)
    .map_err(e)?;
    let describe = format!(
        "{:?} x {xs:?} w {ws:?} y {ys:?} pads {:?} stride {:?} dilation {:?} group {}",
        T::DATA_TYPE,
        c.pads,
        c.stride,
        c.dilation,
        c.group
    );
    Ok(ConvPlan {
        x,
        w,
        y,
        conv,
        algo,
        workspace,
        describe,
    })
}

/// One run's view of the program on the device.
struct Gpu<'a> {
    prog: &'a CudaProgram,
    stream: Arc<CudaStream>,
    arena: CUdeviceptr,
    weights: CUdeviceptr,
    workspace: (CUdeviceptr, usize),
    convs: &'a ConvPlans,
    /// Index of the next convolution step's plan.
    step: Cell<usize>,
    profile: Option<&'a Profile>,
}

/// A profiling run's clock and (step kind, seconds, launches) so far.
type Profile = RefCell<(Instant, Vec<(&'static str, f64, usize)>)>;

impl Gpu<'_> {
    fn raw(&self, b: &Buf) -> Raw {
        self.prog.raw(self.arena, self.weights, &self.stream, b)
    }

    fn ptr(&self, b: &Buf) -> u64 {
        self.raw(b).ptr
    }

    /// The kernels' `half` flag for a buffer (values in the program's
    /// precision; scratch always f32).
    fn half(&self, b: &Buf) -> i32 {
        b.half_flag(self.prog.precision)
    }

    /// Between the f32 staging buffer and a value of the arena (`rt_convert`):
    /// into the arena, or (`out`) from it.
    fn convert(&self, staging: CUdeviceptr, out: bool, value: &Buf) -> Result<(), RuntimeError> {
        let (v, half, n) = (
            self.ptr(value),
            self.half(value),
            self.raw(value).len as i64,
        );
        let (x, y, x_half, y_half) = match out {
            false => (staging, v, 0, half),
            true => (v, staging, half, 0),
        };
        let f = self.function("rt_convert")?;
        let mut b = self.stream.launch_builder(&f);
        b.arg(&x).arg(&y).arg(&n).arg(&x_half).arg(&y_half);
        self.start(b, n as usize)
    }

    fn function(&self, entry: &str) -> Result<cudarc::driver::CudaFunction, RuntimeError> {
        self.prog
            .dev
            .function(OPS.name, &OPS.source(), entry)
            .map_err(|e| RuntimeError::Device(e.to_string()))
    }

    /// Starts `n` threads of the kernel whose arguments `b` holds.
    fn start(&self, mut b: cudarc::driver::LaunchArgs<'_>, n: usize) -> Result<(), RuntimeError> {
        if n == 0 {
            return Ok(());
        }
        let cfg = LaunchConfig {
            grid_dim: ((n as u64).div_ceil(BLOCK as u64) as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: each caller pushes the arguments of its entry in ops.cu,
        // with pointers into the arena and weights sized by the memory plan.
        unsafe { b.launch(cfg) }.map_err(|e| RuntimeError::Device(driver_err(e).to_string()))?;
        Ok(())
    }

    /// The conv plan of the next convolution step (steps run in order).
    fn next_conv<'p, T: CudnnDataType>(
        &self,
        plans: &'p [Option<ConvPlan<T>>],
    ) -> Result<&'p ConvPlan<T>, RuntimeError> {
        loop {
            let i = self.step.get();
            self.step.set(i + 1);
            match plans.get(i) {
                Some(Some(plan)) => return Ok(plan),
                Some(None) => continue,
                None => return Err(RuntimeError::Device("convolution without a plan".into())),
            }
        }
    }

    /// Launches the next convolution step's cuDNN plan (`one`, `zero`: its
    /// scaling factors in the data type).
    fn conv_on<T: CudnnDataType + Copy>(
        &self,
        plans: &[Option<ConvPlan<T>>],
        (x, w, y): (&Buf, &Buf, &Buf),
        one: T,
        zero: T,
    ) -> Result<(), RuntimeError> {
        let plan = self.next_conv(plans)?;
        let op = ConvForward {
            conv: &plan.conv,
            x: &plan.x,
            w: &plan.w,
            y: &plan.y,
        };
        let (x, w, mut y) = (self.raw(x), self.raw(w), self.raw(y));
        let mut ws = WorkspaceBytes {
            ptr: self.workspace.0,
            bytes: self.workspace.1,
            stream: self.stream.clone(),
        };
        // SAFETY: descriptors match the buffers' shapes and data type (built
        // from the same program and precision); the workspace is at least
        // the largest size asked for.
        let first = unsafe { op.launch(plan.algo, Some(&mut ws), (one, zero), &x, &w, &mut y) };
        let Err(e) = first else {
            return Ok(());
        };
        // cuDNN's heuristic can name an algorithm that then refuses the
        // launch for some shapes; implicit GEMM takes every convolution
        // without a workspace. Said once per plan in the log, never silent.
        let fallback = cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
        if plan.algo != fallback {
            tracing::warn!(
                "{}: cuDNN refused the convolution with {:?} ({e:?}): {}; using implicit GEMM",
                self.prog.compiled.program.model,
                plan.algo,
                plan.describe
            );
            // SAFETY: as above; implicit GEMM needs no workspace.
            let again = unsafe {
                op.launch(
                    fallback,
                    None::<&mut WorkspaceBytes>,
                    (one, zero),
                    &x,
                    &w,
                    &mut y,
                )
            };
            if again.is_ok() {
                return Ok(());
            }
        }
        Err(RuntimeError::Device(format!(
            "{}: cuDNN convolution: {e:?} ({}; algo {:?} asks {} bytes of workspace, this run's is {})",
            self.prog.compiled.program.model,
            plan.describe,
            plan.algo,
            plan.workspace,
            self.workspace.1
        )))
    }
}

impl Backend for Gpu<'_> {
    fn mark(&self, kind: &'static str) -> Result<(), RuntimeError> {
        let Some(p) = self.profile else {
            return Ok(());
        };
        self.stream
            .synchronize()
            .map_err(|e| RuntimeError::Device(driver_err(e).to_string()))?;
        let mut p = p.borrow_mut();
        let s = p.0.elapsed().as_secs_f64();
        p.0 = Instant::now();
        match p.1.iter_mut().find(|e| e.0 == kind) {
            Some(e) => {
                e.1 += s;
                e.2 += 1;
            }
            None => p.1.push((kind, s, 1)),
        }
        Ok(())
    }

    fn conv(
        &self,
        _: &Conv,
        x: &Buf,
        w: &Buf,
        y: &Buf,
        _: [usize; 4],
        _: [usize; 4],
        _: [usize; 4],
    ) -> Result<(), RuntimeError> {
        match self.convs {
            ConvPlans::F32(plans) => self.conv_on(plans, (x, w, y), 1.0f32, 0.0),
            ConvPlans::F16(plans) => self.conv_on(plans, (x, w, y), f16::ONE, f16::ZERO),
        }
    }

    fn matmul(
        &self,
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        a: &Buf,
        a_batched: bool,
        b: &Buf,
        b_batched: bool,
        c: &Buf,
    ) -> Result<(), RuntimeError> {
        // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: B first.
        fn config<T>(
            (batch, m, k, n): (usize, usize, usize, usize),
            (a_batched, b_batched): (bool, bool),
            (one, zero): (T, T),
        ) -> StridedBatchedConfig<T> {
            StridedBatchedConfig {
                gemm: GemmConfig {
                    transa: cublasOperation_t::CUBLAS_OP_N,
                    transb: cublasOperation_t::CUBLAS_OP_N,
                    m: n as i32,
                    n: m as i32,
                    k: k as i32,
                    alpha: one,
                    lda: n as i32,
                    ldb: k as i32,
                    beta: zero,
                    ldc: n as i32,
                },
                batch_size: batch as i32,
                stride_a: if b_batched { (k * n) as i64 } else { 0 },
                stride_b: if a_batched { (m * k) as i64 } else { 0 },
                stride_c: (m * n) as i64,
            }
        }
        let (dims, batched) = ((batch, m, k, n), (a_batched, b_batched));
        let (a, b, mut c) = (self.raw(a), self.raw(b), self.raw(c));
        let blas = &self.prog.dev.blas;
        // SAFETY: the buffers hold batch (or one) m×k, k×n and m×n matrices
        // of the program's precision (half: cublasGemmEx, f32 accumulation).
        unsafe {
            match self.prog.precision {
                Precision::F32 => {
                    let cfg = config(dims, batched, (1.0f32, 0.0));
                    Gemm::<f32>::gemm_strided_batched(blas, cfg, &b, &a, &mut c)
                }
                Precision::F16 => {
                    let cfg = config(dims, batched, (f16::ONE, f16::ZERO));
                    Gemm::<f16>::gemm_strided_batched(blas, cfg, &b, &a, &mut c)
                }
            }
        }
        .map_err(|e| err("cuBLAS", e))
    }

    fn epilogue(
        &self,
        y: &Buf,
        bias: &Buf,
        residual: Option<&Buf>,
        n: usize,
        channels: usize,
        plane: usize,
        chain: RtChain,
    ) -> Result<(), RuntimeError> {
        let half = self.half(y);
        let (y, bias, res) = (
            self.ptr(y),
            self.ptr(bias),
            residual.map_or(0u64, |r| self.ptr(r)),
        );
        let (n, channels, plane) = (n as i64, channels as i64, plane as i64);
        let f = self.function("rt_epilogue")?;
        let mut b = self.stream.launch_builder(&f);
        b.arg(&y)
            .arg(&bias)
            .arg(&res)
            .arg(&n)
            .arg(&channels)
            .arg(&plane)
            .arg(&chain)
            .arg(&half);
        self.start(b, n as usize)
    }

    fn map(&self, x: &Buf, y: &Buf, n: usize, chain: RtChain) -> Result<(), RuntimeError> {
        let (half, len) = (self.half(y), n as i64);
        let (x, y) = (self.ptr(x), self.ptr(y));
        let f = self.function("rt_map")?;
        let mut b = self.stream.launch_builder(&f);
        b.arg(&x).arg(&y).arg(&len).arg(&chain).arg(&half);
        self.start(b, n)
    }

    fn binary(
        &self,
        a: &Buf,
        b: &Buf,
        y: &Buf,
        n: usize,
        op: i32,
        va: RtView,
        vb: RtView,
    ) -> Result<(), RuntimeError> {
        let half = self.half(y);
        let (a, bb, y, len) = (self.ptr(a), self.ptr(b), self.ptr(y), n as i64);
        let f = self.function("rt_binary")?;
        let mut b = self.stream.launch_builder(&f);
        b.arg(&a)
            .arg(&bb)
            .arg(&y)
            .arg(&len)
            .arg(&op)
            .arg(&va)
            .arg(&vb)
            .arg(&half);
        self.start(b, n)
    }

    fn copy(
        &self,
        x: &Buf,
        y: &Buf,
        n: usize,
        src: RtView,
        dst: RtView,
    ) -> Result<(), RuntimeError> {
        let (half, len) = (self.half(y), n as i64);
        let (x, y) = (self.ptr(x), self.ptr(y));
        let f = self.function("rt_copy")?;
        let mut b = self.stream.launch_builder(&f);
        b.arg(&x).arg(&y).arg(&len).arg(&src).arg(&dst).arg(&half);
        self.start(b, n)
    }

    fn reduce(
        &self,
        x: &Buf,
        y: &Buf,
        groups: usize,
        op: i32,
        eps: f32,
        g: RtView,
        inner: RtView,
    ) -> Result<(), RuntimeError> {
        let half = self.half(y);
        let (x, y, len) = (self.ptr(x), self.ptr(y), groups as i64);
        let f = self.function("rt_reduce")?;
        let mut b = self.stream.launch_builder(&f);
        b.arg(&x)
            .arg(&y)
            .arg(&len)
            .arg(&op)
            .arg(&eps)
            .arg(&g)
            .arg(&inner)
            .arg(&half);
        self.start(b, groups)
    }

    fn reduce_part(
        &self,
        x: &Buf,
        part: &Buf,
        groups: usize,
        chunks: usize,
        op: i32,
        stat: &Buf,
        g: RtView,
        inner: RtView,
    ) -> Result<(), RuntimeError> {
        let half = self.half(x);
        let (x, p, st) = (self.ptr(x), self.ptr(part), self.ptr(stat));
        let (len, chunks_i) = (groups as i64, chunks as i32);
        let f = self.function("rt_reduce_part")?;
        let mut b = self.stream.launch_builder(&f);
        b.arg(&x)
            .arg(&p)
            .arg(&len)
            .arg(&chunks_i)
            .arg(&op)
            .arg(&st)
            .arg(&g)
            .arg(&inner)
            .arg(&half);
        self.start(b, groups * chunks)
    }

    fn reduce_combine(
        &self,
        part: &Buf,
        y: &Buf,
        groups: usize,
        chunks: usize,
        op: i32,
        count: usize,
        eps: f32,
    ) -> Result<(), RuntimeError> {
        let y_half = self.half(y);
        let (p, y) = (self.ptr(part), self.ptr(y));
        let (len, chunks_i, count_f) = (groups as i64, chunks as i32, count as f32);
        let f = self.function("rt_reduce_combine")?;
        let mut b = self.stream.launch_builder(&f);
        b.arg(&p)
            .arg(&y)
            .arg(&len)
            .arg(&chunks_i)
            .arg(&op)
            .arg(&count_f)
            .arg(&eps)
            .arg(&y_half);
        self.start(b, groups)
    }

    fn reduce_scale(
        &self,
        x: &Buf,
        y: &Buf,
        n: usize,
        count: usize,
        op: i32,
        m: &Buf,
        s: &Buf,
        g: RtView,
        inner: RtView,
    ) -> Result<(), RuntimeError> {
        let half = self.half(y);
        let (x, y, m, s) = (self.ptr(x), self.ptr(y), self.ptr(m), self.ptr(s));
        let (len, count_i) = (n as i64, count as i64);
        let f = self.function("rt_reduce_scale")?;
        let mut b = self.stream.launch_builder(&f);
        b.arg(&x)
            .arg(&y)
            .arg(&len)
            .arg(&count_i)
            .arg(&op)
            .arg(&m)
            .arg(&s)
            .arg(&g)
            .arg(&inner)
            .arg(&half);
        self.start(b, n)
    }

    fn pool(
        &self,
        x: &Buf,
        y: &Buf,
        n: usize,
        d: [i32; 10],
        average: bool,
    ) -> Result<(), RuntimeError> {
        let half = self.half(y);
        let (x, y, len, avg) = (self.ptr(x), self.ptr(y), n as i64, average as i32);
        let f = self.function("rt_pool")?;
        let mut b = self.stream.launch_builder(&f);
        b.arg(&x).arg(&y).arg(&len);
        for v in &d {
            b.arg(v);
        }
        b.arg(&avg).arg(&half);
        self.start(b, n)
    }

    fn deconv(
        &self,
        x: &Buf,
        w: &Buf,
        bias: &Buf,
        y: &Buf,
        n: usize,
        d: [i32; 7],
    ) -> Result<(), RuntimeError> {
        let (x, w, bias, y, len) = (
            self.ptr(x),
            self.ptr(w),
            self.ptr(bias),
            self.ptr(y),
            n as i64,
        );
        let half = self.prog.precision.half_flag();
        let f = self.function("rt_deconv")?;
        let mut b = self.stream.launch_builder(&f);
        b.arg(&x).arg(&w).arg(&bias).arg(&y).arg(&len);
        for v in &d {
            b.arg(v);
        }
        b.arg(&half);
        self.start(b, n)
    }
}

/// The workspace as the byte buffer cuDNN's launch wants (its exact byte
/// length: a length rounded to f32s could fall short of what cuDNN asked).
struct WorkspaceBytes {
    ptr: CUdeviceptr,
    bytes: usize,
    stream: Arc<CudaStream>,
}

impl DeviceSlice<u8> for WorkspaceBytes {
    fn len(&self) -> usize {
        self.bytes
    }
    fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }
}

impl DevicePtrMut<u8> for WorkspaceBytes {
    fn device_ptr_mut<'b>(&'b mut self, _: &'b CudaStream) -> (CUdeviceptr, SyncOnDrop<'b>) {
        (self.ptr, SyncOnDrop::Record(None))
    }
}
