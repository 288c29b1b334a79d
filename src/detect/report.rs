//! What `ticket detect` reports about a run over image files: per image its id, file, detections and latency,
//! and the settings that shaped the detections.
use super::pipeline::DetectParams;
use super::results::CocoResult;
use serde::Serialize;
use std::path::PathBuf;

/// The middle value of `v` (the upper one of an even count), 0 when empty: latencies are summarised by it.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

#[derive(Serialize)]
pub struct ImageRow {
    pub image_id: u64,
    pub file: PathBuf,
    pub detections: usize,
    pub latency_ms: f64,
}

#[derive(Serialize)]
pub struct DetectReport {
    pub model: PathBuf,
    pub output: PathBuf,
    pub images: Vec<ImageRow>,
    pub detections: usize,
    pub median_latency_ms: f64,
    pub min_size: usize,
    pub max_size: usize,
    pub score_thresh: f32,
}

impl DetectReport {
    /// The report of a run of `params` over `images` (`(image id, file)`), whose records and per-image latencies
    /// are `results` and `latency_ms`, written to `output`.
    pub fn new(
        model: PathBuf,
        output: PathBuf,
        params: &DetectParams,
        images: &[(u64, PathBuf)],
        results: &[CocoResult],
        latency_ms: &[f64],
    ) -> Self {
        let rows = images
            .iter()
            .zip(latency_ms)
            .map(|((id, p), l)| ImageRow {
                image_id: *id,
                file: p.clone(),
                detections: results.iter().filter(|r| r.image_id == *id).count(),
                latency_ms: *l,
            })
            .collect();
        DetectReport {
            model,
            output,
            images: rows,
            detections: results.len(),
            median_latency_ms: median(latency_ms),
            min_size: params.min_size,
            max_size: params.max_size,
            score_thresh: params.box_head.score_thresh,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_takes_the_upper_middle_and_zero_for_nothing() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 3.0);
    }
}
