//! A labelled set and a teacher's pseudo-labelled images as one training set (`--coco`/`--voc` with
//! `--unlabeled`): the few annotations a user has, beside the many images they lack them for.
use super::Dataset;
use crate::error::{Error, Result};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

impl Dataset {
    /// `self`'s images with their own annotations, then `pseudo`'s that `self` does not hold (the same file: its
    /// real labels win). Both must have as many categories; `self` names them (the teacher's pseudo labels say
    /// "class k", and class k is the k-th category of the labelled set for the student as for its teacher).
    /// Masks and keypoints train only where both sets have them.
    pub fn joined(mut self, pseudo: Dataset) -> Result<Dataset> {
        if self.categories.len() != pseudo.categories.len() {
            return Err(Error::input(
                &self.source,
                format!(
                    "has {} categories but the teacher's labels {} have {}: the classes do not match",
                    self.categories.len(),
                    pseudo.source.display(),
                    pseudo.categories.len()
                ),
            ));
        }
        let labelled = self.image_files();
        self.joined_from = Some((self.images.len(), pseudo.source.clone()));
        self.images.extend(pseudo.images.into_iter().filter(|i| !labelled.contains(&image_file(&i.path))));
        self.has_masks &= pseudo.has_masks;
        if self.num_keypoints != pseudo.num_keypoints {
            self.num_keypoints = 0;
            self.keypoint_names.clear();
        }
        Ok(self)
    }

    /// Its image files, as canonical paths (`image_file`).
    pub fn image_files(&self) -> HashSet<PathBuf> {
        self.images.iter().map(|i| image_file(&i.path)).collect()
    }
}

/// An image file's canonical path, so `images/x.png` and `./images/../images/x.png` are one image.
pub fn image_file(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}
