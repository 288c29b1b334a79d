//! `ticket detect`, `ticket eval --model` and `ticket validate` end to end on real images written as PNG.
mod common;
use common::*;
use std::path::{Path, PathBuf};

/// Noise images (random-weight fixtures detect plenty on them), one of them not square so it is resized.
fn write_images(dir: &Path) -> Vec<PathBuf> {
    noise_images(dir, &[(128, 128), (150, 100), (128, 128)], 11)
}

/// `ticket detect MODEL IMAGES... -o OUT --json`.
fn detect(model: &Path, images: &[PathBuf], out: &Path) -> serde_json::Value {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"detect", &model];
    for i in images {
        args.push(i);
    }
    args.extend([&"-o" as &dyn AsRef<std::ffi::OsStr>, &out]);
    ticket_json(&args)
}

/// A COCO ground truth for the images: the given detections, as annotations.
fn ground_truth(path: &Path, images: &[PathBuf], dets: &serde_json::Value, min_score: f64, categories: &[u64]) {
    let imgs: Vec<serde_json::Value> = images
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (w, h) = image::image_dimensions(p).unwrap_or((128, 128));
            serde_json::json!({"id": i + 1, "file_name": p.file_name().unwrap().to_str().unwrap(), "width": w, "height": h})
        })
        .collect();
    let anns: Vec<serde_json::Value> = dets
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["score"].as_f64().unwrap() >= min_score)
        .enumerate()
        .map(|(i, d)| {
            let b = &d["bbox"];
            serde_json::json!({"id": i + 1, "image_id": d["image_id"], "category_id": d["category_id"], "bbox": b,
                "area": b[2].as_f64().unwrap() * b[3].as_f64().unwrap(), "iscrowd": 0, "segmentation": d["segmentation"]})
        })
        .collect();
    let cats: Vec<serde_json::Value> = categories.iter().map(|c| serde_json::json!({"id": c, "name": format!("c{c}")})).collect();
    std::fs::write(path, serde_json::to_vec(&serde_json::json!({"images": imgs, "annotations": anns, "categories": cats})).unwrap())
        .unwrap();
}

#[test]
fn detect_writes_coco_results_that_eval_scores() {
    let dir = tempdir();
    let images = write_images(dir.path());
    let model = fixture("maskrcnn_r18_fpn.onnx");
    let dets_path = dir.path().join("dets.json");
    let drawn = dir.path().join("drawn");
    let r = ticket_json(&[&"detect", &model, &images[0], &images[1], &images[2], &"-o", &dets_path, &"--draw", &drawn]);
    // --draw writes each image with its detections on it, at the original size.
    for p in &images {
        let out = image::open(drawn.join(p.file_name().unwrap())).unwrap().to_rgb8();
        let input = image::open(p).unwrap().to_rgb8();
        assert_eq!(out.dimensions(), input.dimensions());
        assert_ne!(out, input, "{}: nothing drawn", p.display());
    }
    // Sizes and the score threshold were read from the export's graph.
    assert_eq!((r["min_size"].as_u64(), r["max_size"].as_u64(), r["score_thresh"].as_f64()), (Some(128), Some(128), Some(0.0)));
    let dets: serde_json::Value = serde_json::from_slice(&std::fs::read(&dets_path).unwrap()).unwrap();
    let list = dets.as_array().unwrap();
    assert_eq!(list.len() as u64, r["detections"].as_u64().unwrap());
    assert!(list.len() > 100, "random weights at threshold 0 detect plenty");
    for d in list {
        assert!(d["segmentation"]["counts"].is_string() && d["bbox"].as_array().unwrap().len() == 4);
        let (w, h) = if d["image_id"] == 2 { (150.0, 100.0) } else { (128.0, 128.0) };
        assert_eq!(d["segmentation"]["size"], serde_json::json!([h as u64, w as u64]), "masks are pasted at the original size");
        let b: Vec<f64> = d["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert!(b[0] >= 0.0 && b[1] >= 0.0 && b[0] + b[2] <= w + 1e-3 && b[1] + b[3] <= h + 1e-3, "{b:?}");
    }
    // Scored against a ground truth made of its own confident detections, with both paths of ticket eval.
    let gt = dir.path().join("gt.json");
    // Random weights score 0.22-0.32 on noise; the top of that range plays the confident detections.
    ground_truth(&gt, &images, &dets, 0.28, &[1, 2, 3, 4]);
    // --model scores every IoU type the model has (bbox and segm) from one detection run, keyed by type.
    let from_model = ticket_json(&[&"eval", &"--model", &model, &"--images", &dir.path(), &"--coco", &gt]);
    assert_eq!(from_model.as_object().unwrap().keys().collect::<Vec<_>>(), ["bbox", "segm"], "{from_model}");
    for iou in ["bbox", "segm"] {
        let from_file = ticket_json(&[&"eval", &"--dets", &dets_path, &"--coco", &gt, &"--iou-type", &iou]);
        assert_eq!(from_file["metrics"], from_model[iou]["metrics"], "{iou}");
        assert_eq!(from_file["per_category"], from_model[iou]["per_category"], "{iou}");
        let ap = from_file["summary"]["AP"].as_f64().unwrap();
        assert!(ap > 0.5, "{iou}: a model scored on its own detections has AP {ap}");
    }
    // One type asked: that report alone. And without --images, `images/` next to the json (as train reads it).
    let set = dir.path().join("set");
    std::fs::create_dir_all(set.join("images")).unwrap();
    for p in &images {
        std::fs::copy(p, set.join("images").join(p.file_name().unwrap())).unwrap();
    }
    std::fs::copy(&gt, set.join("gt.json")).unwrap();
    let segm = ticket_json(&[&"eval", &"--model", &model, &"--coco", &set.join("gt.json"), &"--iou-type", &"segm"]);
    assert_eq!(segm["iou_type"], "segm");
    assert_eq!(segm["summary"], from_model["segm"]["summary"]);
}

/// Images in DIR/images, the dense Mask R-CNN fixture, and its 50% magnitude ticket in DIR/ticket.onnx.
fn half_pruned(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let imgs = dir.join("images");
    std::fs::create_dir(&imgs).unwrap();
    write_images(&imgs);
    let dense = fixture("maskrcnn_r18_fpn.onnx");
    let cand = dir.join("ticket.onnx");
    ticket_json(&[&"prune", &dense, &"--sparsity", &"0.5", &"-o", &cand]);
    (imgs, dense, cand)
}

/// The gate as a library call, as `ticket demo` makes it (the model's own detection settings, nothing shown),
/// gives the command's report: the same reference, scores, drops and gates.
#[test]
fn the_gate_as_a_library_call_gives_the_commands_report() {
    use ticket::eval::gate::{validate, DetectRun, GateSettings};
    let dir = tempdir();
    let (imgs, dense, cand) = half_pruned(dir.path());
    let gates: [&dyn AsRef<std::ffi::OsStr>; 6] = [&"--min-sparsity", &"0.45", &"--max-map-drop", &"1.0", &"--agreement-score", &"0.28"];
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"validate", &cand, &"--dense", &dense, &"--images", &imgs];
    args.extend(gates);
    let cli = ticket_json(&args);
    let settings = GateSettings {
        images: Some(imgs.clone()),
        min_sparsity: Some(0.45),
        max_map_drop: Some(1.0),
        agreement_score: 0.28,
        ..GateSettings::new(cand.clone(), dense.clone())
    };
    let lib = serde_json::to_value(validate(&settings, &mut DetectRun::default()).unwrap()).unwrap();
    for key in ["reference", "images", "dense_detections", "map_drop", "gates", "passed"] {
        assert_eq!(lib[key], cli[key], "{key}");
    }
    for model in ["dense", "candidate"] {
        for key in ["model", "sparsity", "scores"] {
            assert_eq!(lib[model][key], cli[model][key], "{model} {key}");
        }
    }
    // A failed gate is a report that says so, not an error: the caller decides what it means.
    let strict = GateSettings { min_sparsity: Some(0.9), ..settings };
    let r = validate(&strict, &mut DetectRun::default()).unwrap();
    assert!(!r.passed && r.failed().len() == 1 && r.failed()[0].starts_with("min sparsity"), "{:?}", r.failed());
}

#[test]
fn validate_gates_sparsity_and_map_drop() {
    let dir = tempdir();
    let (imgs, dense, cand) = half_pruned(dir.path());

    let r = ticket_json(&[
        &"validate",
        &cand,
        &"--dense",
        &dense,
        &"--images",
        &imgs,
        &"--min-sparsity",
        &"0.45",
        &"--max-map-drop",
        &"1.0",
        &"--agreement-score",
        &"0.28",
        &"--repeat",
        &"2",
    ]);
    assert_eq!(r["passed"], true);
    assert_eq!(r["reference"], "agreement with the dense model");
    assert!((r["candidate"]["sparsity"].as_f64().unwrap() - 0.5).abs() < 1e-3);
    // Every IoU type of a Mask R-CNN is scored and gated by default.
    let gates: Vec<&str> = r["gates"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(gates, ["min sparsity", "max mAP drop (bbox)", "max mAP drop (segm)"]);
    for t in ["bbox", "segm"] {
        assert!(r["dense"]["scores"][t]["ap"].as_f64().unwrap() > 0.9, "{t}: the dense model agrees with itself");
        assert!(r["map_drop"][t].is_number(), "{r}");
    }
    // Latency: median with its spread over 3 images × 2 runs.
    let l = &r["candidate"]["latency"];
    assert_eq!(l["samples"], 6);
    let v = |k: &str| l[k].as_f64().unwrap();
    assert!(
        0.0 < v("min_ms")
            && v("min_ms") <= v("p10_ms")
            && v("p10_ms") <= v("median_ms")
            && v("median_ms") <= v("p90_ms")
            && v("p90_ms") <= v("max_ms"),
        "{l}"
    );

    let fail = ticket(&[
        &"validate",
        &cand,
        &"--dense",
        &dense,
        &"--images",
        &imgs,
        &"--min-sparsity",
        &"0.6",
        &"--agreement-score",
        &"0.28",
        &"--json",
    ]);
    assert_eq!(fail.status.code(), Some(1), "{}", String::from_utf8_lossy(&fail.stderr));
    let v: serde_json::Value = serde_json::from_slice(&fail.stdout).unwrap();
    assert_eq!(v["passed"], false);

    // A model against itself loses nothing; a strict drop gate on a 50% ticket of random weights fails, and
    // the text says FAILED once.
    let same =
        ticket_json(&[&"validate", &dense, &"--dense", &dense, &"--images", &imgs, &"--max-map-drop", &"0", &"--agreement-score", &"0.28"]);
    assert_eq!(same["map_drop"], serde_json::json!({"bbox": 0.0, "segm": 0.0}));
    let strict =
        ticket(&[&"validate", &cand, &"--dense", &dense, &"--images", &imgs, &"--max-map-drop", &"0", &"--agreement-score", &"0.28"]);
    assert_eq!(strict.status.code(), Some(1));
    let text = String::from_utf8_lossy(&strict.stdout).to_string() + &String::from_utf8_lossy(&strict.stderr);
    assert_eq!(text.matches("FAILED").count(), 1, "{text}");
}

#[test]
fn validate_reuses_the_dense_detections() {
    let dir = tempdir();
    let imgs = dir.path().join("images");
    std::fs::create_dir(&imgs).unwrap();
    let images = write_images(&imgs);
    let dense = fixture("maskrcnn_r18_fpn.onnx");
    let cand = dir.path().join("ticket.onnx");
    ticket_json(&[&"prune", &dense, &"--sparsity", &"0.5", &"-o", &cand]);
    let cache = dir.path().join("dense.json");
    let run = |extra: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"validate", &cand, &"--dense", &dense, &"--images", &imgs, &"--agreement-score", &"0.28"];
        args.extend_from_slice(extra);
        ticket_json(&args)
    };
    let plain = run(&[]);
    assert_eq!(plain["dense_detections"], "run");
    let first = run(&[&"--dense-cache", &cache]);
    assert!(first["dense_detections"].as_str().unwrap().ends_with("(written)"), "{first}");
    let second = run(&[&"--dense-cache", &cache]);
    assert!(second["dense_detections"].as_str().unwrap().ends_with("(reused)"), "{second}");
    // Reused, not re-run: the dense timings are the cached ones to the bit, and the scores are a run's.
    assert_eq!(second["dense"]["latency"], first["dense"]["latency"]);
    for r in [&first, &second] {
        assert_eq!(r["dense"]["scores"], plain["dense"]["scores"]);
        assert_eq!(r["candidate"]["scores"], plain["candidate"]["scores"]);
    }
    // Other detection settings make other detections: the cache is stale and recomputed.
    let stale = run(&[&"--dense-cache", &cache, &"--detections-per-img", &"5"]);
    assert!(stale["dense_detections"].as_str().unwrap().ends_with("(stale: recomputed)"), "{stale}");

    // Detections from `ticket detect` (images in file-name order, ids 1..N) stand in for the dense run.
    let dets = dir.path().join("dets.json");
    detect(&dense, &images, &dets);
    let given = run(&[&"--dense-dets", &dets]);
    assert_eq!(given["dense"]["scores"], plain["dense"]["scores"]);
    assert!(given["dense"]["latency"].is_null());
    // Ids that are none of the images, or a cache that is not one: exit 2 naming the file.
    let wrong = dir.path().join("wrong.json");
    std::fs::write(&wrong, r#"[{"image_id": 99, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.9}]"#).unwrap();
    let not_cache = dir.path().join("not_cache.json");
    std::fs::write(&not_cache, b"[]").unwrap();
    for (flag, file) in [("--dense-dets", &wrong), ("--dense-cache", &not_cache)] {
        let r = ticket(&[&"validate", &cand, &"--dense", &dense, &"--images", &imgs, &flag, file]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{flag}: {err}");
        assert!(err.contains(file.file_name().unwrap().to_str().unwrap()) && err.trim_end().lines().count() == 1, "{flag}: {err}");
    }
    assert_eq!(std::fs::read(&not_cache).unwrap(), b"[]", "a file that is not a cache is left alone");
}

#[test]
fn detection_bad_input_is_exit_2_naming_the_file() {
    let dir = tempdir();
    let images = write_images(dir.path());
    let model = fixture("maskrcnn_r18_fpn.onnx");
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let gt_bad_class = dir.path().join("gt99.json");
    ground_truth(&gt_bad_class, &images, &serde_json::json!([]), 0.5, &[99]);
    let gt_missing_image = dir.path().join("gt_missing.json");
    ground_truth(&gt_missing_image, &[images[0].clone(), dir.path().join("nope.png")], &serde_json::json!([]), 0.5, &[1]);
    std::fs::write(dir.path().join("nope.png"), b"").unwrap();
    std::fs::remove_file(dir.path().join("nope.png")).unwrap();
    let out = dir.path().join("dets.json");
    let (d, missing, resnet, keypoint, none) = (
        dir.path().to_path_buf(),
        d_join(&dir, "missing.png"),
        fixture("resnet18.onnx"),
        fixture("keypointrcnn_r50_fpn.onnx"),
        d_join(&dir, "none"),
    );
    let cases: Vec<(Vec<&dyn AsRef<std::ffi::OsStr>>, &str)> = vec![
        (vec![&"detect", &model, &missing, &"-o", &out], "missing.png"),
        (vec![&"detect", &model, &broken, &"-o", &out], "broken.png"),
        (vec![&"detect", &resnet, &images[0], &"-o", &out], "resnet18.onnx"),
        (vec![&"eval", &"--model", &model, &"--images", &d, &"--coco", &gt_bad_class], "gt99.json"),
        (vec![&"eval", &"--model", &model, &"--images", &d, &"--coco", &gt_missing_image], "nope.png"),
        // No --images and no images/ next to the json: the folder it looked for is named.
        (vec![&"eval", &"--model", &model, &"--coco", &gt_missing_image], "images: not a folder"),
        (
            vec![&"eval", &"--model", &model, &"--images", &d, &"--coco", &gt_missing_image, &"--iou-type", &"bbox,keypoints"],
            "--iou-type keypoints",
        ),
        (vec![&"validate", &model, &"--dense", &keypoint, &"--images", &d], "maskrcnn_r18_fpn.onnx"),
        (vec![&"validate", &model, &"--dense", &model, &"--images", &none], "none"),
    ];
    for (args, name) in cases {
        let r = ticket(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{name}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
        assert!(err.contains(name), "{name}: {err}");
        assert!(!out.exists(), "{name}: left an output behind");
    }
}

fn d_join(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[test]
fn eval_model_on_a_voc_folder() {
    let dir = tempdir();
    let ann = dir.path().join("Annotations");
    let imgs = dir.path().join("JPEGImages");
    std::fs::create_dir_all(&ann).unwrap();
    std::fs::create_dir_all(&imgs).unwrap();
    let written = write_images(&imgs);
    for (i, p) in written.iter().enumerate() {
        let (w, h) = image::image_dimensions(p).unwrap();
        let name = p.file_name().unwrap().to_str().unwrap();
        let xml = format!(
            "<annotation><filename>{name}</filename><size><width>{w}</width><height>{h}</height><depth>3</depth></size>\
             <object><name>person</name><difficult>0</difficult><bndbox><xmin>{}</xmin><ymin>10</ymin><xmax>{}</xmax><ymax>90</ymax></bndbox></object></annotation>",
            10 + i * 5,
            70 + i * 5
        );
        std::fs::write(ann.join(format!("{i:06}.xml")), xml).unwrap();
    }
    // Keypoint R-CNN has one class (person) plus background: it fits a one-class VOC set.
    let r = ticket_json(&[&"eval", &"--model", &fixture("keypointrcnn_r50_fpn.onnx"), &"--voc", &dir.path()]);
    let classes = r["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 1);
    assert!(classes[0]["detections"].as_u64().unwrap() > 0, "{r}");
    assert!(classes[0]["ap_voc07"].is_number(), "{r}");
    assert!(r["map_voc07"].is_number() || r["map_voc07"].is_null());
    // A 20-class VOC model does not fit a one-class set.
    let bad = ticket(&[&"eval", &"--model", &fixture("fasterrcnn_r18_fpn_voc.onnx"), &"--voc", &dir.path()]);
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("classes"));
}

#[test]
fn validate_on_annotations() {
    let dir = tempdir();
    let images = write_images(dir.path());
    let dense = fixture("maskrcnn_r18_fpn.onnx");
    let dets_path = dir.path().join("dets.json");
    detect(&dense, &images, &dets_path);
    let dets: serde_json::Value = serde_json::from_slice(&std::fs::read(&dets_path).unwrap()).unwrap();
    let gt = dir.path().join("gt.json");
    ground_truth(&gt, &images, &dets, 0.28, &[1, 2, 3, 4]);
    let cand = dir.path().join("ticket.onnx");
    ticket_json(&[&"prune", &dense, &"--sparsity", &"0.3", &"-o", &cand]);
    let r = ticket_json(&[&"validate", &cand, &"--dense", &dense, &"--coco", &gt, &"--images", &dir.path(), &"--max-map-drop", &"1"]);
    assert_eq!(r["reference"], "annotations");
    assert_eq!(r["images"], 3);
    // Without --images, `images/` next to the json; without it there either, the folder looked for is named.
    let set = dir.path().join("set");
    std::fs::create_dir_all(set.join("images")).unwrap();
    for p in &images {
        std::fs::copy(p, set.join("images").join(p.file_name().unwrap())).unwrap();
    }
    std::fs::copy(&gt, set.join("gt.json")).unwrap();
    let beside = ticket_json(&[&"validate", &cand, &"--dense", &dense, &"--coco", &set.join("gt.json"), &"--max-map-drop", &"1"]);
    assert_eq!(beside["candidate"]["scores"], r["candidate"]["scores"]);
    let none = ticket(&[&"validate", &cand, &"--dense", &dense, &"--coco", &gt]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("images: not a folder"), "{}", String::from_utf8_lossy(&none.stderr));
    // The same numbers as ticket eval gives each model on these annotations.
    let e = ticket_json(&[&"eval", &"--model", &cand, &"--images", &dir.path(), &"--coco", &gt]);
    for t in ["bbox", "segm"] {
        assert_eq!(r["candidate"]["scores"][t]["ap"], e[t]["summary"]["AP"], "{t}");
        assert_eq!(r["candidate"]["scores"][t]["ap50"], e[t]["summary"]["AP50"], "{t}");
    }
}
