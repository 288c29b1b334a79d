//! Distillation from a dense teacher: the teacher's forward graph (its signals on a training batch) and the loss
//! terms the training core adds when it distils.
//!
//! The teacher runs outside the core, on the same batch and the student's sampled RoIs (the same RoIAlign inputs),
//! and its outputs enter the core as inputs, so the core differentiates only the student:
//! - `teacher_fpn_{l}` `[B, Ct, h, w]`: the FPN outputs P2..P6;
//! - `teacher_objectness` `[B·A]`: RPN objectness logits in the core's anchor order;
//! - `teacher_cls` `[N, C]`, `teacher_deltas` `[N, 4C]`: the box head on the student's box RoIs;
//! - `teacher_mask` `[Pm, K, 28, 28]`: the mask head on the student's mask RoIs (Mask R-CNN).
//!
//! Each term is `weight ·` what follows (the reference in tools/distill_reference.py computes the same):
//! - `loss_distill_features` (PKD, Cao et al. 2022): per level, both maps normalised per channel over batch and
//!   space, `(x − μ)/√(σ² + ε)` (σ² unbiased, ε = 1e-6: finite gradients where a pruned channel is constant), then
//!   `mean((ŝ − t̂)²)/2`, summed over the levels. Where the student's FPN is narrower than the teacher's (a channel
//!   ticket) the channels no longer correspond, so each map is first reduced to its spatial attention
//!   `mean_c x²` (Zagoruyko & Komodakis 2017) and the same normalisation and distance apply to that one channel:
//!   no adapter to train and discard, nothing in the checkpoint that the model does not hold.
//! - `loss_distill_objectness`: BCE of the student's objectness logits against the teacher's probabilities,
//!   mean over the sampled anchors.
//! - `loss_distill_logits`: `T² · KL(softmax(t/T) ‖ softmax(s/T))` of the class logits, mean over real RoIs;
//!   `loss_distill_box`: smooth-L1 (β = 1/9) between the student's and the teacher's deltas of the RoI's class,
//!   summed over foreground RoIs, divided by the real RoIs (as `loss_box_reg`); `loss_distill_mask` (Mask
//!   R-CNN): BCE of the student's mask logits of the RoI's class against the teacher's probabilities, mean
//!   over real mask RoIs × 28 × 28 (as `loss_mask`).
use super::builder::{Attr, GraphBuilder};
use super::loss_ops::Ops;
use super::net::{Constants, Net, Params, V};
use super::roi_pool::RoiFeatures;
use super::train_shape::{TrainShape, SMOOTH_L1_BETA};
use crate::choice::named_choices;
use crate::error::{Error, Result};
use crate::imaging::roi::{BOX_OUTPUT_SIZE, MASK_OUTPUT_SIZE};
use crate::model::{ModelKind, ModelState};
use crate::onnx::proto::{tensor_proto::DataType, ModelProto};
use serde::{Deserialize, Serialize};

/// The normalisation's ε (see the module comment).
pub const NORM_EPS: f32 = 1e-6;

/// A group of distillation terms, as `--distill` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Term {
    Features,
    Logits,
    Objectness,
}

named_choices!(Term, "distillation term", [
    Features = "features": "FPN feature imitation, normalised per channel (PKD); spatial attention where the student is narrower",
    Logits = "logits": "KL of the box head's class logits at the temperature, its box deltas, and the mask logits",
    Objectness = "objectness": "the RPN's objectness against the teacher's probabilities on the sampled anchors",
]);

/// What the core distils and how much: every chosen term is multiplied by `weight`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Distill {
    pub terms: Vec<Term>,
    pub weight: f32,
    pub temperature: f32,
    /// The teacher's FPN width; below it the student's features are compared as attention maps.
    pub teacher_channels: usize,
}

impl Distill {
    pub fn has(&self, t: Term) -> bool {
        self.terms.contains(&t)
    }

    /// The teacher's outputs the core takes, in the teacher graph's output order.
    pub fn teacher_outputs(&self, kind: ModelKind, levels: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if self.has(Term::Features) {
            out.extend((0..levels).map(|l| format!("teacher_fpn_{l}")));
        }
        if self.has(Term::Objectness) {
            out.push("teacher_objectness".into());
        }
        if self.has(Term::Logits) {
            out.extend(["teacher_cls".to_string(), "teacher_deltas".to_string()]);
            if kind == ModelKind::MaskRcnn {
                out.push("teacher_mask".into());
            }
        }
        out
    }
}

/// The student's values the terms compare (names in the core under construction).
pub(crate) struct Student {
    pub feats: Vec<V>,
    /// Flattened objectness `[B·A]`, the sampled-anchor weights, and B·A.
    pub objectness: (String, String, usize),
    /// Class logits `[N, C]` and deltas `[N, 4C]` of the box RoIs.
    pub boxes: Option<(String, String)>,
    /// Mask logits `[Pm, K, 28, 28]`.
    pub mask: Option<V>,
}

/// Emits the chosen terms; returns (value, output name) of each, already weighted. `input` declares a graph
/// input of the core (f32, shape) and returns its name.
pub(crate) fn terms(
    b: &mut GraphBuilder,
    d: &Distill,
    s: &Student,
    shape: &TrainShape,
    classes: usize,
    input: &mut dyn FnMut(&mut GraphBuilder, &str, &[usize]) -> String,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if d.has(Term::Features) {
        let mut levels = Vec::new();
        for (l, f) in s.feats.iter().enumerate() {
            let [bs, _, h, w] = f.shape;
            let t = input(b, &format!("teacher_fpn_{l}"), &[bs, d.teacher_channels, h, w]);
            levels.push(pkd(&mut Ops(b), f, &V { name: t, shape: [bs, d.teacher_channels, h, w] }));
        }
        let mut g = Ops(b);
        let sum = levels[1..].iter().fold(levels[0].clone(), |acc, v| g.op("Add", &[&acc, v]));
        out.push((sum, "loss_distill_features"));
    }
    if d.has(Term::Objectness) {
        let (obj, sampled, anchors) = &s.objectness;
        let t = input(b, "teacher_objectness", &[*anchors]);
        let mut g = Ops(b);
        let p = g.op("Sigmoid", &[&t]);
        let bce = g.bce_with_logits(obj, &p);
        let sum = g.weighted_sum(&bce, sampled);
        let n = g.count(sampled);
        out.push((g.op("Div", &[&sum, &n]), "loss_distill_objectness"));
    }
    if let (true, Some((cls, deltas))) = (d.has(Term::Logits), &s.boxes) {
        let rows = shape.batch * shape.rois_per_image;
        let t_cls = input(b, "teacher_cls", &[rows, classes]);
        let t_deltas = input(b, "teacher_deltas", &[rows, 4 * classes]);
        out.push((kl(&mut Ops(b), cls, &t_cls, d.temperature), "loss_distill_logits"));
        out.push((box_imitation(&mut Ops(b), deltas, &t_deltas, rows, classes), "loss_distill_box"));
        if let Some(m) = &s.mask {
            let [pm, k, mh, mw] = m.shape;
            let t = input(b, "teacher_mask", &[pm, k, mh, mw]);
            out.push((mask_imitation(&mut Ops(b), m, &t), "loss_distill_mask"));
        }
    }
    let mut g = Ops(b);
    let w = g.scalar(d.weight);
    out.into_iter().map(|(v, name)| (g.op("Mul", &[&v, &w]), name.to_string())).collect()
}

/// `(x − μ_c)/√(σ²_c + ε)` per channel over batch and space; `x` `[B, C, h, w]`.
fn channel_norm(g: &mut Ops, x: &str, shape: [usize; 4]) -> String {
    let [bs, _, h, w] = shape;
    let n = (bs * h * w) as f32;
    // ReduceMean takes its axes as an attribute until opset 18 (ReduceSum as an input from 13).
    let mean = g.0.node("ReduceMean", &[x], "", vec![("axes", Attr::Ints(vec![0, 2, 3])), ("keepdims", Attr::Int(1))]);
    let d = g.op("Sub", &[x, &mean]);
    let d2 = g.op("Mul", &[&d, &d]);
    let axes = g.0.i64_const(&[0, 2, 3]);
    let ss = g.0.node("ReduceSum", &[&d2, &axes], "", vec![("keepdims", Attr::Int(1))]);
    let unbias = g.scalar(1.0 / (n - 1.0).max(1.0));
    let var = g.op("Mul", &[&ss, &unbias]);
    let eps = g.scalar(NORM_EPS);
    let var = g.op("Add", &[&var, &eps]);
    let std = g.op("Sqrt", &[&var]);
    g.op("Div", &[&d, &std])
}

/// `mean_c x²` as `[B, 1, h, w]`.
fn attention(g: &mut Ops, x: &str) -> String {
    let x2 = g.op("Mul", &[x, x]);
    g.0.node("ReduceMean", &[&x2], "", vec![("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(1))])
}

/// One level's PKD distance (attention maps where the widths differ).
fn pkd(g: &mut Ops, s: &V, t: &V) -> String {
    let (s_name, t_name, shape) = if s.shape[1] == t.shape[1] {
        (s.name.clone(), t.name.clone(), s.shape)
    } else {
        let [bs, _, h, w] = s.shape;
        (attention(g, &s.name), attention(g, &t.name), [bs, 1, h, w])
    };
    let ns = channel_norm(g, &s_name, shape);
    let nt = channel_norm(g, &t_name, shape);
    let d = g.op("Sub", &[&ns, &nt]);
    let d2 = g.op("Mul", &[&d, &d]);
    let mean = g.0.node("ReduceMean", &[&d2], "", vec![("keepdims", Attr::Int(0))]);
    let half = g.scalar(0.5);
    g.op("Mul", &[&mean, &half])
}

/// `T² · Σ_r w_r KL(softmax(t_r/T) ‖ softmax(s_r/T)) / max(Σ w, 1)` over the box RoIs (`roi_weights`).
fn kl(g: &mut Ops, s: &str, t: &str, temperature: f32) -> String {
    let tt = g.scalar(temperature);
    let s = g.op("Div", &[s, &tt]);
    let t = g.op("Div", &[t, &tt]);
    let axis = || vec![("axis", Attr::Int(1))];
    let log_ps = g.0.node("LogSoftmax", &[&s], "", axis());
    let log_pt = g.0.node("LogSoftmax", &[&t], "", axis());
    let pt = g.0.node("Softmax", &[&t], "", axis());
    let diff = g.op("Sub", &[&log_pt, &log_ps]);
    let prod = g.op("Mul", &[&pt, &diff]);
    let per_row = g.sum_axis(&prod, 1);
    let sum = g.weighted_sum(&per_row, "roi_weights");
    let n = g.count("roi_weights");
    let mean = g.op("Div", &[&sum, &n]);
    let t2 = g.scalar(temperature * temperature);
    g.op("Mul", &[&mean, &t2])
}

/// Smooth-L1 between the student's and the teacher's deltas of each foreground RoI's class, as `loss_box_reg`.
fn box_imitation(g: &mut Ops, s: &str, t: &str, rows: usize, classes: usize) -> String {
    let own = |g: &mut Ops, x: &str| {
        let x = g.reshape(x, &[rows as i64, classes as i64, 4]);
        let o = g.select_class(&x, "roi_labels", rows, 4);
        g.reshape(&o, &[rows as i64, 4])
    };
    let (os, ot) = (own(g, s), own(g, t));
    let diff = g.op("Sub", &[&os, &ot]);
    let l1 = g.smooth_l1(&diff, SMOOTH_L1_BETA);
    let l1 = g.sum_axis(&l1, 1);
    let background = g.0.i64_tensor(&[], &[0]);
    let fg = g.op("Greater", &["roi_labels", &background]);
    let fg = g.cast_f32(&fg);
    let w = g.op("Mul", &[&fg, "roi_weights"]);
    let sum = g.weighted_sum(&l1, &w);
    let n = g.count("roi_weights");
    g.op("Div", &[&sum, &n])
}

/// BCE of the student's mask logits of each RoI's class against the teacher's probabilities, as `loss_mask`.
fn mask_imitation(g: &mut Ops, s: &V, t: &str) -> String {
    let [rows, k, mh, mw] = s.shape;
    let px = (mh * mw) as i64;
    let own = |g: &mut Ops, x: &str| {
        let x = g.reshape(x, &[rows as i64, k as i64, px]);
        let o = g.select_class(&x, "mask_labels", rows, mh * mw);
        g.reshape(&o, &[rows as i64, px])
    };
    let (os, ot) = (own(g, &s.name), own(g, t));
    let p = g.op("Sigmoid", &[&ot]);
    let bce = g.bce_with_logits(&os, &p);
    let bce = g.sum_axis(&bce, 1);
    let sum = g.weighted_sum(&bce, "mask_weights");
    let count = g.count("mask_weights");
    let pxs = g.scalar(px as f32);
    let den = g.op("Mul", &[&count, &pxs]);
    g.op("Div", &[&sum, &den])
}

/// The teacher's forward on a training batch: inputs `images`, and where logits are distilled the student's
/// RoIAlign inputs (the `box` ones, and the `mask` ones for a Mask R-CNN: [`TrainShape::pool_inputs`]); outputs
/// [`Distill::teacher_outputs`]. Parameters are the teacher's, as constants.
pub fn teacher_graph(teacher: &ModelState, shape: &TrainShape, d: &Distill) -> Result<ModelProto> {
    let backbone = teacher
        .arch
        .backbone
        .as_ref()
        .ok_or_else(|| Error::input(teacher.path(), "a teacher needs a torchvision R-CNN with a ResNet-FPN backbone"))?;
    let (bs, h, w) = (shape.batch, shape.height, shape.width);
    let mut b = GraphBuilder::new("ticket_teacher");
    let mut p = Constants(teacher);
    let images = b.input("images", &[bs as i64, 3, h as i64, w as i64]);
    let mut net = Net { b: &mut b, p: &mut p };
    let c = net.resnet(&V { name: images, shape: [bs, 3, h, w] }, "backbone.body.", backbone.block, &backbone.blocks_per_stage)?;
    let feats = net.fpn(&c)?;
    if d.has(Term::Features) {
        for (l, f) in feats.iter().enumerate() {
            b.output(&f.name, &format!("teacher_fpn_{l}"));
        }
    }
    if d.has(Term::Objectness) {
        let heads = feats.iter().map(|f| Net { b: &mut b, p: &mut p }.rpn_head(f)).collect::<Result<Vec<_>>>()?;
        let a = Constants(teacher).shape("rpn.head.cls_logits.weight")?[0] as i64;
        let (obj, _) = Ops(&mut b).flatten_rpn(&heads, a);
        b.output(&obj, "teacher_objectness");
    }
    if d.has(Term::Logits) {
        let pool = RoiFeatures::new(&mut b, &feats, shape);
        let pooled = pool_rois(&mut b, &pool, shape, "box", shape.rois_per_image, BOX_OUTPUT_SIZE);
        let (cls, deltas) = Net { b: &mut b, p: &mut p }.box_head(&pooled)?;
        b.output(&cls, "teacher_cls");
        b.output(&deltas, "teacher_deltas");
        if teacher.arch.kind == ModelKind::MaskRcnn {
            let pooled = pool_rois(&mut b, &pool, shape, "mask", shape.mask_rois_per_image, MASK_OUTPUT_SIZE);
            let logits = Net { b: &mut b, p: &mut p }.mask_head(&pooled)?;
            b.output(&logits.name, "teacher_mask");
        }
    }
    Ok(b.finish())
}

/// RoIAlign as the core does it, from the inputs [`TrainShape::pool_inputs`] names (the step's own).
fn pool_rois(b: &mut GraphBuilder, pool: &RoiFeatures, shape: &TrainShape, prefix: &str, per_image: usize, side: usize) -> V {
    let inputs: Vec<String> = shape
        .pool_inputs(prefix, per_image, side)
        .into_iter()
        .map(|(name, int, dims)| {
            let dt = if int { DataType::Int64 } else { DataType::Float };
            b.typed_input(&name, dt, &dims.iter().map(|&d| d as i64).collect::<Vec<_>>())
        })
        .collect();
    pool.pool(b, &inputs, shape.batch * per_image, side)
}
