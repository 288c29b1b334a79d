//! `ticket data synth`'s sets for the claims on object size and rarity: the default 128-px set stays byte for
//! byte what it was; `--scales coco` on a larger canvas draws small, medium and large objects by COCO's area
//! ranges; `--rare-fraction` makes one category rare and names it in the annotation file; both deterministic.
mod common;
use common::*;
use std::path::Path;

/// FNV-1a 64 over every file of a synthetic set (names and bytes, in name order): one number that changes
/// when any byte does.
fn set_hash(dir: &Path, index: &str) -> u64 {
    let mut names: Vec<_> = std::fs::read_dir(dir.join("images")).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    names.push(dir.join(index));
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for p in names {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        for b in name.bytes().chain(std::fs::read(&p).unwrap()) {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// The default set and the classification crops cut from it (128 px, objects scaled with the canvas, no rare category), as the binary before the
/// size and rarity options wrote it: the tests and the runs of docs/RESULTS.md were made on these bytes.
#[test]
fn default_set_is_unchanged() {
    let t = tempdir();
    let out = t.path().join("d");
    let o = ticket(&[&"data", &"synth", &"--out", &out, &"--images", &"12", &"--seed", &"5"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(set_hash(&out, "annotations.json"), 0x1b4c59213a722351, "the default set changed");
    let cls = t.path().join("c");
    let o = ticket(&[&"data", &"synth", &"--classify", &"--out", &cls, &"--images", &"12", &"--seed", &"5"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(set_hash(&cls, "labels.json"), 0x7bbd8ebb0ecdb9f3, "the classification crops changed");
}

fn synth(out: &Path, images: usize, seed: u64, extra: &[&str]) -> serde_json::Value {
    let (images, seed) = (images.to_string(), seed.to_string());
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"data", &"synth", &"--out", &out, &"--images", &images, &"--seed", &seed];
    args.extend(extra.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
    ticket_json(&args)
}

const COCO_MIX: &[&str] = &["--size", "256..320", "--scales", "coco", "--rare-fraction", "0.05"];

fn annotations(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("annotations.json")).unwrap()).unwrap()
}

/// COCO scales on a 256–320 px canvas: every area range holds a real share of the objects (counted from the
/// file's own areas, COCO's thresholds), the rare category is about 5% of the boxes and the file's `info` says
/// which it is, and the images draw their sides from the range.
#[test]
fn coco_scales_cover_every_area_range_with_one_rare_category() {
    let t = tempdir();
    let out = t.path().join("coco");
    let report = synth(&out, 300, 1, COCO_MIX);
    let doc = annotations(&out);
    let anns = doc["annotations"].as_array().unwrap();
    let n = anns.len();
    assert!(n > 600, "{n} objects in 300 images");
    let mut per_range = [0usize; 3];
    for a in anns {
        let area = a["area"].as_f64().unwrap();
        per_range[if area < 32.0 * 32.0 {
            0
        } else if area < 96.0 * 96.0 {
            1
        } else {
            2
        }] += 1;
    }
    for (range, count) in ["small", "medium", "large"].iter().zip(per_range) {
        assert!(count as f64 >= 0.15 * n as f64, "{range}: {count} of {n} objects ({per_range:?})");
    }
    assert_eq!(report["per_area"], serde_json::json!(per_range), "the report counts what the file holds");
    let triangle = doc["categories"].as_array().unwrap().iter().find(|c| c["name"] == "triangle").unwrap()["id"].clone();
    let rare = anns.iter().filter(|a| a["category_id"] == triangle).count() as f64 / n as f64;
    assert!((0.03..=0.07).contains(&rare), "the rare category is {:.1}% of the boxes", 100.0 * rare);
    assert_eq!(doc["info"]["rare_category"], "triangle");
    assert_eq!(doc["info"]["rare_fraction"], 0.05);
    assert_eq!(doc["info"]["scales"], "coco");
    assert_eq!(report["rare"], serde_json::json!({ "category": "triangle", "fraction": 0.05 }));
    let sides: std::collections::BTreeSet<u64> = doc["images"].as_array().unwrap().iter().map(|i| i["width"].as_u64().unwrap()).collect();
    assert!(sides.len() > 20 && *sides.first().unwrap() >= 256 && *sides.last().unwrap() <= 320, "sides {sides:?}");
    for i in doc["images"].as_array().unwrap() {
        let (w, h) = (i["width"].as_u64().unwrap() as u32, i["height"].as_u64().unwrap() as u32);
        let png = image::open(out.join("images").join(i["file_name"].as_str().unwrap())).unwrap();
        assert_eq!((png.width(), png.height()), (w, h), "the file says the image's size");
    }
}

#[test]
fn coco_scales_are_deterministic_per_seed() {
    let t = tempdir();
    let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
    synth(&a, 16, 4, COCO_MIX);
    synth(&b, 16, 4, COCO_MIX);
    synth(&c, 16, 5, COCO_MIX);
    assert_eq!(set_hash(&a, "annotations.json"), set_hash(&b, "annotations.json"), "same seed, same bytes");
    assert_eq!(snapshot(&a), snapshot(&b), "same seed, same files");
    assert_ne!(set_hash(&a, "annotations.json"), set_hash(&c, "annotations.json"), "another seed, another set");
}

/// The set's own ground truth as detections scores 1 in every area range hotcoco reports: the small, medium
/// and large APs are computed (not pycocotools' -1 for "no objects"), which the default 128-px set cannot give
/// for large objects.
#[test]
fn coco_scales_give_small_medium_and_large_ap() {
    let t = tempdir();
    let ap = |dir: &Path| {
        let doc = annotations(dir);
        let dets: Vec<serde_json::Value> = doc["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| serde_json::json!({ "image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0 }))
            .collect();
        let path = dir.join("dets.json");
        std::fs::write(&path, serde_json::to_vec(&dets).unwrap()).unwrap();
        let r = ticket_json(&[&"eval", &"--coco", &dir.join("annotations.json"), &"--dets", &path, &"--no-tide"]);
        ["APs", "APm", "APl"].map(|k| r["summary"][k].as_f64())
    };
    let coco = t.path().join("coco");
    synth(&coco, 60, 2, COCO_MIX);
    assert_eq!(ap(&coco), [Some(1.0); 3]);
    let default = t.path().join("default");
    synth(&default, 60, 2, &[]);
    assert_eq!(ap(&default)[2], None, "the default set has no large object");
}

#[test]
fn scene_mix_refuses_bad_settings() {
    let t = tempdir();
    let out = t.path().join("x");
    let (images, o) = (&"--images" as &dyn AsRef<std::ffi::OsStr>, &"--out" as &dyn AsRef<std::ffi::OsStr>);
    for (args, wanted) in [
        (vec!["--scales", "coco"], "--scales coco needs a side of at least 192 px"),
        (vec!["--size", "320..256"], "--size 320..256 is not a range"),
        (vec!["--rare-fraction", "0.5"], "--rare-fraction 0.5 is outside (0, 0.2)"),
        (vec!["--rare-fraction", "0.05", "--rare-category", "hexagon"], "--rare-category 'hexagon' is not one of"),
        (vec!["--classify", "--size", "64..80"], "--size is one crop side with --classify"),
    ] {
        let mut argv: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"data", &"synth", o, &out, images, &"4"];
        argv.extend(args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
        let err = run_err(&argv);
        assert!(err.contains(wanted), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?}: nothing written");
    }
}
