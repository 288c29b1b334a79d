//! Magnitude pruning (the seed's IMP): global or layer-wise, over chosen module groups, on a round schedule.
pub mod channel;
pub mod ops;
pub mod select;

use crate::choice::named_choices;
use crate::error::{Error, Result};
use crate::model::{Mask, ModelState, ModuleGroup, Role};
use serde::{Deserialize, Serialize};

/// What pruning removes: the choice `ticket prune` and every IMP level make.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Structure {
    #[default]
    Weight,
    Channel,
}

named_choices!(Structure, "structure", [
    Weight = "weight": "Single weights by magnitude (masks; the graph keeps its shapes)",
    Channel = "channel": "Whole channels in coupled groups (a narrower graph that runs faster)",
]);

/// Which weights are ranked together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Global,
    Layer,
}

named_choices!(Scope, "scope", [
    Global = "global": "Rank all selected weights together (the seed's choice above ~60% sparsity)",
    Layer = "layer": "Prune every tensor to the same fraction",
]);

/// Options as the user gave them; `check` turns them into `PruneValid` or says what is wrong.
#[derive(Clone, Debug)]
pub struct PruneParams {
    pub sparsity: f64,
    pub scope: Scope,
    pub modules: Option<Vec<String>>,
    pub rounds: usize,
    pub round: usize,
    pub include_bias: bool,
    /// Keep at least this fraction of every selected tensor (global scope), so no layer collapses; `None` is
    /// the seed's plain global magnitude.
    pub min_layer_density: Option<f64>,
}

/// A tensor pruned this far is all but cut: the detector loses that layer (global magnitude does it to
/// small-magnitude layers such as a random-init box head's fc6), so reports name it.
pub const NEAR_COLLAPSE: f64 = 0.99;

#[derive(Clone, Debug)]
pub struct PruneValid(PruneParams, Option<Vec<String>>);

impl PruneParams {
    pub fn check(self) -> Result<PruneValid> {
        if !(0.0..1.0).contains(&self.sparsity) || self.sparsity.is_nan() {
            return Err(Error::setting("sparsity", format!("`sparsity` {} is outside [0, 1)", self.sparsity)));
        }
        if self.rounds == 0 {
            return Err(Error::setting("rounds", "`rounds` must be at least 1"));
        }
        if self.round == 0 || self.round > self.rounds {
            return Err(Error::setting("round", format!("`round` {} is outside 1..={}", self.round, self.rounds)));
        }
        if let Some(f) = self.min_layer_density {
            if !(0.0..=1.0).contains(&f) {
                return Err(Error::setting("min_layer_density", format!("`min_layer_density` {f} is outside [0, 1]")));
            }
            if f > 1.0 - self.sparsity {
                return Err(Error::setting(
                    "min_layer_density",
                    format!("`min_layer_density` {f} keeps more than the 1 - {} the sparsity allows", self.sparsity),
                ));
            }
        }
        if let Some(m) = &self.modules {
            if m.is_empty() {
                return Err(Error::setting("modules", "`modules` is empty"));
            }
        }
        Ok(PruneValid(self, None))
    }
}

impl PruneValid {
    pub fn params(&self) -> &PruneParams {
        &self.0
    }

    /// The floor (`min_layer_density`) kept in the named tensors only (the floor ablation): a name matches a
    /// parameter that holds it as whole dot-separated parts (`box_head.fc6` matches
    /// `roi_heads.box_head.fc6.weight`). Each name must match a selected tensor when pruning.
    pub fn with_floor_on(mut self, names: Option<Vec<String>>) -> Result<PruneValid> {
        if let Some(n) = &names {
            if self.0.min_layer_density.is_none() {
                return Err(Error::setting(
                    "floor_on",
                    "`floor_on` names the tensors `min_layer_density` keeps: give `min_layer_density` too",
                ));
            }
            if n.is_empty() || n.iter().any(|x| x.trim().is_empty()) {
                return Err(Error::setting("floor_on", "`floor_on` lists an empty name"));
            }
        }
        self.1 = names;
        Ok(self)
    }

    /// The floor of each selected tensor: `min_layer_density`, or 0 for a tensor `floor_on` leaves out.
    fn floors(&self, state: &ModelState, selected: &[usize]) -> Result<Vec<f64>> {
        let f = self.0.min_layer_density.unwrap_or(0.0);
        let Some(names) = &self.1 else { return Ok(vec![f; selected.len()]) };
        let tensors = &state.weights.tensors;
        let hits = |n: &str, i: usize| format!(".{}.", tensors[i].name).contains(&format!(".{}.", n.trim()));
        if let Some(n) = names.iter().find(|n| !selected.iter().any(|&i| hits(n, i))) {
            return Err(Error::setting_at(state.path(), "floor_on", format!("`floor_on` '{n}' names no selected tensor")));
        }
        Ok(selected.iter().map(|&i| if names.iter().any(|n| hits(n, i)) { f } else { 0.0 }).collect())
    }

    /// IMP's schedule: after round r of k, (1-S)^(r/k) of the selected weights are kept, so each round keeps
    /// the same fraction p^(1/k) of what the previous one kept.
    pub fn kept_fraction(&self) -> f64 {
        let p = &self.0;
        (1.0 - p.sparsity).powf(p.round as f64 / p.rounds as f64)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TensorReport {
    pub name: String,
    pub group: ModuleGroup,
    pub numel: usize,
    pub kept: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct PruneReport {
    pub scope: Scope,
    pub round: usize,
    pub rounds: usize,
    pub target_sparsity: f64,
    pub selected_weights: usize,
    pub selected_kept: usize,
    pub selected_sparsity: f64,
    pub network_weights: usize,
    pub network_pruned: usize,
    pub network_sparsity: f64,
    pub tensors: Vec<TensorReport>,
    /// Selected tensors pruned beyond [`NEAR_COLLAPSE`] (name, sparsity): the layer is all but gone.
    pub collapsed: Vec<(String, f64)>,
}

pub(crate) fn check_modules(state: &ModelState, modules: &[String]) -> Result<Vec<ModuleGroup>> {
    let present: Vec<ModuleGroup> = state.groups().into_keys().collect();
    modules
        .iter()
        .map(|m| {
            let g = ModuleGroup::parse(m.trim());
            if present.contains(&g) {
                Ok(g)
            } else {
                let names: Vec<String> = present.iter().map(ModuleGroup::key).collect();
                Err(Error::input(state.path(), format!("module group '{m}' is not in this model (it has: {})", names.join(", "))))
            }
        })
        .collect()
}

impl PruneValid {
    /// The settings fit `state`: its module groups, and each `floor_on` name a selected tensor (checked before
    /// a run that prunes later writes anything).
    pub fn check_on(&self, state: &ModelState) -> Result<()> {
        self.floors(state, &selected(state, self.params())?).map(|_| ())
    }
}

/// The indices of the tensors `p` ranks.
fn selected(state: &ModelState, p: &PruneParams) -> Result<Vec<usize>> {
    let groups = p.modules.as_deref().map(|m| check_modules(state, m)).transpose()?;
    let selected: Vec<usize> = state
        .weights
        .tensors
        .iter()
        .enumerate()
        .filter(|(_, w)| w.role == Role::Weight || (p.include_bias && w.role == Role::Bias))
        .filter(|(_, w)| groups.as_ref().is_none_or(|g| g.contains(&w.group)))
        .map(|(i, _)| i)
        .collect();
    if selected.is_empty() {
        return Err(Error::input(
            state.path(),
            "no prunable weights (no float initializer feeds a Conv, ConvTranspose, Gemm or MatMul) in the selected modules",
        ));
    }
    Ok(selected)
}

/// Prunes `state` in place: new masks for the selected tensors, masked weights set to exactly zero.
pub fn prune(state: &mut ModelState, opts: &PruneValid) -> Result<PruneReport> {
    let p = opts.params();
    let selected = selected(state, p)?;
    let fraction = opts.kept_fraction();
    let tensors = &state.weights.tensors;
    let dense: Vec<std::borrow::Cow<[f32]>> = selected.iter().map(|&i| tensors[i].values.dense()).collect();
    let inputs: Vec<select::Input> = selected
        .iter()
        .zip(&dense)
        .map(|(&i, values)| select::Input { values, prev: state.masks.map.get(&tensors[i].name).map(|m| &m.keep[..]) })
        .collect();
    let keep_of = |n: usize| ((n as f64) * fraction).round() as usize;
    let masks = match (p.scope, p.min_layer_density) {
        (Scope::Global, None) => select::keep_top_k(&inputs, keep_of(inputs.iter().map(|i| i.values.len()).sum())),
        (Scope::Global, Some(_)) => {
            select::keep_top_k_with_floor(&inputs, keep_of(inputs.iter().map(|i| i.values.len()).sum()), &opts.floors(state, &selected)?)
        }
        (Scope::Layer, _) => {
            inputs.iter().map(|inp| select::keep_top_k(std::slice::from_ref(inp), keep_of(inp.values.len())).remove(0)).collect()
        }
    };
    drop(inputs);
    drop(dense);

    let mut reports = Vec::with_capacity(selected.len());
    for (&i, keep) in selected.iter().zip(masks) {
        let w = &mut state.weights.tensors[i];
        for (v, &k) in w.values.to_mut().iter_mut().zip(&keep) {
            if k == 0 {
                *v = 0.0;
            }
        }
        let kept = keep.iter().map(|&k| k as usize).sum();
        reports.push(TensorReport { name: w.name.clone(), group: w.group.clone(), numel: w.numel(), kept });
        state.masks.map.insert(w.name.clone(), Mask { shape: w.shape.clone(), keep });
    }
    let selected_weights: usize = reports.iter().map(|r| r.numel).sum();
    let selected_kept: usize = reports.iter().map(|r| r.kept).sum();
    let network_weights = state.weights.total();
    let network_pruned = state.masks.total() - state.masks.kept();
    let collapsed =
        reports.iter().map(|r| (r.name.clone(), 1.0 - r.kept as f64 / r.numel.max(1) as f64)).filter(|(_, s)| *s > NEAR_COLLAPSE).collect();
    Ok(PruneReport {
        scope: p.scope,
        round: p.round,
        rounds: p.rounds,
        target_sparsity: 1.0 - fraction,
        selected_weights,
        selected_kept,
        selected_sparsity: 1.0 - selected_kept as f64 / selected_weights as f64,
        network_weights,
        network_pruned,
        network_sparsity: network_pruned as f64 / network_weights as f64,
        tensors: reports,
        collapsed,
    })
}
