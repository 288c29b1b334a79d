//! A labelled set and a teacher's pseudo-labelled images as one training set (`--coco`/`--voc` with
//! `--unlabeled`): the few annotations a user has, beside the many images they lack them for.
use super::Dataset;
use crate::error::{Error, Result};
use std::collections::HashSet;

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
        // Canonical paths, so `images/x.png` and `./images/../images/x.png` are one image.
        let key = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let labelled: HashSet<_> = self.images.iter().map(|i| key(&i.path)).collect();
        self.images.extend(pseudo.images.into_iter().filter(|i| !labelled.contains(&key(&i.path))));
        self.has_masks &= pseudo.has_masks;
        if self.num_keypoints != pseudo.num_keypoints {
            self.num_keypoints = 0;
            self.keypoint_names.clear();
        }
        Ok(self)
    }
}
