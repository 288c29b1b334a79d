//! Detection over image files: decoding (through the bounded reader, `imaging::reader`), running the detector,
//! COCO records with the caller's image ids and the per-image latency. What `ticket detect`, `eval --model`,
//! `validate` and the lottery levels share.
use super::pipeline::{Detector, ImageDetections};
use super::results::{to_coco, CocoResult};
use crate::error::{Context, Error, Result};
use crate::imaging::reader::read_image;
use crate::progress::Progress;
use std::path::{Path, PathBuf};
use std::time::Instant;

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

/// The images of a folder (as [`folder_images`]) with ids 1.. in file-name order: a folder without annotations
/// as a COCO set's images.
pub fn numbered_images(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    Ok(folder_images(dir)?.into_iter().enumerate().map(|(i, p)| (i as u64 + 1, p)).collect())
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
