//! What a person reads or looks at: detections drawn on their image.
pub mod draw;

pub use draw::{class_colour, draw_detections};
