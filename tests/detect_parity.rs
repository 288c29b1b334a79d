//! Detection on CPU with tract: the stage graphs plus Rust post-processing give the same detections as ONNX
//! Runtime running torchvision's full export of the same model on the same image.
mod common;
use common::*;
use ndarray::{ArrayD, IxDyn};
use ticket::detect::pipeline::{DetectParams, Detector};
use ticket::model::ModelState;
use ticket::runtime::ort_check::{self, Output};

fn image(h: usize, w: usize, seed: u64) -> ArrayD<f32> {
    let mut s = seed;
    ArrayD::from_shape_fn(IxDyn(&[3, h, w]), |_| {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    })
}

fn f32s(outs: &[(String, Output)], name: &str) -> ArrayD<f32> {
    match outs.iter().find(|(n, _)| n == name).map(|(_, o)| o) {
        Some(Output::F32(a)) => a.clone(),
        o => panic!("{name}: {o:?}"),
    }
}

fn i64s(outs: &[(String, Output)], name: &str) -> Vec<i64> {
    match outs.iter().find(|(n, _)| n == name).map(|(_, o)| o) {
        Some(Output::I64(a)) => a.iter().copied().collect(),
        o => panic!("{name}: {o:?}"),
    }
}

/// The fixtures were exported with min_size = max_size = 128 and box_score_thresh = 0 (random weights score low).
fn params() -> DetectParams {
    let mut p = DetectParams { min_size: 128, max_size: 128, ..Default::default() };
    p.box_head.score_thresh = 0.0;
    p
}

/// IoU of the masks thresholded at 0.5, leaving out pixels within 1e-4 of the threshold in either map: those
/// flip with rounding (a 12-pixel mask had one pixel at 0.50000006 against ORT's 0.5), which the separate
/// probability comparison covers.
fn mask_iou(a: ndarray::ArrayView2<f32>, b: ndarray::ArrayView2<f32>) -> f64 {
    let (mut i, mut u) = (0usize, 0usize);
    for (x, y) in a.iter().zip(b) {
        if (x - 0.5).abs() <= 1e-4 || (y - 0.5).abs() <= 1e-4 {
            continue;
        }
        let (x, y) = (*x > 0.5, *y > 0.5);
        i += (x && y) as usize;
        u += (x || y) as usize;
    }
    if u == 0 {
        1.0
    } else {
        i as f64 / u as f64
    }
}

#[test]
fn tract_detections_equal_ort_on_the_full_export() {
    for name in DETECTORS {
        let state = ModelState::import(&fixture(&format!("{name}.onnx"))).unwrap();
        let bytes = state.source.encode_inline(&Default::default()).unwrap();
        let mut det = Detector::new(state, params()).unwrap();
        for (h, w, seed) in [(128, 128, 1u64), (128, 128, 2), (96, 160, 3)] {
            let img = image(h, w, seed);
            let theirs = ort_check::run(&bytes, &[("image".into(), img.clone())], name).unwrap();
            let ours = det.detect(img.view().into_dimensionality().unwrap()).unwrap();
            let boxes = f32s(&theirs, "boxes");
            let scores = f32s(&theirs, "scores");
            let labels = i64s(&theirs, "labels");
            let n = labels.len();
            assert!(n > 0, "{name}: ORT found nothing to compare");
            assert_eq!(ours.labels.len(), n, "{name} {seed}: detection count");
            let scale = boxes.iter().fold(1f32, |m, v| m.max(v.abs()));
            // Scores agree to ~1e-5, so detections whose scores nearly tie may come out in swapped order: each
            // ORT detection is matched to an unused one of ours close by in rank, with the same label.
            let mut used = vec![false; n];
            let mut pair = vec![0usize; n];
            for i in 0..n {
                let close = |j: usize| {
                    !used[j]
                        && ours.labels[j] == labels[i]
                        && (ours.scores[j] - scores[i]).abs() <= 1e-4
                        && (0..4).all(|c| (ours.boxes[j][c] - boxes[[i, c]]).abs() / scale <= 1e-3)
                };
                let j = (i.saturating_sub(5)..(i + 6).min(n)).find(|&j| close(j)).unwrap_or_else(|| {
                    panic!(
                        "{name} {seed}: no match for ORT detection {i} {:?} score {} label {}",
                        boxes.slice(ndarray::s![i, ..]),
                        scores[i],
                        labels[i]
                    )
                });
                used[j] = true;
                pair[i] = j;
            }
            if ours.mask_probs.is_some() {
                let theirs_m = f32s(&theirs, "masks");
                for (i, &mine) in pair.iter().enumerate().take(n) {
                    let pasted = ours.pasted_mask(mine).unwrap().to_canvas();
                    let iou = mask_iou(pasted.view(), theirs_m.slice(ndarray::s![i, 0, .., ..]).into_dimensionality().unwrap());
                    assert!(iou >= 0.99, "{name} {seed}: mask {i} IoU {iou}");
                    let a = pasted.view();
                    let diff = a.iter().zip(theirs_m.slice(ndarray::s![i, 0, .., ..]).iter()).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                    assert!(diff <= 1e-2, "{name} {seed}: mask {i} probabilities differ by {diff}");
                }
            }
            if let Some(kps) = &ours.keypoints {
                let theirs_k = f32s(&theirs, "keypoints");
                let mut worst = 0f32;
                for (i, &mine) in pair.iter().enumerate().take(n) {
                    for (a, b) in kps.index_axis(ndarray::Axis(0), mine).iter().zip(theirs_k.index_axis(ndarray::Axis(0), i).iter()) {
                        worst = worst.max((a - b).abs());
                    }
                }
                assert!(worst <= 0.5, "{name} {seed}: keypoints differ by {worst} px");
            }
        }
    }
}
