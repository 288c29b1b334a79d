//! `RoIHeads.postprocess_detections` for one image: softmax over the class logits, class-specific boxes decoded
//! with weights (10, 10, 5, 5) and clipped, background dropped, every (RoI, class) pair above the score
//! threshold a candidate, tiny boxes dropped, NMS per class, the best `detections_per_img` kept.
use super::box_coder::BoxCoder;
use super::nms::batched_nms;
use crate::error::{bad_input, Result};
use crate::imaging::boxes::{clip_box, remove_small_boxes};
use crate::imaging::{BoxXyxy, Hw};
use ndarray::ArrayView2;

/// Candidates need both sides at least this long (torchvision's fixed `min_size=1e-2`).
pub const MIN_BOX_SIZE: f32 = 1e-2;

/// Eval-time box-head settings; [`Default`] is torchvision's.
#[derive(Clone, Debug, PartialEq)]
pub struct BoxHeadParams {
    /// Candidates need a class probability `>` this (`box_score_thresh`).
    pub score_thresh: f32,
    /// IoU threshold of the per-class NMS (`box_nms_thresh`).
    pub nms_thresh: f64,
    /// At most this many detections per image (`box_detections_per_img`).
    pub detections_per_img: usize,
}

impl Default for BoxHeadParams {
    fn default() -> Self {
        BoxHeadParams { score_thresh: 0.05, nms_thresh: 0.5, detections_per_img: 100 }
    }
}

/// Detections of one image, best first, in resized-image pixels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Detections {
    pub boxes: Vec<BoxXyxy>,
    pub scores: Vec<f32>,
    /// Class index (1.., 0 is background).
    pub labels: Vec<i64>,
    /// The proposal each detection was decoded from.
    pub rois: Vec<usize>,
}

/// Float32 softmax of one row: `exp(x - max)` times the reciprocal of their sum, as torch's CPU kernel.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    let e: Vec<f32> = logits.iter().map(|&v| (v - max).exp()).collect();
    let inv = 1.0 / e.iter().sum::<f32>();
    e.into_iter().map(|v| v * inv).collect()
}

/// `postprocess_detections`: `class_logits [N, K]`, `box_regression [N, 4·K]` for `proposals` (N boxes),
/// `image_hw` the resized (unpadded) image size.
pub fn postprocess_detections(
    class_logits: ArrayView2<f32>,
    box_regression: ArrayView2<f32>,
    proposals: &[BoxXyxy],
    image_hw: Hw,
    params: &BoxHeadParams,
) -> Result<Detections> {
    let (n, k) = class_logits.dim();
    if box_regression.dim() != (n, 4 * k) || proposals.len() != n {
        return Err(bad_input(format!(
            "box head outputs do not agree: logits {:?}, box regression {:?}, {} proposals (want [N,K], [N,4K], N)",
            class_logits.shape(),
            box_regression.shape(),
            proposals.len()
        )));
    }
    let (mut boxes, mut scores, mut labels, mut rois) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, proposal) in proposals.iter().enumerate() {
        let probs = softmax(&class_logits.row(i).to_vec());
        for (c, &p) in probs.iter().enumerate().skip(1) {
            if p > params.score_thresh {
                let code = [0, 1, 2, 3].map(|j| box_regression[[i, 4 * c + j]]);
                boxes.push(clip_box(BoxCoder::ROI_HEADS.decode_one(code, *proposal), image_hw));
                scores.push(p);
                labels.push(c as i64);
                rois.push(i);
            }
        }
    }
    let keep = remove_small_boxes(&boxes, MIN_BOX_SIZE);
    let (boxes, scores, labels, rois) = (pick(&boxes, &keep), pick(&scores, &keep), pick(&labels, &keep), pick(&rois, &keep));
    let mut kept = batched_nms(&boxes, &scores, &labels, params.nms_thresh);
    kept.truncate(params.detections_per_img);
    Ok(Detections { boxes: pick(&boxes, &kept), scores: pick(&scores, &kept), labels: pick(&labels, &kept), rois: pick(&rois, &kept) })
}

fn pick<T: Copy>(values: &[T], indices: &[usize]) -> Vec<T> {
    indices.iter().map(|&i| values[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn no_proposals_no_detections() {
        let d =
            postprocess_detections(Array2::zeros((0, 3)).view(), Array2::zeros((0, 12)).view(), &[], (10, 10), &BoxHeadParams::default())
                .unwrap();
        assert!(d.boxes.is_empty());
        assert!(postprocess_detections(
            Array2::zeros((1, 3)).view(),
            Array2::zeros((1, 8)).view(),
            &[[0.0; 4]],
            (10, 10),
            &BoxHeadParams::default()
        )
        .is_err());
    }

    #[test]
    fn background_only_and_overlapping_duplicates() {
        // Two identical proposals, class 1 confident in both: one detection survives NMS; class 0 never does.
        let logits = Array2::from_shape_vec((2, 2), vec![0.0, 5.0, 0.0, 4.0]).unwrap();
        let d = postprocess_detections(
            logits.view(),
            Array2::zeros((2, 8)).view(),
            &[[1.0, 1.0, 8.0, 8.0]; 2],
            (10, 10),
            &BoxHeadParams::default(),
        )
        .unwrap();
        assert_eq!((d.labels, d.rois), (vec![1], vec![0]));
        let only_bg = Array2::from_shape_vec((1, 2), vec![9.0, -9.0]).unwrap();
        let d = postprocess_detections(
            only_bg.view(),
            Array2::zeros((1, 8)).view(),
            &[[1.0, 1.0, 8.0, 8.0]],
            (10, 10),
            &BoxHeadParams::default(),
        )
        .unwrap();
        assert!(d.boxes.is_empty());
    }
}
