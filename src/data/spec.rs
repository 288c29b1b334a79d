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
    /// (`train::pseudo`), beside the images of `labelled` (COCO or VOC) with their own annotations when given.
    Unlabeled {
        dir: PathBuf,
        /// Absent in run.json files older than it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        labelled: Option<Box<DataSpec>>,
    },
}

impl DataSpec {
    /// The detection dataset (COCO or VOC).
    pub fn load(&self) -> Result<Dataset> {
        match self {
            DataSpec::Coco { annotations, images } => Dataset::from_coco(annotations, images),
            DataSpec::Voc { dir, images } => Dataset::from_voc(dir, images.as_deref()),
            DataSpec::Classify { dir } => Err(Error::input(dir, "is a classification set; a detector trains on COCO or VOC data")),
            DataSpec::Unlabeled { dir, .. } => {
                Err(Error::input(dir, "holds images without annotations: they are labelled by a teacher first"))
            }
        }
    }

    /// Images without annotations in `dir`, with a labelled set (`--coco` or `--voc`) beside them when given; a
    /// classification set or a second folder of unlabeled images is refused.
    pub fn unlabeled(dir: &Path, labelled: Option<DataSpec>) -> Result<DataSpec> {
        if let Some(DataSpec::Classify { dir: d } | DataSpec::Unlabeled { dir: d, .. }) = &labelled {
            return Err(Error::setting_at(
                d,
                "unlabeled",
                "is not a detection set: unlabeled images train beside a COCO json or a VOC folder only",
            ));
        }
        Ok(DataSpec::Unlabeled { dir: dir.to_path_buf(), labelled: labelled.map(Box::new) })
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

    /// A run's training data as the options name it: [`DataSpec::given`]'s set, or with `unlabeled` that folder's
    /// images beside it ([`DataSpec::unlabeled`]); refused when no set is named.
    pub fn training(
        coco: Option<&Path>,
        voc: Option<&Path>,
        classify: Option<&Path>,
        images: Option<&Path>,
        unlabeled: Option<&Path>,
    ) -> Result<DataSpec> {
        let named = [coco, voc, classify].iter().filter(|p| p.is_some()).count();
        if named > 1 {
            return Err(Error::setting("coco", "name one training set: `coco` GT.json, `voc` DIR or `classify` DIR"));
        }
        let labelled = DataSpec::given(coco, voc, classify, images);
        match (unlabeled, labelled) {
            (Some(dir), labelled) => DataSpec::unlabeled(dir, labelled),
            (None, Some(labelled)) => Ok(labelled),
            (None, None) => Err(Error::setting("coco", "a new run needs `coco` GT.json, `voc` DIR, `classify` DIR or `unlabeled` DIR")),
        }
    }

    /// A validation set as [`DataSpec::given`] reads it, and without annotations, from `images` alone: a folder
    /// scored by agreement with the dense model (its confident detections are the reference).
    pub fn validation(coco: Option<&Path>, voc: Option<&Path>, classify: Option<&Path>, images: Option<&Path>) -> Option<DataSpec> {
        match (coco, voc, classify, images) {
            (None, None, None, Some(dir)) => Some(DataSpec::Unlabeled { dir: dir.to_path_buf(), labelled: None }),
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
            DataSpec::Unlabeled { dir, labelled } => {
                DataSpec::Unlabeled { dir: absolute(dir), labelled: labelled.as_ref().map(|l| Box::new(l.absolute())) }
            }
        }
    }

    /// The files and folders the spec names exist and are of their kind (nothing is read).
    pub fn check_files(&self) -> Result<()> {
        match self {
            DataSpec::Coco { annotations, images } => check_file(annotations).and_then(|_| check_folder(images)),
            DataSpec::Voc { dir, images } => check_folder(dir).and_then(|_| images.as_deref().map_or(Ok(()), check_folder)),
            DataSpec::Classify { dir } => check_folder(dir),
            DataSpec::Unlabeled { dir, labelled } => {
                check_folder(dir).and_then(|_| labelled.as_deref().map_or(Ok(()), DataSpec::check_files))
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_data_joins_unlabeled_images_to_a_detection_set_only() {
        let (coco, voc, dir) = (Path::new("gt.json"), Path::new("voc"), Path::new("images"));
        let mixed = DataSpec::training(Some(coco), None, None, None, Some(dir)).unwrap();
        assert_eq!(mixed, DataSpec::Unlabeled { dir: dir.into(), labelled: Some(Box::new(DataSpec::coco(coco, None))) });
        let alone = DataSpec::training(None, None, None, None, Some(dir)).unwrap();
        assert_eq!(alone, DataSpec::Unlabeled { dir: dir.into(), labelled: None });
        let none = DataSpec::training(None, None, None, None, None).unwrap_err().to_string();
        assert!(none.contains("a new run needs"), "{none}");
        // Two labelled sets, or a classification set beside unlabeled images, are refused, not one silently dropped.
        let two = DataSpec::training(Some(coco), Some(voc), None, None, Some(dir)).unwrap_err().to_string();
        assert!(two.contains("one training set"), "{two}");
        let classify = DataSpec::training(None, None, Some(Path::new("cls")), None, Some(dir)).unwrap_err().to_string();
        assert!(classify.contains("cls") && classify.contains("not a detection set"), "{classify}");
        // A run.json written before `labelled` existed still reads.
        let old: DataSpec = serde_json::from_str(r#"{"Unlabeled": {"dir": "images"}}"#).unwrap();
        assert_eq!(old, alone);
    }
}
