//! Resizing into the fixed-size inputs of the embedders (fast_image_resize:
//! SIMD convolution, antialiased when shrinking), and the float tensors the
//! neural model takes.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

use super::decode::Rgb8;

/// Resizes to `side`×`side` RGB8 (aspect ratio is not kept: a product photo's
/// layout survives the squeeze, and copies are squeezed the same way).
pub fn resize_rgb(img: &RgbImage, side: u32) -> Vec<u8> {
    resize_rgb8(img.into(), side)
}

/// [`resize_rgb`] of borrowed pixels (a decoder's reused buffer).
pub fn resize_rgb8(img: Rgb8<'_>, side: u32) -> Vec<u8> {
    if img.width == side && img.height == side {
        return img.pixels.to_vec();
    }
    let src = ImageRef::new(img.width, img.height, img.pixels, PixelType::U8x3)
        .expect("an RGB8 buffer of width*height*3 bytes");
    let mut dst = Image::new(side, side, PixelType::U8x3);
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize(&src, &mut dst, &opts)
        .expect("RGB8 to RGB8 resize of a non-empty image");
    dst.into_vec()
}

/// Resizes to `width`×`height` (any aspect ratio change is the caller's choice:
/// the OCR detector wants sides in multiples of 32, the recogniser a fixed height).
pub fn resize_to(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    if img.width() == width && img.height() == height {
        return img.clone();
    }
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize(img, &mut dst, &opts)
        .expect("RGB8 to RGB8 resize of a non-empty image");
    RgbImage::from_raw(width, height, dst.into_vec()).expect("buffer of width*height*3")
}

/// ImageNet normalisation into planar CHW f32, appended to `out`.
pub fn imagenet_chw(rgb: &[u8], side: usize, out: &mut Vec<f32>) {
    const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    const STD: [f32; 3] = [0.229, 0.224, 0.225];
    let n = side * side;
    debug_assert_eq!(rgb.len(), n * 3);
    for c in 0..3 {
        out.extend(
            rgb[c..]
                .iter()
                .step_by(3)
                .take(n)
                .map(|&v| (v as f32 / 255.0 - MEAN[c]) / STD[c]),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn resizes_and_normalises() {
        let img = RgbImage::from_fn(100, 60, |x, _| Rgb([if x < 50 { 255 } else { 0 }, 128, 0]));
        let t = resize_rgb(&img, 10);
        assert_eq!(t.len(), 300);
        assert!(t[0] > 250 && t[3 * 9] < 5, "left red, right black");
        let mut chw = Vec::new();
        imagenet_chw(&t, 10, &mut chw);
        assert_eq!(chw.len(), 300);
        assert!((chw[0] - (1.0 - 0.485) / 0.229).abs() < 0.05);
        assert!((chw[100] - (128.0 / 255.0 - 0.456) / 0.224).abs() < 1e-4);
    }
}
