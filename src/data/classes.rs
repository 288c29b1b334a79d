//! Whether a dataset fits a model: its classes (and keypoints, instance masks) are the ones the model predicts.
//! Training and evaluation both check this before any work starts.
use super::{ClassifyDataset, Dataset};
use crate::error::{Error, Result};
use crate::model::{ModelKind, ModelState};

/// A classifier predicts one class per category of its set (no background).
pub fn check_classify_classes(state: &ModelState, data: &ClassifyDataset) -> Result<()> {
    if state.arch.kind != ModelKind::Classifier {
        return Err(Error::input(
            &data.source,
            format!(
                "is a classification set, but {} is a {}; a detector trains on COCO or VOC data",
                state.path().display(),
                state.arch.kind.label()
            ),
        ));
    }
    let want = state.arch.num_classes.unwrap_or(0);
    if want != data.categories.len() {
        return Err(Error::input(
            &data.source,
            format!(
                "has {} categories but {} predicts {want} classes: the classes do not match the model",
                data.categories.len(),
                state.path().display()
            ),
        ));
    }
    Ok(())
}

/// The dataset's classes (and keypoints) must be the model's: K categories for K + 1 outputs.
pub fn check_classes(state: &ModelState, data: &Dataset) -> Result<()> {
    let want = state.arch.num_classes.unwrap_or(0);
    let have = data.categories.len() + 1;
    if want != have {
        return Err(Error::input(
            &data.source,
            format!(
                "has {} categories but {} predicts {} classes (background + {}): the classes do not match the model",
                data.categories.len(),
                state.path().display(),
                want,
                want.saturating_sub(1)
            ),
        ));
    }
    if state.arch.kind == ModelKind::MaskRcnn && !data.has_masks {
        return Err(Error::input(&data.source, "has no segmentation for every object; a Mask R-CNN trains on instance masks"));
    }
    if state.arch.kind == ModelKind::KeypointRcnn {
        let k = state.arch.num_keypoints.unwrap_or(0);
        if data.num_keypoints != k {
            return Err(Error::input(&data.source, format!("has {} keypoints per object, the model predicts {k}", data.num_keypoints)));
        }
    }
    Ok(())
}
