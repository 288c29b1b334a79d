//! `ticket data check`: a COCO or VOC dataset opened the way training opens it, and what it holds.
use super::Dataset;
use crate::error::{Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Serialize)]
pub struct DatasetReport {
    pub source: PathBuf,
    pub images: usize,
    pub objects: usize,
    /// (category id, name, objects).
    pub categories: Vec<(u64, String, usize)>,
    pub masks: bool,
    pub keypoints: usize,
    pub dropped_crowd: usize,
    pub dropped_degenerate: usize,
}

/// Opens a COCO json (images in `images`, default `images/` next to it) or a VOC folder (images in `images`,
/// default DIR/JPEGImages); `coco` wins when both are given.
pub fn open(coco: Option<&Path>, voc: Option<&Path>, images: Option<&Path>) -> Result<Dataset> {
    match (coco, voc) {
        (Some(ann), _) => {
            let dir = images.map(Path::to_path_buf).unwrap_or_else(|| ann.parent().unwrap_or(Path::new(".")).join("images"));
            if !dir.is_dir() {
                return Err(Error::setting_at(&dir, "images", "image folder not found (give it with `images`)"));
            }
            Dataset::from_coco(ann, &dir)
        }
        (None, Some(voc)) => Dataset::from_voc(voc, images),
        (None, None) => Err(Error::Input("give a COCO json or a VOC folder".into())),
    }
}

impl Dataset {
    /// What the dataset holds, per category and in total, and what loading it dropped.
    pub fn report(&self) -> DatasetReport {
        let categories = self
            .categories
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id, c.name.clone(), self.images.iter().flat_map(|im| &im.objects).filter(|o| o.label == i + 1).count()))
            .collect();
        DatasetReport {
            source: self.source.clone(),
            images: self.len(),
            objects: self.num_objects(),
            categories,
            masks: self.has_masks,
            keypoints: self.num_keypoints,
            dropped_crowd: self.dropped_crowd,
            dropped_degenerate: self.dropped_degenerate,
        }
    }
}
