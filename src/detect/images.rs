//! Detection over image files: decoding, running the detector, COCO records with the caller's image ids and
//! the per-image latency. What `ticket detect`, `eval --model`, `validate` and the lottery levels share.
//!
//! Every image the tool reads (detection, evaluation, training and classification sets) goes through
//! [`read_image`] / [`image_size`]: regular files only (a FIFO named `x.png` fails instead of blocking), at most
//! [`MAX_IMAGE_FILE_BYTES`], and a size from the header checked against [`MAX_IMAGE_SIDE`] and
//! [`MAX_IMAGE_PIXELS`] before any pixel is allocated (a 445 kB PNG can declare 12000×12000).
use super::pipeline::{Detector, ImageDetections};
use super::results::{to_coco, CocoResult};
use crate::error::{Context, Error, Result};
use crate::progress::Progress;
use image::ImageDecoder;
use std::path::{Path, PathBuf};
use std::time::Instant;

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

/// Images of a folder, sorted by name (PNG and JPEG).
pub fn folder_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).at(dir)?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|x| x.to_str()).is_some_and(|x| matches!(x.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    out.sort();
    if out.is_empty() {
        return Err(Error::input(dir, "no PNG or JPEG images in this folder"));
    }
    Ok(out)
}

/// Runs the detector over `(image id, file)` pairs: COCO records with those ids and the latency of each image
/// (decoding excluded). `each` sees every image with its detections (drawing them, for one).
pub fn detect_images(
    det: &mut Detector,
    images: &[(u64, PathBuf)],
    on: &mut dyn FnMut(Progress),
    mut each: impl FnMut(&Path, &image::RgbImage, &ImageDetections) -> Result<()>,
) -> Result<(Vec<CocoResult>, Vec<f64>)> {
    on(Progress::Total(images.len() as u64));
    let mut results = Vec::new();
    let mut latency_ms = Vec::with_capacity(images.len());
    for (id, path) in images {
        let img = read_image(path)?;
        let t = Instant::now();
        let dets = det.detect_rgb(&img).map_err(|e| match e {
            Error::Input(m) => Error::input(path, m),
            other => other,
        })?;
        latency_ms.push(t.elapsed().as_secs_f64() * 1e3);
        results.extend(to_coco(&dets, *id)?);
        each(path, &img, &dets)?;
        on(Progress::Step);
    }
    on(Progress::Done);
    Ok((results, latency_ms))
}
