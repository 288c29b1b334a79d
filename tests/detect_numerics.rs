//! The Rust numerics between the tract stages (src/detect) against torchvision 0.23 on the reference data that
//! tools/detect_reference.py writes to tests/fixtures/detect. Index lists (NMS keeps, labels, levels) must be
//! identical; values agree to float32 rounding within the stated tolerances. Each check prints its largest
//! difference (`cargo test --release --test detect_numerics -- --nocapture`).
mod common;

use ndarray::{Array2, Array3, Array4, ArrayD, Axis, Ix2, Ix3, Ix4};
use std::collections::BTreeMap;
use std::path::PathBuf;
use ticket::detect::anchors::AnchorGenerator;
use ticket::detect::box_coder::BoxCoder;
use ticket::detect::keypoints::heatmaps_to_keypoints;
use ticket::detect::nms::{batched_nms, nms};
use ticket::detect::paste::paste_masks_in_image;
use ticket::detect::postprocess::{postprocess_detections, BoxHeadParams};
use ticket::detect::roi_align::{feature_table, roi_align, MultiScaleRoIAlign};
use ticket::detect::rpn::{filter_proposals, RpnLevel, RpnParams};
use ticket::imaging::boxes::{clip_boxes_to_image, remove_small_boxes};
use ticket::imaging::roi::{BOX_OUTPUT_SIZE, MASK_OUTPUT_SIZE, SAMPLING_RATIO};
use ticket::imaging::transform::{rescale_boxes, rescale_keypoints, transform_chw, transform_rgb};
use ticket::imaging::BoxXyxy;

type Tensors = BTreeMap<String, (Vec<usize>, Vec<f64>)>;

fn load(piece: &str) -> Tensors {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/detect").join(format!("{piece}.safetensors"));
    assert!(path.exists(), "missing {} (regenerate with tools/detect_reference.py)", path.display());
    common::read_safetensors(&path)
}

fn get<'a>(t: &'a Tensors, key: &str) -> &'a (Vec<usize>, Vec<f64>) {
    t.get(key).unwrap_or_else(|| panic!("fixture has no tensor {key}"))
}

fn f32s(t: &Tensors, key: &str) -> Vec<f32> {
    get(t, key).1.iter().map(|&v| v as f32).collect()
}

fn ints(t: &Tensors, key: &str) -> Vec<i64> {
    get(t, key).1.iter().map(|&v| v as i64).collect()
}

fn usizes(t: &Tensors, key: &str) -> Vec<usize> {
    get(t, key).1.iter().map(|&v| v as usize).collect()
}

fn hw(t: &Tensors, key: &str) -> (usize, usize) {
    let v = usizes(t, key);
    (v[0], v[1])
}

fn boxes(t: &Tensors, key: &str) -> Vec<BoxXyxy> {
    f32s(t, key).chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect()
}

fn array(t: &Tensors, key: &str) -> ArrayD<f32> {
    let (shape, _) = get(t, key);
    ArrayD::from_shape_vec(shape.clone(), f32s(t, key)).unwrap()
}

fn array3(t: &Tensors, key: &str) -> Array3<f32> {
    array(t, key).into_dimensionality::<Ix3>().unwrap()
}

fn array4(t: &Tensors, key: &str) -> Array4<f32> {
    array(t, key).into_dimensionality::<Ix4>().unwrap()
}

/// Largest `|got - want| / max(|want|, floor)`; asserts it is `<= tol` and the lengths match. `floor = 1`
/// makes it an absolute difference for values below 1 and a relative one above.
fn check(what: &str, got: impl IntoIterator<Item = f32>, want: impl IntoIterator<Item = f32>, floor: f32, tol: f32) -> f32 {
    compare(what, got, want, |w| w.abs().max(floor), tol)
}

/// Largest `|got - want|`, asserted `<= tol`.
fn check_abs(what: &str, got: impl IntoIterator<Item = f32>, want: impl IntoIterator<Item = f32>, tol: f32) -> f32 {
    compare(what, got, want, |_| 1.0, tol)
}

fn compare(
    what: &str,
    got: impl IntoIterator<Item = f32>,
    want: impl IntoIterator<Item = f32>,
    scale: impl Fn(f32) -> f32,
    tol: f32,
) -> f32 {
    let (got, want): (Vec<f32>, Vec<f32>) = (got.into_iter().collect(), want.into_iter().collect());
    assert_eq!(got.len(), want.len(), "{what}: {} values, torchvision has {}", got.len(), want.len());
    let mut worst = (0.0f32, 0usize);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let d = if g == w || (g.is_nan() && w.is_nan()) { 0.0 } else { (g - w).abs() / scale(*w) };
        if !(d <= worst.0) {
            worst = (d, i);
        }
    }
    println!("{what}: max diff {:.3e} over {} values", worst.0, got.len());
    assert!(worst.0 <= tol, "{what}: diff {} at {} (got {}, torchvision {})", worst.0, worst.1, got[worst.1], want[worst.1]);
    worst.0
}

fn flat(b: &[BoxXyxy]) -> Vec<f32> {
    b.iter().flatten().copied().collect()
}

#[test]
fn transform_matches_generalized_rcnn_transform() {
    let t = load("transform");
    for case in 0..3 {
        let [lo, hi] = [0, 1].map(|i| usizes(&t, &format!("case{case}.params"))[i]);
        // case 2 resizes case 0's image.
        let src = if case == 2 { 0 } else { case };
        let u8_img = array3(&t, &format!("case{src}.image_u8"));
        let (_, h, w) = u8_img.dim();
        let out = if case == 0 {
            // Through the image crate, as a user's JPEG/PNG arrives.
            let img = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
                image::Rgb([0, 1, 2].map(|c| u8_img[[c, y as usize, x as usize]] as u8))
            });
            transform_rgb(&img, lo, hi).unwrap()
        } else {
            transform_chw(u8_img.mapv(|v| v / 255.0).view(), lo, hi).unwrap()
        };
        let want_hw = hw(&t, &format!("case{case}.resized_hw"));
        assert_eq!(out.resized_hw, want_hw, "case {case}");
        assert_eq!((out.image.dim().1, out.image.dim().2), hw(&t, &format!("case{case}.padded_hw")));
        assert_eq!(out.original_hw, (h, w));
        let (rh, rw) = want_hw;
        let resized = out.image.slice(ndarray::s![.., ..rh, ..rw]).to_owned();
        check(
            &format!("transform case {case} ({h}x{w} -> {rh}x{rw})"),
            resized.iter().copied(),
            array3(&t, &format!("case{case}.resized")),
            1.0,
            1e-6,
        );
        let pad_sum: f32 = out.image.iter().map(|v| v.abs()).sum::<f32>() - resized.iter().map(|v| v.abs()).sum::<f32>();
        assert!(pad_sum.abs() < 1e-3, "padding is not zero");
    }
    let b = rescale_boxes(&boxes(&t, "rescale.boxes"), (85, 64), (100, 75));
    check("rescale boxes", flat(&b), f32s(&t, "rescale.boxes_out"), 1.0, 1e-6);
    let kps: Vec<[f32; 3]> = f32s(&t, "rescale.keypoints").chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
    let k = rescale_keypoints(&kps, (85, 64), (100, 75));
    check("rescale keypoints", k.iter().flatten().copied(), f32s(&t, "rescale.keypoints_out"), 1.0, 1e-6);
}

#[test]
fn anchors_match_anchor_generator() {
    let t = load("anchors");
    for case in 0..2 {
        let sizes: Vec<(usize, usize)> = usizes(&t, &format!("case{case}.feature_sizes")).chunks(2).map(|c| (c[0], c[1])).collect();
        let levels = AnchorGenerator::fpn().anchors(hw(&t, &format!("case{case}.canvas")), &sizes).unwrap();
        let got: Vec<f32> = levels.iter().flat_map(|l| flat(l)).collect();
        assert_eq!(got, f32s(&t, &format!("case{case}.anchors")), "anchors case {case} differ");
        println!("anchors case {case}: {} anchors identical", got.len() / 4);
    }
}

#[test]
fn box_coder_matches_torchvision() {
    let t = load("box_coder");
    let codes = |key: &str| -> Vec<[f32; 4]> { f32s(&t, key).chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect() };
    let dec = BoxCoder::RPN.decode(&codes("rpn.deltas"), &boxes(&t, "rpn.anchors"));
    check("decode (1,1,1,1)", flat(&dec), f32s(&t, "rpn.decoded"), 1.0, 1e-4);
    let enc = BoxCoder::RPN.encode(&boxes(&t, "rpn.gt"), &boxes(&t, "rpn.anchors"));
    check("encode (1,1,1,1)", enc.iter().flatten().copied(), f32s(&t, "rpn.encoded"), 1.0, 1e-4);

    // Class-specific codes [N, 4·K]: every class decoded against the same proposal.
    let props = boxes(&t, "head.proposals");
    let head_codes = codes("head.codes");
    let k = head_codes.len() / props.len();
    let head: Vec<BoxXyxy> = head_codes.iter().enumerate().map(|(i, &c)| BoxCoder::ROI_HEADS.decode_one(c, props[i / k])).collect();
    check("decode (10,10,5,5)", flat(&head), f32s(&t, "head.decoded"), 1.0, 1e-4);
    let enc = BoxCoder::ROI_HEADS.encode(&boxes(&t, "head.gt"), &props);
    check("encode (10,10,5,5)", enc.iter().flatten().copied(), f32s(&t, "head.encoded"), 1.0, 1e-4);

    let mut clipped = boxes(&t, "rpn.decoded");
    clip_boxes_to_image(&mut clipped, hw(&t, "clip.size"));
    check("clip_boxes_to_image", flat(&clipped), f32s(&t, "clip.out"), 1.0, 0.0);
    let small = boxes(&t, "small.boxes");
    assert_eq!(remove_small_boxes(&small, 1.0), usizes(&t, "small.keep_1"));
    assert_eq!(remove_small_boxes(&small, 1e-3), usizes(&t, "small.keep_1e-3"));
}

#[test]
fn nms_keeps_exactly_what_torchvision_keeps() {
    let t = load("nms");
    let (tb, ts, tl) = (boxes(&t, "ties.boxes"), f32s(&t, "ties.scores"), ints(&t, "ties.labels"));
    for thr in ["0.3", "0.5", "0.7"] {
        let v: f64 = thr.parse().unwrap();
        assert_eq!(nms(&tb, &ts, v), usizes(&t, &format!("ties.keep_{thr}")), "nms with tied scores at {thr}");
        assert_eq!(batched_nms(&tb, &ts, &tl, v), usizes(&t, &format!("ties.batched_keep_{thr}")), "batched_nms (offset trick) at {thr}");
    }
    let (b, s, l) = (boxes(&t, "big.boxes"), f32s(&t, "big.scores"), ints(&t, "big.labels"));
    let start = std::time::Instant::now();
    let keep = nms(&b, &s, 0.5);
    let nms_ms = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!(keep, usizes(&t, "big.keep_0.5"), "nms of 5000 boxes");
    let start = std::time::Instant::now();
    let keep = batched_nms(&b, &s, &l, 0.5);
    let batched_ms = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!(keep, usizes(&t, "big.batched_keep_0.5"), "batched_nms (per class) of 5000 boxes");
    let q = f32s(&t, "big.quantised_scores");
    assert_eq!(batched_nms(&b, &q, &l, 0.6), usizes(&t, "big.quantised_batched_keep_0.6"), "batched_nms with tied scores");
    println!("nms: keep lists identical; 5000 boxes: nms {nms_ms:.2} ms, batched {batched_ms:.2} ms");
}

#[test]
fn rpn_proposals_match_region_proposal_network() {
    let t = load("rpn");
    let objectness: Vec<Array3<f32>> = (0..5).map(|l| array3(&t, &format!("objectness.{l}"))).collect();
    let deltas: Vec<Array3<f32>> = (0..5).map(|l| array3(&t, &format!("deltas.{l}"))).collect();
    let levels: Vec<RpnLevel> = objectness.iter().zip(&deltas).map(|(o, d)| RpnLevel { objectness: o.view(), deltas: d.view() }).collect();
    let sizes: Vec<(usize, usize)> = objectness.iter().map(|o| (o.dim().1, o.dim().2)).collect();
    let anchors = AnchorGenerator::fpn().anchors(hw(&t, "canvas"), &sizes).unwrap();
    for name in ["default", "small"] {
        let p = usizes(&t, &format!("{name}.params"));
        let params = RpnParams { pre_nms_top_n: p[0], post_nms_top_n: p[1], ..RpnParams::default() };
        let start = std::time::Instant::now();
        let got = filter_proposals(&levels, &anchors, hw(&t, "image_hw"), &params).unwrap();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        println!("rpn {name}: {} proposals in {ms:.2} ms", got.boxes.len());
        check(&format!("rpn {name} proposals"), flat(&got.boxes), f32s(&t, &format!("{name}.proposals")), 1.0, 1e-4);
        check(&format!("rpn {name} scores"), got.scores, f32s(&t, &format!("{name}.scores")), 1.0, 1e-6);
    }
}

#[test]
fn roi_align_matches_multiscale_roi_align() {
    let t = load("roi_align");
    let feats: Vec<Array3<f32>> = (0..4).map(|l| array3(&t, &format!("features.{l}"))).collect();
    let views: Vec<_> = feats.iter().map(|f| f.view()).collect();
    let sizes: Vec<(usize, usize)> = feats.iter().map(|f| (f.dim().1, f.dim().2)).collect();
    let image_hw = hw(&t, "image_hw");
    let b = boxes(&t, "boxes");

    let box_pool = MultiScaleRoIAlign::new(&sizes, image_hw, BOX_OUTPUT_SIZE, SAMPLING_RATIO).unwrap();
    assert_eq!(box_pool.scales, f32s(&t, "scales"));
    // torchvision's level of a NaN-area box is a garbage integer that matches no level; ours is None.
    let want_levels: Vec<Option<usize>> = ints(&t, "levels").iter().map(|&l| (0..4).contains(&l).then_some(l as usize)).collect();
    assert_eq!(box_pool.levels(&b), want_levels);
    let pooled = box_pool.pool(&views, &b).unwrap();
    check("MultiScaleRoIAlign 7x7", pooled.iter().copied(), f32s(&t, "pooled7"), 1.0, 1e-5);

    let mask_pool = MultiScaleRoIAlign::new(&sizes, image_hw, MASK_OUTPUT_SIZE, SAMPLING_RATIO).unwrap();
    let pooled14 = mask_pool.pool(&views, &b[33..45]).unwrap();
    check("MultiScaleRoIAlign 14x14", pooled14.iter().copied(), f32s(&t, "pooled14"), 1.0, 1e-5);

    let single = roi_align(views[0], &b[40..60], 0.25, 7, 2);
    check("roi_align P2", single.iter().copied(), f32s(&t, "single.p2"), 1.0, 1e-5);

    // The taps form (Gather + weighted sum over the concatenated feature table) gives the same pooling.
    let batched: Vec<_> = feats.iter().map(|f| f.view().insert_axis(Axis(0))).collect();
    let table = feature_table(&batched).unwrap();
    for (pool, want, rois) in [(&box_pool, "pooled7", &b[..]), (&mask_pool, "pooled14", &b[33..45])] {
        let taps = pool.taps(rois, 0, 1).unwrap();
        assert_eq!(taps.index.dim().2, 4 * SAMPLING_RATIO * SAMPLING_RATIO);
        assert!(taps.index.iter().all(|&i| (i as usize) < table.dim().0));
        check(&format!("taps vs torchvision {want}"), taps.apply(table.view()), f32s(&t, want), 1.0, 1e-5);
    }
}

#[test]
fn postprocess_matches_roi_heads() {
    let t = load("postprocess");
    // (case, score_thresh, nms_thresh) as tools/detect_reference.py sets them.
    for (name, score_thresh, nms_thresh) in [("few", 0.05, 0.5), ("many", 0.05, 0.5), ("capped", 0.2, 0.4), ("sparse", 0.6, 0.5)] {
        let logits = array(&t, &format!("{name}.logits")).into_dimensionality::<Ix2>().unwrap();
        let codes: Array2<f32> = array(&t, &format!("{name}.codes")).into_dimensionality::<Ix2>().unwrap();
        let params = BoxHeadParams { score_thresh, nms_thresh, detections_per_img: usizes(&t, &format!("{name}.detections_per_img"))[0] };
        let start = std::time::Instant::now();
        let d = postprocess_detections(logits.view(), codes.view(), &boxes(&t, &format!("{name}.proposals")), hw(&t, "image_hw"), &params)
            .unwrap();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        println!("postprocess {name}: {} detections in {ms:.2} ms", d.boxes.len());
        assert_eq!(d.labels, ints(&t, &format!("{name}.labels")), "postprocess {name}: labels");
        check(&format!("postprocess {name} boxes"), flat(&d.boxes), f32s(&t, &format!("{name}.boxes")), 1.0, 1e-4);
        check(&format!("postprocess {name} scores"), d.scores, f32s(&t, &format!("{name}.scores")), 1.0, 1e-6);
    }
}

#[test]
fn pasted_masks_match_paste_masks_in_image() {
    let t = load("paste");
    let masks = array4(&t, "masks").index_axis(Axis(1), 0).to_owned();
    let image_hw = hw(&t, "image_hw");
    let pasted = paste_masks_in_image(masks.view(), &boxes(&t, "boxes"), image_hw).unwrap();
    check_abs("paste_masks_in_image", pasted.iter().copied(), f32s(&t, "pasted"), 1e-5);
    let big = paste_masks_in_image(masks.slice(ndarray::s![..2, .., ..]), &boxes(&t, "big.boxes"), image_hw).unwrap();
    check_abs("paste_masks_in_image (large boxes)", big.iter().copied(), f32s(&t, "big.pasted"), 1e-5);
}

#[test]
fn keypoints_match_heatmaps_to_keypoints() {
    let t = load("keypoints");
    // Heatmaps are stored as u8 codes; code / 16 - 2 is exact in float32, as in the script.
    let maps = array4(&t, "map_codes").mapv(|c| c / 16.0 - 2.0);
    let k = heatmaps_to_keypoints(maps.view(), &boxes(&t, "rois")).unwrap();
    check_abs("keypoints (px)", k.points.iter().copied(), f32s(&t, "keypoints"), 1e-3);
    check("keypoint scores", k.scores.iter().copied(), f32s(&t, "scores"), 1.0, 1e-5);
}
