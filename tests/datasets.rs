//! Training data: `ticket data synth` is deterministic and writes a dataset whose boxes, masks and keypoints
//! agree; the loader reads it (and hotcoco does too); flip and resize move boxes, masks and keypoints together;
//! broken datasets fail with exit 2 and a line naming the file.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use ticket::data::keypoints::{COCO_FLIP_MAP, COCO_KEYPOINTS};
use ticket::data::{Canvas, Dataset};
use ticket::imaging::transform::resized_size;
use ticket::train::order::Batches;

fn synth(dir: &Path, images: usize, seed: u64) -> PathBuf {
    let out = ticket(&[&"data", &"synth", &"--out", &dir, &"--images", &images.to_string(), &"--seed", &seed.to_string(), &"--json"]);
    assert!(out.status.success(), "synth failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["images"], images);
    dir.join("annotations.json")
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v.push(("annotations.json".into(), std::fs::read(dir.join("annotations.json")).unwrap()));
    v
}

#[test]
fn synth_is_deterministic_per_seed() {
    let t = tempdir();
    let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
    synth(&a, 6, 7);
    synth(&b, 6, 7);
    synth(&c, 6, 8);
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    assert_eq!(fa.len(), 7, "6 images and the annotation file");
    assert!(fa == fb, "same seed, same bytes");
    assert!(fa.iter().zip(&fc).all(|(x, y)| x.1 != y.1), "another seed draws other images");
}

fn load(dir: &Path, images: usize, seed: u64) -> Dataset {
    let ann = synth(dir, images, seed);
    Dataset::from_coco(&ann, &dir.join("images")).unwrap()
}

#[test]
fn synth_annotations_are_consistent() {
    let t = tempdir();
    let ds = load(t.path(), 24, 3);
    assert_eq!(ds.len(), 24);
    assert!(ds.has_masks);
    assert_eq!(ds.num_keypoints, 17);
    assert_eq!(ds.keypoint_names, COCO_KEYPOINTS.map(String::from).to_vec());
    assert_eq!(ds.flip_map(), COCO_FLIP_MAP.to_vec());
    let mut persons = 0;
    for i in 0..ds.len() {
        let s = ds.sample(i).unwrap();
        assert!((1..=4).contains(&s.boxes.len()), "1–4 objects per image");
        assert_eq!(s.hw(), (128, 128));
        let masks = s.masks.as_ref().unwrap();
        let kps = s.keypoints.as_ref().unwrap();
        for (k, b) in s.boxes.iter().enumerate() {
            let m = masks.index_axis(ndarray::Axis(0), k);
            let on: Vec<(usize, usize)> = m.indexed_iter().filter(|(_, &v)| v != 0).map(|(p, _)| p).collect();
            assert!(!on.is_empty(), "image {} object {k}: empty mask", s.image_id);
            let (x0, x1) = (on.iter().map(|p| p.1).min().unwrap() as f32, on.iter().map(|p| p.1).max().unwrap() as f32 + 1.0);
            let (y0, y1) = (on.iter().map(|p| p.0).min().unwrap() as f32, on.iter().map(|p| p.0).max().unwrap() as f32 + 1.0);
            let extent = [x0, y0, x1, y1];
            assert!(b.iter().zip(&extent).all(|(a, e)| (a - e).abs() <= 1.0), "image {} box {b:?} vs mask extent {extent:?}", s.image_id);
            if s.labels[k] == 5 {
                persons += 1;
                assert!(kps[k].iter().all(|p| p[2] == 2.0
                    && p[0] >= b[0] - 1.0
                    && p[0] <= b[2] + 1.0
                    && p[1] >= b[1] - 1.0
                    && p[1] <= b[3] + 1.0));
                // The person faces the viewer: its left shoulder is on the image's right.
                assert!(kps[k][5][0] > kps[k][6][0]);
            } else {
                assert!(kps[k].iter().all(|p| p[2] == 0.0), "shapes carry no keypoints");
            }
        }
    }
    assert!(persons >= 3, "only {persons} persons in 24 images");
    // hotcoco reads the file as evaluation will.
    let gt = ticket::eval::CocoGt::load(&t.path().join("annotations.json")).unwrap();
    assert_eq!(gt.images().len(), 24);
    assert_eq!(gt.categories().len(), 5);
}

#[test]
fn check_command_reads_the_synthetic_dataset() {
    let t = tempdir();
    let ann = synth(t.path(), 3, 0);
    let r = ticket_json(&[&"data", &"check", &"--coco", &ann]);
    assert_eq!(r["images"], 3);
    assert_eq!(r["masks"], true);
    assert_eq!(r["keypoints"], 17);
}

#[test]
fn flip_moves_boxes_masks_keypoints_together() {
    let t = tempdir();
    let ds = load(t.path(), 12, 5);
    let map = ds.flip_map();
    for i in 0..ds.len() {
        let s = ds.sample(i).unwrap();
        let f = s.hflip(&map);
        let ff = f.hflip(&map);
        assert_eq!(ff.image, s.image);
        assert_eq!(ff.boxes, s.boxes);
        assert_eq!(ff.masks, s.masks);
        // x → W − x twice is the identity up to float32 rounding.
        let flat = |k: &Option<Vec<Vec<[f32; 3]>>>| k.as_ref().unwrap().iter().flatten().flatten().copied().collect::<Vec<f32>>();
        assert!(flat(&ff.keypoints).iter().zip(flat(&s.keypoints)).all(|(a, b)| (a - b).abs() < 1e-4));
        let w = s.hw().1 as f32;
        let fm = f.masks.as_ref().unwrap();
        for (k, b) in s.boxes.iter().enumerate() {
            assert_eq!(f.boxes[k], [w - b[2], b[1], w - b[0], b[3]]);
            assert_eq!(fm[[k, 3, 10]], s.masks.as_ref().unwrap()[[k, 3, s.hw().1 - 11]]);
            let (kp, fkp) = (&s.keypoints.as_ref().unwrap()[k], &f.keypoints.as_ref().unwrap()[k]);
            if s.labels[k] == 5 {
                // left ↔ right: the flipped left wrist is the mirrored right wrist, and it is still on the image's right.
                assert_eq!(fkp[9], [w - kp[10][0], kp[10][1], 2.0]);
                assert_eq!(fkp[0], [w - kp[0][0], kp[0][1], 2.0]);
                assert!(fkp[5][0] > fkp[6][0]);
            }
        }
        assert_eq!(f.image.get_pixel(0, 7), s.image.get_pixel(s.image.width() - 1, 7));
    }
}

#[test]
fn canvas_resize_matches_the_eval_transform() {
    let t = tempdir();
    let ds = load(t.path(), 4, 9);
    let s = ds.sample(0).unwrap();
    for canvas in [Canvas::square(128), Canvas::square(96), Canvas { min_size: 200, max_size: 333, hw: (224, 224) }] {
        let c = s.to_canvas(&canvas).unwrap();
        let want = resized_size(s.hw(), canvas.min_size, canvas.max_size);
        assert_eq!(c.resized_hw, want);
        assert_eq!(c.image.dim(), (3, canvas.hw.0, canvas.hw.1));
        let r = want.1 as f32 / 128.0;
        for (b, cb) in s.boxes.iter().zip(&c.boxes) {
            assert!(b.iter().zip(cb).all(|(x, y)| (x * r - y).abs() < 1e-4));
        }
        let m = c.masks.as_ref().unwrap();
        assert_eq!(m.dim().1, canvas.hw.0);
        // Padding stays empty, and every object survives the resize.
        assert!(m.slice(ndarray::s![.., want.0.., ..]).iter().all(|&v| v == 0));
        assert!(c.image.slice(ndarray::s![.., .., want.1..]).iter().all(|&v| v == 0.0));
        assert!(m.outer_iter().all(|p| p.iter().any(|&v| v != 0)));
    }
    assert!(s.to_canvas(&Canvas { min_size: 256, max_size: 256, hw: (128, 128) }).is_err(), "a resize larger than the canvas");
}

#[test]
fn batches_are_seeded_and_cover_the_epoch() {
    let b = Batches::new(10, 4, 42, 0.5).unwrap();
    assert_eq!(b.batches_per_epoch(), 3);
    let e0 = b.epoch(0);
    assert_eq!(e0.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
    let mut seen: Vec<usize> = e0.iter().flatten().map(|i| i.index).collect();
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert_eq!(e0, Batches::new(10, 4, 42, 0.5).unwrap().epoch(0), "same seed, same order");
    assert_ne!(e0, b.epoch(1), "each epoch reshuffles");
    assert_ne!(e0, Batches::new(10, 4, 43, 0.5).unwrap().epoch(0));
    assert_eq!(b.iter().take(4).last().unwrap(), b.epoch(1)[0]);
    assert!(Batches::new(10, 0, 1, 0.5).is_err());
    assert!(Batches::new(0, 2, 1, 0.5).is_err());
}

/// Runs `ticket data check` on a broken copy and expects exit 2 with a line naming `names`.
fn expect_bad(ann: &Path, names: &str, problem: &str) {
    let out = ticket(&[&"data", &"check", &"--coco", &ann]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(names) && err.contains(problem), "expected {names} and {problem:?} in: {err}");
}

#[test]
fn broken_datasets_fail_with_exit_2_naming_the_file() {
    let t = tempdir();
    let ann = synth(t.path(), 3, 1);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&ann).unwrap()).unwrap();
    let write = |name: &str, v: &serde_json::Value| {
        let p = t.path().join(name);
        std::fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
        p
    };

    // An image the file lists but the folder lacks.
    let mut missing = doc.clone();
    missing["images"][1]["file_name"] = "nowhere.png".into();
    expect_bad(&write("missing.json", &missing), "nowhere.png", "missing image file");

    // An image that is not a PNG.
    std::fs::write(t.path().join("images/broken.png"), b"not a png at all").unwrap();
    let mut broken = doc.clone();
    broken["images"][0]["file_name"] = "broken.png".into();
    expect_bad(&write("broken.json", &broken), "broken.png", "cannot decode");

    // A category the file does not define.
    let mut unknown = doc.clone();
    unknown["annotations"][0]["category_id"] = 77.into();
    expect_bad(&write("unknown.json", &unknown), "unknown.json", "category_id 77");

    // A box entirely outside its image.
    let mut outside = doc.clone();
    outside["annotations"][0]["bbox"] = serde_json::json!([300.0, 10.0, 5.0, 5.0]);
    expect_bad(&write("outside.json", &outside), "outside.json", "outside");

    // Malformed and empty json.
    let bad = t.path().join("malformed.json");
    std::fs::write(&bad, b"{\"images\": [").unwrap();
    expect_bad(&bad, "malformed.json", "not a COCO annotation file");
    let empty = t.path().join("empty.json");
    std::fs::write(&empty, b"").unwrap();
    expect_bad(&empty, "empty.json", "empty file");

    // Partly outside: clipped to the image, as torchvision's references clamp it; zero-size boxes are dropped.
    let mut partly = doc.clone();
    let b = partly["annotations"][0]["bbox"].clone();
    partly["annotations"][0]["bbox"] = serde_json::json!([-4.0, b[1], b[2].as_f64().unwrap() + 4.0, b[3]]);
    partly["annotations"][1]["bbox"] = serde_json::json!([5.0, 5.0, 0.0, 3.0]);
    let ds = Dataset::from_coco(&write("partly.json", &partly), &t.path().join("images")).unwrap();
    assert_eq!(ds.dropped_degenerate, 1);
    assert_eq!(ds.images[0].objects[0].box_xyxy[0], 0.0);
    // The library gives the same Input errors.
    let e = Dataset::from_coco(&t.path().join("unknown.json"), &t.path().join("images")).unwrap_err();
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn voc_folder_loads_with_its_images() {
    let t = tempdir();
    voc_folder(t.path(), |xml| xml);
    let jpg = t.path().join("JPEGImages");
    let ds = Dataset::from_voc(t.path(), None).unwrap();
    assert_eq!(ds.len(), 12);
    assert!(!ds.has_masks && ds.num_keypoints == 0);
    // 000100.xml's person, xmin 243 ymin 91 xmax 310 ymax 174, in the COCO frame hotcoco's voc_to_coco uses.
    let s = ds.sample(0).unwrap();
    assert_eq!((s.hw(), s.boxes[0]), ((180, 450), [242.0, 90.0, 310.0, 174.0]));
    assert_eq!(ds.categories[s.labels[0] - 1].name, "person");
    let r = ticket_json(&[&"data", &"check", &"--voc", &t.path()]);
    assert_eq!(r["images"], 12);

    std::fs::remove_file(jpg.join("000107.jpg")).unwrap();
    let out = ticket(&[&"data", &"check", &"--voc", &t.path()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("000107.jpg") && err.contains("missing image file"), "{err}");
}
