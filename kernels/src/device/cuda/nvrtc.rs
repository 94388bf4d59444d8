//! Kernel sources to cubins: NVRTC compiles for the device's exact
//! architecture (`sm_90`), so the driver loads machine code and never JITs
//! PTX. Cubins are cached on disk under a content hash of everything that
//! decides them (source, architecture, options, NVRTC version): a new binary
//! or a new NVRTC compiles again, an unchanged one starts at once.
//! Compiling needs only libnvrtc, not a GPU, so this is tested anywhere
//! NVRTC is installed.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use cudarc::nvrtc::{result, sys};
use sha2::{Digest, Sha256};

use crate::device::DeviceError;

/// Options every kernel is compiled with. No fast-math: the CPU path is the
/// reference and parity is tested against it.
pub const OPTIONS: &[&str] = &["--std=c++17", "--fmad=false"];

/// Where cubins are kept: `$DAJIA_CUDA_CACHE`, else
/// `$XDG_CACHE_HOME/dajia/cuda`, else `~/.cache/dajia/cuda`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DAJIA_CUDA_CACHE") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("dajia").join("cuda")
}

/// NVRTC's version, e.g. (13, 0).
pub fn version() -> Result<(i32, i32), DeviceError> {
    crate::device::cuda::check_nvrtc()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: plain out-parameters.
    unsafe { sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| DeviceError::Driver(format!("nvrtcVersion: {e:?}")))?;
    Ok((major, minor))
}

/// Hex content hash naming a cubin.
pub fn cache_key(name: &str, source: &str, arch: &str, nvrtc: (i32, i32)) -> String {
    let mut h = Sha256::new();
    for part in [
        name,
        source,
        arch,
        &OPTIONS.join(" "),
        &format!("{nvrtc:?}"),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compiles `source` to a cubin for `arch` (no cache).
pub fn compile_cubin(name: &str, source: &str, arch: &str) -> Result<Vec<u8>, DeviceError> {
    crate::device::cuda::check_nvrtc()?;
    let fail = |log: String| DeviceError::Compile {
        kernel: name.to_string(),
        arch: arch.to_string(),
        log,
    };
    let src = CString::new(source).map_err(|_| fail("source contains a NUL byte".into()))?;
    let cname = CString::new(format!("{name}.cu")).expect("kernel names have no NUL");
    let prog = result::create_program(&src, Some(&cname)).map_err(|e| fail(format!("{e:?}")))?;
    let mut options: Vec<String> = OPTIONS.iter().map(|s| s.to_string()).collect();
    options.push(format!("--gpu-architecture={arch}"));
    // SAFETY: `prog` is a live program until destroyed below; the log and
    // cubin buffers are sized by NVRTC's own size queries.
    let out = unsafe {
        let compiled = result::compile_program(prog, &options);
        let out = match compiled {
            Err(e) => {
                let log = result::get_program_log(prog)
                    .map(|l| CStr::from_ptr(l.as_ptr()).to_string_lossy().into_owned())
                    .unwrap_or_default();
                Err(fail(format!("{e:?}: {}", log.trim())))
            }
            Ok(()) => {
                let mut size = 0usize;
                sys::nvrtcGetCUBINSize(prog, &mut size)
                    .result()
                    .map_err(|e| fail(format!("nvrtcGetCUBINSize: {e:?}")))?;
                let mut cubin = vec![0u8; size];
                sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr().cast())
                    .result()
                    .map_err(|e| fail(format!("nvrtcGetCUBIN: {e:?}")))?;
                Ok(cubin)
            }
        };
        let _ = result::destroy_program(prog);
        out
    };
    let cubin = out?;
    if cubin.is_empty() {
        return Err(fail("NVRTC returned an empty cubin".into()));
    }
    Ok(cubin)
}

/// The cubin for `source` on `arch`, from `dir` when an identical one was
/// compiled before, else compiled and stored (written to a temporary file and
/// renamed, so a concurrent or interrupted run never leaves half a cubin).
pub fn cached_cubin(
    name: &str,
    source: &str,
    arch: &str,
    dir: &Path,
) -> Result<Vec<u8>, DeviceError> {
    let key = cache_key(name, source, arch, version()?);
    let path = dir.join(format!("{name}-{arch}-{key}.cubin"));
    if let Ok(bytes) = std::fs::read(&path) {
        if !bytes.is_empty() {
            tracing::debug!("cubin cache hit {}", path.display());
            return Ok(bytes);
        }
    }
    let cubin = compile_cubin(name, source, arch)?;
    let store = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{name}-{key}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, &cubin)?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = store() {
        // The cache only saves time; a read-only home must not stop the run.
        tracing::warn!("could not cache cubin in {}: {e}", dir.display());
    }
    Ok(cubin)
}
