//! The numerics between the tract stages of a torchvision detector: everything torchvision 0.23 does in Python
//! (or in its own CPU kernels) on the eval path, redone in Rust so that stage graphs need no RoiAlign, Loop or
//! NonMaxSuppression (docs/engine-facts.md). Each file is one piece and matches torchvision's float32 CPU arithmetic
//! operation for operation, so results agree to rounding and index lists (NMS keeps, labels) agree exactly;
//! tests/detect_numerics.rs checks that against tools/detect_reference.py.
//!
//! Boxes are `[x1, y1, x2, y2]` in pixels of the resized image unless a function says otherwise. Tensors are
//! ndarray views in torch's layout (CHW, one image). The types and the geometry detection shares with training
//! (boxes, the resize transform, interpolation, RoIAlign sizes, the image reader) are in `imaging`.
pub mod anchors;
pub mod box_coder;
pub mod images;
pub mod keypoints;
pub mod nms;
pub mod order;
pub mod paste;
pub mod pipeline;
pub mod postprocess;
pub mod pseudo_gt;
pub mod report;
pub mod results;
pub mod roi_align;
pub mod roi_planes;
pub mod rpn;
