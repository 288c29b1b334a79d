//! Detections in the COCO results format (what `ticket detect` writes and `ticket eval` reads): boxes as
//! [x, y, w, h], masks as compressed RLE of the probability map thresholded at 0.5 (torchvision's rule),
//! keypoints as [x, y, v] triplets.
use super::pipeline::ImageDetections;
use crate::error::{Error, Result};
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
        let segmentation = match &dets.masks {
            Some(m) => {
                let plane = m.index_axis(ndarray::Axis(0), i);
                let (h, w) = plane.dim();
                // RLE runs go down columns (Fortran order).
                let mut col_major = vec![0u8; h * w];
                for ((y, x), p) in plane.indexed_iter() {
                    col_major[x * h + y] = (*p > 0.5) as u8;
                }
                let rle = hotcoco::mask::encode(&col_major, h as u32, w as u32).map_err(|e| Error::Runtime(format!("mask RLE: {e}")))?;
                Some(RleJson { size: [h as u32, w as u32], counts: hotcoco::mask::rle_to_string(&rle) })
            }
            None => None,
        };
        let keypoints = dets.keypoints.as_ref().map(|k| {
            k.index_axis(ndarray::Axis(0), i).outer_iter().flat_map(|p| [p[0] as f64, p[1] as f64, p[2] as f64]).collect()
        });
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
