//! Pascal VOC evaluation: per-class AP at IoU > 0.5, both the VOC2007 11-point AP and the VOC2010+ area
//! ("all-points") AP, and their means over classes (mAP).
//!
//! hotcoco has no VOC protocol, and COCO's matcher is not VOC's: VOC takes each detection's single best-overlap
//! ground truth (difficult ones included) and scores a second hit on it as a false positive, where COCO moves on
//! to the next unmatched ground truth; VOC ignores a hit on a difficult object by IoU, COCO a hit on a crowd by
//! intersection-over-detection; VOC needs IoU > 0.5, COCO ≥ 0.5; VOC caps nothing, COCO 100 per image. So the
//! matching below is the devkit's (`voc_eval.py`), and everything else is hotcoco's: the XML reading and the
//! VOC → COCO box convention (`convert::voc_to_coco`), the IoU (`primitives::sim::bbox_iou`) and both AP
//! integrals (`metrics::counts`). tests/eval_metrics.rs checks the result against tools/voc_reference.py.
use super::{computed, read_file, DetSource, Detection};
pub use crate::data::voc::{VocDataset, VocImage};
use crate::error::{Error, Result};
use crate::progress::{silent, Progress};
use hotcoco::metrics::counts::{average_precision_all_points, average_precision_ranked, cumulative_tp_fp};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The VOC2007 devkit samples precision at `np.arange(0., 1.1, 0.1)`, whose values are `i * 0.1`: 0.3 is
/// 0.30000000000000004 there, so a recall of exactly 3/10 does not reach that grid point. Matching the devkit
/// needs those exact values, not the tenths.
fn voc07_recall_grid() -> Vec<f64> {
    (0..=10).map(|i| i as f64 * 0.1).collect()
}

/// The devkit's positive-overlap rule: strictly more than half.
const VOC_IOU_THRESHOLD: f64 = 0.5;

#[derive(Debug, Clone, Serialize)]
pub struct VocClassRow {
    pub id: u64,
    pub name: String,
    /// Objects that count (not difficult), the devkit's `npos`.
    pub gt: usize,
    pub difficult: usize,
    pub detections: usize,
    pub tp: usize,
    pub fp: usize,
    /// `None` when the class has no non-difficult object (the devkit divides by zero there).
    pub ap_voc07: Option<f64>,
    pub ap_area: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VocReport {
    pub voc: PathBuf,
    pub dets: PathBuf,
    pub images: usize,
    pub detections: usize,
    pub iou_threshold: f64,
    pub classes: Vec<VocClassRow>,
    /// Means over the classes that have an AP.
    pub map_voc07: Option<f64>,
    pub map_area: Option<f64>,
}

/// Evaluates detections against VOC annotations (see [`DetSource`] for the accepted record forms).
pub fn evaluate_voc(voc: &Path, dets: DetSource) -> Result<VocReport> {
    VocDataset::load(voc)?.evaluate(dets, &mut silent)
}

/// A VOC detection record on disk: ids or names for image and class, a COCO `[x, y, w, h]` box in the frame
/// `voc_to_coco` puts ground truth in (x = xmin − 1, w = xmax − xmin + 1).
#[derive(Deserialize)]
struct VocDetRecord {
    image_id: IdOrName,
    #[serde(default)]
    category_id: Option<IdOrName>,
    #[serde(default)]
    category: Option<String>,
    bbox: [f64; 4],
    score: f64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdOrName {
    Id(u64),
    Name(String),
}

impl VocDataset {
    /// Detection records from a file: image by stem, file name or id; class by name or id.
    fn read_dets(&self, path: &Path) -> Result<Vec<Detection>> {
        let records: Vec<VocDetRecord> = super::parse_json_list(path, &read_file(path)?)?;
        let by_name: HashMap<&str, u64> =
            self.images.iter().flat_map(|i| [(i.stem.as_str(), i.id), (i.file_name.as_str(), i.id)]).collect();
        let class_id: HashMap<&str, u64> = self.classes.iter().enumerate().map(|(i, c)| (c.as_str(), i as u64 + 1)).collect();
        records
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let fail = |msg: String| Error::input(path, format!("detection {i}: {msg}"));
                let image_id = match r.image_id {
                    IdOrName::Id(id) => id,
                    IdOrName::Name(n) => *by_name
                        .get(n.as_str())
                        .ok_or_else(|| fail(format!("image \"{n}\" has no annotation file in {}", self.dir.display())))?,
                };
                let category_id = match (r.category_id, r.category) {
                    (Some(IdOrName::Id(id)), _) => id,
                    (Some(IdOrName::Name(n)), _) | (None, Some(n)) => *class_id.get(n.as_str()).ok_or_else(|| {
                        fail(format!("class \"{n}\" is not a class of {} (list all classes in labels.txt there)", self.dir.display()))
                    })?,
                    (None, None) => return Err(fail("no category_id or category".into())),
                };
                Ok(Detection { image_id, category_id, bbox: Some(r.bbox), score: Some(r.score), ..Default::default() })
            })
            .collect()
    }

    pub fn evaluate(&self, dets: DetSource, on: &mut dyn FnMut(Progress)) -> Result<VocReport> {
        let label = dets.label();
        let dets = match dets {
            DetSource::File(p) => self.read_dets(&p)?,
            DetSource::Records(v) => v,
        };
        let image_ids: std::collections::HashSet<u64> = self.images.iter().map(|im| im.id).collect();
        for (i, d) in dets.iter().enumerate() {
            let fail = |msg: String| Err(Error::input(&label, format!("detection {i}: {msg}")));
            if !image_ids.contains(&d.image_id) {
                return fail(format!("image_id {} is not an image of {}", d.image_id, self.dir.display()));
            }
            if d.category_id == 0 || d.category_id as usize > self.classes.len() {
                return fail(format!("category_id {} is not a class of {}", d.category_id, self.dir.display()));
            }
            if d.bbox.is_none() {
                return fail("no bbox".into());
            }
            if !d.score.is_some_and(f64::is_finite) {
                return fail("no finite score".into());
            }
        }

        on(Progress::Total(self.classes.len() as u64));
        on(Progress::Phase("classes"));
        let classes: Vec<VocClassRow> = (1..=self.classes.len() as u64)
            .map(|c| {
                let row = self.evaluate_class(c, &dets);
                on(Progress::Step);
                row
            })
            .collect();
        on(Progress::Done);
        let mean = |f: fn(&VocClassRow) -> Option<f64>| {
            let v: Vec<f64> = classes.iter().filter_map(f).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        Ok(VocReport {
            voc: self.dir.clone(),
            dets: label,
            images: self.images.len(),
            detections: dets.len(),
            iou_threshold: VOC_IOU_THRESHOLD,
            map_voc07: mean(|r| r.ap_voc07),
            map_area: mean(|r| r.ap_area),
            classes,
        })
    }

    /// The devkit's matching for one class, then hotcoco's AP integrals over the ranked outcome.
    fn evaluate_class(&self, class: u64, dets: &[Detection]) -> VocClassRow {
        struct Gt {
            boxes: Vec<[f64; 4]>,
            difficult: Vec<bool>,
            detected: Vec<bool>,
        }
        let mut gts: HashMap<u64, Gt> = HashMap::new();
        let (mut npos, mut n_difficult) = (0, 0);
        for a in self.dataset.annotations.iter().filter(|a| a.category_id == class) {
            let g = gts.entry(a.image_id).or_insert_with(|| Gt { boxes: vec![], difficult: vec![], detected: vec![] });
            g.boxes.push(a.bbox.expect("voc_to_coco gives every object a box"));
            // voc_to_coco carries <difficult> as iscrowd; here it keeps VOC's meaning (ignored, matched by IoU).
            g.difficult.push(a.iscrowd);
            g.detected.push(false);
            if a.iscrowd {
                n_difficult += 1;
            } else {
                npos += 1;
            }
        }
        let mut ranked: Vec<&Detection> = dets.iter().filter(|d| d.category_id == class).collect();
        // Highest score first; ties keep file order (the devkit's argsort is not stable, so ties are its noise).
        ranked.sort_by(|a, b| b.score.unwrap_or(0.0).total_cmp(&a.score.unwrap_or(0.0)));
        let mut matched = Vec::with_capacity(ranked.len());
        let mut ignored = Vec::with_capacity(ranked.len());
        for d in &ranked {
            let (mut tp, mut ig) = (false, false);
            if let Some(g) = gts.get_mut(&d.image_id) {
                let ious = hotcoco::primitives::sim::bbox_iou_flat(&[d.bbox.unwrap_or_default()], &g.boxes, &vec![false; g.boxes.len()]);
                // numpy's argmax: the first of equal maxima.
                let best = ious.iter().enumerate().fold(None, |best: Option<(usize, f64)>, (j, &v)| match best {
                    Some((_, b)) if b >= v => best,
                    _ => Some((j, v)),
                });
                if let Some((j, _)) = best.filter(|&(_, ov)| ov > VOC_IOU_THRESHOLD) {
                    if g.difficult[j] {
                        ig = true;
                    } else if !g.detected[j] {
                        g.detected[j] = true;
                        tp = true;
                    }
                }
            }
            matched.push(tp);
            ignored.push(ig);
        }
        let tp = matched.iter().filter(|&&m| m).count();
        let fp = matched.iter().zip(&ignored).filter(|&(&m, &i)| !m && !i).count();
        let (ap_voc07, ap_area) = if npos == 0 {
            (None, None)
        } else {
            let ap07 = average_precision_ranked(&matched, Some(&ignored), npos, &voc07_recall_grid());
            let (mut tp_cum, mut fp_cum) = (Vec::new(), Vec::new());
            cumulative_tp_fp(0..matched.len(), &matched, Some(&ignored), &mut tp_cum, &mut fp_cum);
            (computed(ap07), computed(average_precision_all_points(&tp_cum, &fp_cum, npos)))
        };
        VocClassRow {
            id: class,
            name: self.classes[class as usize - 1].clone(),
            gt: npos,
            difficult: n_difficult,
            detections: ranked.len(),
            tp,
            fp,
            ap_voc07,
            ap_area,
        }
    }
}
