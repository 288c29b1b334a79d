//! `ticket eval` against the references: hotcoco's COCO numbers against pycocotools (tools/coco_reference.py), the
//! VOC numbers against the devkit's voc_eval (tools/voc_reference.py), on the fixtures of tests/fixtures/eval
//! (written by make_fixtures.py there), plus the bad-input contract: exit 2 and one line naming the file.
mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use ticket::eval::{evaluate_coco, DetSource, Detection, IouType};

const TYPES: [&str; 3] = ["bbox", "segm", "keypoints"];

/// The committed evaluation fixtures (not under TICKET_FIXTURES, which swaps the model exports only).
fn eval_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval").join(name)
}

fn dets(t: &str) -> PathBuf {
    eval_fixture(&format!("coco_dets_{t}.json"))
}

/// The fixture ground truth with annotation ids 1..N instead of 0, 101, 102, …: the same data, and the form
/// in which pycocotools gives the right answer (see `annotation_id_0_...` below).
fn renumbered_gt(dir: &Path) -> PathBuf {
    let mut gt: Value = serde_json::from_slice(&std::fs::read(eval_fixture("coco_gt.json")).unwrap()).unwrap();
    for (i, a) in gt["annotations"].as_array_mut().unwrap().iter_mut().enumerate() {
        a["id"] = Value::from(i as u64 + 1);
    }
    let p = dir.join("coco_gt_renumbered.json");
    std::fs::write(&p, serde_json::to_vec(&gt).unwrap()).unwrap();
    p
}

/// pycocotools' summary and per-category AP, with `--renumber-gt-ids` when asked.
fn reference(gt: &Path, dets: &Path, t: &str, renumber: bool) -> (Vec<String>, Vec<f64>, Value) {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&gt, &dets, &"--iou-type", &t];
    if renumber {
        args.push(&"--renumber-gt-ids");
    }
    let v: Value = serde_json::from_str(&tool("coco_reference.py", &args)).unwrap();
    let names = v["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect();
    let stats = v["stats"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    (names, stats, v["per_category_ap"].clone())
}

/// `ticket eval --json`: summary names and values (null → -1, pycocotools' "not computed"), per-category AP.
/// The detailed rows (`metrics`) and the summary keyed by name (`summary`, what a script reads) agree.
fn ours(gt: &Path, dets: &Path, t: &str) -> (Vec<String>, Vec<f64>, Value) {
    let r = ticket_json(&[&"eval", &"--coco", &gt, &"--dets", &dets, &"--iou-type", &t]);
    let rows = r["metrics"].as_array().unwrap();
    let names: Vec<String> = rows.iter().map(|m| m["name"].as_str().unwrap().to_string()).collect();
    let stats = rows.iter().map(|m| m["value"].as_f64().unwrap_or(-1.0)).collect();
    let keyed = r["summary"].as_object().unwrap();
    assert_eq!(keyed.len(), names.len(), "{t}: {keyed:?}");
    for m in rows {
        assert_eq!(keyed[m["name"].as_str().unwrap()], m["value"], "{t}: summary by name");
    }
    (names, stats, r)
}

/// Asserts two summaries are bit-identical (hotcoco's claim; measured: it holds on every number here).
fn assert_same(what: &str, (n1, s1): (&[String], &[f64]), (n2, s2): (&[String], &[f64])) {
    assert_eq!(n1, n2, "{what}: metric names");
    for ((n, a), b) in n1.iter().zip(s1).zip(s2) {
        assert!(a.to_bits() == b.to_bits(), "{what}: {n} = {a} (ticket/hotcoco) vs {b} (pycocotools), diff {:e}", (a - b).abs());
    }
}

fn assert_per_category_same(what: &str, report: &Value, reference: &Value) {
    for row in report["per_category"].as_array().unwrap() {
        let id = row["id"].as_u64().unwrap().to_string();
        let ours = row["ap"].as_f64().unwrap_or(-1.0);
        let theirs = reference[&id].as_f64().unwrap_or_else(|| panic!("{what}: no reference AP for category {id}"));
        assert!(ours.to_bits() == theirs.to_bits(), "{what}: category {id} AP {ours} vs {theirs}");
    }
    assert_eq!(report["per_category"].as_array().unwrap().len(), reference.as_object().unwrap().len(), "{what}: categories");
}

/// The fixture has every case it claims to have (make_fixtures.py could drift).
#[test]
fn fixtures_cover_the_hard_cases() {
    let gt: Value = serde_json::from_slice(&std::fs::read(eval_fixture("coco_gt.json")).unwrap()).unwrap();
    let anns = gt["annotations"].as_array().unwrap();
    assert!(anns.iter().any(|a| a["id"] == 0), "an annotation with id 0");
    assert!(anns.iter().any(|a| a["iscrowd"] == 1), "a crowd region");
    let seg = |f: fn(&Value) -> bool| anns.iter().any(|a| f(&a["segmentation"]));
    assert!(seg(|s| s.is_array()), "polygons");
    assert!(seg(|s| s.as_array().is_some_and(|p| p.len() > 1)), "a two-part polygon");
    assert!(seg(|s| s["counts"].is_string()), "compressed RLE");
    assert!(seg(|s| s["counts"].is_array()), "uncompressed RLE");
    assert!(anns.iter().any(|a| a["num_keypoints"] == 0 && a["iscrowd"] == 0), "a person without labelled keypoints");
    let with_gt: std::collections::HashSet<u64> = anns.iter().map(|a| a["image_id"].as_u64().unwrap()).collect();
    let images: Vec<u64> = gt["images"].as_array().unwrap().iter().map(|i| i["id"].as_u64().unwrap()).collect();
    let boxes: Vec<Value> = serde_json::from_slice(&std::fs::read(dets("bbox")).unwrap()).unwrap();
    let with_dets: std::collections::HashSet<u64> = boxes.iter().map(|d| d["image_id"].as_u64().unwrap()).collect();
    assert!(images.iter().any(|i| !with_gt.contains(i) && with_dets.contains(i)), "an image with detections and no GT");
    assert!(images.iter().any(|i| !with_gt.contains(i) && !with_dets.contains(i)), "an image with nothing");
    assert!(images.iter().any(|i| with_gt.contains(i) && !with_dets.contains(i)), "an image with GT and no detections");
    let mut per_cell = std::collections::HashMap::new();
    for d in &boxes {
        *per_cell.entry((d["image_id"].as_u64(), d["category_id"].as_u64())).or_insert(0) += 1;
    }
    assert!(per_cell.values().any(|&n| n > 100), "more than 100 detections of one class on one image");
}

/// The parity claim itself: on a ground truth without the id-0 quirk, every summary number and every
/// per-category AP of hotcoco equals pycocotools' bit for bit, for bbox, segm (polygons, both RLE forms, crowds)
/// and keypoints.
#[test]
fn hotcoco_matches_pycocotools_on_bbox_segm_keypoints() {
    let dir = tempdir();
    let gt = renumbered_gt(dir.path());
    for t in TYPES {
        let (names, stats, report) = ours(&gt, &dets(t), t);
        let (rn, rs, rcat) = reference(&gt, &dets(t), t, false);
        assert_same(t, (&names, &stats), (&rn, &rs));
        assert_per_category_same(t, &report, &rcat);
        assert_eq!(names.len(), if t == "keypoints" { 10 } else { 12 });
        assert!(stats[0] > 0.1, "{t}: the fixture should score, AP = {}", stats[0]);
    }
}

/// pycocotools records a match as the matched annotation's id with 0 meaning "unmatched"
/// (cocoeval.py: `dtm[tind, dind] = gt[m]['id']`, then `tps = np.logical_and(dtm, ...)`), so a detection that
/// matches a ground truth whose id is 0 is counted as a false positive, and that ground truth stays free for the
/// next detection (`if gtm[tind, gind] > 0` is false). COCO ids are ordinary integers; 0 is a valid one and the
/// object was found. hotcoco keeps explicit matched flags (EvalImg::dt_matched), which is right: its numbers on
/// the file with id 0 equal pycocotools' on the same data renumbered, and differ from pycocotools' on the file.
#[test]
fn annotation_id_0_is_a_match_not_a_false_positive_unlike_pycocotools() {
    let dir = tempdir();
    let gt = eval_fixture("coco_gt.json");
    let renumbered = renumbered_gt(dir.path());
    for t in TYPES {
        let (names, stats, _) = ours(&gt, &dets(t), t);
        let (rn, right, _) = reference(&gt, &dets(t), t, true);
        let (_, quirk, _) = reference(&gt, &dets(t), t, false);
        assert_same(&format!("{t} with id 0"), (&names, &stats), (&rn, &right));
        assert!(quirk[0] < right[0], "{t}: the fixture must trigger pycocotools' id-0 quirk (AP {} vs {})", quirk[0], right[0]);
        let (_, renumbered_stats, _) = ours(&renumbered, &dets(t), t);
        assert_eq!(stats, renumbered_stats, "{t}: annotation ids must not change any number");
    }
}

/// An empty detection list scores zero wherever there is ground truth (pycocotools' loadRes raises IndexError on
/// `[]`; the reference loads it by hand).
#[test]
fn empty_detection_list_gives_zeros() {
    let dir = tempdir();
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "[]").unwrap();
    let gt = renumbered_gt(dir.path());
    for t in TYPES {
        let (names, stats, report) = ours(&gt, &empty, t);
        let (rn, rs, _) = reference(&gt, &empty, t, false);
        assert_same(&format!("{t} empty"), (&names, &stats), (&rn, &rs));
        assert!(stats.iter().all(|&s| s == 0.0 || s == -1.0), "{t}: {stats:?}");
        assert_eq!(stats[0], 0.0);
        assert_eq!(report["detections"], 0);
    }
}

/// The library call the `--model` path uses: detections in memory give the file's numbers.
#[test]
fn in_memory_detections_equal_the_file() {
    let gt = eval_fixture("coco_gt.json");
    let from_file = evaluate_coco(&gt, DetSource::File(dets("bbox")), IouType::Bbox).unwrap();
    let records: Vec<Detection> = serde_json::from_slice(&std::fs::read(dets("bbox")).unwrap()).unwrap();
    let in_memory = evaluate_coco(&gt, records.into(), IouType::Bbox).unwrap();
    let v = |r: &ticket::eval::CocoReport| r.summary.iter().map(|m| m.value).collect::<Vec<_>>();
    assert_eq!(v(&from_file), v(&in_memory));
    assert!(from_file.metric("AP").unwrap() > 0.1);
    let tide = from_file.tide.as_ref().expect("TIDE for bbox");
    assert!(tide.counts.values().sum::<u64>() > 0 && tide.delta_ap.contains_key("Miss"));
    assert_eq!(from_file.per_size.iter().map(|s| s.area.as_str()).collect::<Vec<_>>(), ["small", "medium", "large"]);
}

#[test]
fn text_report_shows_summary_categories_sizes_and_tide() {
    let out = ticket(&[&"eval", &"--coco", &eval_fixture("coco_gt.json"), &"--dets", &dets("bbox")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in ["AP50", "ARl", "person", "dog", "medium", "TIDE", "Miss"] {
        assert!(text.contains(want), "text report lacks {want}:\n{text}");
    }
}

/// VOC07 11-point and area AP per class equal the devkit's voc_eval on the same files.
#[test]
fn voc_matches_the_devkit() {
    let voc = eval_fixture("voc");
    let d = eval_fixture("voc_dets.json");
    let r = ticket_json(&[&"eval", &"--voc", &voc, &"--dets", &d]);
    let reference: Value = serde_json::from_str(&tool("voc_reference.py", &[&voc, &d])).unwrap();
    let rc = reference["classes"].as_object().unwrap();
    let classes = r["classes"].as_array().unwrap();
    assert_eq!(classes.len(), rc.len());
    let (mut m07, mut marea, mut n) = (0.0, 0.0, 0);
    for c in classes {
        let name = c["name"].as_str().unwrap();
        let want = &rc[name];
        assert_eq!(c["gt"], want["npos"], "{name}: npos");
        for key in ["ap_voc07", "ap_area"] {
            match (c[key].as_f64(), want[key].as_f64()) {
                (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-12, "{name} {key}: {a} vs devkit {b}"),
                (None, None) => {}
                (a, b) => panic!("{name} {key}: {a:?} vs devkit {b:?}"),
            }
        }
        if let (Some(a), Some(b)) = (want["ap_voc07"].as_f64(), want["ap_area"].as_f64()) {
            m07 += a;
            marea += b;
            n += 1;
        }
    }
    assert!((r["map_voc07"].as_f64().unwrap() - m07 / n as f64).abs() <= 1e-12);
    assert!((r["map_area"].as_f64().unwrap() - marea / n as f64).abs() <= 1e-12);
    assert!(classes.iter().any(|c| c["difficult"].as_u64().unwrap() > 0), "fixture has difficult objects");
}

/// The devkit's 11 recall points are `np.arange(0, 1.1, 0.1)`, where the fourth is 0.30000000000000004: a class
/// with recall exactly 3/10 (the fixture's trees, all three hits ranked first) scores 3/11, not 4/11.
#[test]
fn voc07_grid_is_numpy_arange_so_recall_3_of_10_misses_the_0_3_point() {
    let r = ticket_json(&[&"eval", &"--voc", &eval_fixture("voc"), &"--dets", &eval_fixture("voc_dets.json")]);
    let tree = r["classes"].as_array().unwrap().iter().find(|c| c["name"] == "tree").unwrap().clone();
    assert_eq!((tree["gt"].as_u64(), tree["tp"].as_u64()), (Some(10), Some(3)));
    assert!((tree["ap_voc07"].as_f64().unwrap() - 3.0 / 11.0).abs() < 1e-15, "{tree}");
    assert!((tree["ap_area"].as_f64().unwrap() - 0.3).abs() < 1e-15, "{tree}");
    let ghost = r["classes"].as_array().unwrap().iter().find(|c| c["name"] == "ghost").unwrap().clone();
    assert!(ghost["ap_voc07"].is_null() && ghost["gt"] == 0 && ghost["difficult"] == 1, "all-difficult class: {ghost}");
}

/// Every bad input: exit 2, one line on stderr that names the file and the problem, nothing on stdout.
#[test]
fn bad_inputs_exit_2_with_one_line_naming_the_file() {
    let dir = tempdir();
    let d = dir.path();
    let gt = eval_fixture("coco_gt.json");
    let good = dets("bbox");
    let write = |name: &str, body: &str| {
        let p = d.join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let broken_gt = write("broken_gt.json", "{\"images\": [{\"id\": 1,");
    let not_list = write("object_dets.json", "{\"image_id\": 1}");
    let broken_dets = write("broken_dets.json", "[{\"image_id\": 1, \"category_id\": 1, \"bbox\": [1, 2, 3");
    let unknown_image = write(
        "unknown_image.json",
        r#"[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}, {"image_id": 999, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}]"#,
    );
    let unknown_cat = write("unknown_cat.json", r#"[{"image_id": 1, "category_id": 2, "bbox": [1, 2, 3, 4], "score": 0.5}]"#);
    let boxes_for_segm = good.clone();
    let voc_unknown_class =
        write("voc_unknown_class.json", r#"[{"image_id": "000100", "category": "unicorn", "bbox": [1, 2, 3, 4], "score": 0.5}]"#);
    let voc_unknown_image =
        write("voc_unknown_image.json", r#"[{"image_id": "999999", "category": "car", "bbox": [1, 2, 3, 4], "score": 0.5}]"#);
    let empty_voc = d.join("empty_voc");
    std::fs::create_dir(&empty_voc).unwrap();
    let missing = d.join("missing.json");
    let voc = eval_fixture("voc");
    let cases: Vec<(Vec<&dyn AsRef<std::ffi::OsStr>>, &Path, &str)> = vec![
        (vec![&"--coco", &broken_gt, &"--dets", &good], &broken_gt, "not a COCO annotation file"),
        (vec![&"--coco", &missing, &"--dets", &good], &missing, "No such file"),
        (vec![&"--coco", &gt, &"--dets", &missing], &missing, "No such file"),
        (vec![&"--coco", &gt, &"--dets", &not_list], &not_list, "not a JSON list"),
        (vec![&"--coco", &gt, &"--dets", &broken_dets], &broken_dets, "not a JSON list"),
        (vec![&"--coco", &gt, &"--dets", &unknown_image], &unknown_image, "detection 1: image_id 999"),
        (vec![&"--coco", &gt, &"--dets", &unknown_cat], &unknown_cat, "category_id 2"),
        (vec![&"--coco", &gt, &"--dets", &boxes_for_segm, &"--iou-type", &"segm"], &boxes_for_segm, "segmentation"),
        (vec![&"--voc", &voc, &"--dets", &voc_unknown_class], &voc_unknown_class, "unicorn"),
        (vec![&"--voc", &voc, &"--dets", &voc_unknown_image], &voc_unknown_image, "999999"),
        (vec![&"--voc", &empty_voc, &"--dets", &good], &empty_voc, "no VOC annotations"),
        (vec![&"--voc", &missing, &"--dets", &good], &missing, "No such file"),
    ];
    for (args, file, problem) in cases {
        let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"eval"];
        all.extend(args);
        let out = ticket(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        let shown: Vec<String> = all.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
        assert_eq!(out.status.code(), Some(2), "{shown:?}: exit code, stderr: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{shown:?}: one line, got: {err}");
        assert!(err.contains(&file.display().to_string()), "{shown:?}: error names {}: {err}", file.display());
        assert!(err.contains(problem), "{shown:?}: error says {problem:?}: {err}");
        assert!(!err.contains("panicked"), "{shown:?}: {err}");
        assert!(out.stdout.is_empty(), "{shown:?}: stdout {}", String::from_utf8_lossy(&out.stdout));
    }
}

/// Past 8192 values, hotcoco and pycocotools-on-numpy-2.2 can disagree in the last bit of a summary mean, and
/// neither is wrong: both average the same precision entries (pycocotools' summarize: `np.mean(s[s > -1])`),
/// only the addition order differs. numpy 2.2 (pinned in tools/requirements.txt) sums a contiguous array pairwise
/// within blocks of 8192 values (the ufunc buffer) and adds the blocks left to right; numpy 2.4 (checked with
/// 2.4.6) sums it pairwise as a whole, and so does hotcoco (metrics/sum.rs, a port of numpy's pairwise_sum). The
/// fixture above has 3 categories, 10 × 101 × 3 < 8192 values, and agrees bit for bit; 20 categories give
/// 10 × 101 × 20 values per AP. This pins hotcoco's order (numpy 2.4's, recomputed from pycocotools' own
/// precision array by tools/coco_reference.py --whole-pairwise) and bounds the difference from np.mean.
#[test]
fn means_over_8192_values_sum_like_numpy_2_4_not_numpy_2_2_blocks() {
    let dir = tempdir();
    let d = dir.path();
    tool("bench_eval.py", &[&"--write", &d, &"--images", &"100", &"--categories", &"20", &"--iou-type", &"bbox"]);
    let (gt, dets) = (d.join("gt.json"), d.join("dets.json"));
    let (names, stats, _) = ours(&gt, &dets, "bbox");
    let v: Value = serde_json::from_str(&tool("coco_reference.py", &[&gt, &dets, &"--whole-pairwise"])).unwrap();
    let floats = |k: &str| v[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect::<Vec<_>>();
    assert_same("numpy 2.4 order", (&names, &stats), (&names, &floats("stats_whole_pairwise")));
    let np_mean = floats("stats");
    let ulps = stats.iter().zip(&np_mean).filter(|(a, b)| a != b).count();
    for ((n, a), b) in names.iter().zip(&stats).zip(&np_mean) {
        assert!((a - b).abs() <= 1e-15, "{n}: {a} vs np.mean {b}");
    }
    eprintln!("{ulps} of {} summary numbers differ from this numpy's np.mean in the last bits", stats.len());
}
