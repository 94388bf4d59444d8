//! nvJPEG, loaded at run time as cudarc loads its libraries (cudarc has no
//! nvJPEG module, and no maintained crate binds it): batched decode of
//! baseline JPEGs straight into device memory as interleaved RGB8, in the
//! packed layout the resize kernels read. Only the handful of calls batched
//! decoding needs are bound. The hardware backend (the JPEG engines of an
//! A100/H100/H200) is tried first, then the default one.
//!
//! The library: `$DAJIA_NVJPEG` (a file, or `off`), else `libnvjpeg.so.13`
//! on the loader's path (the CUDA toolkit's lib64, or PyPI's
//! `nvidia-nvjpeg` wheel's lib/), else the toolkit's standard locations.

use std::ffi::{c_int, c_uchar, c_uint, c_void};
use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtrMut};
use libloading::Library;

use super::driver_err;
use crate::device::DeviceError;

type Handle = *mut c_void;
type State = *mut c_void;
type Status = c_int;

/// nvjpegImage_t: up to four planes; RGBI uses the first.
#[repr(C)]
struct Image {
    channel: [*mut c_uchar; 4],
    pitch: [usize; 4],
}

/// nvjpegBackend_t values.
const BACKEND_DEFAULT: c_int = 0;
const BACKEND_HARDWARE: c_int = 3;
/// nvjpegOutputFormat_t: interleaved RGB.
const OUTPUT_RGBI: c_int = 5;
/// nvjpegChromaSubsampling_t: NVJPEG_CSS_UNKNOWN.
const CSS_UNKNOWN: c_int = -1;

type CreateEx =
    unsafe extern "C" fn(c_int, *mut c_void, *mut c_void, c_uint, *mut Handle) -> Status;
type Destroy = unsafe extern "C" fn(Handle) -> Status;
type StateCreate = unsafe extern "C" fn(Handle, *mut State) -> Status;
type StateDestroy = unsafe extern "C" fn(State) -> Status;
type GetImageInfo = unsafe extern "C" fn(
    Handle,
    *const c_uchar,
    usize,
    *mut c_int,
    *mut c_int,
    *mut c_int,
    *mut c_int,
) -> Status;
type BatchedInitialize = unsafe extern "C" fn(Handle, State, c_int, c_int, c_int) -> Status;
type DecodeBatched = unsafe extern "C" fn(
    Handle,
    State,
    *const *const c_uchar,
    *const usize,
    *mut Image,
    cudarc::driver::sys::CUstream,
) -> Status;

const CANDIDATES: [&str; 4] = [
    "libnvjpeg.so.13",
    "/usr/local/cuda/lib64/libnvjpeg.so.13",
    "/usr/local/cuda/targets/x86_64-linux/lib/libnvjpeg.so.13",
    "libnvjpeg.so",
];

fn status_err(call: &str, s: Status) -> DeviceError {
    // nvjpegStatus_t: 5 is NVJPEG_STATUS_ALLOCATOR_FAILURE.
    if s == 5 {
        DeviceError::OutOfMemory(format!("nvJPEG {call}: allocator failure"))
    } else {
        DeviceError::Driver(format!("nvJPEG {call}: status {s}"))
    }
}

fn check(call: &str, s: Status) -> Result<(), DeviceError> {
    if s == 0 {
        Ok(())
    } else {
        Err(status_err(call, s))
    }
}

/// One nvJPEG handle and decode state, used under the device's launch lock.
pub struct NvJpeg {
    handle: Handle,
    state: State,
    /// `hardware` or `default`.
    pub backend: &'static str,
    destroy: Destroy,
    state_destroy: StateDestroy,
    get_image_info: GetImageInfo,
    batched_initialize: BatchedInitialize,
    decode_batched: DecodeBatched,
    /// Keeps the function pointers above valid.
    _lib: Library,
}

// SAFETY: the handle and state are only used under the device's launch lock
// (one thread at a time), which nvJPEG allows.
unsafe impl Send for NvJpeg {}
unsafe impl Sync for NvJpeg {}

impl NvJpeg {
    /// Loads the library and creates a handle and a decode state.
    pub fn open() -> Result<NvJpeg, DeviceError> {
        let chosen = std::env::var("DAJIA_NVJPEG").ok();
        if chosen.as_deref() == Some("off") {
            return Err(DeviceError::NoDevice(
                "nvJPEG turned off (DAJIA_NVJPEG=off)".into(),
            ));
        }
        let names: Vec<String> = match &chosen {
            Some(f) => vec![f.clone()],
            None => CANDIDATES.iter().map(|s| s.to_string()).collect(),
        };
        Self::open_from(&names)
    }

    /// Loads the first of `names` that loads, and creates a handle and a
    /// decode state.
    pub fn open_from(names: &[String]) -> Result<NvJpeg, DeviceError> {
        // SAFETY: loading a shared library runs its initialisers; nvJPEG's
        // are the vendor's.
        let lib = names
            .iter()
            .find_map(|n| unsafe { Library::new(n) }.ok())
            .ok_or_else(|| DeviceError::Library {
                what: "nvJPEG",
                file: names.join(", "),
                hint: "install the CUDA toolkit's nvJPEG or `pip install nvidia-nvjpeg` and add its lib/ to LD_LIBRARY_PATH; JPEGs are decoded on the CPU meanwhile",
            })?;
        // SAFETY: each symbol is looked up by its C name with the signature
        // nvjpeg.h declares; the library outlives the copies (`_lib`).
        let sym = |name: &[u8]| -> Result<*const c_void, DeviceError> {
            unsafe { lib.get::<*const c_void>(name) }
                .map(|s| *s)
                .map_err(|e| DeviceError::Driver(format!("nvJPEG symbol: {e}")))
        };
        // SAFETY: function pointers of the declared signatures.
        let (create_ex, destroy, state_create, state_destroy, info, init, decode) = unsafe {
            (
                std::mem::transmute::<*const c_void, CreateEx>(sym(b"nvjpegCreateEx\0")?),
                std::mem::transmute::<*const c_void, Destroy>(sym(b"nvjpegDestroy\0")?),
                std::mem::transmute::<*const c_void, StateCreate>(sym(b"nvjpegJpegStateCreate\0")?),
                std::mem::transmute::<*const c_void, StateDestroy>(sym(
                    b"nvjpegJpegStateDestroy\0",
                )?),
                std::mem::transmute::<*const c_void, GetImageInfo>(sym(b"nvjpegGetImageInfo\0")?),
                std::mem::transmute::<*const c_void, BatchedInitialize>(sym(
                    b"nvjpegDecodeBatchedInitialize\0",
                )?),
                std::mem::transmute::<*const c_void, DecodeBatched>(sym(b"nvjpegDecodeBatched\0")?),
            )
        };
        let mut handle: Handle = std::ptr::null_mut();
        let mut backend = "hardware";
        // SAFETY: out-pointer to a handle; null allocators select nvJPEG's.
        let hw = unsafe {
            create_ex(
                BACKEND_HARDWARE,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
                &mut handle,
            )
        };
        if hw != 0 {
            backend = "default";
            // SAFETY: as above.
            check("create", unsafe {
                create_ex(
                    BACKEND_DEFAULT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    0,
                    &mut handle,
                )
            })?;
        }
        let mut state: State = std::ptr::null_mut();
        // SAFETY: a live handle, out-pointer to a state.
        if let Err(e) = check("state", unsafe { state_create(handle, &mut state) }) {
            // SAFETY: the handle created above, destroyed once.
            unsafe { destroy(handle) };
            return Err(e);
        }
        Ok(NvJpeg {
            handle,
            state,
            backend,
            destroy,
            state_destroy,
            get_image_info: info,
            batched_initialize: init,
            decode_batched: decode,
            _lib: lib,
        })
    }

    /// Whether nvJPEG reads `jpeg` as an image of `width`×`height` with a
    /// chroma layout it decodes (its own parse of the headers).
    pub fn accepts(&self, jpeg: &[u8], width: u32, height: u32) -> bool {
        let (mut comps, mut css) = (0 as c_int, 0 as c_int);
        let (mut w, mut h) = ([0 as c_int; 4], [0 as c_int; 4]);
        // SAFETY: `jpeg` is readable for its length; the out arrays hold the
        // four entries nvJPEG writes.
        let s = unsafe {
            (self.get_image_info)(
                self.handle,
                jpeg.as_ptr(),
                jpeg.len(),
                &mut comps,
                &mut css,
                w.as_mut_ptr(),
                h.as_mut_ptr(),
            )
        };
        s == 0 && css != CSS_UNKNOWN && w[0] as u32 == width && h[0] as u32 == height
    }

    /// Decodes `jpegs` (each `sizes[i]`, checked with [`accepts`](Self::accepts))
    /// into one device buffer of RGB8 images back to back; returns it with
    /// each image's byte offset. Queued on `stream`; nothing waits for it.
    pub fn decode_batch(
        &self,
        stream: &Arc<CudaStream>,
        jpegs: &[&[u8]],
        sizes: &[(u32, u32)],
    ) -> Result<(CudaSlice<u8>, Vec<u64>), DeviceError> {
        assert_eq!(jpegs.len(), sizes.len());
        let mut offsets = Vec::with_capacity(jpegs.len());
        let mut total = 0u64;
        for &(w, h) in sizes {
            offsets.push(total);
            total += w as u64 * h as u64 * 3;
        }
        let mut out = stream
            .alloc_zeros::<u8>(total.max(1) as usize)
            .map_err(driver_err)?;
        if jpegs.is_empty() {
            return Ok((out, offsets));
        }
        {
            let (base, _sync) = out.device_ptr_mut(stream);
            let mut images: Vec<Image> = offsets
                .iter()
                .zip(sizes)
                .map(|(&o, &(w, _))| Image {
                    channel: [
                        (base + o) as *mut c_uchar,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    ],
                    pitch: [w as usize * 3, 0, 0, 0],
                })
                .collect();
            let data: Vec<*const c_uchar> = jpegs.iter().map(|j| j.as_ptr()).collect();
            let lengths: Vec<usize> = jpegs.iter().map(|j| j.len()).collect();
            // SAFETY: a live handle and state; one destination per JPEG, each
            // w×h×3 bytes inside `out` (sizes from the headers, which
            // `accepts` matched against nvJPEG's own reading).
            unsafe {
                check(
                    "batched initialize",
                    (self.batched_initialize)(
                        self.handle,
                        self.state,
                        jpegs.len() as c_int,
                        1,
                        OUTPUT_RGBI,
                    ),
                )?;
                check(
                    "batched decode",
                    (self.decode_batched)(
                        self.handle,
                        self.state,
                        data.as_ptr(),
                        lengths.as_ptr(),
                        images.as_mut_ptr(),
                        stream.cu_stream(),
                    ),
                )?;
            }
            // nvJPEG reads the host-side bitstreams while it decodes: wait
            // before `jpegs`' borrow may end.
            stream.synchronize().map_err(driver_err)?;
        }
        Ok((out, offsets))
    }
}

impl Drop for NvJpeg {
    fn drop(&mut self) {
        // SAFETY: created in `open`, destroyed once, state before handle.
        unsafe {
            (self.state_destroy)(self.state);
            (self.destroy)(self.handle);
        }
    }
}
