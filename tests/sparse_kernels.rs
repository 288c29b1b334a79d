//! The sparse kernels against a dense reference on the same (zeroed) weights: every conv shape the R-CNN graphs
//! use (7×7/2 stem, 3×3/1 and /2, 1×1/1 and /2, with padding) and the Gemm with transB, on odd sizes, with
//! all-zero output channels, a 100%-zero tensor and a fully dense one, on every instruction set this CPU has
//! and with 1 and 3 threads. Agreement: max |sparse − reference| ≤ 1e-5 · max |reference| (reference in f64).
use ticket::data::rng::SeededRng;
use ticket::sparse::kernel::Isa;
use ticket::sparse::{ConvGeom, SparseConv, SparseGemm};

struct Rng(SeededRng);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0.unit() as f32
    }

    fn normal_ish(&mut self) -> f32 {
        (self.next() + self.next() + self.next()) - 1.5
    }

    /// Weights with `density` non-zeros; every third output channel all zero when `dead_rows`.
    fn weights(&mut self, rows: usize, cols: usize, density: f64, dead_rows: bool) -> Vec<f32> {
        (0..rows * cols)
            .map(|i| {
                let keep = (self.next() as f64) < density && !(dead_rows && (i / cols) % 3 == 1);
                let v = self.normal_ish();
                if keep {
                    v
                } else {
                    0.0
                }
            })
            .collect()
    }
}

fn reference_conv(g: &ConvGeom, n: usize, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f64> {
    let (ho, wo) = g.out_hw();
    let k = g.kernel;
    let mut out = vec![0f64; n * g.cout * ho * wo];
    for img in 0..n {
        for co in 0..g.cout {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = b[co] as f64;
                    for ci in 0..g.cin {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) =
                                    ((oy * g.stride + ky) as isize - g.pad as isize, (ox * g.stride + kx) as isize - g.pad as isize);
                                if iy < 0 || ix < 0 || iy >= g.height as isize || ix >= g.width as isize {
                                    continue;
                                }
                                let xv = x[((img * g.cin + ci) * g.height + iy as usize) * g.width + ix as usize];
                                acc += w[((co * g.cin + ci) * k + ky) * k + kx] as f64 * xv as f64;
                            }
                        }
                    }
                    out[((img * g.cout + co) * ho + oy) * wo + ox] = acc;
                }
            }
        }
    }
    out
}

fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    let err = got.iter().zip(want).fold(0f64, |m, (g, w)| m.max((*g as f64 - w).abs()));
    assert!(err <= 1e-5 * scale.max(1e-30) || (scale == 0.0 && err == 0.0), "{what}: max error {err:e} against max |reference| {scale:e}");
}

/// (cin, cout, kernel, stride, pad, height, width, batch)
const CONVS: &[(usize, usize, usize, usize, usize, usize, usize, usize)] = &[
    (3, 8, 7, 2, 3, 33, 29, 1),    // stem
    (5, 7, 3, 1, 1, 13, 11, 2),    // 3×3/1
    (6, 9, 3, 2, 1, 15, 17, 1),    // 3×3/2
    (17, 5, 1, 1, 0, 9, 10, 3),    // 1×1/1
    (8, 6, 1, 2, 0, 11, 13, 1),    // 1×1/2 (downsample)
    (4, 3, 3, 1, 0, 5, 6, 1),      // no padding
    (700, 4, 3, 1, 1, 6, 7, 1),    // many input channels: several panels
    (2, 70, 1, 1, 0, 1, 1, 2),     // a 1×1 plane
    (9, 11, 3, 1, 1, 40, 3, 1),    // a narrow, tall plane
    (64, 48, 3, 1, 1, 30, 30, 1),  // large enough to run on several threads
    (16, 24, 3, 1, 1, 14, 14, 20), // a mask-head batch of RoIs, on several threads
];

#[test]
fn sparse_conv_matches_dense_reference_on_every_shape_density_and_isa() {
    let mut rng = Rng(SeededRng::new(0x1234_5678_9abc_def1));
    for &(cin, cout, kernel, stride, pad, height, width, n) in CONVS {
        let g = ConvGeom { cin, cout, kernel, stride, pad, height, width };
        let x: Vec<f32> = (0..n * cin * height * width).map(|_| rng.normal_ish()).collect();
        let b: Vec<f32> = (0..cout).map(|_| rng.normal_ish()).collect();
        for (density, dead) in [(0.0, false), (0.05, true), (0.2, false), (0.5, true), (1.0, false)] {
            let w = rng.weights(cout, cin * kernel * kernel, density, dead);
            let want = reference_conv(&g, n, &x, &w, &b);
            let mut fused = SparseConv::new(g, &w, Some(&b)).unwrap();
            fused.relu = true;
            let want_relu: Vec<f64> = want.iter().map(|v| v.max(0.0)).collect();
            assert_close(&format!("{g:?} n {n} density {density} with ReLU"), &fused.run(&x, n, 2).unwrap(), &want_relu);
            for isa in Isa::available() {
                let conv = SparseConv::with_isa(isa, g, &w, Some(&b)).unwrap();
                assert_eq!(conv.nnz(), w.iter().filter(|v| **v != 0.0).count());
                for threads in [1, 3] {
                    let got = conv.run(&x, n, threads).unwrap();
                    assert_close(&format!("{g:?} n {n} density {density} {} threads {threads}", isa.name()), &got, &want);
                }
            }
        }
    }
}

#[test]
fn sparse_gemm_matches_dense_reference() {
    let mut rng = Rng(SeededRng::new(0x0bad_cafe_f00d_1234));
    // (rows n, outputs m, inputs k): odd sizes, one row, more inputs than a panel holds.
    for &(n, m, k) in &[(37, 19, 50), (1, 5, 7), (130, 33, 2100), (64, 64, 64)] {
        let x: Vec<f32> = (0..n * k).map(|_| rng.normal_ish()).collect();
        let b: Vec<f32> = (0..m).map(|_| rng.normal_ish()).collect();
        for (density, dead) in [(0.0, false), (0.03, true), (0.3, false), (1.0, false)] {
            let w = rng.weights(m, k, density, dead);
            let want: Vec<f64> = (0..n * m)
                .map(|i| {
                    let (r, j) = (i / m, i % m);
                    b[j] as f64 + (0..k).map(|c| w[j * k + c] as f64 * x[r * k + c] as f64).sum::<f64>()
                })
                .collect();
            for isa in Isa::available() {
                let gemm = SparseGemm::with_isa(isa, n, &w, m, k, Some(&b)).unwrap();
                for threads in [1, 2] {
                    assert_close(
                        &format!("gemm n {n} m {m} k {k} density {density} {} threads {threads}", isa.name()),
                        &gemm.run(&x, threads).unwrap(),
                        &want,
                    );
                }
            }
        }
    }
}

#[test]
fn bad_shapes_are_refused_not_run() {
    let g = ConvGeom { cin: 2, cout: 2, kernel: 5, stride: 1, pad: 0, height: 3, width: 3 };
    assert!(SparseConv::new(g, &[0.0; 2 * 2 * 25], None).is_err(), "kernel larger than the padded input");
    let g = ConvGeom { height: 8, width: 8, ..g };
    assert!(SparseConv::new(g, &[0.0; 7], None).is_err(), "weight count does not match the shape");
    let conv = SparseConv::new(g, &[1.0; 2 * 2 * 25], None).unwrap();
    assert!(conv.run(&[0.0; 5], 1, 1).is_err(), "input of the wrong size");
    assert!(SparseGemm::new(4, &[1.0; 6], 2, 3, Some(&[0.0; 5])).is_err(), "bias of the wrong size");
}

#[test]
fn weights_given_as_a_bitmap_pack_as_the_same_weights_given_dense() {
    use ticket::onnx::compact::Packed;
    use ticket::sparse::layer::WeightsIn;
    let mut rng = Rng(SeededRng::new(11));
    let isa = Isa::detect();
    let g = ConvGeom { cin: 5, cout: 7, kernel: 3, stride: 2, pad: 1, height: 13, width: 11 };
    let mut w = rng.weights(g.cout, g.cin * 9, 0.2, true);
    w[3] = -0.0; // a kept -0.0 is a value of the bitmap, and still no non-zero
    let b: Vec<f32> = (0..g.cout).map(|_| rng.normal_ish()).collect();
    let x: Vec<f32> = (0..2 * g.cin * g.height * g.width).map(|_| rng.normal_ish()).collect();
    let p = Packed::from_dense(&w);
    let bitmap = WeightsIn::Bitmap { len: p.len, bits: &p.bits, values: &p.values };
    let dense = SparseConv::with_isa(isa, g, &w, Some(&b)).unwrap();
    let packed = SparseConv::packing(isa, g, bitmap, Some(&b)).unwrap();
    assert_eq!(packed.nnz(), dense.nnz());
    assert_eq!(packed.run(&x, 2, 2).unwrap(), dense.run(&x, 2, 2).unwrap(), "conv");
    let (m, k, n) = (9, 23, 6);
    let w = rng.weights(m, k, 0.15, false);
    let x: Vec<f32> = (0..n * k).map(|_| rng.normal_ish()).collect();
    let p = Packed::from_dense(&w);
    let bitmap = WeightsIn::Bitmap { len: p.len, bits: &p.bits, values: &p.values };
    let packed = SparseGemm::packing(isa, n, bitmap, m, k, None).unwrap();
    assert_eq!(packed.run(&x, 1).unwrap(), SparseGemm::with_isa(isa, n, &w, m, k, None).unwrap().run(&x, 1).unwrap(), "gemm");
    // A bitmap that does not match its values, or its shape, is refused.
    let short = WeightsIn::Bitmap { len: p.len, bits: &p.bits, values: &p.values[1..] };
    assert!(SparseGemm::packing(isa, n, short, m, k, None).is_err(), "one value missing");
    let cut = WeightsIn::Bitmap { len: p.len, bits: &p.bits[1..], values: &p.values };
    assert!(SparseGemm::packing(isa, n, cut, m, k, None).is_err(), "bitmap too short");
}
