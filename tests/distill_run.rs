//! `ticket train` distilling from a teacher, end to end: the real binary and ORT training worker on the synthetic
//! set with the narrow Mask R-CNN fixture (tools/export_models.py --synth 4). A pruned ticket trains from a folder
//! of images without annotations (pseudo labels from the teacher, plus the distillation terms) and its masked
//! weights stay exactly zero; a few labelled images train beside a folder of unlabeled ones; a channel ticket
//! distils from its wider dense teacher; bad input is refused in one line, exit 2, with nothing created.
mod common;
use common::*;
use std::path::{Path, PathBuf};

const MODEL: &str = "train/maskrcnn_r18_fpn_synth.onnx";

/// A synthetic set of `n` images; returns (annotations.json, a folder holding only its images).
fn data(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    let out = ticket(&[&"data", &"synth", &"--out", &dir, &"--images", &n.to_string(), &"--seed", &"3"]);
    assert!(out.status.success(), "synth failed: {}", String::from_utf8_lossy(&out.stderr));
    let images = dir.join("unlabeled");
    std::fs::create_dir_all(&images).unwrap();
    for e in std::fs::read_dir(dir.join("images")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, images.join(p.file_name().unwrap())).unwrap();
    }
    (dir.join("annotations.json"), images)
}

/// The lines of `log.jsonl`.
fn log(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("log.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn short(args: &[&dyn AsRef<std::ffi::OsStr>]) -> serde_json::Value {
    let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = args.to_vec();
    all.extend_from_slice(&[&"--warmup", &"2", &"--lr", &"0.01", &"--batch", &"2", &"--threads", &"1"]);
    ticket_json(&all)
}

#[test]
fn a_ticket_trains_from_unlabeled_images_and_its_masked_weights_stay_zero() {
    let t = tempdir();
    let (_, images) = data(&t.path().join("data"), 4);
    let model = fixture(MODEL);
    let (pruned, masks) = (t.path().join("pruned.onnx"), t.path().join("masks.safetensors"));
    ticket_json(&[&"prune", &model, &"--sparsity", &"0.8", &"-o", &pruned, &"--masks-out", &masks]);
    let run = t.path().join("run");
    // The fixture's random-init teacher scores low: a low threshold still gives it boxes to teach.
    let report = short(&[
        &"train",
        &pruned,
        &"--unlabeled",
        &images,
        &"--teacher",
        &model,
        &"--pseudo-score",
        &"0.06",
        &"--masks",
        &masks,
        &"--steps",
        &"10",
        &"-o",
        &run,
    ]);
    assert_eq!(report["steps"], 10, "{report}");

    let gt: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("pseudo_gt.json")).unwrap()).unwrap();
    let anns = gt["annotations"].as_array().unwrap();
    assert!(!anns.is_empty() && anns.iter().all(|a| a["segmentation"].is_object()), "pseudo labels with masks: {}", anns.len());
    assert_eq!(gt["images"].as_array().unwrap().len(), 4);
    let lines = log(&run);
    assert_eq!(lines.len(), 10);
    for l in &lines {
        for term in ["loss_distill_features", "loss_distill_logits", "loss_distill_box", "loss_distill_mask", "loss_distill_objectness"] {
            let v = l[term].as_f64().unwrap_or_else(|| panic!("{term} missing from {l}"));
            assert!(v.is_finite() && v >= 0.0, "{term} = {v}");
        }
        assert!(l["teacher_s"].as_f64().unwrap() > 0.0, "{l}");
    }
    let run_json: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["data"]["Unlabeled"]["dir"].as_str().map(PathBuf::from), Some(std::path::absolute(&images).unwrap()));
    assert_eq!(run_json["distill"]["terms"], serde_json::json!(["features", "logits", "objectness"]));

    let before = ticket::onnx::OnnxModel::load(&pruned).unwrap();
    let after = ticket::onnx::OnnxModel::load(&run.join("model.onnx")).unwrap();
    let (mut zero, mut moved) = (0usize, 0usize);
    for (name, (_, keep)) in read_safetensors(&masks) {
        let get = |m: &ticket::onnx::OnnxModel| {
            let t = m.graph().initializer.iter().find(|t| t.name() == name).unwrap().clone();
            m.f32_values(&t).unwrap()
        };
        let (b, a) = (get(&before), get(&after));
        for ((k, x), y) in keep.iter().zip(&b).zip(&a) {
            if *k == 0.0 {
                assert!(*y == 0.0 && y.is_sign_positive(), "{name}: a masked weight is {y} after distillation");
                zero += 1;
            } else if x != y {
                moved += 1;
            }
        }
    }
    assert!(zero > 0 && moved > 0, "masked {zero}, moved {moved}");

    // A resume takes its labels and teacher from the folder, and refuses a teacher that changed.
    let resumed = short(&[&"train", &pruned, &"--resume", &run, &"--steps", &"11"]);
    assert_eq!(resumed["resumed_from"], 10, "{resumed}");
    let run_file = run.join("run.json");
    let edited = std::fs::read_to_string(&run_file).unwrap().replace(model.to_str().unwrap(), pruned.to_str().unwrap());
    std::fs::write(&run_file, edited).unwrap();
    let err = run_err(&[&"train", &pruned, &"--resume", &run, &"--steps", &"12"]);
    assert!(err.contains("another model"), "{err}");
}

#[test]
fn a_channel_ticket_distils_from_its_wider_teacher() {
    let t = tempdir();
    let (ann, _) = data(&t.path().join("data"), 2);
    let model = fixture(MODEL);
    let ticket_file = t.path().join("channel.onnx");
    ticket_json(&[&"prune", &model, &"--structure", &"channel", &"--sparsity", &"0.5", &"--round-to", &"2", &"-o", &ticket_file]);
    let (narrow, wide) = (ticket::model::ModelState::import(&ticket_file).unwrap(), ticket::model::ModelState::import(&model).unwrap());
    assert!(narrow.arch.fpn_channels < wide.arch.fpn_channels, "the ticket's FPN is not narrower");
    let run = t.path().join("run");
    short(&[
        &"train",
        &ticket_file,
        &"--coco",
        &ann,
        &"--teacher",
        &model,
        &"--distill",
        &"features,logits",
        &"--distill-weight",
        &"2",
        &"--steps",
        &"3",
        &"-o",
        &run,
    ]);
    for l in log(&run) {
        assert!(l["loss_distill_features"].as_f64().unwrap() > 0.0, "{l}");
        assert!(l["loss_distill_logits"].as_f64().is_some() && l.get("loss_distill_objectness").is_none(), "{l}");
        // The total holds torchvision's terms and the distillation's.
        let sum: f64 = l.as_object().unwrap().iter().filter(|(k, _)| k.starts_with("loss_")).map(|(_, v)| v.as_f64().unwrap()).sum();
        assert!((l["loss"].as_f64().unwrap() - sum).abs() <= 1e-4 * sum.abs().max(1.0), "{l}");
    }
}

#[test]
fn bad_distillation_input_is_refused_and_creates_nothing() {
    let t = tempdir();
    let (ann, images) = data(&t.path().join("data"), 2);
    let model = fixture(MODEL);
    let run = t.path().join("run");
    let train = |more: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"train", &model, &"--steps", &"2", &"-o", &run];
        args.extend_from_slice(more);
        let err = run_err(&args);
        assert!(!run.exists(), "{err}: the run folder was created");
        err
    };
    let empty = t.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = train(&[&"--unlabeled", &empty, &"--teacher", &model]);
    assert!(err.contains(empty.to_str().unwrap()) && err.contains("no PNG or JPEG images"), "{err}");

    let broken = t.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::copy(std::fs::read_dir(&images).unwrap().next().unwrap().unwrap().path(), broken.join("a.png")).unwrap();
    std::fs::write(broken.join("b.png"), b"not an image").unwrap();
    let err = train(&[&"--unlabeled", &broken, &"--teacher", &model, &"--pseudo-score", &"0.06"]);
    assert!(err.contains("b.png"), "{err}");

    let err = train(&[&"--unlabeled", &images]);
    assert!(err.contains("--teacher"), "{err}");
    let err = train(&[&"--coco", &ann, &"--distill", &"logits"]);
    assert!(err.contains("--teacher"), "{err}");

    // A teacher of another kind and classes: refused, naming both.
    let faster = fixture("fasterrcnn_r18_fpn_voc.onnx");
    let err = train(&[&"--coco", &ann, &"--teacher", &faster, &"--distill", &"logits"]);
    assert!(err.contains("fasterrcnn_r18_fpn_voc.onnx") && err.contains("maskrcnn_r18_fpn_synth.onnx"), "{err}");
    assert!(err.contains("Faster R-CNN") && err.contains("Mask R-CNN"), "{err}");
    let err = train(&[&"--coco", &ann, &"--teacher", &model, &"--distill", &"logits", &"--temperature", &"0"]);
    assert!(err.contains("--temperature"), "{err}");
}

/// A few labels beside many images (`--coco` with `--unlabeled`): the labelled images train on their annotations,
/// the folder's others on the teacher's, and an image in both trains once, on its own labels.
#[test]
fn labelled_and_unlabeled_images_train_together() {
    let t = tempdir();
    let (ann, labelled_images) = data(&t.path().join("data"), 2);
    let (_, more) = data(&t.path().join("more"), 3);
    // The folder holds the 2 labelled images (the json's file names) and 3 more.
    let folder = t.path().join("folder");
    std::fs::create_dir_all(&folder).unwrap();
    for (from, prefix) in [(&labelled_images, ""), (&more, "u_")] {
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, folder.join(format!("{prefix}{}", p.file_name().unwrap().to_string_lossy()))).unwrap();
        }
    }
    let model = fixture(MODEL);
    let run = t.path().join("run");
    let mixed: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"--coco", &ann, &"--images", &folder, &"--unlabeled", &folder, &"--teacher", &model, &"--pseudo-score", &"0.06"];
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"train", &model, &"--steps", &"4", &"-o", &run];
    args.extend_from_slice(&mixed);
    let report = short(&args);
    assert_eq!((report["train_images"].as_u64(), report["pseudo_labelled"].as_u64()), (Some(5), Some(3)), "{report}");
    let run_json: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    let data = &run_json["data"]["Unlabeled"];
    assert_eq!(data["labelled"]["Coco"]["annotations"].as_str().map(PathBuf::from), Some(std::path::absolute(&ann).unwrap()), "{data}");
    assert_eq!(run_json["distill"]["terms"], serde_json::json!(["features", "logits", "objectness"]));
    assert!(log(&run).iter().all(|l| l["loss_distill_features"].as_f64().is_some_and(|v| v > 0.0)));
    // The teacher labels only the folder's images without labels of their own (pseudo_gt.json is what it said).
    let gt: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("pseudo_gt.json")).unwrap()).unwrap();
    let labelled_by_teacher: Vec<_> = gt["images"].as_array().unwrap().iter().map(|i| i["file_name"].as_str().unwrap()).collect();
    assert!(labelled_by_teacher.len() == 3 && labelled_by_teacher.iter().all(|f| f.starts_with("u_")), "{labelled_by_teacher:?}");
    // A resume reads both sets from run.json.
    let resumed = short(&[&"train", &model, &"--resume", &run, &"--steps", &"5"]);
    assert_eq!((resumed["resumed_from"].as_u64(), resumed["train_images"].as_u64()), (Some(4), Some(5)), "{resumed}");
    // An image the teacher labelled that changed size since is refused naming the teacher's labels, not the user's.
    let kept = t.path().join("kept");
    std::fs::create_dir_all(&kept).unwrap();
    for f in std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().path()) {
        if f.file_name().unwrap().to_string_lossy().starts_with("u_") {
            std::fs::copy(&f, kept.join(f.file_name().unwrap())).unwrap();
            image::RgbImage::new(40, 30).save(&f).unwrap();
        }
    }
    let err = run_err(&[&"train", &model, &"--resume", &run, &"--steps", &"8"]);
    assert!(err.contains("40x30") && err.contains("pseudo_gt.json") && !err.contains("annotations.json"), "{err}");
    for f in std::fs::read_dir(&kept).unwrap().map(|e| e.unwrap().path()) {
        std::fs::copy(&f, folder.join(f.file_name().unwrap())).unwrap();
    }
    // `ticket imp` trains its pruned level on both, from the dense model given as `--trained`.
    let imp = t.path().join("imp");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"imp", &model, &"--trained", &model, &"--val-coco", &ann, &"--sparsity", &"0.5"];
    args.extend_from_slice(&[&"--steps", &"2", &"--rois", &"32", &"--max-map-drop", &"1", &"-o", &imp]);
    args.extend_from_slice(&mixed);
    short(&args);
    let level: serde_json::Value = serde_json::from_slice(&std::fs::read(imp.join("level_1/run.json")).unwrap()).unwrap();
    assert!(level["data"]["Unlabeled"]["labelled"]["Coco"].is_object(), "{}", level["data"]);
    assert_eq!(log(&imp.join("level_1")).len(), 2);

    // A labelled set whose classes are not the model's is refused before the teacher labels anything, naming it.
    let mut bad: serde_json::Value = serde_json::from_slice(&std::fs::read(&ann).unwrap()).unwrap();
    let kept: Vec<_> = bad["categories"].as_array().unwrap().iter().skip(1).cloned().collect();
    let first = bad["categories"][0]["id"].clone();
    bad["categories"] = kept.into();
    let anns: Vec<_> = bad["annotations"].as_array().unwrap().iter().filter(|a| a["category_id"] != first).cloned().collect();
    bad["annotations"] = anns.into();
    let bad_ann = t.path().join("bad.json");
    std::fs::write(&bad_ann, serde_json::to_vec(&bad).unwrap()).unwrap();
    let x = t.path().join("x");
    let err =
        run_err(&[&"train", &model, &"--coco", &bad_ann, &"--images", &folder, &"--unlabeled", &folder, &"--teacher", &model, &"-o", &x]);
    assert!(err.contains("bad.json") && err.contains("categories") && !x.exists(), "{err}");
    // A folder whose every image has labels leaves the teacher nothing to label: refused, naming both.
    let err = run_err(&[
        &"train",
        &model,
        &"--coco",
        &ann,
        &"--images",
        &labelled_images,
        &"--unlabeled",
        &labelled_images,
        &"--teacher",
        &model,
        &"-o",
        &x,
    ]);
    assert!(err.contains("no image without labels") && err.contains(&*ann.to_string_lossy()) && !x.exists(), "{err}");
    // Unlabeled images train beside detection labels, not beside a classification set.
    let err = run_err(&[&"train", &model, &"--classify", &folder, &"--unlabeled", &folder, &"--teacher", &model, &"-o", &x]);
    assert!(err.contains("--classify") && err.contains("--unlabeled") && !x.exists(), "{err}");
}

/// Keypoint R-CNN learns from unlabeled images too: the teacher's confident persons become pseudo ground truth
/// with their 17 keypoints, and the student's keypoint loss trains on them beside the distillation terms.
#[test]
fn a_keypoint_rcnn_trains_from_the_keypoints_of_its_teachers_detections() {
    let t = tempdir();
    let (_, images) = data(&t.path().join("data"), 3);
    let model = fixture("keypointrcnn_r50_fpn.onnx");
    let run = t.path().join("run");
    // The fixture's random-init teacher scores low: a low threshold still gives it persons to teach.
    let report = short(&[
        &"train",
        &model,
        &"--unlabeled",
        &images,
        &"--teacher",
        &model,
        &"--pseudo-score",
        &"0.01",
        &"--rois",
        &"32",
        &"--steps",
        &"3",
        &"-o",
        &run,
    ]);
    assert_eq!(report["steps"], 3, "{report}");
    let gt: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("pseudo_gt.json")).unwrap()).unwrap();
    let anns = gt["annotations"].as_array().unwrap();
    assert!(!anns.is_empty(), "the teacher gave no person above the threshold");
    for a in anns {
        let k = a["keypoints"].as_array().unwrap_or_else(|| panic!("a pseudo person without keypoints: {a}"));
        assert_eq!(k.len(), 17 * 3, "{a}");
        assert!(k.iter().all(|v| v.as_f64().is_some_and(f64::is_finite)), "{a}");
        assert_eq!(a["num_keypoints"], 17, "{a}");
    }
    assert_eq!(gt["categories"][0]["keypoints"].as_array().map(Vec::len), Some(17), "{}", gt["categories"]);
    let lines = log(&run);
    for l in &lines {
        for term in ["loss_keypoint", "loss_distill_features", "loss_distill_logits", "loss_distill_objectness"] {
            let v = l[term].as_f64().unwrap_or_else(|| panic!("{term} missing from {l}"));
            assert!(v.is_finite() && v >= 0.0, "{term} = {v}");
        }
    }
    // The pseudo keypoints are targets: some step's sampled persons carry them into the keypoint loss.
    assert!(lines.iter().any(|l| l["loss_keypoint"].as_f64().unwrap() > 0.0), "{lines:?}");
}

/// `ticket imp` distils each pruned level from level 0's trained model; with `--unlabeled` images and the dense
/// model as `--trained`, the levels learn from its pseudo labels and signals alone.
#[test]
fn imp_levels_distil_from_level_0_and_from_unlabeled_images() {
    let t = tempdir();
    let (ann, images) = data(&t.path().join("train"), 4);
    let (val, _) = data(&t.path().join("val"), 2);
    let model = fixture(MODEL);
    let common: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"--val-coco", &val, &"--sparsity", &"0.8", &"--steps", &"3", &"--rois", &"32", &"--max-map-drop", &"1"];
    let imp = |more: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"imp", &model];
        args.extend_from_slice(&common);
        args.extend_from_slice(more);
        short(&args)
    };
    let labelled = t.path().join("labelled");
    imp(&[&"--coco", &ann, &"--distill", &"features,logits", &"-o", &labelled]);
    let level0 = std::path::absolute(labelled.join("level_0/model.onnx")).unwrap();
    let run_json =
        |dir: &Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(dir.join("level_1/run.json")).unwrap()).unwrap() };
    assert_eq!(run_json(&labelled)["distill"]["teacher"].as_str().map(PathBuf::from), Some(level0.clone()));
    assert!(log(&labelled.join("level_1")).iter().all(|l| l["loss_distill_features"].as_f64().unwrap() > 0.0));
    assert!(log(&labelled.join("level_0")).iter().all(|l| l.get("loss_distill_features").is_none()), "level 0 is the teacher");

    let unlabeled = t.path().join("unlabeled");
    imp(&[&"--unlabeled", &images, &"--trained", &level0, &"--pseudo-score", &"0.06", &"-o", &unlabeled]);
    assert!(unlabeled.join("level_1/pseudo_gt.json").is_file());
    assert_eq!(run_json(&unlabeled)["distill"]["terms"], serde_json::json!(["features", "logits", "objectness"]));
    assert!(log(&unlabeled.join("level_1")).iter().all(|l| l["loss_distill_objectness"].as_f64().is_some()));

    let err = run_err(&[&"imp", &model, &"--unlabeled", &images, &"--val-coco", &val, &"--sparsity", &"0.8", &"-o", &t.path().join("x")]);
    assert!(err.contains("--trained") && !t.path().join("x").exists(), "{err}");
}

/// Without any annotation: training from unlabeled images and validation by agreement with dense (`--val-images`
/// alone). The reference is the dense model's confident detections, kept in the run folder; dense agrees with
/// itself perfectly, and the pruned level is scored against the same reference.
#[test]
fn imp_runs_without_any_annotation() {
    let t = tempdir();
    let (ann, images) = data(&t.path().join("train"), 4);
    let (_, val_images) = data(&t.path().join("val"), 2);
    let model = fixture(MODEL);
    let dense = t.path().join("dense");
    short(&[&"train", &model, &"--coco", &ann, &"--steps", &"3", &"--rois", &"32", &"-o", &dense]);
    let trained = dense.join("model.onnx");
    let run = t.path().join("free");
    let base: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"imp",
        &model,
        &"--unlabeled",
        &images,
        &"--trained",
        &trained,
        &"--pseudo-score",
        &"0.06",
        &"--sparsity",
        &"0.8",
        &"--steps",
        &"3",
        &"--rois",
        &"32",
        &"--max-map-drop",
        &"1",
    ];
    let mut args = base.clone();
    args.extend_from_slice(&[&"--val-images", &val_images, &"--agreement-score", &"0.06", &"-o", &run]);
    let summary = short(&args);
    let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("val_reference.json")).unwrap()).unwrap();
    assert!(!reference["annotations"].as_array().unwrap().is_empty());
    assert_eq!(reference["images"].as_array().unwrap().len(), 2);
    assert_eq!(summary["agreement_with"].as_str().map(PathBuf::from), Some(std::path::absolute(run.join("val_reference.json")).unwrap()));
    let levels = summary["levels"].as_array().unwrap();
    for t in ["bbox", "segm"] {
        let ap = |l: usize| levels[l]["scores"][t]["ap"].as_f64().unwrap();
        assert!((ap(0) - 1.0).abs() < 1e-9, "dense agrees with itself: {t} {}", ap(0));
        assert!((0.0..=1.0).contains(&ap(1)), "{t} {}", ap(1));
    }

    // An empty validation folder, or a reference with nothing in it, is refused in one line.
    let (empty, x, y) = (t.path().join("empty"), t.path().join("x"), t.path().join("y"));
    std::fs::create_dir_all(&empty).unwrap();
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = base.clone();
    args.extend_from_slice(&[&"--val-images", &empty, &"-o", &x]);
    let err = run_err(&args);
    assert!(err.contains("no PNG or JPEG") && !x.exists(), "{err}");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = base.clone();
    args.extend_from_slice(&[&"--val-images", &val_images, &"--agreement-score", &"1", &"-o", &y]);
    let err = run_err(&args);
    assert!(err.contains("--agreement-score") && !y.exists(), "{err}");
}
