//! Images and the geometry on them, shared by detection, training data and the training graph: the `(height,
//! width)` and box types, torchvision's box helpers, the eval transform (normalise, resize, pad) and its bilinear
//! and bicubic interpolation, the bounded image reader, and the RoIAlign output sizes.
//!
//! Boxes are `[x1, y1, x2, y2]` in pixels; tensors are ndarray views in torch's layout (CHW, one image).
pub mod boxes;
pub mod interpolate;
pub mod reader;
pub mod roi;
pub mod transform;

/// A box as torchvision stores it: `(x1, y1, x2, y2)`.
pub type BoxXyxy = [f32; 4];

/// `(height, width)` of an image or feature map, in torch's order.
pub type Hw = (usize, usize);
