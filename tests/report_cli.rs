//! `ticket report` over IMP run folders end to end: every figure renders (PNG decodes, is not blank, is
//! referenced from report.md, has its SVG), the tables hold the metrics files' numbers, replicates are grouped,
//! runs of different models are grouped by model and said so, and a run missing a level is exit 2.
//!
//! The run folders are written here with the library's own types (ImpConfig, LevelRow, real COCO reports from
//! hotcoco on the eval fixtures, a real prune report of a fixture model, EarlyBirdReport, StepRecord,
//! ImpSummary), so a change of the run format breaks this test instead of the report.
mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use ticket::data::DataSpec;
use ticket::eval::{evaluate_coco, DetSource, Detection, IouType};
use ticket::lottery::early_bird::{EarlyBirdMask, EarlyBirdReport};
use ticket::lottery::imp::Structure;
use ticket::lottery::level::Scores;
use ticket::lottery::{ImpConfig, ImpSummary, LevelRow, Rewind};
use ticket::model::ModelState;
use ticket::prune::Scope;
use ticket::train::log::StepRecord;
use ticket::train::RunConfig;

const ROUNDS: usize = 2;

fn config(seed: u64, scope: Scope, fingerprint: &str) -> ImpConfig {
    let gt = fixtures().join("eval/coco_gt.json");
    let train = RunConfig {
        model: fixture("maskrcnn_r18_fpn.onnx"),
        model_fingerprint: fingerprint.into(),
        data: DataSpec::Coco { annotations: gt.clone(), images: "images".into() },
        masks: None,
        steps: 20,
        lr: 0.01,
        optimizer: "sgd".into(),
        momentum: 0.9,
        weight_decay: 1e-4,
        clip_grad_norm: None,
        clip_from_step: None,
        warmup: 0,
        warmup_factor: 1e-3,
        decay_at: vec![],
        gamma: 0.1,
        shape: ticket::graph::train_core::TrainShape {
            batch: 2,
            height: 128,
            width: 128,
            rois_per_image: 64,
            mask_rois_per_image: 16,
            keypoint_rois_per_image: 16,
            pooling: None,
        },
        min_size: 128,
        max_size: 128,
        trainable_layers: 5,
        flip: 0.5,
        seed,
        save_every: 10,
        device: "cpu".into(),
        distill: None,
        threads: None,
    };
    ImpConfig {
        model: fixture("maskrcnn_r18_fpn.onnx"),
        model_fingerprint: fingerprint.into(),
        trained: None,
        trained_fingerprint: None,
        masks_from: None,
        val: DataSpec::Coco { annotations: gt, images: "images".into() },
        sparsity: 0.8,
        rounds: ROUNDS,
        scope,
        modules: None,
        min_layer_density: None,
        rewind: Rewind::Init,
        mask: Default::default(),
        floor_on: None,
        dense_steps: 20,
        train,
        early_bird: vec![0.25, 0.5],
        early_stop_every: 0,
        max_map_drop: 0.5,
        agreement_score: None,
        val_every: 0,
        threads: 1,
        structure: Structure::Weight,
        importance: Default::default(),
        round_to: 8,
        distill: None,
    }
}

/// The eval fixture's detections, worse at each level: every k-th dropped and scores shrunk, so levels differ.
fn level_reports(level: usize, seed: u64) -> Vec<ticket::eval::CocoReport> {
    let gt = fixtures().join("eval/coco_gt.json");
    let mut out = Vec::new();
    for t in [IouType::Bbox, IouType::Segm] {
        let file = fixtures().join(format!("eval/coco_dets_{}.json", t.as_str()));
        let mut dets: Vec<Detection> = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        if level > 0 {
            let k = 7 - level - seed as usize % 2;
            dets = dets.into_iter().enumerate().filter(|(i, _)| i % k != 0).map(|(_, d)| d).collect();
            for (i, d) in dets.iter_mut().enumerate() {
                d.score = d.score.map(|s| s * (1.0 - 0.1 * ((i * (level + 1)) % 5) as f64));
            }
        }
        out.push(evaluate_coco(&gt, DetSource::Records(dets), t).unwrap());
    }
    out
}

fn scores(reports: &[ticket::eval::CocoReport]) -> BTreeMap<String, Scores> {
    reports
        .iter()
        .map(|r| {
            let m = |n: &str| r.metric(n);
            (
                r.iou_type.as_str().to_string(),
                Scores { ap: m("AP"), ap50: m("AP50"), ap75: m("AP75"), ap_small: m("APs"), ap_medium: m("APm"), ap_large: m("APl") },
            )
        })
        .collect()
}

/// A finished IMP run folder, levels 0..=ROUNDS, with `skip_level` left out.
fn write_run(dir: &Path, config: &ImpConfig, skip_level: Option<usize>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("run.json"), serde_json::to_vec_pretty(config).unwrap()).unwrap();
    let mut state = ModelState::import(&config.model).unwrap();
    let seed = config.train.seed;
    let mut rows = Vec::new();
    for level in 0..=ROUNDS {
        let reports = level_reports(level, seed);
        let prune = (level > 0).then(|| ticket::prune::prune(&mut state, &config.prune_params(level).unwrap()).unwrap());
        let network_sparsity = prune.as_ref().map_or(0.0, |p| p.network_sparsity);
        let row = LevelRow {
            level,
            selected_sparsity: prune.as_ref().map_or(0.0, |p| p.selected_sparsity),
            network_sparsity,
            flops_removed: None,
            scores: scores(&reports),
            steps: 20,
            train_s: 1.5,
            latency_ms: 12.0,
            model_bytes: 1000,
            compact_bytes: (level > 0).then_some(500),
            collapsed: prune.as_ref().map_or(vec![], |p| p.collapsed.iter().map(|c| c.0.clone()).collect()),
        };
        let early_bird = (level == 0).then(|| EarlyBirdReport {
            masks: config
                .early_bird
                .iter()
                .map(|&f| EarlyBirdMask {
                    fraction: f,
                    step: (f * 20.0) as u64,
                    file: "eb.safetensors".into(),
                    iou_with_final: 0.5 + f * 0.8 - seed as f64 * 0.01,
                    hamming_to_final: 0.1,
                })
                .collect(),
            checks: vec![],
            stopped_at: None,
        });
        rows.push(row.clone());
        if Some(level) == skip_level {
            continue;
        }
        let ldir = dir.join(format!("level_{level}"));
        std::fs::create_dir_all(&ldir).unwrap();
        let metrics = serde_json::json!({"row": row, "reports": reports, "prune": prune, "early_bird": early_bird});
        std::fs::write(ldir.join("metrics.json"), serde_json::to_vec_pretty(&metrics).unwrap()).unwrap();
        let mut log = String::new();
        for step in 1..=20u64 {
            let loss = 3.0 / (step as f32).sqrt() * (1.0 + 0.1 * level as f32);
            let r = StepRecord {
                step,
                loss,
                terms: BTreeMap::from([("loss_classifier".into(), loss / 2.0)]),
                lr: 0.01,
                proposals: 100,
                positive_rois: 10,
                data_s: 0.01,
                rpn_s: 0.02,
                teacher_s: 0.0,
                step_s: 0.03,
                grad_norm: None,
            };
            log += &serde_json::to_string(&r).unwrap();
            log.push('\n');
        }
        std::fs::write(ldir.join("log.jsonl"), log).unwrap();
    }
    let delta = rows.iter().map(|l| l.delta(&rows[0])).collect();
    let summary = ImpSummary {
        run_dir: dir.into(),
        levels: rows,
        delta,
        max_map_drop: 0.5,
        ticket_level: Some(ROUNDS),
        ticket: None,
        early_bird: None,
        agreement_with: None,
    };
    std::fs::write(dir.join("summary.json"), serde_json::to_vec_pretty(&summary).unwrap()).unwrap();
}

fn metrics(run: &Path, level: usize) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join(format!("level_{level}/metrics.json"))).unwrap()).unwrap()
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() as f64 - 1.0).max(1.0);
    (m, if v.len() > 1 { var.sqrt() } else { 0.0 })
}

/// The Markdown table row that starts with `first` after the line containing `after`.
fn row_after<'a>(md: &'a str, after: &str, first: &str) -> Vec<&'a str> {
    let start = md.find(after).unwrap_or_else(|| panic!("'{after}' not in report"));
    let line =
        md[start..].lines().find(|l| l.starts_with(&format!("| {first} |"))).unwrap_or_else(|| panic!("no row '{first}' after '{after}'"));
    line.trim_matches('|').split(" | ").map(str::trim).collect()
}

/// Each figure's PNG decodes, is not blank, is referenced from the Markdown, and has its SVG.
fn check_figures(out: &Path, figures: &[String], md: &str) {
    for f in figures {
        let img = image::open(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}")).to_rgb8();
        // 900 × 540 for the chart, and a legend strip under it, a line per entry.
        let (w, h) = img.dimensions();
        assert!(w == 900 && (540..=540 + 12 + 22 * 16).contains(&h), "{f}: {w}×{h}");
        // Not blank: a plot has axes, text and data in several colours over a white page.
        let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        colours.sort();
        colours.dedup();
        assert!(
            non_white > 900 * 540 / 50 /* of the chart alone */ && colours.len() > 8,
            "{f}: {non_white} non-white pixels, {} colours",
            colours.len()
        );
        assert!(md.contains(&format!("]({f})")), "{f} is not referenced from report.md");
        let svg = std::fs::read_to_string(out.join(f.replace(".png", ".svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<text"), "{f}: SVG");
    }
}

fn figure_names(r: &serde_json::Value) -> Vec<String> {
    r["figures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| Path::new(f.as_str().unwrap()).file_name().unwrap().to_str().unwrap().to_string())
        .collect()
}

fn runs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let fp = ticket::fsio::fingerprint(&fixture("maskrcnn_r18_fpn.onnx")).unwrap();
    let (a, b, c) = (dir.join("global_s1"), dir.join("global_s2"), dir.join("layer_s1"));
    write_run(&a, &config(1, Scope::Global, &fp), None);
    write_run(&b, &config(2, Scope::Global, &fp), None);
    write_run(&c, &config(1, Scope::Layer, &fp), None);
    (a, b, c)
}

#[test]
fn report_renders_every_figure_and_the_metrics_numbers() {
    let dir = tempdir();
    let (a, b, c) = runs(dir.path());
    let out = dir.path().join("report");
    let r = ticket_json(&[&"report", &a, &b, &c, &"-o", &out]);
    // Two groups: the global replicates (seeds 1, 2) and the layer-wise run; they differ in scope only.
    let groups = r["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{r}");
    assert_eq!(groups[0]["runs"].as_array().unwrap().len(), 2);
    assert_eq!(groups[0]["label"], "scope=global");
    assert_eq!(groups[1]["label"], "scope=layer");
    // The legends' names: the method in words.
    assert_eq!(groups[0]["method"], format!("iterative ({ROUNDS} levels)"));
    assert_eq!(groups[1]["method"], format!("iterative layer-wise ({ROUNDS} levels)"));
    assert_eq!(r["models"], 1);

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let figures = figure_names(&r);
    let expected = [
        "ap_bbox.png",
        "ap50_bbox.png",
        "ap_segm.png",
        "ap50_segm.png",
        "layers_g0.png",
        "layers_g1.png",
        "delta_size_bbox.png",
        "delta_category_bbox.png",
        "tide_g0.png",
        "loss_g0.png",
        "early_bird.png",
    ];
    for e in expected {
        assert!(figures.iter().any(|f| f == e), "{e} missing from {figures:?}");
    }
    check_figures(&out, &figures, &md);

    // The levels table equals the metrics files: the single layer-wise run to the printed digit, the global
    // replicates as mean ± std.
    for level in 0..=ROUNDS {
        let m = metrics(&c, level);
        let row = row_after(&md, "### Group 1", &level.to_string());
        assert_eq!(row[1], format!("{:.2}%", 100.0 * m["row"]["network_sparsity"].as_f64().unwrap()));
        assert_eq!(row[3], format!("{:.4}", m["row"]["scores"]["bbox"]["ap"].as_f64().unwrap()), "level {level}: {row:?}");
        assert_eq!(row[4], format!("{:.4}", m["row"]["scores"]["bbox"]["ap50"].as_f64().unwrap()));

        let ap: Vec<f64> = [&a, &b].iter().map(|r| metrics(r, level)["row"]["scores"]["segm"]["ap"].as_f64().unwrap()).collect();
        let (mean, std) = mean_std(&ap);
        let row = row_after(&md, "### Group 0", &level.to_string());
        assert_eq!(row[6], format!("{mean:.4} ± {std:.4}"), "level {level}: {row:?}");
        assert!(level == 0 || std > 0.0, "the replicates differ");
    }
    // Per size and TIDE of the layer-wise run: the shown level (the ticket, level 2) against dense.
    let (dense, ticket) = (metrics(&c, 0), metrics(&c, ROUNDS));
    let size_ap = |m: &serde_json::Value, area: &str| {
        m["reports"][0]["per_size"].as_array().unwrap().iter().find(|s| s["area"] == area).unwrap()["ap"].as_f64().unwrap()
    };
    let row = row_after(&md, "Group 1, bbox, level 2 vs dense, per object size", "medium");
    assert_eq!(row[1], format!("{:.4}", size_ap(&ticket, "medium") - size_ap(&dense, "medium")));
    let tide = |m: &serde_json::Value| m["reports"][0]["tide"]["delta_ap"]["Loc"].as_f64().unwrap();
    let row = row_after(&md, "Group 1, bbox: AP50 gained", "Loc");
    assert_eq!(row[1..], [format!("{:.4}", tide(&dense)), format!("{:.4}", tide(&ticket))]);
    // Per layer: the prune report's tensors, kept/numel.
    let t0 = &ticket["prune"]["tensors"][0];
    let row = row_after(&md, "Group 1, level 2 (first seed)", "0");
    assert_eq!(row[1], format!("`{}`", t0["name"].as_str().unwrap()));
    assert_eq!(row[4], format!("{:.2}%", 100.0 * (1.0 - t0["kept"].as_f64().unwrap() / t0["numel"].as_f64().unwrap())));
    // Collapsed tensors are named in the levels table (the replicates prune the same weights: same names).
    let collapsed: Vec<String> =
        metrics(&a, ROUNDS)["row"]["collapsed"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert!(!collapsed.is_empty(), "80% global magnitude on the random-init fixture collapses the RPN head");
    assert_eq!(row_after(&md, "### Group 0", "2")[9], collapsed.join(", "));
    // Early bird: the level-0 IoUs, mean ± std over the replicates.
    let iou: Vec<f64> = [&a, &b].iter().map(|r| metrics(r, 0)["early_bird"]["masks"][1]["iou_with_final"].as_f64().unwrap()).collect();
    let (mean, std) = mean_std(&iou);
    assert_eq!(row_after(&md, "## Early-bird", "0.500")[1], format!("{mean:.4} ± {std:.4}"));
}

#[test]
fn report_groups_runs_of_different_models_and_refuses_a_missing_level() {
    let dir = tempdir();
    let (a, _, _) = runs(dir.path());
    let other = dir.path().join("other_model");
    let mut c = config(1, Scope::Global, "0123456789abcdef");
    c.model = fixture("maskrcnn_r50_fpn.onnx");
    write_run(&other, &c, None);
    let out = dir.path().join("mixed");
    let r = ticket_json(&[&"report", &a, &other, &"-o", &out]);
    assert_eq!(r["models"], 2);
    let groups = r["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_ne!(groups[0]["arch"], groups[1]["arch"]);
    assert!(groups[1]["label"].as_str().unwrap().starts_with("arch=arch-"), "{r}");
    // Legends name each architecture by its size, never by its fingerprint.
    for (g, model) in groups.iter().zip(["maskrcnn_r18_fpn.onnx", "maskrcnn_r50_fpn.onnx"]) {
        let params: usize =
            ModelState::import(&fixture(model)).unwrap().weights.tensors.iter().map(|t| t.shape.iter().product::<usize>()).sum();
        assert_eq!(g["params"], params as u64, "{model}");
        let method = g["method"].as_str().unwrap();
        let words = ticket::lottery::report::runs::arch_words(Some(params as u64), "");
        assert!(words.starts_with(&params.to_string()) || words.starts_with(&format!("{:.2} M", params as f64 / 1e6)), "{words}");
        assert!(method.contains(&words) && !method.contains("arch-"), "{method}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("**These runs come from 2 different architectures**"), "{md}");
    // Each ticket against its own dense model, one curve per architecture (the width study's figure).
    let figures = figure_names(&r);
    assert!(
        figures.contains(&"ap_delta_by_model_bbox.png".to_string()) && figures.contains(&"ap_delta_by_model_segm.png".to_string()),
        "{figures:?}"
    );
    check_figures(&out, &figures, &md);
    let single = ticket_json(&[&"report", &a, &"-o", &dir.path().join("single")]);
    assert!(!figure_names(&single).iter().any(|f| f.starts_with("ap_delta_by_model")), "one architecture has no by-model figure");
    let text = ticket(&[&"report", &a, &other, &"-o", &out]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("2 different models"));

    // A run folder missing a level, a folder that is no run, no run at all: exit 2, one line, nothing written.
    let broken = dir.path().join("broken");
    write_run(&broken, &config(3, Scope::Global, "0123456789abcdef"), Some(1));
    let not_run = dir.path().join("not_a_run");
    std::fs::create_dir_all(&not_run).unwrap();
    let out = dir.path().join("never");
    for (args, name) in [
        (vec![&"report" as &dyn AsRef<std::ffi::OsStr>, &a, &broken, &"-o", &out], "level_1"),
        (vec![&"report", &not_run, &"-o", &out], "not_a_run"),
        (vec![&"report", &"-o", &out], "RUNS"),
    ] {
        let r = ticket(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(name), "{name}: {err}");
        if name != "RUNS" {
            assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
        }
        assert!(!out.exists(), "{name}: wrote a partial report");
    }
}

/// A miniature real run (`ticket imp` on the narrow synthetic Mask R-CNN, 2 levels of 6 steps, an early-bird
/// mask at mid-training): the report reads what imp writes, and its tables hold the run's numbers.
#[test]
fn report_of_a_real_miniature_imp_run() {
    let dir = tempdir();
    let d = dir.path();
    for (name, n, seed) in [("train", "4", "5"), ("val", "2", "6")] {
        let out = ticket(&[&"data", &"synth", &"--out", &d.join(name), &"--images", &n, &"--seed", &seed]);
        assert!(out.status.success(), "synth: {}", String::from_utf8_lossy(&out.stderr));
    }
    let run = d.join("run");
    ticket_json(&[
        &"imp",
        &fixture("train/maskrcnn_r18_fpn_synth.onnx"),
        &"--coco",
        &d.join("train/annotations.json"),
        &"--val-coco",
        &d.join("val/annotations.json"),
        &"--sparsity",
        &"0.8",
        &"--rounds",
        &"2",
        &"--steps",
        &"6",
        &"--warmup",
        &"2",
        &"--save-every",
        &"3",
        &"--rois",
        &"32",
        &"--threads",
        &"1",
        &"--early-bird",
        &"0.5",
        &"--max-map-drop",
        &"1",
        &"-o",
        &run,
    ]);
    let out = d.join("report");
    let r = ticket_json(&[&"report", &run, &"-o", &out]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let figures = figure_names(&r);
    for e in [
        "ap_bbox.png",
        "ap50_segm.png",
        "layers_g0.png",
        "delta_size_bbox.png",
        "delta_category_segm.png",
        "tide_g0.png",
        "loss_g0.png",
        "early_bird.png",
    ] {
        assert!(figures.iter().any(|f| f == e), "{e} missing from {figures:?}");
    }
    check_figures(&out, &figures, &md);
    for level in 0..=2 {
        let m = metrics(&run, level);
        let row = row_after(&md, "### Group 0", &level.to_string());
        assert_eq!(row[1], format!("{:.2}%", 100.0 * m["row"]["network_sparsity"].as_f64().unwrap()), "level {level}");
        for (i, t) in [(3, "bbox"), (6, "segm")] {
            assert_eq!(row[i], format!("{:.4}", m["row"]["scores"][t]["ap"].as_f64().unwrap()), "level {level} {t}");
            assert_eq!(row[i + 1], format!("{:.4}", m["row"]["scores"][t]["ap50"].as_f64().unwrap()), "level {level} {t}");
        }
    }
    let eb = &metrics(&run, 0)["early_bird"]["masks"][0];
    assert_eq!(row_after(&md, "## Early-bird", "0.500")[1], format!("{:.4}", eb["iou_with_final"].as_f64().unwrap()));
}
