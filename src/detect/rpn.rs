//! The RPN's eval-path proposal filter (`RegionProposalNetwork.filter_proposals` after `concat_box_prediction_
//! layers` and `box_coder.decode`), for one image: per level the top `pre_nms_top_n` anchors by objectness
//! logit, decoded with weights (1, 1, 1, 1), sigmoid, clipped to the resized image, small boxes and low scores
//! dropped, NMS per level, the best `post_nms_top_n` kept.
use super::box_coder::BoxCoder;
use super::nms::batched_nms;
use crate::error::{bad_input, Result};
use crate::imaging::boxes::{clip_box, remove_small_boxes};
use crate::imaging::{BoxXyxy, Hw};
use ndarray::ArrayView3;

/// Eval-time RPN settings; [`Default`] is torchvision's Faster/Mask/Keypoint R-CNN test setting.
#[derive(Clone, Debug, PartialEq)]
pub struct RpnParams {
    /// Anchors kept per level before NMS (`rpn_pre_nms_top_n_test`).
    pub pre_nms_top_n: usize,
    /// Proposals kept after NMS (`rpn_post_nms_top_n_test`).
    pub post_nms_top_n: usize,
    /// IoU threshold of the per-level NMS (`rpn_nms_thresh`).
    pub nms_thresh: f64,
    /// Proposals need an objectness probability `>=` this (`rpn_score_thresh`).
    pub score_thresh: f32,
    /// Proposals need both sides `>=` this, in pixels (torchvision's fixed `min_size`).
    pub min_size: f32,
}

impl Default for RpnParams {
    fn default() -> Self {
        RpnParams { pre_nms_top_n: 1000, post_nms_top_n: 1000, nms_thresh: 0.7, score_thresh: 0.0, min_size: 1e-3 }
    }
}

/// Proposals of one image, best first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Proposals {
    pub boxes: Vec<BoxXyxy>,
    /// Objectness probabilities (sigmoid of the logits).
    pub scores: Vec<f32>,
}

/// One level of RPN head output for one image, as the stage graph returns it (batch axis dropped):
/// `objectness [A, H, W]` logits and `deltas [4·A, H, W]` (anchor-major, then dx, dy, dw, dh).
#[derive(Clone, Copy, Debug)]
pub struct RpnLevel<'a> {
    pub objectness: ArrayView3<'a, f32>,
    pub deltas: ArrayView3<'a, f32>,
}

/// float32 `1 / (1 + exp(-x))`. Torch's vectorised sigmoid uses a faster exp (20 ulp), so probabilities
/// agree to rounding, not bit for bit.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `filter_proposals` for one image. `anchors[l]` are level `l`'s anchors in torchvision's order
/// ([`super::anchors::AnchorGenerator::anchors`]); `image_hw` is the resized (unpadded) image size.
pub fn filter_proposals(levels: &[RpnLevel], anchors: &[Vec<BoxXyxy>], image_hw: Hw, params: &RpnParams) -> Result<Proposals> {
    if levels.len() != anchors.len() {
        return Err(bad_input(format!("RPN has {} output levels but {} anchor levels", levels.len(), anchors.len())));
    }
    let (mut boxes, mut scores, mut level_ids) = (Vec::new(), Vec::new(), Vec::new());
    for (l, (level, level_anchors)) in levels.iter().zip(anchors).enumerate() {
        let (a, h, w) = level.objectness.dim();
        if level.deltas.dim() != (4 * a, h, w) || level_anchors.len() != a * h * w {
            return Err(bad_input(format!(
                "RPN level {l}: objectness {:?}, deltas {:?} and {} anchors do not agree (want [A,H,W], [4A,H,W], A·H·W)",
                level.objectness.shape(),
                level.deltas.shape(),
                level_anchors.len()
            )));
        }
        // Flattened index k = (y·W + x)·A + anchor, torchvision's permute_and_flatten order.
        let logit = |k: usize| level.objectness[[k % a, k / a / w, k / a % w]];
        let n = a * h * w;
        let top = params.pre_nms_top_n.min(n);
        let mut order: Vec<usize> = (0..n).collect();
        // topk: largest logits first; equal logits by index (torch leaves their order unspecified).
        let by_logit = |i: &usize, j: &usize| logit(*j).total_cmp(&logit(*i)).then(i.cmp(j));
        if top < n {
            order.select_nth_unstable_by(top, by_logit);
            order.truncate(top);
        }
        order.sort_unstable_by(by_logit);
        for k in order {
            let (anchor, y, x) = (k % a, k / a / w, k / a % w);
            let code = [0, 1, 2, 3].map(|c| level.deltas[[anchor * 4 + c, y, x]]);
            boxes.push(clip_box(BoxCoder::RPN.decode_one(code, level_anchors[k]), image_hw));
            scores.push(sigmoid(logit(k)));
            level_ids.push(l as i64);
        }
    }
    let keep: Vec<usize> = remove_small_boxes(&boxes, params.min_size).into_iter().filter(|&i| scores[i] >= params.score_thresh).collect();
    let boxes: Vec<BoxXyxy> = keep.iter().map(|&i| boxes[i]).collect();
    let scores: Vec<f32> = keep.iter().map(|&i| scores[i]).collect();
    let level_ids: Vec<i64> = keep.iter().map(|&i| level_ids[i]).collect();
    let mut kept = batched_nms(&boxes, &scores, &level_ids, params.nms_thresh);
    kept.truncate(params.post_nms_top_n);
    Ok(Proposals { boxes: kept.iter().map(|&i| boxes[i]).collect(), scores: kept.iter().map(|&i| scores[i]).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn empty_levels_give_no_proposals_and_shapes_are_checked() {
        let obj = Array3::<f32>::zeros((3, 0, 0));
        let del = Array3::<f32>::zeros((12, 0, 0));
        let level = RpnLevel { objectness: obj.view(), deltas: del.view() };
        let p = filter_proposals(&[level], &[vec![]], (64, 64), &RpnParams::default()).unwrap();
        assert!(p.boxes.is_empty() && p.scores.is_empty());
        assert!(filter_proposals(&[level], &[vec![[0.0; 4]]], (64, 64), &RpnParams::default()).is_err());
        assert!(filter_proposals(&[level], &[], (64, 64), &RpnParams::default()).is_err());
    }

    #[test]
    fn anchors_outside_the_image_are_clipped_away() {
        // Every anchor lies right of a 10-pixel-wide image: clipping makes it zero-width, so nothing survives.
        let obj = Array3::<f32>::ones((1, 2, 2));
        let del = Array3::<f32>::zeros((4, 2, 2));
        let anchors = vec![[20.0, 0.0, 30.0, 5.0]; 4];
        let level = RpnLevel { objectness: obj.view(), deltas: del.view() };
        let p = filter_proposals(&[level], &[anchors], (10, 10), &RpnParams::default()).unwrap();
        assert!(p.boxes.is_empty());
    }
}
