//! `MultiScaleRoIAlign` as two interpolation matrices per level, the training core's form of RoIAlign on small
//! feature maps (graph::roi_pool). torchvision's sampling is separable: a sample's bilinear weights are a y
//! factor times an x factor, a sample is dropped when either coordinate is out of range, and the bin divides by
//! `ratio · ratio`. So for a RoI pooled from level l,
//! `pooled[c, py, px] = Σ_y Σ_x wy[py, y] · wx[px, x] · F_l[c, y, x]`, where `wy[py, ·]` sums the y factors of
//! the bin row's samples divided by the ratio (and `wx` likewise). Two matrix products then replace the Gather
//! of [`super::roi_align::RoiTaps`], whose gradient on ORT 1.19's CPU spends an integer division per gathered
//! value (half a 128-px step of a width-8 Faster R-CNN, measured: docs/training.md).
use super::roi_align::{axis, MultiScaleRoIAlign};
use crate::imaging::BoxXyxy;
use ndarray::{Array2, Array3, Array4, ArrayView3};

/// The interpolation matrices of N RoIs (one image's): per level, `wy [N·P, H_l]` (row `n·P + py`) and
/// `wx [N, P, W_l]`; a RoI's rows are zero on every level but its own, and on all of them for a RoI with no level.
#[derive(Clone, Debug, PartialEq)]
pub struct RoiPlanes {
    pub wy: Vec<Array2<f32>>,
    pub wx: Vec<Array3<f32>>,
}

/// One axis of a RoI's samples on a map of `size` cells: for each of the `p` bins, the cells its `ratio`
/// samples interpolate and their weights, added into `out` (a `[p, size]` block). The coordinates are
/// computed with the same float operations as torchvision's kernel (and [`super::roi_align`]'s), so every
/// sample lands on the same cells with the same fractions.
fn axis_weights(start: f32, end: f32, size: usize, p: usize, ratio: usize, mut out: ndarray::ArrayViewMut2<f32>) {
    // Malformed RoIs are forced to be 1 cell wide (aligned=False).
    let side = f32::max(end - start, 1.0);
    let bin = side / p as f32;
    for pb in 0..p {
        for i in 0..ratio {
            let v = start + pb as f32 * bin + (i as f32 + 0.5) * bin / ratio as f32;
            // Outside [-1, size] (or NaN) the sample counts zero, whatever the other coordinate.
            if !(v >= -1.0 && v <= size as f32) {
                continue;
            }
            let (low, high, frac) = axis(v, size as i64);
            out[[pb, low as usize]] += (1.0 - frac) / ratio as f32;
            out[[pb, high as usize]] += frac / ratio as f32;
        }
    }
}

impl MultiScaleRoIAlign {
    /// The pooling of `boxes` (one image's) as interpolation matrices per level.
    pub fn planes(&self, boxes: &[BoxXyxy]) -> RoiPlanes {
        let (p, ratio, n) = (self.output_size, self.sampling_ratio, boxes.len());
        let mut wy: Vec<Array2<f32>> = self.feature_hw.iter().map(|&(h, _)| Array2::zeros((n * p, h))).collect();
        let mut wx: Vec<Array3<f32>> = self.feature_hw.iter().map(|&(_, w)| Array3::zeros((n, p, w))).collect();
        for (i, (&b, level)) in boxes.iter().zip(self.levels(boxes)).enumerate() {
            let Some(l) = level else { continue };
            let ((h, w), s) = (self.feature_hw[l], self.scales[l]);
            axis_weights(b[1] * s, b[3] * s, h, p, ratio, wy[l].slice_mut(ndarray::s![i * p..(i + 1) * p, ..]));
            axis_weights(b[0] * s, b[2] * s, w, p, ratio, wx[l].index_axis_mut(ndarray::Axis(0), i));
        }
        RoiPlanes { wy, wx }
    }
}

impl RoiPlanes {
    /// `Σ_l wy_l · F_l · wx_lᵀ` per RoI from `levels` (`[C, H, W]` each): what the training graph computes,
    /// `[N, C, P, P]`.
    pub fn apply(&self, levels: &[ArrayView3<f32>]) -> Array4<f32> {
        let (n, p, _) = self.wx[0].dim();
        let c = levels[0].dim().0;
        let mut out = Array4::<f32>::zeros((n, c, p, p));
        for (l, f) in levels.iter().enumerate() {
            for i in 0..n {
                for ch in 0..c {
                    // [P, H] · [H, W] · [W, P]
                    let wy = self.wy[l].slice(ndarray::s![i * p..(i + 1) * p, ..]);
                    let t = wy.dot(&f.index_axis(ndarray::Axis(0), ch));
                    let pooled = t.dot(&self.wx[l].index_axis(ndarray::Axis(0), i).t());
                    let mut o = out.slice_mut(ndarray::s![i, ch, .., ..]);
                    o += &pooled;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::detect::roi_align::tests::random_case;

    #[test]
    fn planes_reproduce_pooling() {
        let (feats, pooler, boxes) = random_case(3);
        let views: Vec<_> = feats.iter().map(|f| f.view()).collect();
        let pooled = pooler.pool(&views, &boxes).unwrap();
        let planes = pooler.planes(&boxes);
        assert_eq!(planes.wy[1].dim(), (boxes.len() * 7, 12));
        assert_eq!(planes.wx[2].dim(), (boxes.len(), 7, 5));
        let via = planes.apply(&views);
        let diff = pooled.iter().zip(&via).map(|(a, b)| (a - b).abs() / (1.0 + a.abs())).fold(0.0, f32::max);
        assert!(diff < 1e-6, "planes differ from pooling by {diff}");
        // The inverted box has no level: zero rows everywhere.
        let inverted = boxes.len() - 5;
        assert!(planes.wx.iter().all(|wx| wx.index_axis(ndarray::Axis(0), inverted).iter().all(|&v| v == 0.0)));
        // Some box must land on every level, or the test checks less than it says.
        assert!((0..3).all(|l| pooler.levels(&boxes).contains(&Some(l))));
    }
}
