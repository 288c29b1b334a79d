//! Regression tests for the defects of issue 12, one named after each, on mutated copies of the committed
//! fixtures built here: every bad input fails with exit 2 and one line naming the file and the problem, never a
//! panic, a hang, a partial output or lost saved work.
mod common;
use common::procs::*;
use common::*;
use prost::Message;
use serde_json::{json, Value};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use ticket::onnx::proto::{tensor_proto::DataType, ModelProto, StringStringEntryProto, TensorProto};

fn resnet() -> ModelProto {
    ModelProto::decode(&std::fs::read(fixture("resnet18.onnx")).unwrap()[..]).unwrap()
}

fn save(m: &ModelProto, path: &Path) -> PathBuf {
    std::fs::write(path, m.encode_to_vec()).unwrap();
    path.to_path_buf()
}

/// Runs ticket with a deadline (a hang fails the test instead of blocking it); returns (code, stdout, stderr).
fn run(args: &[&dyn AsRef<OsStr>], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    run_with_deadline(args, env)
}

/// Asserts exit 2 with one line of error containing every `expect`.
fn refused(args: &[&dyn AsRef<OsStr>], expect: &[&str]) -> String {
    let (code, _, err) = run(args, &[]);
    assert_eq!(
        code,
        Some(2),
        "{args:?}: exit {code:?}, stderr: {err}",
        args = args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect::<Vec<_>>()
    );
    assert_eq!(err.trim_end().lines().count(), 1, "error should be one line: {err}");
    for e in expect {
        assert!(err.contains(e), "'{e}' not in: {err}");
    }
    err
}

fn f32s(t: &TensorProto) -> Vec<f32> {
    ticket::onnx::tensor::f32_values(t, t.raw_data.as_deref()).unwrap()
}

// ---------------------------------------------------------------- 1. duplicate initializer names

#[test]
fn duplicate_initializer_name_is_refused() {
    let t = tempdir();
    let mut m = resnet();
    let g = m.graph.as_mut().unwrap();
    let first = g.initializer[0].clone();
    g.initializer.push(first);
    let d = save(&m, &t.path().join("d.onnx"));
    let (o, c) = (t.path().join("o.onnx"), t.path().join("o.tkt"));
    refused(&[&"prune", &d, &"--sparsity", &"0.5", &"-o", &o, &"--compact", &c], &["d.onnx", "conv1.weight", "defined twice"]);
    refused(&[&"prune", &d, &"--sparsity", &"0.5", &"-o", &o], &["defined twice"]);
    refused(&[&"inspect", &d, &"--layers"], &["defined twice"]);
    assert!(!o.exists() && !c.exists(), "outputs left behind");
}

// ---------------------------------------------------------------- 2. check: invalid model = 2, runtime = 3

/// ResNet-18 with the weights of layer1's convolutions in DOUBLE (in `double_data`): valid protobuf, a graph
/// our checks accept, but ORT refuses the Conv (float input, double weight).
fn mixed_types(m: &mut ModelProto) -> Vec<String> {
    let mut changed = Vec::new();
    for t in m.graph.as_mut().unwrap().initializer.iter_mut() {
        if t.name().starts_with("layer1.") && t.name().ends_with("weight") && t.dims.len() == 4 {
            let v = f32s(t);
            t.raw_data = None;
            t.float_data.clear();
            t.double_data = v.iter().map(|&x| x as f64 + 1e-12).collect();
            t.data_type = Some(DataType::Double as i32);
            changed.push(t.name().to_string());
        }
    }
    assert!(!changed.is_empty());
    changed
}

#[test]
fn check_exits_2_for_models_ort_rejects_and_3_only_without_a_runtime() {
    let t = tempdir();
    let mut m = resnet();
    mixed_types(&mut m);
    let mixed = save(&m, &t.path().join("mixed.onnx"));
    refused(&[&"check", &mixed], &["mixed.onnx", "ONNX Runtime rejects the model"]);

    // Raw data shorter than its shape, and a 10^12-element tensor: refused before ORT, as inspect does.
    let mut short = resnet();
    let t0 = &mut short.graph.as_mut().unwrap().initializer[0];
    let raw = t0.raw_data.clone().unwrap();
    t0.raw_data = Some(raw.slice(..raw.len() / 2));
    let short = save(&short, &t.path().join("short.onnx"));
    refused(&[&"check", &short], &["short.onnx", "conv1.weight", "raw data has"]);
    refused(&[&"inspect", &short], &["raw data has"]);
    let mut huge = resnet();
    huge.graph.as_mut().unwrap().initializer[0].dims = vec![1_000_000, 1_000_000];
    let huge = save(&huge, &t.path().join("huge.onnx"));
    refused(&[&"check", &huge], &["huge.onnx", "4000000000000"]);

    // No usable runtime: the environment's fault, 3.
    let good = fixture("resnet18.onnx");
    let (code, _, err) = run(&[&"check", &good], &[("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")]);
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn prune_verify_of_a_model_ort_rejects_leaves_no_output() {
    let t = tempdir();
    let mut m = resnet();
    mixed_types(&mut m);
    let mixed = save(&m, &t.path().join("mixed.onnx"));
    let (o, c, k) = (t.path().join("o.onnx"), t.path().join("o.tkt"), t.path().join("o.masks"));
    refused(
        &[&"prune", &mixed, &"--sparsity", &"0.5", &"-o", &o, &"--compact", &c, &"--masks-out", &k, &"--verify"],
        &["ONNX Runtime rejects the model"],
    );
    assert!(!o.exists() && !c.exists() && !k.exists(), "outputs left behind");
}

/// `mask apply` writes through the same export path as prune: when ONNX Runtime rejects the written model, the
/// model and its compact form are removed, as prune's are.
#[test]
fn mask_apply_verify_of_a_model_ort_rejects_leaves_no_output() {
    let t = tempdir();
    let mut m = resnet();
    mixed_types(&mut m);
    let mixed = save(&m, &t.path().join("mixed.onnx"));
    let (pruned, masks) = (t.path().join("pruned.onnx"), t.path().join("pruned.masks"));
    let (code, _, err) = run(&[&"prune", &mixed, &"--sparsity", &"0.5", &"-o", &pruned, &"--masks-out", &masks], &[]);
    assert_eq!(code, Some(0), "{err}");
    let (o, c) = (t.path().join("o.onnx"), t.path().join("o.tkt"));
    refused(&[&"mask", &"apply", &mixed, &masks, &"-o", &o, &"--compact", &c, &"--verify"], &["ONNX Runtime rejects the model"]);
    assert!(!o.exists() && !c.exists(), "outputs left behind");
    // Without --verify the same apply writes both: the check, not the writing, refused the model above.
    let (code, _, err) = run(&[&"mask", &"apply", &mixed, &masks, &"-o", &o, &"--compact", &c], &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(o.is_file() && c.is_file());
}

/// Moves the first initializer's bytes out to external data with these entries (and its length).
fn external_first(m: &mut ModelProto, entries: &[(&str, &str)]) {
    let t0 = &mut m.graph.as_mut().unwrap().initializer[0];
    let n = t0.raw_data.take().unwrap().len();
    t0.data_location = Some(1);
    let n = n.to_string();
    t0.external_data = entries
        .iter()
        .copied()
        .chain([("length", n.as_str())])
        .map(|(k, v)| StringStringEntryProto { key: Some(k.into()), value: Some(v.into()) })
        .collect();
}

#[test]
fn ort_log_lines_do_not_leak_from_check() {
    // External data that points at the model file itself: read as weights, the bytes are garbage; whatever
    // ORT makes of them, the output is the report or one line of error, none of ORT's own log lines.
    let t = tempdir();
    let mut m = resnet();
    external_first(&mut m, &[("location", "self.onnx"), ("offset", "0")]);
    let p = save(&m, &t.path().join("self.onnx"));
    // ORT_LOG=verbose asks ORT for every log line it has; none may reach the user.
    let (code, out, err) = run(&[&"check", &p], &[("ORT_LOG", "verbose")]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.trim().is_empty(), "ORT log lines on stderr: {err}");
    assert!(out.lines().count() <= 4 && out.contains("passed"), "{out}");
    let mut m = resnet();
    mixed_types(&mut m);
    let mixed = save(&m, &t.path().join("mixed.onnx"));
    let (code, out, err) = run(&[&"check", &mixed], &[("ORT_LOG", "verbose")]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "ORT log lines on stderr: {err}");
    assert!(out.is_empty(), "{out}");
}

// ---------------------------------------------------------------- 3. FIFO as external data

#[test]
fn fifo_external_data_does_not_hang() {
    let t = tempdir();
    let fifo = t.path().join("weights.bin");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let mut m = resnet();
    external_first(&mut m, &[("location", "weights.bin")]);
    let p = save(&m, &t.path().join("m.onnx"));
    refused(&[&"inspect", &p], &["weights.bin", "not a regular file"]);
    let o = t.path().join("o.onnx");
    refused(&[&"prune", &p, &"--sparsity", &"0.5", &"-o", &o], &["not a regular file"]);
    assert!(!o.exists());
}

// ---------------------------------------------------------------- 4. float16 / bfloat16 / double weights

/// Every FLOAT tensor (initializers, graph inputs and outputs, value infos) as FLOAT16.
fn all_float16(m: &mut ModelProto) {
    let g = m.graph.as_mut().unwrap();
    for t in g.initializer.iter_mut().filter(|t| t.data_type() == DataType::Float as i32) {
        let v = f32s(t);
        let bytes: Vec<u8> = v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect();
        t.float_data.clear();
        t.raw_data = Some(bytes.into());
        t.data_type = Some(DataType::Float16 as i32);
    }
    for vi in g.input.iter_mut().chain(g.output.iter_mut()).chain(g.value_info.iter_mut()) {
        if let Some(ticket::onnx::proto::type_proto::Value::TensorType(tt)) = vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
            if tt.elem_type == Some(DataType::Float as i32) {
                tt.elem_type = Some(DataType::Float16 as i32);
            }
        }
    }
}

fn initializers(path: &Path) -> std::collections::BTreeMap<String, TensorProto> {
    let m = ModelProto::decode(&std::fs::read(path).unwrap()[..]).unwrap();
    m.graph.unwrap().initializer.into_iter().map(|t| (t.name().to_string(), t)).collect()
}

#[test]
fn float16_weights_are_pruned_in_their_own_type() {
    let t = tempdir();
    let mut m = resnet();
    all_float16(&mut m);
    let p = save(&m, &t.path().join("f16.onnx"));
    let o = t.path().join("o.onnx");
    let r = ticket_json(&[&"prune", &p, &"--sparsity", &"0.5", &"-o", &o]);
    let s = r["prune"]["selected_sparsity"].as_f64().unwrap();
    assert!((s - 0.5).abs() < 0.01, "selected sparsity {s}");
    let (before, after) = (initializers(&p), initializers(&o));
    let mut pruned = 0;
    for (name, a) in &after {
        let b = &before[name];
        assert_eq!(a.data_type, b.data_type, "{name} changed type");
        let (x, y) = (b.raw_data.as_ref().unwrap(), a.raw_data.as_ref().unwrap());
        assert_eq!(x.len(), y.len());
        for (e, f) in x.chunks(2).zip(y.chunks(2)) {
            // Every element is the original half-float, bit for bit, or +0 of FLOAT16.
            assert!(e == f || f == [0, 0], "{name}: {e:?} became {f:?}");
            pruned += (e != f) as usize;
        }
    }
    assert!(pruned > 10_000, "only {pruned} weights pruned");
}

#[test]
fn weights_of_another_float_type_are_pruned_not_skipped() {
    let t = tempdir();
    let mut m = resnet();
    let doubles = mixed_types(&mut m);
    // And one tensor in BFLOAT16, held in int32_data.
    let g = m.graph.as_mut().unwrap();
    let bf = g.initializer.iter_mut().find(|t| t.name() == "layer2.0.conv1.weight").unwrap();
    let v = f32s(bf);
    bf.raw_data = None;
    bf.int32_data = v.iter().map(|x| half::bf16::from_f32(*x).to_bits() as i32).collect();
    bf.data_type = Some(DataType::Bfloat16 as i32);
    let p = save(&m, &t.path().join("mixed.onnx"));
    let o = t.path().join("o.onnx");
    ticket_json(&[&"prune", &p, &"--sparsity", &"0.5", &"-o", &o]);
    // The same pruning of the all-FLOAT model: magnitudes rank across types, so the DOUBLE tensors (whose
    // values are the FLOAT ones) lose exactly the same positions.
    let o32 = t.path().join("o32.onnx");
    ticket_json(&[&"prune", &fixture("resnet18.onnx"), &"--sparsity", &"0.5", &"-o", &o32]);
    let (before, after, reference) = (initializers(&p), initializers(&o), initializers(&o32));
    for name in doubles.iter().chain(Some(&"layer2.0.conv1.weight".to_string())) {
        let (b, a) = (&before[name], &after[name]);
        assert_eq!(a.data_type, b.data_type, "{name} changed type");
        let (x, y): (Vec<u64>, Vec<u64>) = if b.data_type() == DataType::Double as i32 {
            (b.double_data.iter().map(|v| v.to_bits()).collect(), a.double_data.iter().map(|v| v.to_bits()).collect())
        } else {
            (b.int32_data.iter().map(|v| *v as u64).collect(), a.int32_data.iter().map(|v| *v as u64).collect())
        };
        assert_eq!(x.len(), y.len(), "{name}: the typed field was kept");
        assert!(x.iter().zip(&y).all(|(e, f)| e == f || *f == 0), "{name}: a kept weight changed");
        let zeros: Vec<bool> = y.iter().map(|v| *v == 0).collect();
        assert!(zeros.iter().any(|z| *z), "{name}: nothing pruned: skipped");
        if b.data_type() == DataType::Double as i32 {
            let want: Vec<bool> = f32s(&reference[name]).iter().map(|v| *v == 0.0).collect();
            assert_eq!(zeros, want, "{name}: pruned other positions than the FLOAT model");
        }
    }
}

// ---------------------------------------------------------------- 8. graphs ORT rejects, refused by prune

#[test]
fn prune_refuses_graphs_ort_rejects() {
    let t = tempdir();
    let cases: Vec<(&str, Box<dyn Fn(&mut ModelProto)>, &str)> = vec![
        (
            "cycle",
            Box::new(|m| {
                let g = m.graph.as_mut().unwrap();
                let out = g.node[3].output[0].clone();
                g.node[0].input[0] = out;
            }),
            "cycle",
        ),
        (
            "no_weight",
            Box::new(|m| {
                let g = m.graph.as_mut().unwrap();
                g.node.iter_mut().find(|n| n.op_type() == "Conv").unwrap().input.truncate(1);
            }),
            "has no weight input",
        ),
        (
            "missing",
            Box::new(|m| {
                let g = m.graph.as_mut().unwrap();
                g.initializer.retain(|t| t.name() != "conv1.weight");
            }),
            "which no node, graph input or initializer provides",
        ),
        (
            "int64_weight",
            Box::new(|m| {
                let g = m.graph.as_mut().unwrap();
                let w = g.initializer.iter_mut().find(|t| t.name() == "conv1.weight").unwrap();
                let v = ticket::onnx::tensor::f32_values(w, w.raw_data.as_deref()).unwrap();
                w.raw_data = Some(v.iter().flat_map(|x| (*x as i64).to_le_bytes()).collect::<Vec<u8>>().into());
                w.data_type = Some(DataType::Int64 as i32);
            }),
            "of type int64",
        ),
    ];
    for (name, edit, why) in cases {
        let mut m = resnet();
        edit(&mut m);
        let p = save(&m, &t.path().join(format!("{name}.onnx")));
        let o = t.path().join(format!("{name}.out.onnx"));
        refused(&[&"prune", &p, &"--sparsity", &"0.5", &"-o", &o], &[&format!("{name}.onnx"), why]);
        assert!(!o.exists(), "{name}: output written");
    }
}

// ---------------------------------------------------------------- 7. eval reads only bounded regular files

#[test]
fn eval_refuses_dev_zero_and_fifo_detections() {
    let t = tempdir();
    let gt = fixture("eval/coco_gt.json");
    refused(&[&"eval", &"--dets", &"/dev/zero", &"--coco", &gt], &["/dev/zero", "not a regular file"]);
    let fifo = t.path().join("dets.json");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    refused(&[&"eval", &"--dets", &fifo, &"--coco", &gt], &["dets.json", "not a regular file"]);
    refused(&[&"eval", &"--dets", &fixture("eval/coco_dets_bbox.json"), &"--coco", &fifo], &["not a regular file"]);
}

// ---------------------------------------------------------------- 8. one ground-truth validation path

fn gt_json() -> Value {
    serde_json::from_slice(&std::fs::read(fixture("eval/coco_gt.json")).unwrap()).unwrap()
}

#[test]
fn duplicate_ground_truth_image_id_blames_the_ground_truth() {
    let t = tempdir();
    let mut gt = gt_json();
    let img = gt["images"][0].clone();
    gt["images"].as_array_mut().unwrap()[1]["id"] = img["id"].clone();
    let p = t.path().join("gt.json");
    std::fs::write(&p, gt.to_string()).unwrap();
    let err = refused(&[&"eval", &"--dets", &fixture("eval/coco_dets_bbox.json"), &"--coco", &p], &["gt.json", "image id 1 appears twice"]);
    assert!(!err.contains("coco_dets_bbox"), "blames the detections: {err}");
}

#[test]
fn eval_refuses_the_ground_truth_data_check_refuses() {
    let t = tempdir();
    let edits: Vec<(&str, Box<dyn Fn(&mut Value)>, &str)> = vec![
        ("unknown_image", Box::new(|g| g["annotations"][0]["image_id"] = json!(999)), "image_id 999 is not an image"),
        ("unknown_category", Box::new(|g| g["annotations"][0]["category_id"] = json!(999)), "category_id 999 is not a category"),
        ("negative_box", Box::new(|g| g["annotations"][0]["bbox"] = json!([10.0, 10.0, -5.0, 4.0])), "w, h ≥ 0"),
        ("width_0", Box::new(|g| g["images"][0]["width"] = json!(0)), "has no size"),
        ("negative_area", Box::new(|g| g["annotations"][0]["area"] = json!(-1.0)), "area -1"),
        ("rle_size", Box::new(|g| g["annotations"][0]["segmentation"]["size"] = json!([480, 640])), "RLE size 480x640"),
    ];
    for (name, edit, why) in edits {
        let mut gt = gt_json();
        edit(&mut gt);
        let p = t.path().join(format!("{name}.json"));
        std::fs::write(&p, gt.to_string()).unwrap();
        refused(&[&"eval", &"--dets", &fixture("eval/coco_dets_bbox.json"), &"--coco", &p], &[&format!("{name}.json"), why]);
        refused(&[&"data", &"check", &"--coco", &p, &"--images", &t.path()], &[&format!("{name}.json"), why]);
    }
}

#[test]
fn inconsistent_rle_detections_are_refused() {
    let t = tempdir();
    let dets: Value = serde_json::from_slice(&std::fs::read(fixture("eval/coco_dets_segm.json")).unwrap()).unwrap();
    let edits: Vec<(&str, Value, &str)> = vec![
        ("size", json!({"size": [10, 10], "counts": [100]}), "differs from its image"),
        ("counts_short", json!({"size": [240, 320], "counts": [100, 50]}), "cover 150 pixels"),
        ("counts_long", json!({"size": [240, 320], "counts": [76800, 5]}), "segmentation"),
    ];
    for (name, seg, why) in edits {
        let mut d = dets.clone();
        d[0]["segmentation"] = seg;
        let p = t.path().join(format!("{name}.json"));
        std::fs::write(&p, d.to_string()).unwrap();
        refused(
            &[&"eval", &"--dets", &p, &"--coco", &fixture("eval/coco_gt.json"), &"--iou-type", &"segm"],
            &[&format!("{name}.json"), "detection 0", why],
        );
    }
}

#[test]
fn data_check_confines_file_names_to_the_image_folder() {
    let t = tempdir();
    let images = t.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    for name in ["/etc/hostname", "../outside.jpg"] {
        let mut gt = gt_json();
        gt["images"][0]["file_name"] = json!(name);
        let p = t.path().join("gt.json");
        std::fs::write(&p, gt.to_string()).unwrap();
        std::fs::write(t.path().join("outside.jpg"), b"not read").unwrap();
        refused(&[&"data", &"check", &"--coco", &p, &"--images", &images], &["gt.json", name, "not a relative path inside"]);
    }
}

// ---------------------------------------------------------------- 5, 6, 8. run folders

/// A run folder as `Run::save` leaves it, without training: checkpoints of steps 2 and 4, described.
fn fake_run(dir: &Path) {
    let ck = dir.join("checkpoints");
    std::fs::create_dir_all(&ck).unwrap();
    for step in [2u64, 4] {
        std::fs::write(ck.join(format!("step-{step:06}.ckpt")), vec![step as u8; 1000]).unwrap();
        ticket::train::checkpoints::describe_checkpoint(&ck, step).unwrap();
    }
    std::fs::write(dir.join("state.json"), r#"{"step":4,"checkpoint":"checkpoints/step-000004.ckpt"}"#).unwrap();
}

#[test]
fn state_json_is_checked_not_trusted() {
    use ticket::train::checkpoints::resume_point;
    let t = tempdir();
    let run = t.path().join("run");
    fake_run(&run);
    assert_eq!(resume_point(&run).unwrap().unwrap().step, 4);

    // A checkpoint outside the run folder, or a step that is not the checkpoint's: refused, with the reason.
    std::fs::write(run.join("state.json"), r#"{"step":4,"checkpoint":"/etc/passwd"}"#).unwrap();
    let e = resume_point(&run).unwrap_err().to_string();
    assert!(e.contains("state.json") && e.contains("/etc/passwd"), "{e}");
    std::fs::write(run.join("state.json"), r#"{"step":3,"checkpoint":"checkpoints/step-000004.ckpt"}"#).unwrap();
    let e = resume_point(&run).unwrap_err().to_string();
    assert!(e.contains("says step 3"), "{e}");

    // state.json gone: the newest intact checkpoint.
    std::fs::remove_file(run.join("state.json")).unwrap();
    assert_eq!(resume_point(&run).unwrap().unwrap().step, 4);

    // The last checkpoint cut short: the one before it, with the damaged one named (kept, not deleted).
    let last = run.join("checkpoints/step-000004.ckpt");
    std::fs::write(&last, vec![4u8; 500]).unwrap();
    let p = resume_point(&run).unwrap().unwrap();
    assert_eq!((p.step, p.damaged.clone()), (2, vec![last.clone()]));
    assert!(last.exists());

    // None intact: refused, nothing changed.
    std::fs::write(run.join("checkpoints/step-000002.ckpt"), b"x").unwrap();
    let e = resume_point(&run).unwrap_err().to_string();
    assert!(e.contains("none is intact"), "{e}");
    assert!(last.exists() && run.join("checkpoints/step-000002.ckpt").exists());
}

#[test]
fn log_truncated_mid_line_is_dropped() {
    let rec =
        |s: u64| format!(r#"{{"step":{s},"loss":1.5,"lr":0.01,"proposals":10,"positive_rois":2,"data_s":0.1,"rpn_s":0.1,"step_s":0.2}}"#);
    let mut log = (1..=3).map(|s| rec(s) + "\n").collect::<String>();
    log += &rec(4)[..40];
    let kept = ticket::train::log::kept_log(log.as_bytes(), 4);
    assert_eq!(kept, (1..=3).map(|s| rec(s) + "\n").collect::<String>());
    // A whole line 4 without its newline is a write cut short too: dropped, and step 4 is redone.
    let kept = ticket::train::log::kept_log(format!("{}{}", rec(1) + "\n", rec(2)).as_bytes(), 4);
    assert_eq!(kept, rec(1) + "\n");
    // Invalid UTF-8 in the middle loses that line, not the log.
    let mut bytes = (rec(1) + "\n").into_bytes();
    bytes.extend_from_slice(b"\xff\xfe\n");
    bytes.extend_from_slice((rec(2) + "\n").as_bytes());
    assert_eq!(ticket::train::log::kept_log(&bytes, 4), rec(1) + "\n" + &rec(2) + "\n");
}

#[test]
fn run_folder_lock_names_the_holder() {
    let t = tempdir();
    let held = ticket::fsio::DirLock::acquire(t.path()).unwrap();
    let e = ticket::fsio::DirLock::acquire(t.path()).unwrap_err().to_string();
    assert!(e.contains(&format!("in use by process {}", std::process::id())), "{e}");
    assert_eq!(e.lines().count(), 1);
    drop(held);
    // Released with its holder. (Retried for a while: a process forked meanwhile by a test running beside this
    // one holds a copy of the lock's descriptor until it execs.)
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = ticket::fsio::DirLock::acquire(t.path()) {
        assert!(Instant::now() < deadline, "still locked 10 s after its holder let go: {e}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A lock whose holder is dying (here a zombie's pid in the lock file while the lock is still held, released a
/// moment later) is waited for instead of refused: a process killed with its folder locked keeps the lock until
/// its last thread has exited, and a resume started right after must not fail on it.
#[test]
fn a_lock_held_by_a_dying_process_is_waited_for() {
    let t = tempdir();
    let held = ticket::fsio::DirLock::acquire(t.path()).unwrap();
    let mut zombie = Command::new("true").spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ticket::fsio::process_state(zombie.id()) != Some('Z') {
        assert!(Instant::now() < deadline, "`true` did not exit within a minute");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(held.path(), zombie.id().to_string()).unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(held);
    });
    let got = ticket::fsio::DirLock::acquire(t.path());
    release.join().unwrap();
    zombie.wait().unwrap();
    assert!(got.is_ok(), "refused instead of waiting for a dying holder: {}", got.unwrap_err());
}

const TRAIN_MODEL: &str = "train/maskrcnn_r18_fpn_synth.onnx";

fn synth(dir: &Path) -> PathBuf {
    let out = ticket(&[&"data", &"synth", &"--out", &dir, &"--images", &"4", &"--seed", &"3"]);
    assert!(out.status.success(), "synth failed: {}", String::from_utf8_lossy(&out.stderr));
    dir.join("annotations.json")
}

fn train(model: &Path, ann: &Path, run: &Path, steps: &str, more: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "train",
        model.to_str().unwrap(),
        "--coco",
        ann.to_str().unwrap(),
        "--steps",
        steps,
        "--warmup",
        "2",
        "--batch",
        "2",
        "-o",
        run.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    v.extend(more.iter().map(|s| s.to_string()));
    v
}

fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect()
}

#[test]
fn resume_without_state_json_keeps_saved_checkpoints() {
    let t = tempdir();
    let ann = synth(&t.path().join("data"));
    let model = fixture(TRAIN_MODEL);
    let run = t.path().join("run");
    let args = train(&model, &ann, &run, "6", &["--save-every", "2"]);
    let a: Vec<&dyn AsRef<OsStr>> = args.iter().map(|s| s as &dyn AsRef<OsStr>).collect();
    ticket_json(&a);
    let ck = run.join("checkpoints");
    let saved = files(&ck);
    assert!(saved.contains_key("step-000004.ckpt") && saved.contains_key("step-000006.ckpt"), "{:?}", saved.keys());

    // state.json deleted: the resume starts from the newest intact checkpoint (6, the end) and changes no
    // saved checkpoint.
    std::fs::remove_file(run.join("state.json")).unwrap();
    let r = ticket_json(&[&"train", &model, &"--resume", &run]);
    assert_eq!(r["resumed_from"], 6, "{r}");
    assert_eq!(files(&ck), saved, "saved checkpoints changed");

    // The last checkpoint cut short as well: resume from 4, the damaged one kept as .broken, steps 5-6 redone.
    let last = ck.join("step-000006.ckpt");
    let cut = saved["step-000006.ckpt"][..saved["step-000006.ckpt"].len() / 2].to_vec();
    std::fs::write(&last, &cut).unwrap();
    assert!(!run.join("state.json").exists(), "a resume with nothing to train wrote state.json");
    let (code, out, err) = run_ticket(&[&"train", &model, &"--resume", &run, &"--json"]);
    assert_eq!(code, Some(0), "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["resumed_from"], 4, "{r}");
    assert_eq!(std::fs::read(ck.join("step-000006.ckpt.broken")).unwrap(), cut, "the damaged checkpoint was not kept");
    assert!(err.contains("step-000006.ckpt") && err.contains(".broken"), "no warning: {err}");
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    let steps: Vec<u64> = log.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, (1..=6).collect::<Vec<_>>());

    // A fresh run over a folder whose run.json is gone but whose checkpoints remain: refused.
    std::fs::remove_file(run.join("run.json")).unwrap();
    let before = files(&ck);
    let a: Vec<&dyn AsRef<OsStr>> = args.iter().map(|s| s as &dyn AsRef<OsStr>).collect();
    refused(&a, &["holds checkpoints"]);
    assert_eq!(files(&ck), before);
}

fn run_ticket(args: &[&dyn AsRef<OsStr>]) -> (Option<i32>, String, String) {
    run(args, &[])
}

#[test]
fn a_second_process_on_a_training_run_is_refused() {
    let t = tempdir();
    let ann = synth(&t.path().join("data"));
    let model = fixture(TRAIN_MODEL);
    let run_dir = t.path().join("run");
    let args = train(&model, &ann, &run_dir, "400", &["--save-every", "1"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ticket")).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !run_dir.join("state.json").exists() {
        assert!(Instant::now() < deadline, "no checkpoint within 5 minutes");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = refused(&[&"train", &model, &"--resume", &run_dir], &["run", &format!("in use by process {}", child.id())]);
    // A fresh run into the same folder is refused too (it holds a run).
    let a: Vec<&dyn AsRef<OsStr>> = args.iter().map(|s| s as &dyn AsRef<OsStr>).collect();
    refused(&a, &["already holds a training run"]);
    assert!(child.try_wait().unwrap().is_none(), "the first run was disturbed: {err}");
    // Killed with its worker stopped (SIGSTOP): a worker that outlived its parent would stay, stopped, and could
    // go on writing checkpoints into the folder once continued. It must die with the parent.
    let worker = only_child(child.id(), "training worker");
    signal(worker, "STOP");
    child.kill().unwrap();
    child.wait().unwrap();
    require_gone(worker, "the training worker outlived its killed parent");
    // Its lock dies with it: the run resumes.
    let (code, _, err) = run(&[&"train", &model, &"--resume", &run_dir, &"--steps", &"1"], &[]);
    assert!(code == Some(0) || err.contains("below the step of its last checkpoint"), "exit {code:?}: {err}");
}
