//! Exact global top-k by magnitude over many tensors, in two parallel passes.
//!
//! The key of a weight is its |w| bit pattern plus one (non-negative IEEE floats order like their bits), or 0
//! when an earlier mask already pruned it, so that IMP never revives a pruned weight. Pass 1 histograms the
//! high 16 bits of every key; the bucket that holds the k-th largest key is then known. Pass 2 writes the mask
//! for everything outside that bucket and collects the few keys inside it, which are sorted to place the
//! threshold exactly. Ties go to the lower (tensor, element) position, so the result is deterministic and the
//! kept count is exactly k. This is what makes a global mask over 44 M weights cost about two reads of them.

const BUCKET_SHIFT: u32 = 16;
const BUCKETS: usize = 1 << (32 - BUCKET_SHIFT);
/// Work items of about this many weights keep both cores busy without much bookkeeping.
const CHUNK: usize = 1 << 18;

pub struct Input<'a> {
    pub values: &'a [f32],
    /// A previous mask: entries that are 0 stay pruned.
    pub prev: Option<&'a [u8]>,
}

#[inline]
fn key(v: f32, prev: Option<u8>) -> u32 {
    if prev == Some(0) {
        0
    } else {
        (v.to_bits() & 0x7FFF_FFFF) + 1
    }
}

struct Item<'a> {
    pos: u64,
    values: &'a [f32],
    prev: Option<&'a [u8]>,
}

fn items<'a>(inputs: &'a [Input<'a>]) -> Vec<Item<'a>> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    for inp in inputs {
        for (c, values) in inp.values.chunks(CHUNK).enumerate() {
            let prev = inp.prev.map(|p| &p[c * CHUNK..c * CHUNK + values.len()]);
            out.push(Item { pos: pos + (c * CHUNK) as u64, values, prev });
        }
        pos += inp.values.len() as u64;
    }
    out
}

/// One per core (the rule of `runtime::threads`), at most 16.
fn threads() -> usize {
    crate::runtime::threads::resolve(0).min(16)
}

/// Splits `items` into contiguous runs of roughly equal size, one per thread, and maps them in parallel.
fn par_map<T: Send, R: Send>(work: Vec<T>, size: impl Fn(&T) -> usize, f: impl Fn(Vec<T>) -> R + Sync) -> Vec<R> {
    let n = threads();
    let total: usize = work.iter().map(&size).sum();
    let per = total.div_ceil(n).max(1);
    let mut runs: Vec<Vec<T>> = vec![Vec::new()];
    let mut acc = 0;
    for w in work {
        if acc >= per && runs.len() < n {
            runs.push(Vec::new());
            acc = 0;
        }
        acc += size(&w);
        runs.last_mut().expect("non-empty").push(w);
    }
    if runs.len() == 1 {
        return vec![f(runs.pop().expect("one run"))];
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = runs.into_iter().map(|r| s.spawn(|| f(r))).collect();
        handles.into_iter().map(|h| h.join().expect("selection worker panicked")).collect()
    })
}

/// Returns one 0/1 mask per input keeping exactly `k` of all weights (`k` is capped at the weights that are
/// not already pruned by `prev`).
pub fn keep_top_k(inputs: &[Input], k: usize) -> Vec<Vec<u8>> {
    let total: usize = inputs.iter().map(|i| i.values.len()).sum();
    let mut masks: Vec<Vec<u8>> = inputs.iter().map(|i| vec![0u8; i.values.len()]).collect();
    if k == 0 || total == 0 {
        return masks;
    }

    // Pass 1: histogram of the high key bits.
    let hists = par_map(
        items(inputs),
        |i| i.values.len(),
        |run| {
            let mut h = vec![0u64; BUCKETS];
            for it in run {
                match it.prev {
                    None => it.values.iter().for_each(|&v| h[(key(v, None) >> BUCKET_SHIFT) as usize] += 1),
                    Some(p) => it.values.iter().zip(p).for_each(|(&v, &m)| h[(key(v, Some(m)) >> BUCKET_SHIFT) as usize] += 1),
                }
            }
            h
        },
    );
    let mut hist = vec![0u64; BUCKETS];
    for h in &hists {
        hist.iter_mut().zip(h).for_each(|(a, b)| *a += b);
    }
    let mut above = 0u64;
    let mut bucket = BUCKETS;
    for b in (0..BUCKETS).rev() {
        if above + hist[b] >= k as u64 {
            bucket = b;
            break;
        }
        above += hist[b];
    }
    if bucket == BUCKETS {
        // k is at least the number of weights: keep every weight that is not already pruned (key 0).
        bucket = 0;
    }

    // Pass 2: masks outside the threshold bucket, and the candidates inside it.
    let mut work: Vec<(Item, &mut [u8])> = Vec::new();
    {
        let mut its = items(inputs).into_iter().peekable();
        for m in masks.iter_mut() {
            for chunk in m.chunks_mut(CHUNK) {
                work.push((its.next().expect("same chunking"), chunk));
            }
        }
    }
    let b = bucket as u32;
    let cands = par_map(
        work,
        |(i, _)| i.values.len(),
        |run| {
            let mut c: Vec<(u32, u64)> = Vec::new();
            for (it, out) in run {
                for (j, (&v, o)) in it.values.iter().zip(out.iter_mut()).enumerate() {
                    let kk = key(v, it.prev.map(|p| p[j]));
                    let hb = kk >> BUCKET_SHIFT;
                    *o = (hb > b) as u8;
                    if hb == b && kk != 0 {
                        c.push((kk, it.pos + j as u64));
                    }
                }
            }
            c
        },
    );
    let mut cands: Vec<(u32, u64)> = cands.into_iter().flatten().collect();
    let need = (k as u64 - above).min(cands.len() as u64) as usize;
    if need < cands.len() {
        cands.select_nth_unstable_by(need, |a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    }
    let mut starts = Vec::with_capacity(inputs.len());
    let mut acc = 0u64;
    for i in inputs {
        starts.push(acc);
        acc += i.values.len() as u64;
    }
    for &(_, pos) in &cands[..need] {
        let t = starts.partition_point(|&s| s <= pos) - 1;
        masks[t][(pos - starts[t]) as usize] = 1;
    }
    masks
}

/// Global top-k that first keeps, in every tensor, its largest `floor` fraction (one per input, rounded up,
/// capped by what an earlier mask left), then fills the rest of `k` by global magnitude. The floor is taken out
/// of `k`, so the total kept is still `k` unless the floors alone exceed it.
pub fn keep_top_k_with_floor(inputs: &[Input], k: usize, floor: &[f64]) -> Vec<Vec<u8>> {
    let floors: Vec<Vec<u8>> = inputs
        .iter()
        .zip(floor)
        .map(|(inp, f)| keep_top_k(std::slice::from_ref(inp), (inp.values.len() as f64 * f).ceil() as usize).remove(0))
        .collect();
    let forced: usize = floors.iter().map(|m| m.iter().map(|&x| x as usize).sum::<usize>()).sum();
    // The floor's weights are taken out of the global ranking by marking them pruned there.
    let rest_prev: Vec<Vec<u8>> = inputs
        .iter()
        .zip(&floors)
        .map(|(inp, f)| f.iter().enumerate().map(|(j, &fj)| (fj == 0 && inp.prev.is_none_or(|p| p[j] == 1)) as u8).collect())
        .collect();
    let rest_inputs: Vec<Input> = inputs.iter().zip(&rest_prev).map(|(inp, p)| Input { values: inp.values, prev: Some(p) }).collect();
    let rest = keep_top_k(&rest_inputs, k.saturating_sub(forced));
    floors.into_iter().zip(rest).map(|(f, r)| f.iter().zip(&r).map(|(a, b)| a | b).collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(values: &[Vec<f32>], prev: &[Option<Vec<u8>>], k: usize) -> Vec<Vec<u8>> {
        let mut all: Vec<(u32, usize, usize)> = Vec::new();
        for (t, v) in values.iter().enumerate() {
            for (j, &x) in v.iter().enumerate() {
                all.push((key(x, prev[t].as_ref().map(|p| p[j])), t, j));
            }
        }
        all.sort_by(|a, b| b.0.cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        let mut out: Vec<Vec<u8>> = values.iter().map(|v| vec![0; v.len()]).collect();
        for &(kk, t, j) in all.iter().take(k) {
            if kk != 0 {
                out[t][j] = 1;
            }
        }
        out
    }

    #[test]
    fn matches_sorting_with_ties_and_previous_masks() {
        let mut seed = 12345u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        for case in 0..40 {
            let n_t = 1 + (rnd() % 4) as usize;
            let values: Vec<Vec<f32>> =
                (0..n_t).map(|_| (0..(rnd() % 700_000) as usize).map(|_| ((rnd() % 64) as f32 - 32.0) * 0.01).collect()).collect();
            let prev: Vec<Option<Vec<u8>>> =
                values.iter().map(|v| (case % 2 == 0).then(|| v.iter().map(|_| (rnd() % 4 != 0) as u8).collect())).collect();
            let total: usize = values.iter().map(Vec::len).sum();
            let k = if total == 0 { 0 } else { (rnd() as usize) % (total + 1) };
            let inputs: Vec<Input> = values.iter().zip(&prev).map(|(v, p)| Input { values: v, prev: p.as_deref() }).collect();
            assert_eq!(keep_top_k(&inputs, k), brute(&values, &prev, k), "case {case}");
        }
    }

    #[test]
    fn a_floor_keeps_every_tensor_alive_and_the_total_exact() {
        // One tensor of tiny weights and one of large ones: plain global top-k cuts the tiny one entirely.
        let small: Vec<f32> = (0..1000).map(|i| 1e-4 * (1 + i % 7) as f32).collect();
        let large: Vec<f32> = (0..1000).map(|i| 1.0 + (i % 13) as f32).collect();
        let inputs = [Input { values: &small, prev: None }, Input { values: &large, prev: None }];
        let plain = keep_top_k(&inputs, 400);
        assert_eq!(plain[0].iter().filter(|&&x| x == 1).count(), 0);
        let floored = keep_top_k_with_floor(&inputs, 400, &[0.05, 0.05]);
        let kept: Vec<usize> = floored.iter().map(|m| m.iter().filter(|&&x| x == 1).count()).collect();
        assert_eq!(kept, vec![50, 350]);
        // A floor on the large tensor only leaves the small one cut, as plain global top-k does.
        assert_eq!(keep_top_k_with_floor(&inputs, 400, &[0.0, 0.05]), plain);
        // The floor keeps the largest of the small tensor.
        let floor_only = keep_top_k(&inputs[..1], 50).remove(0);
        assert_eq!(floored[0], floor_only);
    }
}
