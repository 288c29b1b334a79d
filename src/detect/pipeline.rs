//! The detector on CPU: tract runs the emitted stage graphs, Rust does everything between them, in
//! torchvision's eval order. Stage plans are built once per canvas size (stage 1) or once (heads, on a fixed,
//! zero-padded RoI count), since tract is fastest with concrete shapes.
use super::anchors::AnchorGenerator;
use super::postprocess::{postprocess_detections, BoxHeadParams};
use super::roi_align::{ChannelLast, MultiScaleRoIAlign};
use super::rpn::{filter_proposals, RpnLevel, RpnParams};
use crate::error::{Error, Result};
use crate::graph::stages;
use crate::imaging::roi::{BOX_OUTPUT_SIZE, MASK_OUTPUT_SIZE, SAMPLING_RATIO};
use crate::imaging::{transform, BoxXyxy, Hw};
use crate::model::{ModelKind, ModelState};
use crate::runtime::tract_stage::TractStage;
use crate::sparse::Kernels;
use ndarray::{s, Array2, Array3, ArrayD, ArrayView3, Axis, Ix4};
use stages::Inference;
use std::collections::HashMap;

/// Eval settings; defaults are torchvision's.
#[derive(Clone, Debug)]
pub struct DetectParams {
    pub min_size: usize,
    pub max_size: usize,
    pub rpn: RpnParams,
    pub box_head: BoxHeadParams,
    /// Dense or sparse kernels per layer (sparse ones skip the zero weights of unstructured tickets).
    pub kernels: Kernels,
}

impl Default for DetectParams {
    fn default() -> Self {
        DetectParams {
            min_size: 800,
            max_size: 1333,
            rpn: RpnParams::default(),
            box_head: BoxHeadParams::default(),
            kernels: Kernels::Auto,
        }
    }
}

impl DetectParams {
    /// Refuses thresholds outside [0, 1] (NaN included) and sizes or counts that leave nothing to detect.
    pub fn check(&self) -> Result<()> {
        let (score, nms) = (self.box_head.score_thresh, self.box_head.nms_thresh);
        // NaN compares false both ways: it would keep every candidate or none without a word.
        if !((0.0..=1.0).contains(&score) && (0.0..=1.0).contains(&nms)) {
            return Err(Error::setting(
                "score_thresh",
                format!("`score_thresh` {score} / `nms_thresh` {nms} (as given, or read from the model's graph) must be numbers in [0, 1]"),
            ));
        }
        if self.min_size == 0 || self.max_size < self.min_size || self.box_head.detections_per_img == 0 || self.rpn.post_nms_top_n == 0 {
            return Err(Error::Input(format!(
                "detection settings out of range: min_size {}, max_size {}, detections_per_img {}, rpn_post_nms_top_n {}",
                self.min_size, self.max_size, self.box_head.detections_per_img, self.rpn.post_nms_top_n
            )));
        }
        Ok(())
    }
}

/// One image's detections in original-image pixels, best first.
#[derive(Clone, Debug, Default)]
pub struct ImageDetections {
    pub boxes: Vec<BoxXyxy>,
    pub scores: Vec<f32>,
    pub labels: Vec<i64>,
    /// Mask probabilities of each detection's class in its box, [N, M, M] (Mask R-CNN), not yet pasted into
    /// the image: see [`ImageDetections::pasted_mask`].
    pub mask_probs: Option<Array3<f32>>,
    /// [N, K, 3] x, y, visibility (Keypoint R-CNN).
    pub keypoints: Option<Array3<f32>>,
    pub keypoint_scores: Option<Array2<f32>>,
    /// `(height, width)` of the image, which masks are pasted into.
    pub image_hw: Hw,
}

impl ImageDetections {
    /// Detection `i`'s mask pasted into the image as torchvision's `paste_masks_in_image` does, kept only
    /// where it can be non-zero (its expanded box inside the image); `None` without masks.
    pub fn pasted_mask(&self, i: usize) -> Option<super::paste::PastedMask> {
        let probs = self.mask_probs.as_ref().filter(|m| i < m.dim().0 && i < self.boxes.len())?;
        Some(super::paste::paste_mask_cropped(probs.index_axis(Axis(0), i), self.boxes[i], self.image_hw))
    }
}

/// The detector's stages and settings. Its matrix products run on tract's process-wide executor, which the
/// command sets once (`runtime::tract_stage::set_threads`); without that, tract runs them on one thread.
pub struct Detector {
    state: ModelState,
    pub params: DetectParams,
    backbone: HashMap<Hw, TractStage>,
    box_stage: TractStage,
    mask_stage: Option<TractStage>,
    keypoint_stage: Option<TractStage>,
    /// Layers the kernel choice could not follow (shown to the user, not errors).
    pub notes: Vec<String>,
    /// Weights of the layers running on sparse kernels (stage 1's known after the first image).
    pub sparse_layers: Vec<String>,
    /// Where the last image's time went.
    pub last_times: StageTimes,
}

/// Milliseconds per tract stage of one image, the rest being Rust (transform, proposals, RoIAlign, decoding).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct StageTimes {
    pub backbone_rpn_ms: f64,
    pub box_head_ms: f64,
    /// Mask or keypoint head.
    pub head_ms: f64,
    pub total_ms: f64,
}

/// The pooled features of `boxes` as a stage's input: its fixed RoI count of rows (zero past the boxes), the
/// RoIs split over the stages' threads.
fn pool_for_stage(pool: &MultiScaleRoIAlign, levels: &ChannelLast, boxes: &[BoxXyxy], rows: usize) -> Result<ArrayD<f32>> {
    let boxes = &boxes[..boxes.len().min(rows)];
    Ok(pool.pool_rows(levels, boxes, rows, crate::runtime::tract_stage::threads())?.into_dyn())
}

fn take<'a>(outs: &'a [(String, ArrayD<f32>)], name: &str) -> Result<&'a ArrayD<f32>> {
    outs.iter().find(|(n, _)| n == name).map(|(_, a)| a).ok_or_else(|| Error::Runtime(format!("stage output '{name}' is missing")))
}

fn dims<'a, D: ndarray::Dimension>(a: &'a ArrayD<f32>, what: &str) -> Result<ndarray::ArrayView<'a, f32, D>> {
    a.view().into_dimensionality::<D>().map_err(|e| Error::Runtime(format!("stage output {what}: {e}")))
}

impl Detector {
    pub fn new(state: ModelState, params: DetectParams) -> Result<Self> {
        if !state.arch.kind.is_detector() {
            return Err(Error::input(state.path(), format!("is a {}, not a two-stage detector", state.arch.kind.label())));
        }
        let mut p = Inference::new(&state, params.kernels);
        let box_stage = TractStage::new("box head", &stages::box_stage_with(&mut p, params.rpn.post_nms_top_n)?)?;
        let rois = params.box_head.detections_per_img;
        let mask_stage = match state.arch.kind {
            ModelKind::MaskRcnn => Some(TractStage::new("mask head", &stages::mask_stage_with(&mut p, rois)?)?),
            _ => None,
        };
        let keypoint_stage = match state.arch.kind {
            ModelKind::KeypointRcnn => Some(TractStage::new("keypoint head", &stages::keypoint_stage_with(&mut p, rois)?)?),
            _ => None,
        };
        let (notes, sparse_layers) = (p.notes, p.sparse_layers);
        Ok(Detector {
            state,
            params,
            backbone: HashMap::new(),
            box_stage,
            mask_stage,
            keypoint_stage,
            notes,
            sparse_layers,
            last_times: StageTimes::default(),
        })
    }

    pub fn state(&self) -> &ModelState {
        &self.state
    }

    /// Detects on an RGB image.
    pub fn detect_rgb(&mut self, img: &image::RgbImage) -> Result<ImageDetections> {
        let t = transform::transform_rgb(img, self.params.min_size, self.params.max_size)?;
        self.detect_transformed(t)
    }

    /// Detects on a [3, H, W] image with values in [0, 1], as torchvision's detectors take it.
    pub fn detect(&mut self, image: ArrayView3<f32>) -> Result<ImageDetections> {
        let t = transform::transform_chw(image, self.params.min_size, self.params.max_size)?;
        self.detect_transformed(t)
    }

    /// Stage times (`last_times`) count from here: the resize and normalise before it are not a stage.
    fn detect_transformed(&mut self, t: transform::Transformed) -> Result<ImageDetections> {
        let start = std::time::Instant::now();
        let ms = |s: std::time::Instant| s.elapsed().as_secs_f64() * 1e3;
        let mut times = StageTimes::default();
        let canvas: Hw = (t.image.dim().1, t.image.dim().2);
        if !self.backbone.contains_key(&canvas) {
            let mut p = Inference::new(&self.state, self.params.kernels);
            let g = stages::backbone_rpn_with(&mut p, canvas.0, canvas.1)?;
            if self.backbone.is_empty() {
                // Stage 1 is built at the first image of each canvas size; its choices are the same for all.
                self.notes.extend(p.notes);
                self.sparse_layers.extend(p.sparse_layers);
            }
            self.backbone.insert(canvas, TractStage::new("backbone+RPN", &g)?);
        }
        let input = t.image.clone().insert_axis(Axis(0)).into_dyn();
        let s1 = std::time::Instant::now();
        let outs = self.backbone[&canvas].run(vec![input])?;
        times.backbone_rpn_ms = ms(s1);

        let mut feats = Vec::new();
        let mut levels = Vec::new();
        for l in 0..stages::LEVELS {
            feats.push(dims::<Ix4>(take(&outs, &format!("feat_{l}"))?, "features")?.index_axis_move(Axis(0), 0));
            levels.push(RpnLevel {
                objectness: dims::<Ix4>(take(&outs, &format!("objectness_{l}"))?, "objectness")?.index_axis_move(Axis(0), 0),
                deltas: dims::<Ix4>(take(&outs, &format!("deltas_{l}"))?, "deltas")?.index_axis_move(Axis(0), 0),
            });
        }
        let feature_hw: Vec<Hw> = feats.iter().map(|f| (f.dim().1, f.dim().2)).collect();
        let anchors = AnchorGenerator::fpn().anchors(canvas, &feature_hw)?;
        let proposals = filter_proposals(&levels, &anchors, t.resized_hw, &self.params.rpn)?;

        // MultiScaleRoIAlign pools from P2..P5 (not the pool level); the box and mask/keypoint heads pool the
        // same maps, laid out channel-last once.
        let pooled_levels = ChannelLast::new(&feats[..4])?;
        let box_pool = MultiScaleRoIAlign::new(&feature_hw[..4], t.resized_hw, BOX_OUTPUT_SIZE, SAMPLING_RATIO)?;
        let n = proposals.boxes.len();
        let pooled = pool_for_stage(&box_pool, &pooled_levels, &proposals.boxes, self.params.rpn.post_nms_top_n)?;
        let s2 = std::time::Instant::now();
        let head = self.box_stage.run(vec![pooled])?;
        times.box_head_ms = ms(s2);
        let logits = dims::<ndarray::Ix2>(take(&head, "class_logits")?, "class logits")?;
        let deltas = dims::<ndarray::Ix2>(take(&head, "box_deltas")?, "box deltas")?;
        let dets = postprocess_detections(
            logits.slice(s![..n, ..]),
            deltas.slice(s![..n, ..]),
            &proposals.boxes,
            t.resized_hw,
            &self.params.box_head,
        )?;

        let original_boxes = transform::rescale_boxes(&dets.boxes, t.resized_hw, t.original_hw);
        let mut out = ImageDetections {
            boxes: original_boxes,
            scores: dets.scores.clone(),
            labels: dets.labels.clone(),
            image_hw: t.original_hw,
            ..Default::default()
        };
        self.run_heads(&mut out, &dets.boxes, &dets.labels, &pooled_levels, &t, &mut times)?;
        times.total_ms = ms(start);
        self.last_times = times;
        Ok(out)
    }

    /// The mask or keypoint head on the detections `boxes` (resized-image pixels) with their `labels`, pooled
    /// from P2..P5, into `out` (keypoints in original-image pixels); its time into `times.head_ms`.
    fn run_heads(
        &self,
        out: &mut ImageDetections,
        boxes: &[BoxXyxy],
        labels: &[i64],
        pooled_levels: &ChannelLast,
        t: &transform::Transformed,
        times: &mut StageTimes,
    ) -> Result<()> {
        let ms = |s: std::time::Instant| s.elapsed().as_secs_f64() * 1e3;
        let m = boxes.len();
        let rois = self.params.box_head.detections_per_img;
        let feature_hw: Vec<Hw> = pooled_levels.hw().collect();
        let head_pool = MultiScaleRoIAlign::new(&feature_hw, t.resized_hw, MASK_OUTPUT_SIZE, SAMPLING_RATIO)?;

        if let Some(stage) = &self.mask_stage {
            let probs = if m == 0 {
                Array3::<f32>::zeros((0, 28, 28))
            } else {
                let pooled = pool_for_stage(&head_pool, pooled_levels, boxes, rois)?;
                let s3 = std::time::Instant::now();
                let outs = stage.run(vec![pooled])?;
                times.head_ms = ms(s3);
                let logits = dims::<Ix4>(take(&outs, "mask_logits")?, "mask logits")?;
                let (_, _, mh, mw) = logits.dim();
                let mut probs = Array3::<f32>::zeros((m, mh, mw));
                for (i, &label) in labels.iter().enumerate() {
                    probs.index_axis_mut(Axis(0), i).assign(&logits.slice(s![i, label as usize, .., ..]).mapv(super::rpn::sigmoid));
                }
                probs
            };
            // Pasted one detection at a time where they are used (`ImageDetections::pasted_mask`): 100 pasted
            // masks of a 12-megapixel photo would take 4.8 GB.
            out.mask_probs = Some(probs);
        }
        if let Some(stage) = &self.keypoint_stage {
            let k = self.state.arch.num_keypoints.unwrap_or(17);
            let (points, scores) = if m == 0 {
                (Array3::<f32>::zeros((0, k, 3)), Array2::<f32>::zeros((0, k)))
            } else {
                let pooled = pool_for_stage(&head_pool, pooled_levels, boxes, rois)?;
                let s3 = std::time::Instant::now();
                let outs = stage.run(vec![pooled])?;
                times.head_ms = ms(s3);
                let maps = dims::<Ix4>(take(&outs, "heatmaps")?, "heatmaps")?;
                let kp = super::keypoints::heatmaps_to_keypoints(maps.slice(s![..m, .., .., ..]), boxes)?;
                let mut points = kp.points;
                for mut row in points.outer_iter_mut() {
                    let flat: Vec<[f32; 3]> = row.outer_iter().map(|p| [p[0], p[1], p[2]]).collect();
                    for (j, p) in transform::rescale_keypoints(&flat, t.resized_hw, t.original_hw).into_iter().enumerate() {
                        row.slice_mut(s![j, ..]).assign(&ndarray::arr1(&p));
                    }
                }
                (points, kp.scores)
            };
            out.keypoints = Some(points);
            out.keypoint_scores = Some(scores);
        }
        Ok(())
    }
}

impl DetectParams {
    /// The settings baked into a torchvision export, where its graph shows them: `min_size` and `max_size`
    /// are the constants multiplied with the reciprocals of the image's short and long side in
    /// `/transform/Mul`, `/transform/Mul_1`; `box_score_thresh` is the constant of the first `/roi_heads/Greater`.
    /// Anything not found keeps torchvision's default.
    pub fn from_model(state: &ModelState) -> Self {
        use crate::onnx::proto::AttributeProto;
        let graph = state.source.graph();
        let scalar = |a: &AttributeProto| {
            a.t.as_ref().and_then(|t| crate::onnx::tensor::f32_values(t, t.raw_data.as_deref()).ok()).filter(|v| v.len() == 1).map(|v| v[0])
        };
        let mut consts: HashMap<&str, f32> = HashMap::new();
        let mut producer: HashMap<&str, &str> = HashMap::new();
        for n in &graph.node {
            for o in &n.output {
                producer.insert(o, n.op_type());
            }
            if n.op_type() == "Constant" {
                if let (Some(o), Some(v)) = (n.output.first(), n.attribute.iter().find_map(scalar)) {
                    consts.insert(o, v);
                }
            }
        }
        let const_input = |name: &str, from: Option<&str>| {
            let n = graph.node.iter().find(|n| n.name() == name)?;
            if let Some(op) = from {
                if !n.input.iter().any(|i| producer.get(i.as_str()) == Some(&op)) {
                    return None;
                }
            }
            n.input.iter().find_map(|i| consts.get(i.as_str()).copied())
        };
        let mut p = DetectParams::default();
        if let (Some(min), Some(max)) =
            (const_input("/transform/Mul", Some("Reciprocal")), const_input("/transform/Mul_1", Some("Reciprocal")))
        {
            if min >= 1.0 && max >= min {
                p.min_size = min as usize;
                p.max_size = max as usize;
            }
        }
        if let Some(t) = const_input("/roi_heads/Greater", None) {
            p.box_head.score_thresh = t;
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_leave_nothing_to_detect_are_refused() {
        assert!(DetectParams::default().check().is_ok());
        let mut p = DetectParams::default();
        p.box_head.score_thresh = f32::NAN;
        assert!(p.check().unwrap_err().to_string().contains("must be numbers in [0, 1]"));
        let p = DetectParams { min_size: 900, max_size: 800, ..Default::default() };
        assert!(p.check().unwrap_err().to_string().contains("min_size 900, max_size 800"));
    }
}
