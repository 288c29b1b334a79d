//! The teacher of a distilling run: the dense model, checked against the student, emitted as the forward graph of
//! `graph::distill` in the run's work folder, and run by the worker's ONNX Runtime on each step's batch and the
//! student's sampled RoIs. ORT rather than tract: the signals are graph inputs of the step the worker runs next,
//! and the teacher needs the same Gather-tap RoIAlign the core uses (tract's stages pool in Rust, per image).
use super::protocol::Tensor;
use super::worker::Worker;
use crate::error::{Error, Result};
use crate::fsio::write_atomic;
use crate::graph::distill::{teacher_graph, Distill};
use crate::graph::train_core::TrainShape;
use crate::model::ModelState;
use std::path::{Path, PathBuf};

pub struct Teacher {
    /// The teacher's forward graph (work/teacher_forward.onnx).
    model: PathBuf,
    /// The step inputs it takes (images and RoIAlign taps).
    inputs: Vec<String>,
    pub distill: Distill,
}

impl Teacher {
    /// Writes the teacher's forward graph for `shape` into `work`.
    pub fn prepare(teacher: &ModelState, shape: &TrainShape, distill: Distill, work: &Path) -> Result<Teacher> {
        let graph = teacher_graph(teacher, shape, &distill)?;
        let inputs = graph.graph.as_ref().map(|g| g.input.iter().map(|i| i.name().to_string()).collect()).unwrap_or_default();
        let model = work.join("teacher_forward.onnx");
        write_atomic(&model, &prost::Message::encode_to_vec(&graph))?;
        Ok(Teacher { model, inputs, distill })
    }

    /// The teacher's signals on a step: its forward on the step's images and RoIAlign taps among `step`.
    pub fn signals(&self, worker: &mut Worker, step: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>> {
        let feed: Vec<(&str, &Tensor)> = step.iter().filter(|(n, _)| self.inputs.contains(n)).map(|(n, t)| (n.as_str(), t)).collect();
        if feed.len() != self.inputs.len() {
            return Err(Error::Runtime(format!("teacher forward: the step lacks one of its inputs {:?}", self.inputs)));
        }
        worker.forward(&self.model, &feed)
    }
}

/// The teacher can teach the student: the same kind of detector with the same classes, anchors, FPN levels and
/// keypoints (widths may differ: a channel ticket learns from its dense model). The message names both files.
pub fn check_teacher(teacher: &ModelState, student: &ModelState) -> Result<()> {
    let (t, s) = (&teacher.arch, &student.arch);
    let what = |a: &crate::model::ArchSpec| {
        format!(
            "a {} with {} classes, {} anchors per location{}",
            a.kind.label(),
            a.num_classes.unwrap_or(0),
            a.anchors_per_location.unwrap_or(0),
            a.num_keypoints.map(|k| format!(", {k} keypoints")).unwrap_or_default()
        )
    };
    let same = t.kind == s.kind
        && t.num_classes == s.num_classes
        && t.anchors_per_location == s.anchors_per_location
        && t.num_keypoints == s.num_keypoints
        && t.fpn_channels.is_some()
        && t.backbone.is_some();
    if !same {
        return Err(Error::input(
            teacher.path(),
            format!("cannot teach {}: the teacher is {}, the student {}", student.path().display(), what(t), what(s)),
        ));
    }
    Ok(())
}
