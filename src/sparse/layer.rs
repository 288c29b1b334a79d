//! Packed sparse rows and the threaded loop that runs them. A sparse layer is a set of output rows (a conv's
//! output channels, a Gemm's output features); each row is a list of (input offset, weight) pairs over a
//! prepared dense input buffer, so every layer kind runs the same kernel and only prepares its input and crops
//! its output differently.
//!
//! Non-zeros are stored per (row, panel): a panel is a run of input channels small enough that the input it
//! reads for one output tile stays in L2 while every row of a thread reads it (the loop runs panel → tile →
//! row). Offsets are u32 (a layer's prepared input is below 4 Gi floats; checked at packing).
use super::kernel::{tile, Isa};
use crate::error::{Error, Result};

/// A layer's weights as packing reads them: dense, or as a compact ticket file stores them — a bitmap of the
/// non-zero positions (bit `i % 8` of byte `i / 8`) and the values at those positions in order.
#[derive(Clone, Copy, Debug)]
pub enum WeightsIn<'a> {
    Dense(&'a [f32]),
    Bitmap { len: usize, bits: &'a [u8], values: &'a [f32] },
}

impl WeightsIn<'_> {
    pub fn len(&self) -> usize {
        match self {
            WeightsIn::Dense(w) => w.len(),
            WeightsIn::Bitmap { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refuses a bitmap that does not cover `len` positions or sets another number of bits than there are values.
    pub fn check(&self) -> Result<()> {
        let WeightsIn::Bitmap { len, bits, values } = *self else { return Ok(()) };
        if crate::onnx::compact::check_bitmap(len, bits, values.len()).is_err() {
            let set = if bits.len() == len.div_ceil(8) { crate::onnx::compact::count_set(bits, len) } else { 0 };
            return Err(Error::Input(format!(
                "sparse pack: a bitmap of {} bytes with {set} bits set, {} values, for {len} weights",
                bits.len(),
                values.len()
            )));
        }
        Ok(())
    }

    /// The weight at position `i`, for positions asked in increasing order: `cursor` counts the values of the
    /// set bits passed so far (start it at 0).
    fn next_at(&self, i: usize, cursor: &mut usize) -> f32 {
        match self {
            WeightsIn::Dense(w) => w[i],
            WeightsIn::Bitmap { bits, values, .. } if bits[i / 8] >> (i % 8) & 1 == 1 => {
                *cursor += 1;
                values[*cursor - 1]
            }
            WeightsIn::Bitmap { .. } => 0.0,
        }
    }
}

#[derive(Debug)]
pub struct SparseRows {
    pub isa: Isa,
    pub rows: usize,
    panels: usize,
    /// Start of (row, panel) `r * panels + p` in `offs` / `vals`; `rows * panels + 1` entries.
    ptr: Vec<u32>,
    offs: Vec<u32>,
    vals: Vec<f32>,
    max_off: u32,
    /// Output positions computed per row (a multiple of the tile).
    pub ext_len: usize,
    /// Floats of prepared input the offsets address (including the tile of slack at the end).
    pub in_len: usize,
}

/// Input bytes a panel may touch per output tile (about half an L2 of the machines this ran on).
const PANEL_BYTES: usize = 256 * 1024;

/// A raw pointer that threads write disjoint parts through.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);
// SAFETY: used only to hand out disjoint ranges of one buffer to scoped threads (see each use).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole Send + Sync wrapper, not its raw field).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

impl SparseRows {
    /// Packs `rows` rows of `cols` dense weights (`weights[r * cols + c]`, zeros skipped). Column `c` belongs to
    /// input channel `c / cols_per_channel` and reads the prepared input at `offset(c)`; `touch_per_channel` is
    /// how many floats of input one channel contributes to one tile (sizes the panels); `ext_len` output
    /// positions are computed per row and the prepared input holds `in_len` floats.
    #[allow(clippy::too_many_arguments)]
    pub fn pack(
        isa: Isa,
        weights: WeightsIn,
        rows: usize,
        cols_per_channel: usize,
        channels: usize,
        offset: impl Fn(usize) -> usize,
        touch_per_channel: usize,
        out_positions: usize,
        data_len: usize,
    ) -> Result<SparseRows> {
        if !Isa::available().contains(&isa) {
            return Err(Error::Input(format!("sparse pack: this CPU cannot run {}", isa.name())));
        }
        let cols = cols_per_channel * channels;
        weights.check()?;
        if weights.len() != rows * cols {
            return Err(Error::Input(format!("sparse pack: {} weights for {rows} rows × {cols} columns", weights.len())));
        }
        let t = isa.tile();
        let ext_len = out_positions.div_ceil(t).max(1) * t;
        let in_len = data_len + ext_len;
        if in_len > u32::MAX as usize {
            return Err(Error::Input(format!("sparse pack: a prepared input of {in_len} floats is too large for u32 offsets")));
        }
        let per_panel = (PANEL_BYTES / (4 * (touch_per_channel + t)).max(1)).clamp(1, channels.max(1));
        let panels = channels.div_ceil(per_panel).max(1);
        let (mut ptr, mut offs, mut vals, mut max_off) = (vec![0u32], Vec::new(), Vec::new(), 0u32);
        // Rows and their panels are visited in position order, as `next_at` needs.
        let mut cursor = 0;
        for r in 0..rows {
            for p in 0..panels {
                let c0 = p * per_panel * cols_per_channel;
                let c1 = ((p + 1) * per_panel * cols_per_channel).min(cols);
                let mut entries: Vec<(u32, f32)> = (c0..c1)
                    .map(|c| (c, weights.next_at(r * cols + c, &mut cursor)))
                    .filter(|(_, v)| *v != 0.0)
                    .map(|(c, v)| (offset(c) as u32, v))
                    .collect();
                entries.sort_by_key(|e| e.0);
                for (o, v) in entries {
                    max_off = max_off.max(o);
                    offs.push(o);
                    vals.push(v);
                }
                ptr.push(offs.len() as u32);
            }
        }
        Ok(SparseRows { isa, rows, panels, ptr, offs, vals, max_off, ext_len, in_len })
    }

    pub fn nnz(&self) -> usize {
        self.vals.len()
    }

    /// Threads worth using for `images` runs of these rows: one per `MIN_MACS_PER_THREAD` multiply-adds at
    /// most, since starting a thread costs tens of microseconds and small layers finish sooner on one.
    pub fn threads_for(&self, images: usize, threads: usize) -> usize {
        const MIN_MACS_PER_THREAD: usize = 4_000_000;
        (self.nnz() * self.ext_len * images / MIN_MACS_PER_THREAD).clamp(1, threads.max(1))
    }

    /// Bytes the packed weights take.
    pub fn bytes(&self) -> usize {
        4 * (self.ptr.len() + self.offs.len() + self.vals.len())
    }

    /// Computes rows `r0..r1` on one prepared input (`input.len() >= in_len`) into `ext`
    /// (`(r1 - r0) * ext_len`, overwritten).
    pub fn run_rows(&self, input: &[f32], r0: usize, r1: usize, ext: &mut [f32]) {
        let t = self.isa.tile();
        assert!(input.len() >= self.in_len && ext.len() >= (r1 - r0) * self.ext_len);
        ext.fill(0.0);
        for p in 0..self.panels {
            for pos in (0..self.ext_len).step_by(t) {
                for r in r0..r1 {
                    let (a, b) = (self.ptr[r * self.panels + p] as usize, self.ptr[r * self.panels + p + 1] as usize);
                    if a == b {
                        continue;
                    }
                    let out = &mut ext[(r - r0) * self.ext_len + pos..][..t];
                    tile(self.isa, input, pos, &self.offs[a..b], &self.vals[a..b], self.max_off, out);
                }
            }
        }
    }
}

/// Runs `f(range)` on `threads` scoped threads over `0..n` cut in contiguous, near-equal ranges (the calling
/// thread takes the first).
pub fn par_ranges(n: usize, threads: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
    let threads = threads.clamp(1, n.max(1));
    let chunk = n.div_ceil(threads);
    std::thread::scope(|s| {
        for i in 1..threads {
            let f = &f;
            let r = (i * chunk).min(n)..((i + 1) * chunk).min(n);
            if !r.is_empty() {
                s.spawn(move || f(r));
            }
        }
        f(0..chunk.min(n));
    });
}
