//! `--device` choices and the GPU libraries' absence, in both builds: with
//! the `cuda` feature on a machine without a GPU (CI), `auto` must fall back
//! to the CPU and say why, and a missing nvJPEG must be a one-line error.
//! (Integration tests rather than unit tests so that the CUDA pass of
//! `scripts/test.sh` needs no test harness of the libraries.)

use dajia_kernels::device::{select, Device, DeviceChoice};

#[test]
fn choices_parse_and_cpu_always_works() {
    assert_eq!("CUDA".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda));
    assert_eq!("auto".parse::<DeviceChoice>(), Ok(DeviceChoice::Auto));
    assert!("tpu"
        .parse::<DeviceChoice>()
        .unwrap_err()
        .contains("auto, cpu or cuda"));
    let s = select(DeviceChoice::Cpu).unwrap();
    assert_eq!(s.device.kind(), "cpu");
    assert!(s.note.is_none());
    // auto never fails: a GPU, or the CPU with the reason.
    let s = select(DeviceChoice::Auto).unwrap();
    match &s.device {
        Device::Cpu => assert!(s.note.as_deref().unwrap().contains("using the CPU")),
        Device::Cuda(_) => assert!(s.note.as_deref().unwrap().contains("using cuda:")),
    }
}

#[cfg(feature = "cuda")]
#[test]
fn a_missing_nvjpeg_is_a_one_line_error_naming_it() {
    use dajia_kernels::device::cuda::nvjpeg::NvJpeg;
    let e = NvJpeg::open_from(&["/nonexistent/libnvjpeg.so.13".into()])
        .err()
        .expect("no such library");
    let m = e.to_string();
    assert!(
        m.contains("nvJPEG") && m.contains("/nonexistent/libnvjpeg.so.13") && !m.contains('\n'),
        "{m}"
    );
}
