//! Which decoder takes a JPEG: its frame header (SOFn) says how it was coded.
//! nvJPEG on the GPU takes 8-bit sequential Huffman JPEGs (baseline and
//! extended, the vast majority of product photos) with one or three
//! components; progressive, lossless, arithmetic-coded, 12-bit and CMYK/YCCK
//! (four components) JPEGs stay on the CPU decoder, as do PNG and WebP.
//!
//! Reading the markers by hand because decoders do not expose the coding
//! process before decoding; this reads only the segment headers up to the
//! first scan, never entropy-coded data, and any malformed input simply
//! routes to the CPU decoder (whose guards then give the reason).

/// How a JPEG frame is coded: the SOFn marker's second byte (0xC0 baseline,
/// 0xC1 extended sequential, 0xC2 progressive, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegFrame {
    pub marker: u8,
    /// Bits per sample.
    pub precision: u8,
    pub components: u8,
    pub width: u16,
    pub height: u16,
}

impl JpegFrame {
    /// Whether nvJPEG's batched decode can take it.
    pub fn gpu_decodable(&self) -> bool {
        matches!(self.marker, 0xC0 | 0xC1)
            && self.precision == 8
            && matches!(self.components, 1 | 3)
            && self.width > 0
            && self.height > 0
    }
}

/// The frame header of JPEG `bytes`, `None` when it is not a JPEG or its
/// segments end or break before one.
pub fn frame(bytes: &[u8]) -> Option<JpegFrame> {
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut at = 2usize;
    loop {
        // Fill bytes: any number of 0xFF before a marker.
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        while *bytes.get(at)? == 0xFF {
            at += 1;
        }
        let marker = *bytes.get(at)?;
        at += 1;
        match marker {
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => continue,
            // End of image or start of scan before any frame header.
            0xD9 | 0xDA | 0xD8 | 0x00 => return None,
            _ => {}
        }
        let len = u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]) as usize;
        if len < 2 {
            return None;
        }
        let body = bytes.get(at + 2..at + len)?;
        // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC).
        if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            if body.len() < 6 {
                return None;
            }
            return Some(JpegFrame {
                marker,
                precision: body[0],
                height: u16::from_be_bytes([body[1], body[2]]),
                width: u16::from_be_bytes([body[3], body[4]]),
                components: body[5],
            });
        }
        at += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use image::{ImageEncoder, Rgb, RgbImage};

    fn baseline() -> Vec<u8> {
        let img = RgbImage::from_fn(40, 30, |x, y| Rgb([x as u8 * 6, y as u8 * 8, 77]));
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 85)
            .write_image(&img, 40, 30, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    fn sof_at(jpeg: &[u8]) -> usize {
        jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap()
    }

    #[test]
    fn reads_the_frame_of_a_baseline_jpeg() {
        let f = frame(&baseline()).unwrap();
        assert_eq!(
            f,
            JpegFrame {
                marker: 0xC0,
                precision: 8,
                components: 3,
                width: 40,
                height: 30
            }
        );
        assert!(f.gpu_decodable());
    }

    #[test]
    fn routes_what_nvjpeg_cannot_take_to_the_cpu() {
        let jpeg = baseline();
        let sof = sof_at(&jpeg);
        // Progressive, lossless, arithmetic: same header, other marker.
        for m in [0xC2u8, 0xC3, 0xC9, 0xCA] {
            let mut j = jpeg.clone();
            j[sof + 1] = m;
            let f = frame(&j).unwrap();
            assert_eq!(f.marker, m);
            assert!(!f.gpu_decodable(), "{m:#x}");
        }
        // Four components (CMYK / YCCK) and 12-bit samples.
        let mut j = jpeg.clone();
        j[sof + 9] = 4;
        assert!(!frame(&j).unwrap().gpu_decodable());
        let mut j = jpeg.clone();
        j[sof + 4] = 12;
        assert!(!frame(&j).unwrap().gpu_decodable());
    }

    #[test]
    fn malformed_input_has_no_frame() {
        let jpeg = baseline();
        let sof = sof_at(&jpeg);
        assert_eq!(frame(b""), None);
        assert_eq!(frame(b"\x89PNG\r\n\x1a\n"), None);
        assert_eq!(frame(&jpeg[..sof + 4]), None, "cut inside the frame header");
        assert_eq!(frame(&jpeg[..3]), None);
        // A segment length running past the end, and one under 2.
        let mut j = jpeg[..sof].to_vec();
        j.extend_from_slice(&[0xFF, 0xE1, 0xFF, 0xFF, 0x00]);
        assert_eq!(frame(&j), None);
        let mut j = jpeg[..4].to_vec();
        j.extend_from_slice(&[0x00, 0x01]);
        assert_eq!(frame(&j), None);
        // Garbage where a marker should be.
        let mut j = jpeg.clone();
        j[2] = 0x12;
        assert_eq!(frame(&j), None);
        // Start of scan before any frame.
        assert_eq!(frame(&[0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02]), None);
    }
}
