//! Compiles the CUDA kernel sources (`src/**/cuda/*.cu`) a second time, as
//! C++ for the host, so that the same kernel text runs on the CPU launcher:
//! its parity with the Rust reference is tested on any machine, and the CUDA
//! launcher (NVRTC at run time) differs only in how the threads are started.
fn main() {
    let dir = "src/image/cuda";
    let sources = ["resize.cu", "descriptor.cu", "topk.cu"];
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .flag_if_supported("-std=c++17")
        .flag("-x")
        .flag("c++")
        .flag("-include")
        .flag(format!("{dir}/common.cuh"))
        // The Rust reference does not contract a*b+c into FMA; neither do we.
        .flag_if_supported("-ffp-contract=off")
        .opt_level(2)
        .warnings(false);
    for s in sources {
        build.file(format!("{dir}/{s}"));
        println!("cargo:rerun-if-changed={dir}/{s}");
    }
    // The model runtime's kernels (runtime/host.rs runs them on the CPU).
    let runtime = "src/runtime/cuda/ops.cu";
    build.file(runtime);
    println!("cargo:rerun-if-changed={runtime}");
    build.file(format!("{dir}/host.cpp"));
    println!("cargo:rerun-if-changed={dir}/host.cpp");
    println!("cargo:rerun-if-changed={dir}/common.cuh");
    build.compile("dajia_kernels_host");
}
