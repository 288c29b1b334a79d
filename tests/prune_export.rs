//! `ticket prune` on real torchvision exports: sparsity targets, the IMP schedule, module selection, and an
//! export that changes nothing but initializer data and runs in ONNX Runtime like the zeroed dense model.
mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn prune(model: &Path, out: &Path, masks: &Path, extra: &[&str]) -> Value {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"prune", &model, &"-o", &out, &"--masks-out", &masks];
    for e in extra {
        args.push(e);
    }
    ticket_json(&args)
}

fn tensor_kept(report: &Value) -> Vec<(String, u64, u64)> {
    report["prune"]["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t["numel"].as_u64().unwrap(), t["kept"].as_u64().unwrap()))
        .collect()
}

fn round_half_even_safe(x: f64) -> u64 {
    x.round() as u64
}

#[test]
fn global_and_layer_pruning_hit_the_target() {
    let dir = tempdir();
    for name in ["maskrcnn_r18_fpn", "keypointrcnn_r50_fpn", "resnet50"] {
        for s in [0.5, 0.8, 0.9] {
            for scope in ["global", "layer"] {
                let (out, masks) = (dir.path().join("p.onnx"), dir.path().join("m.safetensors"));
                let r = prune(&fixture(&format!("{name}.onnx")), &out, &masks, &["--sparsity", &s.to_string(), "--scope", scope]);
                let tensors = tensor_kept(&r);
                let n: u64 = tensors.iter().map(|t| t.1).sum();
                let kept: u64 = tensors.iter().map(|t| t.2).sum();
                if scope == "global" {
                    assert_eq!(kept, round_half_even_safe((1.0 - s) * n as f64), "{name} {s} global");
                } else {
                    for (t, numel, k) in &tensors {
                        assert_eq!(*k, round_half_even_safe((1.0 - s) * *numel as f64), "{name} {s} layer {t}");
                    }
                }
                // Achieved sparsity within one weight per tensor of the target, as reported.
                let achieved = r["prune"]["selected_sparsity"].as_f64().unwrap();
                assert!((achieved - s).abs() <= tensors.len() as f64 / n as f64, "{name} {s} {scope}: {achieved}");
                // The masks file, the report and the exported zeros agree.
                let m = read_safetensors(&masks);
                let exported = ticket::model::ModelState::import(&out).unwrap();
                for (t, numel, k) in &tensors {
                    let (_, mask) = &m[t];
                    assert_eq!(mask.len() as u64, *numel);
                    assert_eq!(mask.iter().filter(|v| **v == 1.0).count() as u64, *k, "{t}");
                    let w = exported.weights.get(t).unwrap();
                    assert!(w.values.dense().iter().zip(mask).all(|(v, m)| *m == 1.0 || *v == 0.0), "{t}: a masked weight is not zero");
                }
            }
        }
    }
}

#[test]
fn global_ranking_keeps_the_largest_magnitudes() {
    let dir = tempdir();
    let (out, masks) = (dir.path().join("p.onnx"), dir.path().join("m.safetensors"));
    let dense = ticket::model::ModelState::import(&fixture("fasterrcnn_r18_fpn_voc.onnx")).unwrap();
    prune(&fixture("fasterrcnn_r18_fpn_voc.onnx"), &out, &masks, &["--sparsity", "0.8"]);
    let m = read_safetensors(&masks);
    let (mut min_kept, mut max_pruned) = (f32::INFINITY, 0f32);
    for w in dense.prunable() {
        for (v, k) in w.values.dense().iter().zip(&m[&w.name].1) {
            if *k == 1.0 {
                min_kept = min_kept.min(v.abs());
            } else {
                max_pruned = max_pruned.max(v.abs());
            }
        }
    }
    assert!(min_kept >= max_pruned, "kept {min_kept} < pruned {max_pruned}");
}

#[test]
fn export_changes_only_the_pruned_initializers() {
    let dir = tempdir();
    for name in DETECTORS {
        let (out, masks) = (dir.path().join("p.onnx"), dir.path().join("m.safetensors"));
        let dense = fixture(&format!("{name}.onnx"));
        prune(&dense, &out, &masks, &["--sparsity", "0.8"]);
        let (a, da) = without_initializer_data(&dense);
        let (b, db) = without_initializer_data(&out);
        assert_eq!(a, b, "{name}: the export changed something besides initializer data");
        let m = read_safetensors(&masks);
        let by_init: std::collections::HashMap<String, String> = ticket::model::ModelState::import(&dense)
            .unwrap()
            .weights
            .tensors
            .iter()
            .map(|w| (w.initializer.clone(), w.name.clone()))
            .collect();
        for ((name_a, bytes_a), (_, bytes_b)) in da.iter().zip(&db) {
            match by_init.get(name_a).and_then(|p| m.get(p)) {
                None => assert_eq!(bytes_a, bytes_b, "{name}: unpruned initializer {name_a} changed"),
                Some((_, mask)) => {
                    for (i, keep) in mask.iter().enumerate() {
                        let (x, y) = (&bytes_a[4 * i..4 * i + 4], &bytes_b[4 * i..4 * i + 4]);
                        if *keep == 1.0 {
                            assert_eq!(x, y, "{name_a}[{i}] kept but changed");
                        } else {
                            assert_eq!(y, [0u8; 4], "{name_a}[{i}] pruned but not +0.0");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn export_passes_the_checker_and_runs_in_ort_like_the_zeroed_dense_model() {
    let dir = tempdir();
    for name in all_models() {
        let (out, masks) = (dir.path().join(format!("{name}.onnx")), dir.path().join(format!("{name}.safetensors")));
        let dense = fixture(&format!("{name}.onnx"));
        prune(&dense, &out, &masks, &["--sparsity", "0.8"]);
        tool("check_onnx.py", &[&out]);
        // Reference: Python zeroes the dense model's weights with the masks (independently of our export)
        // and runs it in onnxruntime; our export must give the same outputs.
        let (ref_out, our_out) = (dir.path().join("ref.safetensors"), dir.path().join("ours.safetensors"));
        tool("ort_reference.py", &[&"--model", &dense, &"--masks", &masks, &"--out", &ref_out]);
        tool("ort_reference.py", &[&"--model", &out, &"--out", &our_out]);
        let (r, o) = (read_safetensors(&ref_out), read_safetensors(&our_out));
        assert_eq!(r.keys().collect::<Vec<_>>(), o.keys().collect::<Vec<_>>(), "{name}");
        for (k, (shape, vals)) in &r {
            assert_eq!(shape, &o[k].0, "{name}: {k} shape");
            assert_eq!(vals, &o[k].1, "{name}: {k} values");
        }
        // Some detections come out, so the comparison is not between empty tensors.
        if DETECTORS.contains(&name) {
            assert!(r["boxes"].0[0] > 0, "{name}: no detections to compare");
        }
        // The Rust ONNX Runtime path (`ort`) agrees too.
        let v = ticket_json(&[&"check", &out, &"--reference", &dense, &"--masks", &masks]);
        assert_eq!(v["passed"], true, "{name}");
    }
}

#[test]
fn imp_rounds_follow_the_schedule_and_never_revive_weights() {
    let dir = tempdir();
    let dense = fixture("maskrcnn_r18_fpn.onnx");
    let mut model: PathBuf = dense.clone();
    let mut prev: Option<PathBuf> = None;
    let mut prev_mask: Option<std::collections::BTreeMap<String, (Vec<usize>, Vec<f64>)>> = None;
    for round in 1..=3 {
        let out = dir.path().join(format!("r{round}.onnx"));
        let masks = dir.path().join(format!("r{round}.safetensors"));
        let round_s = round.to_string();
        let mut extra = vec!["--sparsity", "0.8", "--rounds", "3", "--round", &round_s];
        let prev_s;
        if let Some(p) = &prev {
            prev_s = p.to_str().unwrap().to_string();
            extra.extend(["--masks", &prev_s]);
        }
        let r = prune(&model, &out, &masks, &extra);
        let n = r["prune"]["selected_weights"].as_u64().unwrap();
        let expected = (0.2f64.powf(round as f64 / 3.0) * n as f64).round() as u64;
        assert_eq!(r["prune"]["selected_kept"].as_u64().unwrap(), expected, "round {round}");
        let m = read_safetensors(&masks);
        if let Some(p) = &prev_mask {
            for (k, (_, v)) in &m {
                assert!(v.iter().zip(&p[k].1).all(|(now, before)| *now <= *before), "round {round}: {k} revived a weight");
            }
        }
        prev_mask = Some(m);
        prev = Some(masks);
        model = out;
    }
}

#[test]
fn modules_and_bias_options_select_what_is_pruned() {
    let dir = tempdir();
    let (out, masks) = (dir.path().join("p.onnx"), dir.path().join("m.safetensors"));
    let r = prune(&fixture("maskrcnn_r50_fpn.onnx"), &out, &masks, &["--sparsity", "0.5", "--modules", "base,fpn"]);
    let groups: std::collections::BTreeSet<String> =
        r["prune"]["tensors"].as_array().unwrap().iter().map(|t| t["group"].as_str().unwrap().to_string()).collect();
    assert_eq!(groups, ["base", "fpn"].iter().map(|s| s.to_string()).collect());
    let inspect = ticket_json(&[&"inspect", &out]);
    for g in inspect["groups"].as_array().unwrap() {
        let sparse = g["prunable_zeros"].as_u64().unwrap() > 0;
        assert_eq!(sparse, ["base", "fpn"].contains(&g["group"].as_str().unwrap()), "{g}");
    }
    let r = prune(&fixture("maskrcnn_r50_fpn.onnx"), &out, &masks, &["--sparsity", "0.5", "--include-bias"]);
    assert!(r["prune"]["tensors"].as_array().unwrap().iter().any(|t| t["name"].as_str().unwrap().ends_with(".bias")));
    let bad = ticket(&[
        &"prune",
        &fixture("maskrcnn_r50_fpn.onnx"),
        &"--sparsity",
        &"0.5",
        &"--modules",
        &"keypoint_head",
        &"-o",
        &dir.path().join("x.onnx"),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("keypoint_head"));
}

#[test]
fn compact_form_is_small_exact_and_unpacks_to_the_same_onnx() {
    let dir = tempdir();
    for name in all_models() {
        let (out, masks, compact) = (dir.path().join("p.onnx"), dir.path().join("m.safetensors"), dir.path().join("p.tkt"));
        let dense = fixture(&format!("{name}.onnx"));
        let r = prune(&dense, &out, &masks, &["--sparsity", "0.8", "--compact", compact.to_str().unwrap()]);
        // The goal is a file ≤ 1/3 of the dense one for an 80% ticket. These narrow fixtures are mostly graph
        // (a torchvision detector has ~2000 nodes), so the test holds the weight storage to it; full-size
        // models, where weights dominate, measure 0.23 for the whole file (README).
        let dense_bytes = std::fs::metadata(&dense).unwrap().len() as f64;
        let compact_bytes = r["sizes"]["compact_bytes"].as_f64().unwrap();
        let skeleton = r["sizes"]["compact_graph_bytes"].as_f64().unwrap();
        // dense − skeleton is the dense storage of exactly the tensors that were packed.
        let ratio = (compact_bytes - skeleton) / (dense_bytes - skeleton);
        eprintln!("{name}: compact weights / dense weights = {ratio:.3}, whole file {:.3}", compact_bytes / dense_bytes);
        assert!(ratio <= 1.0 / 3.0, "{name}: {ratio}");
        let unpacked = dir.path().join("u.onnx");
        ticket_json(&[&"unpack", &compact, &"-o", &unpacked]);
        assert_eq!(std::fs::read(&unpacked).unwrap(), std::fs::read(&out).unwrap(), "{name}");
        // The compact file is a model for every command.
        let i = ticket_json(&[&"inspect", &compact]);
        assert!(i["sparsity"].as_f64().unwrap() > 0.79, "{name}");
    }
}
