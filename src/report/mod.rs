//! What a person reads or looks at: detections drawn on their image, and the charts (plotters, PNG + SVG) that the
//! IMP report (`lottery::report`) assembles.
pub mod chart;
pub mod draw;

pub use draw::{class_colour, draw_detections};
