//! Which layers run sparse. `Kernels::Auto` picks the sparse kernel for a layer whose density (non-zero
//! fraction of its weight) is below the break-even of its kernel class. The break-evens are a fixed table,
//! set at or below the crossings `ticket bench sparse` measured on a 2-core AMD EPYC with AVX-512F at 2 threads
//! (docs/sparse.md has the curve and the command) — not a calibration at run time, so a plan does not depend
//! on how busy the machine was when it was built. Below the table's density a layer gained on every shape
//! measured; between it and a particular shape's crossing, dense is kept (a missed gain rather than a loss).

/// Which kernels the stage graphs use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernels {
    /// Sparse where the layer's density is below its break-even, dense elsewhere.
    #[default]
    Auto,
    /// tract's dense kernels everywhere (what the graphs were before sparse kernels).
    Dense,
    /// Sparse wherever the sparse path can run the layer.
    Sparse,
}

impl Kernels {
    pub fn parse(s: &str) -> Option<Kernels> {
        match s {
            "auto" => Some(Kernels::Auto),
            "dense" => Some(Kernels::Dense),
            "sparse" => Some(Kernels::Sparse),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kernels::Auto => "auto",
            Kernels::Dense => "dense",
            Kernels::Sparse => "sparse",
        }
    }

    /// Whether a layer of this shape and density runs sparse.
    pub fn use_sparse(self, shape: LayerShape, density: f64) -> bool {
        match self {
            Kernels::Dense => false,
            Kernels::Sparse => true,
            Kernels::Auto => density < shape.break_even(),
        }
    }
}

/// The kernel classes the break-even is kept for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerShape {
    Conv {
        kernel: usize,
        stride: usize,
    },
    /// A Gemm with transB by its number of input features.
    Gemm {
        inputs: usize,
    },
}

impl LayerShape {
    /// The density below which the sparse kernel beats tract's dense one. Measured crossings (`ticket bench
    /// sparse`, 320 px, 2 threads; docs/sparse.md): 7×7 stem always (tract's dense stem, 3 input channels, is
    /// slow); 1×1 convs 38% (the downsample) to 100%; 3×3 convs 34% (layer3) to 100% (layer1, mask head); Gemm
    /// 21–24% (fc7) and 30–58% for a wide one (fc6, 12544 inputs). Each class takes a density at or below its
    /// lowest crossing.
    pub fn break_even(self) -> f64 {
        match self {
            LayerShape::Conv { kernel: 7, .. } => 0.9,
            LayerShape::Conv { kernel: 1, .. } => 0.35,
            LayerShape::Conv { .. } => 0.3,
            LayerShape::Gemm { inputs } if inputs >= 4096 => 0.3,
            LayerShape::Gemm { .. } => 0.2,
        }
    }
}

/// Fraction of non-zero values, of `len` values with `nonzeros` non-zero (1 for none).
pub fn density(nonzeros: usize, len: usize) -> f64 {
    if len == 0 {
        return 1.0;
    }
    nonzeros as f64 / len as f64
}
