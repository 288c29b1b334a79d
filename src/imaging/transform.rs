//! `GeneralizedRCNNTransform` on the eval path (one image): normalise, resize so the short side is `min_size`
//! unless that makes the long side exceed `max_size`, zero-pad bottom/right to multiples of 32; and the inverse
//! of the resize that `transform.postprocess` applies to boxes and keypoints.
use super::interpolate::resize_bilinear_with;
use super::{BoxXyxy, Hw};
use crate::error::{bad_input, Result};
use ndarray::{s, Array3, ArrayView3};

/// torchvision's ImageNet statistics, the detectors' `image_mean` / `image_std`.
pub const IMAGE_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGE_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Padded sides are multiples of this (`size_divisible`).
pub const SIZE_DIVISIBLE: usize = 32;

/// What the backbone sees and the sizes needed to map results back.
#[derive(Clone, Debug)]
pub struct Transformed {
    /// Normalised, resized and zero-padded image, `[3, H_pad, W_pad]`.
    pub image: Array3<f32>,
    /// Size after resizing, before padding (`ImageList.image_sizes`): boxes are clipped to it.
    pub resized_hw: Hw,
    /// Size of the input image (`original_image_sizes`).
    pub original_hw: Hw,
}

/// The resized size: `scale = min(min_size / min(h, w), max_size / max(h, w))` in double precision and
/// `floor(side * scale)`, as eager `F.interpolate(scale_factor=scale, recompute_scale_factor=True)` computes it.
/// (A traced ONNX export computes the same in float32, which can differ by a pixel for unlucky sizes.)
pub fn resized_size(hw: Hw, min_size: usize, max_size: usize) -> Hw {
    let (h, w) = (hw.0 as f64, hw.1 as f64);
    let scale = (min_size as f64 / h.min(w)).min(max_size as f64 / h.max(w));
    ((h * scale) as usize, (w * scale) as usize)
}

/// An RGB image as torchvision's `to_tensor` gives it: `[3, H, W]`, values `u8 / 255` in float32.
pub fn rgb_to_chw(img: &image::RgbImage) -> Array3<f32> {
    let (w, h) = img.dimensions();
    Array3::from_shape_fn((3, h as usize, w as usize), |(c, y, x)| img.get_pixel(x as u32, y as u32)[c] as f32 / 255.0)
}

/// The eval transform of an RGB image (see [`transform_chw`]), without the float copy of the whole image:
/// each pixel the resize reads is converted and normalised where it is read, with the same float32 operations
/// as `rgb_to_chw` then [`transform_chw`], so the result is the same to the bit.
pub fn transform_rgb(img: &image::RgbImage, min_size: usize, max_size: usize) -> Result<Transformed> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    transform_with((3, h, w), |c, y, x| (raw[(y * w + x) * 3 + c] as f32 / 255.0 - IMAGE_MEAN[c]) / IMAGE_STD[c], min_size, max_size)
}

/// The eval transform of a float image `[3, H, W]` with values in `[0, 1]`: `(x - mean) / std`, bilinear resize
/// (align_corners=False) to [`resized_size`], zero padding to multiples of [`SIZE_DIVISIBLE`].
pub fn transform_chw(image: ArrayView3<f32>, min_size: usize, max_size: usize) -> Result<Transformed> {
    transform_with(image.dim(), |c, y, x| (image[[c, y, x]] - IMAGE_MEAN[c]) / IMAGE_STD[c], min_size, max_size)
}

/// The transform of the `[C, H, W]` image whose normalised value at `(c, y, x)` is `normalised(c, y, x)`.
fn transform_with(
    dim: (usize, usize, usize),
    normalised: impl Fn(usize, usize, usize) -> f32,
    min_size: usize,
    max_size: usize,
) -> Result<Transformed> {
    let (c, h, w) = dim;
    if c != 3 || h == 0 || w == 0 {
        return Err(bad_input(format!("detector input must be a non-empty [3, H, W] image, got {:?}", [c, h, w])));
    }
    if min_size == 0 || max_size == 0 {
        return Err(bad_input(format!("transform sizes must be positive (min_size {min_size}, max_size {max_size})")));
    }
    let (rh, rw) = resized_size((h, w), min_size, max_size);
    if rh == 0 || rw == 0 {
        return Err(bad_input(format!("image {h}x{w} resizes to an empty image (min_size {min_size}, max_size {max_size})")));
    }
    let resized = resize_bilinear_with(dim, normalised, rh, rw);
    let pad = |v: usize| v.div_ceil(SIZE_DIVISIBLE) * SIZE_DIVISIBLE;
    let mut padded = Array3::<f32>::zeros((3, pad(rh), pad(rw)));
    padded.slice_mut(s![.., ..rh, ..rw]).assign(&resized);
    Ok(Transformed { image: padded, resized_hw: (rh, rw), original_hw: (h, w) })
}

/// `new / old` per side in float32, as `resize_boxes` / `resize_keypoints` compute their ratios.
fn ratios(from: Hw, to: Hw) -> (f32, f32) {
    (to.0 as f32 / from.0 as f32, to.1 as f32 / from.1 as f32)
}

/// Boxes from resized-image pixels to original-image pixels (`transform.postprocess`).
pub fn rescale_boxes(boxes: &[BoxXyxy], resized_hw: Hw, original_hw: Hw) -> Vec<BoxXyxy> {
    let (rh, rw) = ratios(resized_hw, original_hw);
    boxes.iter().map(|b| [b[0] * rw, b[1] * rh, b[2] * rw, b[3] * rh]).collect()
}

/// Keypoints `(x, y, visibility)` from resized-image pixels to original-image pixels; visibility is kept.
pub fn rescale_keypoints(keypoints: &[[f32; 3]], resized_hw: Hw, original_hw: Hw) -> Vec<[f32; 3]> {
    let (rh, rw) = ratios(resized_hw, original_hw);
    keypoints.iter().map(|k| [k[0] * rw, k[1] * rh, k[2]]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_binding_side_and_pad_to_32() {
        assert_eq!(resized_size((480, 640), 800, 1333), (800, 1066));
        assert_eq!(resized_size((100, 1000), 800, 1333), (133, 1333));
        let t = transform_chw(Array3::from_elem((3, 10, 20), 0.5).view(), 16, 64).unwrap();
        assert_eq!((t.resized_hw, t.original_hw, t.image.dim()), ((16, 32), (10, 20), (3, 32, 32)));
        assert!(t.image.slice(s![.., 16.., ..]).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn empty_or_grey_images_are_rejected() {
        assert!(transform_chw(Array3::zeros((3, 0, 5)).view(), 800, 1333).is_err());
        assert!(transform_chw(Array3::zeros((1, 5, 5)).view(), 800, 1333).is_err());
        assert!(rescale_boxes(&[], (10, 10), (20, 20)).is_empty());
    }

    #[test]
    fn the_rgb_transform_equals_the_float_one_to_the_bit() {
        let img = image::RgbImage::from_fn(97, 61, |x, y| image::Rgb([(x * 7 + y) as u8, (y * 13) as u8, (x ^ y) as u8]));
        for (min, max) in [(50, 80), (800, 1333), (61, 97), (16, 20)] {
            let a = transform_rgb(&img, min, max).unwrap();
            let b = transform_chw(rgb_to_chw(&img).view(), min, max).unwrap();
            assert_eq!((a.resized_hw, a.original_hw), (b.resized_hw, b.original_hw));
            assert!(a.image.iter().zip(b.image.iter()).all(|(x, y)| x.to_bits() == y.to_bits()), "{min} {max}");
        }
    }
}
