//! COCO's person keypoints: names, the horizontal-flip map and the skeleton, as the annotation files spell them.
use std::collections::HashMap;

/// COCO's 17 person keypoints, in the order the keypoint heads predict them.
pub const COCO_KEYPOINTS: [&str; 17] = [
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
];

/// torchvision's `_flip_coco_person_keypoints` index map: a mirrored person's left wrist is where the right one was.
pub const COCO_FLIP_MAP: [usize; 17] = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15];

/// COCO's person skeleton (1-based keypoint indices, as the annotation files spell it).
pub const COCO_SKELETON: [[u32; 2]; 19] = [
    [16, 14],
    [14, 12],
    [17, 15],
    [15, 13],
    [12, 13],
    [6, 12],
    [7, 13],
    [6, 7],
    [6, 8],
    [7, 9],
    [8, 10],
    [9, 11],
    [2, 3],
    [1, 2],
    [1, 3],
    [2, 4],
    [3, 5],
    [4, 6],
    [5, 7],
];

/// The flip map for keypoints named like COCO's: `left_x` and `right_x` swap, every other keypoint stays.
pub fn flip_map_from_names(names: &[String]) -> Vec<usize> {
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let other = if let Some(rest) = n.strip_prefix("left") {
                format!("right{rest}")
            } else if let Some(rest) = n.strip_prefix("right") {
                format!("left{rest}")
            } else {
                return i;
            };
            index.get(other.as_str()).copied().unwrap_or(i)
        })
        .collect()
}
