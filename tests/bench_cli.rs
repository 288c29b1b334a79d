//! `ticket bench prune|stages|sparse|train` (the harness in `ticket::bench`, the command in cli/): each runs on
//! the small fixtures, and its `--json` report and printed table keep their fields, order and headers.
mod common;
use common::*;

/// The report's top-level keys in the order printed, and the report.
fn report(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (Vec<String>, serde_json::Value) {
    let mut with_json: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"--json"];
    with_json.extend_from_slice(args);
    let out = text(&with_json);
    let keys = out.lines().filter_map(|l| l.strip_prefix("  \"")).filter_map(|l| l.split('"').next()).map(String::from).collect();
    (keys, serde_json::from_str(&out).unwrap())
}

/// A nested object's keys, sorted (the top-level order is checked by [`report`]).
fn keys(v: &serde_json::Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

fn sorted<'a>(k: &[&'a str]) -> Vec<&'a str> {
    let mut k = k.to_vec();
    k.sort();
    k
}

fn text(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let o = ticket(args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn bench_prune_and_stages_report_their_fields() {
    let model = fixture("fasterrcnn_r18_fpn_voc.onnx");
    let (order, r) = report(&[&"bench", &"prune", &model, &"--repeat", &"1", &"--torch-python", &"none"]);
    assert_eq!(
        order,
        [
            "model",
            "weights",
            "tensors",
            "threads",
            "ticket_global_mask_ms",
            "ticket_copy_ms",
            "torch",
            "speedup_vs_torch",
            "mask_over_copy"
        ]
    );
    assert!(r["weights"].as_u64().unwrap() > 0 && r["torch"].is_null() && r["speedup_vs_torch"].is_null());
    let t = text(&[&"bench", &"prune", &model, &"--repeat", &"1", &"--torch-python", &"none"]);
    assert!(t.contains("prunable weights in") && t.contains("(goal ≤ 2)") && !t.contains("torch global_unstructured"), "{t}");

    let mask = fixture("maskrcnn_r18_fpn.onnx");
    let args: [&dyn AsRef<std::ffi::OsStr>; 13] =
        [&"bench", &"stages", &mask, &"--repeat", &"1", &"--size", &"64", &"--rois", &"8", &"--head-rois", &"4", &"--threads", &"1"];
    let (order, r) = report(&args);
    assert_eq!(order, ["model", "kind", "repeat", "target_sparsity", "network_sparsity", "tract_threads", "ort_threads", "stages"]);
    let stages: Vec<&str> = r["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["backbone+RPN", "box head", "mask head"]);
    assert_eq!(keys(&r["stages"][0]), sorted(&["stage", "input", "tract", "ort", "tract_over_ort_dense", "tract_over_ort_pruned"]));
    assert_eq!(r["tract_threads"], 1);
    let t = text(&args);
    assert!(t.contains("Stage [input]") && t.contains("mask head [4×16×14×14]") && t.contains("1 matmul threads"), "{t}");
    let o = ticket(&[&"bench", &"stages", &fixture("resnet18.onnx"), &"--size", &"64"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a two-stage detector"));
}

#[test]
fn bench_sparse_reports_the_curve_and_draws_it() {
    let t = tempdir();
    let plot = t.path().join("curve");
    let args: [&dyn AsRef<std::ffi::OsStr>; 12] =
        [&"bench", &"sparse", &"--size", &"64", &"--densities", &"1,0.1", &"--repeat", &"1", &"--only", &"stem", &"--threads", &"1"];
    let mut with_plot: Vec<&dyn AsRef<std::ffi::OsStr>> = args.to_vec();
    with_plot.extend([&"--plot" as &dyn AsRef<std::ffi::OsStr>, &plot]);
    let (order, r) = report(&with_plot);
    assert_eq!(order, ["size", "threads", "repeat", "isa", "curves"]);
    let curves = r["curves"].as_array().unwrap();
    assert_eq!(curves.len(), 1);
    assert_eq!(keys(&curves[0]), sorted(&["layer", "dense_ms", "dense_gflops", "points", "break_even"]));
    assert_eq!(curves[0]["points"].as_array().unwrap().len(), 2);
    assert!(plot.with_extension("png").is_file() && plot.with_extension("svg").is_file());
    let t = text(&args);
    assert!(t.contains("speed-up of the sparse kernel") && t.contains("break-even") && t.contains("10%"), "{t}");
    let o = ticket(&[&"bench", &"sparse", &"--size", &"32"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--size 32: give a multiple of 32, at least 64"));
}

#[test]
fn bench_train_times_one_ort_step() {
    let model = fixture("fasterrcnn_r18_fpn_voc.onnx");
    let args: [&dyn AsRef<std::ffi::OsStr>; 12] =
        [&"bench", &"train", &model, &"--size", &"64", &"--rois", &"8", &"--head-rois", &"4", &"--repeat", &"1", &"--torch-python"];
    let mut args = args.to_vec();
    args.push(&"none");
    let (order, r) = report(&args);
    assert_eq!(order, ["model", "size", "rois", "pooling", "ort_step_ms", "torch", "ort_over_torch"]);
    assert!(r["ort_step_ms"].as_f64().unwrap() > 0.0 && r["torch"].is_null());
    // At 64² training pools with interpolation matrices; --pooling times the other form.
    assert_eq!(r["pooling"], "planes");
    let t = text(&args);
    assert!(t.contains("one training step, 64² canvas, 8 RoIs, RoIAlign as planes") && t.contains("ONNX Runtime training:"), "{t}");
    args.extend([&"--pooling" as &dyn AsRef<std::ffi::OsStr>, &"taps", &"--threads", &"1"]);
    let (_, r) = report(&args);
    assert_eq!(r["pooling"], "taps");
    assert!(r["ort_step_ms"].as_f64().unwrap() > 0.0);
}

/// `bench train` on the narrow Mask R-CNN fixture at 64², 8 RoIs, no torch baseline, `repeat` steps, and `flag`.
fn mask_bench_train(repeat: &str, flag: &str) -> Vec<std::ffi::OsString> {
    let model = fixture("maskrcnn_r18_fpn.onnx");
    let mut v: Vec<std::ffi::OsString> = ["bench", "train"].map(Into::into).to_vec();
    v.push(model.into());
    v.extend(["--size", "64", "--rois", "8", "--head-rois", "4", "--repeat", repeat, "--torch-python", "none", flag].map(Into::into));
    v
}

/// `--distill`: the teacher's forward and the distilling step, against the plain step of the same run.
#[test]
fn bench_train_distill_times_the_teacher_and_the_distilling_step() {
    let owned = mask_bench_train("1", "--distill");
    let args: Vec<&dyn AsRef<std::ffi::OsStr>> = owned.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect();
    let (_, r) = report(&args);
    let d = &r["distill"];
    let (teacher, step, over) = (d["teacher_ms"].as_f64().unwrap(), d["step_ms"].as_f64().unwrap(), d["over_plain"].as_f64().unwrap());
    assert!(teacher > 0.0 && step > 0.0, "{d}");
    let plain = r["ort_step_ms"].as_f64().unwrap();
    // Arithmetic only: on a model this small the timings are noise, and speed goals live in benchmarks.
    assert!((over - (teacher + step) / plain).abs() < 1e-9, "{r}");
    let t = text(&args);
    assert!(t.contains("Distilling step:") && t.contains("the plain step"), "{t}");
    let mut both = args.to_vec();
    both.push(&"--profile");
    let err = run_err(&both);
    assert!(err.contains("--distill") && err.contains("--profile"), "{err}");
}

#[test]
fn bench_train_profile_takes_the_ort_step_apart() {
    let owned = mask_bench_train("2", "--profile");
    let args: Vec<&dyn AsRef<std::ffi::OsStr>> = owned.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect();
    let (order, r) = report(&args);
    assert_eq!(order, ["model", "size", "rois", "pooling", "ort_step_ms", "torch", "ort_over_torch", "step_wall_ms", "ort_profile"]);
    let p = &r["ort_profile"];
    assert_eq!(p["steps"], 2);
    let kernels = p["kernels_ms"].as_f64().unwrap();
    assert!(kernels > 0.0 && p["train_session_ms"].as_f64().unwrap() >= kernels, "{p}");
    // Every kernel is counted once by operator and once by part; the network's parts come in graph order,
    // and the heads' convolutions have gradients.
    let total = |rows: &serde_json::Value| {
        rows.as_array().unwrap().iter().map(|r| r["forward_ms"].as_f64().unwrap() + r["backward_ms"].as_f64().unwrap()).sum::<f64>()
    };
    assert!((total(&p["ops"]) - kernels).abs() < 1e-6 * kernels && (total(&p["parts"]) - kernels).abs() < 1e-6 * kernels, "{p}");
    let parts: Vec<&str> = p["parts"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        &parts[..10],
        ["backbone", "FPN", "RPN head", "RPN losses", "box RoIAlign", "box head", "box losses", "mask RoIAlign", "mask head", "mask loss"]
    );
    let mask_head = &p["parts"][8];
    assert!(mask_head["forward_ms"].as_f64().unwrap() > 0.0 && mask_head["backward_ms"].as_f64().unwrap() > 0.0, "{p}");
    let ops: Vec<&str> = p["ops"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    // Pooled with interpolation matrices at 64²: no Gather and so no GatherNDGrad left in the step.
    assert!(ops.contains(&"ConvGrad") && !ops.contains(&"GatherNDGrad") && ops.contains(&"MatMul"), "{ops:?}");
    let t = text(&args);
    assert!(t.contains("Where the ORT step goes") && t.contains("ORT by operator type"), "{t}");
}
