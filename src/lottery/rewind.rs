//! Where a ticket's surviving weights restart from (Frankle et al.'s rewinding; the seed's "late resetting"), and
//! the random re-initialisation control (`random`: the ticket's mask on a fresh draw of the initialiser).
use crate::data::SeededRng;
use crate::model::{ModelState, Role};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rewind {
    /// The initial weights (the original lottery ticket).
    Init,
    /// The weights after this many steps of dense training (late resetting).
    Step(u64),
    /// No rewind: keep the trained weights and fine-tune (the usual prune + fine-tune baseline).
    None,
    /// A fresh random initialisation drawn as the model's initialiser would ([`random_init`]): the control
    /// of Frankle & Carbin, which a lottery ticket must beat.
    Random,
}

impl std::str::FromStr for Rewind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "init" => Ok(Rewind::Init),
            "none" => Ok(Rewind::None),
            "random" => Ok(Rewind::Random),
            n => n
                .parse::<u64>()
                .map(Rewind::Step)
                .map_err(|_| format!("unknown rewind '{s}' (one of: init, none, random, or a step count)")),
        }
    }
}

impl Rewind {
    /// As `--rewind` takes it (init, a step, none, random): how reports label runs.
    pub fn as_arg(&self) -> String {
        match self {
            Rewind::Init => "init".into(),
            Rewind::Step(k) => k.to_string(),
            Rewind::None => "none".into(),
            Rewind::Random => "random".into(),
        }
    }
}

impl std::fmt::Display for Rewind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rewind::Init => write!(f, "init"),
            Rewind::Step(k) => write!(f, "step {k}"),
            Rewind::None => write!(f, "none (fine-tune)"),
            Rewind::Random => write!(f, "random re-init"),
        }
    }
}

/// Excess kurtosis below this reads as a uniform draw (−1.2) rather than a normal one (0); halfway between.
const UNIFORM_KURTOSIS: f64 = -0.6;

/// `initial` with every Conv/Gemm weight drawn afresh, as the model's own initialiser would draw it, seeded by
/// `seed` and the tensor's name (so a resumed run, and every level of one, draws the same).
///
/// torchvision initialises these weights from zero-mean distributions of two families: normals
/// (`kaiming_normal_` in the ResNet body and the mask head, `normal_(std=0.01)` in the RPN head) and uniforms
/// (`kaiming_uniform_` in the FPN, `nn.Linear`'s default in the box head and predictors). The initial tensor
/// tells which: a uniform's excess kurtosis is −1.2, a normal's 0. The draw keeps the tensor's mean and standard
/// deviation: a normal N(mean, std²), or a uniform on mean ± √3·std (the same std). A tensor whose values are all
/// equal stays as it was, and so do biases, normalisation parameters and buffers (FrozenBatchNorm's folded
/// scale and shift): the control changes where the ticket's weights start, not the network around them.
pub fn random_init(initial: &ModelState, seed: u64) -> ModelState {
    let mut state = initial.clone();
    for w in state.weights.tensors.iter_mut().filter(|w| w.role == Role::Weight) {
        let values = w.values.dense();
        let Some((mean, std, uniform)) = moments(&values) else { continue };
        drop(values);
        let mut rng = SeededRng::new(seed ^ crate::fsio::fnv1a(crate::fsio::FNV_OFFSET, w.name.as_bytes()));
        for v in w.values.to_mut().iter_mut() {
            let x = if uniform { rng.range(-1.0, 1.0) * 3f64.sqrt() } else { normal(&mut rng) };
            *v = (mean + std * x) as f32;
        }
    }
    state
}

/// (mean, standard deviation, uniform?) of a tensor's values; `None` when they are all equal.
fn moments(v: &[f32]) -> Option<(f64, f64, bool)> {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let m2 = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    if !(m2 > 0.0) {
        return None;
    }
    let m4 = v.iter().map(|&x| (x as f64 - mean).powi(4)).sum::<f64>() / n;
    Some((mean, m2.sqrt(), m4 / (m2 * m2) - 3.0 < UNIFORM_KURTOSIS))
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut SeededRng) -> f64 {
    let u = 1.0 - rng.unit();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * rng.unit()).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_tell_a_uniform_from_a_normal() {
        let mut rng = SeededRng::new(7);
        let u: Vec<f32> = (0..4000).map(|_| rng.range(-0.5, 0.5) as f32).collect();
        let g: Vec<f32> = (0..4000).map(|_| 0.1 * normal(&mut rng) as f32).collect();
        let (_, su, is_u) = moments(&u).unwrap();
        let (_, sg, is_g) = moments(&g).unwrap();
        assert!(is_u && !is_g);
        assert!((su - 1.0 / 12f64.sqrt()).abs() < 0.01 && (sg - 0.1).abs() < 0.005, "{su} {sg}");
        assert_eq!(moments(&[0.25; 9]), None);
    }

    #[test]
    fn rewind_spells_random() {
        assert_eq!("random".parse::<Rewind>(), Ok(Rewind::Random));
        assert_eq!(Rewind::Random.as_arg(), "random");
        assert_eq!(serde_json::to_string(&Rewind::Random).unwrap(), "\"random\"");
    }
}
