//! One level 0 for the tasks that would train the same one. Level 0 (dense training) depends only on the model,
//! the data, the schedule and the seed; the cells of a typical grid differ in how they prune (sparsity, scope,
//! rewind, controls), so without sharing a 3-cell × 5-seed controls study trains fifteen identical dense
//! models instead of five. Tasks whose settings agree on everything but what happens after level 0 form a group;
//! its first task (the leader) trains level 0, and every other task (a follower) starts from the leader's trained
//! dense model (`ticket imp --trained`), which scores it again on its own validation settings.
//!
//! Sharing is an optimisation, never a condition: a follower whose leader has not finished level 0 (not run yet,
//! failed, or run by a scheduler with no dependencies) trains its own, which gives the same model. The executors
//! run the leaders first so that this stays the exception.
use super::folder;
use super::spec::{Plan, TaskDef};
use crate::lottery::Rewind;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Settings that act only after level 0: they do not change the dense model.
const AFTER_LEVEL_0: [&str; 18] = [
    "sparsity",
    "rounds",
    "scope",
    "modules",
    "min-layer-density",
    "structure",
    "importance",
    "round-to",
    "rewind",
    "mask",
    "floor-on",
    "max-map-drop",
    "val-every",
    "distill",
    "distill-weight",
    "temperature",
    "teacher",
    "pseudo-score",
];

/// Settings with which a task neither leads nor follows: it brings its own dense model (`trained`), watches or
/// stops dense training (early-bird), or takes level 1's masks from elsewhere.
const OWN_LEVEL_0: [&str; 5] = ["trained", "early-bird", "early-stop-eb", "eb-every", "masks-from"];

/// What determines a task's level 0, or None when it cannot share one: late resetting (`rewind` STEP) needs the
/// dense run's own checkpoints.
fn dense_key(t: &TaskDef) -> Option<BTreeMap<&str, &str>> {
    if OWN_LEVEL_0.iter().any(|k| t.settings.contains_key(*k)) {
        return None;
    }
    // A value that does not parse shares nothing either: its task fails on its own, not through a leader.
    if t.settings.get("rewind").is_some_and(|r| !matches!(r.parse(), Ok(Rewind::Init | Rewind::None | Rewind::Random))) {
        return None;
    }
    Some(t.settings.iter().filter(|(k, _)| !AFTER_LEVEL_0.contains(&k.as_str())).map(|(k, v)| (k.as_str(), v.as_str())).collect())
}

/// For each task of the plan, the earlier task whose level 0 it reuses (None: it trains its own).
pub fn leaders(plan: &Plan) -> Vec<Option<usize>> {
    let mut first: BTreeMap<BTreeMap<&str, &str>, usize> = BTreeMap::new();
    plan.tasks
        .iter()
        .map(|t| {
            let key = dense_key(t)?;
            match first.get(&key) {
                Some(&leader) => Some(leader),
                None => {
                    first.insert(key, t.index);
                    None
                }
            }
        })
        .collect()
}

/// `todo` in two batches: the tasks that train their own level 0 (or whose leader has already finished, being
/// outside `todo`), then the followers of leaders in the first batch.
pub fn phases(plan: &Plan, todo: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let leaders = leaders(plan);
    todo.iter().partition(|&&i| !leaders.get(i).copied().flatten().is_some_and(|l| todo.contains(&l)))
}

/// The leader's trained dense model for task `t`, once the leader has finished level 0 (its scores written).
pub fn shared_level_0(sweep_dir: &Path, plan: &Plan, t: &TaskDef) -> Option<(usize, PathBuf)> {
    let leader = leaders(plan).get(t.index).copied().flatten()?;
    let level_0 = folder::run_dir(sweep_dir, &plan.tasks[leader]).join("level_0");
    let model = level_0.join("model.onnx");
    (level_0.join("metrics.json").is_file() && model.is_file()).then_some((leader, model))
}

/// A follower's arguments: the task's own with `--trained MODEL` in place of the dense training (`--dense-steps`
/// goes: it sets level 0's length, which `trained` replaces).
pub fn follower_argv(argv: &[String], trained: &Path) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len() + 2);
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if a == "--dense-steps" {
            it.next();
            continue;
        }
        out.push(a.clone());
    }
    out.push("--trained".into());
    out.push(trained.to_string_lossy().into_owned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(index: usize, settings: &[(&str, &str)]) -> TaskDef {
        let settings: BTreeMap<String, String> = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TaskDef { index, hash: format!("{index:016x}"), cell: BTreeMap::new(), settings, argv: Vec::new() }
    }

    fn plan(tasks: Vec<TaskDef>) -> Plan {
        Plan { name: "t".into(), command: "imp".into(), spec_hash: String::new(), tasks }
    }

    #[test]
    fn cells_that_differ_after_level_0_share_the_first_ones_dense_model() {
        let p = plan(vec![
            task(0, &[("seed", "1"), ("sparsity", "0.5")]),
            task(1, &[("seed", "2"), ("sparsity", "0.5")]),
            task(2, &[("seed", "1"), ("sparsity", "0.8"), ("rewind", "random")]),
            task(3, &[("seed", "2"), ("mask", "random"), ("scope", "layer")]),
            task(4, &[("seed", "1"), ("steps", "9")]),
        ]);
        assert_eq!(leaders(&p), vec![None, None, Some(0), Some(1), None]);
        // Followers wait only for leaders that are still to run.
        assert_eq!(phases(&p, &[0, 1, 2, 3, 4]), (vec![0, 1, 4], vec![2, 3]));
        assert_eq!(phases(&p, &[1, 2, 3]), (vec![1, 2], vec![3]));
    }

    #[test]
    fn tasks_that_need_their_own_dense_training_neither_lead_nor_follow() {
        let p = plan(vec![
            task(0, &[("seed", "1"), ("rewind", "100")]),
            task(1, &[("seed", "1"), ("early-bird", "0.5")]),
            task(2, &[("seed", "1"), ("trained", "/m.onnx")]),
            task(3, &[("seed", "1")]),
            task(4, &[("seed", "1"), ("rewind", "none")]),
            task(5, &[("seed", "1"), ("masks-from", "/m.safetensors")]),
            task(6, &[("seed", "1"), ("rewind", "late")]),
        ]);
        assert_eq!(leaders(&p), vec![None, None, None, None, Some(3), None, None]);
    }

    #[test]
    fn a_follower_trains_nothing_dense() {
        let argv: Vec<String> = ["m.onnx", "--dense-steps", "8", "--sparsity", "0.8"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            follower_argv(&argv, Path::new("/s/level_0/model.onnx")),
            ["m.onnx", "--sparsity", "0.8", "--trained", "/s/level_0/model.onnx"]
        );
    }
}
