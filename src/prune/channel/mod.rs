//! Channel tickets: structured pruning that physically removes channels, so the model is smaller and faster in
//! engines without sparse kernels (tract, ONNX Runtime). Channels are removed in coupled groups derived from the
//! network description (`groups`); the result is a new, narrower ModelState whose source is the user's ONNX
//! with shrunken initializers, so export, tract stages and training cores all follow the new widths.
pub mod flops;
pub mod groups;
pub mod shrink;

use crate::choice::named_choices;
use crate::error::{Error, Result};
use crate::model::{Mask, Masks, ModelState, ModuleGroup, Role};
use crate::prune::Scope;
pub use flops::{costs, Cost, FlopsAt};
pub use groups::{channel_groups, ChannelGroup, Slice};
use serde::Serialize;
use std::collections::HashMap;

/// How a channel group's importance is measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Importance {
    #[default]
    L1,
    L2,
    Bn,
}

named_choices!(Importance, "importance", [
    L1 = "l1": "L1 norm of each channel's producing weights, summed over the group's producers",
    L2 = "l2": "L2 norm of the same weights",
    Bn = "bn": "FrozenBatchNorm's effective scale |w|/sqrt(var+eps) (the folded Mul constant), summed over the group's BNs; \
               groups without BN (FPN, heads) fall back to L2",
]);

/// Options as given; `check` validates them before anything is read or written.
#[derive(Clone, Debug)]
pub struct ChannelParams {
    /// Fraction of the selected channels to remove, in [0, 1).
    pub sparsity: f64,
    pub scope: Scope,
    pub modules: Option<Vec<String>>,
    pub importance: Importance,
    /// Kept channel counts are rounded up to multiples of this (SIMD-friendly widths); a group narrower than it
    /// is left whole.
    pub round_to: usize,
    pub flops_at: FlopsAt,
}

impl Default for ChannelParams {
    fn default() -> Self {
        ChannelParams {
            sparsity: 0.0,
            scope: Scope::Global,
            modules: None,
            importance: Importance::L1,
            round_to: 8,
            flops_at: FlopsAt::default(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ChannelValid(ChannelParams);

impl ChannelParams {
    pub fn check(self) -> Result<ChannelValid> {
        if !(0.0..1.0).contains(&self.sparsity) || self.sparsity.is_nan() {
            return Err(Error::setting(
                "sparsity",
                format!("`sparsity` {} is outside [0, 1): a channel prune keeps at least one channel per group", self.sparsity),
            ));
        }
        if self.round_to == 0 {
            return Err(Error::setting(
                "round_to",
                "`round_to` 0: kept channel counts are rounded to multiples of N, so N must be at least 1",
            ));
        }
        if self.round_to > MAX_ROUND_TO {
            return Err(Error::setting(
                "round_to",
                format!(
                    "`round_to` {} is above {MAX_ROUND_TO}: every layer would round up to all of its channels and nothing would be removed",
                    self.round_to
                ),
            ));
        }
        if self.modules.as_ref().is_some_and(|m| m.is_empty()) {
            return Err(Error::setting("modules", "`modules` is empty"));
        }
        Ok(ChannelValid(self))
    }
}

/// The largest `--round-to`: the widest groups of torchvision's ResNets have 2048 channels, and a multiple
/// past a quarter of that leaves most layers whole.
pub const MAX_ROUND_TO: usize = 512;

impl ChannelValid {
    pub fn params(&self) -> &ChannelParams {
        &self.0
    }
}

/// One group's outcome. `keep` (ascending channel indices) is what `zero_channels` and mask transfer need.
#[derive(Clone, Debug, Serialize)]
pub struct GroupPlan {
    pub name: String,
    pub module: ModuleGroup,
    pub channels: usize,
    pub kept: usize,
    #[serde(skip)]
    pub keep: Vec<usize>,
}

/// A group's plan as saved beside an IMP level, to be applied again to another checkpoint of the same widths.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct SavedPlan {
    pub name: String,
    pub channels: usize,
    pub keep: Vec<usize>,
}

impl From<&GroupPlan> for SavedPlan {
    fn from(p: &GroupPlan) -> Self {
        SavedPlan { name: p.name.clone(), channels: p.channels, keep: p.keep.clone() }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ModuleCost {
    pub module: ModuleGroup,
    pub params_before: usize,
    pub params_after: usize,
    pub flops_before: u64,
    pub flops_after: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChannelReport {
    pub scope: Scope,
    pub importance: Importance,
    pub round_to: usize,
    pub target_sparsity: f64,
    pub channels: usize,
    pub channels_kept: usize,
    pub params_before: usize,
    pub params_after: usize,
    pub flops_before: u64,
    pub flops_after: u64,
    /// Fractions removed.
    pub params_removed: f64,
    pub flops_removed: f64,
    pub flops_at: FlopsAt,
    pub modules: Vec<ModuleCost>,
    pub groups: Vec<GroupPlan>,
}

/// Per-channel sums of f(value) over the slice of a tensor.
fn per_channel(values: &[f32], shape: &[usize], s: &Slice, channels: usize, f: impl Fn(f32) -> f64) -> Vec<f64> {
    let inner: usize = shape[s.axis + 1..].iter().product();
    let n = shape[s.axis];
    let mut out = vec![0.0; channels];
    for (i, &v) in values.iter().enumerate() {
        out[(i / inner) % n / s.block] += f(v);
    }
    out
}

fn values_of<'a>(state: &'a ModelState, t: &str) -> Option<(&'a [usize], std::borrow::Cow<'a, [f32]>)> {
    state.weights.get(t).map(|w| (&w.shape[..], w.values.dense())).or_else(|| state.buffers.get(t).map(|(s, v)| (&s[..], v[..].into())))
}

/// Channel importance of a group, normalised by its mean so that global ranking compares groups of different
/// fan-in on one scale (Torch-Pruning's "mean" normaliser).
fn importance(state: &ModelState, g: &ChannelGroup, how: Importance) -> Vec<f64> {
    let weights: Vec<&Slice> =
        g.producers.iter().filter(|s| state.weights.get(&s.tensor).is_some_and(|w| w.role == Role::Weight)).collect();
    let scales: Vec<&Slice> = g.producers.iter().filter(|s| s.tensor.ends_with(".scale")).collect();
    let sum = |slices: &[&Slice], f: &dyn Fn(f32) -> f64| {
        let mut acc = vec![0.0; g.channels];
        for s in slices {
            if let Some((shape, values)) = values_of(state, &s.tensor) {
                for (a, v) in acc.iter_mut().zip(per_channel(&values, shape, s, g.channels, f)) {
                    *a += v;
                }
            }
        }
        acc
    };
    let raw = match how {
        Importance::L1 => sum(&weights, &|v| v.abs() as f64),
        Importance::Bn if !scales.is_empty() => sum(&scales, &|v| v.abs() as f64),
        Importance::L2 | Importance::Bn => sum(&weights, &|v| (v as f64) * (v as f64)).into_iter().map(f64::sqrt).collect(),
    };
    let mean = raw.iter().sum::<f64>() / raw.len().max(1) as f64;
    if mean > 0.0 {
        raw.into_iter().map(|v| v / mean).collect()
    } else {
        raw
    }
}

/// Decides which channels each group keeps.
pub fn plan(state: &ModelState, opts: &ChannelValid) -> Result<(Vec<ChannelGroup>, Vec<GroupPlan>)> {
    let p = opts.params();
    let groups = channel_groups(state)?;
    let selected_modules = p.modules.as_deref().map(|m| crate::prune::check_modules(state, m)).transpose()?;
    let selected: Vec<bool> = groups.iter().map(|g| selected_modules.as_ref().is_none_or(|m| m.contains(&g.module))).collect();
    let scores: Vec<Vec<f64>> = groups.iter().map(|g| importance(state, g, p.importance)).collect();

    // Channels each group would keep before rounding.
    let raw_keep: Vec<usize> = match p.scope {
        Scope::Layer => groups
            .iter()
            .zip(&selected)
            .map(|(g, &sel)| if sel { g.channels - (p.sparsity * g.channels as f64).floor() as usize } else { g.channels })
            .collect(),
        Scope::Global => {
            let mut all: Vec<(f64, usize)> =
                scores.iter().enumerate().filter(|(i, _)| selected[*i]).flat_map(|(i, s)| s.iter().map(move |&v| (v, i))).collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0));
            let remove = (p.sparsity * all.len() as f64).floor() as usize;
            let mut keep: Vec<usize> = groups.iter().map(|g| g.channels).collect();
            for &(_, i) in &all[..remove] {
                keep[i] -= 1;
            }
            keep
        }
    };
    let mut plans = Vec::with_capacity(groups.len());
    for ((g, s), raw) in groups.iter().zip(&scores).zip(raw_keep) {
        if raw == 0 {
            return Err(Error::setting_at(
                state.path(),
                "sparsity",
                format!(
                    "`sparsity` {} would remove every channel of {} ({} channels): lower `sparsity`, use `scope` layer, or leave its module out of `modules`",
                    p.sparsity, g.name, g.channels
                ),
            ));
        }
        let kept = (raw.div_ceil(p.round_to) * p.round_to).min(g.channels);
        let mut order: Vec<usize> = (0..g.channels).collect();
        // Highest importance first; ties keep the lower index, so the choice is deterministic.
        order.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)));
        let mut keep = order[..kept].to_vec();
        keep.sort_unstable();
        plans.push(GroupPlan { name: g.name.clone(), module: g.module.clone(), channels: g.channels, kept, keep });
    }
    if selected.iter().all(|s| !s) {
        return Err(Error::setting_at(state.path(), "modules", "no channel group in the selected `modules`"));
    }
    Ok((groups, plans))
}

/// Removes the channels `plan` drops: every producer and consumer slice is cut, masks follow.
fn shrink(state: &ModelState, groups: &[ChannelGroup], plans: &[GroupPlan]) -> Result<ModelState> {
    let mut edits: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
    let mut masks: HashMap<String, (Vec<usize>, Vec<u8>)> =
        state.masks.map.iter().map(|(n, m)| (n.clone(), (m.shape.clone(), m.keep.clone()))).collect();
    for (g, plan) in groups.iter().zip(plans).filter(|(g, p)| p.kept < g.channels) {
        for s in g.producers.iter().chain(&g.consumers) {
            let (shape, values) = match edits.remove(&s.tensor) {
                Some(e) => e,
                None => {
                    let (sh, v) = values_of(state, &s.tensor).expect("groups only name existing tensors");
                    (sh.to_vec(), v.into_owned())
                }
            };
            let (v, sh) = shrink::take(&values, &shape, s.axis, s.block, &plan.keep);
            edits.insert(s.tensor.clone(), (sh, v));
            if let Some((mshape, keep)) = masks.remove(&s.tensor) {
                let (k, msh) = shrink::take(&keep, &mshape, s.axis, s.block, &plan.keep);
                masks.insert(s.tensor.clone(), (msh, k));
            }
        }
    }
    let masks = Masks { map: masks.into_iter().map(|(n, (shape, keep))| (n, Mask { shape, keep })).collect() };
    shrink::rewrite(state, &edits, masks)
}

/// Cuts `state` to the channels `plans` keep (plans drawn on a model of the same widths: another checkpoint of
/// it, as IMP's rewinding needs the trained model's plan applied to the initial weights).
pub fn apply_plans(state: &ModelState, plans: &[SavedPlan]) -> Result<ModelState> {
    let groups = channel_groups(state)?;
    if groups.len() != plans.len() || groups.iter().zip(plans).any(|(g, p)| g.name != p.name || g.channels != p.channels) {
        return Err(Error::input(state.path(), "its channel groups differ from the plan's (another architecture or width)"));
    }
    let plans: Vec<GroupPlan> = groups
        .iter()
        .zip(plans)
        .map(|(g, p)| GroupPlan {
            name: p.name.clone(),
            module: g.module.clone(),
            channels: p.channels,
            kept: p.keep.len(),
            keep: p.keep.clone(),
        })
        .collect();
    shrink(state, &groups, &plans)
}

/// Prunes channels: returns a NEW, narrower ModelState (its `source` is the rewritten ONNX) and the report.
/// The input state is not changed. Unstructured masks on the state are cut to the kept channels.
pub fn prune_channels(state: &ModelState, params: &ChannelParams) -> Result<(ModelState, ChannelReport)> {
    let opts = params.clone().check()?;
    let (groups, plans) = plan(state, &opts)?;
    let out = shrink(state, &groups, &plans)?;
    Ok((out.clone(), report(state, &out, &opts, plans)))
}

/// The dense model with the channels `plans` drops set to exactly zero at their producers (out-weights,
/// biases, FrozenBatchNorm scale and shift), same shapes. Each dropped channel is then exactly 0 wherever it
/// is read — after BN (0·scale + 0), ReLU, max-pool, the residual and top-down adds (every term is a zeroed
/// producer), upsampling and RoIAlign — so consumers' weights on it contribute nothing, and the narrow model
/// computes the same function: the test that the removal is exact.
pub fn zero_channels(state: &ModelState, plans: &[GroupPlan]) -> Result<ModelState> {
    let groups = channel_groups(state)?;
    let mut edits: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
    for plan in plans {
        let g = groups
            .iter()
            .find(|g| g.name == plan.name && g.channels == plan.channels)
            .ok_or_else(|| Error::input(state.path(), format!("channel group '{}' is not in this model", plan.name)))?;
        let dropped: Vec<usize> = (0..g.channels).filter(|c| plan.keep.binary_search(c).is_err()).collect();
        for s in &g.producers {
            let entry = edits.entry(s.tensor.clone()).or_insert_with(|| {
                let (sh, v) = values_of(state, &s.tensor).expect("groups only name existing tensors");
                (sh.to_vec(), v.into_owned())
            });
            let inner: usize = entry.0[s.axis + 1..].iter().product();
            let n = entry.0[s.axis];
            for (i, v) in entry.1.iter_mut().enumerate() {
                if dropped.binary_search(&((i / inner) % n / s.block)).is_ok() {
                    *v = 0.0;
                }
            }
        }
    }
    shrink::rewrite(state, &edits, state.masks.clone())
}

fn report(before: &ModelState, after: &ModelState, opts: &ChannelValid, groups: Vec<GroupPlan>) -> ChannelReport {
    let p = opts.params();
    let (cb, ca) = (costs(before, &p.flops_at), costs(after, &p.flops_at));
    let modules: Vec<ModuleCost> = cb
        .iter()
        .map(|(m, b)| {
            let a = ca.get(m).cloned().unwrap_or_default();
            ModuleCost { module: m.clone(), params_before: b.params, params_after: a.params, flops_before: b.flops, flops_after: a.flops }
        })
        .collect();
    let params_before: usize = modules.iter().map(|m| m.params_before).sum();
    let params_after: usize = modules.iter().map(|m| m.params_after).sum();
    let flops_before: u64 = modules.iter().map(|m| m.flops_before).sum();
    let flops_after: u64 = modules.iter().map(|m| m.flops_after).sum();
    ChannelReport {
        scope: p.scope,
        importance: p.importance,
        round_to: p.round_to,
        target_sparsity: p.sparsity,
        channels: groups.iter().map(|g| g.channels).sum(),
        channels_kept: groups.iter().map(|g| g.kept).sum(),
        params_before,
        params_after,
        flops_before,
        flops_after,
        params_removed: 1.0 - params_after as f64 / params_before.max(1) as f64,
        flops_removed: 1.0 - flops_after as f64 / flops_before.max(1) as f64,
        flops_at: p.flops_at,
        modules,
        groups,
    }
}
