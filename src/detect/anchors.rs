//! torchvision's `AnchorGenerator` for FPN detectors: per level, zero-centred cell anchors (one per size and
//! aspect ratio, rounded to integers) shifted over the feature grid. The order is torchvision's — level, then
//! y, then x, then cell anchor (ratio-major) — which is also the order of the RPN head's outputs once
//! flattened, and of the training targets (docs/engine-facts.md).
use crate::error::{bad_input, Result};
use crate::imaging::{BoxXyxy, Hw};

/// Anchor sizes and aspect ratios (height / width) per feature level.
#[derive(Clone, Debug, PartialEq)]
pub struct AnchorGenerator {
    pub sizes: Vec<Vec<f32>>,
    pub aspect_ratios: Vec<Vec<f32>>,
}

impl AnchorGenerator {
    /// torchvision's FPN default: sizes 32..512 (one per level P2..P6), ratios 0.5, 1, 2 at every level.
    pub fn fpn() -> Self {
        let sizes = [32.0, 64.0, 128.0, 256.0, 512.0].iter().map(|&s| vec![s]).collect();
        AnchorGenerator { sizes, aspect_ratios: vec![vec![0.5, 1.0, 2.0]; 5] }
    }

    /// Anchors per feature-map location, per level (3 for the FPN default).
    pub fn num_anchors_per_location(&self) -> Vec<usize> {
        self.sizes.iter().zip(&self.aspect_ratios).map(|(s, a)| s.len() * a.len()).collect()
    }

    /// Anchors of every level for a padded input of `canvas_hw` and feature maps of `feature_sizes`, in
    /// torchvision's order. The stride of a level is `canvas // feature` per side, as torchvision computes it
    /// (so a 3-wide pool level of a 160-wide canvas has stride 53).
    pub fn anchors(&self, canvas_hw: Hw, feature_sizes: &[Hw]) -> Result<Vec<Vec<BoxXyxy>>> {
        if feature_sizes.len() != self.sizes.len() || self.sizes.len() != self.aspect_ratios.len() {
            return Err(bad_input(format!(
                "anchor generator has {} size and {} ratio levels but {} feature maps were given",
                self.sizes.len(),
                self.aspect_ratios.len(),
                feature_sizes.len()
            )));
        }
        let mut levels = Vec::with_capacity(feature_sizes.len());
        for (l, &(fh, fw)) in feature_sizes.iter().enumerate() {
            if fh == 0 || fw == 0 {
                return Err(bad_input(format!("feature level {l} is empty ({fh}x{fw})")));
            }
            let (sy, sx) = (canvas_hw.0 / fh, canvas_hw.1 / fw);
            let cell = cell_anchors(&self.sizes[l], &self.aspect_ratios[l]);
            let mut anchors = Vec::with_capacity(fh * fw * cell.len());
            for y in 0..fh {
                for x in 0..fw {
                    let (cx, cy) = ((x * sx) as f32, (y * sy) as f32);
                    anchors.extend(cell.iter().map(|a| [cx + a[0], cy + a[1], cx + a[2], cy + a[3]]));
                }
            }
            levels.push(anchors);
        }
        Ok(levels)
    }
}

/// Zero-centred anchors for one level, ratio-major: `h = size·sqrt(r)`, `w = size / sqrt(r)`, corners
/// `±(w, h) / 2` rounded half-to-even as `torch.round` does (in float32, so e.g. 45.254833 / 2 → 23).
pub fn cell_anchors(sizes: &[f32], aspect_ratios: &[f32]) -> Vec<BoxXyxy> {
    let mut out = Vec::with_capacity(sizes.len() * aspect_ratios.len());
    for &r in aspect_ratios {
        let h_ratio = r.sqrt();
        let w_ratio = 1.0 / h_ratio;
        for &s in sizes {
            let (ws, hs) = (w_ratio * s, h_ratio * s);
            out.push([-ws, -hs, ws, hs].map(|v| (v / 2.0).round_ties_even()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_anchors_of_size_32() {
        let a = cell_anchors(&[32.0], &[0.5, 1.0, 2.0]);
        assert_eq!(a, vec![[-23.0, -11.0, 23.0, 11.0], [-16.0, -16.0, 16.0, 16.0], [-11.0, -23.0, 11.0, 23.0]]);
    }

    #[test]
    fn level_count_must_match_and_empty_levels_are_errors() {
        let g = AnchorGenerator::fpn();
        assert!(g.anchors((64, 64), &[(16, 16)]).is_err());
        assert!(g.anchors((64, 64), &[(16, 16), (8, 8), (4, 4), (2, 2), (0, 1)]).is_err());
        let a = g.anchors((64, 64), &[(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]).unwrap();
        assert_eq!(a.iter().map(Vec::len).collect::<Vec<_>>(), vec![768, 192, 48, 12, 3]);
    }
}
