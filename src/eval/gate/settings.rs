//! What the gate is asked: the two models, the reference, the limits, where the dense detections come from, and
//! how often each image is timed; checked before any model is run or file written.
use crate::error::{Error, Result};
use crate::eval::IouType;
use std::path::{Path, PathBuf};

/// Without annotations, the dense model's detections scoring at least this become the reference.
pub const DEFAULT_AGREEMENT_SCORE: f64 = 0.5;

#[derive(Clone, Debug)]
pub struct GateSettings {
    /// The pruned model (ONNX or compact ticket).
    pub candidate: PathBuf,
    /// The dense model it came from.
    pub dense: PathBuf,
    /// COCO ground truth for the images; without it, the dense model's detections are the reference.
    pub coco: Option<PathBuf>,
    /// The images: with `coco`, the folder holding its file names (default `images/` next to the json); without,
    /// a folder of images (required then).
    pub images: Option<PathBuf>,
    /// IoU types to score and gate; default: every type the model has.
    pub iou_types: Option<Vec<IouType>>,
    /// Gate: the candidate's sparsity of prunable weights must be at least this.
    pub min_sparsity: Option<f64>,
    /// Gate, per IoU type: dense mAP minus candidate mAP (AP@[.50:.95], absolute) must be at most this.
    pub max_map_drop: Option<f64>,
    /// Without annotations: the dense model's detections scoring at least this become the reference.
    pub agreement_score: f64,
    /// The dense model's detections from a COCO results file instead of running it.
    pub dense_dets: Option<PathBuf>,
    /// Keep the dense model's detections and latencies in this file, reused while what determines them holds.
    pub dense_cache: Option<PathBuf>,
    /// Times each image is run (the detections come from the first run); at least 1.
    pub repeat: u32,
}

impl GateSettings {
    /// A candidate against its dense model, with no gate yet, run once per image.
    pub fn new(candidate: PathBuf, dense: PathBuf) -> Self {
        GateSettings {
            candidate,
            dense,
            coco: None,
            images: None,
            iou_types: None,
            min_sparsity: None,
            max_map_drop: None,
            agreement_score: DEFAULT_AGREEMENT_SCORE,
            dense_dets: None,
            dense_cache: None,
            repeat: 1,
        }
    }

    /// Fractions must be finite and in [0, 1] (NaN compares false both ways, so a NaN limit would pass or fail
    /// every gate silently); the cache's folder must exist and the cache, if there, be a regular file.
    pub fn check(&self) -> Result<()> {
        let fraction = |setting: &'static str, v: f64| {
            if v.is_finite() && (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::setting(setting, format!("`{setting}` {v}: give a number in [0, 1]")))
            }
        };
        fraction("agreement_score", self.agreement_score)?;
        if let Some(v) = self.min_sparsity {
            fraction("min_sparsity", v)?;
        }
        if let Some(v) = self.max_map_drop {
            fraction("max_map_drop", v)?;
        }
        if self.repeat == 0 {
            return Err(Error::setting("repeat", "`repeat` 0: give at least 1"));
        }
        if self.coco.is_none() && self.images.is_none() {
            return Err(Error::setting("images", "without `coco`, give `images` DIR: the images to compare the models on"));
        }
        if let Some(cache) = &self.dense_cache {
            let dir = cache.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !dir.is_dir() {
                return Err(Error::input(cache, "the folder of the dense cache does not exist"));
            }
            if cache.exists() && !cache.is_file() {
                return Err(Error::input(cache, "the dense cache is not a regular file"));
            }
        }
        Ok(())
    }

    /// The file the dense detections come from, when they are read from one.
    pub fn dense_source_file(&self) -> Option<&Path> {
        self.dense_dets.as_deref().or(self.dense_cache.as_deref().filter(|c| c.exists()))
    }
}

#[cfg(test)]
mod tests {
    use super::GateSettings;
    use crate::Error;

    #[test]
    fn fractions_outside_0_1_and_nan_are_refused_by_their_name() {
        let ok = GateSettings { images: Some(".".into()), ..GateSettings::new("c.onnx".into(), "d.onnx".into()) };
        assert!(ok.check().is_ok());
        for (s, setting, name) in [
            (GateSettings { agreement_score: f64::NAN, ..ok.clone() }, "agreement_score", "`agreement_score` NaN"),
            (GateSettings { min_sparsity: Some(1.5), ..ok.clone() }, "min_sparsity", "`min_sparsity` 1.5"),
            (GateSettings { max_map_drop: Some(-0.1), ..ok.clone() }, "max_map_drop", "`max_map_drop` -0.1"),
            (GateSettings { repeat: 0, ..ok.clone() }, "repeat", "`repeat` 0"),
            (GateSettings { images: None, ..ok.clone() }, "images", "`images`"),
        ] {
            let e = s.check().unwrap_err();
            assert!(matches!(e, Error::Setting { setting: s, .. } if s == setting), "{e:?}");
            assert!(e.to_string().contains(name), "{e}");
        }
    }
}
