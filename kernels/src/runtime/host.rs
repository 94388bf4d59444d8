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
