//! Regression tests for issue 17's defects in images, detect, eval, classify, validate, data synth, threads and
//! the command line, one named after each: every bad input fails with exit 2 and one line naming the file and
//! the problem, never a hang, an unbounded allocation, a mixed output or a changed input.
mod common;
use common::*;
use serde_json::{json, Value};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Exit 2 with one line of error containing every `expect`.
fn refused(args: &[&dyn AsRef<OsStr>], expect: &[&str]) -> String {
    let (code, _, err) = run_with_deadline(args, &[]);
    let shown: Vec<String> = args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
    assert_eq!(code, Some(2), "{shown:?}: exit {code:?}, stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{shown:?}: error should be one line: {err}");
    for e in expect {
        assert!(err.contains(e), "{shown:?}: '{e}' not in: {err}");
    }
    err
}

fn mask_rcnn() -> PathBuf {
    fixture("maskrcnn_r18_fpn.onnx")
}

/// `dir/images` with `n` 128×128 noise images.
fn image_folder(dir: &Path, n: usize) -> PathBuf {
    let imgs = dir.join("images");
    std::fs::create_dir(&imgs).unwrap();
    noise_images(&imgs, &vec![(128, 128); n], 7);
    imgs
}

/// A COCO ground truth listing `files` (128×128 images) with one box each, categories 1..=4.
fn coco_gt(path: &Path, files: &[&str]) {
    let images: Vec<Value> =
        files.iter().enumerate().map(|(i, f)| json!({"id": i + 1, "file_name": f, "width": 128, "height": 128})).collect();
    let anns: Vec<Value> = (0..files.len())
        .map(|i| json!({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600, "iscrowd": 0}))
        .collect();
    let cats: Vec<Value> = (1..=4).map(|c| json!({"id": c, "name": format!("c{c}")})).collect();
    std::fs::write(path, serde_json::to_vec(&json!({"images": images, "annotations": anns, "categories": cats})).unwrap()).unwrap();
}

/// Owned arguments as the argument list the helpers take.
fn refs(args: &[String]) -> Vec<&dyn AsRef<OsStr>> {
    args.iter().map(|a| a as &dyn AsRef<OsStr>).collect()
}

fn mkfifo(p: &Path) {
    assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
}

// ---------------------------------------------------------------- 3. a FIFO as an image

#[test]
fn fifo_as_an_image_is_refused_not_waited_on() {
    let t = tempdir();
    let imgs = image_folder(t.path(), 1);
    mkfifo(&imgs.join("fifo.png"));
    let out = t.path().join("dets.json");
    refused(&[&"detect", &mask_rcnn(), &imgs.join("fifo.png"), &"-o", &out], &["fifo.png", "not a regular file"]);
    assert!(!out.exists());
    // Through a COCO file_name: eval --model and validate (imp's scoring is eval's code).
    let gt = t.path().join("gt.json");
    coco_gt(&gt, &["img0.png", "fifo.png"]);
    refused(&[&"eval", &"--model", &mask_rcnn(), &"--coco", &gt, &"--images", &imgs], &["fifo.png", "not a regular file"]);
    refused(
        &[&"validate", &mask_rcnn(), &"--dense", &mask_rcnn(), &"--coco", &gt, &"--images", &imgs],
        &["fifo.png", "not a regular file"],
    );
    // And as one of a folder's images (validate without annotations).
    refused(&[&"validate", &mask_rcnn(), &"--dense", &mask_rcnn(), &"--images", &imgs], &["fifo.png", "not a regular file"]);
}

// ---------------------------------------------------------------- 4. eval reads images outside the folder

#[test]
fn eval_model_refuses_image_paths_outside_the_image_folder() {
    let t = tempdir();
    let imgs = image_folder(t.path(), 1);
    noise_images(t.path(), &[(128, 128)], 7);
    let gt = t.path().join("gt.json");
    for name in ["../img0.png", "/etc/hostname", &t.path().join("img0.png").display().to_string()] {
        coco_gt(&gt, &["img0.png", name]);
        refused(&[&"eval", &"--model", &mask_rcnn(), &"--coco", &gt, &"--images", &imgs], &["gt.json", "file_name", "refused"]);
        refused(
            &[&"validate", &mask_rcnn(), &"--dense", &mask_rcnn(), &"--coco", &gt, &"--images", &imgs],
            &["gt.json", "file_name", "refused"],
        );
    }
    // VOC's <filename> the same way.
    let voc = t.path().join("voc");
    voc_folder(&voc, |x| x.replacen("<filename>", "<filename>../../", 1));
    refused(&[&"eval", &"--model", &fixture("fasterrcnn_r18_fpn_voc.onnx"), &"--voc", &voc], &["filename", "refused"]);
}

// ---------------------------------------------------------------- 5. memory grows with image area × detections

#[test]
fn huge_image_headers_are_refused_before_decoding() {
    let t = tempdir();
    let mut tiny = Vec::new();
    image::RgbImage::new(2, 2).write_to(&mut std::io::Cursor::new(&mut tiny), image::ImageFormat::Png).unwrap();
    // 12000×12000 declared in a file of ~70 bytes: 432 MB of pixels, 57.6 GB of masks before the fix.
    let huge = t.path().join("huge.png");
    std::fs::write(&huge, png_declaring(&tiny, 12000, 12000)).unwrap();
    let out = t.path().join("dets.json");
    refused(&[&"detect", &mask_rcnn(), &huge, &"-o", &out], &["huge.png", "12000x12000", "144000000 pixels", "67108864"]);
    let strip = t.path().join("strip.png");
    std::fs::write(&strip, png_declaring(&tiny, 1, 20000)).unwrap();
    refused(&[&"detect", &mask_rcnn(), &strip, &"-o", &out], &["strip.png", "1x20000", "16384 px a side"]);
    assert!(!out.exists());
}

/// A 4000×3000 photo with 100 detections: the masks pasted into the whole image at once took 4.8 GB; pasted one
/// at a time into their RLE, detect runs in well under 1 GB of address space (measured: ~130 MB resident).
#[test]
fn detect_memory_is_bounded_by_the_output_not_image_area_times_detections() {
    let t = tempdir();
    // Mostly flat with a few noise patches: a small file, and the random-weight model still keeps 100 detections.
    let mut s = 3u64;
    let img = image::RgbImage::from_fn(4000, 3000, |x, y| {
        if (x / 500 + y / 500) % 3 == 0 && x % 500 < 60 && y % 500 < 60 {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            image::Rgb([(s >> 56) as u8, (s >> 48) as u8, (s >> 40) as u8])
        } else {
            image::Rgb([90, 110, 130])
        }
    });
    let photo = t.path().join("photo.png");
    img.save(&photo).unwrap();
    let out = t.path().join("dets.json");
    // The address-space limit is the bound under test; one thread and two malloc arenas keep the reserved (not
    // used) address space of threads out of it on machines with many cores.
    let cmd = format!(
        "ulimit -v 1000000; exec '{}' detect '{}' '{}' -o '{}' --threads 1 --json",
        env!("CARGO_BIN_EXE_ticket"),
        mask_rcnn().display(),
        photo.display(),
        out.display()
    );
    let r = Command::new("bash").arg("-c").arg(&cmd).env("MALLOC_ARENA_MAX", "2").output().unwrap();
    assert!(r.status.success(), "detect under a 1 GB address-space limit: {:?} {}", r.status.code(), String::from_utf8_lossy(&r.stderr));
    let report: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(report["detections"], 100, "{report}");
    let dets: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    for d in dets.as_array().unwrap() {
        assert_eq!(d["segmentation"]["size"], json!([3000, 4000]), "masks are still pasted at the photo's size");
    }
}

// ---------------------------------------------------------------- 6. the first image sets the classifier side

#[test]
fn a_long_first_image_does_not_set_the_classifier_side() {
    let t = tempdir();
    let set = t.path().join("set");
    std::fs::create_dir_all(set.join("images")).unwrap();
    // The fixture classifier has 10 classes.
    let categories: Vec<String> = (0..10).map(|c| format!("c{c}")).collect();
    let labels =
        json!({"categories": categories, "images": [{"file_name": "0.png", "category": "c0"}, {"file_name": "1.png", "category": "c1"}]});
    std::fs::write(set.join("labels.json"), labels.to_string()).unwrap();
    image::RgbImage::new(32, 32).save(set.join("images/1.png")).unwrap();
    let resnet = fixture("resnet18.onnx");
    let eval = |extra: &[&dyn AsRef<OsStr>], expect: &[&str]| {
        let mut args: Vec<&dyn AsRef<OsStr>> = vec![&"eval", &"--model", &resnet, &"--classify", &set];
        args.extend_from_slice(extra);
        refused(&args, expect)
    };
    // 1×20000 (the defect: a 20000 px classifier, 4.75 GB and a tract panic), a strip within the image caps,
    // and a square image too large to be the side.
    let mut tiny = Vec::new();
    image::RgbImage::new(2, 2).write_to(&mut std::io::Cursor::new(&mut tiny), image::ImageFormat::Png).unwrap();
    std::fs::write(set.join("images/0.png"), png_declaring(&tiny, 1, 20000)).unwrap();
    eval(&[], &["0.png", "1x20000"]);
    image::RgbImage::new(16, 4000).save(set.join("images/0.png")).unwrap();
    eval(&[], &["0.png", "16x4000", "square"]);
    image::RgbImage::new(2000, 2000).save(set.join("images/0.png")).unwrap();
    eval(&[], &["0.png", "2000 px", "32..=1024"]);
    // The side given instead is bounded the same way; within bounds, every image is resized to it.
    eval(&[&"--side", &"20000"], &["--side", "20000", "32..=1024"]);
    let ok = ticket_json(&[&"eval", &"--model", &resnet, &"--classify", &set, &"--side", &"32"]);
    assert_eq!((ok["side"].as_u64(), ok["images"].as_u64()), (Some(32), Some(2)), "{ok}");
    // Training takes its canvas the same way, refused before a run folder exists.
    let run = t.path().join("run");
    refused(&[&"train", &resnet, &"--classify", &set, &"-o", &run], &["0.png", "2000 px"]);
    refused(&[&"train", &resnet, &"--classify", &set, &"--canvas", &"20000", &"-o", &run], &["--canvas", "20000"]);
    assert!(!run.exists());
}

// ---------------------------------------------------------------- 8. --threads 10000

#[test]
fn threads_are_capped_at_four_per_core_unless_allowed() {
    let t = tempdir();
    let img = noise_images(t.path(), &[(64, 64)], 7).remove(0);
    let out = t.path().join("dets.json");
    let cap = 4 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    for n in ["10000", "18446744073709551615"] {
        refused(
            &[&"detect", &mask_rcnn(), &img, &"-o", &out, &"--threads", &n],
            &["--threads", n, &format!("the {cap} allowed"), "TICKET_MAX_THREADS"],
        );
        refused(&[&"train", &mask_rcnn(), &"--coco", &"gt.json", &"-o", &t.path().join("run"), &"--threads", &n], &["--threads", n]);
        refused(&[&"bench", &"detect", &mask_rcnn(), &"--threads", &n], &["--threads", n]);
    }
    assert!(!out.exists() && !t.path().join("run").exists());
    // One over the cap runs when TICKET_MAX_THREADS allows it.
    let over = (cap + 1).to_string();
    let (code, _, err) =
        run_with_deadline(&[&"detect", &mask_rcnn(), &img, &"-o", &out, &"--threads", &over, &"--json"], &[("TICKET_MAX_THREADS", &over)]);
    assert_eq!(code, Some(0), "{err}");
}

/// Detection settings are checked before anything is written: a NaN threshold, or a --draw folder with a
/// setting refused.
#[test]
fn detect_settings_are_checked_before_anything_is_written() {
    let t = tempdir();
    let img = noise_images(t.path(), &[(64, 64)], 7).remove(0);
    let (out, drawn) = (t.path().join("dets.json"), t.path().join("drawn"));
    for (flag, v) in [("--score-thresh", "nan"), ("--nms-thresh", "inf"), ("--score-thresh", "2")] {
        refused(&[&"detect", &mask_rcnn(), &img, &"-o", &out, &"--draw", &drawn, &flag, &v], &[flag]);
    }
    refused(&[&"detect", &mask_rcnn(), &img, &"-o", &out, &"--draw", &drawn, &"--threads", &"0"], &["--threads 0"]);
    refused(&[&"detect", &mask_rcnn(), &img, &"-o", &t.path().join("no/such/dets.json")], &["dets.json", "output folder does not exist"]);
    assert!(!out.exists() && !drawn.exists(), "a refused run wrote something");
}

// ---------------------------------------------------------------- 9. data synth overwrites a dataset

#[test]
fn data_synth_refuses_a_non_empty_output_folder() {
    let t = tempdir();
    let det = t.path().join("det");
    ticket_json(&[&"data", &"synth", &"--out", &det, &"--images", &"3"]);
    let before = snapshot(&det);
    // Fewer images, another seed, or a classification set into a detection set: refused, nothing changed.
    refused(&[&"data", &"synth", &"--out", &det, &"--images", &"2", &"--seed", &"5"], &["det", "not empty"]);
    refused(&[&"data", &"synth", &"--out", &det, &"--images", &"2", &"--classify"], &["det", "not empty"]);
    assert_eq!(snapshot(&det), before, "the dataset changed");
    let cls = t.path().join("cls");
    ticket_json(&[&"data", &"synth", &"--out", &cls, &"--images", &"4", &"--classify"]);
    let before = snapshot(&cls);
    refused(&[&"data", &"synth", &"--out", &cls, &"--images", &"2", &"--classify", &"--seed", &"9"], &["cls", "not empty"]);
    assert_eq!(snapshot(&cls), before, "the classification set changed");
    // An empty folder is taken (and left with the set only); bad settings leave no folder.
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    ticket_json(&[&"data", &"synth", &"--out", &empty, &"--images", &"2"]);
    assert!(empty.join("annotations.json").is_file() && empty.join("images/000002.png").is_file());
    let bad = t.path().join("bad");
    refused(&[&"data", &"synth", &"--out", &bad, &"--images", &"2", &"--size", &"5"], &["--size"]);
    assert!(!bad.exists());
    let leftovers: Vec<_> =
        std::fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n.to_string_lossy().starts_with('.')).collect();
    assert!(leftovers.is_empty(), "temporary folders left: {leftovers:?}");
}

// ---------------------------------------------------------------- validate: classes the dense model did not predict

/// The label-free gate with a dense reference of one class: the candidate's detections of other classes are
/// scored (unmatched, in categories without reference objects), not an error naming a temporary file.
#[test]
fn validate_counts_classes_the_dense_model_did_not_predict() {
    let t = tempdir();
    let imgs = image_folder(t.path(), 2);
    let dense_dets = t.path().join("dense_dets.json");
    std::fs::write(&dense_dets, json!([{"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 40], "score": 0.9}]).to_string()).unwrap();
    let r = ticket_json(&[
        &"validate",
        &mask_rcnn(),
        &"--dense",
        &mask_rcnn(),
        &"--images",
        &imgs,
        &"--dense-dets",
        &dense_dets,
        &"--iou-type",
        &"bbox",
    ]);
    assert_eq!(r["reference"], "agreement with the dense model");
    let ap = r["candidate"]["scores"]["bbox"]["ap"].as_f64().unwrap();
    assert!((0.0..1.0).contains(&ap), "a candidate with many unmatched detections cannot agree fully: {r}");
    // A reference with nothing above --agreement-score: refused, naming the file the detections came from.
    let err = refused(
        &[
            &"validate",
            &mask_rcnn(),
            &"--dense",
            &mask_rcnn(),
            &"--images",
            &imgs,
            &"--dense-dets",
            &dense_dets,
            &"--agreement-score",
            &"0.95",
        ],
        &["dense_dets.json", "no detection scores at least"],
    );
    assert!(!err.contains("dense_reference"), "{err}");
}

// ---------------------------------------------------------------- validate: settings and the dense cache

#[test]
fn validate_settings_and_the_dense_cache_are_checked() {
    let t = tempdir();
    let imgs = image_folder(t.path(), 2);
    let cache = t.path().join("cache.json");
    let m = mask_rcnn();
    #[allow(clippy::ptr_arg)] // a &PathBuf coerces to &dyn AsRef<OsStr>; a &Path (unsized) does not
    fn with<'a>(m: &'a PathBuf, imgs: &'a PathBuf, cache: &'a PathBuf, extra: &[&'a dyn AsRef<OsStr>]) -> Vec<&'a dyn AsRef<OsStr>> {
        let mut a: Vec<&dyn AsRef<OsStr>> = vec![&"validate", m, &"--dense", m, &"--images", imgs, &"--dense-cache", cache];
        a.extend_from_slice(extra);
        a
    }
    let with = |extra: &[&dyn AsRef<OsStr>]| -> Vec<String> {
        with(&m, &imgs, &cache, extra).iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect()
    };
    for (flag, v) in [
        ("--agreement-score", "nan"),
        ("--agreement-score", "inf"),
        ("--max-map-drop", "nan"),
        ("--max-map-drop", "1e400"),
        ("--min-sparsity", "1.5"),
    ] {
        refused(&refs(&with(&[&flag, &v])), &[flag, "[0, 1]"]);
    }
    assert!(!cache.exists(), "settings are checked before the cache is written");
    let nowhere = t.path().join("no/such/dir/c.json");
    refused(
        &[&"validate", &mask_rcnn(), &"--dense", &mask_rcnn(), &"--images", &imgs, &"--dense-cache", &nowhere],
        &["c.json", "does not exist"],
    );
    // A cache emptied of its detections (key intact) gives no reference: refused, naming the cache.
    ticket_json(&refs(&with(&[&"--agreement-score", &"0.28"])));
    let mut c: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    c["detections"] = json!([]);
    std::fs::write(&cache, c.to_string()).unwrap();
    refused(&refs(&with(&[&"--agreement-score", &"0.28"])), &["cache.json", "no detection"]);
    // Detections of a class the model does not have, or no latencies: refused, naming the cache.
    c["detections"] = json!([{"image_id": 1, "category_id": 99, "bbox": [1, 1, 5, 5], "score": 0.9}]);
    std::fs::write(&cache, c.to_string()).unwrap();
    refused(&refs(&with(&[&"--agreement-score", &"0.28"])), &["cache.json", "category_id 99"]);
    c["detections"] = json!([{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.9}]);
    c["latency_ms"] = json!([]);
    std::fs::write(&cache, c.to_string()).unwrap();
    refused(&refs(&with(&[&"--agreement-score", &"0.28"])), &["cache.json", "latencies"]);
}

// ---------------------------------------------------------------- clap's errors

#[test]
fn clap_usage_errors_are_one_line() {
    let t = tempdir();
    refused(&[&"detect", &"--bogus"], &["--bogus", "--help"]);
    refused(&[&"detect", &mask_rcnn()], &["required", "--output"]);
    refused(&[&"eval", &"--dets", &"a.json", &"--model", &"m.onnx", &"--coco", &"gt.json"], &["--dets", "--model"]);
    refused(&[&"prune", &mask_rcnn(), &"--sparsity", &"lots", &"-o", &t.path().join("o.onnx")], &["lots"]);
    refused(&[&"no-such-command"], &["no-such-command"]);
    // With --json the error is a JSON line too.
    let (code, out, _) = run_with_deadline(&[&"detect", &"--bogus", &"--json"], &[]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!((code, v["exit_code"].as_i64()), (Some(2), Some(2)));
    // Help and version are clap's own, on stdout, exit 0.
    let (code, out, _) = run_with_deadline(&[&"detect", &"--help"], &[]);
    assert_eq!(code, Some(0));
    assert!(out.lines().count() > 5 && out.contains("Usage:"), "{out}");
    let (code, out, _) = run_with_deadline(&[&"--version"], &[]);
    assert_eq!((code, out.trim()), (Some(0), format!("ticket {}", env!("CARGO_PKG_VERSION")).as_str()));
}
