//! `heatmaps_to_keypoints` (Keypoint R-CNN eval path): each RoI's heatmaps `[K, 56, 56]` are resized with
//! bicubic interpolation to the RoI's size rounded up, the argmax pixel of each keypoint's map gives its
//! position (pixel centre, `+0.5`, scaled back by `size / ceil(size)` and offset by the RoI corner), and its
//! score is the resized map's value there. RoIs are the detections in resized-image pixels; map the points to
//! the original image with [`crate::imaging::transform::rescale_keypoints`].
use crate::error::{bad_input, Result};
use crate::imaging::interpolate::resize_bicubic;
use crate::imaging::BoxXyxy;
use ndarray::{Array2, Array3, ArrayView4, Axis};

/// Keypoints of N RoIs.
#[derive(Clone, Debug, PartialEq)]
pub struct Keypoints {
    /// `[N, K, 3]`: x, y, 1 (torchvision's visibility column).
    pub points: Array3<f32>,
    /// `[N, K]`: the resized heatmap's value at each keypoint (a logit, not a probability).
    pub scores: Array2<f32>,
}

/// `heatmaps_to_keypoints(maps [N, K, H, W], rois [N])`.
pub fn heatmaps_to_keypoints(maps: ArrayView4<f32>, rois: &[BoxXyxy]) -> Result<Keypoints> {
    let (n, k, _, _) = maps.dim();
    if n != rois.len() {
        return Err(bad_input(format!("{n} keypoint heatmaps for {} RoIs", rois.len())));
    }
    let mut points = Array3::<f32>::zeros((n, k, 3));
    let mut scores = Array2::<f32>::zeros((n, k));
    for (i, (roi_maps, roi)) in maps.outer_iter().zip(rois).enumerate() {
        let width = clamp_min_1(roi[2] - roi[0]);
        let height = clamp_min_1(roi[3] - roi[1]);
        if !(width.is_finite() && height.is_finite() && roi[0].is_finite() && roi[1].is_finite()) {
            return Err(bad_input(format!("keypoint RoI {i} is not finite: {roi:?}")));
        }
        let (map_w, map_h) = (width.ceil() as usize, height.ceil() as usize);
        let width_correction = width / map_w as f32;
        let height_correction = height / map_h as f32;
        let resized = resize_bicubic(roi_maps, map_h, map_w);
        for (j, plane) in resized.axis_iter(Axis(0)).enumerate() {
            // argmax: the first maximum in row-major order; torch ranks NaN above everything.
            let (mut best, mut best_v) = (0usize, f32::NEG_INFINITY);
            for (p, &v) in plane.iter().enumerate() {
                if v.is_nan() {
                    best = p;
                    break;
                }
                if v > best_v {
                    best = p;
                    best_v = v;
                }
            }
            let (x_int, y_int) = (best % map_w, best / map_w);
            points[[i, j, 0]] = (x_int as f32 + 0.5) * width_correction + roi[0];
            points[[i, j, 1]] = (y_int as f32 + 0.5) * height_correction + roi[1];
            points[[i, j, 2]] = 1.0;
            scores[[i, j]] = plane[[y_int, x_int]];
        }
    }
    Ok(Keypoints { points, scores })
}

/// `clamp(min=1)`, NaN staying NaN.
fn clamp_min_1(v: f32) -> f32 {
    if v < 1.0 {
        1.0
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn empty_and_tiny_rois() {
        let k = heatmaps_to_keypoints(Array4::zeros((0, 17, 56, 56)).view(), &[]).unwrap();
        assert_eq!(k.points.dim(), (0, 17, 3));
        assert!(heatmaps_to_keypoints(Array4::zeros((1, 17, 56, 56)).view(), &[]).is_err());
        // A RoI smaller than a pixel resizes the map to 1x1: the keypoint is the RoI corner + 0.5.
        let k = heatmaps_to_keypoints(Array4::ones((1, 1, 56, 56)).view(), &[[3.0, 4.0, 3.2, 4.1]]).unwrap();
        assert_eq!((k.points[[0, 0, 0]], k.points[[0, 0, 1]], k.points[[0, 0, 2]]), (3.5, 4.5, 1.0));
    }

    #[test]
    fn peak_lands_in_the_right_place() {
        let mut maps = Array4::<f32>::zeros((1, 1, 56, 56));
        maps[[0, 0, 14, 42]] = 10.0; // three quarters across, a quarter down
        let k = heatmaps_to_keypoints(maps.view(), &[[0.0, 0.0, 112.0, 112.0]]).unwrap();
        assert!((k.points[[0, 0, 0]] - 85.0).abs() < 2.0 && (k.points[[0, 0, 1]] - 29.0).abs() < 2.0, "{:?}", k.points);
    }
}
