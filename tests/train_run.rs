//! `ticket train` end to end on a synthetic dataset: the real binary, the real ORT training worker, the
//! narrow Mask R-CNN fixture with the synthetic dataset's classes (tools/export_models.py --synth 4).
//! The loss falls; an 80% mask stays exactly zero in the trained ONNX (which then detects in tract); a run
//! killed after a checkpoint resumes with the losses the uninterrupted run had; bad input fails with exit 2 and
//! leaves what was saved alone.
mod common;
use common::*;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MODEL: &str = "train/maskrcnn_r18_fpn_synth.onnx";

fn synth(dir: &Path, images: usize, seed: u64) -> PathBuf {
    let out = ticket(&[&"data", &"synth", &"--out", &dir, &"--images", &images.to_string(), &"--seed", &seed.to_string()]);
    assert!(out.status.success(), "synth failed: {}", String::from_utf8_lossy(&out.stderr));
    dir.join("annotations.json")
}

/// `log.jsonl` as (step, loss) pairs.
fn losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
        })
        .collect()
}

/// `ticket train` arguments of the tests' runs: batch 2, a short warmup.
fn train_args(model: &Path, ann: &Path, run: &Path, steps: &str) -> Vec<OsString> {
    let mut v: Vec<OsString> =
        ["train".as_ref(), model.as_os_str(), "--coco".as_ref(), ann.as_os_str(), "--steps".as_ref(), steps.as_ref()]
            .into_iter()
            .map(OsString::from)
            .collect();
    v.extend(["--warmup", "5", "--lr", "0.01", "--batch", "2", "-o"].map(OsString::from));
    v.push(run.into());
    v
}

fn refs(v: &[OsString]) -> Vec<&dyn AsRef<OsStr>> {
    v.iter().map(|s| s as &dyn AsRef<OsStr>).collect()
}

fn with(mut v: Vec<OsString>, more: &[&dyn AsRef<OsStr>]) -> Vec<OsString> {
    v.extend(more.iter().map(|m| m.as_ref().to_owned()));
    v
}

#[test]
fn loss_falls_and_the_run_folder_is_complete() {
    let t = tempdir();
    let ann = synth(&t.path().join("data"), 2, 5);
    let run = t.path().join("run");
    let model = fixture(MODEL);
    let report = ticket_json(&refs(&with(train_args(&model, &ann, &run, "24"), &[&"--flip", &"0"])));
    assert_eq!(report["steps"], 24);
    let l = losses(&run);
    assert_eq!(l.iter().map(|p| p.0).collect::<Vec<_>>(), (1..=24).collect::<Vec<_>>(), "one log line per step");
    let mean = |s: &[(u64, f64)]| s.iter().map(|p| p.1).sum::<f64>() / s.len() as f64;
    let (first, last) = (mean(&l[..5]), mean(&l[19..]));
    assert!(last < 0.75 * first, "loss should fall on two images seen 24 times: first five {first:.3}, last five {last:.3}");
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(run.join("log.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    for term in ["loss", "loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask", "lr"] {
        assert!(line[term].as_f64().is_some_and(f64::is_finite), "log line lacks a finite '{term}': {line}");
    }
    for f in ["run.json", "state.json", "model.onnx", "checkpoints/step-000024.ckpt", "checkpoints/step-000024.ckpt.momentum.npz"] {
        assert!(run.join(f).is_file(), "{f} missing in the run folder");
    }
    // The trained model is the user's graph with new initializers: it runs in ORT and in the tract detector.
    ticket_json(&[&"check", &run.join("model.onnx")]);
    let dets = t.path().join("dets.json");
    ticket_json(&[&"detect", &run.join("model.onnx"), &t.path().join("data/images/000001.png"), &"-o", &dets]);
}

#[test]
fn pruned_weights_stay_zero_through_training() {
    let t = tempdir();
    let ann = synth(&t.path().join("data"), 4, 6);
    let model = fixture(MODEL);
    let (pruned, masks) = (t.path().join("pruned.onnx"), t.path().join("masks.safetensors"));
    ticket_json(&[&"prune", &model, &"--sparsity", &"0.8", &"-o", &pruned, &"--masks-out", &masks]);
    let run = t.path().join("run");
    ticket_json(&refs(&with(train_args(&pruned, &ann, &run, "6"), &[&"--masks", &masks, &"--trainable-layers", &"5"])));

    let before = read_initializers(&pruned);
    let after = read_initializers(&run.join("model.onnx"));
    let mask = read_safetensors(&masks);
    let (mut masked, mut moved) = (0usize, 0usize);
    for (name, (_, keep)) in &mask {
        let (b, a) = (&before[name], &after[name]);
        for ((k, x), y) in keep.iter().zip(b).zip(a) {
            if *k == 0.0 {
                assert!(*y == 0.0 && y.is_sign_positive(), "{name}: a masked weight is {y} after training");
                masked += 1;
            } else if x != y {
                moved += 1;
            }
        }
    }
    let total: usize = mask.values().map(|(_, k)| k.len()).sum();
    assert!(masked as f64 >= 0.79 * total as f64, "80% masked: {masked} of {total}");
    assert!(moved as f64 > 0.5 * (total - masked) as f64, "training should move most kept weights: {moved} of {}", total - masked);
    let stats = ticket_json(&[&"inspect", &run.join("model.onnx")]);
    let sparsity = stats["sparsity"].as_f64().unwrap();
    assert!(sparsity >= 0.79, "inspect sees the sparsity: {stats}");
}

/// Initializer name → values (f32 as f64) of an ONNX file, through the crate's own reader.
fn read_initializers(path: &Path) -> std::collections::BTreeMap<String, Vec<f64>> {
    let m = ticket::onnx::OnnxModel::load(path).unwrap();
    m.graph()
        .initializer
        .iter()
        .filter(|t| t.data_type() == 1)
        .map(|t| (t.name().to_string(), m.f32_values(t).unwrap().into_iter().map(f64::from).collect()))
        .collect()
}

#[test]
fn a_killed_run_resumes_with_the_same_losses() {
    let t = tempdir();
    let ann = synth(&t.path().join("data"), 6, 7);
    let model = fixture(MODEL);
    let (whole, killed) = (t.path().join("whole"), t.path().join("killed"));
    // A run planned long, killed (SIGKILL) once its first checkpoint is on disk; one ORT thread: bit-for-bit
    // repeatable steps (multi-threaded reductions vary in the last bit).
    let args = with(train_args(&model, &ann, &killed, "400"), &[&"--save-every", &"3", &"--threads", &"1", &"--json"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticket")).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !killed.join("state.json").exists() {
        assert!(Instant::now() < deadline, "no checkpoint within 5 minutes");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it was killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(killed.join("state.json")).unwrap()).unwrap();
    let at = saved["step"].as_u64().unwrap();
    assert!(at >= 3 && at.is_multiple_of(3), "killed after the checkpoint of step {at}");
    // The reference: the same run uninterrupted, at least 9 steps and 3 past the checkpoint (on a loaded machine
    // the kill may land a few checkpoints late).
    let total = (at + 3).max(9);
    ticket_json(&refs(&with(train_args(&model, &ann, &whole, &total.to_string()), &[&"--threads", &"1"])));

    // The resume names no --threads: the run's own (1, kept in run.json) is reused, or the losses would differ.
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(killed.join("run.json")).unwrap()).unwrap();
    assert_eq!(config["threads"], 1);
    let report = ticket_json(&[&"train", &model, &"--resume", &killed, &"--steps", &total.to_string()]);
    assert_eq!(report["resumed_from"], at);
    let (a, b) = (losses(&whole), losses(&killed));
    assert_eq!(a.len(), b.len(), "uninterrupted and resumed logs differ in length");
    assert_eq!(b.iter().map(|p| p.0).collect::<Vec<_>>(), (1..=total).collect::<Vec<_>>(), "the log has each step once after the resume");
    for ((s, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(x, y, "step {s}: uninterrupted loss {x}, resumed {y}");
    }
    // The resume's new total is the run's: run.json says it, not the 400 it started with.
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(killed.join("run.json")).unwrap()).unwrap();
    assert_eq!(config["steps"], total, "{config}");
}

/// A run whose whole job is suspended (Ctrl-Z: SIGSTOP to its process group, ticket and its training worker) for
/// longer than the worker's deadline carries on once continued: the time no process could run is not taken for
/// a hung worker.
#[test]
fn a_run_suspended_past_the_worker_deadline_carries_on() {
    use std::os::unix::process::CommandExt;
    let t = tempdir();
    let ann = synth(&t.path().join("data"), 2, 5);
    let model = fixture(MODEL);
    let run = t.path().join("run");
    let args = with(train_args(&model, &ann, &run, "12"), &[&"--threads", &"1", &"--json"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticket"))
        .args(&args)
        .env("TICKET_WORKER_TIMEOUT", "15")
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Suspend it once it has trained three steps, at a moment the worker is computing (state R), so that ticket is
    // waiting for its answer.
    let deadline = Instant::now() + Duration::from_secs(300);
    while std::fs::read_to_string(run.join("log.jsonl")).map_or(0, |l| l.lines().count()) < 3 || !worker_running(child.id()) {
        assert!(Instant::now() < deadline, "no step within 5 minutes");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it was suspended");
        std::thread::sleep(Duration::from_millis(1));
    }
    let group = format!("-{}", child.id());
    let signal = |sig: &str| assert!(Command::new("kill").args([sig, "--", &group]).status().unwrap().success());
    signal("-STOP");
    std::thread::sleep(Duration::from_secs(40));
    signal("-CONT");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(losses(&run).len(), 12);
}

/// A child process of `parent` is running (state R in /proc/PID/stat).
fn worker_running(parent: u32) -> bool {
    common::procs::children_of(parent).into_iter().any(|p| ticket::fsio::process_state(p) == Some('R'))
}

#[test]
fn bad_input_fails_cleanly() {
    let t = tempdir();
    let data = t.path().join("data");
    let ann = synth(&data, 4, 8);
    let model = fixture(MODEL);
    let run = t.path().join("run");
    ticket_json(&refs(&train_args(&model, &ann, &run, "3")));
    let snapshot = |dir: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut v = Vec::new();
        for sub in ["", "checkpoints"] {
            for e in std::fs::read_dir(dir.join(sub)).unwrap() {
                let p = e.unwrap().path();
                if p.is_file() {
                    v.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        v.sort();
        v
    };
    let saved = snapshot(&run);
    let fails = |args: &[OsString], needle: &str| {
        let out = ticket(&refs(args));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?} should fail with exit 2: {err}");
        assert!(err.contains(needle), "error should mention '{needle}': {err}");
        assert!(!err.contains("panicked"), "{err}");
    };

    // A resume folder from another model: refused, the run untouched.
    let other = fixture("maskrcnn_r18_fpn.onnx");
    fails(&with(vec![], &[&"train", &other, &"--resume", &run]), "another model");
    // A new run into a folder that holds one.
    fails(&train_args(&model, &ann, &run, "3"), "already holds a training run");
    assert!(snapshot(&run) == saved, "failed commands changed the run folder");

    // Classes that do not match the model (the fixture Mask R-CNN has 4 classes + background).
    let fresh = t.path().join("fresh");
    fails(&train_args(&other, &ann, &fresh, "3"), "classes do not match");
    // A missing image, an undecodable one, a box outside its image (partly outside is clipped): named, before anything is written.
    let broken = t.path().join("broken");
    copy_dir(&data, &broken);
    let first = broken.join("images/000001.png");
    std::fs::remove_file(&first).unwrap();
    fails(&train_args(&model, &broken.join("annotations.json"), &fresh, "3"), "000001.png");
    std::fs::write(&first, b"not a png").unwrap();
    fails(&train_args(&model, &broken.join("annotations.json"), &fresh, "3"), "000001.png");
    copy_dir(&data, &broken);
    let mut j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(broken.join("annotations.json")).unwrap()).unwrap();
    j["annotations"][0]["bbox"] = serde_json::json!([200.0, 200.0, 20.0, 20.0]);
    std::fs::write(broken.join("annotations.json"), serde_json::to_vec(&j).unwrap()).unwrap();
    fails(&train_args(&model, &broken.join("annotations.json"), &fresh, "3"), "annotations.json");
    assert!(!fresh.join("run.json").exists() && !fresh.join("checkpoints").exists(), "a failed start leaves no run behind");
    // A clip that is not a positive number, or one AdamW cannot apply: refused before anything is written.
    fails(&with(train_args(&model, &ann, &fresh, "3"), &[&"--clip-grad-norm", &"0"]), "--clip-grad-norm");
    fails(&with(train_args(&model, &ann, &fresh, "3"), &[&"--clip-grad-norm", &"1", &"--optimizer", &"adamw"]), "sgd");
    assert!(!fresh.join("run.json").exists(), "a refused clip leaves no run behind");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("images")).unwrap();
    std::fs::copy(from.join("annotations.json"), to.join("annotations.json")).unwrap();
    for e in std::fs::read_dir(from.join("images")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join("images").join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn keypoint_rcnn_trains_on_the_persons() {
    // The synthetic set's stick figures alone, as a one-class COCO keypoint dataset for the Keypoint R-CNN
    // fixture (person + background, 17 keypoints). Images without a person stay in as background-only images.
    let t = tempdir();
    let ann = synth(&t.path().join("data"), 8, 9);
    let mut j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&ann).unwrap()).unwrap();
    let person = j["categories"].as_array().unwrap().iter().find(|c| c["name"] == "person").unwrap().clone();
    let pid = person["id"].clone();
    j["annotations"] = serde_json::Value::Array(
        j["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["category_id"] == pid)
            .cloned()
            .map(|mut a| {
                a["category_id"] = 1.into();
                a
            })
            .collect(),
    );
    assert!(!j["annotations"].as_array().unwrap().is_empty(), "the synthetic images hold persons");
    let mut cat = person;
    cat["id"] = 1.into();
    j["categories"] = serde_json::json!([cat]);
    let persons = t.path().join("data/persons.json");
    std::fs::write(&persons, serde_json::to_vec(&j).unwrap()).unwrap();

    let run = t.path().join("run");
    let model = fixture("keypointrcnn_r50_fpn.onnx");
    let args = with(train_args(&model, &persons, &run, "4"), &[&"--images", &t.path().join("data/images"), &"--rois", &"32"]);
    ticket_json(&refs(&args));
    let last: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(run.join("log.jsonl")).unwrap().lines().last().unwrap()).unwrap();
    assert!(last["loss_keypoint"].as_f64().is_some_and(f64::is_finite), "keypoint loss logged: {last}");
    let dets = t.path().join("dets.json");
    ticket_json(&[&"detect", &run.join("model.onnx"), &t.path().join("data/images/000001.png"), &"-o", &dets]);
}

#[test]
fn faster_rcnn_trains_on_a_voc_folder() {
    // The VOC evaluation fixture's annotations (its made-up classes renamed to VOC ones) with patterned images, the
    // 20 VOC classes in labels.txt (their order is the model's label order), and the VOC Faster R-CNN fixture.
    const VOC: [&str; 20] = [
        "aeroplane",
        "bicycle",
        "bird",
        "boat",
        "bottle",
        "bus",
        "car",
        "cat",
        "chair",
        "cow",
        "diningtable",
        "dog",
        "horse",
        "motorbike",
        "person",
        "pottedplant",
        "sheep",
        "sofa",
        "train",
        "tvmonitor",
    ];
    let t = tempdir();
    let voc = t.path().join("voc");
    voc_folder(&voc, |xml| xml.replace("<name>ghost<", "<name>cat<").replace("<name>tree<", "<name>pottedplant<"));
    std::fs::write(voc.join("labels.txt"), VOC.join("\n") + "\n").unwrap();
    let run = t.path().join("run");
    let model = fixture("fasterrcnn_r18_fpn_voc.onnx");
    let args: Vec<OsString> = [
        "train".as_ref(),
        model.as_os_str(),
        "--voc".as_ref(),
        voc.as_os_str(),
        "--steps".as_ref(),
        "3".as_ref(),
        "-o".as_ref(),
        run.as_os_str(),
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    let report = ticket_json(&refs(&args));
    assert_eq!(report["steps"], 3);
    assert_eq!(losses(&run).len(), 3);
    assert!(run.join("model.onnx").is_file());
}

/// A run whose loss turns non-finite stops with the step it reached, and so does its resume: the resumed run's
/// message names the run's own step, not the count since the resume (lr 1000 diverges within a few steps).
#[test]
fn a_diverging_run_names_its_own_step_fresh_and_resumed() {
    let t = tempdir();
    let ann = synth(&t.path().join("data"), 2, 5);
    let model = fixture(MODEL);
    let run = t.path().join("run");
    let mut args = train_args(&model, &ann, &run, "20");
    let lr = args.iter().position(|a| a == "--lr").unwrap() + 1;
    args[lr] = "1000".into();
    let args = with(args, &[&"--save-every", &"1", &"--threads", &"1"]);
    let fresh = ticket(&refs(&args));
    let msg = String::from_utf8_lossy(&fresh.stderr).into_owned();
    assert_eq!(fresh.status.code(), Some(1), "{msg}");
    let step: u64 = msg.split("training step ").nth(1).and_then(|r| r.split(':').next()).and_then(|n| n.parse().ok()).expect(&msg);
    assert!(step >= 2 && msg.contains("non-finite"), "{msg}");
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    assert_eq!(saved["step"].as_u64(), Some(step - 1), "{msg}");

    let resumed = ticket(&[&"train", &model, &"--resume", &run]);
    let again = String::from_utf8_lossy(&resumed.stderr).into_owned();
    assert_eq!(resumed.status.code(), Some(1), "{again}");
    assert!(again.contains(&format!("training step {step}: the loss is")), "{again}");
    assert!(again.contains(&format!("step-{:06}.ckpt", step - 1)), "{again}");
}

#[test]
fn clipping_scales_the_step_to_the_gradient_norm_asked_for() {
    // One step from the same weights, batch and seed, without and with --clip-grad-norm: with weight decay off and
    // no warmup, SGD's first step is w -= lr·g (unclipped) and w -= lr·g·c/‖g‖ (clipped), so the clipped update is the
    // unclipped one scaled to norm lr·c, and the logged norm is the unclipped update's over lr.
    let t = tempdir();
    let ann = synth(&t.path().join("data"), 2, 5);
    let model = fixture(MODEL);
    let (lr, clip) = (0.01, 1.0);
    let step = |name: &str, more: &[&dyn AsRef<OsStr>]| {
        let run = t.path().join(name);
        let mut args = train_args(&model, &ann, &run, "1");
        let warmup = args.iter().position(|a| a == "--warmup").unwrap() + 1;
        args[warmup] = "0".into();
        let args = with(with(args, &[&"--weight-decay", &"0", &"--threads", &"1"]), more);
        ticket_json(&refs(&args));
        run
    };
    let plain = step("plain", &[]);
    let clipped = step("clipped", &[&"--clip-grad-norm", &clip.to_string()]);
    let log =
        |run: &Path| -> serde_json::Value { serde_json::from_str(std::fs::read_to_string(run.join("log.jsonl")).unwrap().trim()).unwrap() };
    assert!(log(&plain).get("grad_norm").is_none(), "a run that does not clip logs no norm");
    let norm = log(&clipped)["grad_norm"].as_f64().expect("a clipping run logs the norm");
    assert!(norm > 2.0 * clip, "the gradients ({norm}) must exceed the clip for the test to clip");
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(clipped.join("run.json")).unwrap()).unwrap();
    assert_eq!(config["clip_grad_norm"].as_f64(), Some(clip), "run.json keeps the clip");

    let before = read_initializers(&model);
    let delta = |run: &Path| -> Vec<f64> {
        let after = read_initializers(&run.join("model.onnx"));
        before.iter().flat_map(|(k, w)| w.iter().zip(&after[k]).map(|(a, b)| a - b)).collect()
    };
    let (a, b) = (delta(&plain), delta(&clipped));
    let l2 = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let cos = a.iter().zip(&b).map(|(x, y)| x * y).sum::<f64>() / (l2(&a) * l2(&b));
    assert!((l2(&a) / lr - norm).abs() < 1e-5 * norm, "logged norm {norm} vs the unclipped step's {}", l2(&a) / lr);
    assert!((l2(&b) / lr - clip).abs() < 1e-5 * clip, "the clipped step's norm {} is not lr·{clip}", l2(&b) / lr);
    assert!(cos > 0.999_999, "the clipped step points where the unclipped one does (cosine {cos})");
    // A clip above the norm leaves the step as it was, bit for bit.
    let loose = step("loose", &[&"--clip-grad-norm", &"1e9"]);
    assert!(delta(&loose) == a, "a clip the gradients stay under changed the step");
}

#[test]
fn a_resume_can_start_clipping_and_run_json_says_from_where() {
    // A run that diverged resumes from its last intact checkpoint with the gradients clipped (lowering the learning
    // rate would mean starting over). run.json keeps the clip and the step it started from; the log has the norm
    // from there on; a resume with the same clip changes nothing, a new one moves the step.
    let t = tempdir();
    let ann = synth(&t.path().join("data"), 2, 5);
    let model = fixture(MODEL);
    let run = t.path().join("run");
    ticket_json(&refs(&with(train_args(&model, &ann, &run, "2"), &[&"--save-every", &"1", &"--threads", &"1"])));
    let resume = |steps: &str, clip: &str| {
        ticket_json(&[&"train", &model, &"--resume", &run, &"--steps", &steps, &"--clip-grad-norm", &clip]);
        let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
        (config["steps"].as_u64(), config["clip_grad_norm"].as_f64(), config["clip_from_step"].as_u64())
    };
    assert_eq!(resume("4", "1"), (Some(4), Some(1.0), Some(2)));
    let norms: Vec<bool> = std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap().get("grad_norm").is_some())
        .collect();
    assert_eq!(norms, [false, false, true, true], "the norm is logged where the clip held");
    assert_eq!(resume("5", "1"), (Some(5), Some(1.0), Some(2)), "the same clip again keeps its start");
    assert_eq!(resume("6", "0.5"), (Some(6), Some(0.5), Some(5)), "a new clip holds from the resume");
}
