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
use super::RuntimeError;

mod ffi {
    use super::{RtChain, RtView};
    extern "C" {
        pub fn rt_epilogue(
            y: *mut f32,
            bias: *const f32,
            residual: *const f32,
            n: i64,
            channels: i64,
            plane: i64,
            chain: RtChain,
        );
        pub fn rt_map(x: *const f32, y: *mut f32, n: i64, chain: RtChain);
        pub fn rt_binary(
            a: *const f32,
            b: *const f32,
            y: *mut f32,
            n: i64,
            op: i32,
            va: RtView,
            vb: RtView,
        );
        pub fn rt_copy(x: *const f32, y: *mut f32, n: i64, src: RtView, dst: RtView);
        pub fn rt_reduce(
            x: *const f32,
            y: *mut f32,
            groups: i64,
            op: i32,
            eps: f32,
            g: RtView,
            inner: RtView,
        );
        pub fn rt_reduce_part(
            x: *const f32,
            part: *mut f32,
            groups: i64,
            chunks: i32,
            op: i32,
            stat: *const f32,
            g: RtView,
            inner: RtView,
        );
        pub fn rt_reduce_combine(
            part: *const f32,
            y: *mut f32,
            groups: i64,
            chunks: i32,
            op: i32,
            count: f32,
            eps: f32,
        );
        pub fn rt_reduce_scale(
            x: *const f32,
            y: *mut f32,
            n: i64,
            count: i64,
            op: i32,
            m: *const f32,
            s: *const f32,
            g: RtView,
            inner: RtView,
        );
        pub fn rt_pool(
            x: *const f32,
            y: *mut f32,
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
        );
        pub fn rt_deconv(
            x: *const f32,
            w: *const f32,
            b: *const f32,
            y: *mut f32,
            n: i64,
            ci: i32,
            co: i32,
            h: i32,
            w_: i32,
            kh: i32,
            kw: i32,
            group: i32,
        );
    }
}

/// Runs `program` with the host-compiled kernels; returns its outputs.
pub fn run(
    program: &Program,
    plan: &MemoryPlan,
    input: &[f32],
) -> Result<Vec<Vec<f32>>, RuntimeError> {
    let mut arena = plan.arena(program, input)?;
    let host = Host {
        program,
        arena: Ptr(arena.as_mut_ptr()),
    };
    drive(program, plan, &host)?;
    Ok(plan.outputs(program, &arena))
}

#[derive(Clone, Copy)]
struct Ptr(*mut f32);

impl Ptr {
    /// Through a method, so that closures capture the `Sync` wrapper.
    fn get(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: the driver runs one step at a time; within a step every thread
// index writes its own elements of the output (as on the GPU).
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

struct Host<'p> {
    program: &'p Program,
    arena: Ptr,
}

impl Host<'_> {
    fn ptr(&self, b: &Buf) -> Ptr {
        match b {
            // SAFETY: the memory plan keeps every range inside the arena.
            Buf::Arena(r) => Ptr(unsafe { self.arena.0.add(r.start) }),
            Buf::Const(v) => Ptr(self.program.values[*v]
                .data
                .as_ref()
                .expect("constant")
                .as_ptr() as *mut f32),
        }
    }

    fn slice(&self, b: &Buf) -> &[f32] {
        match b {
            // SAFETY: as in `ptr`; the slice is read while no step writes it.
            Buf::Arena(r) => unsafe {
                std::slice::from_raw_parts(self.arena.0.add(r.start), r.len())
            },
            Buf::Const(v) => self.program.values[*v].data.as_ref().expect("constant"),
        }
    }

    #[allow(clippy::mut_from_ref)]
    fn slice_mut(&self, b: &Buf) -> &mut [f32] {
        match b {
            // SAFETY: the output of the current step, which no input overlaps.
            Buf::Arena(r) => unsafe {
                std::slice::from_raw_parts_mut(self.arena.0.add(r.start), r.len())
            },
            Buf::Const(_) => unreachable!("a step never writes a constant"),
        }
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
        // The reference convolution, bias and epilogue left to the kernel.
        let plain = Conv {
            residual: false,
            epilogue: Epilogue::default(),
            ..c.clone()
        };
        let zeros = vec![0f32; ys[1]];
        cpu::conv(
            &plain,
            &[self.slice(x), self.slice(w), &zeros],
            &xs,
            &ws,
            &ys,
            self.slice_mut(y),
        );
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
        let (a, b, c) = (self.slice(a), self.slice(b), self.slice_mut(c));
        for i in 0..batch {
            let ai = &a[if a_batched { i * m * k } else { 0 }..][..m * k];
            let bi = &b[if b_batched { i * k * n } else { 0 }..][..k * n];
            cpu::gemm(m, k, n, ai, bi, &mut c[i * m * n..][..m * n]);
        }
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
        let (y, bias) = (self.ptr(y), self.ptr(bias));
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
            )
        });
        Ok(())
    }

    fn map(&self, x: &Buf, y: &Buf, n: usize, chain: RtChain) -> Result<(), RuntimeError> {
        let (x, y) = (self.ptr(x), self.ptr(y));
        // SAFETY: n inputs and outputs.
        launch(n, || unsafe {
            ffi::rt_map(x.get(), y.get(), n as i64, chain)
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
        let (a, b, y) = (self.ptr(a), self.ptr(b), self.ptr(y));
        // SAFETY: the views stay inside their operands (built from their shapes).
        launch(n, || unsafe {
            ffi::rt_binary(a.get(), b.get(), y.get(), n as i64, op, va, vb)
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
        let (x, y) = (self.ptr(x), self.ptr(y));
        // SAFETY: as for `binary`.
        launch(n, || unsafe {
            ffi::rt_copy(x.get(), y.get(), n as i64, src, dst)
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
        let (x, y) = (self.ptr(x), self.ptr(y));
        // SAFETY: as for `binary`.
        launch(groups, || unsafe {
            ffi::rt_reduce(x.get(), y.get(), groups as i64, op, eps, g, inner)
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
        let (x, p, st) = (self.ptr(x), self.ptr(part), self.ptr(stat));
        // SAFETY: as for `binary`.
        launch(groups * chunks, || unsafe {
            ffi::rt_reduce_part(
                x.get(),
                p.get(),
                groups as i64,
                chunks as i32,
                op,
                st.get(),
                g,
                inner,
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
        let (p, y) = (self.ptr(part), self.ptr(y));
        // SAFETY: as for `binary`.
        launch(groups, || unsafe {
            ffi::rt_reduce_combine(
                p.get(),
                y.get(),
                groups as i64,
                chunks as i32,
                op,
                count as f32,
                eps,
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
        let (x, y, m, s) = (self.ptr(x), self.ptr(y), self.ptr(m), self.ptr(s));
        // SAFETY: as for `binary`.
        launch(n, || unsafe {
            ffi::rt_reduce_scale(
                x.get(),
                y.get(),
                n as i64,
                count as i64,
                op,
                m.get(),
                s.get(),
                g,
                inner,
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
        let (x, y) = (self.ptr(x), self.ptr(y));
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
            )
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::launch::reduction_chunks;
    use super::super::program::{Op, Program, Reducer, Step, Value};
    use super::super::{cpu, MemoryPlan};

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
    /// group; both give the reference executor's answer.
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
            let host = super::run(&p, &plan, data).unwrap();
            let scale = reference[0].iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            for (h, r) in host[0].iter().zip(&reference[0]) {
                assert!(
                    (h - r).abs() <= 1e-5 * scale,
                    "{kind}: host {h} vs reference {r}"
                );
            }
        }
    }
}
