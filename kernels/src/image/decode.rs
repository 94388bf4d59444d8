//! Decoding with guards. The header is read first: an image that declares
//! more pixels than allowed (a decompression bomb) is refused before any
//! pixel buffer is allocated, and the decoder itself runs under `image`'s
//! allocation limits as a second line of defence. A decoder that panics
//! fails its image only; one that runs past `timeout` is abandoned on its
//! decoder thread (pooled, reused from image to image) and its image refused.

use std::io::Cursor;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use image::{ImageFormat, ImageReader, Limits, RgbImage};

use super::ImageError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted width × height, as declared by the header.
    pub max_pixels: u64,
    /// Largest accepted encoded size.
    pub max_bytes: usize,
    /// Longest one image may take to decode: past it the image is refused
    /// and its decoder left to finish on its own thread. `None`: no limit
    /// (decoded on the caller's thread).
    pub timeout: Option<Duration>,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        // 40 MP covers any product photo; 32 MiB any sane encoding of one.
        DecodeLimits {
            max_pixels: 40_000_000,
            max_bytes: 32 << 20,
            // A 40 MP photo decodes in well under a second on one core.
            timeout: Some(Duration::from_secs(10)),
        }
    }
}

fn format_name(f: ImageFormat) -> String {
    format!("{f:?}").to_uppercase()
}

/// Sniffs the format from the bytes (never from a file name).
pub fn sniff(bytes: &[u8]) -> Result<ImageFormat, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| {
        let head: String = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        ImageError::NotAnImage(head)
    })?;
    match format {
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP => Ok(format),
        other => Err(ImageError::Unsupported(format_name(other))),
    }
}

/// Width and height declared by the header, after the format check.
pub fn dimensions(bytes: &[u8]) -> Result<(ImageFormat, u32, u32), ImageError> {
    let format = sniff(bytes)?;
    let reader = ImageReader::with_format(Cursor::new(bytes), format);
    let (w, h) = reader.into_dimensions().map_err(|e| ImageError::Corrupt {
        format: format_name(format),
        detail: e.to_string(),
    })?;
    Ok((format, w, h))
}

/// What the guards let through: the format and the header's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

/// The guards every decoder runs behind (the CPU's and nvJPEG): byte limit,
/// format, the header's size against the pixel limit, and a JPEG cut short.
/// Nothing is decoded or allocated for the pixels.
pub fn check(bytes: &[u8], limits: &DecodeLimits) -> Result<Checked, ImageError> {
    if bytes.len() > limits.max_bytes {
        return Err(ImageError::TooManyBytes {
            bytes: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let (format, width, height) = dimensions(bytes)?;
    let pixels = width as u64 * height as u64;
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt {
            format: format_name(format),
            detail: format!("header declares {width}x{height} pixels"),
        });
    }
    if pixels > limits.max_pixels {
        return Err(ImageError::TooManyPixels {
            width,
            height,
            pixels,
            max: limits.max_pixels,
        });
    }
    // zune-jpeg decodes a truncated JPEG leniently (the missing part comes
    // out grey); a photo cut short is damaged data, so it is refused here.
    // The end-of-image marker must follow the last start-of-scan marker
    // (inside entropy-coded data 0xFF is always stuffed, so neither marker
    // appears by accident); data appended after it, as in motion photos, is
    // fine.
    if format == ImageFormat::Jpeg {
        let sos = memchr::memmem::rfind(bytes, &[0xff, 0xda]).unwrap_or(0);
        if memchr::memmem::find(&bytes[sos..], &[0xff, 0xd9]).is_none() {
            return Err(ImageError::Corrupt {
                format: "JPEG".into(),
                detail: "truncated: no end-of-image marker".into(),
            });
        }
    }
    Ok(Checked {
        format,
        width,
        height,
    })
}

/// Bytes a decoder holds for this image (RGBA8 while decoding), from its
/// header; 0 when the guards refuse it (it is never decoded).
pub fn decoded_bytes(bytes: &[u8], limits: &DecodeLimits) -> u64 {
    match isolated("image header", || check(bytes, limits)) {
        Ok(Ok(c)) => c.width as u64 * c.height as u64 * 4,
        _ => 0,
    }
}

/// Decodes JPEG, PNG or WebP bytes into RGB8 on the CPU, refusing oversized
/// inputs before decoding ([`check`]).
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, ImageError> {
    // The header parsers are decoder code too.
    let checked = isolated("image header", || check(bytes, limits))??;
    match limits.timeout {
        None => decode_checked(bytes, checked.format, limits),
        Some(t) => decode_within(bytes, checked.format, limits, t),
    }
}

/// Decoders abandoned past their time limit and still running.
static ABANDONED: AtomicUsize = AtomicUsize::new(0);

/// Past this many abandoned decoders the run stops: each holds a thread
/// and its buffers, and so many slow images means something is wrong.
const MAX_ABANDONED: usize = 32;

const RUNNING: u8 = 0;
const DONE: u8 = 1;
const GIVEN_UP: u8 = 2;

/// One image handed to a decoder thread.
struct Job {
    bytes: Arc<[u8]>,
    format: ImageFormat,
    limits: DecodeLimits,
    /// RUNNING until the decoder finishes (DONE) or its caller stops
    /// waiting (GIVEN_UP), whichever comes first.
    state: Arc<AtomicU8>,
    reply: mpsc::SyncSender<Result<RgbImage, ImageError>>,
}

/// Decoder threads waiting for an image, reused from image to image. With a
/// new thread per image the time limit cost +0.8 ms per image on one core
/// (`dajia bench images`, "decode alone", 640-px JPEGs, one run on a busy
/// 2-core machine); with pooled threads +0.17 ms, 0.92x the throughput
/// without a limit (two runs, alternated, best of 5). A thread whose caller
/// gave up on it is never returned here.
static IDLE: Mutex<Vec<mpsc::Sender<Job>>> = Mutex::new(Vec::new());

/// Idle decoder threads kept (more than the cores of any machine here; an
/// idle thread holds only its stack's address space).
const MAX_IDLE: usize = 256;

/// A new decoder thread: it decodes the jobs sent to it until its sender is
/// dropped (by the pool when full, or by a caller that gave up on it, in
/// which case it ends after the slow image).
fn decoder_thread() -> std::io::Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("dajia-decode".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                let r = decode_checked(&job.bytes, job.format, &job.limits);
                if job
                    .state
                    .compare_exchange(RUNNING, DONE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    let _ = job.reply.send(r);
                } else {
                    ABANDONED.fetch_sub(1, Ordering::Relaxed);
                }
            }
        })?;
    Ok(tx)
}

fn idle() -> std::sync::MutexGuard<'static, Vec<mpsc::Sender<Job>>> {
    // A panic while holding the lock leaves the list itself intact.
    IDLE.lock().unwrap_or_else(|p| p.into_inner())
}

fn give_back(worker: mpsc::Sender<Job>) {
    let mut idle = idle();
    if idle.len() < MAX_IDLE {
        idle.push(worker);
    }
}

/// [`decode_checked`] on a decoder thread, waited for at most `timeout`.
/// Rust cannot stop a thread, so a decoder past its time is left to finish
/// (or loop) there, counted in [`ABANDONED`] until it returns.
fn decode_within(
    bytes: &[u8],
    format: ImageFormat,
    limits: &DecodeLimits,
    timeout: Duration,
) -> Result<RgbImage, ImageError> {
    let abandoned = ABANDONED.load(Ordering::Relaxed);
    if abandoned >= MAX_ABANDONED {
        return Err(ImageError::DecodersStuck { abandoned });
    }
    let pooled = idle().pop();
    let Some(worker) = pooled.or_else(|| decoder_thread().ok()) else {
        // No thread to spare: decode here, without the limit.
        return decode_checked(bytes, format, limits);
    };
    let state = Arc::new(AtomicU8::new(RUNNING));
    let (reply, rx) = mpsc::sync_channel(1);
    let job = Job {
        bytes: bytes.into(),
        format,
        limits: *limits,
        state: state.clone(),
        reply,
    };
    if worker.send(job).is_err() {
        // The thread has gone (it cannot panic: decoders are isolated).
        return decode_checked(bytes, format, limits);
    }
    let result = match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(_) => {
            if state
                .compare_exchange(RUNNING, GIVEN_UP, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                ABANDONED.fetch_add(1, Ordering::Relaxed);
                // Dropping `worker` lets the thread end after this image.
                return Err(ImageError::TimedOut {
                    format: format_name(format),
                    seconds: timeout.as_secs_f64(),
                });
            }
            // It finished just as the time ran out.
            rx.recv().unwrap_or_else(|_| {
                Err(ImageError::Corrupt {
                    format: format_name(format),
                    detail: "the decoder thread ended without a result".into(),
                })
            })
        }
    };
    give_back(worker);
    result
}

/// Decodes bytes [`check`] already let through as `format`.
pub fn decode_checked(
    bytes: &[u8],
    format: ImageFormat,
    limits: &DecodeLimits,
) -> Result<RgbImage, ImageError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut l = Limits::default();
    // RGBA8 output plus the decoder's own buffers.
    l.max_alloc = Some(limits.max_pixels.saturating_mul(8).max(64 << 20));
    reader.limits(l);
    let img =
        isolated(&format_name(format), || reader.decode())?.map_err(|e| ImageError::Corrupt {
            format: format_name(format),
            detail: e.to_string(),
        })?;
    Ok(img.into_rgb8())
}

/// Run one image's decoder so that a panic in it (a decoder bug met by
/// hostile bytes) fails that image, as a corrupt one, not the process or
/// the batch it is in. The decoder's state is dropped with the image, so
/// nothing it left half-done is used again.
fn isolated<T>(format: &str, f: impl FnOnce() -> T) -> Result<T, ImageError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| ImageError::Corrupt {
        format: format.to_string(),
        detail: format!("the decoder panicked: {}", panic_message(&p)),
    })
}

/// The message of a caught panic (the box `catch_unwind` returns: a
/// `&dyn Any` made from `&Box<…>` would be the box, not its payload).
#[allow(clippy::borrowed_box)]
pub fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use image::{ImageEncoder, Rgb};

    fn sample() -> RgbImage {
        RgbImage::from_fn(64, 48, |x, y| Rgb([(x * 4) as u8, (y * 5) as u8, 90]))
    }

    fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Vec::new();
        match format {
            ImageFormat::Jpeg => JpegEncoder::new_with_quality(&mut out, 90)
                .write_image(
                    img,
                    img.width(),
                    img.height(),
                    image::ExtendedColorType::Rgb8,
                )
                .unwrap(),
            f => img.write_to(&mut Cursor::new(&mut out), f).unwrap(),
        }
        out
    }

    #[test]
    fn a_decoder_panic_fails_that_image_only() {
        let e = isolated("PNG", || -> u8 { panic!("index out of bounds") }).unwrap_err();
        assert_eq!(
            e.to_string(),
            "corrupt or truncated PNG: the decoder panicked: index out of bounds"
        );
        assert_eq!(isolated("PNG", || 7).unwrap(), 7);
    }

    #[test]
    fn decodes_each_format() {
        let img = sample();
        for f in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP] {
            let bytes = encode(&img, f);
            let d = decode(&bytes, &DecodeLimits::default()).unwrap();
            assert_eq!(d.dimensions(), (64, 48), "{f:?}");
            let diff = (d.get_pixel(40, 30)[0] as i32 - img.get_pixel(40, 30)[0] as i32).abs();
            assert!(diff < 12, "{f:?} pixel differs by {diff}");
        }
    }

    #[test]
    fn refuses_bad_inputs_with_reasons() {
        let limits = DecodeLimits::default();
        assert_eq!(decode(b"", &limits), Err(ImageError::Empty));
        assert!(matches!(
            decode(b"hello, not an image", &limits),
            Err(ImageError::NotAnImage(_))
        ));
        let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
        assert_eq!(
            decode(gif, &limits),
            Err(ImageError::Unsupported("GIF".into()))
        );
        let jpeg = encode(&sample(), ImageFormat::Jpeg);
        for cut in [jpeg.len() / 2, 20] {
            let e = decode(&jpeg[..cut], &limits)
                .err()
                .expect("truncated JPEG refused");
            assert!(matches!(e, ImageError::Corrupt { .. }), "cut {cut}: {e}");
        }
        let png = encode(&sample(), ImageFormat::Png);
        let mut broken = png.clone();
        for b in broken.iter_mut().skip(60).take(40) {
            *b ^= 0x5a;
        }
        let e = decode(&broken, &limits).err().expect("damaged PNG refused");
        assert!(matches!(e, ImageError::Corrupt { .. }), "{e}");
        let small = DecodeLimits {
            max_bytes: 100,
            ..limits
        };
        assert!(matches!(
            decode(&png, &small),
            Err(ImageError::TooManyBytes { .. })
        ));
    }

    #[test]
    fn refuses_decompression_bombs_from_the_header() {
        // A JPEG whose frame header (SOF0) declares 60000 x 60000 pixels
        // over a tiny body: refused from the header, nothing allocated.
        let mut jpeg = encode(&sample(), ImageFormat::Jpeg);
        let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
        jpeg[sof + 5..sof + 7].copy_from_slice(&60_000u16.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&60_000u16.to_be_bytes());
        let e = decode(&jpeg, &DecodeLimits::default())
            .err()
            .expect("bomb refused");
        assert!(
            matches!(
                e,
                ImageError::TooManyPixels {
                    pixels: 3_600_000_000,
                    ..
                }
            ),
            "{e}"
        );
        // A real 2000x2000 JPEG against a 1 MP limit.
        let big = RgbImage::new(2000, 2000);
        let jpeg = encode(&big, ImageFormat::Jpeg);
        let limits = DecodeLimits {
            max_pixels: 1_000_000,
            ..Default::default()
        };
        assert_eq!(
            decode(&jpeg, &limits),
            Err(ImageError::TooManyPixels {
                width: 2000,
                height: 2000,
                pixels: 4_000_000,
                max: 1_000_000
            })
        );
    }

    #[test]
    fn an_image_past_its_time_limit_is_refused_and_the_next_decodes() {
        // A 3000x3000 PNG takes far longer than a microsecond to decode.
        let big = RgbImage::from_fn(3000, 3000, |x, y| Rgb([x as u8, y as u8, 7]));
        let png = encode(&big, ImageFormat::Png);
        let hurried = DecodeLimits {
            timeout: Some(Duration::from_micros(1)),
            ..Default::default()
        };
        let e = decode(&png, &hurried).err().expect("timed out");
        assert!(
            matches!(e, ImageError::TimedOut { ref format, .. } if format == "PNG"),
            "{e}"
        );
        assert!(!e.is_run_failure(), "one slow image is that image's reject");
        // The same bytes with time to spare, and without a limit.
        let d = decode(&png, &DecodeLimits::default()).unwrap();
        assert_eq!(d.dimensions(), (3000, 3000));
        let inline = DecodeLimits {
            timeout: None,
            ..Default::default()
        };
        assert_eq!(decode(&png, &inline).unwrap(), d);
        // The abandoned decoder finishes on its own and is no longer counted.
        let t = std::time::Instant::now();
        while ABANDONED.load(Ordering::Relaxed) > 0 && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(ABANDONED.load(Ordering::Relaxed), 0);
    }
}
