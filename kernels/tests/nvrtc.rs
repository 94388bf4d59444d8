//! The kernel sources compile with NVRTC for the GPUs we target, and the
//! cubin cache behaves: this needs libnvrtc but no GPU. `.ci/run` installs
//! NVRTC from PyPI and sets `DAJIA_REQUIRE_NVRTC=1`, so there it cannot skip.
#![cfg(feature = "cuda")]

use dajia_kernels::device::cuda::{check_nvrtc, nvrtc};
use dajia_kernels::image::kernels;

fn nvrtc_here() -> bool {
    match check_nvrtc() {
        Ok(()) => true,
        Err(e) if std::env::var_os("DAJIA_REQUIRE_NVRTC").is_some() => {
            panic!("DAJIA_REQUIRE_NVRTC is set but {e}")
        }
        Err(e) => {
            eprintln!("NVRTC tests skipped: {e}");
            false
        }
    }
}

#[test]
fn every_kernel_compiles_for_ampere_and_hopper() {
    if !nvrtc_here() {
        return;
    }
    eprintln!("NVRTC {:?}", nvrtc::version().unwrap());
    // The image kernels and the model runtime's.
    for k in kernels::ALL
        .into_iter()
        .chain([dajia_kernels::runtime::OPS])
    {
        for arch in ["sm_80", "sm_90"] {
            let cubin =
                nvrtc::compile_cubin(k.name, &k.source(), arch).unwrap_or_else(|e| panic!("{e}"));
            // An ELF image that carries every entry point by name.
            assert_eq!(&cubin[..4], b"\x7fELF", "{} {arch}", k.name);
            for entry in k.entries {
                assert!(
                    cubin.windows(entry.len()).any(|w| w == entry.as_bytes()),
                    "{} {arch}: no {entry}",
                    k.name
                );
            }
            eprintln!("{} {arch}: {} bytes", k.name, cubin.len());
        }
    }
}

#[test]
fn compile_errors_carry_the_log() {
    if !nvrtc_here() {
        return;
    }
    let err = nvrtc::compile_cubin(
        "broken",
        "extern \"C\" __global__ void f() { undefined_thing(); }",
        "sm_90",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("broken") && err.contains("undefined_thing"),
        "{err}"
    );
}

#[test]
fn cubins_are_cached_by_content_hash() {
    if !nvrtc_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let k = kernels::TOP_K;
    let a = nvrtc::cached_cubin(k.name, &k.source(), "sm_90", dir.path()).unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("topk-sm_90-") && name.ends_with(".cubin"),
        "{name}"
    );
    // A second call reads the file: make the cached copy recognisable.
    let mut marked = a.clone();
    marked.extend_from_slice(b"cached");
    std::fs::write(&files[0], &marked).unwrap();
    assert_eq!(
        nvrtc::cached_cubin(k.name, &k.source(), "sm_90", dir.path()).unwrap(),
        marked
    );
    // Another source or architecture is another key.
    let other = format!("{}\n// changed", k.source());
    assert_ne!(
        nvrtc::cache_key(k.name, &other, "sm_90", (13, 0)),
        nvrtc::cache_key(k.name, &k.source(), "sm_90", (13, 0))
    );
    nvrtc::cached_cubin(k.name, &other, "sm_90", dir.path()).unwrap();
    nvrtc::cached_cubin(k.name, &k.source(), "sm_80", dir.path()).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    // An empty (interrupted) cache file is compiled again.
    std::fs::write(&files[0], b"").unwrap();
    assert_eq!(
        nvrtc::cached_cubin(k.name, &k.source(), "sm_90", dir.path()).unwrap(),
        a
    );
}
