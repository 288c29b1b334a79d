//! What the training core and its distillation terms share: the fixed shapes of a step and the constants of
//! torchvision's losses and RoIAlign sampling (here, below both, so neither emitter imports the other for them).
use crate::imaging::roi::SAMPLING_RATIO;
use serde::Serialize;

/// Taps per RoIAlign bin: four bilinear neighbours of each of `SAMPLING_RATIO²` samples.
pub const TAPS: usize = 4 * SAMPLING_RATIO * SAMPLING_RATIO;
/// torchvision's smooth-L1 β for both the RPN and the box head.
pub const SMOOTH_L1_BETA: f32 = 1.0 / 9.0;

/// The fixed shapes of one training step; one ORT artifact set is generated per value (docs/engine-facts.md: shapes must
/// be static). RoI counts are per image; unused rows are padding with weight 0.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct TrainShape {
    pub batch: usize,
    /// Padded canvas, multiples of 32 (the FPN's nearest upsampling is exact only there).
    pub height: usize,
    pub width: usize,
    /// Box-head RoIs per image (torchvision samples 512).
    pub rois_per_image: usize,
    /// Mask-head RoIs (the positive box RoIs) per image; ignored without a mask head.
    pub mask_rois_per_image: usize,
    /// Keypoint-head RoIs (the positive box RoIs) per image; ignored without a keypoint head.
    pub keypoint_rois_per_image: usize,
    /// RoIAlign's form in the core; None (what runs record): [`Pooling::Planes`] up to [`PLANES_MAX_CELLS`] cells
    /// of P2, else taps. Set by `ticket bench train --pooling` and by the tests that check both forms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooling: Option<Pooling>,
}

/// How the training core's RoIAlign reads the FPN levels P2..P5 (docs/training.md, "RoIAlign as interpolation
/// matrices on small canvases").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Bilinear taps gathered from a feature table (`{prefix}_idx`, `{prefix}_w`): work proportional to the RoIs'
    /// samples, but the Gather's gradient costs an integer division per gathered value on ORT's CPU.
    Taps,
    /// Two interpolation matrices per level (`{prefix}_wy{l}`, `{prefix}_wx{l}`) and two matrix products: work
    /// proportional to the maps' area, so the cheaper form on small canvases only.
    Planes,
}

impl std::str::FromStr for Pooling {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> crate::error::Result<Self> {
        match s {
            "taps" => Ok(Pooling::Taps),
            "planes" => Ok(Pooling::Planes),
            _ => Err(crate::error::Error::setting("pooling", format!("`pooling` must be taps or planes, got '{s}'"))),
        }
    }
}

/// The largest P2 map (cells) the core pools with [`Pooling::Planes`]: a 192-px canvas (48 × 48 cells). Measured
/// with `ticket bench train --pooling` (docs/training.md): planes take a width-8 Faster R-CNN step from 25 to 12 ms
/// at 128 px and from 40 to 30 ms at 256 px, the full-width Mask R-CNN R18-FPN's from 1.58 to 0.96 s at 128 px
/// and from 1.84 to 1.49 s at 192 px, but cost it more at 320 px (1.92 against 1.76 s).
pub const PLANES_MAX_CELLS: usize = 48 * 48;

impl TrainShape {
    /// The sizes of P2..P5, the levels RoIAlign pools (the canvas is a multiple of 32, so each halves exactly).
    pub fn pool_levels(&self) -> [(usize, usize); 4] {
        [4, 8, 16, 32].map(|s| (self.height / s, self.width / s))
    }

    pub fn pooling(&self) -> Pooling {
        let (h, w) = self.pool_levels()[0];
        if let Some(p) = self.pooling {
            p
        } else if h * w <= PLANES_MAX_CELLS {
            Pooling::Planes
        } else {
            Pooling::Taps
        }
    }

    /// The inputs one RoIAlign of `per_image` RoIs per image at `side × side` reads, named for `prefix`, in the
    /// order [`crate::graph::roi_pool::RoiFeatures::pool`] takes them: (name, i64 rather than f32, dims).
    pub fn pool_inputs(&self, prefix: &str, per_image: usize, side: usize) -> Vec<(String, bool, Vec<usize>)> {
        let rows = self.batch * per_image;
        match self.pooling() {
            Pooling::Taps => vec![
                (format!("{prefix}_idx"), true, vec![rows, side * side, TAPS]),
                (format!("{prefix}_w"), false, vec![rows, side * side, TAPS]),
            ],
            Pooling::Planes => self
                .pool_levels()
                .iter()
                .enumerate()
                .flat_map(|(l, &(h, w))| {
                    [
                        (format!("{prefix}_wy{l}"), false, vec![self.batch, per_image * side, h]),
                        (format!("{prefix}_wx{l}"), false, vec![rows, 1, side, w]),
                    ]
                })
                .collect(),
        }
    }
}
