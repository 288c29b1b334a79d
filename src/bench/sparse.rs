//! The break-even curve. For each kernel shape of the full-size R-CNN graphs, one layer runs in tract twice —
//! tract's dense Conv / Gemm, and this crate's SparseConv / SparseGemm on the same weights magnitude-pruned to
//! each density — and the speed-up (dense time / sparse time) is reported against density, with the density
//! where it crosses 1 (the break-even `Kernels::Auto` uses, src/sparse/choice.rs).
use super::{median, Progress};
use crate::error::{Error, Result};
use crate::graph::builder::{Attr, GraphBuilder};
use crate::prune::select::{keep_top_k, Input};
use crate::report::chart::{Band, LinePlot, Plot, Series};
use crate::runtime::tract_stage::TractStage;
use crate::sparse::tract_op::DOMAIN;
use ndarray::{ArrayD, IxDyn};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

pub struct Settings {
    /// Side of the square canvas the backbone shapes are taken at (a multiple of 32, at least 64).
    pub size: usize,
    /// Densities (fractions of non-zero weights) the sparse kernel runs at.
    pub densities: Vec<f64>,
    /// Threads of both kernels (0: one per core).
    pub threads: usize,
    /// Timed runs per point after one warm-up.
    pub repeat: usize,
    /// Only the shapes whose name contains this.
    pub only: Option<String>,
}

/// One layer: a conv (cin, cout, kernel, stride, pad, side, batch) or a Gemm (rows, outputs, inputs).
#[derive(Clone, Copy)]
enum Shape {
    Conv { cin: usize, cout: usize, k: usize, s: usize, p: usize, side: usize, batch: usize },
    Gemm { n: usize, m: usize, k: usize },
}

impl Shape {
    fn weight_shape(&self) -> Vec<usize> {
        match *self {
            Shape::Conv { cin, cout, k, .. } => vec![cout, cin, k, k],
            Shape::Gemm { m, k, .. } => vec![m, k],
        }
    }

    fn input_shape(&self) -> Vec<usize> {
        match *self {
            Shape::Conv { cin, side, batch, .. } => vec![batch, cin, side, side],
            Shape::Gemm { n, k, .. } => vec![n, k],
        }
    }

    fn dense_macs(&self) -> f64 {
        match *self {
            Shape::Conv { cin, cout, k, s, p, side, batch } => {
                let o = (side + 2 * p - k) / s + 1;
                (batch * cout * cin * k * k * o * o) as f64
            }
            Shape::Gemm { n, m, k } => (n * m * k) as f64,
        }
    }

    /// The one-layer graph, dense or sparse.
    fn graph(&self, weights: &[f32], sparse: bool) -> crate::onnx::proto::ModelProto {
        let mut b = GraphBuilder::new("bench_sparse");
        let input: Vec<i64> = self.input_shape().iter().map(|&d| d as i64).collect();
        let x = b.input("x", &input);
        let w = b.f32_init("w", &self.weight_shape(), weights);
        let out = match *self {
            Shape::Conv { k, s, p, cout, .. } => {
                let bias = b.f32_init("b", &[cout], &vec![0.1; cout]);
                let attrs = vec![
                    ("kernel_shape", Attr::Ints(vec![k as i64; 2])),
                    ("strides", Attr::Ints(vec![s as i64; 2])),
                    ("pads", Attr::Ints(vec![p as i64; 4])),
                ];
                if sparse {
                    b.custom_node(DOMAIN, "SparseConv", &[&x, &w, &bias], "y", attrs)
                } else {
                    b.node("Conv", &[&x, &w, &bias], "y", attrs)
                }
            }
            Shape::Gemm { m, .. } => {
                let bias = b.f32_init("b", &[m], &vec![0.1; m]);
                let attrs = vec![("transB", Attr::Int(1))];
                if sparse {
                    b.custom_node(DOMAIN, "SparseGemm", &[&x, &w, &bias], "y", attrs)
                } else {
                    b.node("Gemm", &[&x, &w, &bias], "y", attrs)
                }
            }
        };
        b.output(&out, "out");
        b.finish()
    }
}

/// The layers of the full-size torchvision R-CNNs (ResNet-18/50 FPN, 256 FPN channels) at canvas `size`.
fn shapes(size: usize) -> Vec<(&'static str, Shape)> {
    let conv = |cin, cout, k, s, p, side, batch| Shape::Conv { cin, cout, k, s, p, side, batch };
    vec![
        ("conv 7×7/2 3→64 (stem)", conv(3, 64, 7, 2, 3, size, 1)),
        ("conv 3×3/1 64→64 (layer1)", conv(64, 64, 3, 1, 1, size / 4, 1)),
        ("conv 3×3/2 64→128 (layer2.0)", conv(64, 128, 3, 2, 1, size / 4, 1)),
        ("conv 3×3/1 256→256 (layer3)", conv(256, 256, 3, 1, 1, size / 16, 1)),
        ("conv 3×3/1 512→512 (layer4)", conv(512, 512, 3, 1, 1, size / 32, 1)),
        ("conv 1×1/2 128→256 (downsample)", conv(128, 256, 1, 2, 0, size / 8, 1)),
        ("conv 1×1/1 256→64 (R50 bottleneck)", conv(256, 64, 1, 1, 0, size / 4, 1)),
        ("conv 3×3/1 256→256 (FPN/RPN at P2)", conv(256, 256, 3, 1, 1, size / 4, 1)),
        ("conv 3×3/1 256→256 (mask head, 100 RoIs)", conv(256, 256, 3, 1, 1, 14, 100)),
        ("gemm 1000×12544 → 1024 (fc6)", Shape::Gemm { n: 1000, m: 1024, k: 12544 }),
        ("gemm 1000×1024 → 1024 (fc7)", Shape::Gemm { n: 1000, m: 1024, k: 1024 }),
    ]
}

#[derive(Serialize)]
pub struct Point {
    pub density: f64,
    pub sparse_ms: f64,
    pub speedup: f64,
}

#[derive(Serialize)]
pub struct Curve {
    pub layer: String,
    pub dense_ms: f64,
    pub dense_gflops: f64,
    pub points: Vec<Point>,
    /// The density below which sparse is faster (interpolated between measured points); None if never.
    pub break_even: Option<f64>,
}

#[derive(Serialize)]
pub struct SparseBench {
    pub size: usize,
    pub threads: usize,
    pub repeat: usize,
    pub isa: &'static str,
    pub curves: Vec<Curve>,
}

/// Keeps the `density` fraction of largest magnitudes (the others zero), as a magnitude ticket does: the
/// exact selection `ticket prune` uses.
fn prune_to(weights: &[f32], density: f64) -> Vec<f32> {
    let keep = ((weights.len() as f64) * density).round() as usize;
    let mask = keep_top_k(&[Input { values: weights, prev: None }], keep).remove(0);
    weights.iter().zip(mask).map(|(&w, m)| if m == 1 { w } else { 0.0 }).collect()
}

fn time_ms(stage: &TractStage, input: &ArrayD<f32>, repeat: usize) -> Result<f64> {
    stage.run(vec![input.clone()])?;
    let mut t = Vec::new();
    for _ in 0..repeat {
        let x = input.clone();
        let s = Instant::now();
        stage.run(vec![x])?;
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(&t))
}

fn break_even(points: &[Point]) -> Option<f64> {
    let mut sorted: Vec<&Point> = points.iter().collect();
    sorted.sort_by(|a, b| b.density.total_cmp(&a.density));
    if sorted.first().is_some_and(|p| p.speedup >= 1.0) {
        return Some(sorted[0].density);
    }
    sorted.windows(2).find(|w| w[0].speedup < 1.0 && w[1].speedup >= 1.0).map(|w| {
        let (a, b) = (w[0], w[1]);
        b.density + (a.density - b.density) * (b.speedup - 1.0) / (b.speedup - a.speedup)
    })
}

pub fn run(s: &Settings, progress: &mut dyn FnMut(Progress)) -> Result<SparseBench> {
    if s.size < 64 || !s.size.is_multiple_of(32) {
        return Err(Error::setting("size", format!("`size` {}: give a multiple of 32, at least 64", s.size)));
    }
    if s.repeat == 0 || s.densities.is_empty() || s.densities.iter().any(|d| !(0.0..=1.0).contains(d)) {
        return Err(Error::setting("repeat", "`repeat` must be at least 1 and `densities` within [0, 1]"));
    }
    let threads = crate::runtime::threads::resolve(s.threads);
    let shapes: Vec<_> = shapes(s.size).into_iter().filter(|(n, _)| s.only.as_ref().is_none_or(|o| n.contains(o.as_str()))).collect();
    progress(Progress::Total((shapes.len() * (1 + s.densities.len())) as u64));
    let mut rng = crate::data::rng::SeededRng::new(0x5eed_1234_abcd_9876);
    let mut next = || rng.range(-0.5, 0.5) as f32;
    let mut curves = Vec::new();
    for (name, shape) in shapes {
        let n: usize = shape.weight_shape().iter().product();
        let dense_w: Vec<f32> = (0..n).map(|_| next()).collect();
        let input = ArrayD::from_shape_vec(
            IxDyn(&shape.input_shape()),
            (0..shape.input_shape().iter().product()).map(|_| next()).collect::<Vec<f32>>(),
        )
        .expect("shape and length agree");
        let dense_ms = time_ms(&TractStage::new(name, &shape.graph(&dense_w, false))?, &input, s.repeat)?;
        progress(Progress::Step);
        let mut points = Vec::new();
        for &d in &s.densities {
            let w = prune_to(&dense_w, d);
            let sparse_ms = time_ms(&TractStage::new(name, &shape.graph(&w, true))?, &input, s.repeat)?;
            points.push(Point { density: d, sparse_ms, speedup: dense_ms / sparse_ms });
            progress(Progress::Step);
        }
        let dense_gflops = 2.0 * shape.dense_macs() / dense_ms / 1e6;
        curves.push(Curve { layer: name.to_string(), dense_ms, dense_gflops, break_even: break_even(&points), points });
    }
    progress(Progress::Done);
    Ok(SparseBench { size: s.size, threads, repeat: s.repeat, isa: crate::sparse::kernel::Isa::detect().name(), curves })
}

/// Draws the curves: `path`.png and `path`.svg.
pub fn write_plot(report: &SparseBench, path: &Path) -> Result<()> {
    let plot = Plot::Line(LinePlot {
        title: format!("sparse kernel speed-up over tract dense ({} px, {} threads)", report.size, report.threads),
        x_label: "density (fraction of non-zero weights)".into(),
        y_label: "speed-up (dense ms / sparse ms)".into(),
        series: report
            .curves
            .iter()
            .map(|c| Series { label: c.layer.clone(), points: c.points.iter().map(|p| (p.density, p.speedup, 0.0)).collect() })
            .collect(),
        bands: vec![Band { label: "break-even (1×)".into(), mean: 1.0, std: 0.0 }],
        markers: true,
        x_range: Some((0.0, 1.0)),
        y_range: None,
    });
    let (png, svg) = plot.render("bench sparse")?;
    crate::fsio::write_atomic(&path.with_extension("png"), &png)?;
    crate::fsio::write_atomic(&path.with_extension("svg"), svg.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn break_even_is_interpolated_between_the_points_around_one() {
        let p = |density, speedup| Point { density, sparse_ms: 1.0, speedup };
        assert_eq!(break_even(&[p(1.0, 0.5), p(0.5, 0.8)]), None);
        assert_eq!(break_even(&[p(1.0, 1.2), p(0.5, 2.0)]), Some(1.0));
        let b = break_even(&[p(0.2, 2.0), p(0.6, 0.5), p(0.4, 1.5)]).unwrap();
        assert!((b - 0.5).abs() < 1e-12, "{b}");
        let w = prune_to(&[0.1, -3.0, 2.0, 0.5], 0.5);
        assert_eq!(w, vec![0.0, -3.0, 2.0, 0.0]);
    }
}
