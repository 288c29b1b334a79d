//! Non-maximum suppression with torchvision's semantics (`torchvision.ops.nms` / `batched_nms` on CPU): boxes
//! are visited in descending score order (ties in index order: the kernel sorts stably); a box is kept unless a
//! kept box has IoU `> iou_threshold` with it; areas are `(x2 - x1)·(y2 - y1)` with no `+1`; IoU is computed
//! in float32 and compared with the threshold in double, as torchvision's kernel does.
//!
//! torchvision's kernel compares every kept box with every later box (its in-graph ONNX form took 58 s on 90k
//! boxes in tract). Here the unsuppressed candidates are kept compacted in structure-of-arrays form, so a kept
//! box only scans what is still alive; above [`GRID_ABOVE`] boxes a uniform grid limits the scan to kept boxes
//! that share a cell, which is exact because a suppressing pair must overlap with positive area.
use super::order::{argsort_descending, argsort_descending_stable};
use crate::imaging::BoxXyxy;

/// `batched_nms` on CPU runs one NMS per class above this many boxes (`boxes.numel() > 4000`) and a single NMS
/// over class-offset boxes at or below it. The two can differ by float rounding, so both are reproduced.
pub const BATCHED_PER_CLASS_ABOVE: usize = 1000;
/// Single-NMS calls with more boxes than this use the grid.
pub const GRID_ABOVE: usize = 256;

/// `torchvision.ops.nms`: indices of the kept boxes, in descending score order.
pub fn nms(boxes: &[BoxXyxy], scores: &[f32], iou_threshold: f64) -> Vec<usize> {
    assert_eq!(boxes.len(), scores.len(), "one score per box");
    let order = argsort_descending_stable(scores);
    let grid_ok = iou_threshold >= 0.0 && boxes.iter().all(|b| b.iter().all(|v| v.is_finite()));
    if boxes.len() > GRID_ABOVE && grid_ok {
        nms_grid(boxes, &order, iou_threshold)
    } else {
        nms_compact(boxes, &order, iou_threshold)
    }
}

/// `torchvision.ops.batched_nms`: NMS within each category of `idxs` (a class or an FPN level), indices of the
/// kept boxes in descending score order.
pub fn batched_nms(boxes: &[BoxXyxy], scores: &[f32], idxs: &[i64], iou_threshold: f64) -> Vec<usize> {
    assert!(boxes.len() == scores.len() && boxes.len() == idxs.len(), "one score and one category per box");
    if boxes.len() > BATCHED_PER_CLASS_ABOVE {
        batched_per_class(boxes, scores, idxs, iou_threshold)
    } else {
        batched_offset(boxes, scores, idxs, iou_threshold)
    }
}

/// `_batched_nms_coordinate_trick`: shift each category by `idx·(max coordinate + 1)` so categories cannot
/// overlap, then one NMS. The shifted coordinates are rounded in float32 as torchvision's are.
fn batched_offset(boxes: &[BoxXyxy], scores: &[f32], idxs: &[i64], iou_threshold: f64) -> Vec<usize> {
    if boxes.is_empty() {
        return Vec::new();
    }
    let max_coordinate = boxes.iter().flatten().fold(f32::NEG_INFINITY, |m, &v| if v > m || v.is_nan() { v } else { m });
    let shifted: Vec<BoxXyxy> = boxes
        .iter()
        .zip(idxs)
        .map(|(b, &i)| {
            let offset = i as f32 * (max_coordinate + 1.0);
            b.map(|v| v + offset)
        })
        .collect();
    nms(&shifted, scores, iou_threshold)
}

/// `_batched_nms_vanilla`: one NMS per category (ascending category, members in index order), then the union
/// re-sorted by score with torch's unstable sort (`Tensor.sort(descending=True)` from Python).
fn batched_per_class(boxes: &[BoxXyxy], scores: &[f32], idxs: &[i64], iou_threshold: f64) -> Vec<usize> {
    let mut classes: Vec<i64> = idxs.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let mut keep_mask = vec![false; boxes.len()];
    for &c in &classes {
        let members: Vec<usize> = (0..boxes.len()).filter(|&i| idxs[i] == c).collect();
        let b: Vec<BoxXyxy> = members.iter().map(|&i| boxes[i]).collect();
        let s: Vec<f32> = members.iter().map(|&i| scores[i]).collect();
        for k in nms(&b, &s, iou_threshold) {
            keep_mask[members[k]] = true;
        }
    }
    let kept: Vec<usize> = (0..boxes.len()).filter(|&i| keep_mask[i]).collect();
    let kept_scores: Vec<f32> = kept.iter().map(|&i| scores[i]).collect();
    argsort_descending(&kept_scores).into_iter().map(|k| kept[k]).collect()
}

/// The largest float32 `t` with `t <= threshold`: `ovr > t` in float32 is then exactly `(double)ovr > threshold`.
fn f32_threshold(threshold: f64) -> f32 {
    let t = threshold as f32;
    if (t as f64) > threshold {
        t.next_down()
    } else {
        t
    }
}

/// C++ `std::max` / `std::min` (not IEEE maxNum), so NaN inputs behave as in torchvision's kernel.
#[inline(always)]
fn cmax(a: f32, b: f32) -> f32 {
    if a < b {
        b
    } else {
        a
    }
}

#[inline(always)]
fn cmin(a: f32, b: f32) -> f32 {
    if b < a {
        b
    } else {
        a
    }
}

/// IoU of kept box `i` (with area `ia`) and candidate `j` (area `ja`), torchvision's expression order.
#[inline(always)]
fn iou(i: &BoxXyxy, ia: f32, j: &BoxXyxy, ja: f32) -> f32 {
    let w = cmax(0.0, cmin(i[2], j[2]) - cmax(i[0], j[0]));
    let h = cmax(0.0, cmin(i[3], j[3]) - cmax(i[1], j[1]));
    let inter = w * h;
    inter / (ia + ja - inter)
}

#[inline(always)]
fn area(b: &BoxXyxy) -> f32 {
    (b[2] - b[0]) * (b[3] - b[1])
}

/// NMS over boxes visited in `order`, the alive candidates compacted after each kept box.
fn nms_compact(boxes: &[BoxXyxy], order: &[usize], iou_threshold: f64) -> Vec<usize> {
    let thr = f32_threshold(iou_threshold);
    let n = order.len();
    let (mut x1, mut y1, mut x2, mut y2, mut ar) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for &i in order {
        let b = &boxes[i];
        x1.push(b[0]);
        y1.push(b[1]);
        x2.push(b[2]);
        y2.push(b[3]);
        ar.push(area(b));
    }
    let mut id: Vec<usize> = order.to_vec();
    let mut keep = Vec::new();
    let (mut start, mut len) = (0, n);
    while start < len {
        keep.push(id[start]);
        let kb = [x1[start], y1[start], x2[start], y2[start]];
        let ka = ar[start];
        let mut w = start + 1;
        for r in start + 1..len {
            let ovr = iou(&kb, ka, &[x1[r], y1[r], x2[r], y2[r]], ar[r]);
            x1[w] = x1[r];
            y1[w] = y1[r];
            x2[w] = x2[r];
            y2[w] = y2[r];
            ar[w] = ar[r];
            id[w] = id[r];
            // Kept unless the overlap is above the threshold: a NaN overlap keeps the box, as in torch.
            w += usize::from(ovr.partial_cmp(&thr) != Some(std::cmp::Ordering::Greater));
        }
        len = w;
        start += 1;
    }
    keep
}

/// NMS over boxes visited in `order`, each candidate checked only against kept boxes sharing a grid cell.
/// Requires finite coordinates and a threshold `>= 0` (then only boxes overlapping with positive area can
/// suppress each other, and overlapping boxes always share a cell).
fn nms_grid(boxes: &[BoxXyxy], order: &[usize], iou_threshold: f64) -> Vec<usize> {
    let thr = f32_threshold(iou_threshold);
    let (mut lo_x, mut lo_y, mut hi_x, mut hi_y) = (f32::INFINITY, f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY);
    let mut side_sum = 0.0f64;
    for b in boxes {
        lo_x = lo_x.min(b[0]).min(b[2]);
        hi_x = hi_x.max(b[0]).max(b[2]);
        lo_y = lo_y.min(b[1]).min(b[3]);
        hi_y = hi_y.max(b[1]).max(b[3]);
        side_sum += ((b[2] - b[0]).abs().max((b[3] - b[1]).abs())) as f64;
    }
    // Cells about as large as a typical box, at most 512 per side.
    let typical = (side_sum / boxes.len() as f64).max(1e-6);
    let cells = |extent: f32| ((extent as f64 / typical).ceil() as usize).clamp(1, 512);
    let (gx, gy) = (cells(hi_x - lo_x), cells(hi_y - lo_y));
    let (cw, ch) = (((hi_x - lo_x) as f64 / gx as f64).max(1e-12), ((hi_y - lo_y) as f64 / gy as f64).max(1e-12));
    let cell_x = |v: f32| (((v - lo_x) as f64 / cw).floor() as usize).min(gx - 1);
    let cell_y = |v: f32| (((v - lo_y) as f64 / ch).floor() as usize).min(gy - 1);
    // Kept boxes spanning more than this many cells are checked by every candidate instead of registered.
    const BIG_CELLS: usize = 64;
    let mut grid: Vec<Vec<u32>> = vec![Vec::new(); gx * gy];
    let mut big: Vec<u32> = Vec::new();
    let areas: Vec<f32> = boxes.iter().map(area).collect();
    let mut keep = Vec::new();
    for &j in order {
        let b = &boxes[j];
        let inverted = b[2] < b[0] || b[3] < b[1];
        let (cx0, cx1, cy0, cy1) = (cell_x(b[0]), cell_x(b[2]), cell_y(b[1]), cell_y(b[3]));
        let suppressed_by = |i: u32| iou(&boxes[i as usize], areas[i as usize], b, areas[j]) > thr;
        let mut suppressed = big.iter().any(|&i| suppressed_by(i));
        if !suppressed && !inverted {
            'cells: for cy in cy0..=cy1 {
                for cx in cx0..=cx1 {
                    if grid[cy * gx + cx].iter().any(|&i| suppressed_by(i)) {
                        suppressed = true;
                        break 'cells;
                    }
                }
            }
        }
        if suppressed {
            continue;
        }
        keep.push(j);
        if inverted {
            continue; // an inverted box has no positive-area overlap with anything
        }
        if (cx1 - cx0 + 1) * (cy1 - cy0 + 1) > BIG_CELLS {
            big.push(j as u32);
        } else {
            for cy in cy0..=cy1 {
                for cx in cx0..=cx1 {
                    grid[cy * gx + cx].push(j as u32);
                }
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg_boxes(n: usize, seed: u64, extent: f32) -> (Vec<BoxXyxy>, Vec<f32>) {
        let mut s = seed;
        let mut next = move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        };
        let mut boxes = Vec::new();
        let mut scores = Vec::new();
        for _ in 0..n {
            let (x, y, w, h) = (next() * extent, next() * extent, 2.0 + next() * 60.0, 2.0 + next() * 60.0);
            boxes.push([x, y, x + w, y + h]);
            scores.push((next() * 16.0).floor() / 16.0);
        }
        (boxes, scores)
    }

    #[test]
    fn empty_input_keeps_nothing() {
        assert!(nms(&[], &[], 0.5).is_empty());
        assert!(batched_nms(&[], &[], &[], 0.5).is_empty());
    }

    #[test]
    fn identical_boxes_are_all_suppressed_but_one() {
        let boxes = vec![[0.0, 0.0, 10.0, 10.0]; 50];
        let scores: Vec<f32> = (0..50).map(|i| i as f32).collect();
        assert_eq!(nms(&boxes, &scores, 0.5), vec![49]);
        // Different categories never suppress each other.
        let idxs: Vec<i64> = (0..50).map(|i| i % 2).collect();
        assert_eq!(batched_nms(&boxes, &scores, &idxs, 0.5), vec![49, 48]);
    }

    #[test]
    fn threshold_is_compared_in_double() {
        // IoU 0.7 exactly in float32 is 0.699999988, below the double 0.7: not suppressed.
        let a = [0.0, 0.0, 10.0, 10.0];
        let b = [0.0, 0.0, 10.0, 7.0];
        assert_eq!(iou(&a, area(&a), &b, area(&b)), 0.7f32);
        assert_eq!(nms(&[a, b], &[1.0, 0.5], 0.7), vec![0, 1]);
        assert_eq!(nms(&[a, b], &[1.0, 0.5], 0.6999999), vec![0]);
    }

    #[test]
    fn grid_and_compact_paths_agree() {
        for (seed, extent) in [(1, 400.0), (2, 2000.0), (3, 100.0)] {
            let (boxes, scores) = lcg_boxes(3000, seed, extent);
            let order = argsort_descending_stable(&scores);
            for thr in [0.0, 0.3, 0.5, 0.9] {
                assert_eq!(nms_grid(&boxes, &order, thr), nms_compact(&boxes, &order, thr), "seed {seed} thr {thr}");
            }
        }
    }

    #[test]
    fn ninety_thousand_boxes_take_milliseconds() {
        let (boxes, scores) = lcg_boxes(90_000, 7, 4000.0);
        let t = std::time::Instant::now();
        let keep = nms(&boxes, &scores, 0.5);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        println!("nms of 90k boxes: {ms:.1} ms, {} kept", keep.len());
        assert!(!keep.is_empty());
        assert!(ms < 2000.0, "nms of 90k boxes took {ms:.0} ms");
    }
}
