//! The training core: one ONNX graph per fixed shape (batch, canvas, RoI counts) that takes images and
//! precomputed targets and returns torchvision's loss terms, for ONNX Runtime training (docs/engine-facts.md).
//!
//! Everything data dependent happens outside, in Rust: anchors, matching, sampling, proposals, RoIAlign sampling
//! positions (as taps into a feature table) and mask/keypoint targets. The graph holds only differentiable
//! arithmetic that ORT 1.19 can take gradients of on CPU: no RoiAlign, GridSample, Einsum, Softplus, Resize or
//! ConvTranspose (the network goes through `net`, which emits exact substitutes), and no comparison on a value
//! that depends on a parameter.
//!
//! Losses are torchvision 0.23's, with padding rows (weight 0) leaving every term unchanged:
//! - RPN: BCE-with-logits mean over sampled anchors (label ≥ 0); smooth-L1 (β = 1/9) summed over positive
//!   anchors (label 1), divided by the number sampled (`RegionProposalNetwork.compute_loss`).
//! - Box head: cross-entropy mean over real RoIs; smooth-L1 (β = 1/9) of the deltas of the RoI's own class,
//!   summed over positive RoIs, divided by the number of real RoIs (`fastrcnn_loss`).
//! - Mask head: BCE-with-logits of the label's channel, mean over real mask RoIs × 28 × 28 (`maskrcnn_loss`).
//! - Keypoint head: cross-entropy over the flattened 56 × 56 heatmap, mean over valid keypoints
//!   (`keypointrcnn_loss`).
//!
//! Where torchvision would divide by zero (nothing sampled) a term is 0.
use super::builder::{Attr, GraphBuilder};
use super::net::{Constants, Net, Params, V};
use crate::error::{Error, Result};
use crate::imaging::roi::{BOX_OUTPUT_SIZE, MASK_OUTPUT_SIZE, SAMPLING_RATIO};
use crate::imaging::Hw;
use crate::model::{ModelKind, ModelState, Role};
use crate::onnx::proto::{tensor_proto::DataType, ModelProto};
use serde::Serialize;
use std::collections::HashMap;

/// Taps per RoIAlign bin: four bilinear neighbours of each of `SAMPLING_RATIO²` samples.
pub const TAPS: usize = 4 * SAMPLING_RATIO * SAMPLING_RATIO;
/// torchvision's smooth-L1 β for both the RPN and the box head.
pub const SMOOTH_L1_BETA: f32 = 1.0 / 9.0;

/// The fixed shapes of one training step; one ORT artifact set is generated per value (docs/engine-facts.md: shapes must
/// be static). RoI counts are per image; unused rows are padding with weight 0.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct TrainShape {
    pub batch: usize,
    /// Padded canvas, multiples of 32 (the FPN's nearest upsampling is exact only there).
    pub height: usize,
    pub width: usize,
    /// Box-head RoIs per image (torchvision samples 512).
    pub rois_per_image: usize,
    /// Mask-head RoIs (the positive box RoIs) per image; ignored without a mask head.
    pub mask_rois_per_image: usize,
    /// Keypoint-head RoIs (the positive box RoIs) per image; ignored without a keypoint head.
    pub keypoint_rois_per_image: usize,
}

/// What is trained.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainOptions {
    /// torchvision's `trainable_backbone_layers` (0..=5): the last this many of layer4, layer3, layer2,
    /// layer1, conv1 train; the rest of the ResNet body is frozen. torchvision's default with a pretrained
    /// backbone is 3.
    pub trainable_layers: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { trainable_layers: 3 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ElemType {
    F32,
    I64,
}

/// A graph input: name, element type and static shape.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorSpec {
    pub name: String,
    pub elem: ElemType,
    pub shape: Vec<usize>,
}

/// A training core and what ORT's artifact generator needs to know about it.
#[derive(Clone, Debug)]
pub struct TrainGraph {
    pub model: ModelProto,
    /// Parameters that get gradients (`requires_grad`).
    pub trainable: Vec<String>,
    /// Parameters kept fixed: every pruning mask (`<weight>.mask`) and the backbone parameters outside
    /// `trainable_layers`. FrozenBatchNorm affine tensors are plain constants of the graph.
    pub frozen: Vec<String>,
    pub inputs: Vec<TensorSpec>,
    /// `loss` (the sum of the terms) first, then the terms in torchvision's order.
    pub outputs: Vec<String>,
    /// The forward nodes of each part of the network, in graph order (backbone, FPN, RPN head, RPN losses, box
    /// RoIAlign, box head, box losses, and the mask or keypoint head's three): what a profile of a step is
    /// attributed to (ORT names a gradient node after the forward node it differentiates).
    pub parts: Vec<(String, Vec<String>)>,
    /// Feature-map sizes of P2..P5 and the pool level: what anchors and RoIAlign taps are built for.
    pub feature_hw: Vec<Hw>,
}

impl TrainGraph {
    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|i| i.name == name)
    }
}

/// Parameters as ORT training wants them: each trainable tensor is an initializer named as in torchvision,
/// and each prunable weight enters as `W · M` with `M` a frozen initializer `<name>.mask` (ones where the
/// model has no mask), so that new masks are written into the checkpoint between rounds without new artifacts.
/// W is stored already multiplied by M (docs/engine-facts.md: W itself is not zeroed by training where M = 0).
pub struct Masked<'a> {
    state: &'a ModelState,
    trainable_layers: usize,
    values: HashMap<String, String>,
    pub trainable: Vec<String>,
    pub frozen: Vec<String>,
}

impl<'a> Masked<'a> {
    pub fn new(state: &'a ModelState, options: &TrainOptions) -> Self {
        Masked { state, trainable_layers: options.trainable_layers, values: HashMap::new(), trainable: vec![], frozen: vec![] }
    }

    /// torchvision's `_resnet_fpn_extractor`: a body parameter trains when its name starts with one of the
    /// last `trainable_layers` of layer4, layer3, layer2, layer1, conv1 (plus bn1 when all five train).
    pub fn trains(&self, name: &str) -> bool {
        let Some(rest) = name.strip_prefix("backbone.body.") else { return true };
        let mut layers = ["layer4", "layer3", "layer2", "layer1", "conv1"][..self.trainable_layers.min(5)].to_vec();
        if self.trainable_layers >= 5 {
            layers.push("bn1");
        }
        layers.iter().any(|l| rest.starts_with(l))
    }
}

impl Params for Masked<'_> {
    fn has(&self, name: &str) -> bool {
        self.state.weights.get(name).is_some() || self.state.buffers.contains_key(name)
    }

    fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Constants(self.state).shape(name)
    }

    fn param(&mut self, b: &mut GraphBuilder, name: &str) -> Result<String> {
        if let Some(v) = self.values.get(name) {
            return Ok(v.clone());
        }
        let value = match self.state.weights.get(name) {
            Some(w) => {
                let trains = self.trains(name);
                let list = if trains { &mut self.trainable } else { &mut self.frozen };
                list.push(name.to_string());
                if w.role == Role::Weight {
                    let keep: Vec<f32> = match self.state.masks.map.get(name) {
                        Some(m) if m.shape == w.shape => m.keep.iter().map(|&k| k as f32).collect(),
                        Some(m) => {
                            return Err(Error::input(
                                self.state.path(),
                                format!("mask '{name}' has shape {:?}, the parameter has {:?}", m.shape, w.shape),
                            ))
                        }
                        None => vec![1.0; w.values.len()],
                    };
                    let masked: Vec<f32> = w.values.dense().iter().zip(&keep).map(|(v, m)| if *m == 0.0 { 0.0 } else { *v }).collect();
                    let mask_name = format!("{name}.mask");
                    let wi = b.f32_init(name, &w.shape, &masked);
                    let mi = b.f32_init(&mask_name, &w.shape, &keep);
                    self.frozen.push(mask_name);
                    b.node("Mul", &[&wi, &mi], &format!("{name}/masked"), vec![])
                } else {
                    b.f32_init(name, &w.shape, &w.values.dense())
                }
            }
            // Folded FrozenBatchNorm scale/shift: constants, as in torchvision (buffers, never trained).
            None => Constants(self.state).param(b, name)?,
        };
        self.values.insert(name.to_string(), value.clone());
        Ok(value)
    }
}

/// Emits the training core of a Faster, Mask or Keypoint R-CNN with FPN.
///
/// Inputs (N = batch·rois_per_image, Pm = batch·mask_rois_per_image, Pk = batch·keypoint_rois_per_image,
/// A = all anchors of an image in torchvision's order level, y, x, anchor; T = [`TAPS`]; rows of RoI inputs are
/// image-major):
/// - `images [B,3,H,W]` normalised, padded canvas;
/// - `rpn_labels [B,A]` f32: 1 sampled positive, 0 sampled negative, −1 not sampled;
///   `rpn_bbox_targets [B,A,4]` (BoxCoder (1,1,1,1) codes; read only where the label is 1);
/// - `box_idx [N,49,T]` i64, `box_w [N,49,T]`: RoIAlign taps into the feature table (rows of P2..P5,
///   [`crate::detect::roi_align::feature_table`] order); `roi_labels [N]` i64 (a valid class also on padding
///   rows), `roi_bbox_targets [N,4]` (BoxCoder (10,10,5,5)), `roi_weights [N]` (1 real, 0 padding);
/// - with a mask head: `mask_idx [Pm,196,T]`, `mask_w`, `mask_labels [Pm]` i64, `mask_targets [Pm,28,28]`,
///   `mask_weights [Pm]`;
/// - with a keypoint head: `kp_idx [Pk,196,T]`, `kp_w`, `kp_targets [Pk,K]` i64 (flat index into the 56×56
///   heatmap, any valid index where not visible), `kp_valid [Pk,K]` f32 (1 counts, 0 ignored/padding).
///
/// Outputs: `loss`, `loss_objectness`, `loss_rpn_box_reg`, `loss_classifier`, `loss_box_reg`, then
/// `loss_mask` and/or `loss_keypoint`; all f32 scalars.
pub fn training_graph(state: &ModelState, shape: &TrainShape, options: &TrainOptions) -> Result<TrainGraph> {
    check(state, shape, options)?;
    let backbone = state.arch.backbone.as_ref().expect("checked");
    let (bsz, h, w) = (shape.batch, shape.height, shape.width);
    let mut core = Core {
        b: GraphBuilder::new("ticket_training_core"),
        p: Masked::new(state, options),
        inputs: vec![],
        losses: vec![],
        marks: vec![],
    };

    let images = core.input("images", ElemType::F32, &[bsz, 3, h, w]);
    core.mark("backbone");
    let c = core.net().resnet(&V { name: images, shape: [bsz, 3, h, w] }, "backbone.body.", backbone.block, &backbone.blocks_per_stage)?;
    core.mark("FPN");
    let feats = core.net().fpn(&c)?;
    core.mark("RPN head");
    let heads = feats.iter().map(|f| core.net().rpn_head(f)).collect::<Result<Vec<_>>>()?;
    core.mark("RPN losses");
    core.rpn_losses(&heads)?;
    core.mark("box RoIAlign");
    let table = core.feature_table(&feats[..4]);
    let fpn_c = feats[0].shape[1];
    core.box_losses(&table, bsz * shape.rois_per_image, fpn_c)?;
    match state.arch.kind {
        ModelKind::MaskRcnn => core.mask_loss(&table, bsz * shape.mask_rois_per_image, fpn_c)?,
        ModelKind::KeypointRcnn => core.keypoint_loss(&table, bsz * shape.keypoint_rois_per_image, fpn_c)?,
        _ => {}
    }

    core.mark("loss sum");
    let Core { mut b, p, inputs, mut losses, marks } = core;
    let mut g = Ops(&mut b);
    let mut total = losses[0].0.clone();
    for (v, _) in &losses[1..] {
        total = g.op("Add", &[&total, v]);
    }
    losses.insert(0, (total, "loss".into()));
    for (v, name) in &losses {
        b.typed_output(v, name, DataType::Float, &[]);
    }
    let parts = marks
        .iter()
        .enumerate()
        .map(|(i, (name, start))| {
            let end = marks.get(i + 1).map_or(b.node_count(), |m| m.1);
            (name.clone(), b.node_names(*start..end))
        })
        .collect();
    Ok(TrainGraph {
        parts,
        model: b.finish(),
        trainable: p.trainable,
        frozen: p.frozen,
        inputs,
        outputs: losses.into_iter().map(|(_, n)| n).collect(),
        feature_hw: feats.iter().map(|f| (f.shape[2], f.shape[3])).collect(),
    })
}

/// The graph under construction: builder, parameters, declared inputs and loss terms (value, output name).
struct Core<'a> {
    b: GraphBuilder,
    p: Masked<'a>,
    inputs: Vec<TensorSpec>,
    losses: Vec<(String, String)>,
    /// (part, index of its first node): see [`TrainGraph::parts`].
    marks: Vec<(String, usize)>,
}

impl<'a> Core<'a> {
    /// The nodes added from here on belong to `part`.
    fn mark(&mut self, part: &str) {
        self.marks.push((part.to_string(), self.b.node_count()));
    }

    fn input(&mut self, name: &str, elem: ElemType, dims: &[usize]) -> String {
        let dt = match elem {
            ElemType::F32 => DataType::Float,
            ElemType::I64 => DataType::Int64,
        };
        self.inputs.push(TensorSpec { name: name.to_string(), elem, shape: dims.to_vec() });
        self.b.typed_input(name, dt, &dims.iter().map(|&d| d as i64).collect::<Vec<_>>())
    }

    fn net(&mut self) -> Net<'_, Masked<'a>> {
        Net { b: &mut self.b, p: &mut self.p }
    }

    fn ops(&mut self) -> Ops<'_> {
        Ops(&mut self.b)
    }

    /// `Σ rows / denominator` as the loss term `name`.
    fn term(&mut self, sum: &str, denominator: &str, name: &str) {
        let v = self.ops().op("Div", &[sum, denominator]);
        self.losses.push((v, name.to_string()));
    }

    /// `loss_objectness` and `loss_rpn_box_reg` from the per-level head outputs, flattened in torchvision's
    /// `concat_box_prediction_layers` order (image, level, y, x, anchor).
    fn rpn_losses(&mut self, heads: &[(V, V)]) -> Result<()> {
        let a = self.p.shape("rpn.head.cls_logits.weight")?[0] as i64;
        let bs = heads[0].0.shape[0] as i64;
        let anchors: i64 = heads.iter().map(|(o, _)| (o.shape[2] * o.shape[3]) as i64 * a).sum();
        let mut g = self.ops();
        let (mut obj, mut del) = (Vec::new(), Vec::new());
        for (o, d) in heads {
            let (fh, fw) = (o.shape[2] as i64, o.shape[3] as i64);
            let t = g.transpose(&o.name, &[0, 2, 3, 1]);
            obj.push(g.reshape(&t, &[bs, fh * fw * a]));
            let r = g.reshape(&d.name, &[bs, a, 4, fh, fw]);
            let t = g.transpose(&r, &[0, 3, 4, 1, 2]);
            del.push(g.reshape(&t, &[bs, fh * fw * a, 4]));
        }
        let obj = g.concat(&obj, 1);
        let obj = g.reshape(&obj, &[bs * anchors]);
        let del = g.concat(&del, 1);
        let del = g.reshape(&del, &[bs * anchors, 4]);
        let labels = self.input("rpn_labels", ElemType::F32, &[bs as usize, anchors as usize]);
        let targets = self.input("rpn_bbox_targets", ElemType::F32, &[bs as usize, anchors as usize, 4]);

        let mut g = self.ops();
        let labels = g.reshape(&labels, &[bs * anchors]);
        let (zero, one) = (g.scalar(0.0), g.scalar(1.0));
        let sampled = g.op("GreaterOrEqual", &[&labels, &zero]);
        let sampled = g.cast_f32(&sampled);
        let positive = g.op("Equal", &[&labels, &one]);
        let positive = g.cast_f32(&positive);
        let n_sampled = g.count(&sampled);
        let bce = g.bce_with_logits(&obj, &labels);
        let objectness = g.weighted_sum(&bce, &sampled);
        let targets = g.reshape(&targets, &[bs * anchors, 4]);
        let diff = g.op("Sub", &[&del, &targets]);
        let l1 = g.smooth_l1(&diff, SMOOTH_L1_BETA);
        let l1 = g.sum_axis(&l1, 1);
        let box_reg = g.weighted_sum(&l1, &positive);
        self.term(&objectness, &n_sampled, "loss_objectness");
        self.term(&box_reg, &n_sampled, "loss_rpn_box_reg");
        Ok(())
    }

    /// RoIAlign's feature table: P2..P5 as rows [B·h·w, C], in `detect::roi_align::feature_table` order.
    fn feature_table(&mut self, levels: &[V]) -> String {
        let mut g = self.ops();
        let rows: Vec<String> = levels
            .iter()
            .map(|f| {
                let [b, c, h, w] = f.shape;
                let t = g.transpose(&f.name, &[0, 2, 3, 1]);
                g.reshape(&t, &[(b * h * w) as i64, c as i64])
            })
            .collect();
        g.concat(&rows, 0)
    }

    /// `loss_classifier` and `loss_box_reg` on `rows` RoIs.
    fn box_losses(&mut self, table: &str, rows: usize, c: usize) -> Result<()> {
        let pooled = self.pooled_rois("box", table, rows, c, BOX_OUTPUT_SIZE);
        let labels = self.input("roi_labels", ElemType::I64, &[rows]);
        let targets = self.input("roi_bbox_targets", ElemType::F32, &[rows, 4]);
        let weights = self.input("roi_weights", ElemType::F32, &[rows]);
        self.mark("box head");
        let (cls, deltas) = self.net().box_head(&pooled)?;
        self.mark("box losses");
        let classes = self.p.shape("roi_heads.box_predictor.cls_score.weight")?[0] as i64;

        let mut g = self.ops();
        let n_rois = g.count(&weights);
        let ce = g.cross_entropy(&cls, &labels);
        let classifier = g.weighted_sum(&ce, &weights);
        let d = g.reshape(&deltas, &[rows as i64, classes, 4]);
        let own = g.select_class(&d, &labels, rows, 4);
        let own = g.reshape(&own, &[rows as i64, 4]);
        let diff = g.op("Sub", &[&own, &targets]);
        let l1 = g.smooth_l1(&diff, SMOOTH_L1_BETA);
        let l1 = g.sum_axis(&l1, 1);
        let background = g.0.i64_tensor(&[], &[0]);
        let fg = g.op("Greater", &[&labels, &background]);
        let fg = g.cast_f32(&fg);
        let pos_w = g.op("Mul", &[&fg, &weights]);
        let box_reg = g.weighted_sum(&l1, &pos_w);
        self.term(&classifier, &n_rois, "loss_classifier");
        self.term(&box_reg, &n_rois, "loss_box_reg");
        Ok(())
    }

    /// RoIAlign of `rows` RoIs as Gather taps into the feature table: inputs `{prefix}_idx` and `{prefix}_w`
    /// ([rows, size², TAPS], computed in Rust), output [rows, C, size, size].
    fn pooled_rois(&mut self, prefix: &str, table: &str, rows: usize, c: usize, size: usize) -> V {
        let bins = size * size;
        let idx = self.input(&format!("{prefix}_idx"), ElemType::I64, &[rows, bins, TAPS]);
        let w = self.input(&format!("{prefix}_w"), ElemType::F32, &[rows, bins, TAPS]);
        self.ops().pool(table, &idx, &w, rows, c, size)
    }

    /// `loss_mask` on `rows` mask RoIs.
    fn mask_loss(&mut self, table: &str, rows: usize, c: usize) -> Result<()> {
        self.mark("mask RoIAlign");
        let pooled = self.pooled_rois("mask", table, rows, c, MASK_OUTPUT_SIZE);
        self.mark("mask head");
        let logits = self.net().mask_head(&pooled)?;
        self.mark("mask loss");
        let [_, k, mh, mw] = logits.shape;
        let labels = self.input("mask_labels", ElemType::I64, &[rows]);
        let targets = self.input("mask_targets", ElemType::F32, &[rows, mh, mw]);
        let weights = self.input("mask_weights", ElemType::F32, &[rows]);

        let mut g = self.ops();
        let pixels = (mh * mw) as i64;
        let l = g.reshape(&logits.name, &[rows as i64, k as i64, pixels]);
        let own = g.select_class(&l, &labels, rows, mh * mw);
        let own = g.reshape(&own, &[rows as i64, pixels]);
        let z = g.reshape(&targets, &[rows as i64, pixels]);
        let bce = g.bce_with_logits(&own, &z);
        let bce = g.sum_axis(&bce, 1);
        let sum = g.weighted_sum(&bce, &weights);
        let count = g.count(&weights);
        let px = g.scalar(pixels as f32);
        let denominator = g.op("Mul", &[&count, &px]);
        self.term(&sum, &denominator, "loss_mask");
        Ok(())
    }

    /// `loss_keypoint` on `rows` keypoint RoIs.
    fn keypoint_loss(&mut self, table: &str, rows: usize, c: usize) -> Result<()> {
        self.mark("keypoint RoIAlign");
        let pooled = self.pooled_rois("kp", table, rows, c, MASK_OUTPUT_SIZE);
        self.mark("keypoint head");
        let heatmaps = self.net().keypoint_head(&pooled)?;
        self.mark("keypoint loss");
        let [_, k, hh, hw] = heatmaps.shape;
        let targets = self.input("kp_targets", ElemType::I64, &[rows, k]);
        let valid = self.input("kp_valid", ElemType::F32, &[rows, k]);

        let mut g = self.ops();
        let n = (rows * k) as i64;
        let logits = g.reshape(&heatmaps.name, &[n, (hh * hw) as i64]);
        let t = g.reshape(&targets, &[n]);
        let v = g.reshape(&valid, &[n]);
        let ce = g.cross_entropy(&logits, &t);
        let sum = g.weighted_sum(&ce, &v);
        let count = g.count(&v);
        self.term(&sum, &count, "loss_keypoint");
        Ok(())
    }
}

fn check(state: &ModelState, shape: &TrainShape, options: &TrainOptions) -> Result<()> {
    let bad = |msg: String| Err(Error::input(state.path(), msg));
    if !state.arch.kind.is_detector() || state.arch.backbone.is_none() || state.arch.fpn_channels.is_none() {
        return bad(format!("a training graph needs a torchvision R-CNN with a ResNet-FPN backbone; this is a {}", state.arch.summary()));
    }
    if shape.batch == 0 || shape.height == 0 || shape.width == 0 || !shape.height.is_multiple_of(32) || !shape.width.is_multiple_of(32) {
        return Err(Error::Input(format!(
            "training shape: batch must be ≥ 1 and the canvas {}×{} a positive multiple of 32",
            shape.height, shape.width
        )));
    }
    if shape.rois_per_image == 0 {
        return Err(Error::Input("training shape: rois_per_image must be ≥ 1".into()));
    }
    if state.arch.kind == ModelKind::MaskRcnn && shape.mask_rois_per_image == 0 {
        return Err(Error::Input("training shape: a Mask R-CNN needs mask_rois_per_image ≥ 1".into()));
    }
    if state.arch.kind == ModelKind::KeypointRcnn && shape.keypoint_rois_per_image == 0 {
        return Err(Error::Input("training shape: a Keypoint R-CNN needs keypoint_rois_per_image ≥ 1".into()));
    }
    if options.trainable_layers > 5 {
        return Err(Error::Input(format!("trainable_layers is {}; torchvision allows 0..=5", options.trainable_layers)));
    }
    Ok(())
}

/// Loss arithmetic on a builder.
struct Ops<'a>(&'a mut GraphBuilder);

impl Ops<'_> {
    fn op(&mut self, op: &str, inputs: &[&str]) -> String {
        self.0.node(op, inputs, "", vec![])
    }

    fn scalar(&mut self, v: f32) -> String {
        self.0.f32_const("scalar", &[], &[v])
    }

    fn reshape(&mut self, x: &str, shape: &[i64]) -> String {
        let s = self.0.i64_const(shape);
        self.0.node("Reshape", &[x, &s], "", vec![])
    }

    fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.0.node("Transpose", &[x], "", vec![("perm", Attr::Ints(perm.to_vec()))])
    }

    fn concat(&mut self, xs: &[String], axis: i64) -> String {
        let refs: Vec<&str> = xs.iter().map(String::as_str).collect();
        self.0.node("Concat", &refs, "", vec![("axis", Attr::Int(axis))])
    }

    fn cast_f32(&mut self, x: &str) -> String {
        self.0.node("Cast", &[x], "", vec![("to", Attr::Int(DataType::Float as i64))])
    }

    fn sum_axis(&mut self, x: &str, axis: i64) -> String {
        let axes = self.0.i64_const(&[axis]);
        self.0.node("ReduceSum", &[x, &axes], "", vec![("keepdims", Attr::Int(0))])
    }

    /// `Σ term·w` over the rows with `w > 0`: rows of weight 0 contribute exactly nothing, whatever their term
    /// holds (padding rows, ignored anchors).
    fn weighted_sum(&mut self, term: &str, w: &str) -> String {
        let zero = self.scalar(0.0);
        let keep = self.op("Greater", &[w, &zero]);
        let prod = self.op("Mul", &[term, w]);
        let kept = self.op("Where", &[&keep, &prod, &zero]);
        self.0.node("ReduceSum", &[&kept], "", vec![("keepdims", Attr::Int(0))])
    }

    /// `max(Σ w, 1)`: the number of counted rows, 1 when there are none (the term is then 0, not NaN).
    fn count(&mut self, w: &str) -> String {
        let s = self.0.node("ReduceSum", &[w], "", vec![("keepdims", Attr::Int(0))]);
        let one = self.scalar(1.0);
        self.op("Max", &[&s, &one])
    }

    /// Stable BCE with logits, element-wise: `relu(x) − x·z + log(1 + exp(−|x|))` (no Softplus: ORT has no
    /// gradient for it).
    fn bce_with_logits(&mut self, x: &str, z: &str) -> String {
        let relu = self.op("Relu", &[x]);
        let xz = self.op("Mul", &[x, z]);
        let abs = self.op("Abs", &[x]);
        let neg = self.op("Neg", &[&abs]);
        let exp = self.op("Exp", &[&neg]);
        let one = self.scalar(1.0);
        let sum = self.op("Add", &[&exp, &one]);
        let log = self.op("Log", &[&sum]);
        let a = self.op("Sub", &[&relu, &xz]);
        self.op("Add", &[&a, &log])
    }

    /// Smooth-L1 element-wise: with n = |d| and m = min(n, β), `0.5·m²/β + (n − m)`, which is torch's
    /// `0.5·n²/β` below β and `n − 0.5·β` above, written with Clip so no comparison sits on a parameter's path.
    fn smooth_l1(&mut self, diff: &str, beta: f32) -> String {
        let n = self.op("Abs", &[diff]);
        let lo = self.scalar(0.0);
        let hi = self.scalar(beta);
        let m = self.op("Clip", &[&n, &lo, &hi]);
        let m2 = self.op("Mul", &[&m, &m]);
        let k = self.scalar(0.5 / beta);
        let quad = self.op("Mul", &[&m2, &k]);
        let lin = self.op("Sub", &[&n, &m]);
        self.op("Add", &[&quad, &lin])
    }

    /// Per-row cross-entropy of logits `[R, C]` against class indices `[R]`.
    fn cross_entropy(&mut self, logits: &str, labels: &str) -> String {
        self.0.node("SoftmaxCrossEntropyLoss", &[logits, labels], "", vec![("reduction", Attr::Str("none"))])
    }

    /// `x[r, label[r], :]` of `x [R, K, D]` as `[R, 1, D]` (GatherElements, which has a gradient).
    fn select_class(&mut self, x: &str, labels: &str, rows: usize, d: usize) -> String {
        let l = self.reshape(labels, &[rows as i64, 1, 1]);
        let shape = self.0.i64_const(&[rows as i64, 1, d as i64]);
        let index = self.op("Expand", &[&l, &shape]);
        self.0.node("GatherElements", &[x, &index], "", vec![("axis", Attr::Int(1))])
    }

    /// RoIAlign as Gather + weighted sum (docs/engine-facts.md): `pooled[r, c, bin] = Σ_t w[r, bin, t] · table[idx[r, bin,
    /// t], c]`, returned as `[rows, C, side, side]`.
    fn pool(&mut self, table: &str, idx: &str, w: &str, rows: usize, c: usize, side: usize) -> V {
        let bins = (side * side) as i64;
        let (r, taps) = (rows as i64, TAPS as i64);
        // GatherND, not Gather: ORT 1.19's CPU GatherGrad takes one global mutex per element (two thirds of a Mask
        // R-CNN step at 128², measured); GatherNDGrad is a plain accumulation loop.
        let idx = self.reshape(idx, &[r, bins, taps, 1]);
        let gathered = self.0.node("GatherND", &[table, &idx], "", vec![]); // [R, bins, T, C]
        let w = self.reshape(w, &[r, bins, 1, taps]);
        let pooled = self.op("MatMul", &[&w, &gathered]); // [R, bins, 1, C]
        let pooled = self.reshape(&pooled, &[r, bins, c as i64]);
        let pooled = self.transpose(&pooled, &[0, 2, 1]);
        V { name: self.reshape(&pooled, &[r, c as i64, side as i64, side as i64]), shape: [rows, c, side, side] }
    }
}
