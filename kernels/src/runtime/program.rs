//! The lowered form of a model for one input shape: values with concrete
//! shapes (constants hold their data) and steps in evaluation order. Every
//! tensor is dense, row-major, f32; images are NCHW.

use std::sync::Arc;

use serde::Serialize;

pub type ValueId = usize;

#[derive(Debug, Clone)]
pub struct Value {
    pub shape: Vec<usize>,
    /// Weights and other constants; `None` for what a step computes.
    pub data: Option<Arc<Vec<f32>>>,
}

impl Value {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub output: ValueId,
}

#[derive(Debug, Clone)]
pub struct Program {
    /// The model's name, for errors and logs.
    pub model: String,
    pub values: Vec<Value>,
    pub steps: Vec<Step>,
    pub input: ValueId,
    pub outputs: Vec<ValueId>,
}

impl Program {
    pub fn shape(&self, v: ValueId) -> &[usize] {
        &self.values[v].shape
    }

    pub fn is_const(&self, v: ValueId) -> bool {
        self.values[v].data.is_some()
    }

    /// How many steps read each value (the program's outputs count once).
    pub fn uses(&self) -> Vec<usize> {
        let mut uses = vec![0; self.values.len()];
        for s in &self.steps {
            for &i in &s.inputs {
                uses[i] += 1;
            }
        }
        for &o in &self.outputs {
            uses[o] += 1;
        }
        uses
    }

    /// An input of the program's input shape, or an error saying why not.
    pub fn check_input(&self, input: &[f32]) -> Result<(), super::RuntimeError> {
        if input.len() == self.values[self.input].len() {
            return Ok(());
        }
        Err(super::RuntimeError::Input(format!(
            "{}: input of {} values for shape {:?}",
            self.model,
            input.len(),
            self.shape(self.input)
        )))
    }

    /// Step counts by op kind, for logs and tests.
    pub fn summary(&self) -> String {
        let mut counts: std::collections::BTreeMap<&'static str, usize> = Default::default();
        for s in &self.steps {
            *counts.entry(s.op.kind()).or_default() += 1;
        }
        counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A per-element function; chains of them run in one pass (a convolution's
/// epilogue, a fused run of activations).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Elementwise {
    /// `x * scale + shift`.
    Affine {
        scale: f32,
        shift: f32,
    },
    /// `min(max(x, lo), hi)` (ReLU is `Clip{0, inf}`, ReLU6 `Clip{0, 6}`).
    Clip {
        lo: f32,
        hi: f32,
    },
    Sigmoid,
    Recip,
    Rsqrt,
    Sqrt,
    Square,
    Exp,
    Tanh,
    Abs,
    Neg,
}

impl Elementwise {
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Elementwise::Affine { scale, shift } => x * scale + shift,
            Elementwise::Clip { lo, hi } => x.max(lo).min(hi),
            Elementwise::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Elementwise::Recip => 1.0 / x,
            Elementwise::Rsqrt => 1.0 / x.sqrt(),
            Elementwise::Sqrt => x.sqrt(),
            Elementwise::Square => x * x,
            Elementwise::Exp => x.exp(),
            Elementwise::Tanh => x.tanh(),
            Elementwise::Abs => x.abs(),
            Elementwise::Neg => -x,
        }
    }
}

/// What follows a computation, element by element: `z = chain(x)`, and
/// with `gate` the input times it (`x * chain(x)`: hard-swish, SiLU), then
/// `post` (`scale, shift`), an affine map after the gate (the recogniser's
/// learnable affine blocks follow its hard-swish activations).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Epilogue {
    pub chain: Vec<Elementwise>,
    pub gate: bool,
    pub post: Option<(f32, f32)>,
}

impl Epilogue {
    pub fn is_identity(&self) -> bool {
        self.chain.is_empty() && !self.gate && self.post.is_none()
    }

    #[inline]
    pub fn apply(&self, x: f32) -> f32 {
        let mut z = x;
        for e in &self.chain {
            z = e.apply(z);
        }
        let y = if self.gate { x * z } else { z };
        match self.post {
            Some((scale, shift)) => y * scale + shift,
            None => y,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    Pow,
}

impl BinOp {
    #[inline]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
            BinOp::Max => a.max(b),
            BinOp::Min => a.min(b),
            BinOp::Pow => a.powf(b),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Reducer {
    Sum,
    Max,
    Min,
    /// Not an ONNX reducer: a sum and a scale by 1/count, fused
    /// (`fuse::reduce_mean`), so that a global average never stores the
    /// sum itself, which overflows half precision on a large feature map.
    Mean,
    MeanOfSquares,
}

/// A 2-D convolution on NCHW input. Inputs: `[x, weight [Co, Ci/g, kh, kw],
/// bias [Co]]`, and with `residual` a fourth, added before the epilogue
/// (cuDNN's `act(conv(x) + bias + z)`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conv {
    pub group: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// Top, left, bottom, right.
    pub pads: [usize; 4],
    pub residual: bool,
    pub epilogue: Epilogue,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Op {
    Conv(Conv),
    /// Transposed convolution with kernel equal to stride and no padding
    /// (each input pixel paints its own output block). Inputs `[x, weight
    /// [Co, Ci/g, kh, kw] (tract's layout), bias [Co]]`.
    Deconv {
        group: usize,
        stride: [usize; 2],
    },
    /// `C[b, m, n] = A[b, m, k] · B[b, k, n]`; a side with batch 1 is shared.
    MatMul {
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
    },
    /// Numpy-broadcast binary op.
    Binary(BinOp),
    /// Element by element.
    Map(Epilogue),
    /// Over `axes`, keeping them as size 1.
    Reduce {
        reducer: Reducer,
        axes: Vec<usize>,
    },
    /// Sum or average over windows of the two last axes (no padding counted).
    Pool {
        kernel: [usize; 2],
        stride: [usize; 2],
        pads: [usize; 4],
        average: bool,
    },
    /// Nearest-neighbour upsampling by integer factors per axis.
    Upsample {
        scales: Vec<usize>,
    },
    Concat {
        axis: usize,
    },
    /// Output axis `i` is input axis `perm[i]`.
    Permute {
        perm: Vec<usize>,
    },
    /// Same data, another shape.
    Reshape,
    Slice {
        axis: usize,
        start: usize,
        end: usize,
    },
    Softmax {
        axes: Vec<usize>,
    },
    /// `x / sqrt(mean(x², axis) + eps)`.
    RmsNorm {
        axis: usize,
        eps: f32,
    },
    /// Repeat along axes of size 1 up to the output shape.
    Broadcast,
}

impl Op {
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv(_) => "conv",
            Op::Deconv { .. } => "deconv",
            Op::MatMul { .. } => "matmul",
            Op::Binary(_) => "binary",
            Op::Map(_) => "map",
            Op::Reduce { .. } => "reduce",
            Op::Pool { .. } => "pool",
            Op::Upsample { .. } => "upsample",
            Op::Concat { .. } => "concat",
            Op::Permute { .. } => "permute",
            Op::Reshape => "reshape",
            Op::Slice { .. } => "slice",
            Op::Softmax { .. } => "softmax",
            Op::RmsNorm { .. } => "rms_norm",
            Op::Broadcast => "broadcast",
        }
    }
}

/// NCHW dimensions of a rank-4 shape, or of a rank-3 one read as H = 1
/// (1-D convolutions and pooling).
pub fn nchw(s: &[usize]) -> [usize; 4] {
    match s.len() {
        3 => [s[0], s[1], 1, s[2]],
        _ => [s[0], s[1], s[2], s[3]],
    }
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}
