//! The lottery-ticket controls of `ticket imp`, each end to end on the narrow synthetic Mask R-CNN (a couple of
//! training steps, the initial weights standing in as the trained dense model): `--rewind random` (the ticket's
//! mask on a fresh draw of the initialiser), `--mask random` (a random mask with the magnitude mask's per-tensor
//! counts), the early-bird mask at step 0, and the floor on named tensors only; then the gate rejecting levels.
mod common;
use common::imp::*;
use common::*;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use ticket::model::{Masks, ModelState, Role};

/// A one-level run of `model` (its initial weights scored as the trained dense model: no dense training) with 2
/// training steps, plus `extra`.
fn quick(d: &Data, model: &Path, run: &Path, extra: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    let mut v = os(&[&"imp", &model, &"--coco", &d.train, &"--val-coco", &d.val, &"--trained", &model, &"-o", &run]);
    v.extend(words("--steps 2 --warmup 1 --rois 32 --threads 1 --max-map-drop 1"));
    v.extend(os(extra));
    v
}

fn words(s: &str) -> impl Iterator<Item = OsString> + '_ {
    s.split(' ').map(OsString::from)
}

/// The global magnitude mask at `sparsity` of `model`'s weights (what a one-shot level draws from them).
fn magnitude_masks(model: &Path, sparsity: f64) -> Masks {
    let mut state = ModelState::import(model).unwrap();
    let params = ticket::prune::PruneParams {
        sparsity,
        scope: ticket::prune::Scope::Global,
        modules: None,
        rounds: 1,
        round: 1,
        include_bias: false,
        min_layer_density: None,
    };
    ticket::prune::prune(&mut state, &params.check().unwrap()).unwrap();
    state.masks
}

fn weights(path: &Path) -> BTreeMap<String, (Role, Vec<f32>)> {
    ModelState::import(path).unwrap().weights.tensors.into_iter().map(|w| (w.name, (w.role, w.values.into_dense()))).collect()
}

/// `--rewind random`: level 1 starts from a fresh draw of the initialiser under the ticket's mask — every weight
/// tensor differs from the initial one at the same scale, masked entries are exactly +0.0, biases and the rest
/// stay as they were — and the draw is the run's seed's (the library draws the same file again).
#[test]
fn random_rewind_puts_the_mask_on_a_fresh_initialisation() {
    let d = data();
    let run = d.root.join("random_rewind");
    let model = fixture(MODEL);
    let s = run_ok(&quick(&d, &model, &run, &[&"--sparsity", &"0.5", &"--rewind", &"random", &"--seed", &"3"]));
    assert_eq!(s["levels"].as_array().unwrap().len(), 2);
    let init = weights(&model);
    let masks = Masks::load(&level(&run, 1).join("masks.safetensors")).unwrap();
    let start = weights(&level(&run, 1).join("start.onnx"));
    let trained = weights(&level(&run, 1).join("model.onnx"));
    let mut redrawn = 0;
    for (name, (role, w0)) in &init {
        let w = &start[name].1;
        if *role != Role::Weight {
            assert_eq!(w, w0, "{name} is not a weight: kept as initialised");
            continue;
        }
        let m = &masks.map[name];
        for ((v, t), &k) in w.iter().zip(&trained[name].1).zip(&m.keep) {
            if k == 0 {
                assert_eq!((v.to_bits(), t.to_bits()), (0, 0), "{name}: a masked weight is not +0.0");
            }
        }
        let kept = |v: &[f32]| v.iter().zip(&m.keep).filter(|(_, &k)| k == 1).map(|(x, _)| *x).collect::<Vec<f32>>();
        assert_ne!(kept(w), kept(w0), "{name}: the surviving weights are the initial ones");
        // The same scale: the fresh draw's std within 25% of the initial tensor's (over all its entries).
        let std = |v: &[f32]| {
            let m = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
            (v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
        };
        let drawn = &weights(&level(&run, 0).join("random_init.onnx"))[name].1;
        if w0.len() >= 64 {
            assert!((std(drawn) / std(w0) - 1.0).abs() < 0.25, "{name}: std {} against {}", std(drawn), std(w0));
        }
        redrawn += 1;
    }
    assert!(redrawn > 10, "{redrawn} weight tensors");
    // The draw is the seed's: the library draws it again bit for bit, and another seed draws another.
    let again = ticket::lottery::rewind::random_init(&ModelState::import(&model).unwrap(), 3);
    let file = ModelState::import(&level(&run, 0).join("random_init.onnx")).unwrap();
    for (a, b) in again.weights.tensors.iter().zip(&file.weights.tensors) {
        assert_eq!(a.values.dense(), b.values.dense(), "{}", a.name);
    }
    let other = ticket::lottery::rewind::random_init(&ModelState::import(&model).unwrap(), 4);
    assert_ne!(other.weights.tensors[0].values.dense(), file.weights.tensors[0].values.dense());
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(config["rewind"], "random");
}

fn kept_per_tensor(m: &Masks) -> BTreeMap<String, usize> {
    m.map.iter().map(|(n, m)| (n.clone(), m.kept())).collect()
}

/// `--mask random`: level 1's mask keeps exactly as many weights per tensor as the magnitude mask of the same
/// prune would, at other positions; the level trains under it (masked weights +0.0). run.json records it, and a
/// resume refuses it changed. With channel structure, or over a given mask, it is refused before anything runs.
#[test]
fn random_mask_keeps_the_magnitude_masks_per_tensor_counts() {
    let d = data();
    let run = d.root.join("random_mask");
    let model = fixture(MODEL);
    run_ok(&quick(&d, &model, &run, &[&"--sparsity", &"0.8", &"--mask", &"random"]));
    let random = Masks::load(&level(&run, 1).join("masks.safetensors")).unwrap();
    // The magnitude mask the level would have drawn: the trained dense model (here the initial one) pruned alike.
    let magnitude = &magnitude_masks(&model, 0.8);
    assert_eq!(kept_per_tensor(&random), kept_per_tensor(magnitude), "per-tensor counts");
    let differ = random.map.iter().filter(|(n, m)| m.keep != magnitude.map[*n].keep && m.kept() > 0).count();
    assert!(differ > 10, "only {differ} tensors differ from the magnitude mask");
    let trained = weights(&level(&run, 1).join("model.onnx"));
    for (name, m) in &random.map {
        assert!(trained[name].1.iter().zip(&m.keep).all(|(v, &k)| k == 1 || v.to_bits() == 0), "{name}: a masked weight is not +0.0");
    }

    // run.json keeps it; a run.json edited back to magnitude is refused on resume, naming the setting.
    let text = std::fs::read_to_string(run.join("run.json")).unwrap();
    assert!(text.contains("\"mask\": \"random\""), "{text}");
    std::fs::write(run.join("run.json"), text.replace("\"mask\": \"random\",", "")).unwrap();
    let err = run_err(&[&"imp", &"--resume", &run]);
    assert!(err.contains("`mask`") && err.contains("changed"), "{err}");

    let fresh = d.root.join("refused");
    for (extra, needle) in [
        (os(&[&"--sparsity", &"0.5", &"--mask", &"random", &"--structure", &"channel"]), "--mask"),
        (os(&[&"--mask", &"random", &"--masks-from", &level(&run, 1).join("masks.safetensors")]), "--mask"),
        (os(&[&"--sparsity", &"0.8", &"--min-layer-density", &"0.05", &"--floor-on", &"box_head.fc9"]), "--floor-on"),
        (os(&[&"--sparsity", &"0.8", &"--floor-on", &"box_head.fc6"]), "--min-layer-density"),
    ] {
        let mut args = os(&[&"imp", &model, &"--coco", &d.train, &"--val-coco", &d.val, &"--steps", &"2", &"-o", &fresh]);
        args.extend(extra);
        let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect();
        let err = run_err(&refs);
        assert!(err.contains(needle), "error should name {needle}: {err}");
        assert!(!fresh.exists(), "a refused run wrote {}", fresh.display());
    }
}

/// `--early-bird 0`: the mask of the initial weights is saved and compared with the final mask like any other.
#[test]
fn early_bird_at_step_zero_is_the_initial_weights_mask() {
    let d = data();
    let run = d.root.join("eb0");
    let model = fixture(MODEL);
    let mut args = os(&[&"imp", &model, &"--coco", &d.train, &"--val-coco", &d.val, &"-o", &run]);
    args.extend(words("--sparsity 0.5 --steps 2 --warmup 1 --rois 32 --threads 1 --early-bird 0,1 --max-map-drop 1"));
    let s = run_ok(&args);
    let masks = s["early_bird"]["masks"].as_array().unwrap();
    assert_eq!((masks[0]["fraction"].as_f64(), masks[0]["step"].as_u64()), (Some(0.0), Some(0)), "{masks:?}");
    assert_eq!(masks[1]["step"], 2);
    let iou = masks[0]["iou_with_final"].as_f64().unwrap();
    assert!(iou > 0.3 && iou <= 1.0, "{iou}");
    // It is the initial weights' mask: the prune of MODEL itself.
    assert!(Masks::load(&level(&run, 0).join("early_bird/eb-0.safetensors")).unwrap() == magnitude_masks(&model, 0.5));
    let l0: serde_json::Value = serde_json::from_slice(&std::fs::read(level(&run, 0).join("metrics.json")).unwrap()).unwrap();
    assert_eq!(l0["early_bird"]["masks"][0]["step"], 0);
}

/// `--floor-on`: the floor (`--min-layer-density`) kept in the named tensor only. Plain global magnitude at 80%
/// cuts the RPN head's conv and the box head's fc6 of the initial weights entirely; floored on one, that one
/// keeps the floor and the other stays cut.
#[test]
fn a_floor_on_one_tensor_changes_that_tensors_density_only() {
    let d = data();
    let model = fixture(MODEL);
    let kept = |on: &str| {
        let run = d.root.join(format!("floor_{on}"));
        run_ok(&quick(&d, &model, &run, &[&"--sparsity", &"0.8", &"--min-layer-density", &"0.05", &"--floor-on", &on]));
        let config: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
        assert_eq!(config["floor_on"], serde_json::json!([on]));
        kept_per_tensor(&Masks::load(&level(&run, 1).join("masks.safetensors")).unwrap())
    };
    let (conv, fc6, logits) = ("rpn.head.conv.0.0.weight", "roi_heads.box_head.fc6.weight", "rpn.head.cls_logits.weight");
    let a = kept("rpn.head.conv");
    assert_eq!((a[conv], a[fc6], a[logits]), ((2304f64 * 0.05).ceil() as usize, 0, 0), "floor on rpn.head.conv");
    let b = kept("box_head.fc6");
    assert_eq!((b[conv], b[fc6], b[logits]), (0, (50176f64 * 0.05).ceil() as usize, 0), "floor on box_head.fc6");
    // The total is the schedule's either way.
    assert_eq!(a.values().sum::<usize>(), b.values().sum::<usize>());
}

/// The gate: validation ground truth made of the initial model's own detections gives the dense level AP 1, and
/// each pruned level (pruned further, barely trained) less. A level whose drop exceeds `--max-map-drop` is not
/// chosen though it is sparser; with no level within the gate the run exits 1 and writes no ticket.
#[test]
fn the_gate_rejects_levels_outside_max_map_drop() {
    let d = data();
    let model = fixture(MODEL);
    let dets = d.root.join("dets.json");
    let images: Vec<PathBuf> = std::fs::read_dir(d.root.join("val/images")).unwrap().map(|e| e.unwrap().path()).collect();
    let mut args = os(&[&"detect", &model, &"-o", &dets, &"--threads", &"1"]);
    args.extend(images.iter().map(|p| p.as_os_str().to_owned()));
    let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect();
    ticket_json(&refs);
    let mut gt: serde_json::Value = serde_json::from_slice(&std::fs::read(&d.val).unwrap()).unwrap();
    let found: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&dets).unwrap()).unwrap();
    gt["annotations"] = found
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let b = &x["bbox"];
            serde_json::json!({
                "id": i + 1, "image_id": x["image_id"], "category_id": x["category_id"], "bbox": b,
                "area": b[2].as_f64().unwrap() * b[3].as_f64().unwrap(), "iscrowd": 0, "segmentation": x["segmentation"],
            })
        })
        .collect();
    let pseudo = d.root.join("val/pseudo.json");
    std::fs::write(&pseudo, serde_json::to_vec(&gt).unwrap()).unwrap();
    // Pruning only (a step at a vanishing learning rate from the trained weights): 2% and then 4% of the weights.
    let gated = |run: &Path, sparsity: &str, rounds: &str, drop: &str| {
        let val_images = d.root.join("val/images");
        let mut v = os(&[&"imp", &model, &"--coco", &d.train, &"--val-coco", &pseudo, &"--val-images", &val_images, &"--trained", &model]);
        v.extend(os(&[&"--sparsity", &sparsity, &"--rounds", &rounds, &"--max-map-drop", &drop, &"-o", &run]));
        v.extend(words("--rewind none --steps 1 --warmup 1 --lr 1e-9 --rois 32 --threads 1"));
        v
    };
    let run = d.root.join("gate");
    let s = run_ok(&gated(&run, "0.04", "2", "0.15"));
    let worst = |l: usize| s["delta"][l].as_object().unwrap().values().map(|v| v.as_f64().unwrap()).fold(f64::INFINITY, f64::min);
    assert!(s["levels"][0]["scores"]["bbox"]["ap"].as_f64().unwrap() > 0.99, "dense scores its own detections: {}", s["levels"][0]);
    assert!(worst(1) >= -0.15 && worst(2) < -0.15, "level 1 within the gate, level 2 outside: {} {}", worst(1), worst(2));
    assert_eq!(s["ticket_level"], 1, "the sparser level outside the gate is not chosen");
    assert!(std::fs::read(run.join("ticket.onnx")).unwrap() == std::fs::read(level(&run, 1).join("model.onnx")).unwrap());

    // No level within: exit 1, the table says so, and no ticket is written.
    let none = d.root.join("gate_none");
    let args = gated(&none, "0.75", "1", "0.05");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ticket")).args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no level is within 0.05 AP (5 points) of dense: no ticket written"));
    assert!(!none.join("ticket.onnx").exists() && !none.join("ticket.tkt").exists());
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(none.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["ticket_level"], serde_json::Value::Null);
}

/// `--val-every N`: every level, dense included, is scored on the validation set every N steps and at its end
/// (level_L/val_curve.jsonl, the end equal to the level's row); a resumed level adds no second point for a step;
/// `ticket report` draws the curves.
#[test]
fn val_every_records_validation_ap_over_training() {
    let d = data();
    let run = d.root.join("val_curve");
    let model = fixture(MODEL);
    let mut args = os(&[&"imp", &model, &"--coco", &d.train, &"--val-coco", &d.val, &"-o", &run]);
    args.extend(words("--steps 4 --warmup 1 --rois 32 --threads 1 --max-map-drop 1 --sparsity 0.5 --val-every 2 --save-every 2"));
    let s = run_ok(&args);
    let curve = |l: usize| -> Vec<serde_json::Value> {
        std::fs::read_to_string(level(&run, l).join("val_curve.jsonl")).unwrap().lines().map(|x| serde_json::from_str(x).unwrap()).collect()
    };
    for l in 0..=1 {
        let c = curve(l);
        assert_eq!(c.iter().map(|p| p["step"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 4], "level {l}");
        for t in ["bbox", "segm"] {
            let ap = c[0]["scores"][t]["ap"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&ap), "level {l} {t} {ap}");
            assert_eq!(c[1]["scores"][t], s["levels"][l]["scores"][t], "level {l}: the curve ends at the level's scores");
        }
    }
    // Level 1 again from its step-2 checkpoint, its curve's last point gone: the step-2 point is not repeated.
    let l1 = level(&run, 1);
    for f in ["metrics.json", "model.onnx", "checkpoints/step-000004.ckpt", "checkpoints/step-000004.ckpt.json"] {
        let _ = std::fs::remove_file(l1.join(f));
    }
    let _ = std::fs::remove_file(l1.join("checkpoints/step-000004.ckpt.momentum.npz"));
    let c = curve(1);
    std::fs::write(l1.join("val_curve.jsonl"), format!("{}\n", c[0])).unwrap();
    std::fs::write(l1.join("state.json"), r#"{"step":2,"checkpoint":"checkpoints/step-000002.ckpt"}"#).unwrap();
    run_ok(&os(&[&"imp", &"--resume", &run]));
    assert_eq!(curve(1).iter().map(|p| p["step"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 4]);
    let report = d.root.join("report");
    run_ok(&os(&[&"report", &run, &"-o", &report]));
    assert!(report.join("val_bbox.png").is_file() && report.join("val_segm.png").is_file());
}
