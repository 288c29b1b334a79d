//! COCO evaluation (bbox, segm, keypoints) through hotcoco's `COCOeval`: the 12 (10 for keypoints) summary
//! numbers, AP per category and per object size, and the TIDE error breakdown.
use super::{computed, parse_json_list, read_file, DetSource, Detection};
use crate::choice::named_choices;
use crate::error::{Context, Error, Result};
use crate::progress::{silent, Progress};
use hotcoco::{COCOeval, COCO};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IouType {
    Bbox,
    Segm,
    Keypoints,
}

named_choices!(IouType, "IoU type", [Bbox = "bbox", Segm = "segm", Keypoints = "keypoints"]);

impl IouType {
    fn hotcoco(self) -> hotcoco::IouType {
        match self {
            IouType::Bbox => hotcoco::IouType::Bbox,
            IouType::Segm => hotcoco::IouType::Segm,
            IouType::Keypoints => hotcoco::IouType::Keypoints,
        }
    }

    pub fn as_str(self) -> &'static str {
        crate::choice::Choice::name(self)
    }
}

/// Choices beyond the IoU type. The defaults are COCO's.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// OKS sigmas for a skeleton that is not COCO's 17 person keypoints (one per keypoint).
    pub kpt_oks_sigmas: Option<Vec<f64>>,
    /// Compute the TIDE error breakdown (bbox and segm): it costs a cross-category IoU pass.
    pub tide: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions { kpt_oks_sigmas: None, tide: true }
    }
}

/// One summary number with the slice it was read at, as pycocotools' summarize prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub name: String,
    /// `None` where nothing was computed (no ground truth in that area range): pycocotools prints -1.
    pub value: Option<f64>,
    /// `"0.50:0.95"` or a single threshold such as `"0.50"`.
    pub iou: String,
    pub area: String,
    pub max_dets: usize,
}

/// The summary numbers in pycocotools' order; a list in Rust, two keys in JSON (see [`CocoReport::summary`]).
#[derive(Debug, Clone, Default)]
pub struct Summary(pub Vec<Metric>);

impl std::ops::Deref for Summary {
    type Target = Vec<Metric>;
    fn deref(&self) -> &Vec<Metric> {
        &self.0
    }
}

impl Serialize for Summary {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        // Entries in pycocotools' order; `serde_json::to_value` re-sorts them by name, which a script ignores.
        struct ByName<'a>(&'a [Metric]);
        impl Serialize for ByName<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|m| (m.name.as_str(), m.value)))
            }
        }
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("summary", &ByName(&self.0))?;
        map.serialize_entry("metrics", &self.0)?;
        map.end()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoryRow {
    pub id: u64,
    pub name: String,
    /// Ground-truth objects that count (not crowd; for keypoints, with at least one labelled keypoint).
    pub gt: usize,
    pub detections: usize,
    pub ap: Option<f64>,
    pub ap50: Option<f64>,
    pub ap75: Option<f64>,
    /// `None` for keypoints, which have no small range.
    pub ap_small: Option<f64>,
    pub ap_medium: Option<f64>,
    pub ap_large: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SizeRow {
    pub area: String,
    /// Object area range in pixels², as COCO defines it (small < 32², medium < 96²).
    pub range: [f64; 2],
    pub ap: Option<f64>,
    pub ar: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CocoReport {
    pub gt: PathBuf,
    pub dets: PathBuf,
    pub iou_type: IouType,
    pub images: usize,
    /// Ground-truth annotations in the evaluated categories, crowd regions included.
    pub gt_annotations: usize,
    pub detections: usize,
    /// In JSON: `"summary": {"AP": 0.41, "AP50": …}` (what a script reads) and `"metrics": [rows]` (each number
    /// with the slice it was read at).
    #[serde(flatten)]
    pub summary: Summary,
    pub per_category: Vec<CategoryRow>,
    pub per_size: Vec<SizeRow>,
    /// TIDE (Bolya et al. 2020): how much AP50 each error type costs, counted at IoU 0.5 / background 0.1.
    pub tide: Option<hotcoco::TideErrors>,
    /// Why these numbers are not comparable with pycocotools' defaults (e.g. custom keypoint sigmas); empty
    /// when they are.
    pub deviations: Vec<String>,
}

impl CocoReport {
    /// A summary number by its standard name (`AP`, `AP50`, …, `ARl`); `None` if unknown or not computed.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.summary.iter().find(|m| m.name == name).and_then(|m| m.value)
    }
}

/// COCO ground truth, loaded once and evaluated against any number of detection sets.
pub struct CocoGt {
    path: PathBuf,
    coco: Arc<COCO>,
}

/// Evaluates detections against a COCO ground-truth file with default options, reporting no progress.
pub fn evaluate_coco(gt: &Path, dets: DetSource, iou: IouType) -> Result<CocoReport> {
    CocoGt::load(gt)?.evaluate(dets, iou, &EvalOptions::default(), &mut silent)
}

impl CocoGt {
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_dataset(path, crate::data::dataset::read_coco(path)?)
    }

    /// Ground truth from the bytes of a COCO annotation file (`path` names it in errors).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        Self::from_dataset(path, crate::data::dataset::parse_coco(path, bytes)?)
    }

    fn from_dataset(path: &Path, ds: hotcoco::Dataset) -> Result<Self> {
        // The checks of `ticket data check`: ground truth one accepts, the other accepts too.
        crate::data::dataset::validate_gt(path, &ds)?;
        let coco = COCO::from_dataset(ds);
        Ok(CocoGt { path: path.to_path_buf(), coco: Arc::new(coco) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn images(&self) -> &[hotcoco::Image] {
        &self.coco.dataset.images
    }

    pub fn categories(&self) -> &[hotcoco::Category] {
        &self.coco.dataset.categories
    }

    /// The categories keypoint AP is computed over: those that declare keypoints. pycocotools reads
    /// `num_keypoints` of every ground truth in the evaluated categories (KeyError on a box-only class), so the
    /// reference restricts `catIds` to these too.
    fn keypoint_categories(&self) -> Vec<&hotcoco::Category> {
        self.categories().iter().filter(|c| c.keypoints.as_ref().is_some_and(|k| !k.is_empty())).collect()
    }

    /// Runs hotcoco's evaluate → accumulate → summarize, then TIDE and one re-accumulation per category.
    /// `on` counts those steps (hotcoco's batch evaluate has no per-image hook; `StreamingEval` has one but
    /// drops the per-image records TIDE needs).
    pub fn evaluate(&self, dets: DetSource, iou: IouType, opts: &EvalOptions, on: &mut dyn FnMut(Progress)) -> Result<CocoReport> {
        let label = dets.label();
        let records = match dets {
            DetSource::File(p) => parse_json_list::<Detection>(&p, &read_file(&p)?)?,
            DetSource::Records(v) => v,
        };
        let cat_ids = self.evaluated_categories(iou)?;
        let sigmas = self.sigmas(iou, opts, &cat_ids)?;
        self.check_gt(iou, &cat_ids, sigmas.as_ref().map_or(0, Vec::len))?;
        self.check_dets(&label, &records, iou, sigmas.as_ref().map_or(0, Vec::len))?;

        let n_dets = records.len();
        let mut det_counts: HashMap<u64, usize> = HashMap::new();
        for d in &records {
            *det_counts.entry(d.category_id).or_default() += 1;
        }
        on(Progress::Total(4 + cat_ids.len() as u64));
        on(Progress::Phase("loading"));
        let dt = self.coco.load_res_anns(records).at(&label)?;
        on(Progress::Step);

        let mut ev = COCOeval::new(self.coco.clone(), dt, iou.hotcoco());
        ev.params.cat_ids = cat_ids.clone();
        if let Some(s) = sigmas {
            ev.params.kpt_oks_sigmas = s;
        }
        on(Progress::Phase("matching"));
        ev.evaluate().map_err(|e| Error::Input(format!("{} / {}: {e}", self.path.display(), label.display())))?;
        on(Progress::Step);
        on(Progress::Phase("accumulating"));
        ev.accumulate();
        ev.summarize_lines();
        on(Progress::Step);
        let stats = ev.stats().map(<[f64]>::to_vec).unwrap_or_default();
        let defs = ev.metric_defs();
        let summary: Vec<Metric> = defs
            .iter()
            .zip(&stats)
            .map(|(d, &v)| Metric {
                name: d.name.to_string(),
                value: computed(v),
                iou: d.iou_thr.map_or("0.50:0.95".to_string(), |t| format!("{t:.2}")),
                area: d.area_lbl.to_string(),
                max_dets: d.max_det,
            })
            .collect();
        let per_size = per_size(&ev.params, &summary);

        on(Progress::Phase("TIDE"));
        // tidecv defines its errors for boxes and masks; OKS has no "background" overlap to speak of.
        let tide = if opts.tide && iou != IouType::Keypoints {
            Some(ev.tide_errors(0.5, 0.1).map_err(|e| Error::Runtime(format!("TIDE: {e}")))?)
        } else {
            None
        };
        on(Progress::Step);
        let deviations = ev.reference_deviations();

        // Per category: the same evaluated cells re-accumulated over one category, so every number is
        // hotcoco's summarize over that category's slice of the precision array.
        on(Progress::Phase("categories"));
        let per_category = self.per_category(&mut ev, &cat_ids, &defs, &det_counts, iou, on);
        on(Progress::Done);

        let gt_annotations = self.coco.dataset.annotations.iter().filter(|a| cat_ids.contains(&a.category_id)).count();
        Ok(CocoReport {
            gt: self.path.clone(),
            dets: label,
            iou_type: iou,
            images: self.images().len(),
            gt_annotations,
            detections: n_dets,
            summary: Summary(summary),
            per_category,
            per_size,
            tide,
            deviations,
        })
    }

    /// One row per category: the evaluated cells re-accumulated over that category alone; `ev` is left set to
    /// all of `cat_ids` again.
    fn per_category(
        &self,
        ev: &mut COCOeval,
        cat_ids: &[u64],
        defs: &[hotcoco::MetricDef],
        det_counts: &HashMap<u64, usize>,
        iou: IouType,
        on: &mut dyn FnMut(Progress),
    ) -> Vec<CategoryRow> {
        let gt_counts = self.gt_counts(iou);
        let mut per_category = Vec::with_capacity(cat_ids.len());
        for &c in cat_ids {
            ev.params.cat_ids = vec![c];
            ev.accumulate();
            ev.summarize_lines();
            let s = ev.stats().unwrap_or_default();
            let get = |name: &str| defs.iter().position(|d| d.name == name).and_then(|i| s.get(i).copied()).and_then(computed);
            per_category.push(CategoryRow {
                id: c,
                name: self.coco.cat_name(c),
                gt: gt_counts.get(&c).copied().unwrap_or(0),
                detections: det_counts.get(&c).copied().unwrap_or(0),
                ap: get("AP"),
                ap50: get("AP50"),
                ap75: get("AP75"),
                ap_small: get("APs"),
                ap_medium: get("APm"),
                ap_large: get("APl"),
            });
            on(Progress::Step);
        }
        ev.params.cat_ids = cat_ids.to_vec();
        per_category
    }

    fn evaluated_categories(&self, iou: IouType) -> Result<Vec<u64>> {
        let mut ids: Vec<u64> = if iou == IouType::Keypoints {
            let kp = self.keypoint_categories();
            if kp.is_empty() {
                return Err(Error::input(
                    &self.path,
                    "no category declares \"keypoints\": keypoint evaluation needs a person-like category",
                ));
            }
            kp.iter().map(|c| c.id).collect()
        } else {
            self.categories().iter().map(|c| c.id).collect()
        };
        if ids.is_empty() {
            return Err(Error::input(&self.path, "no categories"));
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// COCO's 17 person sigmas unless given; a skeleton of another size needs its own.
    fn sigmas(&self, iou: IouType, opts: &EvalOptions, cat_ids: &[u64]) -> Result<Option<Vec<f64>>> {
        if iou != IouType::Keypoints {
            return Ok(None);
        }
        let n = hotcoco::Params::new(hotcoco::IouType::Keypoints).kpt_oks_sigmas.len();
        for c in self.keypoint_categories().into_iter().filter(|c| cat_ids.contains(&c.id)) {
            let k = c.keypoints.as_ref().map_or(0, Vec::len);
            let want = opts.kpt_oks_sigmas.as_ref().map_or(n, Vec::len);
            if k != want {
                return Err(Error::input(
                    &self.path,
                    format!(
                        "category {} ({}) declares {k} keypoints but OKS has {want} sigmas (pass one sigma per keypoint)",
                        c.id, c.name
                    ),
                ));
            }
        }
        Ok(Some(opts.kpt_oks_sigmas.clone().unwrap_or_else(|| hotcoco::Params::new(hotcoco::IouType::Keypoints).kpt_oks_sigmas)))
    }

    fn check_gt(&self, iou: IouType, cat_ids: &[u64], n_kpts: usize) -> Result<()> {
        for a in self.coco.dataset.annotations.iter().filter(|a| cat_ids.contains(&a.category_id)) {
            let missing = match iou {
                IouType::Bbox => a.bbox.is_none().then_some("a bbox"),
                // pycocotools cannot rasterise an annotation without one; hotcoco would score it as an empty mask.
                IouType::Segm => a.segmentation.is_none().then_some("a segmentation"),
                IouType::Keypoints => a.keypoints.as_ref().is_some_and(|k| k.len() != 3 * n_kpts).then_some("3 values per keypoint"),
            };
            if let Some(what) = missing {
                return Err(Error::setting_at(
                    &self.path,
                    "iou_type",
                    format!("annotation {} (image {}) lacks {what}, needed for `iou_type` {}", a.id, a.image_id, iou.as_str()),
                ));
            }
        }
        Ok(())
    }

    /// Detections must name images and categories of this ground truth (hotcoco only warns and then scores
    /// them as misses), carry the geometry the IoU type needs, and have a finite score.
    fn check_dets(&self, label: &Path, dets: &[Detection], iou: IouType, n_kpts: usize) -> Result<()> {
        for (i, d) in dets.iter().enumerate() {
            let fail = |msg: String| Err(Error::input(label, format!("detection {i}: {msg}")));
            if self.coco.get_img(d.image_id).is_none() {
                return fail(format!("image_id {} is not an image of {}", d.image_id, self.path.display()));
            }
            if let (Some(seg), Some(img)) = (&d.segmentation, self.coco.get_img(d.image_id)) {
                if let Err(e) = crate::data::dataset::check_rle(seg, (img.height, img.width)) {
                    return fail(format!("segmentation: {e}"));
                }
            }
            if self.coco.get_cat(d.category_id).is_none() {
                return fail(format!("category_id {} is not a category of {}", d.category_id, self.path.display()));
            }
            match d.score {
                Some(s) if s.is_finite() => {}
                Some(s) => return fail(format!("score {s} is not a finite number")),
                None => return fail("no score".into()),
            }
            let ok = match iou {
                IouType::Bbox => d.bbox.is_some() || d.segmentation.is_some(),
                IouType::Segm => d.segmentation.is_some(),
                IouType::Keypoints => d.keypoints.as_ref().is_some_and(|k| k.len() == 3 * n_kpts),
            };
            if !ok {
                let what = match iou {
                    IouType::Bbox => "a bbox".to_string(),
                    IouType::Segm => "a segmentation (RLE or polygons)".to_string(),
                    IouType::Keypoints => format!("{} keypoint values", 3 * n_kpts),
                };
                return Err(Error::setting_at(
                    label,
                    "iou_type",
                    format!("detection {i}: lacks {what}, needed for `iou_type` {}", iou.as_str()),
                ));
            }
        }
        Ok(())
    }

    /// Ground truths that count toward recall, per category: pycocotools ignores crowds and, for keypoints,
    /// people with no labelled keypoint.
    fn gt_counts(&self, iou: IouType) -> HashMap<u64, usize> {
        let mut n = HashMap::new();
        for a in &self.coco.dataset.annotations {
            if a.iscrowd || (iou == IouType::Keypoints && a.num_visible_keypoints() == 0) {
                continue;
            }
            *n.entry(a.category_id).or_default() += 1;
        }
        n
    }
}

/// AP and AR per area range, read off the summary (APs/ARs, APm/ARm, APl/ARl).
fn per_size(params: &hotcoco::Params, summary: &[Metric]) -> Vec<SizeRow> {
    let by_name: BTreeMap<&str, Option<f64>> = summary.iter().map(|m| (m.name.as_str(), m.value)).collect();
    params
        .area_ranges
        .iter()
        .filter(|a| a.label != "all")
        .map(|a| {
            let suffix = &a.label[..1];
            SizeRow {
                area: a.label.clone(),
                range: a.range,
                ap: by_name.get(format!("AP{suffix}").as_str()).copied().flatten(),
                ar: by_name.get(format!("AR{suffix}").as_str()).copied().flatten(),
            }
        })
        .collect()
}
