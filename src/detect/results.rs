//! Detections in the COCO results format (what `ticket detect` writes and `ticket eval` reads): boxes as
//! [x, y, w, h], masks as compressed RLE of the probability map thresholded at 0.5 (torchvision's rule),
//! keypoints as [x, y, v] triplets.
use super::paste::PastedMask;
use super::pipeline::ImageDetections;
use crate::error::Result;
/// One detection record as COCO results files spell it (hotcoco's annotation type, which evaluation reads).
pub use hotcoco::Annotation as Detection;
pub use hotcoco::{Rle, Segmentation};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RleJson {
    pub size: [u32; 2],
    pub counts: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CocoResult {
    pub image_id: u64,
    pub category_id: u64,
    pub bbox: [f64; 4],
    pub score: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub segmentation: Option<RleJson>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub keypoints: Option<Vec<f64>>,
}

impl CocoResult {
    pub fn to_detection(&self) -> Detection {
        Detection {
            image_id: self.image_id,
            category_id: self.category_id,
            bbox: Some(self.bbox),
            score: Some(self.score),
            segmentation: self.segmentation.as_ref().map(|r| Segmentation::CompressedRle { size: r.size, counts: r.counts.clone() }),
            keypoints: self.keypoints.clone(),
            ..Default::default()
        }
    }
}

/// COCO records of one image. Labels are category ids, as torchvision's COCO-trained models use them.
pub fn to_coco(dets: &ImageDetections, image_id: u64) -> Result<Vec<CocoResult>> {
    let mut out = Vec::with_capacity(dets.boxes.len());
    for i in 0..dets.boxes.len() {
        let [x1, y1, x2, y2] = dets.boxes[i];
        let segmentation = dets.pasted_mask(i).map(|m| {
            let rle = rle_of(&m);
            RleJson { size: [rle.h, rle.w], counts: hotcoco::mask::rle_to_string(&rle) }
        });
        let keypoints = dets
            .keypoints
            .as_ref()
            .map(|k| k.index_axis(ndarray::Axis(0), i).outer_iter().flat_map(|p| [p[0] as f64, p[1] as f64, p[2] as f64]).collect());
        out.push(CocoResult {
            image_id,
            category_id: dets.labels[i] as u64,
            bbox: [x1 as f64, y1 as f64, (x2 - x1) as f64, (y2 - y1) as f64],
            score: dets.scores[i] as f64,
            segmentation,
            keypoints,
        });
    }
    Ok(out)
}

/// The COCO RLE of a pasted mask thresholded at 0.5 (`> 0.5`, torchvision's rule), encoded from its crop: runs
/// go down columns (Fortran order), start with background and end at the last pixel, as `hotcoco::mask::encode`
/// (pycocotools' `maskApi.c`) writes them for the whole canvas — without the canvas.
pub fn rle_of(m: &PastedMask) -> Rle {
    let (h, w) = m.image_hw;
    let (ch, cw) = m.probs.dim();
    let mut counts: Vec<u32> = vec![0];
    let mut foreground = false;
    let mut push = |bit: bool, len: usize| {
        if len == 0 {
            return;
        }
        if bit == foreground {
            *counts.last_mut().expect("starts with one run") += len as u32;
        } else {
            counts.push(len as u32);
            foreground = bit;
        }
    };
    for x in 0..w {
        let inside = ch > 0 && x >= m.x0 && x < m.x0 + cw;
        if !inside {
            push(false, h);
            continue;
        }
        push(false, m.y0);
        let column = m.probs.column(x - m.x0);
        let mut y = 0;
        while y < ch {
            let bit = column[y] > 0.5;
            let start = y;
            while y < ch && (column[y] > 0.5) == bit {
                y += 1;
            }
            push(bit, y - start);
        }
        push(false, h - m.y0 - ch);
    }
    Rle { h: h as u32, w: w as u32, counts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// The crop's runs equal hotcoco's encoding of the whole thresholded canvas, for crops at the borders,
    /// inside, empty and full.
    #[test]
    fn crop_runs_equal_the_canvas_encoding() {
        let hw = (13, 17);
        let pattern =
            |h: usize, w: usize, k: usize| Array2::from_shape_fn((h, w), |(y, x)| if (x * 7 + y * 3 + k) % 5 < 2 { 0.9 } else { 0.2 });
        let cases = [
            PastedMask { y0: 0, x0: 0, probs: pattern(13, 17, 0), image_hw: hw },
            PastedMask { y0: 3, x0: 4, probs: pattern(5, 6, 1), image_hw: hw },
            PastedMask { y0: 8, x0: 11, probs: pattern(5, 6, 2), image_hw: hw },
            PastedMask { y0: 0, x0: 0, probs: Array2::zeros((0, 0)), image_hw: hw },
            PastedMask { y0: 2, x0: 2, probs: Array2::from_elem((11, 15), 0.9), image_hw: hw },
            PastedMask { y0: 0, x0: 0, probs: Array2::from_elem((13, 17), 0.5), image_hw: hw },
        ];
        for (k, m) in cases.iter().enumerate() {
            let canvas = m.to_canvas();
            let mut col_major = vec![0u8; hw.0 * hw.1];
            for ((y, x), p) in canvas.indexed_iter() {
                col_major[x * hw.0 + y] = (*p > 0.5) as u8;
            }
            let want = hotcoco::mask::encode(&col_major, hw.0 as u32, hw.1 as u32).unwrap();
            assert_eq!(rle_of(m), want, "case {k}");
        }
    }
}
