//! dajia's lowered program of each model, written for the PyTorch peer
//! (`benchmarks/gpu/program_peer.py`): the same graph, fused weights and
//! shapes, run by PyTorch's eager ops (cuDNN convolutions, cuBLAS matmuls).
//! PP-OCRv5's weights are Paddle's and the GPU node has no ONNX-to-PyTorch
//! converter, so this is how its detector and recogniser get a PyTorch peer;
//! MobileNetV2 is exported too, so that the peer's figure for it can be put
//! beside torchvision's own MobileNetV2.
//!
//! Per (model, shape), `{model}_b{batch}` in the folder: `.json` (values'
//! shapes, steps with their ops as serde writes `runtime::program::Op`, an
//! infinite clip bound as `null`), `.bin` (the constants, f32 little-endian,
//! each value's `data` its offset in f32s). For the smallest shape of each
//! model also `.input.bin` (`models::input`) and `.expected.bin` (the first
//! output of dajia's CPU reference executor for it), which the peer checks
//! its own output against before timing.

use std::path::Path;

use anyhow::{Context, Result};
use dajia_kernels::runtime::program::Op;
use dajia_kernels::runtime::Compiled;
use serde::Serialize;

use crate::models::{input, CASES};

#[derive(Serialize)]
struct Value<'a> {
    shape: &'a [usize],
    /// Offset of a constant's data in the `.bin` file (f32s).
    data: Option<usize>,
}

#[derive(Serialize)]
struct Step<'a> {
    op: &'a Op,
    inputs: &'a [usize],
    output: usize,
}

#[derive(Serialize)]
struct Program<'a> {
    model: &'a str,
    input: usize,
    outputs: &'a [usize],
    values: Vec<Value<'a>>,
    steps: Vec<Step<'a>>,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes `{stem}.json` and `{stem}.bin` for one compiled program.
pub fn write(c: &Compiled, dir: &Path, stem: &str) -> Result<()> {
    let p = &c.program;
    let mut weights: Vec<f32> = Vec::new();
    let values = p
        .values
        .iter()
        .map(|v| Value {
            shape: &v.shape,
            data: v.data.as_ref().map(|d| {
                let at = weights.len();
                weights.extend_from_slice(d);
                at
            }),
        })
        .collect();
    let steps = p
        .steps
        .iter()
        .map(|s| Step {
            op: &s.op,
            inputs: &s.inputs,
            output: s.output,
        })
        .collect();
    let json = serde_json::to_vec(&Program {
        model: &p.model,
        input: p.input,
        outputs: &p.outputs,
        values,
        steps,
    })?;
    let at = |ext: &str| dir.join(format!("{stem}.{ext}"));
    std::fs::write(at("json"), json).with_context(|| format!("writing {stem}.json"))?;
    std::fs::write(at("bin"), f32_bytes(&weights))
        .with_context(|| format!("writing {stem}.bin"))?;
    Ok(())
}

/// Every model of [`CASES`] at every shape timed, into `dir`, with the
/// smallest shape's input and expected output.
pub fn all(models: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, file, shapes) in CASES {
        for (i, shape) in shapes.iter().enumerate() {
            let c = Compiled::from_onnx(name, &models.join(file), shape)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let stem = format!("{name}_b{}", shape[0]);
            write(&c, dir, &stem)?;
            if i == 0 {
                let x = input(shape.iter().product());
                let y = c.run_cpu(&x).map_err(|e| anyhow::anyhow!("{e}"))?;
                std::fs::write(dir.join(format!("{stem}.input.bin")), f32_bytes(&x))?;
                std::fs::write(dir.join(format!("{stem}.expected.bin")), f32_bytes(&y[0]))?;
            }
        }
    }
    Ok(())
}
