//! torchvision's RoIAlign (`aligned=False`) on CPU and `MultiScaleRoIAlign` over FPN levels P2..P5, for one
//! image, plus the same pooling as "taps": for every RoI and output bin the feature-table rows and weights of
//! its bilinear samples, so that a training graph can pool with Gather + weighted sum (ORT has no RoiAlign
//! gradient; docs/engine-facts.md).
//!
//! Sampling follows torchvision's kernel exactly: RoI corners times the level's scale, RoI sides at least 1,
//! `sampling_ratio²` samples per bin at `start + bin·size + (i + 0.5)·size / ratio`, a sample with y < -1,
//! y > H, x < -1 or x > W contributes 0, otherwise coordinates are clamped to `[0, H-1]` / `[0, W-1]` before
//! bilinear interpolation; the bin value is the sum over samples divided by `sampling_ratio²`.
use crate::error::{bad_input, Result};
use crate::imaging::boxes::box_area;
use crate::imaging::{BoxXyxy, Hw};
use ndarray::{Array2, Array3, Array4, ArrayView2, ArrayView3, ArrayView4, Axis};

/// One bilinear sample: four flat indices into an `H·W` plane and their weights (all 0 for a sample outside).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Sample {
    pos: [usize; 4],
    w: [f32; 4],
}

/// Torchvision's `pre_calc_for_bilinear_interpolate`: the samples of every bin of one RoI on one level, bin-major
/// (ph, pw), then sample (iy, ix), and how many samples each bin has. `sampling_ratio` 0 is torchvision's -1:
/// a per-RoI grid of ceil(roi side / output size) samples per bin side (what mask targets use).
fn samples(hw: Hw, roi: BoxXyxy, spatial_scale: f32, output_size: usize, sampling_ratio: usize) -> (Vec<Sample>, usize) {
    let (height, width) = (hw.0 as i64, hw.1 as i64);
    let (start_w, start_h) = (roi[0] * spatial_scale, roi[1] * spatial_scale);
    let (end_w, end_h) = (roi[2] * spatial_scale, roi[3] * spatial_scale);
    // Force malformed RoIs to be 1x1 (aligned=False).
    let roi_w = f32_max(end_w - start_w, 1.0);
    let roi_h = f32_max(end_h - start_h, 1.0);
    let bin_h = roi_h / output_size as f32;
    let bin_w = roi_w / output_size as f32;
    let (grid_h, grid_w) = match sampling_ratio {
        0 => (bin_h.ceil() as usize, bin_w.ceil() as usize),
        r => (r, r),
    };
    let mut out = Vec::with_capacity(output_size * output_size * grid_h * grid_w);
    for ph in 0..output_size {
        for pw in 0..output_size {
            for iy in 0..grid_h {
                let yy = start_h + ph as f32 * bin_h + (iy as f32 + 0.5) * bin_h / grid_h as f32;
                for ix in 0..grid_w {
                    let xx = start_w + pw as f32 * bin_w + (ix as f32 + 0.5) * bin_w / grid_w as f32;
                    out.push(bilinear(height, width, yy, xx));
                }
            }
        }
    }
    (out, grid_h * grid_w)
}

/// `std::max(a, b)` for float32.
#[inline]
fn f32_max(a: f32, b: f32) -> f32 {
    if a < b {
        b
    } else {
        a
    }
}

/// One coordinate of a bilinear sample on an axis of `size` cells, clamped as torchvision's CPU kernel does:
/// (low cell, high cell, fraction towards high).
pub(super) fn axis(v: f32, size: i64) -> (i64, i64, f32) {
    let v = if v <= 0.0 { 0.0 } else { v };
    let low = v as i64;
    if low >= size - 1 {
        (size - 1, size - 1, 0.0)
    } else {
        (low, low + 1, v - low as f32)
    }
}

/// One sample's taps, with torchvision's CPU boundary rules (written so that NaN coordinates give zeros).
fn bilinear(height: i64, width: i64, y: f32, x: f32) -> Sample {
    if !(y >= -1.0 && y <= height as f32 && x >= -1.0 && x <= width as f32) || height == 0 || width == 0 {
        return Sample::default();
    }
    let (y_low, y_high, ly) = axis(y, height);
    let (x_low, x_high, lx) = axis(x, width);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    let w = width as usize;
    let (yl, yh, xl, xh) = (y_low as usize, y_high as usize, x_low as usize, x_high as usize);
    Sample { pos: [yl * w + xl, yl * w + xh, yh * w + xl, yh * w + xh], w: [hy * hx, hy * lx, ly * hx, ly * lx] }
}

/// `torchvision.ops.roi_align(aligned=False)` of `rois` (one image's boxes, in input pixels) on `feature
/// [C, H, W]`: output `[N, C, output_size, output_size]`. `sampling_ratio` 0 stands for torchvision's -1.
pub fn roi_align(feature: ArrayView3<f32>, rois: &[BoxXyxy], spatial_scale: f32, output_size: usize, sampling_ratio: usize) -> Array4<f32> {
    let feature = feature.as_standard_layout();
    let mut out = Array4::<f32>::zeros((rois.len(), feature.dim().0, output_size, output_size));
    for (n, &roi) in rois.iter().enumerate() {
        roi_align_into(feature.view(), roi, spatial_scale, sampling_ratio, out.index_axis_mut(Axis(0), n));
    }
    out
}

/// RoIAlign of one RoI into `out [C, P, P]`, accumulating in torchvision's order. `feature` must be in
/// standard layout.
fn roi_align_into(feature: ArrayView3<f32>, roi: BoxXyxy, spatial_scale: f32, sampling_ratio: usize, mut out: ndarray::ArrayViewMut3<f32>) {
    let (_, h, w) = feature.dim();
    let p = out.dim().1;
    let (pre, per_bin) = samples((h, w), roi, spatial_scale, p, sampling_ratio);
    let count = per_bin.max(1) as f32;
    for (c, plane) in feature.outer_iter().enumerate() {
        let plane = plane.as_slice().expect("standard layout");
        for (bin, bin_samples) in pre.chunks(per_bin).enumerate() {
            let mut acc = 0.0f32;
            for s in bin_samples {
                acc += s.w[0] * plane[s.pos[0]] + s.w[1] * plane[s.pos[1]] + s.w[2] * plane[s.pos[2]] + s.w[3] * plane[s.pos[3]];
            }
            out[[c, bin / p, bin % p]] = acc / count;
        }
    }
}

/// RoIAlign of one RoI from `feature [H, W, C]` (standard layout) into `out [C, P, P]`: per bin, each sample's
/// four taps `w0·v0 + w1·v1 + w2·v2 + w3·v3` added to the bin's sum in torchvision's order, for all channels at
/// once (`acc` holds one value per channel).
fn pool_channel_last(
    feature: ArrayView3<f32>,
    roi: BoxXyxy,
    spatial_scale: f32,
    sampling_ratio: usize,
    mut out: ndarray::ArrayViewMut3<f32>,
    acc: &mut [f32],
) {
    let (h, w, c) = feature.dim();
    let p = out.dim().1;
    let (pre, per_bin) = samples((h, w), roi, spatial_scale, p, sampling_ratio);
    let count = per_bin.max(1) as f32;
    let feature = feature.as_slice().expect("standard layout");
    let out = out.as_slice_mut().expect("a row of a standard-layout array");
    for (bin, bin_samples) in pre.chunks(per_bin).enumerate() {
        acc.fill(0.0);
        for s in bin_samples {
            let tap = |k: usize| &feature[s.pos[k] * c..s.pos[k] * c + c];
            let (v0, v1, v2, v3) = (tap(0), tap(1), tap(2), tap(3));
            let [w0, w1, w2, w3] = s.w;
            for ch in 0..c {
                acc[ch] += w0 * v0[ch] + w1 * v1[ch] + w2 * v2[ch] + w3 * v3[ch];
            }
        }
        for (ch, a) in acc.iter().enumerate() {
            out[ch * p * p + bin] = a / count;
        }
    }
}

/// Torchvision's `LevelMapper`: the FPN level of a box from its size (FPN paper eq. 1),
/// `floor(4 + log2(sqrt(area) / 224) + 1e-6)` clamped to `[k_min, k_max]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LevelMapper {
    pub k_min: i32,
    pub k_max: i32,
    pub canonical_scale: f32,
    pub canonical_level: f32,
    pub eps: f32,
}

impl LevelMapper {
    pub fn new(k_min: i32, k_max: i32) -> Self {
        LevelMapper { k_min, k_max, canonical_scale: 224.0, canonical_level: 4.0, eps: 1e-6 }
    }

    /// Index into the pooled levels (`level - k_min`). `None` for a box whose area is negative (inverted
    /// box) or NaN: torchvision computes a NaN level that matches no level, so such a RoI pools to zeros.
    pub fn level(&self, b: BoxXyxy) -> Option<usize> {
        let s = box_area(b).sqrt();
        let target = (self.canonical_level + (s / self.canonical_scale).log2() + self.eps).floor();
        if target.is_nan() {
            return None;
        }
        Some((target.clamp(self.k_min as f32, self.k_max as f32) as i32 - self.k_min) as usize)
    }
}

/// `MultiScaleRoIAlign(["0", "1", "2", "3"], output_size, sampling_ratio)` with its scales inferred.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiScaleRoIAlign {
    /// Feature-map size of each pooled level.
    pub feature_hw: Vec<Hw>,
    /// `2^round(log2(feature_h / image_h))` per level.
    pub scales: Vec<f32>,
    pub mapper: LevelMapper,
    pub output_size: usize,
    pub sampling_ratio: usize,
}

/// FPN levels laid out `[H, W, C]`, as [`MultiScaleRoIAlign::pool_rows`] reads them: made once per image and
/// shared by every pooling of it (the box head's and the mask or keypoint head's).
pub struct ChannelLast(Vec<Array3<f32>>);

impl ChannelLast {
    /// `features` `[C, H, W]` per level, all with the same channel count.
    pub fn new(features: &[ArrayView3<f32>]) -> Result<Self> {
        let c = features.first().map_or(0, |f| f.dim().0);
        if features.iter().any(|f| f.dim().0 != c) {
            return Err(bad_input("RoIAlign feature levels have different channel counts".to_string()));
        }
        Ok(ChannelLast(features.iter().map(|f| f.view().permuted_axes([1, 2, 0]).as_standard_layout().into_owned()).collect()))
    }

    /// Height and width of each level.
    pub fn hw(&self) -> impl Iterator<Item = Hw> + '_ {
        self.0.iter().map(|f| (f.dim().0, f.dim().1))
    }

    pub fn channels(&self) -> usize {
        self.0.first().map_or(0, |f| f.dim().2)
    }
}

/// The inputs' rows in the feature table of [`feature_table`] and their weights: `[N, P·P, 4·ratio²]` each.
/// `pooled[n, c, bin] = Σ_t weight[n, bin, t] · table[index[n, bin, t], c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct RoiTaps {
    pub index: Array3<i64>,
    pub weight: Array3<f32>,
}

impl MultiScaleRoIAlign {
    /// Infers scales and level range as torchvision's `_setup_scales`: from the feature heights and the largest
    /// resized (unpadded) image height of the batch. (torchvision caches them at the first call of a model; they
    /// only differ between images when a size sits at a rounding boundary.)
    pub fn new(feature_hw: &[Hw], image_hw: Hw, output_size: usize, sampling_ratio: usize) -> Result<Self> {
        if feature_hw.is_empty() || image_hw.0 == 0 || feature_hw.iter().any(|&(h, w)| h == 0 || w == 0) {
            return Err(bad_input(format!(
                "MultiScaleRoIAlign needs non-empty feature maps and image, got {feature_hw:?} for {image_hw:?}"
            )));
        }
        if output_size == 0 || sampling_ratio == 0 {
            return Err(bad_input(format!("RoIAlign output size and sampling ratio must be positive ({output_size}, {sampling_ratio})")));
        }
        let scales: Vec<f32> = feature_hw
            .iter()
            .map(|&(fh, _)| {
                let approx = (fh as f64 / image_hw.0 as f64) as f32;
                2f64.powf(approx.log2().round_ties_even() as f64) as f32
            })
            .collect();
        let k = |s: f32| (-s.log2()) as i32;
        let mapper = LevelMapper::new(k(scales[0]), k(scales[scales.len() - 1]));
        Ok(MultiScaleRoIAlign { feature_hw: feature_hw.to_vec(), scales, mapper, output_size, sampling_ratio })
    }

    /// The pooled level of each box (see [`LevelMapper::level`]).
    pub fn levels(&self, boxes: &[BoxXyxy]) -> Vec<Option<usize>> {
        boxes.iter().map(|&b| self.mapper.level(b).filter(|&l| l < self.scales.len())).collect()
    }

    fn check(&self, features_hw: impl Iterator<Item = Hw>) -> Result<()> {
        let given: Vec<Hw> = features_hw.collect();
        if given != self.feature_hw {
            return Err(bad_input(format!("RoIAlign was set up for feature maps {:?} but got {given:?}", self.feature_hw)));
        }
        Ok(())
    }

    /// Pools `boxes` (resized-image pixels) from `features` (`[C, H, W]` per level): `[N, C, P, P]`, rows in
    /// input order.
    pub fn pool(&self, features: &[ArrayView3<f32>], boxes: &[BoxXyxy]) -> Result<Array4<f32>> {
        self.pool_rows(&ChannelLast::new(features)?, boxes, boxes.len(), 1)
    }

    /// [`Self::pool`] from features already laid out channel-last, into `rows` ≥ N rows (the rows past the boxes
    /// zero: a stage's fixed RoI count), the RoIs split over `threads`. Each bilinear tap is one contiguous
    /// multiply-add over all channels; every channel still sums its samples in torchvision's order, so the
    /// result is the same bit for bit as pooling one plane at a time.
    pub fn pool_rows(&self, features: &ChannelLast, boxes: &[BoxXyxy], rows: usize, threads: usize) -> Result<Array4<f32>> {
        self.check(features.hw())?;
        let (c, p) = (features.channels(), self.output_size);
        let mut out = Array4::<f32>::zeros((rows.max(boxes.len()), c, p, p));
        if boxes.is_empty() || c == 0 {
            return Ok(out);
        }
        let hwc = &features.0;
        let levels = self.levels(boxes);
        let per_thread = boxes.len().div_ceil(threads.clamp(1, boxes.len()));
        std::thread::scope(|scope| {
            let chunks = out.axis_chunks_iter_mut(Axis(0), per_thread).zip(boxes.chunks(per_thread)).zip(levels.chunks(per_thread));
            for ((mut out, boxes), levels) in chunks {
                scope.spawn(move || {
                    let mut acc = vec![0f32; c];
                    for (n, (&b, level)) in boxes.iter().zip(levels).enumerate() {
                        if let Some(l) = *level {
                            let row = out.index_axis_mut(Axis(0), n);
                            pool_channel_last(hwc[l].view(), b, self.scales[l], self.sampling_ratio, row, &mut acc);
                        }
                    }
                });
            }
        });
        Ok(out)
    }

    /// The pooling of `boxes` (image `image` of a batch of `batch` images) as taps into [`feature_table`]. Taps
    /// of out-of-range samples and of boxes with no level have weight 0 and point at a valid row.
    pub fn taps(&self, boxes: &[BoxXyxy], image: usize, batch: usize) -> Result<RoiTaps> {
        if image >= batch {
            return Err(bad_input(format!("image {image} is outside a batch of {batch}")));
        }
        let (p, sr) = (self.output_size, self.sampling_ratio);
        let per_bin = sr * sr;
        let t = 4 * per_bin;
        let mut index = Array3::<i64>::zeros((boxes.len(), p * p, t));
        let mut weight = Array3::<f32>::zeros((boxes.len(), p * p, t));
        let mut offsets = Vec::with_capacity(self.feature_hw.len());
        let mut off = 0usize;
        for &(h, w) in &self.feature_hw {
            offsets.push(off);
            off += batch * h * w;
        }
        for (n, (&b, level)) in boxes.iter().zip(self.levels(boxes)).enumerate() {
            let Some(l) = level else { continue };
            let hw = self.feature_hw[l];
            let base = offsets[l] + image * hw.0 * hw.1;
            let (pre, _) = samples(hw, b, self.scales[l], p, sr);
            for (bin, bin_samples) in pre.chunks(per_bin).enumerate() {
                for (s, sample) in bin_samples.iter().enumerate() {
                    for k in 0..4 {
                        index[[n, bin, s * 4 + k]] = (base + sample.pos[k]) as i64;
                        weight[[n, bin, s * 4 + k]] = sample.w[k] / per_bin as f32;
                    }
                }
            }
        }
        Ok(RoiTaps { index, weight })
    }
}

/// The feature table the taps index: levels `[B, C, H, W]` concatenated as rows `[Σ_l B·H_l·W_l, C]`, row
/// `offset_l + b·H_l·W_l + y·W_l + x`.
pub fn feature_table(levels: &[ArrayView4<f32>]) -> Result<Array2<f32>> {
    let Some(first) = levels.first() else { return Err(bad_input("feature table needs at least one level".to_string())) };
    let (b, c) = (first.dim().0, first.dim().1);
    if levels.iter().any(|l| l.dim().0 != b || l.dim().1 != c) {
        return Err(bad_input("feature table levels differ in batch size or channels".to_string()));
    }
    let rows: usize = levels.iter().map(|l| b * l.dim().2 * l.dim().3).sum();
    let mut table = Array2::<f32>::zeros((rows, c));
    let mut row = 0;
    for level in levels {
        // [B, C, H, W] → [B, H, W, C] → rows
        let permuted = level.view().permuted_axes([0, 2, 3, 1]);
        let n = b * level.dim().2 * level.dim().3;
        for (r, v) in permuted.iter().enumerate() {
            table[[row + r / c, r % c]] = *v;
        }
        row += n;
    }
    Ok(table)
}

impl RoiTaps {
    /// `Σ_t weight · table[index]`: what the training graph computes, `[N, C, P, P]`.
    pub fn apply(&self, table: ArrayView2<f32>) -> Array4<f32> {
        let (n, bins, taps) = self.index.dim();
        let c = table.dim().1;
        let p = (bins as f64).sqrt().round() as usize;
        let mut out = Array4::<f32>::zeros((n, c, p, p));
        for i in 0..n {
            for bin in 0..bins {
                for t in 0..taps {
                    let w = self.weight[[i, bin, t]];
                    if w == 0.0 {
                        continue;
                    }
                    let row = table.row(self.index[[i, bin, t]] as usize);
                    for ch in 0..c {
                        out[[i, ch, bin / p, bin % p]] += w * row[ch];
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn ramp(c: usize, h: usize, w: usize) -> Array3<f32> {
        Array3::from_shape_fn((c, h, w), |(c, y, x)| (c * 1000 + y * 10 + x) as f32)
    }

    #[test]
    fn roi_partly_outside_the_map_samples_zeros_there() {
        let f = ramp(1, 8, 8);
        // The RoI's left half lies at x < -1 on the map: those samples contribute 0.
        let out = roi_align(f.view(), &[[-8.0, 0.0, 4.0, 4.0]], 1.0, 2, 2);
        assert_eq!(out[[0, 0, 0, 0]], 0.0);
        assert!(out[[0, 0, 0, 1]] > 0.0);
        // Entirely outside: all zeros.
        let out = roi_align(f.view(), &[[20.0, 20.0, 30.0, 30.0]], 1.0, 2, 2);
        assert!(out.iter().all(|&v| v == 0.0));
        assert_eq!(roi_align(f.view(), &[], 1.0, 7, 2).dim(), (0, 1, 7, 7));
    }

    #[test]
    fn levels_follow_the_fpn_rule() {
        let m = LevelMapper::new(2, 5);
        assert_eq!(m.level([0.0, 0.0, 224.0, 224.0]), Some(2)); // level 4 → index 2
        assert_eq!(m.level([0.0, 0.0, 112.0, 112.0]), Some(1));
        assert_eq!(m.level([0.0, 0.0, 1.0, 1.0]), Some(0));
        assert_eq!(m.level([0.0, 0.0, 5000.0, 5000.0]), Some(3));
        assert_eq!(m.level([10.0, 0.0, 5.0, 5.0]), None);
    }

    /// Three levels of odd sizes and an odd channel count, random features, and 43 boxes: random ones, then boxes
    /// outside the map, inverted (the fifth from last: no level), degenerate, outside in x only, and two large
    /// enough for the coarser levels (levels come from absolute size: 224 px is level 4).
    pub(crate) fn random_case(mut seed: u64) -> (Vec<Array3<f32>>, MultiScaleRoIAlign, Vec<BoxXyxy>) {
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        let hw = [(24, 20), (12, 10), (6, 5)];
        let feats: Vec<Array3<f32>> = hw.iter().map(|&(h, w)| Array3::from_shape_fn((5, h, w), |_| rnd() * 2.0 - 1.0)).collect();
        let pooler = MultiScaleRoIAlign::new(&hw, (96, 80), 7, 2).unwrap();
        let mut boxes: Vec<BoxXyxy> = (0..37)
            .map(|_| {
                let (x, y) = (rnd() * 90.0 - 5.0, rnd() * 100.0 - 5.0);
                [x, y, x + rnd() * 70.0, y + rnd() * 70.0]
            })
            .collect();
        boxes.extend([[200.0, 200.0, 260.0, 260.0], [9.0, 9.0, 3.0, 30.0], [4.0, 4.0, 4.0, 4.0], [-90.0, 2.0, -85.0, 9.0]]);
        boxes.extend([[10.0, 5.0, 140.0, 130.0], [-20.0, -10.0, 250.0, 260.0]]);
        (feats, pooler, boxes)
    }

    #[test]
    fn threaded_channel_last_pooling_equals_plane_by_plane_bit_for_bit() {
        let (feats, pooler, boxes) = random_case(7);
        let views: Vec<_> = feats.iter().map(|f| f.view()).collect();
        assert!((0..3).all(|l| pooler.levels(&boxes).contains(&Some(l))));
        for threads in [1, 3, 64] {
            let pooled = pooler.pool_rows(&ChannelLast::new(&views).unwrap(), &boxes, 50, threads).unwrap();
            assert_eq!(pooled.dim(), (50, 5, 7, 7));
            for (n, (&b, level)) in boxes.iter().zip(pooler.levels(&boxes)).enumerate() {
                let expect = match level {
                    Some(l) => roi_align(feats[l].view(), &[b], pooler.scales[l], 7, 2).index_axis_move(Axis(0), 0),
                    None => Array3::zeros((5, 7, 7)),
                };
                let got = pooled.index_axis(Axis(0), n);
                assert!(got.iter().zip(&expect).all(|(a, e)| a.to_bits() == e.to_bits()), "box {n} {b:?}, {threads} threads");
            }
            assert!(pooled.slice(ndarray::s![boxes.len().., .., .., ..]).iter().all(|&v| v == 0.0));
        }
    }

    #[test]
    fn taps_reproduce_pooling() {
        let feats = [ramp(3, 16, 16), ramp(3, 8, 8)];
        let views: Vec<_> = feats.iter().map(|f| f.view()).collect();
        let pooler = MultiScaleRoIAlign::new(&[(16, 16), (8, 8)], (64, 64), 7, 2).unwrap();
        let boxes = [[0.0, 0.0, 20.0, 20.0], [-10.0, 5.0, 60.0, 63.0], [3.0, 4.0, 3.5, 4.2], [9.0, 9.0, 3.0, 30.0]];
        let pooled = pooler.pool(&views, &boxes).unwrap();
        let levels4: Vec<_> = feats.iter().map(|f| f.view().insert_axis(Axis(0))).collect();
        let table = feature_table(&levels4).unwrap();
        let via_taps = pooler.taps(&boxes, 0, 1).unwrap().apply(table.view());
        let diff = pooled.iter().zip(&via_taps).map(|(a, b)| (a - b).abs() / (1.0 + a.abs())).fold(0.0, f32::max);
        assert!(diff < 1e-6, "taps differ from pooling by {diff}");
        assert!(pooled.index_axis(Axis(0), 3).iter().all(|&v| v == 0.0)); // inverted box: no level
    }
}
