//! One training step's inputs from a batch on the canvas, as torchvision's training forward computes them:
//! RPN targets on the anchors, proposals from the current RPN (the forward of `graph::proposals` with the
//! session's parameters, then the detection code's filter with the training settings), RoI sampling with the
//! GT appended, RoIAlign taps, mask and keypoint targets. The sampler draws from a generator seeded by
//! `(seed, step)`, so a resumed run draws what the uninterrupted one would have.
use super::protocol::Tensor;
use super::targets::{
    keypoint_targets, mask_targets, rpn_targets, sample_rois_with, BalancedSampler, Permutations, RoiSample, SeededPermutations,
};
use crate::data::CanvasSample;
use crate::detect::anchors::AnchorGenerator;
use crate::detect::roi_align::MultiScaleRoIAlign;
use crate::detect::rpn::{filter_proposals, RpnLevel, RpnParams};
use crate::error::{Error, Result};
use crate::graph::train_core::TrainShape;
use crate::graph::train_shape::Pooling;
use crate::imaging::roi::{BOX_OUTPUT_SIZE, MASK_OUTPUT_SIZE, SAMPLING_RATIO};
use crate::imaging::{BoxXyxy, Hw};
use crate::model::{ArchSpec, ModelKind};
use ndarray::{concatenate, Array2, Array3, Array4, ArrayD, ArrayView4, Axis};

/// torchvision's training-time RPN filter: 2000 per level before NMS, 2000 kept.
pub fn train_rpn_params() -> RpnParams {
    RpnParams { pre_nms_top_n: 2000, post_nms_top_n: 2000, ..RpnParams::default() }
}

/// What the step builder needs of the model and the shape.
pub struct StepBuilder {
    shape: TrainShape,
    kind: ModelKind,
    /// Keypoints per object of a Keypoint R-CNN (an image without objects still needs this width).
    keypoints: usize,
    feature_hw: Vec<Hw>,
    anchors: Vec<Vec<BoxXyxy>>,
    all_anchors: Vec<BoxXyxy>,
    rpn: RpnParams,
    roi_sampler: BalancedSampler,
    box_pool: MultiScaleRoIAlign,
    head_pool: MultiScaleRoIAlign,
    seed: u64,
}

/// Counts of one step, for the log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepStats {
    pub proposals: usize,
    pub positive_rois: usize,
    /// Seconds in the teacher's forward (a distilling run).
    pub teacher_s: f64,
}

/// The per-image pieces before they are stacked.
struct ImageRows {
    rpn_labels: Vec<f32>,
    rpn_targets: Vec<[f32; 4]>,
    /// The box RoIAlign's inputs ([`pool_rows`]), named, each with the leading axis the batch stacks along.
    box_pool: Vec<(String, Tensor)>,
    roi_labels: Vec<i64>,
    roi_targets: Vec<[f32; 4]>,
    roi_weights: Vec<f32>,
    /// The mask or keypoint head's RoIAlign inputs and targets, named as `box_pool`.
    head: Vec<(String, Tensor)>,
    positives: usize,
}

impl StepBuilder {
    pub fn new(arch: &ArchSpec, shape: &TrainShape, feature_hw: &[Hw], seed: u64) -> Result<Self> {
        let kind = arch.kind;
        let canvas = (shape.height, shape.width);
        let anchors = AnchorGenerator::fpn().anchors(canvas, feature_hw)?;
        let head_rows = match kind {
            ModelKind::MaskRcnn => shape.mask_rois_per_image,
            ModelKind::KeypointRcnn => shape.keypoint_rois_per_image,
            _ => usize::MAX,
        };
        // The heads take every positive RoI; the sampler may pick at most ⌊R · 0.25⌋ of them.
        let roi_sampler = BalancedSampler { batch_size_per_image: shape.rois_per_image, positive_fraction: 0.25 };
        let max_pos = (shape.rois_per_image as f64 * roi_sampler.positive_fraction) as usize;
        if head_rows < max_pos {
            return Err(Error::Input(format!(
                "training shape: the head takes {head_rows} RoIs per image but up to {max_pos} of the {} box RoIs can be positive",
                shape.rois_per_image
            )));
        }
        Ok(StepBuilder {
            shape: shape.clone(),
            kind,
            keypoints: arch.num_keypoints.unwrap_or(0),
            feature_hw: feature_hw.to_vec(),
            all_anchors: anchors.concat(),
            anchors,
            rpn: train_rpn_params(),
            roi_sampler,
            box_pool: MultiScaleRoIAlign::new(&feature_hw[..4], canvas, BOX_OUTPUT_SIZE, SAMPLING_RATIO)?,
            head_pool: MultiScaleRoIAlign::new(&feature_hw[..4], canvas, MASK_OUTPUT_SIZE, SAMPLING_RATIO)?,
            seed,
        })
    }

    /// The batch's images, `[B, 3, H, W]`: what the RPN forward and the training core take.
    pub fn images(&self, batch: &[CanvasSample]) -> Result<Tensor> {
        let (h, w) = (self.shape.height, self.shape.width);
        if batch.len() != self.shape.batch {
            return Err(Error::Input(format!("a step takes {} images, got {}", self.shape.batch, batch.len())));
        }
        let mut out = Array4::<f32>::zeros((batch.len(), 3, h, w));
        for (i, s) in batch.iter().enumerate() {
            if s.image.dim() != (3, h, w) {
                return Err(Error::Input(format!(
                    "image {} is {:?} on the canvas, the step expects [3, {h}, {w}]",
                    s.image_id,
                    s.image.dim()
                )));
            }
            out.index_axis_mut(Axis(0), i).assign(&s.image);
        }
        Ok(Tensor::F32(out.into_dyn()))
    }

    /// Every input of the training core for step `step`, in the core's order, from the batch, its images
    /// (`images`) and the RPN forward's outputs (`objectness_{l}`, `deltas_{l}`) on them.
    pub fn inputs(
        &self,
        step: u64,
        batch: &[CanvasSample],
        images: Tensor,
        rpn: &[(String, Tensor)],
    ) -> Result<(Vec<(String, Tensor)>, StepStats)> {
        let mut perms = SeededPermutations::new(self.seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17));
        let levels = self.rpn_levels(rpn)?;
        let mut stats = StepStats::default();
        let mut rows = Vec::with_capacity(batch.len());
        for (b, sample) in batch.iter().enumerate() {
            let level_views: Vec<RpnLevel> =
                levels.iter().map(|(o, d)| RpnLevel { objectness: o.index_axis(Axis(0), b), deltas: d.index_axis(Axis(0), b) }).collect();
            let proposals = filter_proposals(&level_views, &self.anchors, sample.resized_hw, &self.rpn)?;
            stats.proposals += proposals.boxes.len();
            let r = self.image_rows(b, sample, &proposals.boxes, &mut perms)?;
            stats.positive_rois += r.positives;
            rows.push(r);
        }
        Ok((self.stack(images, rows)?, stats))
    }

    fn rpn_levels<'a>(&self, rpn: &'a [(String, Tensor)]) -> Result<Vec<(ArrayView4<'a, f32>, ArrayView4<'a, f32>)>> {
        let get = |name: String| -> Result<ArrayView4<'a, f32>> {
            rpn.iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, t)| t.as_f32())
                .and_then(|a| a.view().into_dimensionality().ok())
                .ok_or_else(|| Error::Runtime(format!("RPN forward: output '{name}' is missing or not a 4-d float tensor")))
        };
        (0..self.feature_hw.len()).map(|l| Ok((get(format!("objectness_{l}"))?, get(format!("deltas_{l}"))?))).collect()
    }

    fn image_rows(&self, b: usize, s: &CanvasSample, proposals: &[BoxXyxy], perms: &mut dyn Permutations) -> Result<ImageRows> {
        let labels: Vec<i64> = s.labels.iter().map(|&l| l as i64).collect();
        let rpn = rpn_targets(&self.all_anchors, &s.boxes, perms)?;
        let rois = sample_rois_with(&self.roi_sampler, proposals, &s.boxes, &labels, perms)?;
        let padded = rois.padded(self.shape.rois_per_image)?;
        let box_pool = pool_rows(&self.box_pool, &self.shape, "box", &padded.boxes, b)?;
        let head = self.head_rows(b, s, &rois)?;
        Ok(ImageRows {
            rpn_labels: rpn.labels,
            rpn_targets: rpn.bbox_targets,
            box_pool,
            roi_labels: padded.labels,
            roi_targets: padded.bbox_targets,
            roi_weights: padded.weights,
            head,
            positives: rois.positive().len(),
        })
    }

    fn head_rows(&self, b: usize, s: &CanvasSample, rois: &RoiSample) -> Result<Vec<(String, Tensor)>> {
        let missing = |what: &str| Error::Input(format!("image {}: a {:?} needs {what} in the annotations", s.image_id, self.kind));
        match self.kind {
            ModelKind::MaskRcnn => {
                let masks = s.masks.as_ref().ok_or_else(|| missing("instance masks"))?;
                let (boxes, labels, targets, weights) = mask_targets(rois, masks.view())?.padded(self.shape.mask_rois_per_image)?;
                let mut rows = pool_rows(&self.head_pool, &self.shape, "mask", &boxes, b)?;
                rows.extend([
                    ("mask_labels".into(), Tensor::I64(ndarray::Array1::from(labels).into_dyn())),
                    ("mask_targets".into(), Tensor::F32(targets.into_dyn())),
                    ("mask_weights".into(), Tensor::F32(ndarray::Array1::from(weights).into_dyn())),
                ]);
                Ok(rows)
            }
            ModelKind::KeypointRcnn => {
                let kps = s.keypoints.as_ref().ok_or_else(|| missing("keypoints"))?;
                let k = self.keypoints;
                let flat: Vec<f32> = kps.iter().flat_map(|o| o.iter().flat_map(|p| p.iter().copied())).collect();
                let gt =
                    Array3::from_shape_vec((kps.len(), k, 3), flat).map_err(|_| missing("the same keypoint count for every object"))?;
                let (boxes, targets, valid) = keypoint_targets(rois, gt.view())?.padded(self.shape.keypoint_rois_per_image)?;
                let mut rows = pool_rows(&self.head_pool, &self.shape, "kp", &boxes, b)?;
                rows.extend([("kp_targets".into(), Tensor::I64(targets.into_dyn())), ("kp_valid".into(), Tensor::F32(valid.into_dyn()))]);
                Ok(rows)
            }
            _ => Ok(vec![]),
        }
    }

    /// Image-major stacking in the training core's input order.
    fn stack(&self, images: Tensor, rows: Vec<ImageRows>) -> Result<Vec<(String, Tensor)>> {
        let bsz = rows.len();
        let a = self.all_anchors.len();
        let boxes4 =
            |v: Vec<[f32; 4]>| -> Array2<f32> { Array2::from_shape_vec((v.len(), 4), v.into_iter().flatten().collect()).expect("n×4") };
        let rpn_labels = Array2::from_shape_vec((bsz, a), rows.iter().flat_map(|r| r.rpn_labels.iter().copied()).collect()).expect("B×A");
        let rpn_targets =
            boxes4(rows.iter().flat_map(|r| r.rpn_targets.iter().copied()).collect()).into_shape_with_order((bsz, a, 4)).expect("B×A×4");
        let mut out = vec![
            ("images".to_string(), images),
            ("rpn_labels".into(), Tensor::F32(rpn_labels.into_dyn())),
            ("rpn_bbox_targets".into(), Tensor::F32(rpn_targets.into_dyn())),
        ];
        out.extend(stack_images(&rows.iter().map(|r| r.box_pool.as_slice()).collect::<Vec<_>>())?);
        out.extend([
            (
                "roi_labels".into(),
                Tensor::I64(ndarray::Array1::from(rows.iter().flat_map(|r| r.roi_labels.iter().copied()).collect::<Vec<_>>()).into_dyn()),
            ),
            ("roi_bbox_targets".into(), Tensor::F32(boxes4(rows.iter().flat_map(|r| r.roi_targets.iter().copied()).collect()).into_dyn())),
            (
                "roi_weights".into(),
                Tensor::F32(ndarray::Array1::from(rows.iter().flat_map(|r| r.roi_weights.iter().copied()).collect::<Vec<_>>()).into_dyn()),
            ),
        ]);
        out.extend(stack_images(&rows.iter().map(|r| r.head.as_slice()).collect::<Vec<_>>())?);
        Ok(out)
    }
}

/// The images' named tensors (the same names in the same order for every image) concatenated along axis 0.
pub fn stack_images(images: &[&[(String, Tensor)]]) -> Result<Vec<(String, Tensor)>> {
    let Some(first) = images.first() else { return Ok(vec![]) };
    let mut out = Vec::new();
    for (k, (name, t)) in first.iter().enumerate() {
        let t = match t {
            Tensor::F32(_) => Tensor::F32(cat_dyn(images.iter().map(|r| r[k].1.as_f32().expect("same type").view()).collect())?),
            Tensor::I64(_) => Tensor::I64(cat_dyn(images.iter().map(|r| r[k].1.as_i64().expect("same type").view()).collect())?),
        };
        out.push((name.clone(), t));
    }
    Ok(out)
}

/// One image's RoIAlign inputs for `boxes` (image `image` of the batch), named as [`TrainShape::pool_inputs`]
/// names them for `prefix`, each with the leading axis the batch stacks along.
pub fn pool_rows(
    pooler: &MultiScaleRoIAlign,
    shape: &TrainShape,
    prefix: &str,
    boxes: &[BoxXyxy],
    image: usize,
) -> Result<Vec<(String, Tensor)>> {
    Ok(match shape.pooling() {
        Pooling::Taps => {
            let taps = pooler.taps(boxes, image, shape.batch)?;
            vec![
                (format!("{prefix}_idx"), Tensor::I64(taps.index.into_dyn())),
                (format!("{prefix}_w"), Tensor::F32(taps.weight.into_dyn())),
            ]
        }
        Pooling::Planes => {
            let planes = pooler.planes(boxes);
            let per_level = planes.wy.into_iter().zip(planes.wx).enumerate();
            per_level
                .flat_map(|(l, (wy, wx))| {
                    [
                        (format!("{prefix}_wy{l}"), Tensor::F32(wy.insert_axis(Axis(0)).into_dyn())),
                        (format!("{prefix}_wx{l}"), Tensor::F32(wx.insert_axis(Axis(1)).into_dyn())),
                    ]
                })
                .collect()
        }
    })
}

fn cat_dyn<T: Clone>(parts: Vec<ndarray::ArrayViewD<T>>) -> Result<ArrayD<T>> {
    concatenate(Axis(0), &parts).map_err(|e| Error::Runtime(format!("stacking step inputs: {e}")))
}
