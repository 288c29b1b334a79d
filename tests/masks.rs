//! `ticket mask`: statistics, IoU between tickets, applying masks, and the ImageNet-ticket transfer of a
//! classifier's backbone mask onto a detector.
mod common;
use common::*;

#[test]
fn stats_and_iou_of_nested_global_masks() {
    let dir = tempdir();
    let model = fixture("maskrcnn_r18_fpn.onnx");
    let (m5, m8) = (dir.path().join("m5.safetensors"), dir.path().join("m8.safetensors"));
    let r5 = ticket_json(&[&"prune", &model, &"--sparsity", &"0.5", &"-o", &dir.path().join("p5.onnx"), &"--masks-out", &m5]);
    let r8 = ticket_json(&[&"prune", &model, &"--sparsity", &"0.8", &"-o", &dir.path().join("p8.onnx"), &"--masks-out", &m8]);
    let s = ticket_json(&[&"mask", &"stats", &m8]);
    assert_eq!(s["kept"], r8["prune"]["selected_kept"]);
    assert_eq!(s["numel"], r8["prune"]["selected_weights"]);
    assert_eq!(ticket_json(&[&"mask", &"iou", &m8, &m8])["iou"], 1.0);
    // Global magnitude masks of one model are nested, so IoU = |kept at 80%| / |kept at 50%|.
    let iou = ticket_json(&[&"mask", &"iou", &m5, &m8])["iou"].as_f64().unwrap();
    let expected = r8["prune"]["selected_kept"].as_f64().unwrap() / r5["prune"]["selected_kept"].as_f64().unwrap();
    assert!((iou - expected).abs() < 1e-12, "{iou} vs {expected}");
}

#[test]
fn applying_masks_reproduces_the_pruned_export() {
    let dir = tempdir();
    let model = fixture("keypointrcnn_r50_fpn.onnx");
    let (pruned, masks, applied) = (dir.path().join("p.onnx"), dir.path().join("m.safetensors"), dir.path().join("a.onnx"));
    ticket_json(&[&"prune", &model, &"--sparsity", &"0.9", &"--scope", &"layer", &"-o", &pruned, &"--masks-out", &masks]);
    let r = ticket_json(&[&"mask", &"apply", &model, &masks, &"-o", &applied, &"--verify"]);
    assert!(r["verify"].as_array().unwrap().iter().all(|d| d["max_abs_diff"] == 0.0));
    assert_eq!(std::fs::read(&applied).unwrap(), std::fs::read(&pruned).unwrap());
}

#[test]
fn classifier_backbone_masks_transfer_onto_a_detector() {
    let dir = tempdir();
    let (cls_masks, det_masks, det_out) =
        (dir.path().join("cls.safetensors"), dir.path().join("det.safetensors"), dir.path().join("det.onnx"));
    ticket_json(&[
        &"prune",
        &fixture("resnet18.onnx"),
        &"--sparsity",
        &"0.8",
        &"-o",
        &dir.path().join("cls.onnx"),
        &"--masks-out",
        &cls_masks,
    ]);
    let detector = fixture("fasterrcnn_r18_fpn_voc.onnx");
    let r = ticket_json(&[&"mask", &"transfer", &cls_masks, &"--to", &detector, &"-o", &det_masks]);
    assert_eq!(r["unused"], serde_json::json!(["fc.weight"]));
    let src = read_safetensors(&cls_masks);
    let dst = read_safetensors(&det_masks);
    assert_eq!(dst.len(), src.len() - 1);
    for (name, (shape, keep)) in &src {
        if name == "fc.weight" {
            continue;
        }
        assert_eq!(&dst[&format!("backbone.body.{name}")], &(shape.clone(), keep.clone()), "{name}");
    }
    // The transferred ticket applies to the detector: its backbone becomes sparse, the rest stays dense.
    ticket_json(&[&"mask", &"apply", &detector, &det_masks, &"-o", &det_out]);
    let i = ticket_json(&[&"inspect", &det_out]);
    for g in i["groups"].as_array().unwrap() {
        let s = g["sparsity"].as_f64().unwrap();
        if g["group"] == "base" {
            assert!(s > 0.5, "{g}");
        } else {
            assert_eq!(s, 0.0, "{g}");
        }
    }
    // A detector with another backbone refuses the mask by shape.
    let bad =
        ticket(&[&"mask", &"transfer", &cls_masks, &"--to", &fixture("maskrcnn_r50_fpn.onnx"), &"-o", &dir.path().join("bad.safetensors")]);
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
}

/// Task transfer (the seed's App. B): a Mask R-CNN ticket's mask moves onto another detector of the same
/// backbone (here the VOC Faster R-CNN, 21 classes) for everything up to the box head; the predictor and the
/// mask head stay with their task; the moved mask applies to the target and makes exactly those modules sparse.
#[test]
fn detector_masks_transfer_up_to_the_box_head() {
    let dir = tempdir();
    let (src_masks, dst_masks, out) =
        (dir.path().join("mask.safetensors"), dir.path().join("faster.safetensors"), dir.path().join("faster.onnx"));
    ticket_json(&[
        &"prune",
        &fixture("maskrcnn_r18_fpn.onnx"),
        &"--sparsity",
        &"0.8",
        &"-o",
        &dir.path().join("m.onnx"),
        &"--masks-out",
        &src_masks,
    ]);
    let target = fixture("fasterrcnn_r18_fpn_voc.onnx");
    let r = ticket_json(&[&"mask", &"transfer", &src_masks, &"--to", &target, &"-o", &dst_masks]);
    let src = read_safetensors(&src_masks);
    let dst = read_safetensors(&dst_masks);
    let unused: Vec<String> = r["unused"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert!(
        !unused.is_empty() && unused.iter().all(|n| n.starts_with("roi_heads.box_predictor.") || n.starts_with("roi_heads.mask_")),
        "{unused:?}"
    );
    assert_eq!(dst.len() + unused.len(), src.len());
    for (name, m) in &dst {
        assert!(["backbone.", "rpn.", "roi_heads.box_head."].iter().any(|p| name.starts_with(p)), "{name}");
        assert_eq!(m, &src[name], "{name} moved unchanged");
    }
    ticket_json(&[&"mask", &"apply", &target, &dst_masks, &"-o", &out]);
    for g in ticket_json(&[&"inspect", &out])["groups"].as_array().unwrap() {
        let s = g["sparsity"].as_f64().unwrap();
        if g["group"] == "box_predictor" {
            assert_eq!(s, 0.0, "{g}");
        } else {
            assert!(s > 0.0, "{g}");
        }
    }
}
