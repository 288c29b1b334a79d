//! `paste_masks_in_image` (eval path): each detection's mask probabilities `[M, M]` (M = 28, the class the box
//! was detected as) are padded by one pixel, the box is enlarged by the same factor `(M + 2) / M` and cut to
//! integers, the padded mask is resized bilinearly to the integer box size, and the part inside the image is
//! placed on a zero canvas. Boxes are in original-image pixels (after [`super::transform::rescale_boxes`]). The
//! result is probabilities; torchvision's users threshold them at 0.5.
//!
//! torchvision's traced variant (`_onnx_paste_mask_in_image`) computes the same canvas.
use super::interpolate::resize_bilinear;
use super::{BoxXyxy, Hw};
use crate::error::{bad_input, Result};
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

/// One detection's mask `[M, M]` pasted into an `image_hw` canvas.
pub fn paste_mask_in_image(mask: ArrayView2<f32>, b: BoxXyxy, image_hw: Hw) -> Array2<f32> {
    let (m_h, m_w) = mask.dim();
    let mut padded = Array3::<f32>::zeros((1, m_h + 2 * PADDING, m_w + 2 * PADDING));
    padded.slice_mut(s![0, PADDING..PADDING + m_h, PADDING..PADDING + m_w]).assign(&mask);
    // `float(M + 2 * padding) / M` from the mask width, applied in float32.
    let scale = ((m_w + 2 * PADDING) as f64 / m_w.max(1) as f64) as f32;
    let [x0, y0, x1, y1] = expand_box(b, scale);
    let w = (x1 - x0 + 1).max(1);
    let h = (y1 - y0 + 1).max(1);
    let resized = resize_bilinear(padded.view(), h as usize, w as usize);
    let (im_h, im_w) = (image_hw.0 as i64, image_hw.1 as i64);
    let mut canvas = Array2::<f32>::zeros(image_hw);
    let (cx0, cx1) = (x0.max(0), (x1 + 1).min(im_w));
    let (cy0, cy1) = (y0.max(0), (y1 + 1).min(im_h));
    if cx1 > cx0 && cy1 > cy0 {
        let src = resized.slice(s![0, (cy0 - y0) as usize..(cy1 - y0) as usize, (cx0 - x0) as usize..(cx1 - x0) as usize]);
        canvas.slice_mut(s![cy0 as usize..cy1 as usize, cx0 as usize..cx1 as usize]).assign(&src);
    }
    canvas
}

/// `paste_masks_in_image(masks, boxes, image_hw, padding=1)` for masks `[N, M, M]`: `[N, H, W]` probabilities.
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
}
