//! `torch.nn.functional.interpolate(..., align_corners=False)` for the two modes detection uses on CPU:
//! bilinear (image resize, mask paste) and bicubic (keypoint heatmaps). Index and weight arithmetic is
//! torch's (`area_pixel_compute_source_index`, `guard_index_and_lambda`, cubic A = -0.75) in float32, and so is
//! the way the weighted taps are summed, because torch's two bilinear CPU kernels differ in it: the generic
//! kernel sums each row first; the channels-last kernel (which torch picks for small outputs) sums four
//! products with combined weights, and its AVX2 build fuses `scale·(i + 0.5) - 0.5` and the running sum into
//! FMAs. Matching the fused source index matters: an unfused one moves a whole output row by up to an ulp of
//! the index (2.6e-5 on a normalised image, measured), the sums only by an ulp of the value. Agreement with
//! torch is then within 2 ulp; bit-exactness would need torch's vectorised code generation.
use ndarray::{Array3, ArrayView3};

/// Torch picks its channels-last bilinear kernel for float inputs when `out_h + out_w <= 128`
/// (`_use_vectorized_kernel_cond_2d`). It also does so for 3-channel inputs when torch runs on one intra-op
/// thread; that case is not modelled: a large image resized by torch on one thread differs from this (and from
/// torch on several threads) by up to ~3e-5 in a few rows (the fused source index).
const SMALL_OUTPUT: usize = 128;

/// `(float)in / out`: torch's `area_pixel_compute_scale` without a given scale factor.
fn scale(input: usize, output: usize) -> f32 {
    input as f32 / output as f32
}

/// Source index and weights (lambda0, lambda1) of output index `o` for linear interpolation; `fused` computes
/// the source index with one rounding, as torch's channels-last kernel does.
fn linear_taps(scale: f32, o: usize, input: usize, output: usize, fused: bool) -> (usize, usize, f32, f32) {
    if input == output {
        return (o, o, 1.0, 0.0);
    }
    let real = if fused { scale.mul_add(o as f32 + 0.5, -0.5) } else { scale * (o as f32 + 0.5) - 0.5 };
    let real = if real < 0.0 { 0.0 } else { real };
    let i0 = (real.floor() as i64).min(input as i64 - 1);
    let l1 = (real - i0 as f32).clamp(0.0, 1.0);
    let i0 = i0.max(0) as usize;
    let i1 = if i0 + 1 < input { i0 + 1 } else { i0 };
    (i0, i1, 1.0 - l1, l1)
}

/// Bilinear resize of each plane of `[C, H, W]` to `[C, out_h, out_w]`, as `F.interpolate(mode="bilinear",
/// align_corners=False)` with an explicit output size.
pub fn resize_bilinear(input: ArrayView3<f32>, out_h: usize, out_w: usize) -> Array3<f32> {
    resize_bilinear_with(input.dim(), |c, y, x| input[[c, y, x]], out_h, out_w)
}

/// [`resize_bilinear`] of the `[C, H, W]` image whose value at `(c, y, x)` is `src(c, y, x)`: the input is
/// read where the taps fall and never held whole (a photo's float copy alone is 12 bytes a pixel).
pub fn resize_bilinear_with(
    dim: (usize, usize, usize),
    src: impl Fn(usize, usize, usize) -> f32,
    out_h: usize,
    out_w: usize,
) -> Array3<f32> {
    resize_bilinear_window(dim, src, (out_h, out_w), 0..out_h, 0..out_w)
}

/// Rows `rows` and columns `cols` of [`resize_bilinear_with`]'s `[C, out_h, out_w]` output, computed alone
/// (every output pixel depends only on its own taps): a mask pasted over a box that the image cuts needs only
/// the part inside.
pub fn resize_bilinear_window(
    dim: (usize, usize, usize),
    src: impl Fn(usize, usize, usize) -> f32,
    (out_h, out_w): (usize, usize),
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) -> Array3<f32> {
    let (c, h, w) = dim;
    let (rows, cols) = (rows.start.min(out_h)..rows.end.min(out_h), cols.start.min(out_w)..cols.end.min(out_w));
    let mut out = Array3::<f32>::zeros((c, rows.len(), cols.len()));
    if c == 0 || h == 0 || w == 0 || rows.is_empty() || cols.is_empty() {
        return out;
    }
    let (sh, sw) = (scale(h, out_h), scale(w, out_w));
    // The kernel torch picks depends on the whole output's size, not the window's.
    let channels_last = out_h.saturating_add(out_w) <= SMALL_OUTPUT;
    let rows: Vec<_> = rows.map(|o| linear_taps(sh, o, h, out_h, channels_last)).collect();
    let cols: Vec<_> = cols.map(|o| linear_taps(sw, o, w, out_w, channels_last)).collect();
    for ch in 0..c {
        let mut dst = out.index_axis_mut(ndarray::Axis(0), ch);
        for (oy, &(y0, y1, h0, h1)) in rows.iter().enumerate() {
            for (ox, &(x0, x1, w0, w1)) in cols.iter().enumerate() {
                let (v00, v01, v10, v11) = (src(ch, y0, x0), src(ch, y0, x1), src(ch, y1, x0), src(ch, y1, x1));
                dst[[oy, ox]] = if channels_last {
                    let (w00, w01, w10, w11) = (h0 * w0, h0 * w1, h1 * w0, h1 * w1);
                    v11.mul_add(w11, v10.mul_add(w10, v01.mul_add(w01, v00 * w00)))
                } else {
                    (v00 * w0 + v01 * w1) * h0 + (v10 * w0 + v11 * w1) * h1
                };
            }
        }
    }
    out
}

fn cubic_convolution1(x: f32, a: f32) -> f32 {
    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
}

fn cubic_convolution2(x: f32, a: f32) -> f32 {
    ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
}

/// Torch's `get_cubic_upsample_coefficients` (Keys kernel with A = -0.75).
fn cubic_coefficients(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let x2 = 1.0 - t;
    [cubic_convolution2(t + 1.0, A), cubic_convolution1(t, A), cubic_convolution1(x2, A), cubic_convolution2(x2 + 1.0, A)]
}

/// The four source indices (clamped to the border, as torch does) and weights of output index `o`.
fn cubic_taps(scale: f32, o: usize, input: usize) -> ([usize; 4], [f32; 4]) {
    let real = scale * (o as f32 + 0.5) - 0.5;
    let i = (real.floor() as i64).min(input as i64 - 1);
    let t = (real - i as f32).clamp(0.0, 1.0);
    let idx = [0i64, 1, 2, 3].map(|j| (i - 1 + j).clamp(0, input as i64 - 1) as usize);
    (idx, cubic_coefficients(t))
}

/// Bicubic resize of each plane of `[C, H, W]` to `[C, out_h, out_w]`, as `F.interpolate(mode="bicubic",
/// align_corners=False)` (no antialias). Values are not clamped, so they can overshoot the input range.
pub fn resize_bicubic(input: ArrayView3<f32>, out_h: usize, out_w: usize) -> Array3<f32> {
    let (c, h, w) = input.dim();
    let mut out = Array3::<f32>::zeros((c, out_h, out_w));
    if c == 0 || h == 0 || w == 0 || out_h == 0 || out_w == 0 {
        return out;
    }
    let (sh, sw) = (scale(h, out_h), scale(w, out_w));
    let rows: Vec<_> = (0..out_h).map(|o| cubic_taps(sh, o, h)).collect();
    let cols: Vec<_> = (0..out_w).map(|o| cubic_taps(sw, o, w)).collect();
    for ch in 0..c {
        let src = input.index_axis(ndarray::Axis(0), ch);
        let mut dst = out.index_axis_mut(ndarray::Axis(0), ch);
        for (oy, (ys, wy)) in rows.iter().enumerate() {
            for (ox, (xs, wx)) in cols.iter().enumerate() {
                // Torch's generic kernel: interpolate along each row, then across the rows, accumulating left
                // to right.
                let row = |y: usize| {
                    let mut acc = src[[y, xs[0]]] * wx[0];
                    for k in 1..4 {
                        acc += src[[y, xs[k]]] * wx[k];
                    }
                    acc
                };
                let mut acc = row(ys[0]) * wy[0];
                for j in 1..4 {
                    acc += row(ys[j]) * wy[j];
                }
                dst[[oy, ox]] = acc;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn same_size_is_identity_and_empty_is_empty() {
        let x = Array3::from_shape_fn((2, 5, 7), |(c, y, x)| (c * 100 + y * 10 + x) as f32);
        assert_eq!(resize_bilinear(x.view(), 5, 7), x);
        assert_eq!(resize_bicubic(x.view(), 5, 7), x);
        assert_eq!(resize_bilinear(x.view(), 0, 3).dim(), (2, 0, 3));
        let empty = Array3::<f32>::zeros((1, 0, 0));
        assert_eq!(resize_bicubic(empty.view(), 4, 4), Array3::<f32>::zeros((1, 4, 4)));
    }

    #[test]
    fn constant_planes_stay_constant() {
        let x = Array3::from_elem((1, 3, 4), 2.5f32);
        assert!(resize_bilinear(x.view(), 9, 2).iter().all(|&v| (v - 2.5).abs() < 1e-6));
        assert!(resize_bicubic(x.view(), 9, 2).iter().all(|&v| (v - 2.5).abs() < 1e-5));
    }
}
