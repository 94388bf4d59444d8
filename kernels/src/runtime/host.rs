//! The host backend of the kernel driver: `cuda/ops.cu` compiled as C++
//! (`build.rs`) and run one thread index at a time on the rayon pool;
//! convolutions and matmuls on the CPU reference's sgemm. Its results are
//! tested against the reference executor, so the kernels the GPU runs are
//! checked on every machine.

use rayon::prelude::*;

use super::cpu;
use super::launch::{drive, Backend, Buf, RtChain, RtView};
use super::memory::MemoryPlan;
use super::program::{Conv, Epilogue, Program};
use super::{Precision, RuntimeError};

/// The entries of `cuda/ops.cu`. `void*` operands (values, in the precision
/// `half` says) are `*const u8`/`*mut u8` here; f32 scratch is `f32`.
mod ffi {
    use super::{RtChain, RtView};
    extern "C" {
        pub fn rt_epilogue(
            y: *mut u8,
            bias: *const u8,
            residual: *const u8,
            n: i64,
            channels: i64,
            plane: i64,
            chain: RtChain,
            half: i32,
        );
        pub fn rt_map(x: *const u8, y: *mut u8, n: i64, chain: RtChain, half: i32);
        pub fn rt_binary(
            a: *const u8,
            b: *const u8,
            y: *mut u8,
            n: i64,
            op: i32,
            va: RtView,
            vb: RtView,
            half: i32,
        );
        pub fn rt_copy(x: *const u8, y: *mut u8, n: i64, src: RtView, dst: RtView, half: i32);
        pub fn rt_convert(x: *const u8, y: *mut u8, n: i64, x_half: i32, y_half: i32);
        pub fn rt_reduce(
            x: *const u8,
            y: *mut u8,
            groups: i64,
            op: i32,
            eps: f32,
            g: RtView,
            inner: RtView,
            half: i32,
        );
        pub fn rt_reduce_part(
            x: *const u8,
            part: *mut f32,
            groups: i64,
            chunks: i32,
            op: i32,
            stat: *const f32,
            g: RtView,
            inner: RtView,
            half: i32,
        );
        pub fn rt_reduce_combine(
            part: *const f32,
            y: *mut u8,
            groups: i64,
            chunks: i32,
            op: i32,
            count: f32,
            eps: f32,
            y_half: i32,
        );
        pub fn rt_reduce_scale(
            x: *const u8,
            y: *mut u8,
            n: i64,
            count: i64,
            op: i32,
            m: *const f32,
            s: *const f32,
            g: RtView,
            inner: RtView,
            half: i32,
        );
        pub fn rt_pool(
            x: *const u8,
            y: *mut u8,
            n: i64,
            h: i32,
            w: i32,
            ho: i32,
            wo: i32,
            kh: i32,
            kw: i32,
            sh: i32,
            sw: i32,
            pt: i32,
            pl: i32,
            average: i32,
            half: i32,
        );
        pub fn rt_deconv(
            x: *const u8,
            w: *const u8,
            b: *const u8,
            y: *mut u8,
            n: i64,
            ci: i32,
            co: i32,
            h: i32,
            w_: i32,
            kh: i32,
            kw: i32,
            group: i32,
            half: i32,
        );
    }
}

/// Runs `program` with the host-compiled kernels, storing values in
/// `precision`; returns its outputs (f32).
pub fn run(
    program: &Program,
    plan: &MemoryPlan,
    input: &[f32],
    precision: Precision,
) -> Result<Vec<Vec<f32>>, RuntimeError> {
    program.check_input(input)?;
    // f32 words, so that every value and the f32 scratch are aligned.
    let mut arena = vec![0f32; plan.arena_bytes(precision).div_ceil(4)];
    let halves = match precision {
        Precision::F32 => Vec::new(),
        Precision::F16 => program
            .values
            .iter()
            .map(|v| v.data.as_ref().map(|d| to_half(d)))
            .collect(),
    };
    let host = Host {
        program,
        precision,
        arena: Ptr(arena.as_mut_ptr() as *mut u8),
        scratch_at: plan.scratch_at(precision),
        halves,
    };
    let input_at = Buf::Arena(plan.range(program.input));
    host.write(&input_at, input);
    drive(program, plan, &host)?;
    Ok(program
        .outputs
        .iter()
        .map(|&o| match &program.values[o].data {
            Some(d) => d.to_vec(),
            None => host.read(&Buf::Arena(plan.range(o))).into_owned(),
        })
        .collect())
}

/// f32s rounded to half bits by the kernels' own conversion (`rt_convert`).
fn to_half(x: &[f32]) -> Vec<u16> {
    let mut h = vec![0u16; x.len()];
    convert(
        x.as_ptr() as *const u8,
        h.as_mut_ptr() as *mut u8,
        x.len(),
        0,
        1,
    );
    h
}

/// `rt_convert` over `n` elements (flags: 1 for half).
fn convert(x: *const u8, y: *mut u8, n: usize, x_half: i32, y_half: i32) {
    let (x, y) = (Ptr(x as *mut u8), Ptr(y));
    // SAFETY: callers pass n elements of the flagged types at both pointers.
    launch(n, || unsafe {
        ffi::rt_convert(x.get(), y.get(), n as i64, x_half, y_half)
    });
}

#[derive(Clone, Copy)]
struct Ptr(*mut u8);

impl Ptr {
    /// Through a method, so that closures capture the `Sync` wrapper.
    fn get(self) -> *mut u8 {
        self.0
    }

    fn f32(self) -> *mut f32 {
        self.0 as *mut f32
    }
}
// SAFETY: the driver runs one step at a time; within a step every thread
// index writes its own elements of the output (as on the GPU).
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

struct Host<'p> {
    program: &'p Program,
    precision: Precision,
    /// The arena's first byte.
    arena: Ptr,
    /// Byte offset of the f32 scratch in the arena.
    scratch_at: usize,
    /// Constants as half bits (f16 runs; empty in f32 runs).
    halves: Vec<Option<Vec<u16>>>,
}

impl Host<'_> {
    fn ptr(&self, b: &Buf) -> Ptr {
        match b {
            // SAFETY: the memory plan keeps every range inside the arena.
            Buf::Arena(r) => Ptr(unsafe { self.arena.0.add(r.start * self.precision.bytes()) }),
            // SAFETY: as above; the scratch follows the values.
            Buf::Scratch(r) => Ptr(unsafe { self.arena.0.add(self.scratch_at + r.start * 4) }),
            Buf::Const(v) => Ptr(match self.precision {
                Precision::F32 => self.program.values[*v]
                    .data
                    .as_ref()
                    .expect("constant")
                    .as_ptr() as *mut u8,
                Precision::F16 => self.halves[*v].as_ref().expect("constant").as_ptr() as *mut u8,
            }),
        }
    }

    /// Elements of a buffer.
    fn len(&self, b: &Buf) -> usize {
        match b {
            Buf::Arena(r) | Buf::Scratch(r) => r.len(),
            Buf::Const(v) => self.program.values[*v].len(),
        }
    }

    /// The kernels' `half` flag for a buffer.
    fn half(&self, b: &Buf) -> i32 {
        b.half_flag(self.precision)
    }

    /// A buffer's values as f32 (widened from half in f16 runs).
    fn read(&self, b: &Buf) -> std::borrow::Cow<'_, [f32]> {
        let n = self.len(b);
        if self.half(b) == 0 {
            // SAFETY: as in `ptr`; read while no step writes it.
            return unsafe { std::slice::from_raw_parts(self.ptr(b).f32(), n) }.into();
        }
        let mut out = vec![0f32; n];
        convert(self.ptr(b).get(), out.as_mut_ptr() as *mut u8, n, 1, 0);
        out.into()
    }

    /// Stores f32s into a buffer of the arena (rounded to half in f16 runs).
    fn write(&self, b: &Buf, x: &[f32]) {
        debug_assert!(
            !matches!(b, Buf::Const(_)),
            "a step never writes a constant"
        );
        debug_assert_eq!(x.len(), self.len(b));
        convert(
            x.as_ptr() as *const u8,
            self.ptr(b).get(),
            x.len(),
            0,
            self.half(b),
        );
    }
}

/// Runs `f` once per thread index, as a 1-D grid would.
fn launch(n: usize, f: impl Fn() + Sync) {
    (0..n as u64).into_par_iter().for_each(|t| {
        // SAFETY: sets this OS thread's index for the next kernel call.
        unsafe { crate::image::kernels::host::dajia_host_set_thread_id(t) };
        f();
    });
}

impl Backend for Host<'_> {
    fn conv(
        &self,
        c: &Conv,
        x: &Buf,
        w: &Buf,
        y: &Buf,
        xs: [usize; 4],
        ws: [usize; 4],
        ys: [usize; 4],
    ) -> Result<(), RuntimeError> {
        // The reference convolution on the stored (in f16 runs, rounded)
        // operands, accumulated in f32 and stored as cuDNN stores it; bias
        // and epilogue are left to the kernel.
        let plain = Conv {
            residual: false,
            epilogue: Epilogue::default(),
            ..c.clone()
        };
        let zeros = vec![0f32; ys[1]];
        let mut out = vec![0f32; self.len(y)];
        cpu::conv(
            &plain,
            &[&self.read(x), &self.read(w), &zeros],
            &xs,
            &ws,
            &ys,
            &mut out,
        );
        self.write(y, &out);
        Ok(())
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
        let (a, b) = (self.read(a), self.read(b));
        let mut out = vec![0f32; self.len(c)];
        for i in 0..batch {
            let ai = &a[if a_batched { i * m * k } else { 0 }..][..m * k];
            let bi = &b[if b_batched { i * k * n } else { 0 }..][..k * n];
            cpu::gemm(m, k, n, ai, bi, &mut out[i * m * n..][..m * n]);
        }
        self.write(c, &out);
        Ok(())
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
        let (y, bias, half) = (self.ptr(y), self.ptr(bias), self.half(y));
        let residual = residual.map_or(Ptr(std::ptr::null_mut()), |r| self.ptr(r));
        // SAFETY: pointers to n outputs, `channels` biases and n residuals.
        launch(n, || unsafe {
            ffi::rt_epilogue(
                y.get(),
                bias.get(),
                residual.get(),
                n as i64,
                channels as i64,
                plane as i64,
                chain,
                half,
            )
        });
        Ok(())
    }

    fn map(&self, x: &Buf, y: &Buf, n: usize, chain: RtChain) -> Result<(), RuntimeError> {
        let (x, y, half) = (self.ptr(x), self.ptr(y), self.half(y));
        // SAFETY: n inputs and outputs.
        launch(n, || unsafe {
            ffi::rt_map(x.get(), y.get(), n as i64, chain, half)
        });
        Ok(())
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
        let (a, b, y, half) = (self.ptr(a), self.ptr(b), self.ptr(y), self.half(y));
        // SAFETY: the views stay inside their operands (built from their shapes).
        launch(n, || unsafe {
            ffi::rt_binary(a.get(), b.get(), y.get(), n as i64, op, va, vb, half)
        });
        Ok(())
    }

    fn copy(
        &self,
        x: &Buf,
        y: &Buf,
        n: usize,
        src: RtView,
        dst: RtView,
    ) -> Result<(), RuntimeError> {
        let (x, y, half) = (self.ptr(x), self.ptr(y), self.half(y));
        // SAFETY: as for `binary`.
        launch(n, || unsafe {
            ffi::rt_copy(x.get(), y.get(), n as i64, src, dst, half)
        });
        Ok(())
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
        let (x, y, half) = (self.ptr(x), self.ptr(y), self.half(y));
        // SAFETY: as for `binary`.
        launch(groups, || unsafe {
            ffi::rt_reduce(x.get(), y.get(), groups as i64, op, eps, g, inner, half)
        });
        Ok(())
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
        let (x, p, st, half) = (self.ptr(x), self.ptr(part), self.ptr(stat), self.half(x));
        // SAFETY: as for `binary`.
        launch(groups * chunks, || unsafe {
            ffi::rt_reduce_part(
                x.get(),
                p.f32(),
                groups as i64,
                chunks as i32,
                op,
                st.f32(),
                g,
                inner,
                half,
            )
        });
        Ok(())
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
        let (p, y, y_half) = (self.ptr(part), self.ptr(y), self.half(y));
        // SAFETY: as for `binary`.
        launch(groups, || unsafe {
            ffi::rt_reduce_combine(
                p.f32(),
                y.get(),
                groups as i64,
                chunks as i32,
                op,
                count as f32,
                eps,
                y_half,
            )
        });
        Ok(())
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
        let (x, y, half) = (self.ptr(x), self.ptr(y), self.half(y));
        let (m, s) = (self.ptr(m), self.ptr(s));
        // SAFETY: as for `binary`.
        launch(n, || unsafe {
            ffi::rt_reduce_scale(
                x.get(),
                y.get(),
                n as i64,
                count as i64,
                op,
                m.f32(),
                s.f32(),
                g,
                inner,
                half,
            )
        });
        Ok(())
    }

    fn pool(
        &self,
        x: &Buf,
        y: &Buf,
        n: usize,
        d: [i32; 10],
        average: bool,
    ) -> Result<(), RuntimeError> {
        let (x, y, half) = (self.ptr(x), self.ptr(y), self.half(y));
        // SAFETY: NCHW planes of the given sizes.
        launch(n, || unsafe {
            ffi::rt_pool(
                x.get(),
                y.get(),
                n as i64,
                d[0],
                d[1],
                d[2],
                d[3],
                d[4],
                d[5],
                d[6],
                d[7],
                d[8],
                d[9],
                average as i32,
                half,
            )
        });
        Ok(())
    }

    fn deconv(
        &self,
        x: &Buf,
        w: &Buf,
        b: &Buf,
        y: &Buf,
        n: usize,
        d: [i32; 7],
    ) -> Result<(), RuntimeError> {
        let (x, w, b, y) = (self.ptr(x), self.ptr(w), self.ptr(b), self.ptr(y));
        let half = self.precision.half_flag();
        // SAFETY: NCHW tensors and an OIHW kernel of the given sizes.
        launch(n, || unsafe {
            ffi::rt_deconv(
                x.get(),
                w.get(),
                b.get(),
                y.get(),
                n as i64,
                d[0],
                d[1],
                d[2],
                d[3],
                d[4],
                d[5],
                d[6],
                half,
            )
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::launch::reduction_chunks;
    use super::super::program::{Elementwise, Epilogue, Op, Program, Reducer, Step, Value};
    use super::super::{cpu, fuse, MemoryPlan, Precision};

    /// One step reading the input; the output shape given.
    fn one_step(op: Op, input: &[usize], output: &[usize]) -> Program {
        let value = |s: &[usize]| Value {
            shape: s.to_vec(),
            data: None,
        };
        Program {
            model: "reduce".into(),
            values: vec![value(input), value(output)],
            steps: vec![Step {
                op,
                inputs: vec![0],
                output: 1,
            }],
            input: 0,
            outputs: vec![1],
        }
    }

    /// Reductions over few long groups run split in chunks (pass 1 partials,
    /// pass 2 combine, pass 3 scale) and over many short ones one thread per
    /// group; both give the reference executor's answer, in f32 and (to
    /// half's precision, with f32 partials) in f16.
    #[test]
    fn split_and_plain_reductions_match_the_reference() {
        let dims = [2, 3, 40, 50];
        let n: usize = dims.iter().product();
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        // Global pooling: 6 groups of 2,000 (split); over channels: 4,000
        // groups of 3 (plain).
        assert!(reduction_chunks(6, 2000) > 1);
        assert_eq!(reduction_chunks(4000, 3), 1);
        let reducers = [
            Reducer::Sum,
            Reducer::Mean,
            Reducer::Max,
            Reducer::Min,
            Reducer::MeanOfSquares,
        ];
        let mut cases = Vec::new();
        for r in reducers {
            cases.push((
                Op::Reduce {
                    reducer: r,
                    axes: vec![2, 3],
                },
                vec![2, 3, 1, 1],
            ));
            cases.push((
                Op::Reduce {
                    reducer: r,
                    axes: vec![1],
                },
                vec![2, 1, 40, 50],
            ));
        }
        cases.push((Op::Softmax { axes: vec![3] }, dims.to_vec()));
        cases.push((Op::Softmax { axes: vec![2, 3] }, dims.to_vec()));
        cases.push((Op::RmsNorm { axis: 3, eps: 1e-6 }, dims.to_vec()));
        let long = [1, 2, 3, 5000];
        let xl: Vec<f32> = (0..30000).map(|i| ((i * 31) % 97) as f32 / 10.0).collect();
        cases.push((Op::RmsNorm { axis: 3, eps: 1e-6 }, long.to_vec()));
        for (op, out) in cases {
            let input: &[usize] = if out == long { &long } else { &dims };
            let data = if out == long { &xl } else { &x };
            let kind = format!("{op:?}");
            let p = one_step(op, input, &out);
            let plan = MemoryPlan::new(&p);
            let reference = cpu::run(&p, &plan, data).unwrap();
            let scale = reference[0].iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            for (precision, tolerance) in [(Precision::F32, 1e-5), (Precision::F16, 2e-3)] {
                let host = super::run(&p, &plan, data, precision).unwrap();
                for (h, r) in host[0].iter().zip(&reference[0]) {
                    assert!(
                        (h - r).abs() <= tolerance * scale,
                        "{kind} in {precision:?}: host {h} vs reference {r}"
                    );
                }
            }
        }
    }

    /// The kernels' half conversion (`rt_convert`, the host build's
    /// `_Float16`; `cvt.rn.f16.f32` on the GPU) rounds as the `half` crate
    /// does: to nearest even, through subnormals, to infinity past 65504.
    #[test]
    fn half_conversion_rounds_to_nearest_even() {
        let mut x = vec![
            0.0f32,
            -0.0,
            1.0,
            1.0 + 1.0 / 2048.0, // a tie: rounds down to 1.0
            1.0 + 3.0 / 2048.0, // a tie: rounds up to 1 + 2/1024
            65504.0,
            65520.0, // rounds to infinity
            -1e6,
            6.0e-8, // subnormal
            1e-9,   // underflows to 0
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        x.extend((0..4000).map(|i| ((i * 7919) % 4000) as f32 * 0.0137 - 27.0));
        let ours = super::to_half(&x);
        for (v, h) in x.iter().zip(&ours) {
            assert_eq!(*h, half::f16::from_f32(*v).to_bits(), "{v}");
        }
        let mut back = vec![0f32; x.len()];
        super::convert(
            ours.as_ptr() as *const u8,
            back.as_mut_ptr() as *mut u8,
            x.len(),
            1,
            0,
        );
        for (h, b) in ours.iter().zip(&back) {
            assert_eq!(half::f16::from_bits(*h).to_f32().to_bits(), b.to_bits());
        }
        let nan = super::to_half(&[f32::NAN]);
        assert!(half::f16::from_bits(nan[0]).is_nan());
    }

    /// A global average (tract's sum then 1/count) fuses into one mean,
    /// computed in f32 and stored once: in half precision the sum of a
    /// 160×160 map of 3s (76,800) alone would be infinite (max 65,504).
    #[test]
    fn a_global_average_is_a_mean_and_does_not_overflow_half() {
        let value = |s: &[usize]| Value {
            shape: s.to_vec(),
            data: None,
        };
        let p = Program {
            model: "average".into(),
            values: vec![
                value(&[1, 2, 160, 160]),
                value(&[1, 2, 1, 1]),
                value(&[1, 2, 1, 1]),
            ],
            steps: vec![
                Step {
                    op: Op::Reduce {
                        reducer: Reducer::Sum,
                        axes: vec![2, 3],
                    },
                    inputs: vec![0],
                    output: 1,
                },
                Step {
                    op: Op::Map(Epilogue {
                        chain: vec![Elementwise::Affine {
                            scale: 1.0 / 25600.0,
                            shift: 0.0,
                        }],
                        ..Default::default()
                    }),
                    inputs: vec![1],
                    output: 2,
                },
            ],
            input: 0,
            outputs: vec![2],
        };
        let x: Vec<f32> = (0..51200).map(|i| 3.0 + (i % 7) as f32 * 0.01).collect();
        let plan = MemoryPlan::new(&p);
        let unfused = super::run(&p, &plan, &x, Precision::F16).unwrap();
        assert!(unfused[0].iter().all(|v| v.is_infinite()), "{unfused:?}");
        let fused = fuse::fuse(p);
        assert!(
            matches!(
                fused.steps.as_slice(),
                [Step {
                    op: Op::Reduce {
                        reducer: Reducer::Mean,
                        ..
                    },
                    ..
                }]
            ),
            "{:?}",
            fused.steps
        );
        let plan = MemoryPlan::new(&fused);
        let want = cpu::run(&fused, &plan, &x).unwrap();
        for precision in [Precision::F32, Precision::F16] {
            let got = super::run(&fused, &plan, &x, precision).unwrap();
            for (g, w) in got[0].iter().zip(&want[0]) {
                assert!((g - w).abs() <= 2e-3 * w.abs(), "{precision:?}: {g} vs {w}");
            }
        }
    }
}
