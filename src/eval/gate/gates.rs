//! The gates: the candidate's sparsity, and its mAP drop against the dense model for each IoU type.
use super::Scores;
use crate::detect::results::CocoResult;
use crate::error::{Error, Result};
use crate::eval::{CocoGt, DetSource, EvalOptions, IouType};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
pub struct Gate {
    pub name: String,
    pub limit: f64,
    pub value: f64,
    pub passed: bool,
}

/// The gates asked for: `min_sparsity` on the candidate's sparsity, `max_map_drop` on each IoU type's drop.
pub fn gates(min_sparsity: Option<f64>, max_map_drop: Option<f64>, sparsity: f64, map_drop: &BTreeMap<String, f64>) -> Vec<Gate> {
    let mut gates = Vec::new();
    if let Some(s) = min_sparsity {
        gates.push(Gate { name: "min sparsity".into(), limit: s, value: sparsity, passed: sparsity >= s });
    }
    if let Some(d) = max_map_drop {
        for (t, drop) in map_drop {
            gates.push(Gate { name: format!("max mAP drop ({t})"), limit: d, value: *drop, passed: *drop <= d });
        }
    }
    gates
}

/// AP and AP50 of `dets` on the reference for one IoU type.
pub fn score(gt: &CocoGt, dets: &[CocoResult], iou: IouType) -> Result<Scores> {
    let records = crate::eval::model::scored_records(gt, dets);
    let r = gt.evaluate(
        DetSource::Records(records),
        iou,
        &EvalOptions { tide: false, ..Default::default() },
        &indicatif::ProgressBar::hidden(),
    )?;
    // No AP: nothing in the reference to find. A gate on it would pass whatever the candidate does.
    let ap = r.metric("AP").ok_or_else(|| {
        Error::input(gt.path(), format!("has no reference objects to score {} on: the gate would pass any model", iou.as_str()))
    })?;
    Ok(Scores { ap, ap50: r.metric("AP50").unwrap_or(0.0) })
}

/// The fraction of a model's prunable weights that are zero.
pub fn sparsity(state: &crate::model::ModelState) -> f64 {
    let (n, z) = state.prunable().fold((0usize, 0usize), |(n, z), w| (n + w.numel(), z + w.zeros()));
    z as f64 / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::gates;
    use std::collections::BTreeMap;

    #[test]
    fn a_gate_per_limit_and_iou_type_each_inclusive() {
        let drop = BTreeMap::from([("bbox".to_string(), 0.01), ("segm".to_string(), 0.03)]);
        let g = gates(Some(0.8), Some(0.01), 0.8, &drop);
        let got: Vec<(&str, bool)> = g.iter().map(|g| (g.name.as_str(), g.passed)).collect();
        assert_eq!(got, [("min sparsity", true), ("max mAP drop (bbox)", true), ("max mAP drop (segm)", false)]);
        assert!(gates(None, None, 0.0, &drop).is_empty());
    }
}
