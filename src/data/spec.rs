//! Where a dataset is: COCO json and its images, a Pascal VOC folder, or a classification set. Runs save it in
//! their `run.json` (a training run's data, an IMP run's validation set).
use super::Dataset;
use crate::error::{Error, Result};
use crate::fsio::absolute;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where a dataset is: a run's training data, an IMP run's validation set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DataSpec {
    Coco {
        annotations: PathBuf,
        images: PathBuf,
    },
    Voc {
        dir: PathBuf,
        images: Option<PathBuf>,
    },
    /// A classification set (`data::classify`): a classifier trains on it.
    Classify {
        dir: PathBuf,
    },
    /// A folder of images without annotations: a detector trains on its teacher's confident detections
    /// (`train::pseudo`).
    Unlabeled {
        dir: PathBuf,
    },
}

impl DataSpec {
    /// The detection dataset (COCO or VOC).
    pub fn load(&self) -> Result<Dataset> {
        match self {
            DataSpec::Coco { annotations, images } => Dataset::from_coco(annotations, images),
            DataSpec::Voc { dir, images } => Dataset::from_voc(dir, images.as_deref()),
            DataSpec::Classify { dir } => Err(Error::input(dir, "is a classification set; a detector trains on COCO or VOC data")),
            DataSpec::Unlabeled { dir } => Err(Error::input(dir, "holds images without annotations: they are labelled by a teacher first")),
        }
    }
}

/// A COCO json's image folder when none is given: `images` next to the json.
pub fn default_images(annotations: &Path) -> PathBuf {
    annotations.parent().unwrap_or(Path::new(".")).join("images")
}

impl DataSpec {
    /// The one dataset given, as a COCO json, a VOC folder or a classification set (`images`: the image folder of
    /// the first two); `None` when none or more than one is given.
    pub fn given(coco: Option<&Path>, voc: Option<&Path>, classify: Option<&Path>, images: Option<&Path>) -> Option<DataSpec> {
        match (coco, voc, classify) {
            (Some(c), None, None) => Some(DataSpec::coco(c, images)),
            (None, Some(v), None) => Some(DataSpec::Voc { dir: v.to_path_buf(), images: images.map(Path::to_path_buf) }),
            (None, None, Some(d)) => Some(DataSpec::Classify { dir: d.to_path_buf() }),
            _ => None,
        }
    }

    /// A validation set as [`DataSpec::given`] reads it, and without annotations, from `images` alone: a folder
    /// scored by agreement with the dense model (its confident detections are the reference).
    pub fn validation(coco: Option<&Path>, voc: Option<&Path>, classify: Option<&Path>, images: Option<&Path>) -> Option<DataSpec> {
        match (coco, voc, classify, images) {
            (None, None, None, Some(dir)) => Some(DataSpec::Unlabeled { dir: dir.to_path_buf() }),
            _ => DataSpec::given(coco, voc, classify, images),
        }
    }

    /// A COCO set; its images default to the `images` folder next to the json.
    pub fn coco(annotations: &Path, images: Option<&Path>) -> DataSpec {
        DataSpec::Coco {
            annotations: annotations.to_path_buf(),
            images: images.map_or_else(|| default_images(annotations), Path::to_path_buf),
        }
    }

    /// The spec with every path made absolute.
    pub fn absolute(&self) -> DataSpec {
        match self {
            DataSpec::Coco { annotations, images } => DataSpec::Coco { annotations: absolute(annotations), images: absolute(images) },
            DataSpec::Voc { dir, images } => DataSpec::Voc { dir: absolute(dir), images: images.as_deref().map(absolute) },
            DataSpec::Classify { dir } => DataSpec::Classify { dir: absolute(dir) },
            DataSpec::Unlabeled { dir } => DataSpec::Unlabeled { dir: absolute(dir) },
        }
    }

    /// The files and folders the spec names exist and are of their kind (nothing is read).
    pub fn check_files(&self) -> Result<()> {
        match self {
            DataSpec::Coco { annotations, images } => check_file(annotations).and_then(|_| check_folder(images)),
            DataSpec::Voc { dir, images } => check_folder(dir).and_then(|_| images.as_deref().map_or(Ok(()), check_folder)),
            DataSpec::Classify { dir } | DataSpec::Unlabeled { dir } => check_folder(dir),
        }
    }

    pub fn is_classify(&self) -> bool {
        matches!(self, DataSpec::Classify { .. })
    }
}

/// `p` exists and is a regular file.
pub fn check_file(p: &Path) -> Result<()> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Error::input(p, "not a regular file")),
        Err(e) => Err(Error::io(p, e)),
    }
}

/// `p` exists and is a folder.
pub fn check_folder(p: &Path) -> Result<()> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::input(p, "not a folder")),
        Err(e) => Err(Error::io(p, e)),
    }
}
