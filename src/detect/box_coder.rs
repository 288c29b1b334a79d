//! torchvision's `BoxCoder` (R-CNN box parameterisation). Decoding and encoding are shared by detection and
//! training target building; the box helpers (clipping, areas) are `imaging::boxes`.
//! NaN propagates as in torch: `clamp` keeps NaN, so a NaN delta gives a NaN box rather than a clipped one.
use crate::imaging::BoxXyxy;

/// `ln(1000 / 16)`: the largest log-scale a width or height delta may apply (torchvision's `bbox_xform_clip`).
pub const BBOX_XFORM_CLIP: f32 = 4.135_166_556_742_356_f64 as f32;

/// Weights that divide `(dx, dy, dw, dh)` when decoding and multiply them when encoding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoxCoder {
    pub weights: [f32; 4],
    pub bbox_xform_clip: f32,
}

impl BoxCoder {
    /// The RPN's coder: weights (1, 1, 1, 1).
    pub const RPN: BoxCoder = BoxCoder { weights: [1.0; 4], bbox_xform_clip: BBOX_XFORM_CLIP };
    /// The box head's coder: weights (10, 10, 5, 5).
    pub const ROI_HEADS: BoxCoder = BoxCoder { weights: [10.0, 10.0, 5.0, 5.0], bbox_xform_clip: BBOX_XFORM_CLIP };

    /// Applies `code = (dx, dy, dw, dh)` to `reference` (`decode_single` for one box).
    #[inline]
    pub fn decode_one(&self, code: [f32; 4], reference: BoxXyxy) -> BoxXyxy {
        let width = reference[2] - reference[0];
        let height = reference[3] - reference[1];
        let ctr_x = reference[0] + 0.5 * width;
        let ctr_y = reference[1] + 0.5 * height;
        let [wx, wy, ww, wh] = self.weights;
        let dx = code[0] / wx;
        let dy = code[1] / wy;
        let dw = clamp_max(code[2] / ww, self.bbox_xform_clip);
        let dh = clamp_max(code[3] / wh, self.bbox_xform_clip);
        let pred_ctr_x = dx * width + ctr_x;
        let pred_ctr_y = dy * height + ctr_y;
        let half_w = 0.5 * (dw.exp() * width);
        let half_h = 0.5 * (dh.exp() * height);
        [pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h]
    }

    /// Decodes one code per reference box.
    pub fn decode(&self, codes: &[[f32; 4]], references: &[BoxXyxy]) -> Vec<BoxXyxy> {
        assert_eq!(codes.len(), references.len(), "one box code per reference box");
        codes.iter().zip(references).map(|(&c, &r)| self.decode_one(c, r)).collect()
    }

    /// The code that turns `proposal` into `gt` (`encode_single` for one box).
    #[inline]
    pub fn encode_one(&self, gt: BoxXyxy, proposal: BoxXyxy) -> [f32; 4] {
        let ex_w = proposal[2] - proposal[0];
        let ex_h = proposal[3] - proposal[1];
        let ex_ctr_x = proposal[0] + 0.5 * ex_w;
        let ex_ctr_y = proposal[1] + 0.5 * ex_h;
        let gt_w = gt[2] - gt[0];
        let gt_h = gt[3] - gt[1];
        let gt_ctr_x = gt[0] + 0.5 * gt_w;
        let gt_ctr_y = gt[1] + 0.5 * gt_h;
        let [wx, wy, ww, wh] = self.weights;
        [wx * (gt_ctr_x - ex_ctr_x) / ex_w, wy * (gt_ctr_y - ex_ctr_y) / ex_h, ww * (gt_w / ex_w).ln(), wh * (gt_h / ex_h).ln()]
    }

    /// Encodes each ground-truth box against its proposal.
    pub fn encode(&self, gt: &[BoxXyxy], proposals: &[BoxXyxy]) -> Vec<[f32; 4]> {
        assert_eq!(gt.len(), proposals.len(), "one ground-truth box per proposal");
        gt.iter().zip(proposals).map(|(&g, &p)| self.encode_one(g, p)).collect()
    }
}

/// `torch.clamp(v, max=hi)`: NaN stays NaN.
#[inline]
fn clamp_max(v: f32, hi: f32) -> f32 {
    if v > hi {
        hi
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_constant_is_ln_1000_over_16() {
        assert_eq!(BBOX_XFORM_CLIP, (1000.0f64 / 16.0).ln() as f32);
    }

    #[test]
    fn encode_inverts_decode_and_clamps_large_scales() {
        let p = [10.0, 20.0, 50.0, 60.0];
        let g = [12.0, 18.0, 47.0, 70.0];
        let c = BoxCoder::ROI_HEADS;
        let back = c.decode_one(c.encode_one(g, p), p);
        assert!(back.iter().zip(g).all(|(a, b)| (a - b).abs() < 1e-4), "{back:?}");
        let huge = BoxCoder::RPN.decode_one([0.0, 0.0, 100.0, 100.0], [0.0, 0.0, 16.0, 16.0]);
        assert!((huge[2] - huge[0] - 1000.0).abs() < 1e-2, "{huge:?}");
    }

    #[test]
    fn empty_inputs() {
        assert!(BoxCoder::RPN.decode(&[], &[]).is_empty());
    }
}
