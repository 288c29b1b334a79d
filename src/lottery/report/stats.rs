//! The numbers of an IMP report, computed once per group of replicates; the plots and the Markdown tables
//! are both drawn from these, so a table and its plot cannot disagree.
use super::runs::{mean_std, Group, LevelData, RunData};
use std::collections::BTreeMap;

/// Mean and standard deviation over the replicates, and how many there were.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

impl Stat {
    pub fn of(v: &[f64]) -> Option<Stat> {
        if v.is_empty() {
            return None;
        }
        let (mean, std) = mean_std(v);
        Some(Stat { mean, std, n: v.len() })
    }
}

#[derive(Clone, Debug)]
pub struct LevelStat {
    pub level: usize,
    pub network_sparsity: Stat,
    pub selected_sparsity: Stat,
    /// Channel levels: the fraction of the dense model's FLOPs removed.
    pub flops_removed: Option<Stat>,
    /// IoU type → AP, AP50, and AP minus dense AP (each replicate against its own dense level).
    pub ap: BTreeMap<String, Stat>,
    pub ap50: BTreeMap<String, Stat>,
    pub delta_ap: BTreeMap<String, Stat>,
    /// Selected tensors pruned beyond 99% in any replicate.
    pub collapsed: Vec<String>,
}

/// One tensor of the shown ticket, in network order.
#[derive(Clone, Debug)]
pub struct LayerSparsity {
    pub name: String,
    pub group: String,
    pub numel: usize,
    pub sparsity: f64,
}

#[derive(Clone, Debug)]
pub struct GroupStats {
    pub label: String,
    /// The method in words, unique among the groups: what the figures' legends say.
    pub method: String,
    /// The method before the settings that make its name unique ([`super::runs::method_name`]): groups of one
    /// kind at different sparsities or on different architectures share it.
    pub method_kind: String,
    pub arch: String,
    /// The initial model's parameter count ([`super::runs::RunData::params`]).
    pub params: Option<u64>,
    pub runs: Vec<(String, u64)>,
    pub levels: Vec<LevelStat>,
    /// The level the per-layer, per-size, per-category, TIDE and loss figures show (the first replicate's
    /// chosen ticket, else its sparsest level), the same level for every replicate.
    pub shown: usize,
    /// IoU type → (object size, ΔAP of the shown level against dense).
    pub size_delta: BTreeMap<String, Vec<(String, Stat)>>,
    /// IoU type → (category, ΔAP of the shown level against dense).
    pub category_delta: BTreeMap<String, Vec<(String, Stat)>>,
    /// (IoU type, error type → (dense ΔAP50-if-fixed, ticket's)), for the first IoU type with TIDE.
    pub tide: Option<(String, Vec<(String, Stat, Stat)>)>,
    /// Per-layer sparsity of the first replicate's shown level (from its prune report).
    pub layers: Option<Vec<LayerSparsity>>,
    /// Training loss per step of the first replicate: dense (level 0) and the shown level.
    pub loss_dense: Vec<(u64, f64)>,
    pub loss_ticket: Vec<(u64, f64)>,
    /// IoU type → validation AP over training steps (mean ± std over the replicates, at the steps every one
    /// scored): dense (level 0) and the shown level; empty without `--val-every`.
    pub val_dense: BTreeMap<String, Vec<(u64, Stat)>>,
    pub val_ticket: BTreeMap<String, Vec<(u64, Stat)>>,
    /// Early-bird masks: (fraction of dense training, IoU with the final mask).
    pub early_bird: Vec<(f64, Stat)>,
}

/// TIDE's six error types in tidecv's order (the FP/FN oracles overlap them and are left to the JSON).
pub const TIDE_ERRORS: [&str; 6] = ["Cls", "Loc", "Both", "Dupe", "Bkg", "Miss"];
/// COCO's object sizes as the reports name them.
pub const SIZES: [&str; 3] = ["small", "medium", "large"];

fn collect<T: Clone + Ord>(runs: &[RunData], mut f: impl FnMut(&RunData) -> Vec<(T, f64)>) -> Vec<(T, Stat)> {
    let mut by: BTreeMap<T, Vec<f64>> = BTreeMap::new();
    let mut order: Vec<T> = Vec::new();
    for r in runs {
        for (k, v) in f(r) {
            if !by.contains_key(&k) {
                order.push(k.clone());
            }
            by.entry(k).or_default().push(v);
        }
    }
    order.into_iter().filter_map(|k| Stat::of(&by[&k]).map(|s| (k, s))).collect()
}

fn level_stat(runs: &[RunData], l: usize) -> LevelStat {
    let rows: Vec<&LevelData> = runs.iter().map(|r| &r.levels[l]).collect();
    let stat = |f: &dyn Fn(&LevelData) -> f64| Stat::of(&rows.iter().map(|d| f(d)).collect::<Vec<_>>()).expect("at least one run");
    let per_type = |f: &dyn Fn(&RunData) -> BTreeMap<String, f64>| -> BTreeMap<String, Stat> {
        collect(runs, |r| f(r).into_iter().collect()).into_iter().collect()
    };
    // In network order, each name once (replicates usually collapse the same tensors).
    let mut collapsed: Vec<String> = Vec::new();
    for name in rows.iter().flat_map(|d| d.row.collapsed.iter()) {
        if !collapsed.contains(name) {
            collapsed.push(name.clone());
        }
    }
    LevelStat {
        level: l,
        network_sparsity: stat(&|d| d.row.network_sparsity),
        selected_sparsity: stat(&|d| d.row.selected_sparsity),
        flops_removed: Stat::of(&rows.iter().filter_map(|d| d.row.flops_removed).collect::<Vec<_>>()),
        ap: per_type(&|r| r.levels[l].row.scores.iter().filter_map(|(k, s)| Some((k.clone(), s.ap?))).collect()),
        ap50: per_type(&|r| r.levels[l].row.scores.iter().filter_map(|(k, s)| Some((k.clone(), s.ap50?))).collect()),
        delta_ap: per_type(&|r| r.levels[l].row.delta(&r.levels[0].row)),
        collapsed,
    }
}

/// ΔAP of `level` against dense per key of `f` (object size or category), per IoU type.
fn deltas(
    runs: &[RunData],
    level: usize,
    f: impl Fn(&super::runs::CocoView) -> Vec<(String, Option<f64>)>,
) -> BTreeMap<String, Vec<(String, Stat)>> {
    let types: Vec<String> = runs[0].levels[level].reports.iter().map(|r| r.iou_type.clone()).collect();
    types
        .into_iter()
        .map(|t| {
            let rows = collect(runs, |r| {
                let (Some(dense), Some(ticket)) = (r.levels[0].report(&t), r.levels[level].report(&t)) else { return Vec::new() };
                let d: BTreeMap<String, Option<f64>> = f(dense).into_iter().collect();
                f(ticket).into_iter().filter_map(|(k, v)| Some((k.clone(), v? - (*d.get(&k)?)?))).collect()
            });
            (t, rows)
        })
        .filter(|(_, rows)| !rows.is_empty())
        .collect()
}

/// A level's training loss averaged over the replicates, step by step (the steps every run logged; a run
/// without a log — a `--trained` dense level — leaves no curve).
/// IoU type → (step, the primary score's mean ± std) of `level`'s validation curves, at the steps every replicate
/// scored.
fn val_curves(runs: &[RunData], level: usize) -> BTreeMap<String, Vec<(u64, Stat)>> {
    let mut by: BTreeMap<String, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    for r in runs {
        for p in &r.levels[level].val {
            for (t, sc) in &p.scores {
                if let Some(v) = sc.primary() {
                    by.entry(t.clone()).or_default().entry(p.step).or_default().push(v);
                }
            }
        }
    }
    by.into_iter()
        .map(|(t, steps)| {
            let points = steps.into_iter().filter(|(_, v)| v.len() == runs.len()).filter_map(|(s, v)| Some((s, Stat::of(&v)?))).collect();
            (t, points)
        })
        .filter(|(_, p): &(String, Vec<(u64, Stat)>)| !p.is_empty())
        .collect()
}

fn mean_loss(runs: &[RunData], level: usize) -> Vec<(u64, f64)> {
    let curves: Vec<BTreeMap<u64, f64>> = runs.iter().map(|r| r.levels[level].loss.iter().copied().collect()).collect();
    let Some(first) = curves.first() else { return Vec::new() };
    first
        .keys()
        .filter(|s| curves.iter().all(|c| c.contains_key(s)))
        .map(|s| (*s, curves.iter().map(|c| c[s]).sum::<f64>() / curves.len() as f64))
        .collect()
}

pub fn group_stats(g: &Group) -> GroupStats {
    let runs = &g.runs;
    let levels = (0..runs[0].levels.len()).map(|l| level_stat(runs, l)).collect();
    let first = &runs[0];
    let shown = first.shown_level();
    let size_delta =
        deltas(runs, shown, |r| r.per_size.iter().filter(|s| SIZES.contains(&s.area.as_str())).map(|s| (s.area.clone(), s.ap)).collect());
    let category_delta = deltas(runs, shown, |r| r.per_category.iter().map(|c| (c.name.clone(), c.ap)).collect());
    let tide = first.levels[shown].reports.iter().find(|r| r.tide.is_some()).map(|r| r.iou_type.clone()).map(|t| {
        let side = |level: usize| -> BTreeMap<String, Stat> {
            collect(runs, |r| match r.levels[level].report(&t).and_then(|x| x.tide.as_ref()) {
                Some(td) => TIDE_ERRORS.iter().filter_map(|e| Some((e.to_string(), *td.delta_ap.get(*e)?))).collect(),
                None => Vec::new(),
            })
            .into_iter()
            .collect()
        };
        let (dense, ticket) = (side(0), side(shown));
        let rows = TIDE_ERRORS.iter().filter_map(|e| Some((e.to_string(), *dense.get(*e)?, *ticket.get(*e)?))).collect();
        (t, rows)
    });
    // The prune report of the shown level, else of the last level that has one (a --masks-from level 1 has none).
    let layers = (1..=shown).rev().find_map(|l| first.levels[l].prune.as_ref()).map(|p| {
        p.tensors
            .iter()
            .map(|t| LayerSparsity {
                name: t.name.clone(),
                group: t.group.clone(),
                numel: t.numel,
                sparsity: 1.0 - t.kept as f64 / t.numel.max(1) as f64,
            })
            .collect()
    });
    let early_bird = collect(runs, |r| {
        r.levels[0].early_bird.as_ref().map_or(Vec::new(), |eb| eb.masks.iter().map(|m| (OrdF64(m.fraction), m.iou_with_final)).collect())
    })
    .into_iter()
    .map(|(f, s)| (f.0, s))
    .collect();
    GroupStats {
        label: g.label.clone(),
        method: g.method.clone(),
        method_kind: super::runs::method_name(&first.config),
        arch: g.arch.clone(),
        params: first.params,
        runs: runs.iter().map(|r| (r.dir.display().to_string(), r.seed())).collect(),
        levels,
        shown,
        size_delta,
        category_delta,
        tide,
        layers,
        loss_dense: mean_loss(runs, 0),
        loss_ticket: mean_loss(runs, shown),
        val_dense: val_curves(runs, 0),
        val_ticket: val_curves(runs, shown),
        early_bird,
    }
}

/// A fraction as a map key (the fractions come from the same run.json, so equal ones are bit-equal).
#[derive(Clone, Copy, Debug, PartialEq)]
struct OrdF64(f64);
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}
