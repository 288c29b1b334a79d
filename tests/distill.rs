//! The distillation terms of the training core (src/graph/distill.rs) equal an independent float64 numpy reference
//! (tools/distill_reference.py) on the same inputs, to 1e-5 relative: for the three fixture detectors (a 50%-masked
//! student, the dense model as teacher) and for a channel ticket whose FPN is narrower than its teacher's. The
//! student's signals for the reference come from the teacher graph emitted for the student's own weights, on the
//! same batch and RoIs. ONNX Runtime training's gradient of the logits term equals its analytic form.
mod common;
#[path = "common/train_inputs.rs"]
mod train_inputs;
use common::*;
use ndarray::ArrayD;
use std::collections::BTreeMap;
use std::path::Path;
use ticket::graph::distill::{teacher_graph, Distill, Term};
use ticket::graph::train_core::{training_graph, TrainGraph, TrainOptions, TrainShape};
use ticket::model::{Mask, Masks, ModelState};
use ticket::prune::channel::{prune_channels, ChannelParams};
use ticket::runtime::ort_check;
use ticket::train::Tensor;
use train_inputs::{fixture_data, shape_of, Fixture, ORT_TRAINING_STEP};

const MODELS: &[&str] = &["fasterrcnn_r18_fpn_voc", "maskrcnn_r18_fpn", "keypointrcnn_r50_fpn"];
const ALL: &[Term] = &[Term::Features, Term::Logits, Term::Objectness];

/// Every other weight of every prunable tensor zeroed (a fixed 50% mask).
fn masked(name: &str) -> ModelState {
    let path = fixture(&format!("{name}.onnx"));
    let mut state = ModelState::import(&path).unwrap();
    let map = state
        .prunable()
        .map(|w| (w.name.clone(), Mask { shape: w.shape.clone(), keep: (0..w.numel()).map(|i| (i % 2) as u8).collect() }))
        .collect();
    state.apply_masks(Masks { map }, &path).unwrap();
    state
}

fn distill(teacher: &ModelState, terms: &[Term], weight: f32) -> Distill {
    Distill { terms: terms.to_vec(), weight, temperature: 2.0, teacher_channels: teacher.arch.fpn_channels.unwrap() }
}

/// Runs a graph in ONNX Runtime (inference) on the inputs it declares; every output by name.
fn run(model: &ticket::onnx::proto::ModelProto, feed: &[(String, Tensor)]) -> BTreeMap<String, ArrayD<f32>> {
    use prost::Message;
    let mut session = ort_check::session(&model.encode_to_vec(), "graph").unwrap();
    let declared: Vec<String> = model.graph.as_ref().unwrap().input.iter().map(|i| i.name().to_string()).collect();
    let mut values = Vec::new();
    for (name, f) in feed.iter().filter(|(n, _)| declared.contains(n)) {
        let v: ort::session::SessionInputValue = match f {
            Tensor::F32(a) => ort::value::Tensor::from_array(a.clone()).unwrap().into(),
            Tensor::I64(a) => ort::value::Tensor::from_array(a.clone()).unwrap().into(),
        };
        values.push((std::borrow::Cow::from(name.clone()), v));
    }
    let outputs = session.run(values).unwrap();
    outputs.iter().map(|(n, v)| (n.to_string(), v.try_extract_array::<f32>().unwrap().to_owned())).collect()
}

/// The fixture's step inputs (the plain core's), and the distilling core of `student` with `teacher`'s signals
/// appended to them.
fn distilling_core(name: &str, student: &ModelState, teacher: &ModelState, d: &Distill) -> (TrainGraph, Vec<(String, Tensor)>, Fixture) {
    let fx = fixture_data(name);
    let shape: TrainShape = shape_of(&fx);
    let plain = training_graph(student, &shape, &TrainOptions::default()).unwrap();
    let mut feed = train_inputs::inputs(&plain.inputs, &plain.feature_hw, &fx);
    let signals = run(&teacher_graph(teacher, &shape, d).unwrap(), &feed);
    for out in d.teacher_outputs(teacher.arch.kind, plain.feature_hw.len()) {
        feed.push((out.clone(), Tensor::F32(signals[&out].clone())));
    }
    let graph = training_graph(student, &shape, &TrainOptions { distill: Some(d.clone()), ..Default::default() }).unwrap();
    assert_eq!(graph.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), feed.iter().map(|f| f.0.as_str()).collect::<Vec<_>>());
    (graph, feed, fx)
}

/// Writes the tensors the reference reads (`s_*` the student's signals, `t_*` the teacher's, labels and weights).
fn write_reference_inputs(dir: &Path, d: &Distill, student: &ModelState, feed: &[(String, Tensor)], shape: &TrainShape) {
    let own = run(&teacher_graph(student, shape, &Distill { teacher_channels: 0, ..d.clone() }).unwrap(), feed);
    let mut tensors = serde_json::Map::new();
    let mut put = |name: String, t: &Tensor| {
        let (bytes, elem): (Vec<u8>, &str) = match t {
            Tensor::F32(a) => (a.iter().flat_map(|v| v.to_le_bytes()).collect(), "f32"),
            Tensor::I64(a) => (a.iter().flat_map(|v| v.to_le_bytes()).collect(), "i64"),
        };
        std::fs::write(dir.join(format!("{name}.bin")), bytes).unwrap();
        tensors.insert(name, serde_json::json!({"shape": t.shape(), "elem": elem}));
    };
    for (name, t) in feed {
        match name.strip_prefix("teacher_") {
            Some(rest) => put(format!("t_{rest}"), t),
            None if ["rpn_labels", "roi_labels", "roi_weights", "mask_labels", "mask_weights"].contains(&name.as_str()) => {
                put(name.clone(), t)
            }
            None => {}
        }
    }
    for (name, v) in own {
        put(format!("s_{}", name.strip_prefix("teacher_").unwrap()), &Tensor::F32(v));
    }
    let terms: Vec<String> = d.terms.iter().map(|t| t.to_string()).collect();
    let meta = serde_json::json!({"weight": d.weight, "temperature": d.temperature, "terms": terms, "tensors": tensors});
    std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

/// The core's distillation outputs against the reference; returns how many terms were compared.
fn check_terms(name: &str, student: &ModelState, teacher: &ModelState, d: &Distill) -> usize {
    let (graph, feed, fx) = distilling_core(name, student, teacher, d);
    let ours = run(&graph.model, &feed);
    let dir = tempdir();
    write_reference_inputs(dir.path(), d, student, &feed, &shape_of(&fx));
    let reference: BTreeMap<String, f64> = serde_json::from_str(&tool("distill_reference.py", &[&dir.path()])).unwrap();
    let distilled: Vec<&String> = graph.outputs.iter().filter(|o| o.starts_with("loss_distill_")).collect();
    assert_eq!(distilled.len(), reference.len(), "{name}: the core has {distilled:?}, the reference {:?}", reference.keys());
    for out in distilled {
        let (v, r) = (ours[out].iter().next().copied().unwrap() as f64, reference[out]);
        println!("{name} {out}: ours {v:.7e}, reference {r:.7e}, rel {:.1e}", rel(v, r));
        assert!(rel(v, r) <= 1e-5, "{name} {out}: ours {v}, reference {r}");
        assert!(r > 0.0, "{name} {out} is 0: the check would not see a wrong term");
    }
    // The total is the sum of every term, torchvision's and the distillation's.
    let sum: f64 = graph.outputs[1..].iter().map(|o| ours[o].iter().next().copied().unwrap() as f64).sum();
    assert!(rel(ours["loss"].iter().next().copied().unwrap() as f64, sum) <= 1e-5);
    reference.len()
}

#[test]
fn each_distillation_term_equals_the_numpy_reference() {
    for name in MODELS {
        let teacher = ModelState::import(&fixture(&format!("{name}.onnx"))).unwrap();
        let n = check_terms(name, &masked(name), &teacher, &distill(&teacher, ALL, 0.7));
        let expect = if *name == "maskrcnn_r18_fpn" { 5 } else { 4 };
        assert_eq!(n, expect, "{name}");
    }
}

/// A channel ticket's FPN is narrower than its teacher's: features are compared as attention maps.
#[test]
fn a_narrower_channel_ticket_distils_from_its_wider_teacher() {
    let name = "maskrcnn_r18_fpn";
    let teacher = ModelState::import(&fixture(&format!("{name}.onnx"))).unwrap();
    let (student, _) = prune_channels(&teacher, &ChannelParams { sparsity: 0.5, round_to: 2, ..Default::default() }).unwrap();
    let (ts, ss) = (teacher.arch.fpn_channels.unwrap(), student.arch.fpn_channels.unwrap());
    assert!(ss < ts, "the channel ticket's FPN is {ss} wide, its teacher's {ts}: the attention path is not exercised");
    assert_eq!(check_terms(name, &student, &teacher, &distill(&teacher, ALL, 1.0)), 5);
}

/// ORT training's gradient of `loss_distill_logits` (the distilling core's minus the plain core's, on the same
/// batch) at the class-score bias equals the analytic `weight · T · Σ_r w_r (softmax(s_r/T) − softmax(t_r/T)) / Σ w`.
#[test]
fn the_logits_term_has_the_analytic_gradient() {
    let python =
        std::env::var_os("TICKET_TRAIN_PYTHON").map(std::path::PathBuf::from).expect("TICKET_TRAIN_PYTHON (tools/test.sh sets it)");
    let name = "fasterrcnn_r18_fpn_voc";
    let teacher = ModelState::import(&fixture(&format!("{name}.onnx"))).unwrap();
    let student = masked(name);
    let d = distill(&teacher, &[Term::Logits], 0.5);
    let (graph, feed, fx) = distilling_core(name, &student, &teacher, &d);
    let plain = training_graph(&student, &shape_of(&fx), &TrainOptions::default()).unwrap();
    let bias = "roi_heads.box_predictor.cls_score.bias";
    let grad = |g: &TrainGraph| -> Vec<f64> {
        let dir = tempdir();
        ort_gradient(&python, dir.path(), g, &feed, bias)
    };
    let (with, without) = (grad(&graph), grad(&plain));
    let ours: Vec<f64> = with.iter().zip(&without).map(|(a, b)| a - b).collect();

    let signals = run(&teacher_graph(&student, &shape_of(&fx), &d).unwrap(), &feed);
    let s = &signals["teacher_cls"];
    let t = match &feed.iter().find(|f| f.0 == "teacher_cls").unwrap().1 {
        Tensor::F32(a) => a.clone(),
        _ => unreachable!(),
    };
    let w: Vec<f64> = match &feed.iter().find(|f| f.0 == "roi_weights").unwrap().1 {
        Tensor::F32(a) => a.iter().map(|&v| v as f64).collect(),
        _ => unreachable!(),
    };
    let softmax = |row: Vec<f64>| -> Vec<f64> {
        let m = row.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
        let z: f64 = e.iter().sum();
        e.into_iter().map(|v| v / z).collect()
    };
    let (rows, classes) = (s.shape()[0], s.shape()[1]);
    let tt = d.temperature as f64;
    let n: f64 = w.iter().sum::<f64>().max(1.0);
    let mut expect = vec![0f64; classes];
    for r in 0..rows {
        let ps = softmax((0..classes).map(|c| s[[r, c]] as f64 / tt).collect());
        let pt = softmax((0..classes).map(|c| t[[r, c]] as f64 / tt).collect());
        for c in 0..classes {
            expect[c] += d.weight as f64 * tt * w[r] * (ps[c] - pt[c]) / n;
        }
    }
    let scale = expect.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!(scale > 1e-4, "the expected gradient is {scale}: too small to check");
    for (c, (a, e)) in ours.iter().zip(&expect).enumerate() {
        assert!((a - e).abs() <= 1e-4 * scale + 1e-7, "class {c}: ORT {a}, analytic {e}");
    }
}

/// ORT training (1.19.2) on a core: one forward and backward; the gradient of `param`.
fn ort_gradient(python: &Path, dir: &Path, g: &TrainGraph, feed: &[(String, Tensor)], param: &str) -> Vec<f64> {
    use prost::Message;
    std::fs::write(dir.join("core.onnx"), g.model.encode_to_vec()).unwrap();
    for (input, f) in feed.iter().filter(|(n, _)| g.input(n).is_some()) {
        let bytes: Vec<u8> = match f {
            Tensor::F32(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Tensor::I64(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        std::fs::write(dir.join(format!("{input}.bin")), bytes).unwrap();
    }
    let meta = serde_json::json!({"trainable": g.trainable, "frozen": g.frozen, "inputs": g.inputs});
    std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
    let out = std::process::Command::new(python).arg("-c").arg(ORT_TRAINING_STEP).arg(dir).output().unwrap();
    assert!(out.status.success(), "ORT training failed: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(dir.join(format!("grad.{param}.bin"))).unwrap();
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect()
}
