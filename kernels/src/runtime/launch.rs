//! One driver for the executors that run the program's kernels
//! (`cuda/ops.cu`): it walks the steps, builds each kernel's arguments and
//! calls the [`Backend`]. The host backend (`host.rs`: the same `.cu`
//! compiled as C++, sgemm on the CPU) and the CUDA backend (`cuda.rs`: NVRTC,
//! cuDNN, cuBLAS) differ only in how a call is carried out.

use std::ops::Range;

use super::memory::MemoryPlan;
use super::program::*;
use super::RuntimeError;

/// Axes a kernel view holds at most (`RT_RANK` in ops.cu).
pub const RANK: usize = 6;
const CHAIN: usize = 8;

/// `RtChain` of ops.cu.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RtChain {
    pub len: i32,
    pub gate: i32,
    pub op: [i32; CHAIN],
    pub a: [f32; CHAIN],
    pub b: [f32; CHAIN],
    pub post_a: f32,
    pub post_b: f32,
}

/// `RtView` of ops.cu: an iteration space and how it moves in a buffer.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RtView {
    pub rank: i32,
    pub dims: [i64; RANK],
    pub stride: [i64; RANK],
    pub div: [i64; RANK],
    pub base: i64,
}

/// Where an operand lives: a value's range of the arena (elements, stored in
/// the executor's precision), a constant, or a range of the f32 scratch
/// after the values (split reductions' partials and statistics).
#[derive(Debug, Clone)]
pub enum Buf {
    Arena(Range<usize>),
    Const(ValueId),
    Scratch(Range<usize>),
}

impl Buf {
    /// The kernels' `half` flag for this buffer in an executor storing
    /// values in `precision` (scratch is f32 in either).
    pub fn half_flag(&self, precision: super::Precision) -> i32 {
        match self {
            Buf::Scratch(_) => 0,
            _ => precision.half_flag(),
        }
    }
}

/// The calls a program needs. Shapes are NCHW (`[n, c, h, w]`).
pub trait Backend {
    /// Called after each step's launches with the step's kind (a
    /// profiling backend synchronises and times here; others do nothing).
    fn mark(&self, _kind: &'static str) -> Result<(), RuntimeError> {
        Ok(())
    }
    #[allow(clippy::too_many_arguments)]
    /// Convolution without bias or epilogue (those follow as [`epilogue`](Self::epilogue)).
    fn conv(
        &self,
        c: &Conv,
        x: &Buf,
        w: &Buf,
        y: &Buf,
        xs: [usize; 4],
        ws: [usize; 4],
        ys: [usize; 4],
    ) -> Result<(), RuntimeError>;
    #[allow(clippy::too_many_arguments)]
    /// `c[b] = a[b or 0] · b[b or 0]` (row-major `m×k` by `k×n`).
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
    ) -> Result<(), RuntimeError>;
    #[allow(clippy::too_many_arguments)]
    fn epilogue(
        &self,
        y: &Buf,
        bias: &Buf,
        residual: Option<&Buf>,
        n: usize,
        channels: usize,
        plane: usize,
        chain: RtChain,
    ) -> Result<(), RuntimeError>;
    fn map(&self, x: &Buf, y: &Buf, n: usize, chain: RtChain) -> Result<(), RuntimeError>;
    #[allow(clippy::too_many_arguments)]
    fn binary(
        &self,
        a: &Buf,
        b: &Buf,
        y: &Buf,
        n: usize,
        op: i32,
        va: RtView,
        vb: RtView,
    ) -> Result<(), RuntimeError>;
    fn copy(
        &self,
        x: &Buf,
        y: &Buf,
        n: usize,
        src: RtView,
        dst: RtView,
    ) -> Result<(), RuntimeError>;
    #[allow(clippy::too_many_arguments)]
    fn reduce(
        &self,
        x: &Buf,
        y: &Buf,
        groups: usize,
        op: i32,
        eps: f32,
        g: RtView,
        inner: RtView,
    ) -> Result<(), RuntimeError>;
    /// Pass 1 of a split reduction (`rt_reduce_part`): one partial per
    /// (group, chunk); `stat` is the per-group max for op 6 (exp sums).
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<(), RuntimeError>;
    /// Pass 2 (`rt_reduce_combine`): one value per group from its partials.
    #[allow(clippy::too_many_arguments)]
    fn reduce_combine(
        &self,
        part: &Buf,
        y: &Buf,
        groups: usize,
        chunks: usize,
        op: i32,
        count: usize,
        eps: f32,
    ) -> Result<(), RuntimeError>;
    /// Pass 3 (`rt_reduce_scale`): softmax (op 0) or RMS norm (op 1) of every
    /// element from its group's statistics.
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<(), RuntimeError>;
    /// `dims`: h, w, ho, wo, kh, kw, sh, sw, pt, pl.
    fn pool(
        &self,
        x: &Buf,
        y: &Buf,
        n: usize,
        dims: [i32; 10],
        average: bool,
    ) -> Result<(), RuntimeError>;
    /// `dims`: ci, co, h, w, kh, kw, group.
    fn deconv(
        &self,
        x: &Buf,
        w: &Buf,
        b: &Buf,
        y: &Buf,
        n: usize,
        dims: [i32; 7],
    ) -> Result<(), RuntimeError>;
}

pub fn chain(e: &Epilogue) -> Result<RtChain, RuntimeError> {
    if e.chain.len() > CHAIN {
        return Err(RuntimeError::Input(format!(
            "element-wise chain of {} ops (at most {CHAIN})",
            e.chain.len()
        )));
    }
    let mut c = RtChain {
        len: e.chain.len() as i32,
        gate: e.gate as i32,
        post_a: e.post.map_or(1.0, |p| p.0),
        post_b: e.post.map_or(0.0, |p| p.1),
        ..Default::default()
    };
    for (i, f) in e.chain.iter().enumerate() {
        let (op, a, b) = match *f {
            Elementwise::Affine { scale, shift } => (0, scale, shift),
            Elementwise::Clip { lo, hi } => (1, lo, hi),
            Elementwise::Sigmoid => (2, 0.0, 0.0),
            Elementwise::Recip => (3, 0.0, 0.0),
            Elementwise::Rsqrt => (4, 0.0, 0.0),
            Elementwise::Sqrt => (5, 0.0, 0.0),
            Elementwise::Square => (6, 0.0, 0.0),
            Elementwise::Exp => (7, 0.0, 0.0),
            Elementwise::Tanh => (8, 0.0, 0.0),
            Elementwise::Abs => (9, 0.0, 0.0),
            Elementwise::Neg => (10, 0.0, 0.0),
        };
        c.op[i] = op;
        c.a[i] = a;
        c.b[i] = b;
    }
    Ok(c)
}

/// A view over iteration `dims` moving by `stride` (divided by `div`).
fn view(
    dims: &[usize],
    stride: &[usize],
    div: &[usize],
    base: usize,
) -> Result<RtView, RuntimeError> {
    if dims.len() > RANK {
        return Err(RuntimeError::Input(format!(
            "{} axes (the kernels take at most {RANK})",
            dims.len()
        )));
    }
    let mut v = RtView {
        rank: dims.len().max(1) as i32,
        base: base as i64,
        ..Default::default()
    };
    v.dims[0] = 1;
    v.div[0] = 1;
    for a in 0..dims.len() {
        v.dims[a] = dims[a] as i64;
        v.stride[a] = stride[a] as i64;
        v.div[a] = div[a] as i64;
    }
    Ok(v)
}

/// Reading `x` (shape `xs`) over `out` under numpy broadcasting.
fn broadcast_view(xs: &[usize], out: &[usize]) -> Result<RtView, RuntimeError> {
    let lead = out.len() - xs.len();
    let st = strides(xs);
    let stride: Vec<usize> = (0..out.len())
        .map(|a| {
            if a < lead || xs[a - lead] == 1 {
                0
            } else {
                st[a - lead]
            }
        })
        .collect();
    view(out, &stride, &vec![1; out.len()], 0)
}

fn contiguous(dims: &[usize], base: usize) -> Result<RtView, RuntimeError> {
    view(dims, &strides(dims), &vec![1; dims.len()], base)
}

/// Runs every step of `p` on `backend`; the input is already in the arena.
pub fn drive(p: &Program, plan: &MemoryPlan, backend: &impl Backend) -> Result<(), RuntimeError> {
    let buf = |v: ValueId| {
        if p.is_const(v) {
            Buf::Const(v)
        } else {
            Buf::Arena(plan.range(v))
        }
    };
    for step in &p.steps {
        let i = |k: usize| buf(step.inputs[k]);
        let shape = |k: usize| p.shape(step.inputs[k]);
        let y = buf(step.output);
        let ys = p.shape(step.output);
        let n: usize = ys.iter().product();
        match &step.op {
            Op::Conv(c) => {
                let (xs, ws, os) = (nchw(shape(0)), nchw(shape(1)), nchw(ys));
                backend.conv(c, &i(0), &i(1), &y, xs, ws, os)?;
                backend.mark(if c.group > 1 {
                    "conv (grouped)"
                } else {
                    "conv"
                })?;
                let residual = c.residual.then(|| i(3));
                backend.epilogue(
                    &y,
                    &i(2),
                    residual.as_ref(),
                    n,
                    os[1],
                    os[2] * os[3],
                    chain(&c.epilogue)?,
                )?;
                backend.mark("conv epilogue")?;
            }
            Op::Deconv { group, .. } => {
                let (xs, ws) = (nchw(shape(0)), nchw(shape(1)));
                let dims = [xs[1], ws[0], xs[2], xs[3], ws[2], ws[3], *group].map(|d| d as i32);
                backend.deconv(&i(0), &i(1), &i(2), &y, n, dims)?;
            }
            Op::MatMul {
                batch,
                m,
                k,
                n: cols,
            } => {
                let (a_b, b_b) = (shape(0)[0] != 1, shape(1)[0] != 1);
                backend.matmul(*batch, *m, *k, *cols, &i(0), a_b, &i(1), b_b, &y)?;
            }
            Op::Binary(op) => {
                let code = match op {
                    BinOp::Add => 0,
                    BinOp::Sub => 1,
                    BinOp::Mul => 2,
                    BinOp::Div => 3,
                    BinOp::Max => 4,
                    BinOp::Min => 5,
                    BinOp::Pow => 6,
                };
                let (va, vb) = (broadcast_view(shape(0), ys)?, broadcast_view(shape(1), ys)?);
                backend.binary(&i(0), &i(1), &y, n, code, va, vb)?;
            }
            Op::Map(e) => backend.map(&i(0), &y, n, chain(e)?)?,
            // In place when the memory plan gave both the same range.
            Op::Reshape => match (&i(0), &y) {
                (Buf::Arena(a), Buf::Arena(b)) if a == b => {}
                (x, _) => backend.copy(x, &y, n, contiguous(&[n], 0)?, contiguous(&[n], 0)?)?,
            },
            Op::Broadcast => backend.copy(
                &i(0),
                &y,
                n,
                broadcast_view(shape(0), ys)?,
                contiguous(ys, 0)?,
            )?,
            Op::Permute { perm } => {
                let st = strides(shape(0));
                let src: Vec<usize> = perm.iter().map(|&a| st[a]).collect();
                backend.copy(
                    &i(0),
                    &y,
                    n,
                    view(ys, &src, &vec![1; ys.len()], 0)?,
                    contiguous(ys, 0)?,
                )?;
            }
            Op::Slice { axis, start, .. } => {
                let st = strides(shape(0));
                let src = view(ys, &st, &vec![1; ys.len()], start * st[*axis])?;
                backend.copy(&i(0), &y, n, src, contiguous(ys, 0)?)?;
            }
            Op::Upsample { scales } => {
                let src = view(ys, &strides(shape(0)), scales, 0)?;
                backend.copy(&i(0), &y, n, src, contiguous(ys, 0)?)?;
            }
            Op::Concat { axis } => {
                let ost = strides(ys);
                let mut at = 0;
                for k in 0..step.inputs.len() {
                    let xs = shape(k);
                    let len: usize = xs.iter().product();
                    let dst = view(xs, &ost, &vec![1; xs.len()], at * ost[*axis])?;
                    backend.copy(&i(k), &y, len, contiguous(xs, 0)?, dst)?;
                    at += xs[*axis];
                }
            }
            Op::Reduce { reducer, axes } => {
                // rt_reduce's code, and the split form's pass 1 and pass 2
                // codes: means sum (0) or sum squares (3), then divide (4).
                let (code, part_op, combine_op) = match reducer {
                    Reducer::Sum => (0, 0, 0),
                    Reducer::Max => (1, 1, 1),
                    Reducer::Min => (2, 2, 2),
                    Reducer::MeanOfSquares => (3, 3, 4),
                    Reducer::Mean => (6, 0, 4),
                };
                let r = Reduction::new(shape(0), axes)?;
                match r.split(plan) {
                    None => backend.reduce(&i(0), &y, n, code, 0.0, r.groups_view, r.inner)?,
                    Some((part, ..)) => {
                        r.part(backend, &i(0), &part, part_op, &part)?;
                        r.combine(backend, &part, &y, combine_op, 0.0)?;
                    }
                }
            }
            Op::Softmax { axes } => {
                let r = Reduction::new(shape(0), axes)?;
                match r.split(plan) {
                    None => backend.reduce(&i(0), &y, r.groups, 4, 0.0, r.groups_view, r.inner)?,
                    Some((part, m, sum)) => {
                        r.part(backend, &i(0), &part, 1, &part)?;
                        r.combine(backend, &part, &m, 1, 0.0)?;
                        r.part(backend, &i(0), &part, 6, &m)?;
                        r.combine(backend, &part, &sum, 0, 0.0)?;
                        r.scale(backend, &i(0), &y, 0, &m, &sum)?;
                    }
                }
            }
            Op::RmsNorm { axis, eps } => {
                let r = Reduction::new(shape(0), &[*axis])?;
                match r.split(plan) {
                    None => backend.reduce(&i(0), &y, r.groups, 5, *eps, r.groups_view, r.inner)?,
                    Some((part, scale, _)) => {
                        r.part(backend, &i(0), &part, 3, &part)?;
                        r.combine(backend, &part, &scale, 5, *eps)?;
                        r.scale(backend, &i(0), &y, 1, &scale, &scale)?;
                    }
                }
            }
            Op::Pool {
                kernel,
                stride,
                pads,
                average,
            } => {
                let (xs, os) = (nchw(shape(0)), nchw(ys));
                let dims = [
                    xs[2], xs[3], os[2], os[3], kernel[0], kernel[1], stride[0], stride[1],
                    pads[0], pads[1],
                ]
                .map(|d| d as i32);
                backend.pool(&i(0), &y, n, dims, *average)?;
            }
        }
        if !matches!(step.op, Op::Conv(_)) {
            backend.mark(step.op.kind())?;
        }
    }
    Ok(())
}

/// Threads a GPU wants in flight for a reduction to use it (an H200 keeps
/// ~270K resident; a quarter of that is enough to hide memory latency).
const REDUCE_THREADS: usize = 1 << 16;

/// How many interleaved chunks a reduction of `groups` groups of `count`
/// elements is split into: 1 (one thread per group) when there are enough
/// groups to fill the GPU or the groups are short, else enough chunks for
/// [`REDUCE_THREADS`] threads, each walking at least 32 elements.
pub fn reduction_chunks(groups: usize, count: usize) -> usize {
    if groups >= REDUCE_THREADS / 4 || count < 256 {
        return 1;
    }
    (REDUCE_THREADS / groups.max(1))
        .clamp(1, count / 32)
        .min(1024)
}

/// Scratch (f32s) a split reduction needs: its partials and two per-group
/// statistics; 0 when it is not split.
pub fn reduction_scratch(dims: &[usize], axes: &[usize]) -> usize {
    let (groups, count) = groups_and_count(dims, axes);
    match reduction_chunks(groups, count) {
        1 => 0,
        c => groups * c + 2 * groups,
    }
}

/// Groups of a reduction over `axes` of `dims`, and elements per group.
fn groups_and_count(dims: &[usize], axes: &[usize]) -> (usize, usize) {
    let count: usize = axes.iter().map(|&a| dims[a]).product();
    (dims.iter().product::<usize>() / count.max(1), count)
}

/// A reduction's views and sizes, and the passes of its split form.
struct Reduction {
    groups_view: RtView,
    inner: RtView,
    groups: usize,
    count: usize,
    chunks: usize,
}

impl Reduction {
    fn new(dims: &[usize], axes: &[usize]) -> Result<Self, RuntimeError> {
        let (groups_view, inner) = group_views(dims, axes)?;
        let (groups, count) = groups_and_count(dims, axes);
        Ok(Reduction {
            groups_view,
            inner,
            groups,
            count,
            chunks: reduction_chunks(groups, count),
        })
    }

    /// The scratch ranges (partials, two statistics) when split.
    fn split(&self, plan: &MemoryPlan) -> Option<(Buf, Buf, Buf)> {
        if self.chunks == 1 {
            return None;
        }
        let (p, g) = (self.groups * self.chunks, self.groups);
        debug_assert!(p + 2 * g <= plan.scratch_len);
        Some((
            Buf::Scratch(0..p),
            Buf::Scratch(p..p + g),
            Buf::Scratch(p + g..p + 2 * g),
        ))
    }

    fn part(
        &self,
        b: &impl Backend,
        x: &Buf,
        part: &Buf,
        op: i32,
        stat: &Buf,
    ) -> Result<(), RuntimeError> {
        b.reduce_part(
            x,
            part,
            self.groups,
            self.chunks,
            op,
            stat,
            self.groups_view,
            self.inner,
        )
    }

    fn combine(
        &self,
        b: &impl Backend,
        part: &Buf,
        y: &Buf,
        op: i32,
        eps: f32,
    ) -> Result<(), RuntimeError> {
        b.reduce_combine(part, y, self.groups, self.chunks, op, self.count, eps)
    }

    fn scale(
        &self,
        b: &impl Backend,
        x: &Buf,
        y: &Buf,
        op: i32,
        m: &Buf,
        s: &Buf,
    ) -> Result<(), RuntimeError> {
        let n = self.groups * self.count;
        b.reduce_scale(x, y, n, self.count, op, m, s, self.groups_view, self.inner)
    }
}

/// For a reduction over `axes` of `dims`: the view from group index to the
/// group's first element, and the view over one group's elements.
fn group_views(dims: &[usize], axes: &[usize]) -> Result<(RtView, RtView), RuntimeError> {
    let st = strides(dims);
    let kept: Vec<usize> = (0..dims.len()).filter(|a| !axes.contains(a)).collect();
    let gd: Vec<usize> = kept.iter().map(|&a| dims[a]).collect();
    let gs: Vec<usize> = kept.iter().map(|&a| st[a]).collect();
    let id: Vec<usize> = axes.iter().map(|&a| dims[a]).collect();
    let is: Vec<usize> = axes.iter().map(|&a| st[a]).collect();
    Ok((
        view(&gd, &gs, &vec![1; gd.len()], 0)?,
        view(&id, &is, &vec![1; id.len()], 0)?,
    ))
}
