//! The one inner kernel every sparse layer runs: a tile of `width` consecutive output values computed as
//! Σₖ valueₖ · input[offsetₖ + base ..][..width], i.e. one vectorised multiply-add of a contiguous input run per
//! non-zero weight (direct sparse convolution, Park et al., ICLR 2017). The accumulators stay in registers for
//! the whole non-zero list (they start from what `out` holds, so a list split in panels adds up), so each non-zero costs one broadcast plus `width / lanes` loads and FMAs.
//!
//! The instruction set is picked once at run time: AVX-512F (8 × 16 lanes), AVX2 + FMA (8 × 8 lanes), or a
//! portable loop that is correct on any target.

/// The instruction set the kernel runs with on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2,
    Portable,
}

impl Isa {
    /// The instruction sets this CPU can run, best first (always ending with the portable one).
    pub fn available() -> Vec<Isa> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                v.push(Isa::Avx512);
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                v.push(Isa::Avx2);
            }
        }
        v.push(Isa::Portable);
        v
    }

    /// The best one this CPU has (checked once per process); TICKET_SPARSE_ISA=avx2 or portable picks a lesser one.
    pub fn detect() -> Isa {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            let all = Isa::available();
            match std::env::var("TICKET_SPARSE_ISA") {
                Ok(v) => all.iter().copied().find(|i| i.name().starts_with(v.as_str())).unwrap_or(all[0]),
                Err(_) => all[0],
            }
        })
    }

    /// Output values per tile: eight vector registers of accumulators (enough independent FMA chains to hide
    /// the FMA latency on both ports).
    pub fn tile(self) -> usize {
        match self {
            Isa::Avx512 => 128,
            Isa::Avx2 => 64,
            Isa::Portable => 32,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512f",
            Isa::Avx2 => "avx2+fma",
            Isa::Portable => "portable",
        }
    }
}

/// out[..isa.tile()] += Σₖ vals[k] · input[base + offs[k] ..][..isa.tile()].
///
/// Panics unless every read is in bounds: `base + max(offs) + isa.tile() <= input.len()` (the caller checks it
/// once per layer; here it is checked once per call, outside the loop).
#[inline]
pub fn tile(isa: Isa, input: &[f32], base: usize, offs: &[u32], vals: &[f32], max_off: u32, out: &mut [f32]) {
    let w = isa.tile();
    assert!(offs.len() == vals.len() && out.len() >= w && base + max_off as usize + w <= input.len());
    let inp = &input[base..];
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the feature was detected at run time; every read inp[offs[k] + j], j < 128, is in bounds by
        // the assert above (offs[k] ≤ max_off, which the caller took over the same list).
        Isa::Avx512 => unsafe { x86::tile_avx512(inp.as_ptr(), offs, vals, out.as_mut_ptr()) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, with 64 lanes.
        Isa::Avx2 => unsafe { x86::tile_avx2(inp.as_ptr(), offs, vals, out.as_mut_ptr()) },
        _ => tile_portable(inp, offs, vals, &mut out[..w]),
    }
}

fn tile_portable(inp: &[f32], offs: &[u32], vals: &[f32], out: &mut [f32]) {
    let mut acc = [0f32; 32];
    acc.copy_from_slice(&out[..32]);
    for (&o, &v) in offs.iter().zip(vals) {
        let row = &inp[o as usize..o as usize + 32];
        for (a, x) in acc.iter_mut().zip(row) {
            *a += v * x;
        }
    }
    out[..32].copy_from_slice(&acc);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile_avx2(inp: *const f32, offs: &[u32], vals: &[f32], out: *mut f32) {
        let mut a = [_mm256_setzero_ps(); 8];
        for (j, a) in a.iter_mut().enumerate() {
            *a = _mm256_loadu_ps(out.add(8 * j));
        }
        for k in 0..offs.len() {
            let p = inp.add(*offs.get_unchecked(k) as usize);
            let v = _mm256_set1_ps(*vals.get_unchecked(k));
            for (j, a) in a.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(v, _mm256_loadu_ps(p.add(8 * j)), *a);
            }
        }
        for (j, a) in a.iter().enumerate() {
            _mm256_storeu_ps(out.add(8 * j), *a);
        }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn tile_avx512(inp: *const f32, offs: &[u32], vals: &[f32], out: *mut f32) {
        let mut a = [_mm512_setzero_ps(); 8];
        for (j, a) in a.iter_mut().enumerate() {
            *a = _mm512_loadu_ps(out.add(16 * j));
        }
        for k in 0..offs.len() {
            let p = inp.add(*offs.get_unchecked(k) as usize);
            let v = _mm512_set1_ps(*vals.get_unchecked(k));
            for (j, a) in a.iter_mut().enumerate() {
                *a = _mm512_fmadd_ps(v, _mm512_loadu_ps(p.add(16 * j)), *a);
            }
        }
        for (j, a) in a.iter().enumerate() {
            _mm512_storeu_ps(out.add(16 * j), *a);
        }
    }
}
