//! The training core's inputs from the committed torch reference batches (tests/fixtures/train/*.safetensors,
//! written by tools/train_reference.py), shared by tests/train_graph.rs and tests/train_session.rs. The
//! RoIAlign inputs are computed here from the recorded RoI boxes, as the training loop computes them.
//!
//! Include it with `mod common;` (for the fixture helpers) and `#[path = "common/train_inputs.rs"] mod train_inputs;`.
#![allow(dead_code)]
use crate::common::{fixture, read_safetensors};
use ndarray::{ArrayD, IxDyn};
use std::collections::BTreeMap;
use ticket::detect::roi_align::MultiScaleRoIAlign;
use ticket::graph::train_core::{ElemType, TensorSpec, TrainShape};
use ticket::graph::train_shape::Pooling;
use ticket::imaging::roi::{BOX_OUTPUT_SIZE, MASK_OUTPUT_SIZE, SAMPLING_RATIO};
use ticket::imaging::Hw;
use ticket::train::step_inputs::{pool_rows, stack_images};
use ticket::train::Tensor;

pub type Fixture = BTreeMap<String, (Vec<usize>, Vec<f64>)>;

pub fn fixture_data(name: &str) -> Fixture {
    read_safetensors(&fixture(&format!("train/{name}.safetensors")))
}

pub fn f32s(fx: &Fixture, key: &str) -> ArrayD<f32> {
    let (shape, v) = fx.get(key).unwrap_or_else(|| panic!("fixture has no '{key}'"));
    ArrayD::from_shape_vec(IxDyn(shape), v.iter().map(|&x| x as f32).collect()).unwrap()
}

pub fn i64s(fx: &Fixture, key: &str) -> ArrayD<i64> {
    let (shape, v) = fx.get(key).unwrap_or_else(|| panic!("fixture has no '{key}'"));
    ArrayD::from_shape_vec(IxDyn(shape), v.iter().map(|&x| x as i64).collect()).unwrap()
}

pub fn scalar(fx: &Fixture, key: &str) -> f32 {
    fx.get(key).unwrap_or_else(|| panic!("fixture has no '{key}'")).1[0] as f32
}

/// [batch, height, width, box rows per image, mask/keypoint rows per image]
pub fn shape_of(fx: &Fixture) -> TrainShape {
    let s: Vec<usize> = fx["shape"].1.iter().map(|&v| v as usize).collect();
    TrainShape {
        batch: s[0],
        height: s[1],
        width: s[2],
        rois_per_image: s[3],
        mask_rois_per_image: s[4],
        keypoint_rois_per_image: s[4],
        pooling: None,
    }
}

/// The RoIAlign inputs of `boxes [rows·batch, 4]` (image-major, `per_image` rows each) for `prefix`, in the form
/// `shape` pools with, as the training loop makes them (`step_inputs::pool_rows`, stacked over the images).
pub fn pool_inputs(
    feature_hw: &[Hw],
    shape: &TrainShape,
    prefix: &str,
    boxes: &ArrayD<f32>,
    per_image: usize,
    output_size: usize,
) -> Vec<(String, Tensor)> {
    let pooler = MultiScaleRoIAlign::new(&feature_hw[..4], (shape.height, shape.width), output_size, SAMPLING_RATIO).unwrap();
    let boxes = boxes.view().into_dimensionality::<ndarray::Ix2>().unwrap();
    let per: Vec<Vec<(String, Tensor)>> = (0..shape.batch)
        .map(|b| {
            let rows: Vec<[f32; 4]> =
                boxes.rows().into_iter().skip(b * per_image).take(per_image).map(|r| [r[0], r[1], r[2], r[3]]).collect();
            pool_rows(&pooler, shape, prefix, &rows, b).unwrap()
        })
        .collect();
    stack_images(&per.iter().map(|p| p.as_slice()).collect::<Vec<_>>()).unwrap()
}

/// The images of the fixture as the graph takes them: normalised with torchvision's mean and std.
pub fn images(fx: &Fixture) -> ArrayD<f32> {
    let mean = [0.485f32, 0.456, 0.406];
    let std = [0.229f32, 0.224, 0.225];
    let mut images = f32s(fx, "images_u8");
    for ((_, c, _, _), v) in images.view_mut().into_dimensionality::<ndarray::Ix4>().unwrap().indexed_iter_mut() {
        *v = (*v / 255.0 - mean[c]) / std[c];
    }
    images
}

/// The graph's inputs from the fixture, in the graph's input order (checked against `specs`: names, element
/// types, shapes).
pub fn inputs(specs: &[TensorSpec], feature_hw: &[Hw], fx: &Fixture) -> Vec<(String, Tensor)> {
    // The RoIAlign form the graph was emitted with (a test may have set it on the shape).
    let taps = specs.iter().any(|s| s.name == "box_idx");
    let shape = TrainShape { pooling: Some(if taps { Pooling::Taps } else { Pooling::Planes }), ..shape_of(fx) };
    let mut feed = vec![
        ("images".to_string(), Tensor::F32(images(fx))),
        ("rpn_labels".into(), Tensor::F32(f32s(fx, "rpn_labels"))),
        ("rpn_bbox_targets".into(), Tensor::F32(f32s(fx, "rpn_bbox_targets"))),
    ];
    feed.extend(pool_inputs(feature_hw, &shape, "box", &f32s(fx, "roi_boxes"), shape.rois_per_image, BOX_OUTPUT_SIZE));
    feed.push(("roi_labels".into(), Tensor::I64(i64s(fx, "roi_labels"))));
    feed.push(("roi_bbox_targets".into(), Tensor::F32(f32s(fx, "roi_bbox_targets"))));
    feed.push(("roi_weights".into(), Tensor::F32(f32s(fx, "roi_weights"))));
    if fx.contains_key("mask_boxes") {
        feed.extend(pool_inputs(feature_hw, &shape, "mask", &f32s(fx, "mask_boxes"), shape.mask_rois_per_image, MASK_OUTPUT_SIZE));
        feed.push(("mask_labels".into(), Tensor::I64(i64s(fx, "mask_labels"))));
        feed.push(("mask_targets".into(), Tensor::F32(f32s(fx, "mask_targets"))));
        feed.push(("mask_weights".into(), Tensor::F32(f32s(fx, "mask_weights"))));
    }
    if fx.contains_key("kp_boxes") {
        feed.extend(pool_inputs(feature_hw, &shape, "kp", &f32s(fx, "kp_boxes"), shape.keypoint_rois_per_image, MASK_OUTPUT_SIZE));
        feed.push(("kp_targets".into(), Tensor::I64(i64s(fx, "kp_targets"))));
        feed.push(("kp_valid".into(), Tensor::F32(f32s(fx, "kp_valid"))));
    }
    // The fixture feeds exactly the inputs the graph declares, with their types and shapes.
    assert_eq!(feed.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), specs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>());
    for ((name, f), spec) in feed.iter().zip(specs) {
        let elem = match f {
            Tensor::F32(_) => ElemType::F32,
            Tensor::I64(_) => ElemType::I64,
        };
        assert_eq!((elem, f.shape()), (spec.elem, spec.shape.as_slice()), "input {name}");
    }
    feed
}

/// ONNX Runtime training (1.19.2, the venv tools/setup.sh makes) on the graph: artifacts, one forward and
/// backward; writes each trainable parameter's gradient as `grad.NAME.bin` (f32) into `dir`.
pub const ORT_TRAINING_STEP: &str = r#"
import json, os, sys, types, importlib.util
import numpy as np
# onnxruntime.training's __init__ imports torch; api and artifacts do not need it (as tools/train_worker.py).
spec = importlib.util.find_spec("onnxruntime")
pkg = types.ModuleType("onnxruntime.training")
pkg.__path__ = [os.path.join(os.path.dirname(spec.origin), "training")]
sys.modules["onnxruntime.training"] = pkg
import onnx
from onnxruntime.training import api, artifacts

d = sys.argv[1]
meta = json.load(open(os.path.join(d, "meta.json")))
art = os.path.join(d, "artifacts")
os.makedirs(art)
artifacts.generate_artifacts(onnx.load(os.path.join(d, "core.onnx")), requires_grad=meta["trainable"],
                             frozen_params=meta["frozen"], loss=None, optimizer=artifacts.OptimType.AdamW,
                             artifact_directory=art)
state = api.CheckpointState.load_checkpoint(os.path.join(art, "checkpoint"))
module = api.Module(os.path.join(art, "training_model.onnx"), state, os.path.join(art, "eval_model.onnx"), device="cpu")
dtypes = {"f32": np.float32, "i64": np.int64}
feed = {i["name"]: np.fromfile(os.path.join(d, i["name"] + ".bin"), dtype=dtypes[i["elem"]]).reshape(i["shape"])
        for i in meta["inputs"]}
module.train()
module(*[feed[n] for n in module.input_names()])
for n in meta["trainable"]:
    np.ascontiguousarray(state.parameters[n].grad, dtype=np.float32).tofile(os.path.join(d, "grad." + n + ".bin"))
"#;
