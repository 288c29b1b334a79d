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
use super::builder::GraphBuilder;
use super::distill::{self, Distill, Student};
use super::loss_ops::Ops;
use super::net::{Constants, Net, Params, V};
use super::roi_pool::RoiFeatures;
pub use super::train_shape::{TrainShape, SMOOTH_L1_BETA, TAPS};
use crate::error::{Error, Result};
use crate::imaging::roi::{BOX_OUTPUT_SIZE, MASK_OUTPUT_SIZE};
use crate::imaging::Hw;
use crate::model::{ModelKind, ModelState, Role};
use crate::onnx::proto::{tensor_proto::DataType, ModelProto};
use serde::Serialize;
use std::collections::HashMap;

/// What is trained.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainOptions {
    /// torchvision's `trainable_backbone_layers` (0..=5): the last this many of layer4, layer3, layer2,
    /// layer1, conv1 train; the rest of the ResNet body is frozen. torchvision's default with a pretrained
    /// backbone is 3.
    pub trainable_layers: usize,
    /// Distillation terms and their teacher's width (`graph::distill`); none by default.
    pub distill: Option<Distill>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { trainable_layers: 3, distill: None }
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
/// - the box RoIAlign's inputs ([`TrainShape::pool_inputs`] for `box`, 7×7 bins): on a large canvas taps into
///   the feature table, `box_idx [N,49,T]` i64 and `box_w [N,49,T]` (rows of P2..P5,
///   [`crate::detect::roi_align::feature_table`] order); on a small one interpolation matrices per level l,
///   `box_wy{l} [B,R·7,H_l]` and `box_wx{l} [N,1,7,W_l]` (`crate::detect::roi_planes`); then `roi_labels [N]`
///   i64 (a valid class also on padding rows), `roi_bbox_targets [N,4]` (BoxCoder (10,10,5,5)), `roi_weights
///   [N]` (1 real, 0 padding);
/// - with a mask head: the `mask` RoIAlign's inputs (14×14 bins), `mask_labels [Pm]` i64, `mask_targets
///   [Pm,28,28]`, `mask_weights [Pm]`;
/// - with a keypoint head: the `kp` RoIAlign's inputs (14×14 bins), `kp_targets [Pk,K]` i64 (flat index into
///   the 56×56 heatmap, any valid index where not visible), `kp_valid [Pk,K]` f32 (1 counts, 0 ignored/padding).
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
    let objectness = core.rpn_losses(&heads)?;
    core.mark("box RoIAlign");
    let pool = RoiFeatures::new(&mut core.b, &feats, shape);
    let boxes = core.box_losses(&pool, shape)?;
    let mut mask = None;
    match state.arch.kind {
        ModelKind::MaskRcnn => mask = Some(core.mask_loss(&pool, shape)?),
        ModelKind::KeypointRcnn => core.keypoint_loss(&pool, shape)?,
        _ => {}
    }
    if let Some(d) = &options.distill {
        core.mark("distillation");
        let classes = core.p.shape("roi_heads.box_predictor.cls_score.weight")?[0];
        let student = Student { feats: feats.clone(), objectness, boxes: Some(boxes), mask };
        let Core { b, inputs, losses, .. } = &mut core;
        let mut input = |b: &mut GraphBuilder, name: &str, dims: &[usize]| {
            inputs.push(TensorSpec { name: name.to_string(), elem: ElemType::F32, shape: dims.to_vec() });
            b.typed_input(name, DataType::Float, &dims.iter().map(|&d| d as i64).collect::<Vec<_>>())
        };
        losses.extend(distill::terms(b, d, &student, shape, classes, &mut input));
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
    /// `concat_box_prediction_layers` order (image, level, y, x, anchor). Returns the flattened objectness
    /// `[B·A]` and the sampled-anchor weights (1 sampled, 0 not) for the distillation terms.
    fn rpn_losses(&mut self, heads: &[(V, V)]) -> Result<(String, String, usize)> {
        let a = self.p.shape("rpn.head.cls_logits.weight")?[0] as i64;
        let bs = heads[0].0.shape[0] as i64;
        let anchors: i64 = heads.iter().map(|(o, _)| (o.shape[2] * o.shape[3]) as i64 * a).sum();
        let (obj, del) = self.ops().flatten_rpn(heads, a);
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
        Ok((obj, sampled, (bs * anchors) as usize))
    }

    /// `loss_classifier` and `loss_box_reg` on `rows` RoIs; returns the class logits and the deltas.
    fn box_losses(&mut self, pool: &RoiFeatures, shape: &TrainShape) -> Result<(String, String)> {
        let rows = shape.batch * shape.rois_per_image;
        let pooled = self.pooled_rois("box", pool, shape, shape.rois_per_image, BOX_OUTPUT_SIZE);
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
        Ok((cls, deltas))
    }

    /// RoIAlign of `per_image` RoIs per image from the inputs [`TrainShape::pool_inputs`] names for `prefix`
    /// (computed in Rust), output [rows, C, size, size].
    fn pooled_rois(&mut self, prefix: &str, pool: &RoiFeatures, shape: &TrainShape, per_image: usize, size: usize) -> V {
        let inputs: Vec<String> = shape
            .pool_inputs(prefix, per_image, size)
            .into_iter()
            .map(|(name, int, dims)| self.input(&name, if int { ElemType::I64 } else { ElemType::F32 }, &dims))
            .collect();
        pool.pool(&mut self.b, &inputs, shape.batch * per_image, size)
    }

    /// `loss_mask` on `rows` mask RoIs; returns the mask logits.
    fn mask_loss(&mut self, pool: &RoiFeatures, shape: &TrainShape) -> Result<V> {
        self.mark("mask RoIAlign");
        let rows = shape.batch * shape.mask_rois_per_image;
        let pooled = self.pooled_rois("mask", pool, shape, shape.mask_rois_per_image, MASK_OUTPUT_SIZE);
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
        Ok(logits)
    }

    /// `loss_keypoint` on `rows` keypoint RoIs.
    fn keypoint_loss(&mut self, pool: &RoiFeatures, shape: &TrainShape) -> Result<()> {
        self.mark("keypoint RoIAlign");
        let rows = shape.batch * shape.keypoint_rois_per_image;
        let pooled = self.pooled_rois("kp", pool, shape, shape.keypoint_rois_per_image, MASK_OUTPUT_SIZE);
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
