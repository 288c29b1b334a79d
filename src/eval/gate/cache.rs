//! The dense model's detections do not change between calls, so they need not be recomputed: they are read from
//! a results file, or kept in a cache with their latencies, keyed by what determines them — the dense model's and
//! every image's fingerprint and the detection settings. A stale cache (any of those changed) is recomputed and
//! rewritten, never trusted.
use super::{DetectRun, GateSettings};
use crate::detect::results::CocoResult;
use crate::error::{Error, Result};
use crate::fsio::fingerprint;
use crate::model::ModelState;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the cache holds; `key` says what the detections were computed from.
#[derive(Serialize, Deserialize)]
struct DenseCache {
    key: CacheKey,
    detections: Vec<CocoResult>,
    latency_ms: Vec<f64>,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct CacheKey {
    dense_fingerprint: String,
    /// (image id, file, fingerprint of its bytes).
    images: Vec<(u64, PathBuf, String)>,
    /// The detection settings in effect (DetectParams, debug form).
    settings: String,
}

/// The dense model's detections, their latencies when timed (here or in the cache), and where they came from.
pub struct DenseDetections {
    pub detections: Vec<CocoResult>,
    pub latency_ms: Option<Vec<f64>>,
    pub source: String,
}

/// Detections of the first run and the latencies of all `repeat` runs.
pub fn run_model(state: ModelState, images: &[(u64, PathBuf)], repeat: u32, detect: &mut DetectRun) -> Result<(Vec<CocoResult>, Vec<f64>)> {
    let params = (detect.params)(&state)?;
    let mut det = crate::detect::pipeline::Detector::new(state, params)?;
    let (results, mut latency) = (detect.run)(&mut det, images)?;
    for _ in 1..repeat {
        latency.extend((detect.run)(&mut det, images)?.1);
    }
    Ok((results, latency))
}

/// The dense model's detections (and latencies, when timed here): read, reused from the cache, or run.
pub fn dense_detections(s: &GateSettings, dense: ModelState, images: &[(u64, PathBuf)], detect: &mut DetectRun) -> Result<DenseDetections> {
    let num_classes = dense.arch.num_classes.unwrap_or(0);
    if let Some(file) = &s.dense_dets {
        let bytes = crate::fsio::read_limited(file, 4 << 30)?;
        let dets: Vec<CocoResult> =
            serde_json::from_slice(&bytes).map_err(|e| Error::input(file, format!("not a COCO results list: {e}")))?;
        check_dense_file(file, &dets, images, num_classes, None)?;
        return Ok(DenseDetections { detections: dets, latency_ms: None, source: format!("file {}", file.display()) });
    }
    let Some(cache) = &s.dense_cache else {
        let (detections, ms) = run_model(dense, images, s.repeat, detect)?;
        return Ok(DenseDetections { detections, latency_ms: Some(ms), source: "run".into() });
    };
    crate::fsio::ensure_distinct(cache, &[&s.dense, &s.candidate])?;
    let key = CacheKey {
        dense_fingerprint: fingerprint(&s.dense)?,
        images: images.iter().map(|(id, p)| Ok((*id, p.clone(), fingerprint(p)?))).collect::<Result<_>>()?,
        settings: format!("{:?}", (detect.params)(&dense)?),
    };
    let mut source = format!("cache {} (written)", cache.display());
    if cache.exists() {
        let bytes = crate::fsio::read_limited(cache, 4 << 30)?;
        let c: DenseCache = serde_json::from_slice(&bytes).map_err(|e| Error::input(cache, format!("not a validate dense cache: {e}")))?;
        if c.key == key {
            check_dense_file(cache, &c.detections, images, num_classes, Some(&c.latency_ms))?;
            let source = format!("cache {} (reused)", cache.display());
            return Ok(DenseDetections { detections: c.detections, latency_ms: Some(c.latency_ms), source });
        }
        source = format!("cache {} (stale: recomputed)", cache.display());
    }
    let (detections, latency_ms) = run_model(dense, images, s.repeat, detect)?;
    let c = DenseCache { key, detections, latency_ms };
    crate::fsio::write_atomic(cache, &serde_json::to_vec(&c).expect("serialisable"))?;
    Ok(DenseDetections { detections: c.detections, latency_ms: Some(c.latency_ms), source })
}

/// Dense detections read from `file` (a results file or the cache) must be of the validated images and the
/// model's classes, with finite scores and boxes; `latency_ms`, from the cache, must be finite timings.
fn check_dense_file(
    file: &Path,
    dets: &[CocoResult],
    images: &[(u64, PathBuf)],
    num_classes: usize,
    latency_ms: Option<&[f64]>,
) -> Result<()> {
    for (i, d) in dets.iter().enumerate() {
        if !images.iter().any(|(id, _)| *id == d.image_id) {
            return Err(Error::input(
                file,
                format!(
                    "image_id {} is none of the {} images validated (ids 1..N in file-name order, or the ground truth's)",
                    d.image_id,
                    images.len()
                ),
            ));
        }
        if d.category_id == 0 || d.category_id >= num_classes as u64 {
            return Err(Error::input(
                file,
                format!(
                    "detection {i}: category_id {} is not one of the model's labels 1..{}",
                    d.category_id,
                    num_classes.saturating_sub(1)
                ),
            ));
        }
        if !d.score.is_finite() || !d.bbox.iter().all(|v| v.is_finite()) {
            return Err(Error::input(file, format!("detection {i}: score or bbox is not finite")));
        }
    }
    if let Some(ms) = latency_ms {
        if ms.len() < images.len() || !ms.iter().all(|v| v.is_finite() && *v >= 0.0) {
            return Err(Error::input(
                file,
                format!("holds {} latencies for {} images, or one that is not a finite time", ms.len(), images.len()),
            ));
        }
    }
    Ok(())
}
