//! tract's typed, decluttered graph for one input shape → a [`Program`].
//!
//! tract does the front end (ONNX parsing, type and shape inference,
//! constant folding, decluttering); this pass maps each of its nodes to one
//! of the runtime's ops, reading weights out of constant inputs. An op it
//! does not know is an error naming the op, the node and the model: a model
//! never runs half on another runtime without saying so.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;
use tract_onnx::tract_core::ops;
use tract_onnx::tract_core::ops::cnn::{Conv as TConv, Deconv, KernelFormat, PoolSpec, SumPool};
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::program::{
    strides, BinOp, Conv, Elementwise, Epilogue, Op, Program, Reducer, Step, Value, ValueId,
};
use super::RuntimeError;

/// Lowers `model` (typed, decluttered, concrete input shape).
pub fn lower(name: &str, model: &TypedModel) -> Result<Program, RuntimeError> {
    Lowering {
        name,
        model,
        program: Program {
            model: name.to_string(),
            values: Vec::new(),
            steps: Vec::new(),
            input: 0,
            outputs: Vec::new(),
        },
        outlets: HashMap::new(),
    }
    .run()
}

struct Lowering<'m> {
    name: &'m str,
    model: &'m TypedModel,
    program: Program,
    outlets: HashMap<OutletId, ValueId>,
}

fn concrete(fact: &TypedFact) -> Option<Vec<usize>> {
    fact.shape.as_concrete().map(|s| s.to_vec())
}

impl<'m> Lowering<'m> {
    fn err(&self, node: &TypedNode, what: impl std::fmt::Display) -> RuntimeError {
        RuntimeError::Unsupported {
            model: self.name.to_string(),
            node: format!("{} ({})", node.name, node.op.name()),
            detail: what.to_string(),
        }
    }

    fn value(&mut self, shape: Vec<usize>, data: Option<Arc<Vec<f32>>>) -> ValueId {
        self.program.values.push(Value { shape, data });
        self.program.values.len() - 1
    }

    fn constant(&mut self, shape: Vec<usize>, data: Vec<f32>) -> ValueId {
        self.value(shape, Some(Arc::new(data)))
    }

    fn step(&mut self, op: Op, inputs: Vec<ValueId>, shape: Vec<usize>) -> ValueId {
        let output = self.value(shape, None);
        self.program.steps.push(Step { op, inputs, output });
        output
    }

    /// The constant behind `outlet`, as f32 with its shape.
    fn konst(&self, outlet: OutletId) -> Option<(Vec<usize>, Vec<f32>)> {
        let fact = self.model.outlet_fact(outlet).ok()?;
        let t = fact.konst.as_ref()?;
        let t = t.cast_to::<f32>().ok()?;
        let view = t.to_plain_array_view::<f32>().ok()?;
        Some((t.shape().to_vec(), view.iter().copied().collect()))
    }

    /// The value of `outlet`: computed earlier, or a constant made now.
    fn input(&mut self, node: &TypedNode, outlet: OutletId) -> Result<ValueId, RuntimeError> {
        if let Some(&v) = self.outlets.get(&outlet) {
            return Ok(v);
        }
        let (shape, data) = self.konst(outlet).ok_or_else(|| {
            self.err(
                node,
                format!("input {outlet:?} is neither computed nor constant"),
            )
        })?;
        let v = self.constant(shape, data);
        self.outlets.insert(outlet, v);
        Ok(v)
    }

    fn run(mut self) -> Result<Program, RuntimeError> {
        let model = self.model;
        let order = model
            .eval_order()
            .map_err(|e| RuntimeError::Model(self.name.to_string(), e.to_string()))?;
        let inputs = model
            .input_outlets()
            .map_err(|e| RuntimeError::Model(self.name.into(), e.to_string()))?;
        if inputs.len() != 1 {
            return Err(RuntimeError::Model(
                self.name.into(),
                format!("{} inputs; the runtime takes one", inputs.len()),
            ));
        }
        for id in order {
            let node = model.node(id);
            let out_fact = &node.outputs[0].fact;
            // Whatever tract folded to a constant stays one.
            if node.outputs.len() == 1
                && out_fact.konst.is_some()
                && !inputs.contains(&OutletId::new(id, 0))
            {
                continue;
            }
            let shape =
                concrete(out_fact).ok_or_else(|| self.err(node, "output shape is not concrete"))?;
            if out_fact.datum_type != f32::datum_type() {
                return Err(self.err(
                    node,
                    format!(
                        "computes {:?}; the runtime computes f32",
                        out_fact.datum_type
                    ),
                ));
            }
            let v = self.node(node, shape)?;
            self.outlets.insert(OutletId::new(id, 0), v);
        }
        self.program.input = self.outlets[&inputs[0]];
        let outputs = model
            .output_outlets()
            .map_err(|e| RuntimeError::Model(self.name.into(), e.to_string()))?;
        for o in outputs {
            let v = match self.outlets.get(o) {
                Some(&v) => v,
                None => self.input(model.node(o.node), *o)?,
            };
            self.program.outputs.push(v);
        }
        Ok(self.program)
    }

    fn node(&mut self, node: &TypedNode, shape: Vec<usize>) -> Result<ValueId, RuntimeError> {
        let op = &node.op;
        if op.name() == "Source" {
            return Ok(self.value(shape, None));
        }
        let input_facts: Vec<Vec<usize>> = node
            .inputs
            .iter()
            .map(|i| {
                self.model
                    .outlet_fact(*i)
                    .ok()
                    .and_then(concrete)
                    .unwrap_or_default()
            })
            .collect();
        if let Some(conv) = op.downcast_ref::<TConv>() {
            return self.conv(node, conv, &input_facts[0], shape);
        }
        if let Some(d) = op.downcast_ref::<Deconv>() {
            return self.deconv(node, d, &input_facts[0], shape);
        }
        if let Some(e) = op.downcast_ref::<ops::einsum::EinSum>() {
            return self.einsum(node, e, &input_facts, shape);
        }
        if let Some(b) = op.downcast_ref::<ops::binary::TypedBinOp>() {
            return self.binary(node, &b.0.name(), shape);
        }
        if let Some(e) = op.downcast_ref::<ops::element_wise::ElementWiseOp>() {
            let x = self.input(node, node.inputs[0])?;
            let m = match e.0.name().as_ref() {
                "Sigmoid" => Epilogue {
                    chain: vec![Elementwise::Sigmoid],
                    gate: false,
                    ..Default::default()
                },
                "Silu" => Epilogue {
                    chain: vec![Elementwise::Sigmoid],
                    gate: true,
                    ..Default::default()
                },
                "HardSwish" => Epilogue {
                    chain: hard_sigmoid(1.0 / 6.0, 0.5),
                    gate: true,
                    ..Default::default()
                },
                other => {
                    let e = match other {
                        "Recip" => Elementwise::Recip,
                        "Rsqrt" => Elementwise::Rsqrt,
                        "Sqrt" => Elementwise::Sqrt,
                        "Square" => Elementwise::Square,
                        "Exp" => Elementwise::Exp,
                        "Tanh" => Elementwise::Tanh,
                        "Abs" => Elementwise::Abs,
                        "Neg" => Elementwise::Neg,
                        _ => {
                            return Err(
                                self.err(node, format!("element-wise {other} is not lowered"))
                            )
                        }
                    };
                    Epilogue {
                        chain: vec![e],
                        gate: false,
                        ..Default::default()
                    }
                }
            };
            return Ok(self.step(Op::Map(m), vec![x], shape));
        }
        if let Some(a) = op.downcast_ref::<ops::change_axes::AxisOp>() {
            let x = self.input(node, node.inputs[0])?;
            let op = match a {
                ops::change_axes::AxisOp::Move(from, to) => {
                    let mut perm: Vec<usize> = (0..shape.len()).collect();
                    let axis = perm.remove(*from);
                    perm.insert(*to, axis);
                    Op::Permute { perm }
                }
                _ => Op::Reshape,
            };
            return Ok(self.step(op, vec![x], shape));
        }
        if let Some(r) = op.downcast_ref::<ops::nn::Reduce>() {
            use ops::nn::Reducer as R;
            let reducer = match r.reducer {
                R::Sum => Reducer::Sum,
                R::Max => Reducer::Max,
                R::Min => Reducer::Min,
                R::MeanOfSquares => Reducer::MeanOfSquares,
                other => return Err(self.err(node, format!("reducer {other:?} is not lowered"))),
            };
            let x = self.input(node, node.inputs[0])?;
            return Ok(self.step(
                Op::Reduce {
                    reducer,
                    axes: r.axes.to_vec(),
                },
                vec![x],
                shape,
            ));
        }
        if let Some(s) = op.downcast_ref::<ops::nn::Softmax>() {
            if s.kind != ops::nn::SoftmaxKind::Softmax {
                return Err(self.err(node, "log-softmax is not lowered"));
            }
            let x = self.input(node, node.inputs[0])?;
            return Ok(self.step(
                Op::Softmax {
                    axes: s.axes.to_vec(),
                },
                vec![x],
                shape,
            ));
        }
        if let Some(n) = op.downcast_ref::<ops::nn::RmsNorm>() {
            let eps = n
                .eps
                .cast_to_scalar::<f32>()
                .map_err(|e| self.err(node, e))?;
            let x = self.input(node, node.inputs[0])?;
            return Ok(self.step(Op::RmsNorm { axis: n.axis, eps }, vec![x], shape));
        }
        if let Some(p) = op.downcast_ref::<SumPool>() {
            if p.count_include_pad {
                return Err(self.err(node, "average pooling counting padding is not lowered"));
            }
            let (kernel, stride, _, pads) = self.window(node, &p.pool_spec, &input_facts[0])?;
            let x = self.input(node, node.inputs[0])?;
            let op = Op::Pool {
                kernel,
                stride,
                pads,
                average: p.normalize,
            };
            return Ok(self.step(op, vec![x], shape));
        }
        if let Some(u) = op.downcast_ref::<ops::nn::NearestUpsample>() {
            let x = self.input(node, node.inputs[0])?;
            return Ok(self.step(
                Op::Upsample {
                    scales: u.scales.to_vec(),
                },
                vec![x],
                shape,
            ));
        }
        if let Some(c) = op.downcast_ref::<ops::array::TypedConcat>() {
            let xs = node
                .inputs
                .iter()
                .map(|i| self.input(node, *i))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(self.step(Op::Concat { axis: c.axis }, xs, shape));
        }
        if let Some(s) = op.downcast_ref::<ops::array::Slice>() {
            let (start, end) = match (s.start.to_usize(), s.end.to_usize()) {
                (Ok(a), Ok(b)) => (a, b),
                _ => return Err(self.err(node, "slice bounds are not concrete")),
            };
            let x = self.input(node, node.inputs[0])?;
            return Ok(self.step(
                Op::Slice {
                    axis: s.axis,
                    start,
                    end,
                },
                vec![x],
                shape,
            ));
        }
        if op.downcast_ref::<ops::array::MultiBroadcastTo>().is_some() {
            let x = self.input(node, node.inputs[0])?;
            return Ok(self.step(Op::Broadcast, vec![x], shape));
        }
        if let Some(c) = op.downcast_ref::<ops::cast::Cast>() {
            if c.to == f32::datum_type() && input_facts.len() == 1 {
                let x = self.input(node, node.inputs[0])?;
                if self.program.values[x].data.is_none() {
                    return Ok(self.step(Op::Reshape, vec![x], shape));
                }
            }
        }
        Err(self.err(node, "this op is not lowered"))
    }

    /// Kernel, stride, dilation and pads (top, left, bottom, right) of a
    /// window over the last two axes of NCHW input (1-D windows read as H = 1).
    #[allow(clippy::type_complexity)]
    fn window(
        &self,
        node: &TypedNode,
        spec: &PoolSpec,
        input: &[usize],
    ) -> Result<([usize; 2], [usize; 2], [usize; 2], [usize; 4]), RuntimeError> {
        if !matches!(spec.data_format, DataFormat::NCHW | DataFormat::CHW) {
            return Err(self.err(
                node,
                format!("layout {:?} is not lowered (NCHW only)", spec.data_format),
            ));
        }
        let ishape = spec
            .data_format
            .shape(input.to_vec())
            .map_err(|e| self.err(node, e))?;
        let hw: Vec<usize> = ishape.hw_dims().to_vec();
        let pads = spec.computed_padding(&hw);
        let k = &spec.kernel_shape;
        let (s, d) = (spec.strides(), spec.dilations());
        match hw.len() {
            2 => Ok((
                [k[0], k[1]],
                [s[0], s[1]],
                [d[0], d[1]],
                [
                    pads[0].pad_before,
                    pads[1].pad_before,
                    pads[0].pad_after,
                    pads[1].pad_after,
                ],
            )),
            1 => Ok((
                [1, k[0]],
                [1, s[0]],
                [1, d[0]],
                [0, pads[0].pad_before, 0, pads[0].pad_after],
            )),
            n => Err(self.err(node, format!("{n}-D windows are not lowered"))),
        }
    }

    fn conv(
        &mut self,
        node: &TypedNode,
        conv: &TConv,
        input: &[usize],
        shape: Vec<usize>,
    ) -> Result<ValueId, RuntimeError> {
        if conv.q_params.is_some() {
            return Err(self.err(node, "quantised convolution is not lowered"));
        }
        if conv.pool_spec.data_format == DataFormat::CHW {
            return Err(self.err(node, "convolution without a batch axis is not lowered"));
        }
        let (kernel, stride, dilation, pads) = self.window(node, &conv.pool_spec, input)?;
        let (kshape, kdata) = self
            .konst(node.inputs[1])
            .ok_or_else(|| self.err(node, "kernel is not constant"))?;
        let (co, ci_g) = (conv.output_channels(), conv.input_channels() / conv.group);
        let weight = oihw(&kshape, kdata, conv.kernel_fmt.clone(), co, ci_g)
            .ok_or_else(|| self.err(node, format!("kernel {kshape:?} in {:?}", conv.kernel_fmt)))?;
        let bias = self.bias(node, node.inputs[2], co)?;
        let x = self.input(node, node.inputs[0])?;
        let w = self.constant(vec![co, ci_g, kernel[0], kernel[1]], weight);
        let b = self.constant(vec![co], bias);
        let op = Op::Conv(Conv {
            group: conv.group,
            kernel,
            stride,
            dilation,
            pads,
            residual: false,
            epilogue: Epilogue::default(),
        });
        Ok(self.step(op, vec![x, w, b], shape))
    }

    /// A bias input: a scalar (often 0) or one value per output channel.
    fn bias(
        &self,
        node: &TypedNode,
        outlet: OutletId,
        co: usize,
    ) -> Result<Vec<f32>, RuntimeError> {
        let (_, b) = self
            .konst(outlet)
            .ok_or_else(|| self.err(node, "bias is not constant"))?;
        match b.len() {
            1 => Ok(vec![b[0]; co]),
            n if n == co => Ok(b),
            n => Err(self.err(node, format!("bias of {n} values for {co} channels"))),
        }
    }

    fn deconv(
        &mut self,
        node: &TypedNode,
        d: &Deconv,
        input: &[usize],
        shape: Vec<usize>,
    ) -> Result<ValueId, RuntimeError> {
        let (kernel, stride, dilation, pads) = self.window(node, &d.pool_spec, input)?;
        if kernel != stride
            || dilation != [1, 1]
            || pads != [0; 4]
            || d.adjustments.iter().any(|&a| a != 0)
        {
            return Err(self.err(
                node,
                "only transposed convolutions with kernel = stride and no padding are lowered",
            ));
        }
        let (kshape, kdata) = self
            .konst(node.inputs[1])
            .ok_or_else(|| self.err(node, "kernel is not constant"))?;
        let co = d.pool_spec.output_channels;
        let ci_g = d.pool_spec.input_channels / d.group;
        let weight = oihw(&kshape, kdata, d.kernel_format.clone(), co, ci_g)
            .ok_or_else(|| self.err(node, format!("kernel {kshape:?} in {:?}", d.kernel_format)))?;
        let bias = self.bias(node, node.inputs[2], co)?;
        let x = self.input(node, node.inputs[0])?;
        let w = self.constant(vec![co, ci_g, kernel[0], kernel[1]], weight);
        let b = self.constant(vec![co], bias);
        Ok(self.step(
            Op::Deconv {
                group: d.group,
                stride,
            },
            vec![x, w, b],
            shape,
        ))
    }

    fn binary(
        &mut self,
        node: &TypedNode,
        name: &str,
        shape: Vec<usize>,
    ) -> Result<ValueId, RuntimeError> {
        let op = match name {
            "Add" => BinOp::Add,
            "Sub" => BinOp::Sub,
            "Mul" => BinOp::Mul,
            "Div" => BinOp::Div,
            "Max" => BinOp::Max,
            "Min" => BinOp::Min,
            "Pow" => BinOp::Pow,
            other => return Err(self.err(node, format!("binary {other} is not lowered"))),
        };
        // One side a single number: an element-wise map of the other.
        let scalar = |i: usize| {
            self.konst(node.inputs[i])
                .filter(|(_, d)| d.len() == 1)
                .map(|(_, d)| d[0])
        };
        let (s0, s1) = (scalar(0), scalar(1));
        let map = match (s0, s1) {
            (None, Some(c)) => Some((1, elementwise(op, c, false))),
            (Some(c), None) => Some((0, elementwise(op, c, true))),
            _ => None,
        };
        if let Some((scalar_side, Some(e))) = map {
            let x = self.input(node, node.inputs[1 - scalar_side])?;
            if self.program.values[x].shape == shape {
                return Ok(self.step(
                    Op::Map(Epilogue {
                        chain: vec![e],
                        gate: false,
                        ..Default::default()
                    }),
                    vec![x],
                    shape,
                ));
            }
        }
        let a = self.input(node, node.inputs[0])?;
        let b = self.input(node, node.inputs[1])?;
        Ok(self.step(Op::Binary(op), vec![a, b], shape))
    }

    fn einsum(
        &mut self,
        node: &TypedNode,
        e: &ops::einsum::EinSum,
        inputs: &[Vec<usize>],
        shape: Vec<usize>,
    ) -> Result<ValueId, RuntimeError> {
        if e.q_params.is_some() || node.inputs.len() != 2 {
            return Err(self.err(node, "only two-input float einsums are lowered"));
        }
        // Roles of the axes: in both inputs and the output (batch), in one
        // input and the output (m from A, n from B), in both inputs only (k).
        let mut batch = Vec::new();
        let (mut m, mut n, mut k) = (Vec::new(), Vec::new(), Vec::new());
        for axis in e.axes.iter_all_axes() {
            let pos = |io: &TVec<usize>| io.first().copied();
            let (a, b, c) = (
                pos(&axis.inputs[0]),
                pos(&axis.inputs[1]),
                pos(&axis.outputs[0]),
            );
            if axis
                .inputs
                .iter()
                .chain(axis.outputs.iter())
                .any(|p| p.len() > 1)
            {
                return Err(self.err(node, format!("einsum {} repeats an axis", e.axes)));
            }
            match (a, b, c) {
                (Some(a), Some(b), Some(c)) => batch.push((a, b, c)),
                (Some(a), None, Some(c)) => m.push((a, c)),
                (None, Some(b), Some(c)) => n.push((b, c)),
                (Some(a), Some(b), None) => k.push((a, b)),
                // An axis of size 1 on one side only.
                (Some(a), None, None) if inputs[0][a] == 1 => {}
                (None, Some(b), None) if inputs[1][b] == 1 => {}
                (None, None, Some(c)) if shape[c] == 1 => {}
                _ => {
                    return Err(
                        self.err(node, format!("einsum {} sums an axis of one input", e.axes))
                    )
                }
            }
        }
        if let Some(v) = self.pointwise_conv(node, &batch, &m, &n, &k, inputs, &shape)? {
            return Ok(v);
        }
        let size = |dims: &[usize], axes: &mut dyn Iterator<Item = usize>| {
            axes.map(|a| dims[a]).product::<usize>()
        };
        let a_shape = &inputs[0];
        let b_shape = &inputs[1];
        let bv = size(&shape, &mut batch.iter().map(|t| t.2));
        let mv = size(a_shape, &mut m.iter().map(|t| t.0));
        let nv = size(b_shape, &mut n.iter().map(|t| t.0));
        let kv = size(a_shape, &mut k.iter().map(|t| t.0));
        // A: [batch…, m…, k…]; B: [batch…, k…, n…]; C: [batch…, m…, n…].
        let a_perm: Vec<usize> = batch
            .iter()
            .map(|t| t.0)
            .chain(m.iter().map(|t| t.0))
            .chain(k.iter().map(|t| t.0))
            .collect();
        let b_perm: Vec<usize> = batch
            .iter()
            .map(|t| t.1)
            .chain(k.iter().map(|t| t.1))
            .chain(n.iter().map(|t| t.0))
            .collect();
        let c_order: Vec<usize> = batch
            .iter()
            .map(|t| t.2)
            .chain(m.iter().map(|t| t.1))
            .chain(n.iter().map(|t| t.1))
            .collect();
        // Axes of size 1 that only one side has are dropped by the reshape.
        let a = self.input(node, node.inputs[0])?;
        let b = self.input(node, node.inputs[1])?;
        let a = self.arrange(a, a_shape, &a_perm, vec![bv, mv, kv]);
        let b = self.arrange(b, b_shape, &b_perm, vec![bv, kv, nv]);
        let c_dims: Vec<usize> = c_order.iter().map(|&o| shape[o]).collect();
        let c = self.step(
            Op::MatMul {
                batch: bv,
                m: mv,
                k: kv,
                n: nv,
            },
            vec![a, b],
            vec![bv, mv, nv],
        );
        // Back to the output's axis order.
        let c = self.step(Op::Reshape, vec![c], c_dims.clone());
        // Output positions of the axes computed (size-1 axes of the output
        // alone come back with the last reshape).
        let mut sorted = c_order.clone();
        sorted.sort_unstable();
        let mut perm = vec![0; c_order.len()];
        for (i, &o) in c_order.iter().enumerate() {
            perm[sorted.iter().position(|&s| s == o).unwrap()] = i;
        }
        let c = if perm.iter().enumerate().all(|(i, &p)| i == p) {
            c
        } else {
            let permuted: Vec<usize> = perm.iter().map(|&p| c_dims[p]).collect();
            self.step(Op::Permute { perm }, vec![c], permuted)
        };
        if self.program.values[c].shape != shape {
            return Ok(self.step(Op::Reshape, vec![c], shape));
        }
        Ok(c)
    }

    /// An einsum that is a 1×1 convolution (tract rewrites those as
    /// `NIHW,OI->NOHW`, or `IHW,OI->OHW` without the batch axis): a constant
    /// `[O, I]` (or `[I, O]`) matrix over the channel axis of the input, every
    /// other axis in place. Lowered as a convolution so that the fusions and
    /// cuDNN apply.
    #[allow(clippy::too_many_arguments)]
    fn pointwise_conv(
        &mut self,
        node: &TypedNode,
        batch: &[(usize, usize, usize)],
        m: &[(usize, usize)],
        n: &[(usize, usize)],
        k: &[(usize, usize)],
        inputs: &[Vec<usize>],
        shape: &[usize],
    ) -> Result<Option<ValueId>, RuntimeError> {
        let (a_shape, b_shape) = (&inputs[0], &inputs[1]);
        if !batch.is_empty() || n.len() != 1 || k.len() != 1 || b_shape.len() != 2 {
            return Ok(None);
        }
        let (channel, out_channel) = (k[0].0, n[0].1);
        let in_place = m.iter().all(|&(a, c)| a == c);
        if channel != out_channel
            || !in_place
            || a_shape.len() != shape.len()
            || m.len() + 1 != a_shape.len()
        {
            return Ok(None);
        }
        let Some((_, wdata)) = self.konst(node.inputs[1]) else {
            return Ok(None);
        };
        let (ci, co) = (a_shape[channel], shape[channel]);
        // B's axes: (O, I) as is, (I, O) transposed.
        let weight = if n[0].0 == 0 {
            wdata
        } else {
            permute(&wdata, b_shape, &[1, 0])
        };
        let outer: usize = a_shape[..channel].iter().product();
        let inner: usize = a_shape[channel + 1..].iter().product();
        let x = self.input(node, node.inputs[0])?;
        // NCHW already: no reshape around the convolution.
        let nchw = channel == 1 && shape.len() == 4;
        let x4 = if nchw {
            x
        } else {
            self.step(Op::Reshape, vec![x], vec![outer, ci, 1, inner])
        };
        let w = self.constant(vec![co, ci, 1, 1], weight);
        let b = self.constant(vec![co], vec![0.0; co]);
        let conv = Op::Conv(Conv {
            group: 1,
            kernel: [1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pads: [0; 4],
            residual: false,
            epilogue: Epilogue::default(),
        });
        if nchw {
            return Ok(Some(self.step(conv, vec![x4, w, b], shape.to_vec())));
        }
        let y = self.step(conv, vec![x4, w, b], vec![outer, co, 1, inner]);
        Ok(Some(self.step(Op::Reshape, vec![y], shape.to_vec())))
    }

    /// `x` (of `dims`) with its axes in `perm` order (others have size 1)
    /// and reshaped to `to`; constants are rearranged now, not at run time.
    fn arrange(&mut self, x: ValueId, dims: &[usize], perm: &[usize], to: Vec<usize>) -> ValueId {
        let kept: Vec<usize> = perm.to_vec();
        let squeezed: Vec<usize> = (0..dims.len()).filter(|a| kept.contains(a)).collect();
        // Permutation over the kept axes, in their order in `dims`.
        let rel: Vec<usize> = kept
            .iter()
            .map(|a| squeezed.iter().position(|s| s == a).unwrap())
            .collect();
        let squeezed_dims: Vec<usize> = squeezed.iter().map(|&a| dims[a]).collect();
        let identity = rel.iter().enumerate().all(|(i, &p)| i == p);
        if let Some(data) = self.program.values[x].data.clone() {
            let out = if identity {
                data.to_vec()
            } else {
                permute(&data, &squeezed_dims, &rel)
            };
            return self.constant(to, out);
        }
        let x = if identity {
            x
        } else {
            let x = if squeezed_dims.len() != dims.len() {
                self.step(Op::Reshape, vec![x], squeezed_dims.clone())
            } else {
                x
            };
            let pdims: Vec<usize> = rel.iter().map(|&p| squeezed_dims[p]).collect();
            self.step(Op::Permute { perm: rel }, vec![x], pdims)
        };
        if self.program.values[x].shape == to {
            x
        } else {
            self.step(Op::Reshape, vec![x], to)
        }
    }
}

/// The scalar operand of a binary op as a map of the other (`flipped`: the
/// scalar is on the left). `None` when it is not one.
fn elementwise(op: BinOp, c: f32, flipped: bool) -> Option<Elementwise> {
    Some(match (op, flipped) {
        (BinOp::Add, _) => Elementwise::Affine {
            scale: 1.0,
            shift: c,
        },
        (BinOp::Mul, _) => Elementwise::Affine {
            scale: c,
            shift: 0.0,
        },
        (BinOp::Sub, false) => Elementwise::Affine {
            scale: 1.0,
            shift: -c,
        },
        (BinOp::Sub, true) => Elementwise::Affine {
            scale: -1.0,
            shift: c,
        },
        (BinOp::Div, false) => Elementwise::Affine {
            scale: 1.0 / c,
            shift: 0.0,
        },
        (BinOp::Max, _) => Elementwise::Clip {
            lo: c,
            hi: f32::INFINITY,
        },
        (BinOp::Min, _) => Elementwise::Clip {
            lo: f32::NEG_INFINITY,
            hi: c,
        },
        (BinOp::Pow, false) if c == 2.0 => Elementwise::Square,
        (BinOp::Pow, false) if c == 0.5 => Elementwise::Sqrt,
        _ => return None,
    })
}

/// `min(max(x·a + b, 0), 1)`.
pub fn hard_sigmoid(a: f32, b: f32) -> Vec<Elementwise> {
    vec![
        Elementwise::Affine { scale: a, shift: b },
        Elementwise::Clip { lo: 0.0, hi: 1.0 },
    ]
}

/// A kernel as `[Co, Ci/g, kh, kw]` (1-D kernels get kh = 1).
fn oihw(
    shape: &[usize],
    data: Vec<f32>,
    fmt: KernelFormat,
    co: usize,
    ci_g: usize,
) -> Option<Vec<f32>> {
    let spatial = shape.len().checked_sub(2)?;
    let out = match fmt {
        KernelFormat::OIHW => data,
        // [spatial…, I, O] and [O, spatial…, I] → [O, I, spatial…].
        KernelFormat::HWIO => {
            let mut perm = vec![spatial + 1, spatial];
            perm.extend(0..spatial);
            permute(&data, shape, &perm)
        }
        KernelFormat::OHWI => {
            let mut perm = vec![0, spatial + 1];
            perm.extend(1..=spatial);
            permute(&data, shape, &perm)
        }
    };
    let volume: usize = shape.iter().product();
    (volume == out.len() && volume % (co * ci_g).max(1) == 0).then_some(out)
}

/// `data` (of `dims`) with its axes permuted: output axis `i` is input axis `perm[i]`.
pub fn permute(data: &[f32], dims: &[usize], perm: &[usize]) -> Vec<f32> {
    let in_strides = strides(dims);
    let out_dims: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
    let src: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let mut out = Vec::with_capacity(data.len());
    let mut idx = vec![0usize; out_dims.len()];
    for _ in 0..data.len() {
        let off: usize = idx.iter().zip(&src).map(|(i, s)| i * s).sum();
        out.push(data[off]);
        for a in (0..idx.len()).rev() {
            idx[a] += 1;
            if idx[a] < out_dims[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    out
}
