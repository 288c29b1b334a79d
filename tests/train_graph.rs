//! The training core computes torchvision's losses: for the fixture detectors, with the samplers' choices and
//! targets that tools/train_reference.py recorded from torchvision 0.23's own training forward, every loss term
//! of the emitted graph (run in ONNX Runtime) equals torchvision's, for the dense weights and for weights times
//! a 50% mask. The RoIAlign taps are computed here from the recorded RoI boxes (`MultiScaleRoIAlign::taps`).
//! The graph is also checked to be one that ORT 1.19 can train: opset 17, IR ≤ 10, no op without a CPU
//! gradient, masks as frozen initializers; and in the training venv (TICKET_TRAIN_PYTHON), ORT 1.19.2
//! training's gradients on it equal torch autograd's through torchvision's losses.
mod common;
#[path = "common/train_inputs.rs"]
mod train_inputs;
use common::*;
use std::collections::BTreeMap;
use ticket::detect::roi_align::MultiScaleRoIAlign;
use ticket::graph::train_core::{training_graph, TrainGraph, TrainOptions, TrainShape};
use ticket::graph::train_shape::Pooling;
use ticket::model::{Mask, Masks, ModelState};
use ticket::runtime::ort_check;
use ticket::train::Tensor;
use train_inputs::{fixture_data, scalar, shape_of, Fixture, ORT_TRAINING_STEP};

const MODELS: &[&str] = &["fasterrcnn_r18_fpn_voc", "maskrcnn_r18_fpn", "keypointrcnn_r50_fpn"];
/// Ops with no gradient builder or no CPU gradient kernel in ORT 1.19 training (docs/engine-facts.md).
const NO_CPU_GRADIENT: &[&str] = &["RoiAlign", "GridSample", "Einsum", "Softplus", "Resize", "ConvTranspose"];

/// The mask tools/train_reference.py applies (`keep_mask`): splitmix64 of FNV-1a(name) ^ index·golden ratio,
/// top bit.
fn keep_mask(name: &str, len: usize) -> Vec<u8> {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for byte in name.bytes() {
        h = (h ^ byte as u64).wrapping_mul(0x100_0000_01B3);
    }
    (0..len as u64)
        .map(|i| {
            let mut z = h ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 63) as u8
        })
        .collect()
}

fn state_with_masks(name: &str, fifty_percent: bool) -> ModelState {
    let path = fixture(&format!("{name}.onnx"));
    let mut state = ModelState::import(&path).unwrap();
    let map = state
        .prunable()
        .map(|w| {
            let keep = if fifty_percent { keep_mask(&w.name, w.numel()) } else { vec![1; w.numel()] };
            (w.name.clone(), Mask { shape: w.shape.clone(), keep })
        })
        .collect();
    state.apply_masks(Masks { map }, &path).unwrap();
    state
}

/// The graph's inputs from the fixture, in the graph's input order.
fn inputs(graph: &TrainGraph, fx: &Fixture) -> Vec<(String, Tensor)> {
    train_inputs::inputs(&graph.inputs, &graph.feature_hw, fx)
}

/// Runs the graph in ONNX Runtime (inference) and returns its scalar outputs by name.
fn run(graph: &TrainGraph, feed: Vec<(String, Tensor)>) -> BTreeMap<String, f32> {
    use prost::Message;
    let mut session = ort_check::session(&graph.model.encode_to_vec(), "training core").unwrap();
    let mut values = Vec::new();
    for (name, f) in feed {
        let v: ort::session::SessionInputValue = match f {
            Tensor::F32(a) => ort::value::Tensor::from_array(a).unwrap().into(),
            Tensor::I64(a) => ort::value::Tensor::from_array(a).unwrap().into(),
        };
        values.push((std::borrow::Cow::from(name), v));
    }
    let outputs = session.run(values).unwrap();
    graph
        .outputs
        .iter()
        .map(|name| {
            let v = outputs[name.as_str()].try_extract_array::<f32>().unwrap();
            assert_eq!(v.len(), 1, "{name} is not a scalar");
            (name.clone(), v.iter().next().copied().unwrap())
        })
        .collect()
}

fn rel(a: f32, b: f32) -> f32 {
    (a - b).abs() / b.abs().max(1e-6)
}

/// Every output equals torchvision's term (`loss` their sum) to 1e-4 relative.
fn assert_losses(name: &str, which: &str, ours: &BTreeMap<String, f32>, fx: &Fixture) {
    let mut total = 0.0f32;
    for (out, v) in ours.iter().filter(|(k, _)| *k != "loss") {
        let theirs = scalar(fx, &format!("{which}.{out}"));
        total += theirs;
        println!("{name} {which} {out}: ours {v}, torchvision {theirs}, rel {:.1e}", rel(*v, theirs));
        assert!(rel(*v, theirs) <= 1e-4, "{name} {which} {out}: ours {v}, torchvision {theirs} (rel {:.2e})", rel(*v, theirs));
    }
    let terms = fx.keys().filter(|k| k.starts_with(&format!("{which}.loss"))).count();
    assert_eq!(ours.len(), terms + 1, "{name}: outputs {:?}", ours.keys());
    assert!(rel(ours["loss"], total) <= 1e-4, "{name} {which} loss: {} vs {total}", ours["loss"]);
}

/// In both RoIAlign forms the core can take (taps on large canvases, planes on small ones).
fn losses_equal_torchvision(name: &str) {
    let fx = fixture_data(name);
    for pooling in [Pooling::Taps, Pooling::Planes] {
        let shape = TrainShape { pooling: Some(pooling), ..shape_of(&fx) };
        for (which, fifty) in [("dense", false), ("masked", true)] {
            let state = state_with_masks(name, fifty);
            let graph = training_graph(&state, &shape, &TrainOptions::default()).unwrap();
            assert_eq!(graph.input("box_idx").is_some(), pooling == Pooling::Taps);
            let ours = run(&graph, inputs(&graph, &fx));
            assert_losses(&format!("{name} ({pooling:?})"), which, &ours, &fx);
        }
    }
}

#[test]
fn faster_rcnn_losses_equal_torchvision() {
    losses_equal_torchvision("fasterrcnn_r18_fpn_voc");
}

#[test]
fn mask_rcnn_losses_equal_torchvision() {
    losses_equal_torchvision("maskrcnn_r18_fpn");
}

#[test]
fn keypoint_rcnn_losses_equal_torchvision() {
    losses_equal_torchvision("keypointrcnn_r50_fpn");
}

/// Both RoIAlign forms give the same losses on RoIs spread over P2..P5 (at 128² the fixtures' recorded RoIs pool
/// from P2 alone): the RoIs grown about their centres by 1, 2.5, 5 and 9 in turn, which puts some on every level
/// and many across the canvas edges.
#[test]
fn pooling_forms_agree_on_every_level() {
    for name in ["fasterrcnn_r18_fpn_voc", "maskrcnn_r18_fpn"] {
        let mut fx = fixture_data(name);
        for key in ["roi_boxes", "mask_boxes"] {
            let Some((_, v)) = fx.get_mut(key) else { continue };
            for (r, b) in v.chunks_mut(4).enumerate() {
                let k = [1.0, 2.5, 5.0, 9.0][r % 4];
                let (cx, cy, hw, hh) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0, (b[2] - b[0]) / 2.0 * k, (b[3] - b[1]) / 2.0 * k);
                b.copy_from_slice(&[cx - hw, cy - hh, cx + hw, cy + hh]);
            }
        }
        let shape = shape_of(&fx);
        let boxes: Vec<[f32; 4]> = fx["roi_boxes"].1.chunks(4).map(|b| [b[0] as f32, b[1] as f32, b[2] as f32, b[3] as f32]).collect();
        let pooler = MultiScaleRoIAlign::new(&[(32, 32), (16, 16), (8, 8), (4, 4)], (shape.height, shape.width), 7, 2).unwrap();
        let levels = pooler.levels(&boxes);
        assert!((0..4).all(|l| levels.contains(&Some(l))), "{name}: RoI levels {levels:?}");
        let state = state_with_masks(name, true);
        let losses = |pooling| {
            let graph = training_graph(&state, &TrainShape { pooling: Some(pooling), ..shape.clone() }, &TrainOptions::default()).unwrap();
            run(&graph, inputs(&graph, &fx))
        };
        let (taps, planes) = (losses(Pooling::Taps), losses(Pooling::Planes));
        for (k, v) in &taps {
            assert!(rel(planes[k], *v) <= 1e-5, "{name} {k}: taps {v}, planes {}", planes[k]);
        }
    }
}

/// Rows of weight 0 change no term, whatever their boxes, labels and targets hold (NaN targets included).
#[test]
fn padding_rows_change_nothing() {
    for name in ["fasterrcnn_r18_fpn_voc", "maskrcnn_r18_fpn", "keypointrcnn_r50_fpn"] {
        let fx = fixture_data(name);
        let state = state_with_masks(name, false);
        let graph = training_graph(&state, &shape_of(&fx), &TrainOptions::default()).unwrap();
        let before = run(&graph, inputs(&graph, &fx));
        let mut other = fx.clone();
        let classes = state.arch.num_classes.unwrap() as f64;
        let shift_box = |j: usize, v: f64| if j < 2 { v * 0.5 + 3.0 } else { v * 1.3 + 9.0 };
        let nan = |_: usize, _: f64| f64::NAN;
        let next_class = |_: usize, v: f64| (v + 1.0) % classes;
        let rows = zero_rows(&fx, "roi_weights");
        assert!(!rows.is_empty());
        alter_rows(&mut other, &rows, "roi_boxes", &shift_box);
        alter_rows(&mut other, &rows, "roi_labels", &next_class);
        alter_rows(&mut other, &rows, "roi_bbox_targets", &nan);
        if fx.contains_key("mask_boxes") {
            let rows = zero_rows(&fx, "mask_weights");
            assert!(!rows.is_empty());
            alter_rows(&mut other, &rows, "mask_boxes", &shift_box);
            alter_rows(&mut other, &rows, "mask_labels", &next_class);
            alter_rows(&mut other, &rows, "mask_targets", &nan);
        }
        if fx.contains_key("kp_boxes") {
            // Rows whose keypoints are all invalid: the padding (and any RoI with no visible keypoint in it).
            let rows = zero_rows(&fx, "kp_valid");
            assert!(!rows.is_empty());
            alter_rows(&mut other, &rows, "kp_boxes", &shift_box);
            alter_rows(&mut other, &rows, "kp_targets", &|_, v| (v + 57.0) % 3136.0);
        }
        assert_ne!(fx["roi_boxes"].1, other["roi_boxes"].1);
        let after = run(&graph, inputs(&graph, &other));
        for (k, v) in &before {
            assert!(rel(after[k], *v) <= 1e-6, "{name} {k}: {v} with the recorded padding, {} with other padding", after[k]);
        }
    }
}

/// The loss gradients ONNX Runtime training computes on the graph equal torch autograd's through torchvision's
/// losses (masked weights, torchvision's trainable_layers=3): per trainable parameter, the gradient's norm and its
/// dot product with a ±1 probe, to 1e-3 of the norm. Needs the training venv (TICKET_TRAIN_PYTHON).
#[test]
fn gradients_equal_torchvision() {
    let python = std::env::var_os("TICKET_TRAIN_PYTHON")
        .map(std::path::PathBuf::from)
        .filter(|p| p.exists())
        .expect("TICKET_TRAIN_PYTHON must point at the training venv's python: run the tests through tools/test.sh");
    for (name, pooling) in MODELS.iter().flat_map(|&n| [(n, Pooling::Taps), (n, Pooling::Planes)]) {
        let fx = fixture_data(name);
        let state = state_with_masks(name, true);
        let graph = training_graph(&state, &TrainShape { pooling: Some(pooling), ..shape_of(&fx) }, &TrainOptions::default()).unwrap();
        let dir = tempdir();
        use prost::Message;
        std::fs::write(dir.path().join("core.onnx"), graph.model.encode_to_vec()).unwrap();
        for (input, f) in inputs(&graph, &fx) {
            let bytes: Vec<u8> = match f {
                Tensor::F32(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
                Tensor::I64(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            std::fs::write(dir.path().join(format!("{input}.bin")), bytes).unwrap();
        }
        let meta = serde_json::json!({"trainable": graph.trainable, "frozen": graph.frozen, "inputs": graph.inputs});
        std::fs::write(dir.path().join("meta.json"), meta.to_string()).unwrap();
        let out = std::process::Command::new(&python).arg("-c").arg(ORT_TRAINING_STEP).arg(dir.path()).output().unwrap();
        assert!(out.status.success(), "{name}: ORT training failed: {}", String::from_utf8_lossy(&out.stderr));

        let reference: Vec<&String> = fx.keys().filter(|k| k.starts_with("masked.grad_norm.")).collect();
        assert_eq!(reference.len(), graph.trainable.len(), "{name}: torch trains other parameters than the graph");
        let mut worst = 0f64;
        for p in &graph.trainable {
            let bytes = std::fs::read(dir.path().join(format!("grad.{p}.bin"))).unwrap();
            let g: Vec<f64> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect();
            let probe = keep_mask(&format!("{p}#probe"), g.len());
            let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
            let dot: f64 = g.iter().zip(&probe).map(|(v, &k)| if k == 1 { *v } else { -*v }).sum();
            let (t_norm, t_dot) = (fx[&format!("masked.grad_norm.{p}")].1[0], fx[&format!("masked.grad_probe.{p}")].1[0]);
            // A floor for gradients that are zero up to rounding (a bias under a softmax over its own channel).
            let tol = 1e-3 * t_norm + 1e-6;
            let err = (norm - t_norm).abs().max((dot - t_dot).abs());
            assert!(err <= tol, "{name} {p}: ORT gradient norm {norm}, probe {dot}; torch {t_norm}, {t_dot}");
            worst = worst.max(err / tol);
        }
        println!("{name}: {} gradients equal torch's, worst at {worst:.1e} of the tolerance", graph.trainable.len());
    }
}

/// Rows of `key` that hold only zeros.
fn zero_rows(fx: &Fixture, key: &str) -> Vec<usize> {
    let (shape, v) = &fx[key];
    let per = v.len() / shape[0];
    (0..shape[0]).filter(|r| v[r * per..(r + 1) * per].iter().all(|&x| x == 0.0)).collect()
}

fn alter_rows(fx: &mut Fixture, rows: &[usize], key: &str, f: &dyn Fn(usize, f64) -> f64) {
    let (shape, v) = fx.get_mut(key).unwrap();
    let per = v.len() / shape[0];
    for &r in rows {
        for j in 0..per {
            v[r * per + j] = f(j, v[r * per + j]);
        }
    }
}

/// What ORT 1.19 training needs of the graph (docs/engine-facts.md).
#[test]
fn graph_is_trainable_by_ort_1_19() {
    for name in MODELS {
        let state = state_with_masks(name, true);
        let shape = TrainShape {
            batch: 2,
            height: 128,
            width: 96,
            rois_per_image: 8,
            mask_rois_per_image: 4,
            keypoint_rois_per_image: 4,
            pooling: Some(Pooling::Taps),
        };
        let graph = training_graph(&state, &shape, &TrainOptions::default()).unwrap();
        let m = &graph.model;
        assert!(m.ir_version() <= 10, "{name}: IR {}", m.ir_version());
        assert_eq!(m.opset_import.iter().map(|o| (o.domain().to_string(), o.version())).collect::<Vec<_>>(), vec![(String::new(), 17)]);
        let g = m.graph.as_ref().unwrap();
        for n in &g.node {
            assert!(!NO_CPU_GRADIENT.contains(&n.op_type()), "{name}: node {} is a {}", n.name(), n.op_type());
        }
        assert_eq!(graph.outputs[0], "loss");
        assert_eq!(g.output.iter().map(|o| o.name().to_string()).collect::<Vec<_>>(), graph.outputs);

        let inits: BTreeMap<&str, &ticket::onnx::proto::TensorProto> = g.initializer.iter().map(|t| (t.name(), t)).collect();
        assert_eq!(inits.len(), g.initializer.len(), "{name}: duplicate initializer names");
        for p in graph.trainable.iter().chain(&graph.frozen) {
            assert!(inits.contains_key(p.as_str()), "{name}: parameter {p} is not an initializer");
        }
        assert!(graph.trainable.iter().all(|t| !graph.frozen.contains(t)), "{name}: a parameter is both trainable and frozen");
        // Every prunable weight enters as W · M with M frozen, and W is zero where M is.
        let consumers =
            |v: &str| g.node.iter().filter(|n| n.input.iter().any(|i| i == v)).map(|n| n.op_type().to_string()).collect::<Vec<_>>();
        for w in state.prunable() {
            let mask = format!("{}.mask", w.name);
            assert!(graph.frozen.contains(&mask), "{name}: {mask} is not frozen");
            assert_eq!(consumers(&w.name), vec!["Mul"], "{name}: {} is used other than through its mask", w.name);
            let wv = ticket::onnx::tensor::f32_values(inits[w.name.as_str()], Some(inits[w.name.as_str()].raw_data())).unwrap();
            let mv = ticket::onnx::tensor::f32_values(inits[mask.as_str()], Some(inits[mask.as_str()].raw_data())).unwrap();
            assert!(wv.iter().zip(&mv).all(|(w, m)| *m == 1.0 || (*m == 0.0 && *w == 0.0)), "{name}: {} is not zero where masked", w.name);
        }
        // torchvision's trainable_layers=3: conv1 and layer1 of the body are frozen, layer2.. and the heads train.
        assert!(graph.frozen.contains(&"backbone.body.conv1.weight".to_string()));
        assert!(graph.frozen.contains(&"backbone.body.layer1.0.conv1.weight".to_string()));
        assert!(graph.trainable.contains(&"backbone.body.layer2.0.conv1.weight".to_string()));
        assert!(graph.trainable.contains(&"rpn.head.cls_logits.bias".to_string()));
        let all = training_graph(&state, &shape, &TrainOptions { trainable_layers: 5, ..Default::default() }).unwrap();
        assert!(all.frozen.iter().all(|f| f.ends_with(".mask")), "{name}: {:?}", all.frozen);
        // RoI inputs follow the shape: N = batch · rois_per_image, T = 16 taps.
        assert_eq!(graph.input("box_idx").unwrap().shape, vec![16, 49, 16]);
        // On this small canvas training pools with planes: per level, two interpolation matrices and no Gather.
        let planes = training_graph(&state, &TrainShape { pooling: None, ..shape.clone() }, &TrainOptions::default()).unwrap();
        assert_eq!(planes.input("box_wy0").unwrap().shape, vec![2, 8 * 7, 32]);
        assert_eq!(planes.input("box_wx3").unwrap().shape, vec![16, 1, 7, 3]);
        assert!(planes.input("box_idx").is_none());
        let ops: Vec<&str> = planes.model.graph.as_ref().unwrap().node.iter().map(|n| n.op_type()).collect();
        assert!(ops.iter().all(|op| !NO_CPU_GRADIENT.contains(op) && *op != "GatherND"), "{name}: {ops:?}");
        assert_eq!(graph.input("rpn_labels").unwrap().shape[0], 2);
    }
}

#[test]
fn bad_shapes_and_models_are_refused() {
    let state = state_with_masks("fasterrcnn_r18_fpn_voc", false);
    let ok = TrainShape {
        batch: 1,
        height: 128,
        width: 128,
        rois_per_image: 4,
        mask_rois_per_image: 0,
        keypoint_rois_per_image: 0,
        pooling: None,
    };
    assert!(training_graph(&state, &ok, &TrainOptions::default()).is_ok());
    for bad in
        [TrainShape { height: 100, ..ok.clone() }, TrainShape { batch: 0, ..ok.clone() }, TrainShape { rois_per_image: 0, ..ok.clone() }]
    {
        assert!(training_graph(&state, &bad, &TrainOptions::default()).is_err(), "{bad:?}");
    }
    assert!(training_graph(&state, &ok, &TrainOptions { trainable_layers: 6, ..Default::default() }).is_err());
    let mask = state_with_masks("maskrcnn_r18_fpn", false);
    let err = training_graph(&mask, &ok, &TrainOptions::default()).unwrap_err().to_string();
    assert!(err.contains("mask_rois_per_image"), "{err}");
    let classifier = ModelState::import(&fixture("resnet18.onnx")).unwrap();
    let err = training_graph(&classifier, &ok, &TrainOptions::default()).unwrap_err().to_string();
    assert!(err.contains("R-CNN"), "{err}");
}
