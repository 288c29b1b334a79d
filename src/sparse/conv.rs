//! Direct sparse convolution (groups = 1, square kernel, any stride and padding) and the sparse × dense
//! product of a Gemm with transB, both on dense activations.
//!
//! Conv: the padded input of each channel is split into stride² phase planes, so that the input a kernel tap
//! (ky, kx) needs for output (oy, ox) is phase (ky mod s, kx mod s) at (oy + ky / s, ox + kx / s): for every
//! stride, a tap reads a contiguous run. Each output row is computed `wp` wide (the phase plane's width, a few
//! columns wider than the output), so a whole output plane is one contiguous run too and a non-zero weight is a
//! single offset into the prepared input. The extra columns are dropped when the output is written.
//!
//! Gemm: y[n, m] = Σₖ W[m, k] · x[n, k] + b[m] is the same computation with x transposed to [k][n] rows.
use super::kernel::Isa;
use super::layer::{par_ranges, SendPtr, SparseRows, WeightsIn};
use crate::error::{Error, Result};

/// One buffer for the prepared input, shared by all sparse layers (plan nodes run one after another): it
/// grows to the largest layer once and is then reused, so a run neither faults in fresh pages nor keeps a
/// buffer per layer. Every layer writes all of the buffer it uses. A run that finds it taken (two plans
/// running at once) allocates its own.
static SCRATCH: std::sync::Mutex<Vec<f32>> = std::sync::Mutex::new(Vec::new());

fn take_scratch(len: usize) -> Vec<f32> {
    let mut v = SCRATCH.try_lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
    v.resize(len, 0.0);
    v
}

fn put_scratch(v: Vec<f32>) {
    if let Ok(mut s) = SCRATCH.try_lock() {
        if s.capacity() < v.capacity() {
            *s = v;
        }
    }
}

/// A convolution's shape on one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeom {
    pub cin: usize,
    pub cout: usize,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
    pub height: usize,
    pub width: usize,
}

impl ConvGeom {
    pub fn out_hw(&self) -> (usize, usize) {
        let (k, s, p) = (self.kernel, self.stride, self.pad);
        ((self.height + 2 * p - k) / s + 1, (self.width + 2 * p - k) / s + 1)
    }

    /// Phase plane rows and width: output rows plus the tap reach, plus one row for the reads of the widest tap
    /// past the last column.
    fn phase_hw(&self) -> (usize, usize) {
        let (ho, wo) = self.out_hw();
        let reach = (self.kernel - 1) / self.stride;
        (ho + reach + 1, wo + reach)
    }

    pub fn valid(&self) -> bool {
        self.kernel >= 1
            && self.stride >= 1
            && self.cin >= 1
            && self.cout >= 1
            && self.height + 2 * self.pad >= self.kernel
            && self.width + 2 * self.pad >= self.kernel
            && self.pad < self.kernel
    }

    /// Multiply-adds of the dense conv on one image.
    pub fn macs(&self) -> usize {
        let (ho, wo) = self.out_hw();
        self.cout * self.cin * self.kernel * self.kernel * ho * wo
    }
}

/// A convolution with its weights packed for `geom`.
#[derive(Debug)]
pub struct SparseConv {
    pub geom: ConvGeom,
    rows: SparseRows,
    bias: Vec<f32>,
    /// Apply ReLU as the output is written (the conv's own ReLU, fused: one pass less over the output).
    pub relu: bool,
}

impl SparseConv {
    /// Packs dense weights [cout, cin, k, k] (zeros skipped) and an optional bias [cout].
    pub fn new(geom: ConvGeom, weights: &[f32], bias: Option<&[f32]>) -> Result<SparseConv> {
        Self::with_isa(Isa::detect(), geom, weights, bias)
    }

    /// [`SparseConv::new`] on a given instruction set (one this CPU has; tests compare them).
    pub fn with_isa(isa: Isa, geom: ConvGeom, weights: &[f32], bias: Option<&[f32]>) -> Result<SparseConv> {
        Self::packing(isa, geom, WeightsIn::Dense(weights), bias)
    }

    /// Packs weights given dense or as a bitmap and non-zero values (a compact ticket file's form).
    pub fn packing(isa: Isa, geom: ConvGeom, weights: WeightsIn, bias: Option<&[f32]>) -> Result<SparseConv> {
        if !geom.valid() {
            return Err(Error::Input(format!("sparse conv: unsupported shape {geom:?}")));
        }
        let (k, s) = (geom.kernel, geom.stride);
        let (hp, wp) = geom.phase_hw();
        let plane = hp * wp;
        let (ho, _) = geom.out_hw();
        let offset = |c: usize| {
            let (ci, ky, kx) = (c / (k * k), c / k % k, c % k);
            (ci * s * s + (ky % s) * s + kx % s) * plane + (ky / s) * wp + kx / s
        };
        let touch = s * s * ((k - 1) / s * (wp + 1));
        let rows = SparseRows::pack(isa, weights, geom.cout, k * k, geom.cin, offset, touch, ho * wp, geom.cin * s * s * plane)?;
        let bias = match bias {
            Some(b) if b.len() == geom.cout => b.to_vec(),
            Some(b) => return Err(Error::Input(format!("sparse conv: bias of {} values for {} channels", b.len(), geom.cout))),
            None => vec![0.0; geom.cout],
        };
        Ok(SparseConv { geom, rows, bias, relu: false })
    }

    pub fn nnz(&self) -> usize {
        self.rows.nnz()
    }

    pub fn packed_bytes(&self) -> usize {
        self.rows.bytes() + 4 * self.bias.len()
    }

    /// Writes image `x` [cin, h, w], channels c0..c1, as zero-padded phase planes into `buf` (every value of
    /// those planes is written).
    fn prepare(&self, x: &[f32], buf: &mut [f32], c0: usize, c1: usize) {
        let g = &self.geom;
        let (s, p) = (g.stride, g.pad);
        let (hp, wp) = g.phase_hw();
        for ci in c0..c1 {
            let src = &x[ci * g.height * g.width..][..g.height * g.width];
            for py in 0..s {
                for px in 0..s {
                    let dst = &mut buf[((ci * s + py) * s + px) * hp * wp..][..hp * wp];
                    for (i, out) in dst.chunks_exact_mut(wp).enumerate() {
                        // padded row i·s + py is input row i·s + py − p
                        let Some(y) = (i * s + py).checked_sub(p).filter(|&y| y < g.height) else {
                            out.fill(0.0);
                            continue;
                        };
                        let row = &src[y * g.width..][..g.width];
                        if s == 1 {
                            // columns j − p: zeros, the row, zeros
                            let n = g.width.min(wp.saturating_sub(p));
                            out[..p.min(wp)].fill(0.0);
                            out[p.min(wp)..p.min(wp) + n].copy_from_slice(&row[..n]);
                            out[p.min(wp) + n..].fill(0.0);
                        } else {
                            for (j, o) in out.iter_mut().enumerate() {
                                *o = (j * s + px).checked_sub(p).and_then(|x| row.get(x)).copied().unwrap_or(0.0);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Runs on `n` images `x` [n, cin, h, w] with `threads` threads: [n, cout, ho, wo].
    pub fn run(&self, x: &[f32], n: usize, threads: usize) -> Result<Vec<f32>> {
        let g = &self.geom;
        let image = g.cin * g.height * g.width;
        if x.len() != n * image {
            return Err(Error::Runtime(format!("sparse conv: input of {} values, expected {n} × {image}", x.len())));
        }
        let (ho, wo) = g.out_hw();
        let (_, wp) = g.phase_hw();
        let in_len = self.rows.in_len;
        let data_len = g.cin * g.stride * g.stride * g.phase_hw().0 * g.phase_hw().1;
        if self.rows.nnz() == 0 {
            let relu = |v: f32| if self.relu { v.max(0.0) } else { v };
            return Ok((0..n * g.cout * ho * wo).map(|i| relu(self.bias[i / (ho * wo) % g.cout])).collect());
        }
        let threads = self.rows.threads_for(n, threads);
        let mut prepared = take_scratch(n * in_len);
        for img in 0..n {
            prepared[img * in_len + data_len..(img + 1) * in_len].fill(0.0);
        }
        // Preparing is a copy: split over (image, channel) pairs.
        let pp = SendPtr(prepared.as_mut_ptr());
        par_ranges(n * g.cin, threads, |r| {
            for i in r {
                let (img, ci) = (i / g.cin, i % g.cin);
                // SAFETY: image `img`'s buffer is written only for channel `ci`'s own planes, disjoint between i.
                let buf = unsafe { std::slice::from_raw_parts_mut(pp.get().add(img * in_len), in_len) };
                self.prepare(&x[img * image..][..image], buf, ci, ci + 1);
            }
        });
        let mut out = vec![0f32; n * g.cout * ho * wo];
        let op = SendPtr(out.as_mut_ptr());
        let ext_len = self.rows.ext_len;
        par_ranges(g.cout, threads, |r| {
            let mut ext = vec![0f32; r.len() * ext_len];
            for img in 0..n {
                self.rows.run_rows(&prepared[img * in_len..][..in_len], r.start, r.end, &mut ext);
                for (i, co) in r.clone().enumerate() {
                    // SAFETY: output channel co of image img is written by the thread owning co only.
                    let dst = unsafe { std::slice::from_raw_parts_mut(op.get().add((img * g.cout + co) * ho * wo), ho * wo) };
                    let b = self.bias[co];
                    for oy in 0..ho {
                        let src = &ext[i * ext_len + oy * wp..][..wo];
                        let dst = &mut dst[oy * wo..][..wo];
                        if self.relu {
                            dst.iter_mut().zip(src).for_each(|(d, s)| *d = (s + b).max(0.0));
                        } else {
                            dst.iter_mut().zip(src).for_each(|(d, s)| *d = s + b);
                        }
                    }
                }
            }
        });
        put_scratch(prepared);
        Ok(out)
    }
}

/// A Gemm y = x · Wᵀ + b with W [m, k] packed, on a fixed number of input rows.
#[derive(Debug)]
pub struct SparseGemm {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    rows: SparseRows,
    bias: Vec<f32>,
}

impl SparseGemm {
    pub fn new(n: usize, weights: &[f32], m: usize, k: usize, bias: Option<&[f32]>) -> Result<SparseGemm> {
        Self::with_isa(Isa::detect(), n, weights, m, k, bias)
    }

    /// [`SparseGemm::new`] on a given instruction set (one this CPU has).
    pub fn with_isa(isa: Isa, n: usize, weights: &[f32], m: usize, k: usize, bias: Option<&[f32]>) -> Result<SparseGemm> {
        Self::packing(isa, n, WeightsIn::Dense(weights), m, k, bias)
    }

    /// Packs weights [m, k] given dense or as a bitmap and non-zero values (a compact ticket file's form).
    pub fn packing(isa: Isa, n: usize, weights: WeightsIn, m: usize, k: usize, bias: Option<&[f32]>) -> Result<SparseGemm> {
        if n == 0 || m == 0 || k == 0 {
            return Err(Error::Input(format!("sparse gemm: empty shape n {n}, m {m}, k {k}")));
        }
        let rows = SparseRows::pack(isa, weights, m, 1, k, |c| c * n, 0, n, k * n)?;
        let bias = match bias {
            Some(b) if b.len() == m => b.to_vec(),
            Some(b) => return Err(Error::Input(format!("sparse gemm: bias of {} values for {m} outputs", b.len()))),
            None => vec![0.0; m],
        };
        Ok(SparseGemm { m, k, n, rows, bias })
    }

    pub fn nnz(&self) -> usize {
        self.rows.nnz()
    }

    pub fn packed_bytes(&self) -> usize {
        self.rows.bytes() + 4 * self.bias.len()
    }

    /// x [n, k] → [n, m].
    pub fn run(&self, x: &[f32], threads: usize) -> Result<Vec<f32>> {
        let (m, k, n) = (self.m, self.k, self.n);
        if x.len() != n * k {
            return Err(Error::Runtime(format!("sparse gemm: input of {} values, expected {n} × {k}", x.len())));
        }
        // xᵀ [k][n], in 32 × 32 blocks so reads and writes both stay in cache lines.
        if self.rows.nnz() == 0 {
            // An all-zero weight (global tickets empty whole layers): the output is the bias.
            return Ok((0..n * m).map(|i| self.bias[i % m]).collect());
        }
        let threads = self.rows.threads_for(1, threads);
        let mut xt = take_scratch(self.rows.in_len);
        xt[k * n..].fill(0.0);
        let tp = SendPtr(xt.as_mut_ptr());
        par_ranges(k.div_ceil(32), threads, |r| {
            for kb in r {
                let k1 = (kb * 32 + 32).min(k);
                for nb in (0..n).step_by(32) {
                    for row in nb..(nb + 32).min(n) {
                        let src = &x[row * k + kb * 32..row * k + k1];
                        for (j, v) in src.iter().enumerate() {
                            // SAFETY: rows kb·32..k1 of xᵀ belong to this block range only, and
                            // (kb·32 + j)·n + row < k·n ≤ xt.len().
                            unsafe { *tp.get().add((kb * 32 + j) * n + row) = *v };
                        }
                    }
                }
            }
        });
        let mut out = vec![0f32; n * m];
        let op = SendPtr(out.as_mut_ptr());
        let ext_len = self.rows.ext_len;
        par_ranges(m, threads, |r| {
            let mut ext = vec![0f32; r.len() * ext_len];
            self.rows.run_rows(&xt, r.start, r.end, &mut ext);
            for row in 0..n {
                for (i, j) in r.clone().enumerate() {
                    // SAFETY: column j of the output belongs to the thread owning j.
                    unsafe { *op.get().add(row * m + j) = ext[i * ext_len + row] + self.bias[j] };
                }
            }
        });
        put_scratch(xt);
        Ok(out)
    }
}
