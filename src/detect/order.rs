//! Descending sorts that order equal keys as torch's CPU sort does. Scores tie often (sigmoid saturates, scores
//! are quantised), and which of two tied boxes NMS keeps, and in which order detections come out, depends on
//! it. torchvision's NMS kernel sorts stably; `Tensor.sort(descending=True)` from Python (as `batched_nms` uses
//! to merge its per-class results) is not stable: it runs libstdc++'s `std::sort` (introsort: median-of-three
//! quicksort, heapsort past a depth limit, insertion sort below 16 elements) on (value, index) pairs, ported
//! here step for step. Both put NaN first.
use std::cmp::Ordering;

/// Indices that sort `keys` in descending order, equal keys in index order (torch's `sort(stable=True,
/// descending=True)`, which torchvision's NMS kernel uses).
pub fn argsort_descending_stable(keys: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..keys.len()).collect();
    idx.sort_by(|&i, &j| {
        let (a, b) = ((keys[i], i), (keys[j], j));
        if before(&a, &b) {
            Ordering::Less
        } else if before(&b, &a) {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    });
    idx
}

/// Indices that sort `keys` in descending order, equal keys (and NaNs, which torch puts first) ordered as
/// torch's CPU `sort(descending=True)` orders them.
pub fn argsort_descending(keys: &[f32]) -> Vec<usize> {
    let mut v: Vec<(f32, usize)> = keys.iter().copied().zip(0..).collect();
    introsort(&mut v);
    v.into_iter().map(|(_, i)| i).collect()
}

/// torch's `KeyValueCompDesc`: `a` goes before `b`.
#[inline]
fn before(a: &(f32, usize), b: &(f32, usize)) -> bool {
    (a.0.is_nan() && !b.0.is_nan()) || a.0 > b.0
}

const THRESHOLD: usize = 16;

fn introsort(v: &mut [(f32, usize)]) {
    let n = v.len();
    if n < 2 {
        return;
    }
    let depth = 2 * (usize::BITS - 1 - n.leading_zeros()) as usize;
    introsort_loop(v, 0, n, depth);
    if n > THRESHOLD {
        insertion_sort(v, 0, THRESHOLD);
        for i in THRESHOLD..n {
            unguarded_linear_insert(v, i);
        }
    } else {
        insertion_sort(v, 0, n);
    }
}

fn introsort_loop(v: &mut [(f32, usize)], first: usize, mut last: usize, mut depth: usize) {
    while last - first > THRESHOLD {
        if depth == 0 {
            heap_sort(&mut v[first..last]);
            return;
        }
        depth -= 1;
        let mid = first + (last - first) / 2;
        move_median_to_first(v, first, first + 1, mid, last - 1);
        let cut = unguarded_partition(v, first + 1, last, first);
        introsort_loop(v, cut, last, depth);
        last = cut;
    }
}

fn move_median_to_first(v: &mut [(f32, usize)], result: usize, a: usize, b: usize, c: usize) {
    let pick = if before(&v[a], &v[b]) {
        if before(&v[b], &v[c]) {
            b
        } else if before(&v[a], &v[c]) {
            c
        } else {
            a
        }
    } else if before(&v[a], &v[c]) {
        a
    } else if before(&v[b], &v[c]) {
        c
    } else {
        b
    };
    v.swap(result, pick);
}

fn unguarded_partition(v: &mut [(f32, usize)], mut first: usize, mut last: usize, pivot: usize) -> usize {
    loop {
        while before(&v[first], &v[pivot]) {
            first += 1;
        }
        last -= 1;
        while before(&v[pivot], &v[last]) {
            last -= 1;
        }
        if first >= last {
            return first;
        }
        v.swap(first, last);
        first += 1;
    }
}

fn insertion_sort(v: &mut [(f32, usize)], first: usize, last: usize) {
    for i in first + 1..last {
        if before(&v[i], &v[first]) {
            v[first..=i].rotate_right(1);
        } else {
            unguarded_linear_insert(v, i);
        }
    }
}

fn unguarded_linear_insert(v: &mut [(f32, usize)], mut last: usize) {
    let val = v[last];
    while before(&val, &v[last - 1]) {
        v[last] = v[last - 1];
        last -= 1;
    }
    v[last] = val;
}

fn heap_sort(v: &mut [(f32, usize)]) {
    let len = v.len();
    if len >= 2 {
        let mut parent = (len - 2) / 2;
        loop {
            let value = v[parent];
            adjust_heap(v, parent, len, value);
            if parent == 0 {
                break;
            }
            parent -= 1;
        }
    }
    let mut last = len;
    while last > 1 {
        last -= 1;
        let value = v[last];
        v[last] = v[0];
        adjust_heap(v, 0, last, value);
    }
}

fn adjust_heap(v: &mut [(f32, usize)], mut hole: usize, len: usize, value: (f32, usize)) {
    let top = hole;
    let mut second = hole;
    while len >= 2 && second < (len - 1) / 2 {
        second = 2 * (second + 1);
        if before(&v[second], &v[second - 1]) {
            second -= 1;
        }
        v[hole] = v[second];
        hole = second;
    }
    if len.is_multiple_of(2) && len >= 2 && second == (len - 2) / 2 {
        second = 2 * (second + 1);
        v[hole] = v[second - 1];
        hole = second - 1;
    }
    // push_heap
    while hole > top {
        let parent = (hole - 1) / 2;
        if !before(&v[parent], &value) {
            break;
        }
        v[hole] = v[parent];
        hole = parent;
    }
    v[hole] = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_descending_and_handles_empty_and_nan() {
        assert!(argsort_descending(&[]).is_empty());
        assert_eq!(argsort_descending(&[0.5]), vec![0]);
        let keys: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 1000) as f32).collect();
        let order = argsort_descending(&keys);
        assert!(order.windows(2).all(|w| keys[w[0]] >= keys[w[1]]));
        assert_eq!(argsort_descending(&[1.0, f32::NAN, 2.0]), vec![1, 2, 0]);
    }

    #[test]
    fn stable_sort_keeps_index_order_of_ties() {
        assert_eq!(argsort_descending_stable(&[1.0, 2.0, 1.0, f32::NAN, 2.0]), vec![3, 1, 4, 0, 2]);
        assert!(argsort_descending_stable(&[]).is_empty());
    }

    #[test]
    fn heap_sort_fallback_sorts() {
        let mut v: Vec<(f32, usize)> = (0..257).map(|i| (((i * 31) % 17) as f32, i)).collect();
        heap_sort(&mut v);
        assert!(v.windows(2).all(|w| w[0].0 >= w[1].0));
    }
}
