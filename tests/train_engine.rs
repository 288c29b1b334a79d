//! The training engine end to end: a masked two-conv graph built with the crate's GraphBuilder, trained by the
//! real ONNX Runtime 1.19.2 worker (TICKET_TRAIN_PYTHON from tools/env.sh). Pins what docs/engine-facts.md measured:
//! masked weights stay exactly zero, masks change between rounds without new artifacts, rewinds are exact,
//! Adam's moments reset by reloading a checkpoint saved without them — and that every failure of the worker
//! (crash, hang, NaN, wrong venv, foreign checkpoint) comes back as a clear error instead of a hang.
mod common;

use ndarray::{ArrayD, IxDyn};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use ticket::graph::builder::{Attr, GraphBuilder};
use ticket::train::{Device, Optimizer, Params, Tensor, Worker, WorkerOptions};
use ticket::Error;

const BATCH: usize = 8;
const HW: usize = 16;
const MID: usize = 4;
const OUT: usize = 2;

fn train_python() -> PathBuf {
    let p = std::env::var_os("TICKET_TRAIN_PYTHON")
        .map(PathBuf::from)
        .expect("TICKET_TRAIN_PYTHON is not set: run the tests through tools/test.sh (or source tools/env.sh)");
    assert!(p.exists(), "TICKET_TRAIN_PYTHON={} does not exist: run tools/setup.sh", p.display());
    p
}

fn start() -> Worker {
    Worker::start(&train_python(), Device::Cpu).expect("start the training worker")
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// A 0/1 mask keeping about half the entries, and weights zeroed where it is 0 (as pruning does).
fn masked_weights(n: usize, seed: u64, scale: f32) -> (Vec<f32>, Vec<f32>) {
    let mask: Vec<f32> = values(n, seed + 100).iter().map(|&v| if v > 0.0 { 1.0 } else { 0.0 }).collect();
    let w = values(n, seed).iter().zip(&mask).map(|(v, m)| v * scale * m).collect();
    (w, mask)
}

/// x [8,3,16,16] → Conv(W1·M1) → Relu → Conv(W2·M2) → mean over H, W → y [8,2]; loss = mean((y − t)²).
/// `mid` changes the hidden width, which makes "another graph" for the mismatch test.
fn toy_graph(dir: &Path, name: &str, mid: usize) -> PathBuf {
    let mut b = GraphBuilder::new(name);
    let x = b.input("x", &[BATCH as i64, 3, HW as i64, HW as i64]);
    let t = b.input("t", &[BATCH as i64, OUT as i64]);
    let (w1, m1) = masked_weights(mid * 3 * 9, 1, 0.4);
    let (w2, m2) = masked_weights(OUT * mid * 9, 2, 0.4);
    let w1 = b.f32_init("W1", &[mid, 3, 3, 3], &w1);
    let m1 = b.f32_init("M1", &[mid, 3, 3, 3], &m1);
    let w2 = b.f32_init("W2", &[OUT, mid, 3, 3], &w2);
    let m2 = b.f32_init("M2", &[OUT, mid, 3, 3], &m2);
    let w1e = b.node("Mul", &[&w1, &m1], "W1_eff", vec![]);
    let c1 = b.node("Conv", &[&x, &w1e], "conv1", vec![("pads", Attr::Ints(vec![1, 1, 1, 1]))]);
    let r1 = b.node("Relu", &[&c1], "relu1", vec![]);
    let w2e = b.node("Mul", &[&w2, &m2], "W2_eff", vec![]);
    let c2 = b.node("Conv", &[&r1, &w2e], "conv2", vec![("pads", Attr::Ints(vec![1, 1, 1, 1]))]);
    let y = b.node("ReduceMean", &[&c2], "y_value", vec![("axes", Attr::Ints(vec![2, 3])), ("keepdims", Attr::Int(0))]);
    let d = b.node("Sub", &[&y, &t], "diff", vec![]);
    let d2 = b.node("Mul", &[&d, &d], "diff_sq", vec![]);
    let loss = b.node("ReduceMean", &[&d2], "loss_value", vec![("keepdims", Attr::Int(0))]);
    b.output(&loss, "loss");
    b.output(&y, "y");
    let path = dir.join(format!("{name}.onnx"));
    let bytes = prost::Message::encode_to_vec(&b.finish());
    std::fs::write(&path, bytes).unwrap();
    path
}

fn batch(seed: u64) -> Vec<(&'static str, Tensor)> {
    let x = ArrayD::from_shape_vec(IxDyn(&[BATCH, 3, HW, HW]), values(BATCH * 3 * HW * HW, seed)).unwrap();
    let t = ArrayD::from_shape_vec(IxDyn(&[BATCH, OUT]), values(BATCH * OUT, seed + 7)).unwrap();
    vec![("x", x.into()), ("t", t.into())]
}

const TRAINABLE: &[&str] = &["W1", "W2"];
const MASKS: &[&str] = &["M1", "M2"];

/// Worker with the toy graph's artifacts open; returns the artifact folder.
fn open_toy(dir: &Path, mid: usize) -> (Worker, PathBuf) {
    let model = toy_graph(dir, &format!("toy{mid}"), mid);
    let mut w = start();
    let art = dir.join(format!("artifacts{mid}"));
    let a = w.generate_artifacts(&model, TRAINABLE, MASKS, Optimizer::AdamW, &art).expect("generate artifacts");
    assert!(a.training_model.is_file() && a.eval_model.is_file() && a.optimizer_model.is_file() && a.checkpoint.is_file());
    let info = w.open(&art, None).expect("open artifacts");
    assert_eq!(info.train_outputs, ["loss", "y"]);
    assert_eq!(info.params.iter().filter(|p| p.requires_grad).count(), 2);
    w.set_lr(0.01).unwrap();
    (w, art)
}

fn step(w: &mut Worker, inputs: &[(&str, Tensor)]) -> f32 {
    let out = w.train_step(inputs).expect("train step");
    w.optimizer_step().expect("optimizer step");
    w.lazy_reset_grad().expect("reset grad");
    out.loss
}

/// Every entry where the mask is 0: (W value, W·M value).
fn masked_entries(p: &Params, w: &str, m: &str) -> Vec<(f32, f32)> {
    p[w].iter().zip(p[m].iter()).filter(|(_, &m)| m == 0.0).map(|(&w, &m)| (w, w * m)).collect()
}

fn assert_masked_zero(p: &Params, context: &str) {
    for (w, m) in [("W1", "M1"), ("W2", "M2")] {
        let entries = masked_entries(p, w, m);
        assert!(!entries.is_empty(), "{context}: {m} masks nothing");
        assert!(entries.iter().all(|&(w, wm)| w == 0.0 && wm == 0.0), "{context}: {w} is not exactly 0 where {m} is 0");
    }
}

#[test]
fn masked_training_lowers_loss_and_keeps_pruned_weights_zero_in_checkpoints_and_export() {
    let dir = common::tempdir();
    let (mut w, art) = open_toy(dir.path(), MID);
    assert_eq!(w.versions().onnxruntime, "1.19.2");
    let data = batch(11);
    let mut step_ms = Vec::new();
    let losses: Vec<f32> = (0..20)
        .map(|_| {
            let started = Instant::now();
            let loss = step(&mut w, &data);
            step_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            loss
        })
        .collect();
    step_ms.sort_by(f64::total_cmp);
    eprintln!("toy graph: median {:.2} ms per train + optimizer + reset round trip; loss {} → {}", step_ms[10], losses[0], losses[19]);
    assert!(losses[19] < 0.9 * losses[0], "20 AdamW steps did not lower the loss: {losses:?}");

    for with_optimizer in [true, false] {
        let ck = dir.path().join(format!("ck_{with_optimizer}"));
        w.save_checkpoint(&ck, with_optimizer).unwrap();
        w.load_checkpoint(&ck).expect("reload the saved checkpoint");
        assert_masked_zero(&w.get_params(None).unwrap(), &format!("checkpoint {}", ck.display()));
    }

    let exported = dir.path().join("inference.onnx");
    w.export(&exported, &["y"]).unwrap();
    let model = ticket::onnx::OnnxModel::load(&exported).unwrap();
    assert_eq!(model.graph().output.iter().map(|o| o.name()).collect::<Vec<_>>(), ["y"]);
    let init = |name: &str| model.f32_values(model.initializer(name).unwrap_or_else(|| panic!("{name} not in the export"))).unwrap();
    for (wn, mn) in [("W1", "M1"), ("W2", "M2")] {
        let (wv, mv) = (init(wn), init(mn));
        let masked: Vec<f32> = wv.iter().zip(&mv).filter(|(_, &m)| m == 0.0).map(|(&w, _)| w).collect();
        assert!(!masked.is_empty() && masked.iter().all(|&v| v == 0.0), "{wn} in the exported model is not 0 where {mn} is 0");
        assert!(wv.iter().zip(&mv).any(|(&w, &m)| m == 1.0 && w != 0.0));
    }
    // The artifacts' initial checkpoint is untouched by training.
    let fresh = {
        let mut w2 = start();
        w2.open(&art, None).unwrap();
        w2.get_params(Some(&["W1"])).unwrap()
    };
    assert_ne!(fresh["W1"], w.get_params(Some(&["W1"])).unwrap()["W1"]);
    w.shutdown().unwrap();
}

#[test]
fn new_mask_between_rounds_needs_no_new_artifacts_and_optimizer_reset_keeps_it_zero() {
    let dir = common::tempdir();
    let (mut w, _) = open_toy(dir.path(), MID);
    let data = batch(12);
    for _ in 0..5 {
        step(&mut w, &data);
    }
    // Round 2: prune the smaller half of the surviving W1 entries; zero W there, as pruning does.
    let mut p = w.get_params(None).unwrap();
    let mut alive: Vec<f32> = p["W1"].iter().zip(p["M1"].iter()).filter(|(_, &m)| m == 1.0).map(|(w, _)| w.abs()).collect();
    alive.sort_by(f32::total_cmp);
    let cut = alive[alive.len() / 2];
    let new_mask = p["M1"].mapv(|m| m) * p["W1"].mapv(|w| if w.abs() >= cut { 1.0 } else { 0.0 });
    let newly_masked = p["M1"].iter().zip(new_mask.iter()).filter(|(&a, &b)| a == 1.0 && b == 0.0).count();
    assert!(newly_masked > 0);
    let new_w = &p["W1"] * &new_mask;
    let update: Params = [("M1".to_string(), new_mask.clone()), ("W1".to_string(), new_w)].into_iter().collect();
    w.set_params(&update).expect("write the new mask");
    p = w.get_params(None).unwrap();
    assert_eq!(p["M1"], new_mask, "set_params did not write the mask");

    // Without a reset, Adam's moments keep moving W where the new mask is 0 (W·M stays 0 all the same).
    let reset_ck = dir.path().join("round2_start");
    w.save_checkpoint(&reset_ck, false).unwrap();
    step(&mut w, &data);
    let drifted = w.get_params(None).unwrap();
    let moved = masked_entries(&drifted, "W1", "M1").iter().filter(|(w, _)| *w != 0.0).count();
    assert!(moved > 0, "expected Adam moments to survive set_params (docs/engine-facts.md)");
    assert!(masked_entries(&drifted, "W1", "M1").iter().all(|&(_, wm)| wm == 0.0));

    // With the reset (reload without optimizer state), W stays exactly 0 under the new mask.
    w.load_checkpoint(&reset_ck).unwrap();
    let losses: Vec<f32> = (0..5).map(|_| step(&mut w, &data)).collect();
    assert!(losses.iter().all(|l| l.is_finite()));
    assert_masked_zero(&w.get_params(None).unwrap(), "round 2 after an optimizer reset");
}

#[test]
fn rewind_restores_parameters_exactly_and_optimizer_reset_replays_the_first_step() {
    let dir = common::tempdir();
    let (mut w, _) = open_toy(dir.path(), MID);
    let data = batch(13);
    let start_ck = dir.path().join("start");
    w.save_checkpoint(&start_ck, false).unwrap();
    let p0 = w.get_params(None).unwrap();
    let first_loss = step(&mut w, &data);
    let p1 = w.get_params(None).unwrap();
    for _ in 0..4 {
        step(&mut w, &data);
    }
    let p5 = w.get_params(None).unwrap();
    assert_ne!(p5["W1"], p1["W1"]);

    // Rewind: parameters only, bit for bit.
    w.set_params(&p0).unwrap();
    assert_eq!(w.get_params(None).unwrap(), p0, "rewind is not exact");
    // The moments survived the rewind, so the replayed step differs from the fresh first step…
    assert_eq!(step(&mut w, &data), first_loss, "the same parameters must give the same loss");
    assert_ne!(w.get_params(None).unwrap()["W1"], p1["W1"], "Adam state should have survived set_params");
    // …and after reloading a checkpoint saved without optimizer state it equals the fresh run's first step.
    w.load_checkpoint(&start_ck).unwrap();
    assert_eq!(w.get_params(None).unwrap(), p0);
    assert_eq!(step(&mut w, &data), first_loss);
    assert_eq!(w.get_params(None).unwrap(), p1, "the first step after an optimizer reset differs from a fresh run's");
}

#[test]
fn nan_loss_is_a_check_error_and_leaves_parameters_and_checkpoint_intact() {
    let dir = common::tempdir();
    let (mut w, _) = open_toy(dir.path(), MID);
    let data = batch(14);
    step(&mut w, &data);
    let ck = dir.path().join("good");
    w.save_checkpoint(&ck, true).unwrap();
    let ck_bytes = std::fs::read(&ck).unwrap();
    let before = w.get_params(None).unwrap();

    let mut bad = batch(14);
    if let Tensor::F32(x) = &mut bad[0].1 {
        x[[0, 0, 0, 0]] = f32::NAN;
    }
    let err = w.train_step(&bad).expect_err("a NaN input must not train");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, Error::Check(_)), "{msg}");
    assert!(msg.contains("non-finite") && msg.contains("NaN") && msg.contains(&ck.display().to_string()), "{msg}");
    // The poisoned gradients cannot reach the parameters.
    let refused = w.optimizer_step().expect_err("optimizer_step after a NaN loss must be refused").to_string();
    assert!(refused.contains("non-finite"), "{refused}");
    assert_eq!(w.get_params(None).unwrap(), before);
    assert_eq!(std::fs::read(&ck).unwrap(), ck_bytes, "the last checkpoint changed");
    // Training goes on from there.
    let loss = step(&mut w, &data);
    assert!(loss.is_finite());
    assert!(w.get_params(None).unwrap()["W1"].iter().all(|v| v.is_finite()));
}

#[test]
fn crashed_worker_is_a_runtime_error_with_its_stderr() {
    let mut w = start();
    let err = w.crash_for_test().expect_err("the worker exits without answering");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, Error::Runtime(_)), "{msg}");
    assert!(msg.contains("died during _crash (exit status 17)") && msg.contains("_crash requested"), "{msg}");
    let again = w.set_lr(0.1).expect_err("a dead worker cannot answer").to_string();
    assert!(again.contains("no longer running"), "{again}");
}

#[test]
fn killed_worker_is_a_runtime_error() {
    let dir = common::tempdir();
    let (mut w, _) = open_toy(dir.path(), MID);
    let status = std::process::Command::new("kill").args(["-9", &w.pid().to_string()]).status().unwrap();
    assert!(status.success());
    let err = w.train_step(&batch(15)).expect_err("the worker was killed");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, Error::Runtime(_)) && msg.contains("signal 9") && msg.contains("train_step"), "{msg}");
}

#[test]
fn hung_worker_is_killed_after_its_deadline() {
    let mut w = start();
    w.set_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let err = w.sleep_for_test(60.0).expect_err("a hung worker must time out");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(started.elapsed() < Duration::from_secs(10), "the deadline was not kept");
    assert!(matches!(err, Error::Runtime(_)) && msg.contains("did not answer _sleep within 1 s"), "{msg}");
    assert!(w.optimizer_step().unwrap_err().to_string().contains("no longer running"));
}

/// A worker stopped (SIGSTOP) for longer than its deadline is not taken for a hung one: the time it could not run
/// does not count, and once continued it answers.
#[test]
fn stopped_worker_is_waited_for() {
    let mut w = start();
    w.set_timeout(Duration::from_secs(1));
    let pid = w.pid().to_string();
    let signal = move |sig: &str| assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
    signal("-STOP");
    let resume = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        signal("-CONT");
    });
    let started = Instant::now();
    w.sleep_for_test(0.2).expect("a stopped worker answers once it runs again");
    assert!(started.elapsed() >= Duration::from_secs(3), "it answered while stopped");
    resume.join().unwrap();
    w.sleep_for_test(0.01).expect("and goes on answering");
}

#[test]
fn missing_or_wrong_python_says_how_to_set_up() {
    let err = Worker::start(Path::new("/nonexistent/.venv-train/bin/python"), Device::Cpu).err().expect("no such python");
    assert!(matches!(err, Error::Runtime(_)) && err.to_string().contains("run tools/setup.sh"), "{err}");

    // The checking venv has `onnxruntime` (inference) but not its training API.
    if let Some(py) = std::env::var_os("TICKET_PYTHON").map(PathBuf::from).filter(|p| p.exists()) {
        let err = Worker::start(&py, Device::Cpu).err().expect("the inference venv cannot train");
        let msg = err.to_string();
        eprintln!("{msg}");
        assert!(matches!(err, Error::Runtime(_)) && msg.contains("no training API") && msg.contains("run tools/setup.sh"), "{msg}");
    }

    // The training venv is the CPU build: asking for CUDA is refused with the way out.
    let err = Worker::start(&train_python(), Device::Cuda).err().expect("the CPU venv has no CUDA provider");
    assert!(err.to_string().contains("requirements-train-cuda.txt"), "{err}");
}

#[test]
fn checkpoint_from_another_graph_is_refused_and_the_session_survives() {
    let dir = common::tempdir();
    let other_model = toy_graph(dir.path(), "other", MID + 2);
    let (mut w, art) = open_toy(dir.path(), MID);
    let other_art = dir.path().join("other_artifacts");
    w.generate_artifacts(&other_model, TRAINABLE, MASKS, Optimizer::AdamW, &other_art).unwrap();
    // generate_artifacts does not disturb the open session.
    let data = batch(16);
    step(&mut w, &data);

    let foreign = other_art.join("checkpoint");
    let err = w.load_checkpoint(&foreign).expect_err("a checkpoint of another graph must not load");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, Error::Input(_)) && msg.contains("does not match") && msg.contains("'W1' [6, 3, 3, 3] vs [4, 3, 3, 3]"), "{msg}");
    step(&mut w, &data); // the previous session is still open

    let mut fresh = start();
    let err = fresh.open(&art, Some(&foreign)).expect_err("open with a foreign checkpoint");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn bad_requests_are_input_errors_and_the_worker_goes_on() {
    let dir = common::tempdir();
    let mut w = start();
    let err = w.train_step(&batch(17)).expect_err("nothing is open");
    assert!(matches!(err, Error::Input(_)) && err.to_string().contains("send 'open' first"), "{err}");

    let model = toy_graph(dir.path(), "toy", MID);
    let err = w.generate_artifacts(&model, &["W1", "nope"], MASKS, Optimizer::Sgd, &dir.path().join("a")).unwrap_err();
    assert!(err.to_string().contains("'nope' is not an initializer"), "{err}");
    let art = dir.path().join("sgd");
    w.generate_artifacts(&model, TRAINABLE, MASKS, Optimizer::Sgd, &art).unwrap();
    w.open(&art, None).unwrap();

    let mut wrong_shape = batch(17);
    wrong_shape[1].1 = ArrayD::<f32>::zeros(IxDyn(&[BATCH, OUT + 1])).into();
    let err = w.train_step(&wrong_shape).unwrap_err();
    assert!(matches!(err, Error::Input(_)) && err.to_string().contains("input 't' has shape [8, 3]"), "{err}");
    let err = w.train_step(&batch(17)[..1]).unwrap_err();
    assert!(err.to_string().contains("missing ['t']"), "{err}");
    let err = w.set_params(&[("W1".to_string(), ArrayD::<f32>::zeros(IxDyn(&[1])))].into_iter().collect()).unwrap_err();
    assert!(err.to_string().contains("parameter 'W1'"), "{err}");
    let err = w.load_checkpoint(&dir.path().join("missing_checkpoint")).unwrap_err();
    assert!(matches!(err, Error::Input(_)) && err.to_string().contains("checkpoint not found"), "{err}");

    // SGD trains too, and eval_step runs the eval model without touching parameters.
    let data = batch(18);
    let before = w.get_params(None).unwrap();
    let eval = w.eval_step(&data).unwrap();
    assert_eq!(eval.get("y").unwrap().shape(), [BATCH, OUT]);
    assert_eq!(w.get_params(None).unwrap(), before);
    w.set_lr(0.05).unwrap();
    let first = step(&mut w, &data);
    let later = (0..10).map(|_| step(&mut w, &data)).last().unwrap();
    assert!(later < first, "SGD did not lower the loss: {first} → {later}");
    assert!((eval.loss - first).abs() < 1e-6, "eval and train losses differ on the same parameters");
}

#[test]
fn worker_script_option_and_versions() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/train_worker.py");
    let options = WorkerOptions { script: Some(script), ..WorkerOptions::default() };
    let w = Worker::start_with(&train_python(), Device::Cpu, options).unwrap();
    let v = w.versions();
    assert_eq!(v.protocol, ticket::train::protocol::PROTOCOL_VERSION);
    assert!(v.providers.iter().any(|p| p == "CPUExecutionProvider"), "{v:?}");
    w.shutdown().unwrap();
}

#[test]
fn frames_round_trip_values_order_and_layout() {
    use ticket::train::protocol::{encode_frame, read_frame};
    let a = Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0, -2.5, f32::NAN, 0.0, 1e-30, 7.0]).unwrap());
    // A transposed view goes on the wire in logical order, not memory order.
    let t = ndarray::Array2::from_shape_vec((2, 2), vec![1i64, 2, 3, 4]).unwrap().reversed_axes().into_dyn();
    let b = Tensor::I64(t.clone());
    let mut header = serde_json::Map::new();
    header.insert("cmd".into(), "x".into());
    let bytes = encode_frame(header, &[("a", &a), ("b", &b)]);
    let frame = read_frame(&mut &bytes[..]).unwrap().unwrap();
    assert_eq!(frame.header["cmd"], "x");
    assert_eq!(frame.tensors[1], ("b".to_string(), Tensor::I64(t)));
    let got = frame.tensors[0].1.as_f32().unwrap();
    assert!(got[[1, 0]] == 0.0 && got[[0, 2]].is_nan() && got[[1, 1]] == 1e-30);
    // EOF before a frame is the end; EOF inside one is an error.
    assert!(read_frame(&mut &[][..]).unwrap().is_none());
    assert!(read_frame(&mut &bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn unreadable_frames_get_an_error_reply_not_a_hang() {
    use std::io::Write;
    use ticket::train::protocol::read_frame;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/train_worker.py");
    let run = |input: &[u8]| {
        let mut child = std::process::Command::new(train_python())
            .arg(&script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap(); // and closes stdin
        let reply = read_frame(child.stdout.as_mut().unwrap()).unwrap();
        (reply, child.wait().unwrap().code())
    };
    // A header that is not JSON: the stream cannot be resynchronised, so one error reply and exit 2.
    let mut garbage = 9u32.to_le_bytes().to_vec();
    garbage.extend_from_slice(b"not json!");
    let (reply, code) = run(&garbage);
    let reply = reply.expect("an error reply");
    assert_eq!(reply.header["ok"], false);
    assert!(reply.header["error"]["message"].as_str().unwrap().contains("not JSON"), "{:?}", reply.header);
    assert_eq!(code, Some(2));
    // An unknown command is answered and the worker goes on until stdin closes (then exits 0).
    let frame = ticket::train::protocol::encode_frame(serde_json::json!({"cmd": "fly"}).as_object().unwrap().clone(), &[]);
    let (reply, code) = run(&frame);
    let reply = reply.unwrap();
    assert!(reply.header["error"]["message"].as_str().unwrap().contains("unknown command 'fly'"), "{:?}", reply.header);
    assert_eq!(code, Some(0));
}

/// conv → BatchNormalization (frozen statistics) → mean; `exported_in_train_mode` gives the node
/// training_mode=1 and its running-statistics outputs, as torch's exporter writes a model in train mode.
fn batchnorm_graph(dir: &Path, exported_in_train_mode: bool) -> PathBuf {
    let mut b = GraphBuilder::new("bn");
    let x = b.input("x", &[2, 3, 8, 8]);
    let w = b.f32_init("W", &[4, 3, 3, 3], &values(4 * 27, 3));
    let scale = b.f32_init("bn.scale", &[4], &[1.0, 0.5, 2.0, 1.0]);
    let bias = b.f32_init("bn.bias", &[4], &[0.1, 0.2, 0.3, 0.4]);
    let mean = b.f32_init("bn.mean", &[4], &[0.5, -0.5, 0.0, 1.0]);
    let var = b.f32_init("bn.var", &[4], &[1.0, 2.0, 0.5, 1.5]);
    let c = b.node("Conv", &[&x, &w], "conv", vec![("pads", Attr::Ints(vec![1, 1, 1, 1]))]);
    let bn = b.node(
        "BatchNormalization",
        &[&c, &scale, &bias, &mean, &var],
        "bn",
        vec![("training_mode", Attr::Int(exported_in_train_mode as i64))],
    );
    let sq = b.node("Mul", &[&bn, &bn], "sq", vec![]);
    let loss = b.node("ReduceMean", &[&sq], "loss_value", vec![("keepdims", Attr::Int(0))]);
    b.output(&loss, "loss");
    let mut model = b.finish();
    if exported_in_train_mode {
        let node = model.graph.as_mut().unwrap().node.iter_mut().find(|n| n.op_type() == "BatchNormalization").unwrap();
        node.output.extend(["bn.running_mean".to_string(), "bn.running_var".to_string()]);
    }
    let path = dir.join(format!("bn_{exported_in_train_mode}.onnx"));
    std::fs::write(&path, prost::Message::encode_to_vec(&model)).unwrap();
    path
}

#[test]
fn batchnorm_eval_model_is_repaired_and_training_uses_batch_statistics() {
    let dir = common::tempdir();
    let mut w = start();
    let x = ArrayD::from_shape_vec(IxDyn(&[2, 3, 8, 8]), values(2 * 3 * 64, 4)).unwrap();
    for train_mode in [true, false] {
        let art = dir.path().join(format!("bn_art_{train_mode}"));
        let a = w
            .generate_artifacts(
                &batchnorm_graph(dir.path(), train_mode),
                &["W"],
                &["bn.scale", "bn.bias", "bn.mean", "bn.var"],
                Optimizer::AdamW,
                &art,
            )
            .unwrap();
        // ORT 1.19's generator leaves the running-statistics outputs on the eval model's BatchNormalization
        // (now training_mode=0), which ORT then refuses to load; the worker drops them.
        assert_eq!(a.eval_batchnorm_fixed, usize::from(train_mode));
        w.open(&art, None).unwrap();
        let inputs = [("x", Tensor::from(x.clone()))];
        let eval = w.eval_step(&inputs).expect("the eval model loads and runs").loss;
        let train = w.train_step(&inputs).unwrap().loss;
        // The trap for training graphs: ORT's training model turns every BatchNormalization into
        // BatchNormInternal with training_mode=1, i.e. batch statistics, whatever the source said. Frozen
        // BatchNorm (torchvision's detectors) must be emitted as Mul + Add to train as it infers.
        assert!((train - eval).abs() > 0.1 * eval.abs(), "train {train} vs eval {eval}: expected batch statistics in training");
    }
}
