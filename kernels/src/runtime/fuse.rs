//! Fusion on a lowered [`Program`]: what tract's decluttered graph leaves as
//! separate steps, folded into the step before it, so that a convolution
//! reads its input once and writes its output once.
//!
//! - runs of element-wise maps become one map (hard-sigmoid arrives as four);
//! - `x · f(x)` becomes a gated map (hard-swish, SiLU);
//! - per-channel scales and shifts after a convolution (batch norm, biases
//!   of 1×1 convolutions tract turned into einsums) fold into its weights;
//! - a residual addition joins the convolution before it;
//! - an element-wise map after a convolution becomes its epilogue;
//! - an affine map after a gated activation becomes that step's `post`;
//! - a sum scaled by 1/count becomes a mean (global average pooling).
//!
//! A fused step takes the place of the later one (all its inputs exist
//! there), keeping that step's output value.

use std::sync::Arc;

use super::program::*;

pub fn fuse(mut p: Program) -> Program {
    loop {
        let before = p.steps.len();
        merge(&mut p, merge_maps);
        merge(&mut p, gate);
        merge(&mut p, conv_affine);
        merge(&mut p, conv_residual);
        merge(&mut p, conv_epilogue);
        merge(&mut p, post_affine);
        merge(&mut p, reduce_mean);
        if p.steps.len() == before {
            return p;
        }
    }
}

type Rule = fn(&mut Program, &Step, &Step) -> Option<Step>;

/// Applies `rule` to every (producer, single consumer) pair of steps.
fn merge(p: &mut Program, rule: Rule) {
    let mut changed = true;
    while changed {
        changed = false;
        let uses = p.uses();
        let producer: std::collections::HashMap<ValueId, usize> = p
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.output, i))
            .collect();
        for j in 0..p.steps.len() {
            for &v in &p.steps[j].inputs.clone() {
                let Some(&i) = producer.get(&v) else { continue };
                if uses[v] != 1 {
                    continue;
                }
                let (a, b) = (p.steps[i].clone(), p.steps[j].clone());
                if let Some(fused) = rule(p, &a, &b) {
                    p.steps[j] = fused;
                    p.steps.remove(i);
                    changed = true;
                    break;
                }
            }
            if changed {
                break;
            }
        }
    }
}

/// `map(map(x))` → one map (the first without a gate).
fn merge_maps(_: &mut Program, a: &Step, b: &Step) -> Option<Step> {
    match (&a.op, &b.op) {
        (Op::Map(e1), Op::Map(e2))
            if !e1.gate && !e2.gate && e1.post.is_none() && e2.post.is_none() =>
        {
            let mut chain = e1.chain.clone();
            chain.extend(e2.chain.iter().copied());
            Some(Step {
                op: Op::Map(Epilogue {
                    chain,
                    ..Default::default()
                }),
                inputs: a.inputs.clone(),
                output: b.output,
            })
        }
        _ => None,
    }
}

/// `x · map(x)` → a gated map of `x`.
fn gate(p: &mut Program, a: &Step, b: &Step) -> Option<Step> {
    let (Op::Map(e), Op::Binary(BinOp::Mul)) = (&a.op, &b.op) else {
        return None;
    };
    if e.gate || e.post.is_some() {
        return None;
    }
    let x = a.inputs[0];
    let other = if b.inputs[0] == a.output {
        b.inputs[1]
    } else {
        b.inputs[0]
    };
    (other == x && p.shape(x) == p.shape(b.output)).then(|| Step {
        op: Op::Map(Epilogue {
            chain: e.chain.clone(),
            gate: true,
            post: None,
        }),
        inputs: vec![x],
        output: b.output,
    })
}

/// A constant broadcast over the channels of NCHW output `out`, as one value
/// per channel.
fn per_channel(p: &Program, v: ValueId, out: &[usize]) -> Option<Vec<f32>> {
    let data = p.values[v].data.as_ref()?;
    let shape = p.shape(v);
    let co = *out.get(1)?;
    if data.len() == 1 {
        return Some(vec![data[0]; co]);
    }
    // Right-aligned: only the channel axis may be other than 1.
    let lead = out.len().checked_sub(shape.len())?;
    let only_channels = shape
        .iter()
        .enumerate()
        .all(|(a, &d)| d == 1 || (a + lead == 1 && d == co));
    (only_channels && data.len() == co).then(|| data.to_vec())
}

fn plain_conv(op: &Op) -> Option<&Conv> {
    match op {
        Op::Conv(c) if !c.residual && c.epilogue.is_identity() => Some(c),
        _ => None,
    }
}

/// `conv(x)·s + t` per channel → a convolution with scaled weights and bias.
fn conv_affine(p: &mut Program, a: &Step, b: &Step) -> Option<Step> {
    let conv = plain_conv(&a.op)?;
    let out = p.shape(a.output).to_vec();
    let co = out[1];
    let (scale, shift): (Vec<f32>, Vec<f32>) = match &b.op {
        Op::Binary(op) => {
            let other = if b.inputs[0] == a.output {
                b.inputs[1]
            } else {
                b.inputs[0]
            };
            if p.shape(b.output) != out.as_slice() {
                return None;
            }
            let c = per_channel(p, other, &out)?;
            match op {
                BinOp::Mul => (c, vec![0.0; co]),
                BinOp::Add => (vec![1.0; co], c),
                BinOp::Sub if b.inputs[0] == a.output => {
                    (vec![1.0; co], c.iter().map(|v| -v).collect())
                }
                _ => return None,
            }
        }
        Op::Map(e)
            if !e.gate
                && e.chain
                    .iter()
                    .all(|c| matches!(c, Elementwise::Affine { .. })) =>
        {
            let (mut s, mut t) = (1.0f32, 0.0f32);
            for c in &e.chain {
                if let Elementwise::Affine { scale, shift } = c {
                    s *= scale;
                    t = t * scale + shift;
                }
            }
            (vec![s; co], vec![t; co])
        }
        _ => return None,
    };
    let (w, bias) = (a.inputs[1], a.inputs[2]);
    let wdata = p.values[w].data.clone()?;
    let bdata = p.values[bias].data.clone()?;
    let per = wdata.len() / co;
    let new_w: Vec<f32> = wdata
        .iter()
        .enumerate()
        .map(|(i, v)| v * scale[i / per])
        .collect();
    let new_b: Vec<f32> = (0..co).map(|c| bdata[c] * scale[c] + shift[c]).collect();
    let w2 = add_const(p, p.shape(w).to_vec(), new_w);
    let b2 = add_const(p, vec![co], new_b);
    Some(Step {
        op: Op::Conv(conv.clone()),
        inputs: vec![a.inputs[0], w2, b2],
        output: b.output,
    })
}

/// `conv(x) + r` (same shape) → a convolution adding `r` before its epilogue.
fn conv_residual(p: &mut Program, a: &Step, b: &Step) -> Option<Step> {
    let conv = plain_conv(&a.op)?;
    let Op::Binary(BinOp::Add) = b.op else {
        return None;
    };
    let other = if b.inputs[0] == a.output {
        b.inputs[1]
    } else {
        b.inputs[0]
    };
    if other == a.output || p.is_const(other) || p.shape(other) != p.shape(a.output) {
        return None;
    }
    let mut c = conv.clone();
    c.residual = true;
    let mut inputs = a.inputs.clone();
    inputs.push(other);
    Some(Step {
        op: Op::Conv(c),
        inputs,
        output: b.output,
    })
}

/// `map(conv(x))` → the convolution with that epilogue.
fn conv_epilogue(_: &mut Program, a: &Step, b: &Step) -> Option<Step> {
    let (Op::Conv(c), Op::Map(e)) = (&a.op, &b.op) else {
        return None;
    };
    if !c.epilogue.is_identity() {
        return None;
    }
    let mut c = c.clone();
    c.epilogue = e.clone();
    Some(Step {
        op: Op::Conv(c),
        inputs: a.inputs.clone(),
        output: b.output,
    })
}

/// A gated activation (a convolution's epilogue or a map) followed by a map
/// of affine functions only → the gated step with that affine as its `post`
/// (one pass instead of two over the activation's output).
fn post_affine(_: &mut Program, a: &Step, b: &Step) -> Option<Step> {
    let Op::Map(after) = &b.op else {
        return None;
    };
    if after.gate || after.post.is_some() || after.chain.is_empty() {
        return None;
    }
    let (mut s, mut t) = (1.0f32, 0.0f32);
    for f in &after.chain {
        let Elementwise::Affine { scale, shift } = f else {
            return None;
        };
        s *= scale;
        t = t * scale + shift;
    }
    let with_post = |e: &Epilogue| -> Option<Epilogue> {
        (e.gate && e.post.is_none()).then(|| Epilogue {
            post: Some((s, t)),
            ..e.clone()
        })
    };
    let op = match &a.op {
        Op::Map(e) => Op::Map(with_post(e)?),
        Op::Conv(c) => Op::Conv(Conv {
            epilogue: with_post(&c.epilogue)?,
            ..c.clone()
        }),
        _ => return None,
    };
    Some(Step {
        op,
        inputs: a.inputs.clone(),
        output: b.output,
    })
}

/// `sum(x, axes) · (1/count)` → `mean(x, axes)`: computed in f32 and
/// stored once, where the sum of a large feature map alone would overflow
/// half precision (65504).
fn reduce_mean(p: &mut Program, a: &Step, b: &Step) -> Option<Step> {
    let (
        Op::Reduce {
            reducer: Reducer::Sum,
            axes,
        },
        Op::Map(e),
    ) = (&a.op, &b.op)
    else {
        return None;
    };
    let [Elementwise::Affine { scale, shift }] = e.chain.as_slice() else {
        return None;
    };
    let count: usize = axes.iter().map(|&x| p.shape(a.inputs[0])[x]).product();
    let exact = (*scale as f64 * count as f64 - 1.0).abs() < 1e-6;
    (exact && *shift == 0.0 && !e.gate && e.post.is_none()).then(|| Step {
        op: Op::Reduce {
            reducer: Reducer::Mean,
            axes: axes.clone(),
        },
        inputs: a.inputs.clone(),
        output: b.output,
    })
}

fn add_const(p: &mut Program, shape: Vec<usize>, data: Vec<f32>) -> ValueId {
    p.values.push(Value {
        shape,
        data: Some(Arc::new(data)),
    });
    p.values.len() - 1
}
