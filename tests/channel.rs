//! Channel tickets (`ticket prune --structure channel`, `prune::channel`): the channel-pruned Faster, Mask and
//! Keypoint R-CNN fixtures (R18 and R50) export, pass onnx.checker, run in ONNX Runtime and in the tract
//! detector; a 0% prune gives back the dense model exactly; the narrow model computes what the dense one does
//! with the removed channels zeroed at their producers; a channel ticket trains; bad input exits 2 and writes
//! nothing.
mod common;
use common::*;
use ndarray::{ArrayD, Axis, IxDyn};
use ticket::detect::pipeline::{DetectParams, Detector};
use ticket::graph::stages;
use ticket::model::ModelState;
use ticket::prune::channel::{prune_channels, zero_channels, ChannelParams};
use ticket::runtime::ort_check::{self, Output};
use ticket::runtime::tract_stage::TractStage;

fn image(h: usize, w: usize, seed: u64) -> ArrayD<f32> {
    let mut s = seed;
    ArrayD::from_shape_fn(IxDyn(&[3, h, w]), |_| {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    })
}

/// The fixtures were exported with min_size = max_size = 128 and box_score_thresh = 0.
fn params() -> DetectParams {
    let mut p = DetectParams { min_size: 128, max_size: 128, ..Default::default() };
    p.box_head.score_thresh = 0.0;
    p
}

fn half(round_to: usize) -> ChannelParams {
    ChannelParams { sparsity: 0.5, round_to, ..Default::default() }
}

fn max_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn channel_tickets_export_pass_the_checker_and_run_in_ort_and_tract() {
    let t = tempdir();
    let mut outputs = Vec::new();
    for name in DETECTORS {
        let out = t.path().join(format!("{name}.channel.onnx"));
        // --verify: ORT runs the ticket and the dense model with the removed channels zeroed, and they agree.
        let r = ticket_json(&[
            &"prune",
            &fixture(&format!("{name}.onnx")),
            &"--structure",
            &"channel",
            &"--sparsity",
            &"0.5",
            &"--round-to",
            &"2",
            &"-o",
            &out,
            &"--verify",
        ]);
        let p = &r["prune"];
        assert!(p["flops_removed"].as_f64().unwrap() > 0.4, "{name}: {p}");
        assert!(p["params_after"].as_u64().unwrap() < p["params_before"].as_u64().unwrap() / 2, "{name}: {p}");
        let verify = r["verify"].as_array().unwrap();
        assert!(
            verify.iter().any(|d| d["name"] == "boxes" && d["shape"][0].as_u64().unwrap() > 0),
            "{name}: ORT compared no detections: {verify:?}"
        );
        // The file is smaller, and tensors are physically narrower.
        assert!(r["sizes"]["output_bytes"].as_u64().unwrap() < r["sizes"]["input_bytes"].as_u64().unwrap());
        let ticket_state = ModelState::import(&out).unwrap();
        let dense = ModelState::import(&fixture(&format!("{name}.onnx"))).unwrap();
        assert!(ticket_state.weights.total() < dense.weights.total());
        assert_eq!(ticket_state.arch.kind, dense.arch.kind);
        // ORT runs the full export; the tract detector finds detections with the narrow stages.
        ticket_json(&[&"check", &out]);
        let mut det = Detector::new(ticket_state, params()).unwrap();
        let dets = det.detect(image(128, 128, 1).view().into_dimensionality().unwrap()).unwrap();
        assert!(!dets.labels.is_empty(), "{name}: the ticket detects nothing in tract");
        outputs.push(out);
    }
    let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = outputs.iter().map(|p| p as &dyn AsRef<std::ffi::OsStr>).collect();
    let checked = tool("check_onnx.py", &refs);
    assert_eq!(checked.lines().filter(|l| l.starts_with("ok ")).count(), DETECTORS.len(), "{checked}");
}

#[test]
fn a_zero_percent_channel_prune_reproduces_the_dense_model_exactly() {
    for name in DETECTORS {
        let dense = ModelState::import(&fixture(&format!("{name}.onnx"))).unwrap();
        let (same, report) = prune_channels(&dense, &ChannelParams { sparsity: 0.0, round_to: 1, ..Default::default() }).unwrap();
        assert_eq!(report.channels, report.channels_kept);
        assert_eq!(report.flops_removed, 0.0);
        let a = dense.source.encode_inline(&Default::default()).unwrap();
        let b = same.source.encode_inline(&Default::default()).unwrap();
        assert!(a == b, "{name}: a 0% prune changed the ONNX");
        let img = image(128, 128, 4);
        let oa = ort_check::run(&a, &[("image".into(), img.clone())], name).unwrap();
        let ob = ort_check::run(&b, &[("image".into(), img)], name).unwrap();
        for d in ort_check::compare(&oa, &ob) {
            assert!(d.same_shape && d.max_abs_diff == 0.0, "{name}: {d:?}");
        }
    }
}

/// Stage 1 (backbone, FPN, RPN head) in tract on the narrow model and on the dense model with the removed
/// channels zeroed: kept FPN channels agree, removed ones are exactly zero in the zeroed model, and the RPN
/// outputs agree. Then the whole ORT graph: same detections.
#[test]
fn the_narrow_model_equals_the_dense_one_with_the_removed_channels_zeroed() {
    for name in DETECTORS {
        let dense = ModelState::import(&fixture(&format!("{name}.onnx"))).unwrap();
        let (narrow, report) = prune_channels(&dense, &half(1)).unwrap();
        let zeroed = zero_channels(&dense, &report.groups).unwrap();
        let fpn_out = report.groups.iter().find(|g| g.name.starts_with("backbone.fpn.layer_blocks")).unwrap();
        assert!(fpn_out.kept < fpn_out.channels, "{name}: the FPN outputs were not pruned");
        let run = |s: &ModelState| {
            let stage = TractStage::new("stage 1", &stages::backbone_rpn(s, 128, 128).unwrap()).unwrap();
            stage.run(vec![image(128, 128, 7).insert_axis(Axis(0))]).unwrap()
        };
        let (a, b) = (run(&narrow), run(&zeroed));
        for ((na, va), (nb, vb)) in a.iter().zip(&b) {
            assert_eq!(na, nb);
            if na.starts_with("feat_") {
                let dropped: Vec<usize> = (0..fpn_out.channels).filter(|c| !fpn_out.keep.contains(c)).collect();
                assert!(
                    dropped.iter().all(|&c| vb.index_axis(Axis(1), c).iter().all(|&v| v == 0.0)),
                    "{name} {na}: a removed channel is not zero"
                );
                let kept = vb.select(Axis(1), &fpn_out.keep);
                let scale = kept.iter().fold(1f32, |m, v| m.max(v.abs()));
                assert!(max_diff(va, &kept) <= 1e-5 * scale, "{name} {na}: {}", max_diff(va, &kept));
            } else {
                let scale = vb.iter().fold(1f32, |m, v| m.max(v.abs()));
                assert!(max_diff(va, vb) <= 1e-5 * scale, "{name} {na}: {}", max_diff(va, vb));
            }
        }
        let img = image(128, 128, 9);
        let oa =
            ort_check::run(&narrow.source.encode_inline(&Default::default()).unwrap(), &[("image".into(), img.clone())], name).unwrap();
        let ob = ort_check::run(&zeroed.source.encode_inline(&Default::default()).unwrap(), &[("image".into(), img)], name).unwrap();
        let n = match oa.iter().find(|(n, _)| n == "labels") {
            Some((_, Output::I64(l))) => l.len(),
            o => panic!("{o:?}"),
        };
        assert!(n > 0, "{name}: nothing detected to compare");
        for d in ort_check::compare(&oa, &ob) {
            assert!(d.same_shape && d.max_abs_diff <= 1e-3, "{name}: {d:?}");
        }
    }
}

#[test]
fn importance_scope_and_modules_choose_the_channels() {
    let dense = ModelState::import(&fixture("maskrcnn_r50_fpn.onnx")).unwrap();
    // Layer scope keeps the same fraction of every group (rounded up to the multiple).
    let (_, r) = prune_channels(&dense, &ChannelParams { scope: ticket::prune::Scope::Layer, ..half(2) }).unwrap();
    for g in &r.groups {
        let raw = g.channels - g.channels / 2;
        assert_eq!(g.kept, (raw.div_ceil(2) * 2).min(g.channels), "{}", g.name);
    }
    // --modules fpn touches only FPN groups; BN importance prunes the backbone by FrozenBN scale.
    let (_, r) = prune_channels(&dense, &ChannelParams { modules: Some(vec!["fpn".into()]), ..half(1) }).unwrap();
    assert!(r.groups.iter().all(|g| (g.module == ticket::model::ModuleGroup::Fpn) == (g.kept < g.channels)), "{:?}", r.groups);
    let bn = ChannelParams { importance: ticket::prune::channel::Importance::Bn, scope: ticket::prune::Scope::Layer, ..half(1) };
    let (narrow, r) = prune_channels(&dense, &bn).unwrap();
    let stem = &r.groups[0];
    let scale = &dense.buffers["backbone.body.bn1.scale"].1;
    let mut order: Vec<usize> = (0..scale.len()).collect();
    order.sort_by(|&a, &b| scale[b].abs().total_cmp(&scale[a].abs()));
    let mut top: Vec<usize> = order[..stem.kept].to_vec();
    top.sort_unstable();
    assert_eq!(stem.keep, top, "BN importance keeps the largest |scale| of the stem");
    assert_eq!(narrow.buffers["backbone.body.bn1.scale"].0, vec![1, stem.kept, 1, 1]);
    // Round-to 8 on a fixture this narrow: groups under 8 channels stay whole, counts are multiples of 8.
    let (_, r) = prune_channels(&dense, &half(8)).unwrap();
    assert!(r.groups.iter().all(|g| g.kept == g.channels || g.kept % 8 == 0), "{:?}", r.groups);
}

#[test]
fn unstructured_masks_follow_the_kept_channels() {
    let t = tempdir();
    let masks = t.path().join("m.safetensors");
    let weight = t.path().join("w.onnx");
    ticket_json(&[&"prune", &fixture("maskrcnn_r18_fpn.onnx"), &"--sparsity", &"0.5", &"-o", &weight, &"--masks-out", &masks]);
    let out = t.path().join("c.onnx");
    let cm = t.path().join("cm.safetensors");
    ticket_json(&[
        &"prune",
        &fixture("maskrcnn_r18_fpn.onnx"),
        &"--masks",
        &masks,
        &"--structure",
        &"channel",
        &"--scope",
        &"layer",
        &"--sparsity",
        &"0.3",
        &"--round-to",
        &"1",
        &"-o",
        &out,
        &"--masks-out",
        &cm,
        &"--verify",
    ]);
    // The cut masks fit the narrow model and its zeros are where they say.
    let state = ModelState::load(&out, Some(&cm)).unwrap();
    for (name, m) in &state.masks.map {
        let w = state.weights.get(name).unwrap();
        assert!(w.values.dense().iter().zip(&m.keep).all(|(v, &k)| k == 1 || *v == 0.0), "{name}");
    }
    assert!(state.masks.kept() < state.masks.total());
}

#[test]
fn a_channel_ticket_trains_and_its_onnx_round_trips() {
    let t = tempdir();
    let data = t.path().join("data");
    let out = ticket(&[&"data", &"synth", &"--out", &data, &"--images", &"2", &"--seed", &"3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ticket_onnx = t.path().join("ticket.onnx");
    ticket_json(&[
        &"prune",
        &fixture("train/maskrcnn_r18_fpn_synth.onnx"),
        &"--structure",
        &"channel",
        &"--sparsity",
        &"0.4",
        &"--round-to",
        &"2",
        &"-o",
        &ticket_onnx,
    ]);
    let run = t.path().join("run");
    let r = ticket_json(&[
        &"train",
        &ticket_onnx,
        &"--coco",
        &data.join("annotations.json"),
        &"--steps",
        &"2",
        &"--batch",
        &"1",
        &"--warmup",
        &"1",
        &"-o",
        &run,
    ]);
    assert_eq!(r["steps"], 2);
    // The trained model keeps the narrow widths and runs in ORT and in the tract detector.
    let trained = ModelState::import(&run.join("model.onnx")).unwrap();
    let narrow = ModelState::import(&ticket_onnx).unwrap();
    for w in &narrow.weights.tensors {
        assert_eq!(trained.weights.get(&w.name).unwrap().shape, w.shape, "{}", w.name);
    }
    assert!(trained.weights.tensors.iter().zip(&narrow.weights.tensors).any(|(a, b)| a.values != b.values), "training changed nothing");
    ticket_json(&[&"check", &run.join("model.onnx")]);
    let dets = t.path().join("dets.json");
    ticket_json(&[&"detect", &run.join("model.onnx"), &data.join("images/000001.png"), &"-o", &dets]);
}

#[test]
fn bad_channel_prunes_exit_2_and_write_nothing() {
    let t = tempdir();
    let out = t.path().join("out.onnx");
    let model = fixture("maskrcnn_r18_fpn.onnx");
    let classifier = fixture("resnet18.onnx");
    // A detector whose names say nothing (every initializer renamed): a generic ONNX graph.
    let generic = t.path().join("generic.onnx");
    {
        use prost::Message;
        let mut m = ticket::onnx::proto::ModelProto::decode(&std::fs::read(&model).unwrap()[..]).unwrap();
        let g = m.graph.as_mut().unwrap();
        let inits: std::collections::HashSet<String> = g.initializer.iter().map(|t| t.name().to_string()).collect();
        // One number per initializer (names must stay unique: import refuses a name defined twice).
        let ids: std::collections::HashMap<String, usize> =
            g.initializer.iter().enumerate().map(|(i, t)| (t.name().to_string(), i)).collect();
        let rename = |s: &str| format!("net.p{}", ids[s]);
        for t in g.initializer.iter_mut() {
            t.name = Some(rename(t.name()));
        }
        fn visit(g: &mut ticket::onnx::proto::GraphProto, inits: &std::collections::HashSet<String>, rename: &dyn Fn(&str) -> String) {
            for n in g.node.iter_mut() {
                for i in n.input.iter_mut().filter(|i| inits.contains(i.as_str())) {
                    *i = rename(i);
                }
                for a in n.attribute.iter_mut() {
                    if let Some(sub) = a.g.as_mut() {
                        visit(sub, inits, rename);
                    }
                }
            }
        }
        visit(g, &inits, &rename);
        std::fs::write(&generic, m.encode_to_vec()).unwrap();
        assert_eq!(ticket_json(&[&"inspect", &generic])["arch"]["kind"], "generic");
    }
    let cases: Vec<(Vec<&dyn AsRef<std::ffi::OsStr>>, &str)> = vec![
        (
            vec![&"prune", &generic, &"--structure", &"channel", &"--sparsity", &"0.3", &"-o", &out],
            "generic ONNX model, whose channel coupling cannot be derived",
        ),
        (vec![&"prune", &classifier, &"--structure", &"channel", &"--sparsity", &"0.3", &"-o", &out], "coupling"),
        (vec![&"prune", &model, &"--structure", &"channel", &"--sparsity", &"0.97", &"--round-to", &"1", &"-o", &out], "every channel of"),
        (vec![&"prune", &model, &"--structure", &"channel", &"--sparsity", &"0.3", &"--round-to", &"0", &"-o", &out], "--round-to 0"),
        (vec![&"prune", &model, &"--structure", &"channel", &"--sparsity", &"1", &"-o", &out], "--sparsity 1"),
        (vec![&"prune", &model, &"--structure", &"channel", &"--sparsity", &"0.3", &"--rounds", &"3", &"-o", &out], "--rounds"),
        (vec![&"prune", &model, &"--structure", &"channel", &"--sparsity", &"0.3", &"--modules", &"nope", &"-o", &out], "nope"),
    ];
    for (args, needle) in cases {
        let o = ticket(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{needle}: {err}");
        assert!(err.contains(needle), "expected '{needle}' in: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(!out.exists(), "{needle}: an output was written");
    }
}

#[test]
fn detect_takes_threads_and_bench_detect_compares_tickets() {
    let t = tempdir();
    let model = fixture("fasterrcnn_r18_fpn_voc.onnx");
    let ticket_onnx = t.path().join("ticket.onnx");
    ticket_json(&[&"prune", &model, &"--structure", &"channel", &"--sparsity", &"0.5", &"--round-to", &"2", &"-o", &ticket_onnx]);
    let img = t.path().join("img.png");
    image::RgbImage::from_fn(96, 128, |x, y| image::Rgb([(x * 2) as u8, (y * 2) as u8, ((x + y) % 256) as u8])).save(&img).unwrap();
    // The same detections on one thread and on two (threading splits matmuls; sums may reorder slightly).
    let mut runs = Vec::new();
    for threads in ["1", "2"] {
        let out = t.path().join(format!("dets{threads}.json"));
        ticket_json(&[&"detect", &ticket_onnx, &img, &"-o", &out, &"--threads", &threads]);
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        runs.push(v.as_array().unwrap().len());
    }
    assert!(runs[0] > 0 && runs[0] == runs[1], "{runs:?}");
    let o = ticket(&[&"detect", &ticket_onnx, &img, &"-o", &t.path().join("x.json"), &"--threads", &"0"]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--threads 0"));
    // The benchmark's rows: ORT dense, tract dense, the ticket file, one in-memory ticket; FLOPs fall.
    let r = ticket_json(&[
        &"bench",
        &"detect",
        &model,
        &"--tickets",
        &ticket_onnx,
        &"--sparsities",
        &"0.3",
        &"--round-to",
        &"2",
        &"--size",
        &"128",
        &"--threads",
        &"1",
        &"--repeat",
        &"1",
    ]);
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{r}");
    assert_eq!(rows[0]["engine"], "ORT full graph");
    assert!(rows[2]["gflops"].as_f64().unwrap() < rows[1]["gflops"].as_f64().unwrap(), "{r}");
    assert!(rows.iter().all(|x| x["median_ms"].as_f64().unwrap() > 0.0 && x["detections"].as_u64().unwrap() > 0), "{r}");
}

#[test]
fn a_model_with_external_data_gives_a_checked_channel_ticket() {
    let t = tempdir();
    let out = t.path().join("ticket.onnx");
    let r = ticket_json(&[
        &"prune",
        &fixture("maskrcnn_r18_fpn_ext/model.onnx"),
        &"--structure",
        &"channel",
        &"--sparsity",
        &"0.5",
        &"--round-to",
        &"2",
        &"-o",
        &out,
        &"--verify",
    ]);
    assert!(r["prune"]["flops_removed"].as_f64().unwrap() > 0.4, "{r}");
    // Shrunk tensors are written inline; the ones left whole keep going to OUT.data.
    assert!(t.path().join("ticket.onnx.data").is_file());
    assert!(tool("check_onnx.py", &[&out]).starts_with("ok "));
    let dense = ModelState::import(&fixture("maskrcnn_r18_fpn.onnx")).unwrap();
    let (narrow, _) = prune_channels(&dense, &half(2)).unwrap();
    let written = ModelState::import(&out).unwrap();
    for w in &narrow.weights.tensors {
        assert_eq!(written.weights.get(&w.name).unwrap().values, w.values, "{}: same ticket from inline and external data", w.name);
    }
}
