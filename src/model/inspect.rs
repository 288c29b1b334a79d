//! What a model is and where its weights are (`ticket inspect`): parameters, prunable weights and their exact
//! zeros per module group, the exporter's constants, and names recovered from node scopes.
use super::{ArchSpec, Constants, ModelState, ModuleGroup, Role};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Serialize)]
pub struct GroupRow {
    pub group: ModuleGroup,
    pub label: String,
    pub params: usize,
    pub share: f64,
    pub prunable: usize,
    /// Exact zeros among the group's prunable weights.
    pub prunable_zeros: usize,
    pub sparsity: f64,
}

#[derive(Serialize)]
pub struct LayerRow {
    pub name: String,
    pub initializer: String,
    pub group: ModuleGroup,
    pub role: Role,
    pub op: Option<String>,
    pub shape: Vec<usize>,
    pub numel: usize,
    pub zeros: usize,
    pub recovered_name: bool,
}

#[derive(Serialize)]
pub struct InspectReport {
    pub model: PathBuf,
    pub arch: ArchSpec,
    pub summary: String,
    pub groups: Vec<GroupRow>,
    pub params: usize,
    pub prunable: usize,
    pub prunable_zeros: usize,
    /// Exact zeros among the prunable weights.
    pub sparsity: f64,
    /// Exact zeros among all parameters (the seed's "network sparsity").
    pub network_sparsity: f64,
    pub constants: Constants,
    pub recovered_names: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<LayerRow>>,
}

/// What `state` is and where its weights are: per module group, in total, and per tensor with `layers`.
pub fn report(state: &ModelState, layers: bool) -> InspectReport {
    let total = state.weights.total();
    let groups: Vec<GroupRow> = state
        .groups()
        .into_iter()
        .map(|(g, ws)| {
            let params: usize = ws.iter().map(|w| w.numel()).sum();
            let prunable: usize = ws.iter().filter(|w| w.role == Role::Weight).map(|w| w.numel()).sum();
            let zeros: usize = ws.iter().filter(|w| w.role == Role::Weight).map(|w| w.zeros()).sum();
            GroupRow {
                label: g.label(),
                group: g,
                params,
                share: params as f64 / total.max(1) as f64,
                prunable,
                prunable_zeros: zeros,
                sparsity: zeros as f64 / prunable.max(1) as f64,
            }
        })
        .collect();
    let prunable: usize = groups.iter().map(|g| g.prunable).sum();
    let prunable_zeros: usize = groups.iter().map(|g| g.prunable_zeros).sum();
    let all_zeros: usize = state.weights.tensors.iter().map(|w| w.zeros()).sum();
    InspectReport {
        model: state.path().to_path_buf(),
        summary: state.arch.summary(),
        arch: state.arch.clone(),
        groups,
        params: total,
        prunable,
        prunable_zeros,
        sparsity: prunable_zeros as f64 / prunable.max(1) as f64,
        network_sparsity: all_zeros as f64 / total.max(1) as f64,
        constants: state.constants.clone(),
        recovered_names: state
            .weights
            .tensors
            .iter()
            .filter(|w| w.recovered_name)
            .map(|w| format!("{} <- {}", w.name, w.initializer))
            .collect(),
        layers: layers.then(|| {
            state
                .weights
                .tensors
                .iter()
                .map(|w| LayerRow {
                    name: w.name.clone(),
                    initializer: w.initializer.clone(),
                    group: w.group.clone(),
                    role: w.role,
                    op: w.op.clone(),
                    shape: w.shape.clone(),
                    numel: w.numel(),
                    zeros: w.zeros(),
                    recovered_name: w.recovered_name,
                })
                .collect()
        }),
    }
}
