//! A backbone pretrained here, end to end with the real ORT training worker and tract: `ticket data synth
//! --classify` cuts a classification set from the synthetic scenes; `ticket train --classify` trains the
//! narrow ResNet-18 classifier whose body is the synthetic Mask R-CNN's backbone (tools/export_models.py
//! --synth 4) and its loss falls; `ticket eval --classify` scores top-1; `ticket imp --val-classify` runs a
//! classifier level; `ticket transfer` puts its body (weights, folded BatchNorm, mask) onto the detector; and
//! `ticket imp --masks-from` trains a detector level from the transferred ticket. Then bad input.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use ticket::model::{Masks, ModelState};

const CLASSIFIER: &str = "train/resnet18_synth.onnx";
const DETECTOR: &str = "train/maskrcnn_r18_fpn_synth.onnx";

fn synth_classify(dir: &Path, images: usize, seed: u64) -> serde_json::Value {
    ticket_json(&[
        &"data",
        &"synth",
        &"--classify",
        &"--out",
        &dir,
        &"--images",
        &images.to_string(),
        &"--seed",
        &seed.to_string(),
        &"--size",
        &"32",
    ])
}

fn losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64().unwrap())
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn classifier_pretrains_prunes_and_transfers_onto_a_detector() {
    let tmp = tempdir();
    let root = tmp.path();
    let (train, val) = (root.join("cls_train"), root.join("cls_val"));

    // The set: object crops labelled with the synthetic detection set's categories, read back as training reads it.
    let r = synth_classify(&train, 96, 1);
    assert_eq!(r["images"], 96);
    let set = ticket::data::ClassifyDataset::load(&train).unwrap();
    assert_eq!(set.categories, ticket::data::synth::CATEGORIES.map(String::from).to_vec());
    assert_eq!(set.len(), 96);
    assert!(set.per_class().iter().filter(|&&n| n > 0).count() >= 4, "crops of most categories: {:?}", set.per_class());
    let (img, label) = set.sample(0, 32).unwrap();
    assert_eq!((img.dim(), label < 5), ((3, 32, 32), true));
    // Same seed, same bytes.
    let again = root.join("again");
    synth_classify(&again, 96, 1);
    assert_eq!(std::fs::read(train.join("labels.json")).unwrap(), std::fs::read(again.join("labels.json")).unwrap());
    assert_eq!(std::fs::read(train.join("images/000007.png")).unwrap(), std::fs::read(again.join("images/000007.png")).unwrap());
    synth_classify(&val, 40, 2);

    // Training: the cross-entropy core in the ORT worker, loss falls.
    let run = root.join("run");
    let rep = ticket_json(&[
        &"train",
        &fixture(CLASSIFIER),
        &"--classify",
        &train,
        &"--steps",
        &"60",
        &"--batch",
        &"16",
        &"--optimizer",
        &"adamw",
        &"--lr",
        &"0.001",
        &"--warmup",
        &"5",
        &"--threads",
        &"1",
        &"-o",
        &run,
    ]);
    let l = losses(&run);
    assert_eq!(l.len(), 60);
    assert!(l.iter().all(|v| v.is_finite()));
    let (first, last) = (mean(&l[..10]), mean(&l[50..]));
    assert!(last < 0.7 * first, "classifier loss must fall: first ten steps {first:.3}, last ten {last:.3}");
    let trained = PathBuf::from(rep["model"].as_str().unwrap());
    let state = ModelState::import(&trained).unwrap();
    let init = ModelState::import(&fixture(CLASSIFIER)).unwrap();
    let w = |s: &ModelState, n: &str| s.weights.get(n).unwrap().values.clone();
    assert_ne!(w(&state, "layer4.1.conv2.weight"), w(&init, "layer4.1.conv2.weight"), "the body trains");
    assert_ne!(w(&state, "fc.weight"), w(&init, "fc.weight"), "fc trains");
    // FrozenBatchNorm convention: the normalisation stays as it was.
    assert_eq!(w(&state, "layer1.0.bn1.weight"), w(&init, "layer1.0.bn1.weight"));

    // Top-1 on the held-out set, in tract; the trained classifier beats its random initialisation.
    let top1 = |model: &Path| ticket_json(&[&"eval", &"--model", &model, &"--classify", &val])["top1"].as_f64().unwrap();
    let (t_init, t_trained) = (top1(&fixture(CLASSIFIER)), top1(&trained));
    eprintln!("top-1: init {t_init:.3}, trained {t_trained:.3}; loss {first:.3} → {last:.3}");
    assert!((0.0..=1.0).contains(&t_trained));
    let ev = ticket_json(&[&"eval", &"--model", &trained, &"--classify", &val]);
    assert_eq!(ev["images"], 40);
    assert_eq!(ev["side"], 32);
    let per: u64 = ev["per_category"].as_array().unwrap().iter().map(|c| c[1].as_u64().unwrap()).sum();
    assert_eq!(per, 40);

    // One classifier IMP level (dense scored from the trained model, level 1 at 50%), scored by top-1.
    let imp = root.join("imp_cls");
    let s = ticket_json(&[
        &"imp",
        &fixture(CLASSIFIER),
        &"--trained",
        &trained,
        &"--classify",
        &train,
        &"--val-classify",
        &val,
        &"--sparsity",
        &"0.5",
        &"--rewind",
        &"none",
        &"--steps",
        &"10",
        &"--batch",
        &"16",
        &"--optimizer",
        &"adamw",
        &"--lr",
        &"0.001",
        &"--warmup",
        &"2",
        &"--threads",
        &"1",
        &"--max-map-drop",
        &"1",
        &"-o",
        &imp,
    ]);
    let levels = s["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    for l in levels {
        let t = l["scores"]["top1"]["ap"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&t), "top-1 in [0, 1]: {t}");
    }
    assert_eq!(levels[0]["scores"]["top1"]["ap"].as_f64().unwrap(), t_trained, "level 0 is the trained classifier");
    assert!((levels[1]["selected_sparsity"].as_f64().unwrap() - 0.5).abs() < 0.01);
    let ticket_model = imp.join("level_1/model.onnx");
    let ticket_masks = imp.join("level_1/masks.safetensors");
    let cls_ticket = ModelState::load(&ticket_model, Some(&ticket_masks)).unwrap();
    let pruned = cls_ticket.weights.get("layer2.0.conv1.weight").unwrap();
    let m = &cls_ticket.masks.map["layer2.0.conv1.weight"];
    assert!(m.keep.iter().zip(pruned.values.dense().iter()).all(|(&k, &v)| k == 1 || v == 0.0), "pruned weights are zero in the ticket");

    // Transfer onto the detector: pretrained backbone (weights only) …
    let det = fixture(DETECTOR);
    let pre = root.join("det_pretrained.onnx");
    let r = ticket_json(&[&"transfer", &trained, &det, &"-o", &pre]);
    assert_eq!(r["weights"], 20);
    assert_eq!(r["norms"], 40);
    let d = ModelState::import(&pre).unwrap();
    let dense_det = ModelState::import(&det).unwrap();
    for cw in state.prunable().filter(|w| !w.name.starts_with("fc.")) {
        assert_eq!(d.weights.get(&format!("backbone.body.{}", cw.name)).unwrap().values, cw.values, "{}", cw.name);
    }
    for (name, (_, v)) in &state.buffers {
        assert_eq!(&d.buffers[&format!("backbone.body.{name}")].1, v, "FrozenBatchNorm {name} from the classifier's BatchNorm");
    }
    for w in d.weights.tensors.iter().filter(|w| !w.name.starts_with("backbone.body.")) {
        assert_eq!(w.values, dense_det.weights.get(&w.name).unwrap().values, "{} is the detector's own", w.name);
    }
    // … and the transfer ticket: the classifier ticket's pruned weights and mask, pruned weights zero.
    let tt = root.join("det_ticket.onnx");
    let tt_masks = root.join("det_ticket.safetensors");
    let r = ticket_json(&[&"transfer", &ticket_model, &det, &"-o", &tt, &"--masks", &ticket_masks, &"--masks-out", &tt_masks]);
    assert_eq!(r["masks"]["transferred"].as_array().unwrap().len(), 20);
    assert_eq!(r["masks"]["unused"], serde_json::json!(["fc.weight"]));
    let moved = Masks::load(&tt_masks).unwrap();
    assert_eq!(moved.map["backbone.body.layer2.0.conv1.weight"].keep, m.keep);
    let t = ModelState::load(&tt, Some(&tt_masks)).unwrap();
    let tw = t.weights.get("backbone.body.layer2.0.conv1.weight").unwrap();
    assert_eq!(tw.values, pruned.values, "the ticket's trained pruned weights");

    // The detector trains one level from the transferred ticket (level 0 is the transferred model, scored).
    let det_data = root.join("det");
    for (name, n, seed) in [("train", "4", "5"), ("val", "2", "6")] {
        let out = ticket(&[&"data", &"synth", &"--out", &det_data.join(name), &"--images", &n, &"--seed", &seed]);
        assert!(out.status.success(), "synth: {}", String::from_utf8_lossy(&out.stderr));
    }
    let dimp = root.join("imp_det");
    let s = ticket_json(&[
        &"imp",
        &tt,
        &"--trained",
        &tt,
        &"--masks-from",
        &tt_masks,
        &"--rewind",
        &"init",
        &"--coco",
        &det_data.join("train/annotations.json"),
        &"--val-coco",
        &det_data.join("val/annotations.json"),
        &"--steps",
        &"4",
        &"--warmup",
        &"1",
        &"--rois",
        &"32",
        &"--threads",
        &"1",
        &"--max-map-drop",
        &"1",
        &"-o",
        &dimp,
    ]);
    assert_eq!(s["levels"][1]["steps"], 4);
    let l1 = ModelState::load(&dimp.join("level_1/model.onnx"), None).unwrap();
    let lw = l1.weights.get("backbone.body.layer2.0.conv1.weight").unwrap();
    assert!(
        moved.map["backbone.body.layer2.0.conv1.weight"].keep.iter().zip(lw.values.dense().iter()).all(|(&k, &v)| k == 1 || v == 0.0),
        "the transferred mask holds through training"
    );
    assert_ne!(lw.values, tw.values, "the transferred ticket trained");
}

#[test]
fn classification_input_errors_are_one_line() {
    let tmp = tempdir();
    let root = tmp.path();
    let set = root.join("set");
    synth_classify(&set, 8, 3);
    let labels = std::fs::read_to_string(set.join("labels.json")).unwrap();
    let model = fixture(CLASSIFIER);

    // A missing image.
    let missing = root.join("missing");
    synth_classify(&missing, 8, 3);
    std::fs::remove_file(missing.join("images/000003.png")).unwrap();
    let run = root.join("run_missing");
    let err = run_err(&[&"train", &model, &"--classify", &missing, &"--steps", &"2", &"-o", &run]);
    assert!(err.contains("000003.png") && err.contains("not a file"), "{err}");
    assert!(!run.exists(), "a refused run leaves no folder");
    let err = run_err(&[&"eval", &"--model", &model, &"--classify", &missing]);
    assert!(err.contains("000003.png"), "{err}");

    // A label outside the categories.
    let bad = root.join("bad_label");
    synth_classify(&bad, 8, 3);
    let v: serde_json::Value = serde_json::from_str(&labels).unwrap();
    let first = v["images"][0]["category"].as_str().unwrap().to_string();
    let text = labels.replacen(&format!("\"category\":\"{first}\""), "\"category\":\"zebra\"", 1);
    assert_ne!(text, labels);
    std::fs::write(bad.join("labels.json"), text).unwrap();
    let err = run_err(&[&"train", &model, &"--classify", &bad, &"--steps", &"2", &"-o", &root.join("run_bad")]);
    assert!(err.contains("zebra") && err.contains("labels.json"), "{err}");

    // A classifier whose classes are not the set's, a detector on a classification set, an unreadable labels file.
    let err = run_err(&[&"train", &fixture("resnet18.onnx"), &"--classify", &set, &"--steps", &"2", &"-o", &root.join("run_k")]);
    assert!(err.contains("5 categories") && err.contains("10 classes"), "{err}");
    let err = run_err(&[&"train", &fixture(DETECTOR), &"--classify", &set, &"--steps", &"2", &"-o", &root.join("run_det")]);
    assert!(err.contains("classification set"), "{err}");
    std::fs::write(root.join("labels.json"), b"{\"categories\": [").unwrap();
    let err = run_err(&[&"eval", &"--model", &model, &"--classify", &root]);
    assert!(err.contains("labels.json"), "{err}");

    // A classifier narrower than the detector's backbone: refused, nothing written.
    let out = root.join("det.onnx");
    let err = run_err(&[&"transfer", &fixture("resnet50.onnx"), &fixture(DETECTOR), &"-o", &out]);
    assert!(err.contains("does not match the backbone"), "{err}");
    assert!(!out.exists());
    let err = run_err(&[&"transfer", &fixture(DETECTOR), &fixture(DETECTOR), &"-o", &out]);
    assert!(err.contains("not a ResNet classifier"), "{err}");
    // A detector scored on a classification set, a classifier on COCO ground truth.
    let err = run_err(&[
        &"imp",
        &model,
        &"--classify",
        &set,
        &"--val-coco",
        &set.join("labels.json"),
        &"--sparsity",
        &"0.5",
        &"-o",
        &root.join("imp"),
    ]);
    assert!(err.contains("--val-classify") || err.contains("classif"), "{err}");
}

/// The classifier emitted from the network description (BatchNorm folded as FrozenBatchNorm) computes what the
/// torchvision export computes: tract on the emitted graph against ONNX Runtime on the user's ONNX.
#[test]
fn emitted_classifier_matches_the_torchvision_export() {
    use ticket::runtime::ort_check::{self, Output};
    let path = fixture(CLASSIFIER);
    let state = ModelState::import(&path).unwrap();
    assert_eq!(state.buffers.len(), 40, "20 BatchNorms folded into scale and shift");
    let graph = ticket::graph::classify::inference_graph(&state, 1, 64).unwrap();
    let stage = ticket::runtime::tract_stage::TractStage::new("classifier", &graph).unwrap();
    let mut seed = 7u32;
    let x = ndarray::Array4::from_shape_fn((1, 3, 64, 64), |_| {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
    })
    .into_dyn();
    let ours = stage.run(vec![x.clone()]).unwrap().remove(0).1;
    let theirs = match ort_check::run(&std::fs::read(&path).unwrap(), &[("input".into(), x)], "classifier").unwrap().remove(0).1 {
        Output::F32(a) => a,
        o => panic!("logits expected, got {o:?}"),
    };
    assert_eq!(ours.shape(), &[1, 5]);
    let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = ours.iter().zip(&theirs).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff <= 1e-4 * scale.max(1.0), "emitted vs torchvision logits differ by {diff} (scale {scale}): {ours:?} vs {theirs:?}");
}
