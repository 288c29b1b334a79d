//! The box helpers of `torchvision.ops.boxes` that detection and training use, on `[x1, y1, x2, y2]` boxes.
//! NaN propagates as in torch: `clamp` keeps NaN, so a NaN coordinate stays NaN rather than being clipped.
use super::{BoxXyxy, Hw};

/// `torch.clamp(v, min=0, max=hi)`: NaN stays NaN.
#[inline]
fn clamp_0(v: f32, hi: f32) -> f32 {
    if v < 0.0 {
        0.0
    } else if v > hi {
        hi
    } else {
        v
    }
}

/// `clip_boxes_to_image`: x to `[0, width]`, y to `[0, height]`.
#[inline]
pub fn clip_box(b: BoxXyxy, image_hw: Hw) -> BoxXyxy {
    let (h, w) = (image_hw.0 as f32, image_hw.1 as f32);
    [clamp_0(b[0], w), clamp_0(b[1], h), clamp_0(b[2], w), clamp_0(b[3], h)]
}

/// [`clip_box`] over a slice, in place.
pub fn clip_boxes_to_image(boxes: &mut [BoxXyxy], image_hw: Hw) {
    for b in boxes {
        *b = clip_box(*b, image_hw);
    }
}

/// `remove_small_boxes`: indices (ascending) of the boxes whose width and height are both `>= min_size`.
pub fn remove_small_boxes(boxes: &[BoxXyxy], min_size: f32) -> Vec<usize> {
    boxes.iter().enumerate().filter(|(_, b)| b[2] - b[0] >= min_size && b[3] - b[1] >= min_size).map(|(i, _)| i).collect()
}

/// `box_area`: `(x2 - x1)·(y2 - y1)` (negative for inverted boxes, as in torchvision).
#[inline]
pub fn box_area(b: BoxXyxy) -> f32 {
    (b[2] - b[0]) * (b[3] - b[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_inputs_and_nan_boxes() {
        assert!(remove_small_boxes(&[], 1.0).is_empty());
        let b = clip_box([f32::NAN, -3.0, 200.0, 5.0], (100, 150));
        assert!(b[0].is_nan() && b[1] == 0.0 && b[2] == 150.0 && b[3] == 5.0);
        assert_eq!(remove_small_boxes(&[[0.0, 0.0, 1.0, 0.5], [0.0, 0.0, 1.0, 1.0]], 1.0), vec![1]);
        assert_eq!(box_area([1.0, 2.0, 4.0, 6.0]), 12.0);
    }
}
