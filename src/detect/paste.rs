//! `paste_masks_in_image` (eval path): each detection's mask probabilities `[M, M]` (M = 28, the class the box
//! was detected as) are padded by one pixel, the box is enlarged by the same factor `(M + 2) / M` and cut to
//! integers, the padded mask is resized bilinearly to the integer box size, and the part inside the image is
//! placed on a zero canvas. Boxes are in original-image pixels (after [`crate::imaging::transform::rescale_boxes`]). The
//! result is probabilities; torchvision's users threshold them at 0.5.
//!
//! torchvision's traced variant (`_onnx_paste_mask_in_image`) computes the same canvas.
use crate::error::{bad_input, Result};
use crate::imaging::interpolate::resize_bilinear_window;
use crate::imaging::{BoxXyxy, Hw};
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, Axis};

/// Pixels of zero padding around each mask (`padding=1`).
pub const PADDING: usize = 1;

/// `expand_boxes(box, scale)` then `.to(int64)`: the box scaled about its centre, in float32, truncated.
fn expand_box(b: BoxXyxy, scale: f32) -> [i64; 4] {
    let w_half = (b[2] - b[0]) * 0.5 * scale;
    let h_half = (b[3] - b[1]) * 0.5 * scale;
    let x_c = (b[2] + b[0]) * 0.5;
    let y_c = (b[3] + b[1]) * 0.5;
    [(x_c - w_half) as i64, (y_c - h_half) as i64, (x_c + w_half) as i64, (y_c + h_half) as i64]
}

/// One detection's mask pasted into an image, kept only where the paste can be non-zero: `probs` is the part
/// of the canvas at rows `y0..y0 + h`, columns `x0..x0 + w`; every other pixel of the canvas is 0.
#[derive(Clone, Debug, PartialEq)]
pub struct PastedMask {
    pub y0: usize,
    pub x0: usize,
    pub probs: Array2<f32>,
    /// The canvas `(height, width)`.
    pub image_hw: Hw,
}

impl PastedMask {
    /// The whole canvas (what `paste_masks_in_image` returns for one mask).
    pub fn to_canvas(&self) -> Array2<f32> {
        let mut canvas = Array2::<f32>::zeros(self.image_hw);
        let (h, w) = self.probs.dim();
        canvas.slice_mut(s![self.y0..self.y0 + h, self.x0..self.x0 + w]).assign(&self.probs);
        canvas
    }

    /// The canvas value at `(y, x)`.
    pub fn at(&self, y: usize, x: usize) -> f32 {
        match (y.checked_sub(self.y0), x.checked_sub(self.x0)) {
            (Some(dy), Some(dx)) => self.probs.get((dy, dx)).copied().unwrap_or(0.0),
            _ => 0.0,
        }
    }
}

/// One detection's mask `[M, M]` pasted into an `image_hw` canvas, cropped to where it lands: memory is the
/// box's area, not the image's.
pub fn paste_mask_cropped(mask: ArrayView2<f32>, b: BoxXyxy, image_hw: Hw) -> PastedMask {
    let (m_h, m_w) = mask.dim();
    let mut padded = Array3::<f32>::zeros((1, m_h + 2 * PADDING, m_w + 2 * PADDING));
    padded.slice_mut(s![0, PADDING..PADDING + m_h, PADDING..PADDING + m_w]).assign(&mask);
    // `float(M + 2 * padding) / M` from the mask width, applied in float32.
    let scale = ((m_w + 2 * PADDING) as f64 / m_w.max(1) as f64) as f32;
    let [x0, y0, x1, y1] = expand_box(b, scale);
    let (im_h, im_w) = (image_hw.0 as i64, image_hw.1 as i64);
    // Saturating: a box at ±1e30 (or NaN, cast to 0) must paste nothing rather than overflow.
    let (cx0, cx1) = (x0.max(0), x1.saturating_add(1).min(im_w));
    let (cy0, cy1) = (y0.max(0), y1.saturating_add(1).min(im_h));
    if cx1 <= cx0 || cy1 <= cy0 {
        return PastedMask { y0: 0, x0: 0, probs: Array2::zeros((0, 0)), image_hw };
    }
    let w = x1.saturating_sub(x0).saturating_add(1).max(1) as usize;
    let h = y1.saturating_sub(y0).saturating_add(1).max(1) as usize;
    // Only the part inside the image is resized.
    let off = |c: i64, o: i64| (c as i128 - o as i128) as usize;
    let (rows, cols) = (off(cy0, y0)..off(cy1, y0), off(cx0, x0)..off(cx1, x0));
    let resized = resize_bilinear_window(padded.dim(), |c, y, x| padded[[c, y, x]], (h, w), rows, cols);
    PastedMask { y0: cy0 as usize, x0: cx0 as usize, probs: resized.index_axis_move(Axis(0), 0), image_hw }
}

/// One detection's mask `[M, M]` pasted into an `image_hw` canvas.
pub fn paste_mask_in_image(mask: ArrayView2<f32>, b: BoxXyxy, image_hw: Hw) -> Array2<f32> {
    paste_mask_cropped(mask, b, image_hw).to_canvas()
}

/// `paste_masks_in_image(masks, boxes, image_hw, padding=1)` for masks `[N, M, M]`: `[N, H, W]` probabilities.
/// N whole canvases: for comparing with torchvision on small images; detection pastes one mask at a time.
pub fn paste_masks_in_image(masks: ArrayView3<f32>, boxes: &[BoxXyxy], image_hw: Hw) -> Result<Array3<f32>> {
    if masks.dim().0 != boxes.len() {
        return Err(bad_input(format!("{} masks for {} boxes", masks.dim().0, boxes.len())));
    }
    let mut out = Array3::<f32>::zeros((boxes.len(), image_hw.0, image_hw.1));
    for (i, (mask, &b)) in masks.outer_iter().zip(boxes).enumerate() {
        out.index_axis_mut(Axis(0), i).assign(&paste_mask_in_image(mask, b, image_hw));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_outside_or_empty_inputs_paste_nothing() {
        let mask = Array2::from_elem((28, 28), 0.9f32);
        let out = paste_mask_in_image(mask.view(), [50.0, 50.0, 60.0, 60.0], (20, 30));
        assert!(out.iter().all(|&v| v == 0.0));
        assert_eq!(paste_masks_in_image(Array3::zeros((0, 28, 28)).view(), &[], (5, 5)).unwrap().dim(), (0, 5, 5));
        assert!(paste_masks_in_image(Array3::zeros((1, 28, 28)).view(), &[], (5, 5)).is_err());
    }

    #[test]
    fn a_box_over_the_corner_is_cut_at_the_image_border() {
        let mask = Array2::from_elem((28, 28), 1.0f32);
        let out = paste_mask_in_image(mask.view(), [-5.0, -5.0, 10.0, 10.0], (20, 20));
        assert!(out[[0, 0]] > 0.9 && out[[5, 5]] > 0.9);
        assert_eq!(out[[15, 15]], 0.0);
    }

    #[test]
    fn the_crop_is_the_canvas_where_the_box_lands() {
        let mask = Array2::from_shape_fn((28, 28), |(y, x)| ((x * 3 + y * 5) % 11) as f32 / 10.0);
        for b in [[-5.0, -5.0, 10.0, 10.0], [3.5, 2.25, 17.0, 11.0], [12.0, 8.0, 40.0, 30.0], [0.0, 0.0, 29.9, 19.9]] {
            let m = paste_mask_cropped(mask.view(), b, (20, 30));
            let canvas = m.to_canvas();
            assert!(canvas.indexed_iter().all(|((y, x), &v)| m.at(y, x) == v));
            // The crop against the full paste, computed the way torchvision does it (whole box, then cut).
            let scale = 30.0f32 / 28.0;
            let [x0, y0, x1, y1] = expand_box(b, scale);
            let mut padded = Array3::<f32>::zeros((1, 30, 30));
            padded.slice_mut(s![0, 1..29, 1..29]).assign(&mask);
            let full = crate::imaging::interpolate::resize_bilinear(padded.view(), (y1 - y0 + 1) as usize, (x1 - x0 + 1) as usize);
            for ((y, x), &v) in canvas.indexed_iter() {
                let (yy, xx) = (y as i64 - y0, x as i64 - x0);
                let want = if yy >= 0 && xx >= 0 && yy <= y1 - y0 && xx <= x1 - x0 { full[[0, yy as usize, xx as usize]] } else { 0.0 };
                assert_eq!(v.to_bits(), want.to_bits(), "{b:?} at ({y}, {x})");
            }
        }
    }

    #[test]
    fn non_finite_or_huge_boxes_paste_nothing_or_a_bounded_crop() {
        let mask = Array2::from_elem((28, 28), 0.9f32);
        for b in [[f32::NAN, 0.0, 1e30, f32::INFINITY], [-1e30, -1e30, -1e29, -1e29], [-1e30, -1e30, 1e30, 1e30]] {
            let m = paste_mask_cropped(mask.view(), b, (20, 30));
            assert!(m.probs.dim().0 <= 20 && m.probs.dim().1 <= 30, "{b:?}");
        }
    }
}
