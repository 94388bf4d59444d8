//! The reference executor: every op of a [`Program`] in plain Rust on the
//! CPU (matrixmultiply's sgemm for convolutions and matmuls, rayon across
//! images and channel groups). The CUDA executor is checked against it, and
//! it against tract (`tests/runtime.rs`).

use rayon::prelude::*;

use super::memory::MemoryPlan;
use super::program::*;
use super::RuntimeError;

/// Runs `program` on `input` (the program's input shape); returns its outputs.
pub fn run(
    program: &Program,
    plan: &MemoryPlan,
    input: &[f32],
) -> Result<Vec<Vec<f32>>, RuntimeError> {
    // One arena, laid out by the liveness plan (what the GPU executor
    // allocates once per program).
    let mut arena = plan.arena(program, input)?;
    for step in &program.steps {
        // The step writes a scratch buffer, copied into its place after:
        // the reference favours plain code over in-place writes.
        let mut y = vec![0f32; program.values[step.output].len()];
        {
            let inputs: Vec<&[f32]> = step
                .inputs
                .iter()
                .map(|&v| match &program.values[v].data {
                    Some(d) => d.as_slice(),
                    None => &arena[plan.range(v)],
                })
                .collect();
            execute(program, step, &inputs, &mut y);
        }
        arena[plan.range(step.output)].copy_from_slice(&y);
    }
    Ok(plan.outputs(program, &arena))
}

fn execute(p: &Program, step: &Step, x: &[&[f32]], y: &mut [f32]) {
    let shape = |i: usize| p.shape(step.inputs[i]);
    let out_shape = p.shape(step.output);
    match &step.op {
        Op::Conv(c) => conv(c, x, shape(0), shape(1), out_shape, y),
        Op::Deconv { group, stride } => {
            deconv(*group, *stride, x, shape(0), shape(1), out_shape, y)
        }
        Op::MatMul { batch, m, k, n } => {
            let (ba, bb) = (shape(0)[0], shape(1)[0]);
            y.par_chunks_mut(m * n)
                .enumerate()
                .take(*batch)
                .for_each(|(b, c)| {
                    let a = &x[0][if ba == 1 { 0 } else { b * m * k }..][..m * k];
                    let bm = &x[1][if bb == 1 { 0 } else { b * k * n }..][..k * n];
                    gemm(*m, *k, *n, a, bm, c);
                });
        }
        Op::Binary(op) => {
            let (a, b) = (shape(0), shape(1));
            if a == out_shape && b == out_shape {
                for ((y, &a), &b) in y.iter_mut().zip(x[0]).zip(x[1]) {
                    *y = op.apply(a, b);
                }
            } else {
                let ia = broadcast_index(a, out_shape);
                let ib = broadcast_index(b, out_shape);
                for (i, y) in y.iter_mut().enumerate() {
                    *y = op.apply(x[0][ia(i)], x[1][ib(i)]);
                }
            }
        }
        Op::Map(e) => y
            .par_iter_mut()
            .zip(x[0].par_iter())
            .for_each(|(y, &v)| *y = e.apply(v)),
        Op::Reduce { reducer, axes } => reduce(*reducer, axes, x[0], shape(0), y),
        Op::Pool {
            kernel,
            stride,
            pads,
            average,
        } => pool(
            *kernel,
            *stride,
            *pads,
            *average,
            x[0],
            shape(0),
            out_shape,
            y,
        ),
        Op::Upsample { scales } => {
            let in_strides = strides(shape(0));
            let out_strides = strides(out_shape);
            for (i, y) in y.iter_mut().enumerate() {
                let mut off = 0;
                for a in 0..out_shape.len() {
                    off += (i / out_strides[a] % out_shape[a]) / scales[a] * in_strides[a];
                }
                *y = x[0][off];
            }
        }
        Op::Concat { axis } => {
            let outer: usize = out_shape[..*axis].iter().product();
            let mut at = 0;
            let inners: Vec<usize> = (0..x.len())
                .map(|i| shape(i)[*axis..].iter().product())
                .collect();
            let row: usize = inners.iter().sum();
            for (i, xi) in x.iter().enumerate() {
                for o in 0..outer {
                    y[o * row + at..o * row + at + inners[i]]
                        .copy_from_slice(&xi[o * inners[i]..(o + 1) * inners[i]]);
                }
                at += inners[i];
            }
        }
        Op::Permute { perm } => y.copy_from_slice(&super::lower::permute(x[0], shape(0), perm)),
        Op::Reshape => y.copy_from_slice(x[0]),
        Op::Slice { axis, start, end } => {
            let dims = shape(0);
            let outer: usize = dims[..*axis].iter().product();
            let inner: usize = dims[axis + 1..].iter().product();
            let (len, full) = ((end - start) * inner, dims[*axis] * inner);
            for o in 0..outer {
                y[o * len..(o + 1) * len].copy_from_slice(&x[0][o * full + start * inner..][..len]);
            }
        }
        Op::Softmax { axes } => {
            let dims = shape(0);
            let group = group_index(dims, axes);
            let groups: usize = reduced_shape(dims, axes).iter().product();
            let mut max = vec![f32::NEG_INFINITY; groups];
            for (i, &v) in x[0].iter().enumerate() {
                let g = group(i);
                max[g] = max[g].max(v);
            }
            let mut sum = vec![0f32; groups];
            for (i, &v) in x[0].iter().enumerate() {
                let g = group(i);
                y[i] = (v - max[g]).exp();
                sum[g] += y[i];
            }
            for (i, y) in y.iter_mut().enumerate() {
                *y /= sum[group(i)];
            }
        }
        Op::RmsNorm { axis, eps } => {
            let dims = shape(0);
            let group = group_index(dims, &[*axis]);
            let groups: usize = reduced_shape(dims, &[*axis]).iter().product();
            let mut sq = vec![0f32; groups];
            for (i, &v) in x[0].iter().enumerate() {
                sq[group(i)] += v * v;
            }
            let n = dims[*axis] as f32;
            for (i, y) in y.iter_mut().enumerate() {
                *y = x[0][i] / (sq[group(i)] / n + eps).sqrt();
            }
        }
        Op::Broadcast => {
            let ix = broadcast_index(shape(0), out_shape);
            for (i, y) in y.iter_mut().enumerate() {
                *y = x[0][ix(i)];
            }
        }
    }
}

/// `c[m×n] = a[m×k] · b[k×n]`, row-major.
pub(crate) fn gemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    // SAFETY: the slices hold m·k, k·n and m·n values, with the row-major
    // strides given.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// For each linear index of `out`, the index in `x` it reads under numpy
/// broadcasting (ranks aligned on the right).
fn broadcast_index(x: &[usize], out: &[usize]) -> impl Fn(usize) -> usize {
    let lead = out.len() - x.len();
    let xs = strides(x);
    let os = strides(out);
    let steps: Vec<(usize, usize, usize)> = (0..out.len())
        .filter_map(|a| {
            let d = if a < lead { 1 } else { x[a - lead] };
            (d != 1).then(|| (os[a], out[a], xs[a - lead]))
        })
        .collect();
    move |i| steps.iter().map(|&(os, od, xs)| (i / os % od) * xs).sum()
}

fn reduced_shape(dims: &[usize], axes: &[usize]) -> Vec<usize> {
    dims.iter()
        .enumerate()
        .map(|(a, &d)| if axes.contains(&a) { 1 } else { d })
        .collect()
}

/// For each linear index of `dims`, its index in the shape with `axes` reduced to 1.
fn group_index(dims: &[usize], axes: &[usize]) -> impl Fn(usize) -> usize {
    let reduced = reduced_shape(dims, axes);
    let rs = strides(&reduced);
    let ds = strides(dims);
    let steps: Vec<(usize, usize, usize)> = (0..dims.len())
        .filter(|a| !axes.contains(a) && dims[*a] != 1)
        .map(|a| (ds[a], dims[a], rs[a]))
        .collect();
    move |i| steps.iter().map(|&(ds, d, rs)| (i / ds % d) * rs).sum()
}

fn reduce(r: Reducer, axes: &[usize], x: &[f32], dims: &[usize], y: &mut [f32]) {
    let group = group_index(dims, axes);
    let init = match r {
        Reducer::Max => f32::NEG_INFINITY,
        Reducer::Min => f32::INFINITY,
        Reducer::Sum | Reducer::Mean | Reducer::MeanOfSquares => 0.0,
    };
    y.fill(init);
    for (i, &v) in x.iter().enumerate() {
        let g = &mut y[group(i)];
        *g = match r {
            Reducer::Sum | Reducer::Mean => *g + v,
            Reducer::MeanOfSquares => *g + v * v,
            Reducer::Max => g.max(v),
            Reducer::Min => g.min(v),
        };
    }
    if matches!(r, Reducer::Mean | Reducer::MeanOfSquares) {
        let n: usize = axes.iter().map(|&a| dims[a]).product();
        for g in y.iter_mut() {
            *g /= n as f32;
        }
    }
}

pub(crate) fn conv(
    c: &Conv,
    x: &[&[f32]],
    xs: &[usize],
    ws: &[usize],
    ys: &[usize],
    y: &mut [f32],
) {
    let [_, ci, h, w] = nchw(xs);
    let [_, co, ho, wo] = nchw(ys);
    let (g, kh, kw) = (c.group, ws[2], ws[3]);
    let (ci_g, co_g) = (ci / g, co / g);
    let (input, weight, bias) = (x[0], x[1], x[2]);
    let residual = c.residual.then(|| x[3]);
    let plane = ho * wo;
    let pointwise = kh == 1 && kw == 1 && c.stride == [1, 1] && c.pads == [0; 4];
    // One task per (image, group): its output channels are one block.
    y.par_chunks_mut(co_g * plane)
        .enumerate()
        .for_each(|(task, out)| {
            let (b, gi) = (task / g, task % g);
            let xin = &input[(b * ci + gi * ci_g) * h * w..][..ci_g * h * w];
            let wg = &weight[gi * co_g * ci_g * kh * kw..][..co_g * ci_g * kh * kw];
            if pointwise {
                gemm(co_g, ci_g, plane, wg, xin, out);
            } else {
                // im2col: rows (input channel, ky, kx), columns output pixels.
                let rows = ci_g * kh * kw;
                let mut col = vec![0f32; rows * plane];
                for cc in 0..ci_g {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let r = (cc * kh + ky) * kw + kx;
                            let dst = &mut col[r * plane..(r + 1) * plane];
                            for oy in 0..ho {
                                let iy = (oy * c.stride[0] + ky * c.dilation[0]) as isize
                                    - c.pads[0] as isize;
                                if iy < 0 || iy >= h as isize {
                                    continue;
                                }
                                for ox in 0..wo {
                                    let ix = (ox * c.stride[1] + kx * c.dilation[1]) as isize
                                        - c.pads[1] as isize;
                                    if ix >= 0 && ix < w as isize {
                                        dst[oy * wo + ox] =
                                            xin[cc * h * w + iy as usize * w + ix as usize];
                                    }
                                }
                            }
                        }
                    }
                }
                gemm(co_g, rows, plane, wg, &col, out);
            }
            for (oc, chunk) in out.chunks_mut(plane).enumerate() {
                let ch = gi * co_g + oc;
                let res = residual.map(|r| &r[(b * co + ch) * plane..][..plane]);
                for (i, v) in chunk.iter_mut().enumerate() {
                    let z = *v + bias[ch] + res.map_or(0.0, |r| r[i]);
                    *v = c.epilogue.apply(z);
                }
            }
        });
}

fn deconv(
    group: usize,
    stride: [usize; 2],
    x: &[&[f32]],
    xs: &[usize],
    ws: &[usize],
    ys: &[usize],
    y: &mut [f32],
) {
    let [_, ci, h, w] = nchw(xs);
    let [_, co, ho, wo] = nchw(ys);
    let (kh, kw) = (ws[2], ws[3]);
    let (ci_g, co_g) = (ci / group, co / group);
    let (input, weight, bias) = (x[0], x[1], x[2]);
    y.par_chunks_mut(ho * wo)
        .enumerate()
        .for_each(|(task, out)| {
            let (b, oc) = (task / co, task % co);
            let gi = oc / co_g;
            out.fill(bias[oc]);
            for cc in 0..ci_g {
                let xin = &input[(b * ci + gi * ci_g + cc) * h * w..][..h * w];
                let k = &weight[(oc * ci_g + cc) * kh * kw..][..kh * kw];
                for iy in 0..h {
                    for ix in 0..w {
                        let v = xin[iy * w + ix];
                        for ky in 0..kh {
                            for kx in 0..kw {
                                out[(iy * stride[0] + ky) * wo + ix * stride[1] + kx] +=
                                    v * k[ky * kw + kx];
                            }
                        }
                    }
                }
            }
        });
}

#[allow(clippy::too_many_arguments)]
fn pool(
    kernel: [usize; 2],
    stride: [usize; 2],
    pads: [usize; 4],
    average: bool,
    x: &[f32],
    xs: &[usize],
    ys: &[usize],
    y: &mut [f32],
) {
    let [_, _, h, w] = nchw(xs);
    let [_, _, ho, wo] = nchw(ys);
    y.par_chunks_mut(ho * wo)
        .enumerate()
        .for_each(|(plane, out)| {
            let xin = &x[plane * h * w..][..h * w];
            for oy in 0..ho {
                for ox in 0..wo {
                    let (mut sum, mut count) = (0f32, 0usize);
                    for ky in 0..kernel[0] {
                        let iy = (oy * stride[0] + ky) as isize - pads[0] as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for kx in 0..kernel[1] {
                            let ix = (ox * stride[1] + kx) as isize - pads[1] as isize;
                            if ix >= 0 && ix < w as isize {
                                sum += xin[iy as usize * w + ix as usize];
                                count += 1;
                            }
                        }
                    }
                    out[oy * wo + ox] = if average {
                        sum / count.max(1) as f32
                    } else {
                        sum
                    };
                }
            }
        });
}
