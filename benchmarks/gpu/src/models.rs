//! The three ONNX models on dajia's own GPU runtime (`kernels/src/runtime/`):
//! in each storage precision (f32, and f16, the default), parity of the GPU
//! against the CPU reference executor, then items/s per model and batch.
//! PyTorch's figures for the same models come from
//! `benchmarks/gpu/models_peer.py`, run beside this by gpu-bench.sh.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
#[cfg(feature = "cuda")]
use dajia_kernels::parity;
use dajia_kernels::parity::Check;
use dajia_kernels::runtime::Compiled;
use serde::Serialize;

#[derive(Serialize)]
pub struct ModelRun {
    pub model: &'static str,
    pub runtime: String,
    pub shape: Vec<usize>,
    pub runs: usize,
    pub seconds: f64,
    pub items_per_second: f64,
    /// One synchronised run of the largest shape: (step kind, seconds,
    /// launches), largest first; where the time goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Vec<(&'static str, f64, usize)>>,
}

impl ModelRun {
    /// A timing from [`time`]: (runs, seconds, items/s).
    fn timed(
        model: &'static str,
        runtime: &str,
        shape: &[usize],
        (runs, seconds, items_per_second): (usize, f64, f64),
    ) -> Self {
        ModelRun {
            model,
            runtime: runtime.into(),
            shape: shape.to_vec(),
            runs,
            seconds,
            items_per_second,
            profile: None,
        }
    }
}

/// (name, file under the models folder, input shapes timed).
pub const CASES: &[(&str, &str, &[[usize; 4]])] = &[
    (
        "mobilenet_v2",
        "mobilenet_v2.onnx",
        &[[1, 3, 224, 224], [64, 3, 224, 224], [256, 3, 224, 224]],
    ),
    (
        "ppocrv5_det",
        "ppocrv5/ppocrv5_det.onnx",
        &[[1, 3, 640, 640], [16, 3, 640, 640]],
    ),
    (
        "ppocrv5_rec",
        "ppocrv5/ppocrv5_rec.onnx",
        &[[1, 3, 48, 320], [128, 3, 48, 320]],
    ),
];

/// A deterministic input in [-1, 1).
pub fn input(n: usize) -> Vec<f32> {
    let mut x = 0x2545F4914F6CDD1Du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Runs `f` twice to warm up, then until a second has passed (at least
/// three times): items per second.
pub fn time(items: usize, mut f: impl FnMut() -> Result<()>) -> Result<(usize, f64, f64)> {
    f()?;
    f()?;
    let t = Instant::now();
    let mut runs = 0;
    while runs < 3 || t.elapsed().as_secs_f64() < 1.0 {
        f()?;
        runs += 1;
    }
    let s = t.elapsed().as_secs_f64();
    Ok((runs, s, (runs * items) as f64 / s))
}

/// Each model's parity (batch 2, GPU program against the CPU reference)
/// and items/s per shape, in each precision, appended to `checks` and
/// `runs`; a model that fails is named in `errors` and the others still run.
#[cfg(feature = "cuda")]
pub fn run(
    models: &Path,
    checks: &mut Vec<Check>,
    runs: &mut Vec<ModelRun>,
    errors: &mut Vec<String>,
) -> Result<()> {
    use dajia_kernels::device::CudaDevice;

    let dev = CudaDevice::open(0).map_err(|e| anyhow::anyhow!("{e}"))?;
    for (name, file, shapes) in CASES {
        let t = Instant::now();
        if let Err(e) = run_one(&dev, models, name, file, shapes, checks, runs) {
            eprintln!(
                "model {name}: FAILED after {:.1}s: {e:#}",
                t.elapsed().as_secs_f64()
            );
            errors.push(format!("model {name}: {e:#}"));
        }
    }
    Ok(())
}

#[cfg(feature = "cuda")]
fn run_one(
    dev: &std::sync::Arc<dajia_kernels::device::CudaDevice>,
    models: &Path,
    name: &'static str,
    file: &str,
    shapes: &[[usize; 4]],
    checks: &mut Vec<Check>,
    runs: &mut Vec<ModelRun>,
) -> Result<()> {
    use dajia_kernels::runtime::cuda::CudaProgram;
    use dajia_kernels::runtime::Precision;

    let path = models.join(file);
    let compile = |shape: &[usize]| {
        Compiled::from_onnx(name, &path, shape).map_err(|e| anyhow::anyhow!("{e}"))
    };
    // Each shape lowered, and the parity batch's reference run, once for
    // both precisions.
    let small = [2, shapes[0][1], shapes[0][2], shapes[0][3]];
    let parity_program = compile(&small)?;
    let parity_input = input(small.iter().product());
    let reference = parity_program
        .run_cpu(&parity_input)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let p = &parity_program.program;
    let rows = *p.shape(p.outputs[0]).last().unwrap_or(&1);
    let timed_programs = shapes
        .iter()
        .map(|s| compile(s))
        .collect::<Result<Vec<_>>>()?;
    for precision in [Precision::F32, Precision::F16] {
        let runtime = format!("dajia-cuda {}", precision.name());
        let prepare = |c: &Compiled| {
            CudaProgram::new(dev.clone(), c.clone(), precision).map_err(|e| anyhow::anyhow!("{e}"))
        };
        // Parity on a batch of 2: the GPU program against the CPU reference.
        let got = prepare(&parity_program)?
            .run(&parity_input)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let check = parity::runtime_output(name, rows, &got[0], &reference[0], runtime.clone());
        eprintln!("{check}");
        checks.push(check);
        for (shape, c) in shapes.iter().zip(&timed_programs) {
            let x = input(shape.iter().product());
            let gpu = prepare(c)?;
            let t = time(shape[0], || {
                gpu.run(&x).map(|_| ()).map_err(|e| anyhow::anyhow!("{e}"))
            })?;
            eprintln!("{name} {shape:?} {runtime}: {:.0}/s", t.2);
            let mut run = ModelRun::timed(name, &runtime, shape, t);
            if shape == shapes.last().expect("shapes") {
                let p = gpu.profile(&x).map_err(|e| anyhow::anyhow!("{e}"))?;
                let total: f64 = p.iter().map(|e| e.1).sum();
                for (kind, sec, count) in &p {
                    eprintln!(
                        "  profile {name} {shape:?} {runtime}: {kind:<16} {:>8.3} ms {:>5.1}% {count} launches",
                        sec * 1e3,
                        100.0 * sec / total.max(1e-12)
                    );
                }
                run.profile = Some(p);
            }
            runs.push(run);
        }
    }
    Ok(())
}

#[cfg(not(feature = "cuda"))]
pub fn run(_: &Path, _: &mut Vec<Check>, _: &mut Vec<ModelRun>, _: &mut Vec<String>) -> Result<()> {
    anyhow::bail!("this dajia-gpu-bench was built without CUDA (--features cuda)")
}

/// The CPU reference executor's figure for the smallest shape of each model
/// (what the runtime's lowering costs on a CPU; not a performance path).
pub fn cpu_reference(models: &Path) -> Result<Vec<ModelRun>> {
    let mut out = Vec::new();
    for (name, file, shapes) in CASES {
        let shape = shapes[0];
        let c = Compiled::from_onnx(name, &models.join(file), &shape)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let x = input(shape.iter().product());
        let t = time(shape[0], || {
            c.run_cpu(&x)
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("{e}"))
        })?;
        out.push(ModelRun::timed(name, "dajia-cpu-reference", &shape, t));
    }
    Ok(out)
}
