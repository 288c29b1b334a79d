//! Training targets for one image, as torchvision 0.23 builds them in training mode (docs/engine-facts.md: everything data
//! dependent happens in Rust, outside the training core):
//! - [`Matcher`] (`_utils.Matcher`) on [`box_iou`]: the RPN's 0.7/0.3 with low-quality matches, the box head's
//!   0.5/0.5 without;
//! - [`BalancedSampler`] (`BalancedPositiveNegativeSampler`): torchvision draws `torch.randperm`; here every
//!   permutation comes from a [`Permutations`] source — [`SeededPermutations`] in training, or
//!   [`RecordedPermutations`] holding torch's own draws so a test can check the same selection;
//! - [`rpn_targets`] (`assign_targets_to_anchors` + the RPN's BoxCoder (1,1,1,1) + sampling 256 at 0.5);
//! - [`sample_rois`] (`select_training_samples`: GT boxes appended, 0.5/0.5, sampling 512 at 0.25, BoxCoder
//!   (10,10,5,5));
//! - [`mask_targets`] (`project_masks_on_boxes`: RoIAlign of the GT mask, 28×28, scale 1, adaptive sampling) and
//!   [`keypoint_targets`] (`keypoints_to_heatmap`, 56×56) for the positive RoIs.
//!
//! All arithmetic is float32 in torchvision's operation order, so IoUs (and therefore matches, ties included)
//! are bit-identical; tests/train_targets.rs checks this against tools/targets_reference.py. Outputs are in the
//! training core's layout (src/graph/train_core.rs): rows in torchvision's order, with `padded` helpers that append
//! weight-0 rows up to a fixed count.
use crate::data::SeededRng;
use crate::detect::box_coder::BoxCoder;
use crate::error::{bad_input, Result};
use crate::imaging::boxes::box_area;
use crate::imaging::BoxXyxy;
use ndarray::{Array2, Array3, ArrayView2, ArrayView3};
use std::collections::VecDeque;

/// The Matcher's value for a prediction whose best IoU is below the low threshold.
pub const BELOW_LOW_THRESHOLD: i64 = -1;
/// The Matcher's value for a prediction whose best IoU lies in `[low, high)`.
pub const BETWEEN_THRESHOLDS: i64 = -2;
/// Side of the mask head's targets.
pub const MASK_TARGET_SIZE: usize = 28;
/// Side of the keypoint head's heatmaps.
pub const HEATMAP_SIZE: usize = 56;

/// `box_ops.box_iou(a, b)`: `[a.len(), b.len()]`, in float32 exactly as torchvision computes it.
pub fn box_iou(a: &[BoxXyxy], b: &[BoxXyxy]) -> Array2<f32> {
    let area_b: Vec<f32> = b.iter().map(|&x| box_area(x)).collect();
    let mut out = Array2::<f32>::zeros((a.len(), b.len()));
    for (i, &p) in a.iter().enumerate() {
        let area_a = box_area(p);
        for (j, &q) in b.iter().enumerate() {
            let w = (p[2].min(q[2]) - p[0].max(q[0])).max(0.0);
            let h = (p[3].min(q[3]) - p[1].max(q[1])).max(0.0);
            let inter = w * h;
            let union = area_a + area_b[j] - inter;
            out[[i, j]] = inter / union;
        }
    }
    out
}

/// torchvision's `Matcher`: for every prediction (column of the `[gt, pred]` quality matrix) the index of its
/// best ground truth, or [`BELOW_LOW_THRESHOLD`] / [`BETWEEN_THRESHOLDS`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Matcher {
    /// Compared in float32, as torch compares a float32 tensor with a Python float.
    pub high_threshold: f32,
    pub low_threshold: f32,
    pub allow_low_quality_matches: bool,
}

impl Matcher {
    /// The RPN's matcher: IoU ≥ 0.7 foreground, < 0.3 background, plus every best anchor of each GT.
    pub const RPN: Matcher = Matcher { high_threshold: 0.7, low_threshold: 0.3, allow_low_quality_matches: true };
    /// The box head's matcher: IoU ≥ 0.5 foreground, < 0.5 background.
    pub const ROI_HEADS: Matcher = Matcher { high_threshold: 0.5, low_threshold: 0.5, allow_low_quality_matches: false };

    /// A checked matcher (`low ≤ high`, as torchvision asserts).
    pub fn new(high_threshold: f32, low_threshold: f32, allow_low_quality_matches: bool) -> Result<Self> {
        if !(low_threshold <= high_threshold) {
            return Err(bad_input(format!("matcher: low threshold {low_threshold} must be ≤ high threshold {high_threshold}")));
        }
        Ok(Matcher { high_threshold, low_threshold, allow_low_quality_matches })
    }

    /// Matches of every prediction. Like torchvision, an empty matrix is an error (images without GT take
    /// another path in [`rpn_targets`] and [`sample_rois`]).
    pub fn matches(&self, quality: ArrayView2<f32>) -> Result<Vec<i64>> {
        let (g, n) = quality.dim();
        if g == 0 {
            return Err(bad_input("matcher: no ground-truth boxes available for the image"));
        }
        if n == 0 {
            return Err(bad_input("matcher: no proposal boxes available for the image"));
        }
        // Max over GT per prediction; on ties the first GT (torch's CPU max(dim) keeps the first maximum).
        let mut all_matches = vec![0i64; n];
        let mut matches = vec![0i64; n];
        for j in 0..n {
            let (mut best, mut arg) = (quality[[0, j]], 0usize);
            for i in 1..g {
                let v = quality[[i, j]];
                if v > best || (v.is_nan() && !best.is_nan()) {
                    best = v;
                    arg = i;
                }
            }
            all_matches[j] = arg as i64;
            matches[j] = if best < self.low_threshold {
                BELOW_LOW_THRESHOLD
            } else if best >= self.low_threshold && best < self.high_threshold {
                BETWEEN_THRESHOLDS
            } else {
                arg as i64
            };
        }
        if self.allow_low_quality_matches {
            // Every prediction that attains some GT's highest quality (ties included) gets its best GT back.
            for i in 0..g {
                let row = quality.row(i);
                let highest = row.iter().copied().fold(f32::NEG_INFINITY, |m, v| if v > m || v.is_nan() { v } else { m });
                for j in 0..n {
                    if row[j] == highest {
                        matches[j] = all_matches[j];
                    }
                }
            }
        }
        Ok(matches)
    }
}

/// A source of random permutations of `0..n`, standing in for `torch.randperm`.
pub trait Permutations {
    fn randperm(&mut self, n: usize) -> Result<Vec<usize>>;
}

/// Permutations from a seeded SplitMix64 stream ([`SeededRng`]) by Fisher–Yates: reproducible across runs and
/// platforms.
#[derive(Clone, Debug)]
pub struct SeededPermutations {
    rng: SeededRng,
}

impl SeededPermutations {
    pub fn new(seed: u64) -> Self {
        SeededPermutations { rng: SeededRng::new(seed) }
    }
}

impl Permutations for SeededPermutations {
    fn randperm(&mut self, n: usize) -> Result<Vec<usize>> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            // Multiply-shift: unbiased enough for sampling and free of modulo bias patterns.
            let j = ((self.rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
            p.swap(i, j);
        }
        Ok(p)
    }
}

/// Permutations recorded elsewhere (torch's own draws), handed out in order; a length mismatch is an error.
#[derive(Clone, Debug, Default)]
pub struct RecordedPermutations {
    queue: VecDeque<Vec<usize>>,
}

impl RecordedPermutations {
    pub fn new(perms: impl IntoIterator<Item = Vec<usize>>) -> Self {
        RecordedPermutations { queue: perms.into_iter().collect() }
    }

    /// Permutations not yet used.
    pub fn remaining(&self) -> usize {
        self.queue.len()
    }
}

impl Permutations for RecordedPermutations {
    fn randperm(&mut self, n: usize) -> Result<Vec<usize>> {
        let p = self.queue.pop_front().ok_or_else(|| bad_input(format!("recorded permutations: none left for a draw of {n}")))?;
        if p.len() != n {
            return Err(bad_input(format!("recorded permutations: next one has length {} but a draw of {n} was asked", p.len())));
        }
        Ok(p)
    }
}

/// torchvision's `BalancedPositiveNegativeSampler`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BalancedSampler {
    pub batch_size_per_image: usize,
    pub positive_fraction: f64,
}

/// The sampled rows of one image, each list ascending (torchvision returns masks, read back in index order).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sampled {
    pub positive: Vec<usize>,
    pub negative: Vec<usize>,
}

impl BalancedSampler {
    /// The RPN's: 256 anchors, half positive at most.
    pub const RPN: BalancedSampler = BalancedSampler { batch_size_per_image: 256, positive_fraction: 0.5 };
    /// The box head's: 512 RoIs, a quarter positive at most.
    pub const ROI_HEADS: BalancedSampler = BalancedSampler { batch_size_per_image: 512, positive_fraction: 0.25 };

    /// Samples rows of `labels` (≥ 1 positive, 0 negative, < 0 ignored). Draws a permutation of the positives,
    /// then of the negatives (both always, as torchvision does) and keeps their first `num_pos` / `num_neg`.
    pub fn sample(&self, labels: &[i64], perms: &mut dyn Permutations) -> Result<Sampled> {
        let positive: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] >= 1).collect();
        let negative: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == 0).collect();
        let num_pos = ((self.batch_size_per_image as f64 * self.positive_fraction) as usize).min(positive.len());
        let num_neg = (self.batch_size_per_image - num_pos).min(negative.len());
        let pick = |rows: &[usize], perm: Vec<usize>, k: usize| {
            let mut s: Vec<usize> = perm[..k].iter().map(|&p| rows[p]).collect();
            s.sort_unstable();
            s
        };
        let perm_pos = perms.randperm(positive.len())?;
        let perm_neg = perms.randperm(negative.len())?;
        Ok(Sampled { positive: pick(&positive, perm_pos, num_pos), negative: pick(&negative, perm_neg, num_neg) })
    }
}

/// The RPN's targets of one image in the training core's layout.
#[derive(Clone, Debug, PartialEq)]
pub struct RpnTargets {
    /// `[A]`: 1 sampled positive, 0 sampled negative, −1 not sampled (`rpn_labels` row).
    pub labels: Vec<f32>,
    /// `[A]`: BoxCoder (1,1,1,1) codes of each anchor's matched GT (torchvision's `regression_targets`, also on
    /// rows the loss does not read); zeros for an image without GT, where torchvision's are non-finite and unused.
    pub bbox_targets: Vec<[f32; 4]>,
    /// `[A]`: the Matcher's raw output (−1, −2 or a GT index); all −1 without GT.
    pub matches: Vec<i64>,
}

/// `assign_targets_to_anchors`, encoding and sampling for one image. `anchors` are all levels concatenated in
/// torchvision's order (`AnchorGenerator::anchors(..).concat()`).
pub fn rpn_targets(anchors: &[BoxXyxy], gt_boxes: &[BoxXyxy], perms: &mut dyn Permutations) -> Result<RpnTargets> {
    let a = anchors.len();
    let (matches, bbox_targets, pre) = if gt_boxes.is_empty() {
        (vec![BELOW_LOW_THRESHOLD; a], vec![[0.0; 4]; a], vec![0i64; a])
    } else {
        let matches = Matcher::RPN.matches(box_iou(gt_boxes, anchors).view())?;
        let targets = anchors.iter().zip(&matches).map(|(&an, &m)| BoxCoder::RPN.encode_one(gt_boxes[m.max(0) as usize], an)).collect();
        let pre = matches
            .iter()
            .map(|&m| {
                if m >= 0 {
                    1
                } else if m == BELOW_LOW_THRESHOLD {
                    0
                } else {
                    -1
                }
            })
            .collect();
        (matches, targets, pre)
    };
    let sampled = BalancedSampler::RPN.sample(&pre, perms)?;
    let mut labels = vec![-1.0f32; a];
    sampled.positive.iter().for_each(|&i| labels[i] = 1.0);
    sampled.negative.iter().for_each(|&i| labels[i] = 0.0);
    Ok(RpnTargets { labels, bbox_targets, matches })
}

/// The box head's sampled RoIs of one image (`select_training_samples`), rows ascending in the index of
/// proposals-then-GT.
#[derive(Clone, Debug, PartialEq)]
pub struct RoiSample {
    pub boxes: Vec<BoxXyxy>,
    /// The matched GT per row, clamped at 0 as torchvision returns it (0 for background rows).
    pub matched_idxs: Vec<usize>,
    /// Class per row, 0 for background (ignored rows are never sampled).
    pub labels: Vec<i64>,
    /// BoxCoder (10,10,5,5) codes against the matched GT; zeros for an image without GT (torchvision's are
    /// non-finite there and unused).
    pub bbox_targets: Vec<[f32; 4]>,
}

/// Box-head rows padded to a fixed count: `roi_labels [R]`, `roi_bbox_targets [R,4]`, `roi_weights [R]` of the
/// training core; `boxes` feed `MultiScaleRoIAlign::taps`. Padding rows: box (0,0,1,1), label 0, target 0,
/// weight 0.
#[derive(Clone, Debug, PartialEq)]
pub struct PaddedRois {
    pub boxes: Vec<BoxXyxy>,
    pub labels: Vec<i64>,
    pub bbox_targets: Vec<[f32; 4]>,
    pub weights: Vec<f32>,
}

/// The box of a padding row (any finite box would do: its weight is 0).
pub const PADDING_BOX: BoxXyxy = [0.0, 0.0, 1.0, 1.0];

fn too_many(what: &str, have: usize, rows: usize) -> crate::error::Error {
    bad_input(format!("{what}: {have} rows do not fit in {rows} padded rows; raise the row count of the training shape"))
}

impl RoiSample {
    /// Rows with a foreground label (the mask and keypoint heads' RoIs), ascending.
    pub fn positive(&self) -> Vec<usize> {
        (0..self.labels.len()).filter(|&i| self.labels[i] > 0).collect()
    }

    pub fn padded(&self, rows: usize) -> Result<PaddedRois> {
        let n = self.boxes.len();
        if n > rows {
            return Err(too_many("box-head RoIs", n, rows));
        }
        let mut p = PaddedRois {
            boxes: self.boxes.clone(),
            labels: self.labels.clone(),
            bbox_targets: self.bbox_targets.clone(),
            weights: vec![1.0; n],
        };
        p.boxes.resize(rows, PADDING_BOX);
        p.labels.resize(rows, 0);
        p.bbox_targets.resize(rows, [0.0; 4]);
        p.weights.resize(rows, 0.0);
        Ok(p)
    }
}

/// `select_training_samples` for one image: GT boxes appended to `proposals`, Matcher 0.5/0.5, sampler 512 at
/// 0.25, regression targets with weights (10,10,5,5).
pub fn sample_rois(proposals: &[BoxXyxy], gt_boxes: &[BoxXyxy], gt_labels: &[i64], perms: &mut dyn Permutations) -> Result<RoiSample> {
    sample_rois_with(&BalancedSampler::ROI_HEADS, proposals, gt_boxes, gt_labels, perms)
}

/// [`sample_rois`] with another sampler (a training shape with fewer box-head rows than torchvision's 512).
pub fn sample_rois_with(
    sampler: &BalancedSampler,
    proposals: &[BoxXyxy],
    gt_boxes: &[BoxXyxy],
    gt_labels: &[i64],
    perms: &mut dyn Permutations,
) -> Result<RoiSample> {
    if gt_boxes.len() != gt_labels.len() {
        return Err(bad_input(format!("RoI sampling: {} GT boxes but {} labels", gt_boxes.len(), gt_labels.len())));
    }
    let all: Vec<BoxXyxy> = proposals.iter().chain(gt_boxes).copied().collect();
    let (matched, labels): (Vec<usize>, Vec<i64>) = if gt_boxes.is_empty() {
        (vec![0; all.len()], vec![0; all.len()])
    } else {
        let matches = Matcher::ROI_HEADS.matches(box_iou(gt_boxes, &all).view())?;
        matches
            .iter()
            .map(|&m| {
                let label = match m {
                    BELOW_LOW_THRESHOLD => 0,
                    BETWEEN_THRESHOLDS => -1,
                    _ => gt_labels[m as usize],
                };
                (m.max(0) as usize, label)
            })
            .unzip()
    };
    let s = sampler.sample(&labels, perms)?;
    let mut rows: Vec<usize> = s.positive.into_iter().chain(s.negative).collect();
    rows.sort_unstable();
    let boxes: Vec<BoxXyxy> = rows.iter().map(|&r| all[r]).collect();
    let matched_idxs: Vec<usize> = rows.iter().map(|&r| matched[r]).collect();
    let bbox_targets = if gt_boxes.is_empty() {
        vec![[0.0; 4]; rows.len()]
    } else {
        boxes.iter().zip(&matched_idxs).map(|(&b, &m)| BoxCoder::ROI_HEADS.encode_one(gt_boxes[m], b)).collect()
    };
    Ok(RoiSample { boxes, matched_idxs, labels: rows.iter().map(|&r| labels[r]).collect(), bbox_targets })
}

/// Mask-head targets of the positive RoIs, in [`RoiSample::positive`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct MaskTargets {
    /// The RoIs (`mask_idx` taps come from these).
    pub boxes: Vec<BoxXyxy>,
    /// `mask_labels`: the class of each RoI.
    pub labels: Vec<i64>,
    /// `mask_targets [P, 28, 28]`.
    pub targets: Array3<f32>,
}

impl MaskTargets {
    /// Padded to `rows`: boxes (padding [`PADDING_BOX`]), labels (padding 0), targets (padding 0), weights.
    pub fn padded(&self, rows: usize) -> Result<(Vec<BoxXyxy>, Vec<i64>, Array3<f32>, Vec<f32>)> {
        let (n, m, _) = self.targets.dim();
        if n > rows {
            return Err(too_many("mask RoIs", n, rows));
        }
        let mut boxes = self.boxes.clone();
        boxes.resize(rows, PADDING_BOX);
        let mut labels = self.labels.clone();
        labels.resize(rows, 0);
        let mut targets = Array3::<f32>::zeros((rows, m, m));
        targets.slice_mut(ndarray::s![..n, .., ..]).assign(&self.targets);
        let mut weights = vec![1.0; n];
        weights.resize(rows, 0.0);
        Ok((boxes, labels, targets, weights))
    }
}

/// `project_masks_on_boxes` for the positive RoIs of `rois`: `roi_align(gt_mask, roi, (28, 28), 1.0)` with
/// torchvision's default adaptive sampling (`ceil(roi side / 28)` samples per bin side), `aligned=False`.
/// `gt_masks` is `[G, H, W]` (0/1).
pub fn mask_targets(rois: &RoiSample, gt_masks: ArrayView3<u8>) -> Result<MaskTargets> {
    let pos = rois.positive();
    let g = gt_masks.dim().0;
    let m = MASK_TARGET_SIZE;
    let mut targets = Array3::<f32>::zeros((pos.len(), m, m));
    for (k, &r) in pos.iter().enumerate() {
        let gi = rois.matched_idxs[r];
        if gi >= g {
            return Err(bad_input(format!("mask targets: RoI {r} matches GT {gi} but only {g} masks were given")));
        }
        // torchvision: roi_align(gt_masks, rois, (M, M), 1.0) with its default sampling_ratio -1 (adaptive).
        let plane = gt_masks.slice(ndarray::s![gi..gi + 1, .., ..]).mapv(|v| v as f32);
        let out = crate::detect::roi_align::roi_align(plane.view(), &[rois.boxes[r]], 1.0, m, 0);
        targets.index_axis_mut(ndarray::Axis(0), k).assign(&out.slice(ndarray::s![0, 0, .., ..]));
    }
    Ok(MaskTargets { boxes: pos.iter().map(|&r| rois.boxes[r]).collect(), labels: pos.iter().map(|&r| rois.labels[r]).collect(), targets })
}

/// Keypoint-head targets of the positive RoIs, in [`RoiSample::positive`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct KeypointTargets {
    pub boxes: Vec<BoxXyxy>,
    /// `kp_targets [P, K]`: flat index `y·56 + x` into the heatmap, 0 where not valid (as torchvision).
    pub targets: Array2<i64>,
    /// `kp_valid [P, K]`: 1 where the keypoint is visible and falls inside the heatmap.
    pub valid: Array2<f32>,
}

impl KeypointTargets {
    /// Padded to `rows`: boxes (padding [`PADDING_BOX`]), targets (padding 0), valid (padding 0).
    pub fn padded(&self, rows: usize) -> Result<(Vec<BoxXyxy>, Array2<i64>, Array2<f32>)> {
        let (n, k) = self.targets.dim();
        if n > rows {
            return Err(too_many("keypoint RoIs", n, rows));
        }
        let mut boxes = self.boxes.clone();
        boxes.resize(rows, PADDING_BOX);
        let mut targets = Array2::<i64>::zeros((rows, k));
        targets.slice_mut(ndarray::s![..n, ..]).assign(&self.targets);
        let mut valid = Array2::<f32>::zeros((rows, k));
        valid.slice_mut(ndarray::s![..n, ..]).assign(&self.valid);
        Ok((boxes, targets, valid))
    }
}

/// `keypoints_to_heatmap` of one RoI: `keypoints [K, 3]` (x, y, visibility) → (flat index, valid) per keypoint.
pub fn keypoints_to_heatmap(keypoints: ArrayView2<f32>, roi: BoxXyxy, heatmap_size: usize) -> (Vec<i64>, Vec<bool>) {
    let size = heatmap_size as f32;
    let (scale_x, scale_y) = (size / (roi[2] - roi[0]), size / (roi[3] - roi[1]));
    let cell = |v: f32, offset: f32, scale: f32, edge: f32| -> Option<i64> {
        if v == edge {
            return Some(heatmap_size as i64 - 1);
        }
        let f = ((v - offset) * scale).floor();
        // torch's float → int64 of NaN/±inf gives an out-of-range value, hence invalid.
        f.is_finite().then_some(f as i64)
    };
    let (mut idx, mut valid) = (Vec::new(), Vec::new());
    for kp in keypoints.outer_iter() {
        let x = cell(kp[0], roi[0], scale_x, roi[2]);
        let y = cell(kp[1], roi[1], scale_y, roi[3]);
        let inside = |c: Option<i64>| c.is_some_and(|c| c >= 0 && c < heatmap_size as i64);
        let ok = inside(x) && inside(y) && kp[2] > 0.0;
        valid.push(ok);
        idx.push(if ok { y.unwrap() * heatmap_size as i64 + x.unwrap() } else { 0 });
    }
    (idx, valid)
}

/// [`keypoints_to_heatmap`] (56×56) for the positive RoIs of `rois`; `gt_keypoints` is `[G, K, 3]`.
pub fn keypoint_targets(rois: &RoiSample, gt_keypoints: ArrayView3<f32>) -> Result<KeypointTargets> {
    let pos = rois.positive();
    let (g, k, c) = gt_keypoints.dim();
    if c != 3 {
        return Err(bad_input(format!("keypoint targets: GT keypoints must be [G, K, 3], got [{g}, {k}, {c}]")));
    }
    let mut targets = Array2::<i64>::zeros((pos.len(), k));
    let mut valid = Array2::<f32>::zeros((pos.len(), k));
    for (row, &r) in pos.iter().enumerate() {
        let gi = rois.matched_idxs[r];
        if gi >= g {
            return Err(bad_input(format!("keypoint targets: RoI {r} matches GT {gi} but only {g} keypoint sets were given")));
        }
        let (idx, ok) = keypoints_to_heatmap(gt_keypoints.index_axis(ndarray::Axis(0), gi), rois.boxes[r], HEATMAP_SIZE);
        for j in 0..k {
            targets[[row, j]] = idx[j];
            valid[[row, j]] = if ok[j] { 1.0 } else { 0.0 };
        }
    }
    Ok(KeypointTargets { boxes: pos.iter().map(|&r| rois.boxes[r]).collect(), targets, valid })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn matcher_thresholds_and_low_quality_ties() {
        // 2 GT × 4 predictions.
        let q = array![[0.8f32, 0.5, 0.2, 0.2], [0.1, 0.6, 0.25, 0.1]];
        assert_eq!(Matcher::new(0.7, 0.3, false).unwrap().matches(q.view()).unwrap(), vec![0, -2, -1, -1]);
        // GT 1's best is 0.6 at pred 1 (kept as a match); GT 0's 0.8 is already a match.
        assert_eq!(Matcher::RPN.matches(q.view()).unwrap(), vec![0, 1, -1, -1]);
        // Ties: GT 0's highest 0.2 is attained twice; both predictions get their argmax GT (first on ties).
        let q = array![[0.2f32, 0.2, 0.1], [0.2, 0.1, 0.1]];
        assert_eq!(Matcher::RPN.matches(q.view()).unwrap(), vec![0, 0, -1]);
        assert!(Matcher::new(0.3, 0.7, false).is_err());
        assert!(Matcher::RPN.matches(Array2::<f32>::zeros((0, 3)).view()).is_err());
    }

    #[test]
    fn sampler_counts_and_seeded_permutations() {
        let labels: Vec<i64> = (0..1000)
            .map(|i| {
                if i % 7 == 0 {
                    1
                } else if i % 3 == 0 {
                    -1
                } else {
                    0
                }
            })
            .collect();
        let mut perms = SeededPermutations::new(5);
        let s = BalancedSampler::RPN.sample(&labels, &mut perms).unwrap();
        assert_eq!((s.positive.len(), s.negative.len()), (128, 128));
        assert!(s.positive.iter().all(|&i| labels[i] == 1) && s.negative.iter().all(|&i| labels[i] == 0));
        let again = BalancedSampler::RPN.sample(&labels, &mut SeededPermutations::new(5)).unwrap();
        assert_eq!(s, again);
        let p = SeededPermutations::new(1).randperm(50).unwrap();
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert!(RecordedPermutations::new([vec![0, 1]]).randperm(3).is_err());
    }

    #[test]
    fn keypoint_on_the_far_edge_maps_to_the_last_cell() {
        let kp = array![[20.0f32, 10.0, 2.0], [10.0, 20.0, 1.0], [9.0, 15.0, 2.0], [15.0, 15.0, 0.0]];
        let (idx, valid) = keypoints_to_heatmap(kp.view(), [10.0, 10.0, 20.0, 20.0], 56);
        assert_eq!(valid, vec![true, true, false, false]);
        assert_eq!(idx, vec![55, 55 * 56, 0, 0]);
    }
}
