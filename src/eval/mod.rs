//! Detection metrics. Every COCO number (AP/AR, per category, per size, TIDE) comes from `hotcoco`, which is checked
//! against pycocotools in tests/eval_metrics.rs; this module validates inputs, restricts what needs restricting,
//! and turns hotcoco's results into reports. Pascal VOC has its own matching rule (voc.rs); its AP integrals are
//! hotcoco's too.
//!
//! ```no_run
//! use ticket::eval::{evaluate_coco, DetSource, IouType};
//! # fn main() -> ticket::Result<()> {
//! let report = evaluate_coco("instances_val.json".as_ref(), DetSource::File("dets.json".into()), IouType::Bbox)?;
//! println!("AP = {:?}", report.metric("AP"));
//! # Ok(())
//! # }
//! ```
pub mod classify;
mod coco;
pub mod gate;
pub mod model;
mod voc;

pub use coco::{evaluate_coco, CategoryRow, CocoGt, CocoReport, EvalOptions, IouType, Metric, SizeRow, Summary};
pub use voc::{evaluate_voc, VocClassRow, VocDataset, VocImage, VocReport};

/// One detection, as COCO results files spell it: `image_id`, `category_id`, `score` and the geometry the IoU
/// type needs (`bbox` `[x, y, w, h]`, `segmentation` as RLE, or `keypoints` `[x, y, v] × K`). Build one with
/// `Detection { image_id, category_id, score: Some(s), bbox: Some(b), ..Default::default() }`.
pub use crate::detect::results::{Detection, Rle, Segmentation};

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Where detections come from: a results file on disk, or records a model produced in memory.
#[derive(Debug, Clone)]
pub enum DetSource {
    /// A COCO results file: a JSON list of detection records. For VOC ground truth, `image_id` may also be the
    /// annotation file's stem (`"000005"`) and the class may be given by name (`"category": "dog"`).
    File(PathBuf),
    /// Detections made in memory, with the ground truth's image and category ids.
    Records(Vec<Detection>),
}

impl From<&Path> for DetSource {
    fn from(p: &Path) -> Self {
        DetSource::File(p.to_path_buf())
    }
}

impl From<Vec<Detection>> for DetSource {
    fn from(v: Vec<Detection>) -> Self {
        DetSource::Records(v)
    }
}

impl DetSource {
    /// What error messages and reports call this source: the file, or `detections` for records in memory.
    pub fn label(&self) -> PathBuf {
        match self {
            DetSource::File(p) => p.clone(),
            DetSource::Records(_) => PathBuf::from("detections"),
        }
    }
}

/// A detections file larger than this is refused before it is read (COCO val2017 at 100 detections per image
/// with masks is about 300 MB).
pub const MAX_DETECTIONS_BYTES: u64 = 4 << 30;

/// Reads a whole input file, naming it in the error (a missing file is the user's to fix: exit 2). Regular
/// files only, bounded: `/dev/zero` or a FIFO is refused, not read until memory runs out or forever.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    crate::fsio::read_limited(path, MAX_DETECTIONS_BYTES)
}

/// The bytes of a JSON list, or an error naming the file: a results file is a list, never an object.
fn parse_json_list<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<Vec<T>> {
    serde_json::from_slice(bytes).map_err(|e| Error::input(path, format!("not a JSON list of detection records: {e}")))
}

/// `-1` is hotcoco's (and pycocotools') "not computed": no ground truth in that slice. Reports say `null`.
fn computed(v: f64) -> Option<f64> {
    hotcoco::metrics::is_computed(v).then_some(v)
}
