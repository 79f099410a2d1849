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

/// Megapixels decoded at once across the process (each decode holds its size's worth, about
/// 4 MB of memory per megapixel): a burst of large images queues instead of piling up.
pub const DECODE_BUDGET_MEGAPIXELS: u32 = 64;

static DECODE_BUDGET: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(DECODE_BUDGET_MEGAPIXELS as usize));

fn invalid(e: &dyn std::fmt::Display) -> ImageError {
    ImageError::Invalid(e.to_string())
}

/// An image's width and height, read from its header alone (nothing is decoded), refused
/// when they are beyond [`MAX_SIDE`] or [`MAX_PIXELS`].
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
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
    Ok((width, height))
}

/// Checks and thumbnails an image already sniffed as png/jpeg/gif/webp: its size from the
/// header first, then the decode, on a blocking thread, within the process's decode budget
/// (it waits for its share of [`DECODE_BUDGET_MEGAPIXELS`]).
pub async fn process_within_budget(bytes: bytes::Bytes) -> Result<Processed, ImageError> {
    let (width, height) = dimensions(&bytes)?;
    let megapixels = (u64::from(width) * u64::from(height)).div_ceil(1_000_000);
    let share = u32::try_from(megapixels).unwrap_or(u32::MAX).clamp(1, DECODE_BUDGET_MEGAPIXELS);
    let _permit = DECODE_BUDGET
        .acquire_many(share)
        .await
        .map_err(|_| ImageError::Invalid("the server is stopping".into()))?;
    tokio::task::spawn_blocking(move || process(&bytes))
        .await
        .map_err(|e| ImageError::Invalid(format!("the image could not be processed: {e}")))?
}

/// Checks and thumbnails an image already sniffed as png/jpeg/gif/webp. CPU-bound: call it
/// from a blocking task (or through [`process_within_budget`]).
pub fn process(bytes: &[u8]) -> Result<Processed, ImageError> {
    let (width, height) = dimensions(bytes)?;
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

    /// A decode waits for its share of the budget: while the whole budget is taken, a
    /// 40-megapixel image is not even started; once given back, it is decoded.
    #[tokio::test]
    async fn decodes_wait_for_their_share_of_the_budget() {
        let held = DECODE_BUDGET.acquire_many(DECODE_BUDGET_MEGAPIXELS).await.unwrap();
        let small = bytes::Bytes::from(png(64, 64));
        let waiting = tokio::spawn(process_within_budget(small));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "no decode while the budget is taken");
        drop(held);
        let done = waiting.await.unwrap().unwrap();
        assert_eq!((done.width, done.height), (64, 64));
        // The header alone refuses a bomb: nothing is decoded, no budget is waited for.
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&60_000u32.to_be_bytes());
        assert!(process_within_budget(bytes::Bytes::from(bomb)).await.is_err());
    }

    #[test]
    fn garbage_after_a_valid_signature_is_an_invalid_image() {
        let mut broken = png(10, 10);
        broken.truncate(40);
        assert!(matches!(process(&broken), Err(ImageError::Invalid(_))));
    }
}
