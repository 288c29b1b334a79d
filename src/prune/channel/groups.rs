//! Channel groups of a torchvision FPN detector, derived from the network description (the same torchvision
//! names `graph::net` emits from): channels that must be removed together because the graph adds, shares or
//! reshapes them (docs/engine-facts.md). A generic ONNX graph gets no groups: its coupling cannot be proven from names
//! alone, so channel pruning refuses it rather than guessing.
use crate::error::{Error, Result};
use crate::model::arch::BlockKind;
use crate::model::{ModelState, ModuleGroup};
use serde::Serialize;
use std::collections::HashMap;

/// One tensor's share of a group: along `axis`, channel c covers indices [c·block, (c+1)·block). `block` is
/// 1 except for box_head.fc6's input, which is the flattened C·7·7 RoI feature.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Slice {
    pub tensor: String,
    pub axis: usize,
    pub block: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChannelGroup {
    /// What the channels are, e.g. `backbone.body.layer2 (residual stream)`.
    pub name: String,
    pub module: ModuleGroup,
    pub channels: usize,
    /// Tensors that make the channels (out-weights, biases, FrozenBatchNorm scale/shift): zeroing these
    /// slices makes the channels exactly zero everywhere downstream.
    pub producers: Vec<Slice>,
    /// Tensors that read the channels (in-weights): removed with them.
    pub consumers: Vec<Slice>,
}

/// Accumulates slices for one group, checking each tensor exists.
struct Builder<'a> {
    state: &'a ModelState,
    group: ChannelGroup,
}

impl<'a> Builder<'a> {
    fn new(state: &'a ModelState, name: impl Into<String>, module: ModuleGroup) -> Self {
        Builder { state, group: ChannelGroup { name: name.into(), module, channels: 0, producers: vec![], consumers: vec![] } }
    }

    fn has(&self, tensor: &str) -> bool {
        self.state.weights.get(tensor).is_some() || self.state.buffers.contains_key(tensor)
    }

    /// A conv/linear layer's outputs (weight axis `axis`, bias if present).
    fn produced_by(&mut self, prefix: &str, axis: usize) -> &mut Self {
        self.group.producers.push(Slice { tensor: format!("{prefix}.weight"), axis, block: 1 });
        if self.has(&format!("{prefix}.bias")) {
            self.group.producers.push(Slice { tensor: format!("{prefix}.bias"), axis: 0, block: 1 });
        }
        self
    }

    /// torchvision's FrozenBatchNorm2d after a conv, folded by the exporter into Mul/Add constants [1, C, 1, 1].
    fn frozen_bn(&mut self, prefix: &str) -> &mut Self {
        for f in ["scale", "shift"] {
            self.group.producers.push(Slice { tensor: format!("{prefix}.{f}"), axis: 1, block: 1 });
        }
        self
    }

    fn read_by(&mut self, prefix: &str, axis: usize) -> &mut Self {
        self.group.consumers.push(Slice { tensor: format!("{prefix}.weight"), axis, block: 1 });
        self
    }

    /// Checks every slice against the model and sets the channel count; any mismatch means the model is not
    /// laid out as the description says, so nothing is pruned.
    fn finish(mut self) -> Result<ChannelGroup> {
        let state = self.state;
        let shape_of = |t: &str| -> Option<Vec<usize>> {
            state.weights.get(t).map(|w| w.shape.clone()).or_else(|| state.buffers.get(t).map(|(s, _)| s.clone()))
        };
        let first = &self.group.producers[0];
        let c = shape_of(&first.tensor)
            .and_then(|s| s.get(first.axis).copied())
            .ok_or_else(|| refuse(state, &format!("'{}' is missing", first.tensor)))?;
        for s in self.group.producers.iter_mut().chain(self.group.consumers.iter_mut()) {
            let shape = shape_of(&s.tensor).ok_or_else(|| refuse(state, &format!("'{}' is missing", s.tensor)))?;
            let n = shape.get(s.axis).copied().unwrap_or(0);
            if c == 0 || n % c != 0 {
                return Err(refuse(
                    state,
                    &format!("'{}' has shape {shape:?}, which does not match {c} channels of {}", s.tensor, self.group.name),
                ));
            }
            s.block = n / c;
        }
        self.group.channels = c;
        Ok(self.group)
    }
}

fn refuse(state: &ModelState, why: &str) -> Error {
    Error::input(state.path(), format!("channel groups cannot be derived: {why}"))
}

/// The groups of a torchvision ResNet-FPN Faster/Mask/Keypoint R-CNN, in network order. Predictor outputs
/// (class scores, box deltas, mask logits, keypoint heatmaps, RPN objectness/deltas) are never grouped: they
/// are the model's interface.
pub fn channel_groups(state: &ModelState) -> Result<Vec<ChannelGroup>> {
    let arch = &state.arch;
    let backbone = match (&arch.backbone, arch.kind.is_detector(), arch.fpn_channels) {
        (Some(b), true, Some(_)) => b,
        _ => {
            return Err(Error::setting_at(
                state.path(),
                "structure",
                format!(
                    "`structure` channel needs a torchvision ResNet-FPN Faster/Mask/Keypoint R-CNN, where the coupling of channels \
                     (residual adds, FPN top-down adds, shared heads) is known; this is a {}, whose channel coupling cannot be \
                     derived here, so no channel is removed (use `structure` weight)",
                    arch.summary()
                ),
            ))
        }
    };
    let mut groups = backbone_groups(state, backbone)?;
    let levels = backbone.blocks_per_stage.len();
    fpn_and_head_groups(state, levels, &mut groups)?;
    check_unique(state, &groups)?;
    Ok(groups)
}

/// The ResNet body: one group per residual stream (a new one at each downsample) and one per block's inner
/// channels; the FPN's lateral convs read the streams.
fn backbone_groups(state: &ModelState, backbone: &crate::model::arch::Backbone) -> Result<Vec<ChannelGroup>> {
    let body = "backbone.body";
    let base = ModuleGroup::Base;
    let mut groups = Vec::new();
    let last_conv = match backbone.block {
        BlockKind::Basic => 2,
        BlockKind::Bottleneck => 3,
    };

    // The residual stream: a stage's blocks add their last conv to the identity, so the stem (or the
    // stage's downsample) and every block's last conv/BN write the same channels; a new stream starts at
    // each downsample.
    let mut stream = Builder::new(state, format!("{body}.conv1 (stem and the residual stream it starts)"), base.clone());
    stream.produced_by(&format!("{body}.conv1"), 0).frozen_bn(&format!("{body}.bn1"));
    for (s, &blocks) in backbone.blocks_per_stage.iter().enumerate() {
        let layer = format!("{body}.layer{}", s + 1);
        for j in 0..blocks {
            let block = format!("{layer}.{j}");
            stream.read_by(&format!("{block}.conv1"), 1);
            let ds = format!("{block}.downsample");
            if stream.has(&format!("{ds}.0.weight")) {
                stream.read_by(&format!("{ds}.0"), 1);
                groups.push(
                    std::mem::replace(&mut stream, Builder::new(state, format!("{layer} (residual stream)"), base.clone())).finish()?,
                );
                stream.produced_by(&format!("{ds}.0"), 0).frozen_bn(&format!("{ds}.1"));
            }
            stream.produced_by(&format!("{block}.conv{last_conv}"), 0).frozen_bn(&format!("{block}.bn{last_conv}"));
            // Inner channels of the block are free: one conv writes them, the next reads them.
            for k in 1..last_conv {
                let mut inner = Builder::new(state, format!("{block}.conv{k} (inner)"), base.clone());
                inner
                    .produced_by(&format!("{block}.conv{k}"), 0)
                    .frozen_bn(&format!("{block}.bn{k}"))
                    .read_by(&format!("{block}.conv{}", k + 1), 1);
                groups.push(inner.finish()?);
            }
        }
        // FPN's lateral 1×1 conv of this stage reads the stream too (torchvision returns layers 1–4).
        let lateral = format!("backbone.fpn.inner_blocks.{s}.0");
        if !stream.has(&format!("{lateral}.weight")) {
            return Err(refuse(state, &format!("'{lateral}.weight' is missing: the FPN does not read every ResNet stage")));
        }
        stream.read_by(&lateral, 1);
    }
    groups.push(stream.finish()?);
    Ok(groups)
}

/// The FPN (lateral and output channels), the RPN's hidden conv, the box head's hidden units, and the mask and
/// keypoint head convs.
fn fpn_and_head_groups(state: &ModelState, levels: usize, groups: &mut Vec<ChannelGroup>) -> Result<()> {
    let fpn = ModuleGroup::Fpn;
    // Lateral outputs are added top-down (after 2× upsampling), so all levels share one set of channels.
    let mut lateral = Builder::new(state, "backbone.fpn.inner_blocks (lateral, top-down adds)", fpn.clone());
    for i in 0..levels {
        lateral.produced_by(&format!("backbone.fpn.inner_blocks.{i}.0"), 0).read_by(&format!("backbone.fpn.layer_blocks.{i}.0"), 1);
    }
    groups.push(lateral.finish()?);

    // FPN outputs feed P6 (max pool), the RPN head (shared over levels), RoIAlign and so every RoI head.
    let mut out = Builder::new(state, "backbone.fpn.layer_blocks (FPN outputs, shared by RPN and RoI heads)", fpn);
    for i in 0..levels {
        out.produced_by(&format!("backbone.fpn.layer_blocks.{i}.0"), 0);
    }
    let rpn_conv = if out.has("rpn.head.conv.0.0.weight") { "rpn.head.conv.0.0" } else { "rpn.head.conv" };
    out.read_by(rpn_conv, 1).read_by("roi_heads.box_head.fc6", 1);
    let mask_convs = numbered(state, |i| [format!("roi_heads.mask_head.{i}.0"), format!("roi_heads.mask_head.mask_fcn{}", i + 1)]);
    let keypoint_convs: Vec<String> = (0..)
        .map(|i| format!("roi_heads.keypoint_head.{}", 2 * i))
        .take_while(|p| state.weights.get(&format!("{p}.weight")).is_some())
        .collect();
    if let Some(first) = mask_convs.first() {
        out.read_by(first, 1);
    }
    if let Some(first) = keypoint_convs.first() {
        out.read_by(first, 1);
    }
    groups.push(out.finish()?);

    let mut rpn = Builder::new(state, format!("{rpn_conv} (RPN hidden)"), ModuleGroup::Rpn);
    rpn.produced_by(rpn_conv, 0).read_by("rpn.head.cls_logits", 1).read_by("rpn.head.bbox_pred", 1);
    groups.push(rpn.finish()?);

    let mut fc6 = Builder::new(state, "roi_heads.box_head.fc6 (hidden units)", ModuleGroup::BoxHead);
    fc6.produced_by("roi_heads.box_head.fc6", 0).read_by("roi_heads.box_head.fc7", 1);
    groups.push(fc6.finish()?);
    let mut fc7 = Builder::new(state, "roi_heads.box_head.fc7 (hidden units)", ModuleGroup::BoxHead);
    fc7.produced_by("roi_heads.box_head.fc7", 0)
        .read_by("roi_heads.box_predictor.cls_score", 1)
        .read_by("roi_heads.box_predictor.bbox_pred", 1);
    groups.push(fc7.finish()?);

    // Mask head convs, then the predictor's ConvTranspose (weight [Cin, Cout, 2, 2]: input on axis 0) whose
    // hidden outputs feed the 1×1 logits conv.
    chain(state, groups, &mask_convs, "roi_heads.mask_predictor.conv5_mask", ModuleGroup::MaskHead)?;
    if !mask_convs.is_empty() {
        let mut up = Builder::new(state, "roi_heads.mask_predictor.conv5_mask (hidden)", ModuleGroup::MaskHead);
        up.produced_by("roi_heads.mask_predictor.conv5_mask", 1).read_by("roi_heads.mask_predictor.mask_fcn_logits", 1);
        groups.push(up.finish()?);
    }
    // Keypoint head convs; the predictor's ConvTranspose makes the heatmaps, which stay.
    chain(state, groups, &keypoint_convs, "roi_heads.keypoint_predictor.kps_score_lowres", ModuleGroup::KeypointHead)
}

/// Layers named by `names(i)` (either spelling) for i = 0, 1, ... while one exists.
fn numbered(state: &ModelState, names: impl Fn(usize) -> [String; 2]) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0.. {
        match names(i).into_iter().find(|p| state.weights.get(&format!("{p}.weight")).is_some()) {
            Some(p) => out.push(p),
            None => break,
        }
    }
    out
}

/// A chain of convs: each one's outputs are read by the next; the last one's by `then` (a ConvTranspose whose
/// input channels are its weight's axis 0).
fn chain(state: &ModelState, groups: &mut Vec<ChannelGroup>, convs: &[String], then: &str, module: ModuleGroup) -> Result<()> {
    for (i, conv) in convs.iter().enumerate() {
        let mut g = Builder::new(state, format!("{conv} (hidden)"), module.clone());
        g.produced_by(conv, 0);
        match convs.get(i + 1) {
            Some(next) => g.read_by(next, 1),
            None => g.read_by(then, 0),
        };
        groups.push(g.finish()?);
    }
    Ok(())
}

/// Every (tensor, axis) belongs to one group at most: a tensor shared where the description has two (an
/// exporter that deduplicated identical constants) cannot be cut two ways.
fn check_unique(state: &ModelState, groups: &[ChannelGroup]) -> Result<()> {
    let mut seen: HashMap<(String, usize), &str> = HashMap::new();
    let inits = super::shrink::initializer_names(state);
    for g in groups {
        for s in g.producers.iter().chain(&g.consumers) {
            let init = inits.get(&s.tensor).cloned().unwrap_or_else(|| s.tensor.clone());
            if let Some(other) = seen.insert((init.clone(), s.axis), &g.name) {
                return Err(refuse(state, &format!("initializer '{init}' ('{}') is shared by '{other}' and '{}'", s.tensor, g.name)));
            }
        }
    }
    Ok(())
}
