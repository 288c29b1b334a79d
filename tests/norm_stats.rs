//! `ticket transfer --norm-stats`: the body's FrozenBatchNorm gets statistics estimated on classification crops
//! (norm by norm, each after the ones before it), checked against ONNX Runtime and numpy doing the same on the
//! classifier's BatchNormalization nodes (tools/norm_stats_reference.py).
mod common;
use common::*;
use ticket::model::ModelState;

const CLASSIFIER: &str = "train/resnet18_synth.onnx";
const DETECTOR: &str = "train/maskrcnn_r18_fpn_synth.onnx";

#[test]
fn transfer_folds_statistics_estimated_on_the_crops() {
    let t = tempdir();
    let crops = t.path().join("crops");
    ticket_json(&[&"data", &"synth", &"--classify", &"--out", &crops, &"--images", &"40", &"--seed", &"3"]);
    let (plain, repaired) = (t.path().join("plain.onnx"), t.path().join("repaired.onnx"));
    let (cls, det) = (fixture(CLASSIFIER), fixture(DETECTOR));
    ticket_json(&[&"transfer", &cls, &det, &"-o", &plain]);
    // 40 crops in batches of 16: the first 32 are used.
    let r = ticket_json(&[&"transfer", &cls, &det, &"-o", &repaired, &"--norm-stats", &crops, &"--norm-images", &"40"]);
    assert_eq!(r["norm_stats"]["norms"], 20, "every norm of the ResNet-18 body: {r}");
    assert_eq!(r["norm_stats"]["images"], 32);
    assert_eq!(r["norm_stats"]["side"], 64);
    let reference: serde_json::Value = serde_json::from_str(&tool("norm_stats_reference.py", &[&cls, &crops, &"32"])).unwrap();
    let (plain, repaired) = (ModelState::import(&plain).unwrap(), ModelState::import(&repaired).unwrap());
    let modules = reference.as_object().unwrap();
    assert_eq!(modules.len(), 20);
    let mut moved = 0.0f64;
    for (module, want) in modules {
        for part in ["scale", "shift"] {
            let name = format!("backbone.body.{module}.{part}");
            let got = &repaired.buffers[&name].1;
            let before = &plain.buffers[&name].1;
            let want: Vec<f64> = want[part].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert_eq!(got.len(), want.len(), "{name}");
            for (c, (g, w)) in got.iter().zip(&want).enumerate() {
                let g = *g as f64;
                assert!((g - w).abs() <= 2e-3 * w.abs().max(1.0), "{name}[{c}]: {g} against the reference's {w}");
            }
            for (b, w) in before.iter().zip(&want) {
                moved = moved.max((*b as f64 - w).abs() / w.abs().max(1e-3));
            }
        }
    }
    assert!(moved > 0.1, "the crops' statistics differ from the classifier's initial ones (largest change {moved})");
    // Everything but the body's norms is the plain transfer's.
    for (name, (_, v)) in &plain.buffers {
        if !name.starts_with("backbone.body.") {
            assert_eq!(v, &repaired.buffers[name].1, "{name}");
        }
    }
    for (a, b) in plain.weights.tensors.iter().zip(&repaired.weights.tensors) {
        assert_eq!((&a.name, a.values.dense()), (&b.name, b.values.dense()));
    }
}

#[test]
fn norm_stats_refuse_a_bad_set() {
    let t = tempdir();
    let out = t.path().join("x.onnx");
    let err = run_err(&[&"transfer", &fixture(CLASSIFIER), &fixture(DETECTOR), &"-o", &out, &"--norm-stats", &t.path()]);
    assert!(err.contains("labels.json"), "{err}");
    let crops = t.path().join("crops");
    ticket_json(&[&"data", &"synth", &"--classify", &"--out", &crops, &"--images", &"4", &"--seed", &"3"]);
    let err =
        run_err(&[&"transfer", &fixture(CLASSIFIER), &fixture(DETECTOR), &"-o", &out, &"--norm-stats", &crops, &"--norm-images", &"0"]);
    assert!(err.contains("--norm-images must be at least 1"), "{err}");
    assert!(!out.exists());
}
