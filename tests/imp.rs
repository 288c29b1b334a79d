//! `ticket imp` end to end on the narrow synthetic Mask R-CNN (tools/export_models.py --synth 4) with the real
//! ORT training worker and tract scoring: a miniature IMP run (2 levels, a dozen steps each, late rewinding to
//! step 6, an early-bird mask at mid-training) whose masks are cumulative and exactly zero in every level's
//! ONNX, whose levels start from the rewind point under their mask, and which, killed during level 2 and
//! resumed, ends with the masks, models and scores of the uninterrupted run (one ORT thread). Then the
//! variants (--trained, --rewind none, --masks-from, the early-bird stop rule) and bad input.
mod common;
use common::imp::*;
use common::*;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use ticket::model::{Masks, ModelState};

/// The miniature run's arguments: 2 levels to 80%, 12 steps each, rewinding to dense step 6.
fn imp_args(d: &Data, run: &Path) -> Vec<OsString> {
    os(&[
        &"imp",
        &fixture(MODEL),
        &"--coco",
        &d.train,
        &"--val-coco",
        &d.val,
        &"--sparsity",
        &"0.8",
        &"--rounds",
        &"2",
        &"--steps",
        &"12",
        &"--warmup",
        &"2",
        &"--save-every",
        &"4",
        &"--rois",
        &"32",
        &"--threads",
        &"1",
        &"--rewind",
        &"6",
        &"--early-bird",
        &"0.5",
        &"--max-map-drop",
        &"1",
        &"-o",
        &run,
    ])
}

fn row(run: &Path, l: usize) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(level(run, l).join("metrics.json")).unwrap()).unwrap();
    v["row"].clone()
}

fn weights(path: &Path) -> BTreeMap<String, Vec<f32>> {
    ModelState::import(path).unwrap().weights.tensors.into_iter().map(|w| (w.name, w.values.into_dense())).collect()
}

#[test]
fn imp_levels_are_cumulative_rewound_and_resume_exactly() {
    let d = data();
    let run_a = d.root.join("run_a");
    let summary = run_ok(&imp_args(&d, &run_a));

    // The summary lists every level; the gate (1 AP: everything passes) picks the sparsest.
    let levels = summary["levels"].as_array().unwrap();
    assert_eq!(levels.iter().map(|l| l["level"].as_u64().unwrap()).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(summary["ticket_level"], 2);
    assert!(run_a.join("ticket.onnx").is_file() && run_a.join("ticket.tkt").is_file());
    let s1 = levels[1]["selected_sparsity"].as_f64().unwrap();
    let s2 = levels[2]["selected_sparsity"].as_f64().unwrap();
    assert!((s1 - (1.0 - 0.2f64.sqrt())).abs() < 1e-3, "level 1 keeps sqrt(0.2): {s1}");
    assert!((s2 - 0.8).abs() < 1e-3, "level 2 reaches 80%: {s2}");
    for l in levels {
        for key in ["bbox", "segm"] {
            assert!(l["scores"][key]["ap"].as_f64().is_some(), "level {} lacks {key} AP: {l}", l["level"]);
        }
    }

    // The late-rewinding point is the dense model after 6 steps: `ticket train` for 6 steps reaches the same
    // weights bit for bit (same seed, same schedule, one thread).
    let six = d.root.join("six");
    run_ok(&os(&[
        &"train",
        &fixture(MODEL),
        &"--coco",
        &d.train,
        &"--steps",
        &"6",
        &"--warmup",
        &"2",
        &"--save-every",
        &"4",
        &"--rois",
        &"32",
        &"--threads",
        &"1",
        &"-o",
        &six,
    ]));
    let rewind = weights(&level(&run_a, 0).join("rewind.onnx"));
    assert_eq!(rewind, weights(&six.join("model.onnx")), "rewind.onnx is the dense model at step 6");
    assert_ne!(rewind, weights(&fixture(MODEL)), "rewind.onnx has moved from init");

    let mut prev: Option<Masks> = None;
    for l in 1..=2 {
        let masks = Masks::load(&level(&run_a, l).join("masks.safetensors")).unwrap();
        if let Some(p) = &prev {
            for (name, m) in &masks.map {
                let pm = &p.map[name];
                assert!(m.keep.iter().zip(&pm.keep).all(|(a, b)| a <= b), "level {l} revives weights of {name}");
            }
        }
        // The level starts from the rewind point under its mask...
        let start = weights(&level(&run_a, l).join("start.onnx"));
        for (name, w) in &rewind {
            let want: Vec<f32> = match masks.map.get(name) {
                Some(m) => w.iter().zip(&m.keep).map(|(v, &k)| if k == 0 { 0.0 } else { *v }).collect(),
                None => w.clone(),
            };
            assert_eq!(start[name], want, "level {l} start of {name}");
        }
        // ... and its trained model keeps the pruned weights at exactly +0.0.
        let trained = weights(&level(&run_a, l).join("model.onnx"));
        for (name, m) in &masks.map {
            for (v, &k) in trained[name].iter().zip(&m.keep) {
                if k == 0 {
                    assert_eq!(v.to_bits(), 0, "level {l}: pruned weight of {name} is {v}");
                }
            }
            if m.kept() > 0 {
                assert_ne!(trained[name], start[name], "level {l}: {name} did not train");
            }
        }
        prev = Some(masks);
    }

    // Early bird: the mid-training mask is saved and compared with the final one.
    let l0: serde_json::Value = serde_json::from_slice(&std::fs::read(level(&run_a, 0).join("metrics.json")).unwrap()).unwrap();
    let eb = &l0["early_bird"]["masks"][0];
    assert_eq!(eb["step"], 6);
    let iou = eb["iou_with_final"].as_f64().unwrap();
    assert!(iou > 0.5 && iou <= 1.0, "early-bird IoU {iou}");
    assert!(level(&run_a, 0).join("early_bird/eb-0.5.safetensors").is_file());

    // Killed during level 2 and resumed: the same masks, models and scores as the uninterrupted run.
    let run_b = d.root.join("run_b");
    let args = imp_args(&d, &run_b);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticket")).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    while !level(&run_b, 2).join("state.json").exists() {
        assert!(child.try_wait().unwrap().is_none(), "run ended before level 2 checkpointed");
        assert!(t0.elapsed() < Duration::from_secs(300), "level 2 never checkpointed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Stopped (SIGSTOP) first, so that level 2 cannot finish while the second process below starts up; the
    // stopped process still holds its lock. While it holds it, a second process on the folder is refused,
    // naming the holder.
    common::procs::signal(child.id(), "STOP");
    let err = run_err(&[&"imp", &"--resume", &run_b]);
    assert!(err.contains(&format!("in use by process {}", child.id())), "{err}");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!level(&run_b, 2).join("metrics.json").exists(), "killed before level 2 finished");
    // Resumed with a gradient clip (one the gradients stay under, so the steps are unchanged): the level in
    // progress clips from its checkpoint on, which its run.json records; the run's run.json keeps the clip.
    let at = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(level(&run_b, 2).join("state.json")).unwrap()).unwrap()
        ["step"]
        .as_u64()
        .unwrap();
    let resumed = run_ok(&os(&[&"imp", &"--resume", &run_b, &"--clip-grad-norm", &"1e9"]));
    assert_eq!(resumed["ticket_level"], 2);
    let json = |p: std::path::PathBuf| serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(p).unwrap()).unwrap();
    assert_eq!(json(run_b.join("run.json"))["train"]["clip_grad_norm"], 1e9);
    let l2 = json(level(&run_b, 2).join("run.json"));
    assert_eq!((l2["clip_grad_norm"].as_f64(), l2["clip_from_step"].as_u64()), (Some(1e9), Some(at)), "{l2}");
    let norms = std::fs::read_to_string(level(&run_b, 2).join("log.jsonl")).unwrap();
    let logged: Vec<bool> = norms.lines().map(|l| json_line(l).get("grad_norm").is_some()).collect();
    assert!(logged.iter().enumerate().all(|(i, &g)| g == (i as u64 >= at)), "grad_norm from step {at} on: {logged:?}");
    for l in 0..=2 {
        // (Mask files are compared by content: safetensors writes its metadata map in hash order.)
        let masks = |r: &Path| Masks::load(&level(r, l).join("masks.safetensors")).unwrap();
        assert!(masks(&run_a) == masks(&run_b), "level {l} masks differ after resume");
        let model = |r: &Path| std::fs::read(level(r, l).join("model.onnx")).unwrap();
        assert!(model(&run_a) == model(&run_b), "level {l} model.onnx differs after resume");
        let (a, b) = (row(&run_a, l), row(&run_b, l));
        for k in ["scores", "selected_sparsity", "network_sparsity", "steps", "collapsed"] {
            assert_eq!(a[k], b[k], "level {l} {k} differs after resume");
        }
    }

    // Variants from the finished run: the trained dense model as level 0, level 1's mask from the early-bird
    // file, and no rewind (prune + fine-tune starts from the trained weights under the mask).
    let run_c = d.root.join("run_c");
    let eb_file = level(&run_a, 0).join("early_bird/eb-0.5.safetensors");
    let c = run_ok(&os(&[
        &"imp",
        &fixture(MODEL),
        &"--coco",
        &d.train,
        &"--val-coco",
        &d.val,
        &"--trained",
        &level(&run_a, 0).join("model.onnx"),
        &"--masks-from",
        &eb_file,
        &"--rewind",
        &"none",
        &"--steps",
        &"4",
        &"--warmup",
        &"2",
        &"--rois",
        &"32",
        &"--threads",
        &"1",
        &"--max-map-drop",
        &"1",
        &"-o",
        &run_c,
    ]));
    assert_eq!(c["levels"][0]["scores"], row(&run_a, 0)["scores"], "--trained scores the given dense model");
    assert_eq!(std::fs::read(level(&run_c, 1).join("masks.safetensors")).unwrap().len(), std::fs::read(&eb_file).unwrap().len());
    let eb_masks = Masks::load(&eb_file).unwrap();
    let start = weights(&level(&run_c, 1).join("start.onnx"));
    for (name, w) in weights(&level(&run_a, 0).join("model.onnx")) {
        let want: Vec<f32> = match eb_masks.map.get(&name) {
            Some(m) => w.iter().zip(&m.keep).map(|(v, &k)| if k == 0 { 0.0 } else { *v }).collect(),
            None => w,
        };
        assert_eq!(start[&name], want, "fine-tuning starts from the trained {name} under the mask");
    }

    bad_input(&d, &run_a);
}

/// The early-bird stop rule ends dense training when the mask stops moving, and says at which step.
#[test]
fn early_bird_stop_rule_ends_dense_training() {
    let d = data();
    let run = d.root.join("eb");
    let s = run_ok(&os(&[
        &"imp",
        &fixture(MODEL),
        &"--coco",
        &d.train,
        &"--val-coco",
        &d.val,
        &"--sparsity",
        &"0.5",
        &"--dense-steps",
        &"40",
        &"--steps",
        &"2",
        &"--warmup",
        &"1",
        &"--lr",
        &"0.001",
        &"--rois",
        &"32",
        &"--threads",
        &"1",
        &"--early-stop-eb",
        &"--eb-every",
        &"2",
        &"--max-map-drop",
        &"1",
        &"-o",
        &run,
    ]));
    let stopped = s["early_bird"]["stopped_at"].as_u64().expect("the rule fires at this learning rate");
    assert!((10..40).contains(&stopped) && stopped.is_multiple_of(2), "stopped at {stopped}");
    let checks = s["early_bird"]["checks"].as_array().unwrap();
    let last = checks.last().unwrap();
    assert_eq!(last[0].as_u64(), Some(stopped));
    assert!(last[1].as_f64().unwrap() <= 0.1);
    assert!(checks[..checks.len() - 1].iter().all(|c| c[1].as_f64().unwrap() > 0.1), "fired at the first check within 0.1");
    assert_eq!(s["levels"][0]["steps"].as_u64(), Some(stopped), "level 0 trained until the rule fired");
}

fn bad_input(d: &Data, finished: &Path) {
    let model = fixture(MODEL);
    let fresh = d.root.join("fresh");
    let base = |extra: &[&dyn AsRef<std::ffi::OsStr>]| -> Vec<OsString> {
        let mut v = os(&[&"imp", &model, &"--coco", &d.train, &"--val-coco", &d.val, &"--steps", &"12", &"-o", &fresh]);
        v.extend(os(extra));
        v
    };
    let check = |args: Vec<OsString>, needle: &str| {
        let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect();
        let err = run_err(&refs);
        assert!(err.contains(needle), "error should name {needle}: {err}");
        assert!(!fresh.exists(), "a refused run wrote {}", fresh.display());
    };
    check(base(&[&"--sparsity", &"0.8", &"--rounds", &"0"]), "--rounds");
    check(base(&[&"--sparsity", &"1.0"]), "--sparsity");
    check(base(&[&"--sparsity=-0.1"]), "--sparsity");
    check(base(&[&"--sparsity", &"0.8", &"--rewind", &"13"]), "--rewind");
    check(base(&[&"--sparsity", &"0.8", &"--trained", &model, &"--dense-steps", &"5"]), "--trained");

    // A validation set whose classes differ from the model's.
    let val2 = d.root.join("val2.json");
    let mut gt: serde_json::Value = serde_json::from_slice(&std::fs::read(&d.val).unwrap()).unwrap();
    gt["categories"].as_array_mut().unwrap().push(serde_json::json!({"id": 9, "name": "extra"}));
    std::fs::write(&val2, serde_json::to_vec(&gt).unwrap()).unwrap();
    let mut v = os(&[&"imp", &model, &"--coco", &d.train, &"--val-coco", &val2, &"--val-images", &d.root.join("val/images")]);
    v.extend(os(&[&"--sparsity", &"0.8", &"-o", &fresh]));
    check(v, "val2.json");

    // Resuming with another model, or with a level's masks corrupted: refused, and the folder is untouched.
    let copy = d.root.join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    for (rel, bytes) in snapshot(finished) {
        std::fs::create_dir_all(copy.join(&rel).parent().unwrap()).unwrap();
        std::fs::write(copy.join(&rel), bytes).unwrap();
    }
    let before = snapshot(&copy);
    let err = run_err(&[&"imp", &fixture("maskrcnn_r18_fpn.onnx"), &"--resume", &copy]);
    assert!(err.contains("another model"), "{err}");
    assert!(snapshot(&copy) == before, "a refused resume changed the run folder");

    std::fs::remove_file(level(&copy, 2).join("metrics.json")).unwrap();
    std::fs::write(level(&copy, 2).join("masks.safetensors"), b"not a mask file").unwrap();
    let before = snapshot(&copy);
    let err = run_err(&[&"imp", &"--resume", &copy]);
    assert!(err.contains("level_2/masks.safetensors"), "{err}");
    assert!(snapshot(&copy) == before, "a refused resume changed the run folder");
}

/// Channel IMP: each level removes channels planned on the previous level's trained model and starts from the
/// initial weights cut by every plan so far; the narrower levels train, detect in tract and export.
#[test]
fn channel_imp_cuts_the_trained_model_and_the_initial_weights_alike() {
    let d = data();
    let run = d.root.join("channel");
    let s = run_ok(&os(&[
        &"imp",
        &fixture(MODEL),
        &"--coco",
        &d.train,
        &"--val-coco",
        &d.val,
        &"--structure",
        &"channel",
        &"--sparsity",
        &"0.5",
        &"--rounds",
        &"2",
        &"--round-to",
        &"1",
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
        &run,
    ]));
    let levels = s["levels"].as_array().unwrap();
    let cut: Vec<f64> = levels.iter().map(|l| l["flops_removed"].as_f64().unwrap()).collect();
    assert!(cut[0] == 0.0 && cut[1] > 0.1 && cut[2] > cut[1], "FLOPs removed per level: {cut:?}");
    let mut expect = ModelState::import(&fixture(MODEL)).unwrap();
    for l in 1..=2 {
        let plans: Vec<ticket::prune::channel::SavedPlan> =
            serde_json::from_slice(&std::fs::read(level(&run, l).join("channels.json")).unwrap()).unwrap();
        expect = ticket::prune::channel::apply_plans(&expect, &plans).unwrap();
        let start = weights(&level(&run, l).join("start.onnx"));
        let want: BTreeMap<String, Vec<f32>> =
            expect.weights.tensors.iter().map(|w| (w.name.clone(), w.values.dense().into_owned())).collect();
        assert!(start == want, "level {l} starts from the initial weights cut by plans 1..={l}");
        let trained = ModelState::import(&level(&run, l).join("model.onnx")).unwrap();
        let narrow: usize = trained.weights.total();
        assert_eq!(narrow, expect.weights.total(), "level {l} trained at its narrow width");
    }
    assert!(levels[2]["network_sparsity"].as_f64().unwrap() > 0.3, "{}", levels[2]);
    ticket_json(&[&"check", &run.join("ticket.onnx")]);
}

/// The library's defaults are the command line's: `ticket imp` (and the `ticket train` options it carries) with no
/// option given maps onto exactly `ImpSettings::default()`, which the demo builds its run from.
#[test]
fn command_line_defaults_are_the_library_defaults() {
    use clap::{Args as _, FromArgMatches};
    use ticket::lottery::ImpSettings;
    let m = ticket::cli::ImpArgs::augment_args(clap::Command::new("imp")).try_get_matches_from(["imp"]).unwrap();
    let args = ticket::cli::ImpArgs::from_arg_matches(&m).unwrap();
    assert_eq!(args.settings(), ImpSettings::default());
    assert_eq!(args.train.settings(), ticket::train::TrainSettings::default());
}

/// A run built from settings resolves what they leave open from the model: a detector's canvas is its max_size
/// rounded up to a multiple of 32, the resize range its own, the mask and keypoint heads a quarter of the RoIs.
#[test]
fn run_config_resolves_canvas_and_heads_from_the_model() {
    use ticket::data::DataSpec;
    use ticket::train::{RunConfig, TrainSettings};
    let model = fixture(MODEL);
    let state = ModelState::import(&model).unwrap();
    let data = DataSpec::coco(Path::new("train/annotations.json"), None);
    assert_eq!(data, DataSpec::Coco { annotations: "train/annotations.json".into(), images: "train/images".into() });
    let settings = TrainSettings { rois: 50, ..TrainSettings::default() };
    let c = RunConfig::new(&model, &state, data, None, &settings).unwrap();
    let detect = ticket::detect::pipeline::DetectParams::from_model(&state);
    assert_eq!(c.shape.height, detect.max_size.div_ceil(32) * 32);
    assert_eq!((c.min_size, c.max_size), (detect.min_size.min(c.shape.height), detect.max_size.min(c.shape.height)));
    assert_eq!((c.shape.mask_rois_per_image, c.shape.keypoint_rois_per_image), (13, 13));
    assert!(c.model.is_absolute() && c.model_fingerprint == ticket::fsio::fingerprint(&model).unwrap());
    c.validate().unwrap();
    let c = RunConfig::new(&model, &state, c.data.clone(), None, &TrainSettings { canvas: Some(96), ..settings }).unwrap();
    assert_eq!((c.shape.height, c.shape.width), (96, 96));
    assert!(c.max_size <= 96 && c.min_size <= 96);
}

fn json_line(l: &str) -> serde_json::Value {
    serde_json::from_str(l).unwrap()
}
