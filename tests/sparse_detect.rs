//! The sparse path end to end: a layer-wise 80% ticket of each detector fixture (Faster, Mask, Keypoint R-CNN)
//! detects the same with `--kernels sparse` as with `--kernels dense` — same labels, scores within 1e-4, boxes
//! and keypoints within 1e-3 relative, mask IoU ≥ 0.99 — and the stage graphs really use the sparse ops.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use ticket::graph::stages::{self, Inference};
use ticket::model::ModelState;
use ticket::sparse::{Kernels, LayerShape};

fn write_images(dir: &Path) -> Vec<PathBuf> {
    noise_images(dir, &[(128, 128), (160, 96)], 7)
}

fn detect(model: &Path, images: &[PathBuf], kernels: &str, out: &Path) -> Vec<serde_json::Value> {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"detect", &model, &"--kernels", &kernels, &"--threads", &"2", &"-o", &out];
    for i in images {
        args.push(i);
    }
    ticket_json(&args);
    serde_json::from_slice::<Vec<serde_json::Value>>(&std::fs::read(out).unwrap()).unwrap()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0)
}

fn mask_iou(a: &serde_json::Value, b: &serde_json::Value) -> f64 {
    let decode = |m: &serde_json::Value| {
        let (h, w) = (m["size"][0].as_u64().unwrap() as u32, m["size"][1].as_u64().unwrap() as u32);
        hotcoco::mask::decode(&hotcoco::mask::rle_from_string(m["counts"].as_str().unwrap(), h, w).unwrap())
    };
    let (a, b) = (decode(a), decode(b));
    let inter = a.iter().zip(&b).filter(|(x, y)| **x != 0 && **y != 0).count();
    let union = a.iter().zip(&b).filter(|(x, y)| **x != 0 || **y != 0).count();
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// Each dense detection has one sparse partner: same image and label, score within 1e-4, box within 1e-3.
fn same_detections(what: &str, dense: &[serde_json::Value], sparse: &[serde_json::Value]) {
    assert_eq!(dense.len(), sparse.len(), "{what}: detection counts");
    assert!(!dense.is_empty(), "{what}: the fixture detects nothing, so the comparison would prove nothing");
    let mut used = vec![false; sparse.len()];
    for d in dense {
        let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap();
        let partner = sparse.iter().enumerate().position(|(j, s)| {
            !used[j]
                && s["image_id"] == d["image_id"]
                && s["category_id"] == d["category_id"]
                && (f(s, "score") - f(d, "score")).abs() <= 1e-4
                && (0..4).all(|i| close(s["bbox"][i].as_f64().unwrap(), d["bbox"][i].as_f64().unwrap(), 1e-3))
        });
        let j = partner.unwrap_or_else(|| panic!("{what}: no sparse detection matches dense {d}"));
        used[j] = true;
        let s = &sparse[j];
        if let Some(m) = d.get("segmentation") {
            let iou = mask_iou(m, &s["segmentation"]);
            assert!(iou >= 0.99, "{what}: mask IoU {iou}");
        }
        if let Some(k) = d["keypoints"].as_array() {
            let ks = s["keypoints"].as_array().unwrap();
            assert!(
                k.iter().zip(ks).all(|(a, b)| close(a.as_f64().unwrap(), b.as_f64().unwrap(), 1e-3)),
                "{what}: keypoints {k:?} vs {ks:?}"
            );
        }
    }
}

#[test]
fn sparse_kernels_detect_the_same_as_dense_on_layerwise_tickets() {
    let dir = tempdir();
    let images = write_images(dir.path());
    for name in ["fasterrcnn_r18_fpn_voc", "maskrcnn_r18_fpn", "keypointrcnn_r50_fpn"] {
        let ticket_path = dir.path().join(format!("{name}_80.onnx"));
        ticket_json(&[&"prune", &fixture(&format!("{name}.onnx")), &"--scope", &"layer", &"--sparsity", &"0.8", &"-o", &ticket_path]);
        let dense = detect(&ticket_path, &images, "dense", &dir.path().join(format!("{name}_dense.json")));
        let sparse = detect(&ticket_path, &images, "sparse", &dir.path().join(format!("{name}_sparse.json")));
        same_detections(name, &dense, &sparse);
    }
}

#[test]
fn kernel_choice_decides_the_ops_of_the_stage_graphs() {
    let dir = tempdir();
    let ticket_path = dir.path().join("mask_80.onnx");
    ticket_json(&[&"prune", &fixture("maskrcnn_r18_fpn.onnx"), &"--scope", &"layer", &"--sparsity", &"0.8", &"-o", &ticket_path]);
    let state = ModelState::load(&ticket_path, None).unwrap();
    let count = |kernels: Kernels| {
        let mut p = Inference::new(&state, kernels);
        let graphs = [
            stages::backbone_rpn_with(&mut p, 128, 128).unwrap(),
            stages::box_stage_with(&mut p, 16).unwrap(),
            stages::mask_stage_with(&mut p, 4).unwrap(),
        ];
        let ops = |op: &str| graphs.iter().flat_map(|g| g.graph.as_ref().unwrap().node.iter()).filter(|n| n.op_type() == op).count();
        (ops("SparseConv"), ops("SparseGemm"), ops("Conv"), ops("Gemm"), p.notes.len())
    };
    let (sc, sg, c, g, notes) = count(Kernels::Sparse);
    // Every conv and linear layer of the network is sparse; the two Convs left are the mask predictor's
    // ConvTranspose rewrite, whose weights are built inside the graph.
    assert!(
        sc > 20 && sg == 4 && c == 1 && g == 0 && notes == 0,
        "sparse: {sc} SparseConv, {sg} SparseGemm, {c} Conv, {g} Gemm, {notes} notes"
    );
    let (sc, sg, c, g, _) = count(Kernels::Dense);
    assert!(sc == 0 && sg == 0 && c > 20 && g == 4, "dense: {sc} SparseConv, {sg} SparseGemm, {c} Conv, {g} Gemm");
    // At 20% density every conv is below the break-even of its class; the linears follow the Gemm break-even.
    let (sc_auto, sg_auto, _, g_auto, _) = count(Kernels::Auto);
    let wide = |inputs| usize::from(LayerShape::Gemm { inputs }.break_even() > 0.2);
    let fc6_inputs = state.weights.get("roi_heads.box_head.fc6.weight").unwrap().shape[1];
    let fc7_inputs = state.weights.get("roi_heads.box_head.fc7.weight").unwrap().shape[1];
    let gemms = wide(fc6_inputs) + 3 * wide(fc7_inputs);
    assert!(sc_auto > 20 && sg_auto == gemms && g_auto == 4 - gemms, "auto at 80% layer-wise: {sc_auto} SparseConv, {sg_auto} SparseGemm");
    // A dense model under auto runs the dense graphs.
    let dense = ModelState::load(&fixture("maskrcnn_r18_fpn.onnx"), None).unwrap();
    let mut p = Inference::new(&dense, Kernels::Auto);
    stages::backbone_rpn_with(&mut p, 128, 128).unwrap();
    stages::box_stage_with(&mut p, 16).unwrap();
    assert!(p.sparse_layers.is_empty(), "dense model under auto: {:?}", p.sparse_layers);
}

/// A layer-wise 80% ticket of `name` saved as .onnx and as .tkt, in `dir`.
fn ticket_files(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (onnx, tkt) = (dir.join(format!("{name}_80.onnx")), dir.join(format!("{name}_80.tkt")));
    ticket_json(&[
        &"prune",
        &fixture(&format!("{name}.onnx")),
        &"--scope",
        &"layer",
        &"--sparsity",
        &"0.8",
        &"-o",
        &onnx,
        &"--compact",
        &tkt,
    ]);
    (onnx, tkt)
}

#[test]
fn a_compact_ticket_detects_as_its_onnx_on_the_sparse_kernels() {
    let dir = tempdir();
    let images = write_images(dir.path());
    for name in ["fasterrcnn_r18_fpn_voc", "maskrcnn_r18_fpn", "keypointrcnn_r50_fpn"] {
        let (onnx, tkt) = ticket_files(dir.path(), name);
        for kernels in ["sparse", "auto"] {
            let from_onnx = detect(&onnx, &images, kernels, &dir.path().join(format!("{name}_{kernels}_onnx.json")));
            let from_tkt = detect(&tkt, &images, kernels, &dir.path().join(format!("{name}_{kernels}_tkt.json")));
            // The same non-zeros reach the same kernels, whichever file they were read from.
            assert_eq!(from_onnx, from_tkt, "{name}, --kernels {kernels}");
            same_detections(&format!("{name}, --kernels {kernels}"), &from_onnx, &from_tkt);
        }
    }
}

#[test]
fn a_channel_ticket_pruned_again_by_weight_runs_both_and_detects_the_same() {
    let dir = tempdir();
    let images = write_images(dir.path());
    for name in ["fasterrcnn_r18_fpn_voc", "maskrcnn_r18_fpn", "keypointrcnn_r50_fpn"] {
        // Half of every group's channels removed, then 80% of the remaining weights of every layer zeroed.
        let (narrow, ticket) = (dir.path().join(format!("{name}_ch.onnx")), dir.path().join(format!("{name}_ch_w80.tkt")));
        let ch = fixture(&format!("{name}.onnx"));
        let args: [&dyn AsRef<std::ffi::OsStr>; 12] =
            [&"prune", &ch, &"--structure", &"channel", &"--sparsity", &"0.5", &"--scope", &"layer", &"--round-to", &"1", &"-o", &narrow];
        ticket_json(&args);
        let weight_onnx = dir.path().join(format!("{name}_ch_w80.onnx"));
        ticket_json(&[&"prune", &narrow, &"--scope", &"layer", &"--sparsity", &"0.8", &"-o", &weight_onnx, &"--compact", &ticket]);
        let dense_state = ModelState::load(&fixture(&format!("{name}.onnx")), None).unwrap();
        let state = ModelState::load(&ticket, None).unwrap();
        let width = |s: &ModelState| s.weights.get("backbone.body.layer1.0.conv1.weight").unwrap().shape[0];
        assert!(width(&state) < width(&dense_state), "{name}: the channel ticket is narrower");
        let mut p = Inference::new(&state, Kernels::Auto);
        stages::backbone_rpn_with(&mut p, 128, 128).unwrap();
        stages::box_stage_with(&mut p, 16).unwrap();
        assert!(p.sparse_layers.len() > 10, "{name}: the remaining channels' masks run sparse: {:?}", p.sparse_layers);
        let dense = detect(&ticket, &images, "dense", &dir.path().join(format!("{name}_ch_dense.json")));
        let sparse = detect(&ticket, &images, "sparse", &dir.path().join(format!("{name}_ch_sparse.json")));
        same_detections(&format!("{name}, channel + weight ticket"), &dense, &sparse);
    }
}

#[test]
fn a_compact_ticket_reaches_the_sparse_ops_without_dense_weights() {
    let dir = tempdir();
    let (_, tkt) = ticket_files(dir.path(), "maskrcnn_r18_fpn");
    let state = ModelState::load(&tkt, None).unwrap();
    // Every pruned layer is held as the file stores it: bitmap and non-zero values.
    let convs: Vec<_> = state.prunable().filter(|w| w.shape.len() == 4 && w.shape[2] == w.shape[3] && w.shape[2] > 1).collect();
    assert!(convs.len() > 10 && convs.iter().all(|w| w.values.packed().is_some()), "pruned convs held packed");
    let mut p = Inference::new(&state, Kernels::Sparse);
    let graphs = [
        stages::backbone_rpn_with(&mut p, 128, 128).unwrap(),
        stages::box_stage_with(&mut p, 16).unwrap(),
        stages::mask_stage_with(&mut p, 4).unwrap(),
    ];
    let mut sparse_nodes = 0;
    for g in graphs.iter().map(|g| g.graph.as_ref().unwrap()) {
        let init = |name: &str| g.initializer.iter().find(|t| t.name() == name);
        for n in g.node.iter().filter(|n| n.op_type().starts_with("Sparse")) {
            sparse_nodes += 1;
            let shape = &n.attribute.iter().find(|a| a.name() == "weight_shape").expect("a packed weight").ints;
            let numel: i64 = shape.iter().product();
            let (bits, values) = (init(&n.input[1]).unwrap(), init(&n.input[2]).unwrap());
            assert_eq!(bits.data_type(), 2, "{}: the bitmap is uint8", n.name());
            assert_eq!(bits.dims, vec![(numel + 7) / 8], "{}", n.name());
            assert!(values.dims[0] < numel, "{}: {} values for {numel} weights", n.name(), values.dims[0]);
            // No initializer of the graph is as large as the dense weight.
            assert!(n.input[1..].iter().all(|i| init(i).is_none_or(|t| t.dims.iter().product::<i64>() < numel)), "{}", n.name());
        }
    }
    assert!(sparse_nodes > 20, "{sparse_nodes} sparse nodes");
    for w in &p.sparse_layers {
        assert!(graphs.iter().all(|g| g.graph.as_ref().unwrap().initializer.iter().all(|t| t.name() != w)), "{w}: a dense initializer");
    }
}

#[test]
fn a_corrupt_compact_ticket_is_refused_by_detect() {
    let dir = tempdir();
    let images = write_images(dir.path());
    let (_, tkt) = ticket_files(dir.path(), "fasterrcnn_r18_fpn_voc");
    let bytes = std::fs::read(&tkt).unwrap();
    let out = dir.path().join("o.json");
    // Cut short.
    let cut = dir.path().join("cut.tkt");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = run_err(&[&"detect", &cut, &images[0], &"-o", &out]);
    assert!(err.contains("cut.tkt"), "{err}");
    // A bitmap that sets one bit more than there are values.
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(k, v)| (k, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    let bits = tensors.iter_mut().find(|t| t.0.starts_with("bits/") && t.3.iter().any(|b| *b != 0xff)).unwrap();
    let byte = bits.3.iter().position(|b| *b != 0xff).unwrap();
    bits.3[byte] |= 1 << bits.3[byte].trailing_ones();
    let name = bits.0.trim_start_matches("bits/").to_string();
    let views = tensors.iter().map(|(k, d, s, b)| (k.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()));
    let bad = dir.path().join("bits.tkt");
    std::fs::write(&bad, safetensors::serialize(views, meta.metadata().clone()).unwrap()).unwrap();
    let err = run_err(&[&"detect", &bad, &images[0], &"-o", &out]);
    assert!(err.contains("bits.tkt") && err.contains(&name) && err.contains("fewer values than set bits"), "{err}");
    assert!(!out.exists());
}

#[test]
fn bad_kernels_value_is_exit_2() {
    let dir = tempdir();
    let images = write_images(dir.path());
    let out =
        ticket(&[&"detect", &fixture("fasterrcnn_r18_fpn_voc.onnx"), &images[0], &"--kernels", &"fast", &"-o", &dir.path().join("o.json")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'fast'"));
    assert!(!dir.path().join("o.json").exists());
}
