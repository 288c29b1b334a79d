//! Classifier scores: top-1 accuracy on a classification set, the classifier emitted from the network
//! description (`graph::classify::inference_graph`) and run in tract, one image at a time.
use crate::data::ClassifyDataset;
use crate::error::Result;
use crate::model::ModelState;
use crate::runtime::tract_stage::TractStage;
use serde::Serialize;
use std::time::Instant;

#[derive(Clone, Debug, Serialize)]
pub struct ClassifyReport {
    pub images: usize,
    pub correct: usize,
    /// Fraction of images whose highest logit is their class.
    pub top1: f64,
    /// `(category, images, top-1 on them)`.
    pub per_category: Vec<(String, usize, Option<f64>)>,
    /// Median tract latency per image.
    pub latency_ms: f64,
    /// The side images were resized to.
    pub side: usize,
}

/// Top-1 accuracy of `state` (masks applied) on `data`, images resized to `side`.
pub fn top1(state: &ModelState, data: &ClassifyDataset, side: usize, bar: &indicatif::ProgressBar) -> Result<ClassifyReport> {
    crate::data::check_classify_classes(state, data)?;
    let stage = TractStage::new("classifier", &crate::graph::classify::inference_graph(state, 1, side)?)?;
    let k = data.categories.len();
    let (mut hits, mut seen) = (vec![0usize; k], vec![0usize; k]);
    let mut latency = Vec::with_capacity(data.len());
    for i in 0..data.len() {
        let (image, label) = data.sample(i, side)?;
        let t = Instant::now();
        let out = stage.run(vec![image.insert_axis(ndarray::Axis(0)).into_dyn()])?;
        latency.push(t.elapsed().as_secs_f64() * 1e3);
        let logits = &out[0].1;
        // The first of equal maxima, as torch's argmax.
        let best = logits.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (j, &v)| if v > bv { (j, v) } else { (bi, bv) }).0;
        seen[label] += 1;
        hits[label] += (best == label) as usize;
        bar.inc(1);
    }
    let correct = hits.iter().sum();
    Ok(ClassifyReport {
        images: data.len(),
        correct,
        top1: correct as f64 / data.len().max(1) as f64,
        per_category: data
            .categories
            .iter()
            .zip(hits.iter().zip(&seen))
            .map(|(c, (&h, &n))| (c.clone(), n, (n > 0).then(|| h as f64 / n as f64)))
            .collect(),
        latency_ms: crate::eval::model::median(&latency),
        side,
    })
}
