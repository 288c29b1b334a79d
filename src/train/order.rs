//! The order a training run visits its dataset in.
use crate::data::SeededRng;
use crate::error::{Error, Result};

/// Which image, and whether to flip it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchItem {
    pub index: usize,
    pub flip: bool,
}

/// The order a run visits the data in: a fresh shuffle per epoch and a flip coin per item, all drawn from
/// `(seed, epoch)`, so a run is repeatable and a resumed run can regenerate any epoch. The last short batch
/// is kept.
#[derive(Clone, Debug)]
pub struct Batches {
    len: usize,
    batch_size: usize,
    seed: u64,
    flip_prob: f64,
}

impl Batches {
    pub fn new(len: usize, batch_size: usize, seed: u64, flip_prob: f64) -> Result<Self> {
        if len == 0 {
            return Err(Error::Input("the dataset has no images to batch".into()));
        }
        if batch_size == 0 {
            return Err(Error::setting("batch", "`batch` must be at least 1"));
        }
        if !(0.0..=1.0).contains(&flip_prob) {
            return Err(Error::Input(format!("flip probability {flip_prob} is not in [0, 1]")));
        }
        Ok(Batches { len, batch_size, seed, flip_prob })
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.len.div_ceil(self.batch_size)
    }

    /// The batches of one epoch.
    pub fn epoch(&self, epoch: u64) -> Vec<Vec<BatchItem>> {
        let mut rng = SeededRng::new(self.seed ^ epoch.wrapping_mul(0xA24B_AED4_963E_E407));
        let mut order: Vec<usize> = (0..self.len).collect();
        rng.shuffle(&mut order);
        let items: Vec<BatchItem> = order.into_iter().map(|index| BatchItem { index, flip: rng.unit() < self.flip_prob }).collect();
        items.chunks(self.batch_size).map(<[BatchItem]>::to_vec).collect()
    }

    /// Batches forever, epoch after epoch.
    pub fn iter(&self) -> impl Iterator<Item = Vec<BatchItem>> + '_ {
        (0u64..).flat_map(move |e| self.epoch(e))
    }
}
