//! `ticket eval`: COCO metrics (hotcoco) or Pascal VOC AP for a detection results file.
use super::{print_report, progress_bar, render_table};
use crate::error::Result;
use crate::eval::model::{check_voc_classes, default_images, evaluate_model, iou_types_of};
use crate::eval::{CocoGt, CocoReport, DetSource, EvalOptions, IouType, VocDataset, VocReport};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("truth").required(true).args(["coco", "voc", "classify"])))]
#[command(group(clap::ArgGroup::new("source").required(true).args(["dets", "model"])))]
pub struct Args {
    /// Detections: a COCO results JSON list of {image_id, category_id, score, bbox | segmentation | keypoints}.
    /// With --voc, image_id may be the annotation file's stem and the class may be given as "category": NAME.
    #[arg(long)]
    pub dets: Option<PathBuf>,
    /// Instead of --dets: run this model (tract, on CPU) over the ground truth's images.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A mask file applied to --model first.
    #[arg(long, requires = "model")]
    pub masks: Option<PathBuf>,
    /// The folder holding the ground truth's images: COCO file_name (default: `images/` next to the json, as
    /// `ticket train` reads it); VOC DIR/JPEGImages is the default there.
    #[arg(long)]
    pub images: Option<PathBuf>,
    #[command(flatten)]
    pub opts: super::detect::DetectOpts,
    /// COCO ground truth (an instances or person_keypoints JSON file).
    #[arg(long)]
    pub coco: Option<PathBuf>,
    /// Pascal VOC ground truth: a folder of xml annotations (DIR/Annotations/*.xml or DIR/*.xml).
    #[arg(long)]
    pub voc: Option<PathBuf>,
    /// IoU types to score, comma-separated (bbox,segm,keypoints). With --model all come from one detection run
    /// and the default is every type the model has; with --dets the default is bbox. `--json` prints one report,
    /// or with several types an object keyed by type (`{"bbox": …, "segm": …}`).
    #[arg(long, value_parser = super::choice::parse_choice::<IouType>(), value_delimiter = ',', conflicts_with = "voc")]
    pub iou_type: Option<Vec<IouType>>,
    /// OKS sigmas, one per keypoint, for a skeleton that is not COCO's 17 person keypoints.
    #[arg(long, value_delimiter = ',', conflicts_with = "voc")]
    pub kpt_sigmas: Option<Vec<f64>>,
    /// A classification set (DIR/labels.json + DIR/images): top-1 accuracy of the classifier --model, run in
    /// tract at the side of the set's first image (or --side).
    #[arg(long, requires = "model", conflicts_with_all = ["dets", "iou_type", "kpt_sigmas"])]
    pub classify: Option<PathBuf>,
    /// Image side for --classify (the side the classifier was trained at).
    #[arg(long, requires = "classify")]
    pub side: Option<usize>,
    /// Skip the TIDE error breakdown.
    #[arg(long, conflicts_with = "voc")]
    pub no_tide: bool,
}

/// Runs `--model` over `images`: its detections as records with the ground truth's image ids.
fn run_model_detections(
    args: &Args,
    images: Vec<(u64, PathBuf)>,
    check: impl FnOnce(&crate::model::ModelState) -> Result<()>,
    json: bool,
) -> Result<DetSource> {
    let model = args.model.as_ref().expect("clap: --model");
    let state = crate::model::ModelState::load(model, args.masks.as_deref())?;
    check(&state)?;
    let params = args.opts.params(&state)?;
    let mut det = crate::detect::pipeline::Detector::new(state, params)?;
    let (results, _) = super::detect::run_detector(&mut det, &images, json, None)?;
    Ok(DetSource::Records(results.iter().map(crate::detect::results::CocoResult::to_detection).collect()))
}

pub fn run(args: Args, json: bool) -> Result<()> {
    if let Some(dir) = &args.classify {
        let model = args.model.as_ref().expect("clap: --classify requires --model");
        let state = crate::model::ModelState::load(model, args.masks.as_deref())?;
        let data = crate::data::ClassifyDataset::load(dir)?;
        let side = match args.side {
            Some(s) => crate::data::classify::check_side(s).map_err(|m| crate::error::Error::Input(format!("--side: {m}")))?,
            None => data.side()?,
        };
        let report = crate::eval::classify::top1(&state, &data, side, &mut progress_bar(data.len() as u64, "classifying", json))?;
        print_report(json, &report, |r| {
            let rows: Vec<Vec<String>> = r
                .per_category
                .iter()
                .map(|(c, n, t)| vec![c.clone(), n.to_string(), t.map_or("-".into(), |t| format!("{:.3}", t))])
                .collect();
            format!(
                "top-1 {:.4} ({} of {} images, {} px, {:.2} ms/image)\n{}",
                r.top1,
                r.correct,
                r.images,
                r.side,
                r.latency_ms,
                render_table(&["category", "images", "top-1"], &rows)
            )
        });
        return Ok(());
    }
    if let Some(dir) = &args.voc {
        let voc = VocDataset::load(dir)?;
        let dets = match &args.dets {
            Some(d) => DetSource::File(d.clone()),
            None => {
                let images_dir = args.images.clone().unwrap_or_else(|| dir.join("JPEGImages"));
                let images = voc.image_paths(&images_dir)?;
                let classes = voc.classes.len();
                run_model_detections(&args, images, |s| check_voc_classes(s, classes, dir), json)?
            }
        };
        let report = voc.evaluate(dets, &mut progress_bar(0, "evaluating", json))?;
        print_report(json, &report, render_voc);
        return Ok(());
    }
    let gt_path = args.coco.as_ref().expect("clap requires --coco or --voc");
    let gt = CocoGt::load(gt_path)?;
    let opts = EvalOptions { kpt_oks_sigmas: args.kpt_sigmas.clone(), tide: !args.no_tide };
    let reports = match &args.dets {
        Some(d) => {
            let mut types = args.iou_type.clone().unwrap_or(vec![IouType::Bbox]);
            let mut seen = Vec::new();
            types.retain(|t| {
                !seen.contains(t) && {
                    seen.push(*t);
                    true
                }
            });
            let mut on = progress_bar(0, "evaluating", json);
            types.iter().map(|&t| gt.evaluate(DetSource::File(d.clone()), t, &opts, &mut on)).collect::<Result<Vec<_>>>()?
        }
        None => {
            let model = args.model.as_ref().expect("clap: --dets or --model");
            let dir = args.images.clone().unwrap_or_else(|| default_images(gt_path));
            let state = crate::model::ModelState::load(model, args.masks.as_deref())?;
            let types = match &args.iou_type {
                Some(t) => crate::eval::model::check_types(&state, t)?,
                None => iou_types_of(&state),
            };
            let params = args.opts.params(&state)?;
            evaluate_model(state, params, &gt, &dir, &types, &opts, &mut progress_bar(0, "detect", json))?.reports
        }
    };
    match reports.as_slice() {
        [one] => print_report(json, one, render_coco),
        many => {
            let keyed: std::collections::BTreeMap<&str, &CocoReport> = many.iter().map(|r| (r.iou_type.as_str(), r)).collect();
            print_report(json, &keyed, |_| many.iter().map(render_coco).collect::<Vec<_>>().join("\n"))
        }
    }
    Ok(())
}

fn render_num(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

fn render_coco(r: &CocoReport) -> String {
    let iou = r.iou_type.as_str();
    let mut out = format!(
        "COCO {iou} evaluation (hotcoco): {} images, {} ground-truth annotations, {} detections\n  gt:   {}\n  dets: {}\n\n",
        r.images,
        r.gt_annotations,
        r.detections,
        r.gt.display(),
        r.dets.display()
    );
    let rows: Vec<Vec<String>> = r
        .summary
        .iter()
        .map(|m| vec![m.name.clone(), render_num(m.value), m.iou.clone(), m.area.clone(), m.max_dets.to_string()])
        .collect();
    out += &render_table(&["Metric", "Value", "IoU", "Area", "MaxDets"], &rows);

    let kp = r.iou_type == IouType::Keypoints;
    let mut header = vec!["Category", "Id", "GT", "Dets", "AP", "AP50", "AP75"];
    if !kp {
        header.push("APs");
    }
    header.extend(["APm", "APl"]);
    let rows: Vec<Vec<String>> = r
        .per_category
        .iter()
        .map(|c| {
            let mut row = vec![
                c.name.clone(),
                c.id.to_string(),
                c.gt.to_string(),
                c.detections.to_string(),
                render_num(c.ap),
                render_num(c.ap50),
                render_num(c.ap75),
            ];
            if !kp {
                row.push(render_num(c.ap_small));
            }
            row.extend([render_num(c.ap_medium), render_num(c.ap_large)]);
            row
        })
        .collect();
    out += "\n";
    out += &render_table(&header, &rows);

    let rows: Vec<Vec<String>> =
        r.per_size.iter().map(|s| vec![s.area.clone(), render_area_range(s.range), render_num(s.ap), render_num(s.ar)]).collect();
    out += "\n";
    out += &render_table(&["Size", "Area px²", "AP", "AR"], &rows);

    if let Some(t) = &r.tide {
        out += &format!(
            "\nTIDE errors at IoU {:.2} (background {:.2}); AP50 {:.3}, dAP = AP50 gained by fixing that type\n",
            t.pos_thr, t.bg_thr, t.ap_base
        );
        let rows: Vec<Vec<String>> = t
            .delta_ap
            .iter()
            .map(|(k, v)| vec![k.clone(), t.counts.get(k).map_or("-".into(), |c| c.to_string()), format!("{v:.3}")])
            .collect();
        out += &render_table(&["Error", "Count", "dAP"], &rows);
    }
    for d in &r.deviations {
        out += &format!("note: {d}\n");
    }
    out
}

fn render_voc(r: &VocReport) -> String {
    let mut out = format!(
        "Pascal VOC evaluation (IoU > {}): {} images, {} detections\n  gt:   {}\n  dets: {}\n\n",
        r.iou_threshold,
        r.images,
        r.detections,
        r.voc.display(),
        r.dets.display()
    );
    let mut rows: Vec<Vec<String>> = r
        .classes
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.gt.to_string(),
                c.difficult.to_string(),
                c.detections.to_string(),
                c.tp.to_string(),
                c.fp.to_string(),
                render_num(c.ap_voc07),
                render_num(c.ap_area),
            ]
        })
        .collect();
    rows.push(vec![
        "mAP".into(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        render_num(r.map_voc07),
        render_num(r.map_area),
    ]);
    out += &render_table(&["Class", "GT", "Difficult", "Dets", "TP", "FP", "AP VOC07", "AP area"], &rows);
    out
}

/// COCO's "no upper bound" is 1e10 (1e5²); show it as such.
fn render_area_range([lo, hi]: [f64; 2]) -> String {
    if hi >= 1e10 {
        format!("≥ {lo}")
    } else {
        format!("[{lo}, {hi})")
    }
}
