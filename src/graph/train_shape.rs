//! What the training core and its distillation terms share: the fixed shapes of a step and the constants of
//! torchvision's losses and RoIAlign sampling (here, below both, so neither emitter imports the other for them).
use crate::imaging::roi::SAMPLING_RATIO;
use serde::Serialize;

/// Taps per RoIAlign bin: four bilinear neighbours of each of `SAMPLING_RATIO²` samples.
pub const TAPS: usize = 4 * SAMPLING_RATIO * SAMPLING_RATIO;
/// torchvision's smooth-L1 β for both the RPN and the box head.
pub const SMOOTH_L1_BETA: f32 = 1.0 / 9.0;

/// The fixed shapes of one training step; one ORT artifact set is generated per value (docs/engine-facts.md: shapes must
/// be static). RoI counts are per image; unused rows are padding with weight 0.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct TrainShape {
    pub batch: usize,
    /// Padded canvas, multiples of 32 (the FPN's nearest upsampling is exact only there).
    pub height: usize,
    pub width: usize,
    /// Box-head RoIs per image (torchvision samples 512).
    pub rois_per_image: usize,
    /// Mask-head RoIs (the positive box RoIs) per image; ignored without a mask head.
    pub mask_rois_per_image: usize,
    /// Keypoint-head RoIs (the positive box RoIs) per image; ignored without a keypoint head.
    pub keypoint_rois_per_image: usize,
}
