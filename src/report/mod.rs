//! What a person reads or looks at: detections drawn on their image, and plots (plotters, PNG + SVG) that the
//! IMP report (`lottery::report`) assembles.
pub mod draw;
pub mod plot;

pub use draw::{class_colour, draw_detections};
