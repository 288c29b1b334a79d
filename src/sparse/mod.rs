//! Sparse kernels: layers whose weights are mostly zero (unstructured tickets) run on their non-zeros only,
//! on dense activations, inside tract plans. Neither tract nor ONNX Runtime skips zero weights, and the crates
//! that store sparse matrices (sprs, nalgebra-sparse) offer generic CSR products without convolution, SIMD
//! tiles or threads, so the kernels are written here, small:
//! - [`kernel`]: the one inner loop (a register tile of output values, one multiply-add of a contiguous input
//!   run per non-zero), AVX-512F / AVX2+FMA / portable, picked at run time;
//! - [`layer`]: packed rows (offsets + values per output channel, in L2-sized input panels) and the threads;
//! - [`conv`]: direct sparse convolution (any square kernel, stride, padding) and the Gemm with transB;
//! - [`tract_op`]: the `SparseConv` / `SparseGemm` ops the stage graphs use;
//! - [`choice`]: when a layer is sparse enough to gain (the break-even densities) and `--kernels`.
pub mod choice;
pub mod conv;
pub mod kernel;
pub mod layer;
pub mod tract_op;

pub use choice::{Kernels, LayerShape};
pub use conv::{ConvGeom, SparseConv, SparseGemm};

use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Threads the sparse layers use from now on, process-wide (set with tract's, by `runtime::tract_stage::set_threads`).
pub fn set_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}
