//! The random-mask control: a level's mask drawn at random with the magnitude mask's number of kept weights in
//! every tensor (the same per-layer densities), which a lottery ticket must beat to owe its score to *which*
//! weights it keeps rather than to how many per layer.
use crate::data::SeededRng;
use crate::model::{Mask, Masks};
use serde::{Deserialize, Serialize};

/// Where a weight level's mask comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskSource {
    #[default]
    Magnitude,
    Random,
}

crate::choice::named_choices!(MaskSource, "mask", [
    Magnitude = "magnitude": "The largest weights by magnitude (the lottery ticket)",
    Random = "random": "Random weights, as many per tensor as the magnitude mask keeps (the random-mask control)",
]);

impl MaskSource {
    pub fn is_magnitude(&self) -> bool {
        *self == MaskSource::Magnitude
    }
}

/// Masks keeping, in every tensor of `magnitude`, as many weights as it does, drawn uniformly among those `prev`
/// keeps (all of a tensor `prev` does not hold), so masks stay cumulative over levels. Seeded by `seed`, the
/// level and the tensor's name: a resumed run draws the same.
pub fn random_masks(magnitude: &Masks, prev: Option<&Masks>, seed: u64, level: usize) -> Masks {
    let map = magnitude
        .map
        .iter()
        .map(|(name, m)| {
            let mut alive: Vec<usize> = match prev.and_then(|p| p.map.get(name)) {
                Some(p) => (0..p.keep.len()).filter(|&j| p.keep[j] == 1).collect(),
                None => (0..m.keep.len()).collect(),
            };
            let k = m.kept().min(alive.len());
            let mut rng = SeededRng::new(
                seed ^ crate::fsio::fnv1a(crate::fsio::FNV_OFFSET, name.as_bytes()) ^ (level as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            // A partial Fisher–Yates shuffle: the first k of `alive` are a uniform draw of k.
            for i in 0..k {
                let j = i + (rng.next_u64() % (alive.len() - i) as u64) as usize;
                alive.swap(i, j);
            }
            let mut keep = vec![0u8; m.keep.len()];
            for &j in &alive[..k] {
                keep[j] = 1;
            }
            (name.clone(), Mask { shape: m.shape.clone(), keep })
        })
        .collect();
    Masks { map }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_mask_keeps_the_counts_inside_the_previous_mask() {
        let mag = Masks {
            map: [("a", vec![1, 1, 0, 0, 1, 0, 0, 0]), ("b", vec![0, 0, 0, 1])]
                .into_iter()
                .map(|(n, k)| (n.to_string(), Mask { shape: vec![k.len()], keep: k }))
                .collect(),
        };
        let prev = Masks { map: [("a".to_string(), Mask { shape: vec![8], keep: vec![1, 1, 1, 1, 1, 1, 0, 0] })].into() };
        for seed in 0..20 {
            let r = random_masks(&mag, Some(&prev), seed, 2);
            assert_eq!(r.map["a"].kept(), 3);
            assert_eq!(r.map["b"].kept(), 1);
            assert!(r.map["a"].keep[6..] == [0, 0], "revives a weight the previous level pruned");
            assert_eq!(r.map["a"].keep, random_masks(&mag, Some(&prev), seed, 2).map["a"].keep);
        }
        let draws: std::collections::BTreeSet<Vec<u8>> = (0..20).map(|s| random_masks(&mag, None, s, 1).map["a"].keep.clone()).collect();
        assert!(draws.len() > 5, "{draws:?}");
    }
}
