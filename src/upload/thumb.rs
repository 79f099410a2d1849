//! Image checks and thumbnails. Dimensions are read from the header before anything is
//! decoded, so a decompression bomb (a small file declaring a huge canvas) is refused at
//! once; decoding itself runs under allocation limits.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

/// Widest or tallest image accepted.
pub const MAX_SIDE: u32 = 12_000;
/// Most pixels accepted (about 40 megapixels: 160 MB decoded as RGBA).
pub const MAX_PIXELS: u64 = 40_000_000;
/// Thumbnails fit in this square.
pub const THUMB_SIDE: u32 = 320;

#[derive(Debug)]
pub struct Processed {
    pub width: u32,
    pub height: u32,
    /// PNG when the image has transparency, else JPEG.
    pub thumb: Vec<u8>,
    pub thumb_mime: &'static str,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("the image is {width}×{height} pixels; at most {MAX_SIDE} per side and 40 megapixels")]
    TooManyPixels { width: u32, height: u32 },
    #[error("the image could not be read: {0}")]
    Invalid(String),
}

/// Checks and thumbnails an image already sniffed as png/jpeg/gif/webp. CPU-bound: call it
/// from a blocking task.
pub fn process(bytes: &[u8]) -> Result<Processed, ImageError> {
    let invalid = |e: &dyn std::fmt::Display| ImageError::Invalid(e.to_string());
    let reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| invalid(&e))?;
    if !matches!(
        reader.format(),
        Some(ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP)
    ) {
        return Err(ImageError::Invalid("not a png, jpeg, gif or webp image".into()));
    }
    let (width, height) = reader.into_dimensions().map_err(|e| invalid(&e))?;
    if width == 0
        || height == 0
        || width > MAX_SIDE
        || height > MAX_SIDE
        || u64::from(width) * u64::from(height) > MAX_PIXELS
    {
        return Err(ImageError::TooManyPixels { width, height });
    }
    let mut reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| invalid(&e))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 4 + 64 * 1024 * 1024);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| invalid(&e))?;
    let small = image.thumbnail(THUMB_SIDE, THUMB_SIDE);
    let (thumb, thumb_mime) = encode(small).map_err(|e| invalid(&e))?;
    Ok(Processed { width, height, thumb, thumb_mime })
}

fn encode(image: DynamicImage) -> image::ImageResult<(Vec<u8>, &'static str)> {
    let mut out = Cursor::new(Vec::new());
    if image.color().has_alpha() {
        image.write_to(&mut out, ImageFormat::Png)?;
        Ok((out.into_inner(), "image/png"))
    } else {
        DynamicImage::ImageRgb8(image.to_rgb8()).write_to(&mut out, ImageFormat::Jpeg)?;
        Ok((out.into_inner(), "image/jpeg"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(image).write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn thumbnails_fit_the_square_and_keep_the_aspect() {
        let p = process(&png(1200, 600)).unwrap();
        assert_eq!((p.width, p.height, p.thumb_mime), (1200, 600, "image/jpeg"));
        let thumb = image::load_from_memory(&p.thumb).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 160));
    }

    #[test]
    fn garbage_after_a_valid_signature_is_an_invalid_image() {
        let mut broken = png(10, 10);
        broken.truncate(40);
        assert!(matches!(process(&broken), Err(ImageError::Invalid(_))));
    }
}
