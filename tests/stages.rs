//! The emitted tract stage graphs compute what torchvision's own export computes: stage 1's FPN features and
//! RPN outputs, run in tract, equal the original full graph's intermediate tensors run in ONNX Runtime.
mod common;
use common::*;
use ndarray::{ArrayD, IxDyn};
use ticket::model::ModelState;
use ticket::onnx::proto::ValueInfoProto;
use ticket::runtime::{ort_check, tract_stage::TractStage};

fn image(h: usize, w: usize) -> ArrayD<f32> {
    let mut s = 7u64;
    ArrayD::from_shape_fn(IxDyn(&[3, h, w]), |_| {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    })
}

/// Runs the original export in ORT with the given intermediate tensors added as outputs.
fn original_intermediates(state: &ModelState, img: &ArrayD<f32>, names: &[String]) -> Vec<(String, ort_check::Output)> {
    let mut src = state.source.clone();
    let g = src.proto.graph.as_mut().unwrap();
    for n in names {
        g.output.push(ValueInfoProto { name: Some(n.clone()), ..Default::default() });
    }
    let bytes = src.encode_inline(&Default::default()).unwrap();
    ort_check::run(&bytes, &[("image".to_string(), img.clone())], "original").unwrap()
}

fn max_rel_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn stage1_matches_the_original_export() {
    for name in DETECTORS {
        let state = ModelState::import(&fixture(&format!("{name}.onnx"))).unwrap();
        let (h, w) = (128, 128);
        let img = image(h, w);
        let mean = [0.485f32, 0.456, 0.406];
        let std = [0.229f32, 0.224, 0.225];
        let mut norm = img.clone().into_shape_with_order(IxDyn(&[1, 3, h, w])).unwrap();
        for c in 0..3 {
            norm.slice_mut(ndarray::s![0, c, .., ..]).mapv_inplace(|v| (v - mean[c]) / std[c]);
        }
        let stage = TractStage::new("backbone_rpn", &ticket::graph::stages::backbone_rpn(&state, h, w).unwrap()).unwrap();
        let ours = stage.run(vec![norm]).unwrap();
        // (original tensor, our stage output) pairs.
        let mut pairs: Vec<(String, String)> =
            (0..4).map(|i| (format!("/backbone/fpn/layer_blocks.{i}/layer_blocks.{i}.0/Conv_output_0"), format!("feat_{i}"))).collect();
        pairs.push(("/backbone/fpn/extra_blocks/MaxPool_output_0".into(), "feat_4".into()));
        for l in 0..5 {
            let sfx = if l == 0 { String::new() } else { format!("_{l}") };
            pairs.push((format!("/rpn/head/cls_logits{sfx}/Conv_output_0"), format!("objectness_{l}")));
            pairs.push((format!("/rpn/head/bbox_pred{sfx}/Conv_output_0"), format!("deltas_{l}")));
        }
        let names: Vec<String> = pairs.iter().map(|p| p.0.clone()).collect();
        let theirs = original_intermediates(&state, &img, &names);
        for (t_name, o_name) in &pairs {
            let d = max_rel_diff(&ours.iter().find(|(k, _)| k == o_name).unwrap().1, &f32_output(&theirs, t_name));
            assert!(d < 1e-4, "{name} {o_name}: {d}");
        }
    }
}

fn f32_output(outs: &[(String, ort_check::Output)], name: &str) -> ArrayD<f32> {
    match outs.iter().find(|(k, _)| k == name).map(|(_, v)| v) {
        Some(ort_check::Output::F32(a)) => a.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

/// Each head stage, fed the RoI features the original export pooled, gives the original's head outputs.
#[test]
fn head_stages_match_the_original_export() {
    let cases: &[(&str, &str, &[(&str, &str)])] = &[
        (
            "fasterrcnn_r18_fpn_voc",
            "/roi_heads/box_roi_pool/ScatterElements_3_output_0",
            &[
                ("/roi_heads/box_predictor/cls_score/Gemm_output_0", "class_logits"),
                ("/roi_heads/box_predictor/bbox_pred/Gemm_output_0", "box_deltas"),
            ],
        ),
        (
            "maskrcnn_r18_fpn",
            "/roi_heads/mask_roi_pool/ScatterElements_3_output_0",
            &[("/roi_heads/mask_predictor/mask_fcn_logits/Conv_output_0", "mask_logits")],
        ),
        (
            "maskrcnn_r50_fpn",
            "/roi_heads/mask_roi_pool/ScatterElements_3_output_0",
            &[("/roi_heads/mask_predictor/mask_fcn_logits/Conv_output_0", "mask_logits")],
        ),
        (
            "keypointrcnn_r50_fpn",
            "/roi_heads/keypoint_roi_pool/ScatterElements_3_output_0",
            &[("/roi_heads/keypoint_predictor/Resize_output_0", "heatmaps")],
        ),
    ];
    for (name, pooled_name, outs) in cases {
        let state = ModelState::import(&fixture(&format!("{name}.onnx"))).unwrap();
        let mut names = vec![pooled_name.to_string()];
        names.extend(outs.iter().map(|o| o.0.to_string()));
        let theirs = original_intermediates(&state, &image(128, 128), &names);
        let pooled = f32_output(&theirs, pooled_name);
        let n = pooled.shape()[0];
        let graph = match outs[0].1 {
            "class_logits" => ticket::graph::stages::box_stage(&state, n),
            "mask_logits" => ticket::graph::stages::mask_stage(&state, n),
            _ => ticket::graph::stages::keypoint_stage(&state, n),
        }
        .unwrap();
        let ours = TractStage::new(outs[0].1, &graph).unwrap().run(vec![pooled]).unwrap();
        for (t_name, o_name) in *outs {
            let d = max_rel_diff(&ours.iter().find(|(k, _)| k == o_name).unwrap().1, &f32_output(&theirs, t_name));
            assert!(d < 1e-4, "{name} {o_name}: {d}");
        }
    }
}
