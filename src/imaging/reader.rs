//! The bounded image reader. Every image the tool reads (detection, evaluation, training and classification
//! sets) goes through [`read_image`] / [`image_size`]: regular files only (a FIFO named `x.png` fails instead of
//! blocking), at most [`MAX_IMAGE_FILE_BYTES`], and a size from the header checked against [`MAX_IMAGE_SIDE`] and
//! [`MAX_IMAGE_PIXELS`] before any pixel is allocated (a 445 kB PNG can declare 12000×12000).
use crate::error::{Context, Error, Result};
use image::ImageDecoder;
use std::path::Path;

/// Larger files are not photos (a 64-megapixel PNG of noise is ~200 MB).
pub const MAX_IMAGE_FILE_BYTES: u64 = 512 << 20;
/// Longest side accepted, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 16384;
/// Most pixels accepted (8192×8192): detection then needs at most ~3 bytes a pixel beyond the model (README,
/// "Memory").
pub const MAX_IMAGE_PIXELS: u64 = 8192 * 8192;

/// The header's `(width, height)` refused past the caps, with the numbers.
fn check_size(path: &Path, (w, h): (u32, u32)) -> Result<(u32, u32)> {
    let pixels = w as u64 * h as u64;
    if w == 0 || h == 0 {
        return Err(Error::input(path, format!("image is {w}x{h}: it has no pixels")));
    }
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE || pixels > MAX_IMAGE_PIXELS {
        return Err(Error::input(
            path,
            format!("image is {w}x{h} ({pixels} pixels); at most {MAX_IMAGE_SIDE} px a side and {MAX_IMAGE_PIXELS} pixels are read"),
        ));
    }
    Ok((w, h))
}

/// A decoder for `path` whose header size passed [`check_size`].
fn open_decoder(path: &Path) -> Result<impl ImageDecoder> {
    let (file, len) = crate::fsio::open_regular(path)?;
    if len > MAX_IMAGE_FILE_BYTES {
        return Err(Error::input(path, format!("{len} bytes is larger than the {MAX_IMAGE_FILE_BYTES} byte limit for an image")));
    }
    // The decoder reads only the header here; its size is checked below, with the numbers in the message (the
    // image crate's own allocation limit stays on as a second guard).
    let reader = image::ImageReader::new(std::io::BufReader::new(file)).with_guessed_format().at(path)?;
    let decoder = reader.into_decoder().context(path, "cannot decode the image")?;
    check_size(path, decoder.dimensions())?;
    Ok(decoder)
}

/// `(width, height)` from the image's header, bounded and checked as [`read_image`] would.
pub fn image_size(path: &Path) -> Result<(u32, u32)> {
    Ok(open_decoder(path)?.dimensions())
}

/// Decodes an image file as RGB (see the module's limits).
pub fn read_image(path: &Path) -> Result<image::RgbImage> {
    let decoder = open_decoder(path)?;
    let img = image::DynamicImage::from_decoder(decoder).context(path, "cannot decode the image")?;
    // No copy when the file is RGB already.
    Ok(img.into_rgb8())
}
