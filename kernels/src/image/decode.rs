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
    if format == ImageFormat::Jpeg {
        // Every header segment parsed (tables too), without `image`'s copy
        // of the whole input.
        let mut decoder = jpeg_decoder(bytes);
        decoder.decode_headers().map_err(jpeg_corrupt)?;
        let (w, h) = decoder.dimensions().expect("headers decoded");
        return Ok((format, w as u32, h as u32));
    }
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

/// A decoded image lent to its caller: RGB8, row-major, `width × height × 3`
/// bytes.
#[derive(Debug, Clone, Copy)]
pub struct Rgb8<'a> {
    pub width: u32,
    pub height: u32,
    pub pixels: &'a [u8],
}

impl<'a> From<&'a RgbImage> for Rgb8<'a> {
    fn from(img: &'a RgbImage) -> Self {
        Rgb8 {
            width: img.width(),
            height: img.height(),
            pixels: img.as_raw(),
        }
    }
}

/// Decodes JPEG, PNG or WebP bytes into RGB8 on the CPU, refusing oversized
/// inputs before decoding ([`check`]).
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, ImageError> {
    guarded(bytes, limits, decode_checked)
}

/// Decodes like [`decode`] and hands the pixels to `then` on the thread that
/// decoded them, which returns what the caller keeps (a thumbnail, an
/// embedding). JPEGs are decoded into a buffer the thread reuses from image
/// to image, so a batch allocates (and the kernel zero-fills) no
/// full-size image per photo. With the same bytes as [`decode`] then resize
/// and describe, the descriptor path went from 1,042 to 1,115 images/s on
/// 640x480 JPEGs (`dajia-gpu-bench --device cpu`, 2 cores; README, issue 15).
pub fn decode_then<T: Send + 'static>(
    bytes: &[u8],
    limits: &DecodeLimits,
    then: fn(Rgb8<'_>) -> T,
) -> Result<T, ImageError> {
    guarded(bytes, limits, move |bytes, format, limits| {
        decode_checked_then(bytes, format, limits, then)
    })
}

/// The guards, then `work` on the bytes they let through: on a pooled
/// decoder thread within `limits.timeout`, or here without one.
fn guarded<T, F>(bytes: &[u8], limits: &DecodeLimits, work: F) -> Result<T, ImageError>
where
    T: Send + 'static,
    F: FnOnce(&[u8], ImageFormat, &DecodeLimits) -> Result<T, ImageError> + Send + 'static,
{
    // The header parsers are decoder code too.
    let checked = isolated("image header", || check(bytes, limits))??;
    let (format, limits) = (checked.format, *limits);
    // A panic in the decoder or in the caller's `then` fails this image
    // only, and never ends a pooled decoder thread.
    let run = move |bytes: &[u8]| isolated(&format_name(format), || work(bytes, format, &limits))?;
    match limits.timeout {
        None => run(bytes),
        Some(t) => {
            let bytes: Arc<[u8]> = bytes.into();
            run_within(format, t, move || run(&bytes))
        }
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

/// One image's work handed to a decoder thread: it decodes, then replies
/// unless its caller has given up on it.
type Job = Box<dyn FnOnce() + Send>;

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

/// A new decoder thread: it runs the jobs sent to it until its sender is
/// dropped (by the pool when full, or by a caller that gave up on it, in
/// which case it ends after the slow image).
fn decoder_thread() -> std::io::Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("dajia-decode".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
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

/// `work` (one image's decoding) on a decoder thread, waited for at most
/// `timeout`. Rust cannot stop a thread, so a decoder past its time is left
/// to finish (or loop) there, counted in [`ABANDONED`] until it returns.
fn run_within<T: Send + 'static>(
    format: ImageFormat,
    timeout: Duration,
    work: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    let abandoned = ABANDONED.load(Ordering::Relaxed);
    if abandoned >= MAX_ABANDONED {
        return Err(ImageError::DecodersStuck { abandoned });
    }
    let state = Arc::new(AtomicU8::new(RUNNING));
    let (reply, rx) = mpsc::sync_channel(1);
    let job: Job = {
        let state = state.clone();
        Box::new(move || {
            let r = work();
            if state
                .compare_exchange(RUNNING, DONE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let _ = reply.send(r);
            } else {
                ABANDONED.fetch_sub(1, Ordering::Relaxed);
            }
        })
    };
    let pooled = idle().pop();
    let Some(worker) = pooled.or_else(|| decoder_thread().ok()) else {
        // No thread to spare: decode here, without the limit.
        job();
        return rx.recv().expect("the job replies before returning");
    };
    if let Err(mpsc::SendError(job)) = worker.send(job) {
        // The thread has gone (it cannot panic: decoders are isolated).
        job();
        return rx.recv().expect("the job replies before returning");
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
    if format == ImageFormat::Jpeg {
        let mut pixels = Vec::new();
        let (width, height) = decode_jpeg_into(bytes, &mut pixels)?;
        return Ok(RgbImage::from_raw(width, height, pixels).expect("width*height*3 bytes"));
    }
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

/// A decoder thread's JPEG buffer, kept from image to image up to this
/// many bytes (2.8 MP of RGB8; larger photos get a buffer of their own, so
/// memory stays bounded by threads × this).
const KEPT_BUFFER_BYTES: usize = 8 << 20;

thread_local! {
    static JPEG_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// [`decode_checked`] handing the pixels to `then` (see [`decode_then`]).
fn decode_checked_then<T>(
    bytes: &[u8],
    format: ImageFormat,
    limits: &DecodeLimits,
    then: fn(Rgb8<'_>) -> T,
) -> Result<T, ImageError> {
    if format != ImageFormat::Jpeg {
        let img = decode_checked(bytes, format, limits)?;
        return Ok(then((&img).into()));
    }
    let mut pixels = JPEG_BUFFER.take();
    let r = decode_jpeg_into(bytes, &mut pixels).map(|(width, height)| {
        then(Rgb8 {
            width,
            height,
            pixels: &pixels,
        })
    });
    if pixels.capacity() <= KEPT_BUFFER_BYTES {
        JPEG_BUFFER.set(pixels);
    }
    r
}

/// Decodes a JPEG into `pixels` (resized to its RGB8 size and zeroed first,
/// as a new buffer would be: zune-jpeg leaves the rows of a scan that ends
/// early as they were) with zune-jpeg, the decoder `image` wraps, called
/// directly: the wrapper copies the input and parses the headers again.
fn decode_jpeg_into(bytes: &[u8], pixels: &mut Vec<u8>) -> Result<(u32, u32), ImageError> {
    isolated("JPEG", || {
        let mut decoder = jpeg_decoder(bytes);
        decoder.decode_headers().map_err(jpeg_corrupt)?;
        let (w, h) = decoder.dimensions().expect("headers decoded");
        let n = decoder.output_buffer_size().expect("headers decoded");
        pixels.clear();
        pixels.resize(n, 0);
        decoder.decode_into(pixels).map_err(jpeg_corrupt)?;
        Ok((w as u32, h as u32))
    })?
}

/// zune-jpeg set up as `image` sets it up: lenient, the size left to
/// [`check`], and every colour space (grey, CMYK, YCCK) converted to RGB.
fn jpeg_decoder(bytes: &[u8]) -> zune_jpeg::JpegDecoder<zune_core::bytestream::ZCursor<&[u8]>> {
    let options = zune_core::options::DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX)
        .jpeg_set_out_colorspace(zune_core::colorspace::ColorSpace::RGB);
    zune_jpeg::JpegDecoder::new_with_options(zune_core::bytestream::ZCursor::new(bytes), options)
}

fn jpeg_corrupt(e: zune_jpeg::errors::DecodeErrors) -> ImageError {
    ImageError::Corrupt {
        format: "JPEG".into(),
        detail: e.to_string(),
    }
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

    /// What `image`'s own decoder (the one dajia used before decoding
    /// JPEGs with zune-jpeg directly) makes of `bytes`, as RGB8.
    fn through_image(bytes: &[u8]) -> RgbImage {
        image::load_from_memory(bytes).unwrap().into_rgb8()
    }

    fn jpeg_of(
        pixels: &[u8],
        w: u16,
        h: u16,
        color: jpeg_encoder::ColorType,
        progressive: bool,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut out, 85);
        enc.set_progressive(progressive);
        enc.encode(pixels, w, h, color).unwrap();
        out
    }

    /// Kept for the thumbnail the tests compare: the pixels as they were lent.
    fn copy(img: Rgb8<'_>) -> (u32, u32, Vec<u8>) {
        (img.width, img.height, img.pixels.to_vec())
    }

    #[test]
    fn jpegs_decode_to_the_bytes_image_gives_in_every_colour_space() {
        use jpeg_encoder::ColorType;
        let (w, h) = (67u16, 45u16);
        let rgb = RgbImage::from_fn(w as u32, h as u32, |x, y| {
            Rgb([(x * 3) as u8, (y * 5) as u8, ((x * y) % 251) as u8])
        });
        let grey: Vec<u8> = rgb.pixels().map(|p| p[1]).collect();
        let cmyk: Vec<u8> = rgb.pixels().flat_map(|p| [p[0], p[1], p[2], 40]).collect();
        let cases = [
            ("rgb", jpeg_of(rgb.as_raw(), w, h, ColorType::Rgb, false)),
            (
                "rgb progressive",
                jpeg_of(rgb.as_raw(), w, h, ColorType::Rgb, true),
            ),
            ("grey", jpeg_of(&grey, w, h, ColorType::Luma, false)),
            ("cmyk", jpeg_of(&cmyk, w, h, ColorType::Cmyk, false)),
        ];
        for (name, bytes) in cases {
            let want = through_image(&bytes);
            let got = decode(&bytes, &DecodeLimits::default()).unwrap();
            assert_eq!(got, want, "{name}");
            let (gw, gh, lent) = decode_then(&bytes, &DecodeLimits::default(), copy).unwrap();
            assert_eq!((gw, gh), want.dimensions(), "{name}");
            assert_eq!(&lent, want.as_raw(), "{name}: lent pixels");
        }
    }

    #[test]
    fn a_panic_in_then_fails_that_image_only() {
        let jpeg = encode(&sample(), ImageFormat::Jpeg);
        let inline = DecodeLimits {
            timeout: None,
            ..Default::default()
        };
        for limits in [DecodeLimits::default(), inline] {
            let e = decode_then(&jpeg, &limits, |_| -> u8 { panic!("thumbnail") })
                .expect_err("the image fails");
            assert_eq!(
                e.to_string(),
                "corrupt or truncated JPEG: the decoder panicked: thumbnail"
            );
            // The pooled thread lives on: the next image decodes.
            let (w, h, _) = decode_then(&jpeg, &limits, copy).unwrap();
            assert_eq!((w, h), (64, 48));
        }
    }

    #[test]
    fn a_reused_buffer_never_shows_the_previous_image() {
        // A dark JPEG whose scan is cut by a second start-of-scan (then an
        // end-of-image marker): the guards let it through, and zune-jpeg
        // stops writing rows at the second scan, leaving the rest of its
        // output as it was. Decoded after a white photo on the same thread,
        // it must come out as it does in a new buffer.
        let limits = DecodeLimits {
            timeout: None,
            ..Default::default()
        };
        let white = encode(
            &RgbImage::from_pixel(300, 200, Rgb([255; 3])),
            ImageFormat::Jpeg,
        );
        let dark = RgbImage::from_fn(200, 150, |x, y| Rgb([(x % 7) as u8, (y % 5) as u8, 3]));
        let dark = encode(&dark, ImageFormat::Jpeg);
        let sos = memchr::memmem::rfind(&dark, &[0xff, 0xda]).unwrap();
        let data = sos + 2 + u16::from_be_bytes([dark[sos + 2], dark[sos + 3]]) as usize;
        let mut cut = dark[..data + (dark.len() - data) / 3].to_vec();
        cut.extend_from_slice(&dark[sos..data]);
        cut.extend_from_slice(&[0; 16]);
        cut.extend_from_slice(&[0xff, 0xd9]);
        let fresh = decode(&cut, &limits).unwrap();
        for bytes in [&white, &cut] {
            let _ = decode_then(bytes, &limits, copy).unwrap();
        }
        let (_, _, again) = decode_then(&cut, &limits, copy).unwrap();
        // (Compared without printing: the buffers are 90,000 bytes.)
        let stale = again
            .iter()
            .zip(fresh.as_raw())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            stale, 0,
            "bytes that differ from a decode into a new buffer"
        );
        assert!(
            again.iter().all(|&v| v < 200),
            "no white from the last image"
        );
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
