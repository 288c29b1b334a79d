//! Classifier graphs, emitted from the same network description as the detectors' (`net`): a torchvision
//! ResNet classifier — body with FrozenBatchNorm (the classifier's BatchNorm folded at import, as the detectors'
//! backbones hold theirs), global average pooling, `fc`.
//!
//! - [`training_graph`]: images and labels → `loss`, the cross-entropy mean over the batch (`nn.CrossEntropyLoss`),
//!   every conv/linear weight entering as `W · M` with a frozen mask, as in detector training; the body and fc
//!   all train (a classifier is pretrained from its initialisation); the normalisation stays frozen.
//! - [`inference_graph`]: images → logits, with the model's (masked) values as constants, for tract.
use super::builder::{Attr, GraphBuilder};
use super::net::{Constants, Net, V};
use super::train_core::{ElemType, Masked, TensorSpec, TrainGraph, TrainOptions};
use crate::error::{Error, Result};
use crate::model::{ModelKind, ModelState};
use crate::onnx::proto::{tensor_proto::DataType, ModelProto};

/// The backbone of a classifier, or a one-line error naming the model.
fn resnet(state: &ModelState) -> Result<&crate::model::arch::Backbone> {
    match (&state.arch.kind, &state.arch.backbone, state.arch.num_classes) {
        (ModelKind::Classifier, Some(b), Some(_)) => Ok(b),
        _ => Err(Error::input(
            state.path(),
            format!("needs a torchvision ResNet classifier (body + fc); this is a {}", state.arch.summary()),
        )),
    }
}

fn check_shape(batch: usize, side: usize) -> Result<()> {
    // The stem and four stages halve the side five times; below 32 px layer4 has no pixel left.
    if batch == 0 || side < 32 {
        return Err(Error::Input(format!(
            "classifier shape: batch must be ≥ 1 and the image side ≥ 32 px (got batch {batch}, side {side})"
        )));
    }
    Ok(())
}

/// The training core of a classifier: inputs `images [B,3,S,S]` (normalised as the detectors normalise) and
/// `labels [B]` i64 (0-based class indices); output `loss`.
pub fn training_graph(state: &ModelState, batch: usize, side: usize) -> Result<TrainGraph> {
    let backbone = resnet(state)?;
    check_shape(batch, side)?;
    let mut b = GraphBuilder::new("ticket_classifier_training_core");
    // All five stages train: `trainable_layers` is the detectors' fine-tuning rule.
    let mut p = Masked::new(state, &TrainOptions { trainable_layers: 5, ..Default::default() });
    let images = b.typed_input("images", DataType::Float, &[batch as i64, 3, side as i64, side as i64]);
    let labels = b.typed_input("labels", DataType::Int64, &[batch as i64]);
    let logits = Net { b: &mut b, p: &mut p }.resnet_classifier(
        &V { name: images, shape: [batch, 3, side, side] },
        backbone.block,
        &backbone.blocks_per_stage,
    )?;
    // −mean log_softmax(logits)[label], spelled out: ORT's gradient of a SoftmaxCrossEntropyLoss node wants its
    // log-probability output, which the builder's single-output nodes do not declare.
    let logp = b.node("LogSoftmax", &[&logits], "", vec![("axis", Attr::Int(1))]);
    let shape = b.i64_const(&[batch as i64, 1]);
    let index = b.node("Reshape", &[&labels, &shape], "", vec![]);
    let picked = b.node("GatherElements", &[&logp, &index], "", vec![("axis", Attr::Int(1))]);
    let mean = b.node("ReduceMean", &[&picked], "", vec![("keepdims", Attr::Int(0))]);
    let loss = b.node("Neg", &[&mean], "loss_classifier", vec![]);
    b.typed_output(&loss, "loss", DataType::Float, &[]);
    Ok(TrainGraph {
        parts: vec![("classifier".into(), b.node_names(0..b.node_count()))],
        model: b.finish(),
        trainable: p.trainable,
        frozen: p.frozen,
        inputs: vec![
            TensorSpec { name: "images".into(), elem: ElemType::F32, shape: vec![batch, 3, side, side] },
            TensorSpec { name: "labels".into(), elem: ElemType::I64, shape: vec![batch] },
        ],
        outputs: vec!["loss".into()],
        feature_hw: vec![],
    })
}

/// The classifier for inference: `images [B,3,S,S]` → `logits [B, classes]`.
pub fn inference_graph(state: &ModelState, batch: usize, side: usize) -> Result<ModelProto> {
    let backbone = resnet(state)?;
    check_shape(batch, side)?;
    let mut b = GraphBuilder::new("ticket_classifier");
    let images = b.input("images", &[batch as i64, 3, side as i64, side as i64]);
    let mut p = Constants(state);
    let logits = Net { b: &mut b, p: &mut p }.resnet_classifier(
        &V { name: images, shape: [batch, 3, side, side] },
        backbone.block,
        &backbone.blocks_per_stage,
    )?;
    b.output(&logits, "logits");
    Ok(b.finish())
}

/// The classifier's body with the input of every FrozenBatchNorm (the conv output it normalises) as an
/// output, for estimating normalisation statistics on data: the graph (`images [B,3,S,S]` in) and the norms'
/// modules (`bn1`, `layer1.0.bn1`, …) in forward order, output `i` being named `{norms[i]}.input`.
pub fn norm_inputs_graph(state: &ModelState, batch: usize, side: usize) -> Result<(ModelProto, Vec<String>)> {
    let mut model = inference_graph(state, batch, side)?;
    let graph = model.graph.as_mut().expect("the builder makes a graph");
    // frozen_bn emits `{module}/Mul` on `{module}.scale` for every norm, in the order the body runs them.
    let probes: Vec<(String, String)> = graph
        .node
        .iter()
        .filter(|n| n.op_type() == "Mul" && n.input.len() == 2)
        .filter_map(|n| {
            let module = n.name().strip_suffix("/Mul")?;
            (n.input[1] == format!("{module}.scale")).then(|| (module.to_string(), n.input[0].clone()))
        })
        .collect();
    if probes.is_empty() {
        return Err(Error::input(state.path(), "has no FrozenBatchNorm in its body: there are no normalisation statistics to estimate"));
    }
    // Only the probes are outputs: the pooling and `fc` after the last norm are left for tract to drop.
    graph.output.clear();
    for (module, value) in &probes {
        let name = format!("{module}.input");
        graph.node.push(crate::onnx::proto::NodeProto {
            op_type: Some("Identity".into()),
            name: Some(name.clone()),
            input: vec![value.clone()],
            output: vec![name.clone()],
            ..Default::default()
        });
        graph.output.push(crate::onnx::proto::ValueInfoProto { name: Some(name), ..Default::default() });
    }
    Ok((model, probes.into_iter().map(|(m, _)| m).collect()))
}
