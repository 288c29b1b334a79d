//! Datasets, read the same way by training and evaluation: COCO json and Pascal VOC folders ([`Dataset`]),
//! the synthetic set (`synth`), COCO's keypoint conventions and the seeded generator everything random draws
//! from. Below train and eval; it knows no model.
pub mod check;
pub mod classes;
pub mod classify;
pub mod dataset;
pub mod joined;
pub mod keypoints;
pub mod rng;
pub mod spec;
pub mod synth;
pub mod voc;

pub use classes::{check_classes, check_classify_classes};
pub use classify::ClassifyDataset;
pub use dataset::{Canvas, CanvasSample, Category, Dataset, ImageEntry, Object, Sample};
pub use rng::SeededRng;
pub use spec::{default_images, DataSpec};
