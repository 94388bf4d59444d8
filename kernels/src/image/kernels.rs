//! The image kernels, described once for every backend: each is a `.cu`
//! source in `cuda/` (with the shared prelude `cuda/common.cuh`) whose entry
//! points are 1-D, one thread per independent item. The CUDA launcher
//! compiles the source with NVRTC and starts `threads` GPU threads; the host
//! launcher calls the same entry points, compiled as C++ by `build.rs`, once
//! per thread index on the rayon pool. Only the launch differs.

/// One kernel source and its entry points.
#[derive(Debug, Clone, Copy)]
pub struct KernelSource {
    pub name: &'static str,
    pub(crate) body: &'static str,
    pub entries: &'static [&'static str],
}

const COMMON: &str = include_str!("cuda/common.cuh");

impl KernelSource {
    /// The text NVRTC compiles: prelude, then the kernel.
    pub fn source(&self) -> String {
        format!("{COMMON}\n#line 1 \"{}.cu\"\n{}", self.name, self.body)
    }
}

/// Resize a packed batch to side x side with the reference's bytes (taps
/// from [`super::resample::ResizeTables`]): `resize_vertical` (one thread per
/// intermediate pixel), then `resize_rgb8` (thumbnails) or `resize_imagenet`
/// (normalised CHW floats), one thread per output pixel.
pub const RESIZE: KernelSource = KernelSource {
    name: "resize",
    body: include_str!("cuda/resize.cu"),
    entries: &["resize_vertical", "resize_rgb8", "resize_imagenet"],
};

/// The `descriptor` embedding of 32x32 thumbnails. One thread per image.
pub const DESCRIPTOR: KernelSource = KernelSource {
    name: "descriptor",
    body: include_str!("cuda/descriptor.cu"),
    entries: &["describe"],
};

/// Running top-k over blocks of the similarity matrix. One thread per query.
pub const TOP_K: KernelSource = KernelSource {
    name: "topk",
    body: include_str!("cuda/topk.cu"),
    entries: &["top_k_merge"],
};

pub const ALL: [KernelSource; 3] = [RESIZE, DESCRIPTOR, TOP_K];

/// GPU threads per block for the 1-D kernels.
pub const BLOCK: u32 = 128;

/// The host launcher's view of the entry points (`build.rs` compiles them).
pub(crate) mod host {
    extern "C" {
        pub fn dajia_host_set_thread_id(t: u64);
        pub fn resize_vertical(
            src: *const u8,
            src_off: *const u64,
            width: *const i32,
            tmp_first: *const u64,
            n: i32,
            side: i32,
            rows: *const i32,
            precision: *const i32,
            taps: *const i16,
            tmp: *mut u8,
        );
        pub fn resize_rgb8(
            tmp: *const u8,
            width: *const i32,
            tmp_first: *const u64,
            n: i32,
            side: i32,
            rows: *const i32,
            precision: *const i32,
            taps: *const i16,
            dst: *mut u8,
        );
        pub fn resize_imagenet(
            tmp: *const u8,
            width: *const i32,
            tmp_first: *const u64,
            n: i32,
            side: i32,
            rows: *const i32,
            precision: *const i32,
            taps: *const i16,
            dst: *mut f32,
        );
        pub fn describe(thumbs: *const u8, n: i32, out: *mut f32);
        pub fn top_k_merge(
            sims: *const f32,
            rows: i32,
            cols: i32,
            col_offset: u32,
            k: i32,
            best_sim: *mut f32,
            best_idx: *mut u32,
        );
    }
}
