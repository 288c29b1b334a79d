//! One-shot pruning of a model file (`ticket prune`): import it with an earlier round's masks, prune (weights or
//! whole channels), and export the ticket through `export`'s one path — its masks and compact form too, checked
//! in ONNX Runtime when asked, nothing left behind on a failure.
use crate::error::{Error, Result};
use crate::export::{export, import_masked, Outputs, Sizes, Verify};
use crate::prune::channel::{ChannelParams, ChannelReport};
use crate::prune::{PruneParams, PruneReport};
use crate::runtime::ort_check::OutputDiff;
use serde::Serialize;
use std::path::PathBuf;

/// The files of a one-shot prune: what is read, what is written, and whether the export is checked in ORT.
#[derive(Clone, Debug)]
pub struct PruneFiles {
    pub model: PathBuf,
    /// Masks of an earlier round: weights they prune stay pruned.
    pub masks: Option<PathBuf>,
    pub output: PathBuf,
    pub masks_out: Option<PathBuf>,
    pub compact: Option<PathBuf>,
    pub verify: bool,
}

impl PruneFiles {
    fn outputs(&self) -> Outputs<'_> {
        Outputs { model: &self.output, masks: self.masks_out.as_deref(), compact: self.compact.as_deref() }
    }
}

#[derive(Serialize)]
pub struct PruneOutput {
    pub model: PathBuf,
    pub output: PathBuf,
    pub prune: PruneReport,
    pub sizes: Sizes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<Vec<OutputDiff>>,
}

#[derive(Serialize)]
pub struct ChannelOutput {
    pub model: PathBuf,
    pub output: PathBuf,
    pub structure: &'static str,
    pub prune: ChannelReport,
    pub sizes: Sizes,
    /// ONNX Runtime: the output against the input model with the removed channels zeroed (same function).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<Vec<OutputDiff>>,
}

/// Magnitude masks: the user's graph with pruned initializers set to zero.
pub fn prune_weights(files: &PruneFiles, params: PruneParams) -> Result<PruneOutput> {
    let valid = params.check()?;
    let mut m = import_masked(&files.model, files.masks.as_deref())?;
    let report = crate::prune::prune(&mut m.state, &valid)?;
    let verify = if files.verify { Verify::Masked } else { Verify::No };
    let done = export(&m.state, files.outputs(), &m.input_paths(), verify)?;
    Ok(PruneOutput { model: files.model.clone(), output: files.output.clone(), prune: report, sizes: done.sizes, verify: done.verify })
}

/// A channel ticket: the user's graph with whole channels removed from its initializers. `weight_only` are the
/// weight-pruning settings as given: those a channel ticket has no use for are refused, not ignored.
pub fn prune_channels(files: &PruneFiles, params: ChannelParams, weight_only: &PruneParams) -> Result<ChannelOutput> {
    let unused = [
        (weight_only.rounds != 1 || weight_only.round != 1, "rounds", "`rounds`/`round`"),
        (weight_only.include_bias, "include_bias", "`include_bias`"),
        (weight_only.min_layer_density.is_some(), "min_layer_density", "`min_layer_density`"),
    ];
    if let Some((_, setting, named)) = unused.iter().find(|(set, ..)| *set) {
        return Err(Error::setting(setting, format!("{named} applies to `structure` weight, not to `structure` channel")));
    }
    let valid = params.check()?;
    let m = import_masked(&files.model, files.masks.as_deref())?;
    let (ticket, report) = crate::prune::channel::prune_channels(&m.state, valid.params())?;
    let zeroed = files.verify.then(|| crate::prune::channel::zero_channels(&m.state, &report.groups)).transpose()?;
    let verify = zeroed.as_ref().map_or(Verify::No, Verify::Zeroed);
    let done = export(&ticket, files.outputs(), &m.input_paths(), verify)?;
    Ok(ChannelOutput {
        model: files.model.clone(),
        output: files.output.clone(),
        structure: "channel",
        prune: report,
        sizes: done.sizes,
        verify: done.verify,
    })
}
