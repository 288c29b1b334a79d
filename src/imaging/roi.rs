//! The RoIAlign sizes of torchvision's detectors: what detection pools with (`detect::roi_align`) and what the
//! training graph's heads are shaped for (`graph::train_core`), so both read them from here.

/// Samples per bin side in torchvision's detectors (`sampling_ratio=2`).
pub const SAMPLING_RATIO: usize = 2;
/// Output side of the box head's pooling.
pub const BOX_OUTPUT_SIZE: usize = 7;
/// Output side of the mask and keypoint heads' pooling.
pub const MASK_OUTPUT_SIZE: usize = 14;
