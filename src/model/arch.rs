//! ArchSpec: what the imported model is, inferred from its parameter names and shapes alone (torchvision's
//! names are stable across exports, while graph structure varies with exporter versions and flags).
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    FasterRcnn,
    MaskRcnn,
    KeypointRcnn,
    Classifier,
    Generic,
}

impl ModelKind {
    pub fn label(&self) -> &'static str {
        match self {
            ModelKind::FasterRcnn => "Faster R-CNN",
            ModelKind::MaskRcnn => "Mask R-CNN",
            ModelKind::KeypointRcnn => "Keypoint R-CNN",
            ModelKind::Classifier => "classifier",
            ModelKind::Generic => "generic ONNX model",
        }
    }

    pub fn is_detector(&self) -> bool {
        matches!(self, ModelKind::FasterRcnn | ModelKind::MaskRcnn | ModelKind::KeypointRcnn)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    Basic,
    Bottleneck,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Backbone {
    /// resnet18/34/50/101/152 when block counts match torchvision's, else `resnet-custom`.
    pub name: String,
    pub block: BlockKind,
    pub blocks_per_stage: Vec<usize>,
    pub stem_channels: usize,
    /// Output channels of each stage (layer1..layer4).
    pub stage_channels: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArchSpec {
    pub kind: ModelKind,
    pub backbone: Option<Backbone>,
    pub fpn_channels: Option<usize>,
    pub anchors_per_location: Option<usize>,
    pub box_head_dim: Option<usize>,
    /// Classes including background for detectors; outputs of `fc` for classifiers.
    pub num_classes: Option<usize>,
    pub mask_head_channels: Option<Vec<usize>>,
    pub num_keypoints: Option<usize>,
    pub heads: Vec<String>,
}

/// Parameter name → shape, the only evidence used.
pub type Shapes = BTreeMap<String, Vec<usize>>;

fn dim(shapes: &Shapes, name: &str, axis: usize) -> Option<usize> {
    shapes.get(name).and_then(|s| s.get(axis).copied())
}

fn resnet(shapes: &Shapes, prefix: &str) -> Option<Backbone> {
    let stem_channels = dim(shapes, &format!("{prefix}conv1.weight"), 0)?;
    let mut blocks = Vec::new();
    let mut stage_channels = Vec::new();
    let mut bottleneck = false;
    for stage in 1..=4 {
        let n = (0..).take_while(|b| shapes.contains_key(&format!("{prefix}layer{stage}.{b}.conv1.weight"))).count();
        if n == 0 {
            return None;
        }
        bottleneck |= shapes.contains_key(&format!("{prefix}layer{stage}.0.conv3.weight"));
        let last = if bottleneck { "conv3" } else { "conv2" };
        stage_channels.push(dim(shapes, &format!("{prefix}layer{stage}.{}.{last}.weight", n - 1), 0)?);
        blocks.push(n);
    }
    let block = if bottleneck { BlockKind::Bottleneck } else { BlockKind::Basic };
    let name = match (block, blocks.as_slice()) {
        (BlockKind::Basic, [2, 2, 2, 2]) => "resnet18",
        (BlockKind::Basic, [3, 4, 6, 3]) => "resnet34",
        (BlockKind::Bottleneck, [3, 4, 6, 3]) => "resnet50",
        (BlockKind::Bottleneck, [3, 4, 23, 3]) => "resnet101",
        (BlockKind::Bottleneck, [3, 8, 36, 3]) => "resnet152",
        _ => "resnet-custom",
    };
    Some(Backbone { name: name.into(), block, blocks_per_stage: blocks, stem_channels, stage_channels })
}

fn mask_head_channels(shapes: &Shapes) -> Vec<usize> {
    // torchvision ≥0.13 names them mask_head.0.0.weight (Conv2dNormActivation); older ones mask_fcn1.weight.
    let mut out = Vec::new();
    for i in 0.. {
        let new = dim(shapes, &format!("roi_heads.mask_head.{i}.0.weight"), 0);
        let old = dim(shapes, &format!("roi_heads.mask_head.mask_fcn{}.weight", i + 1), 0);
        match new.or(old) {
            Some(c) => out.push(c),
            None => break,
        }
    }
    out
}

impl ArchSpec {
    pub fn infer(shapes: &Shapes) -> ArchSpec {
        let has = |p: &str| shapes.keys().any(|k| k.starts_with(p));
        let is_detector = has("backbone.body.") && has("rpn.") && has("roi_heads.");
        if is_detector {
            let kind = if has("roi_heads.keypoint_predictor.") {
                ModelKind::KeypointRcnn
            } else if has("roi_heads.mask_predictor.") {
                ModelKind::MaskRcnn
            } else {
                ModelKind::FasterRcnn
            };
            // The FPN's output width (what the RPN and RoI heads read); a channel ticket may make the lateral
            // (inner) width differ from it.
            let fpn_channels = dim(shapes, "backbone.fpn.layer_blocks.0.0.weight", 0)
                .or_else(|| dim(shapes, "backbone.fpn.layer_blocks.0.weight", 0))
                .or_else(|| dim(shapes, "backbone.fpn.inner_blocks.0.0.weight", 0));
            let mut heads = vec!["rpn".to_string(), "box".to_string()];
            let mask = mask_head_channels(shapes);
            if !mask.is_empty() {
                heads.push("mask".into());
            }
            let num_keypoints = dim(shapes, "roi_heads.keypoint_predictor.kps_score_lowres.weight", 1);
            if num_keypoints.is_some() {
                heads.push("keypoint".into());
            }
            return ArchSpec {
                kind,
                backbone: resnet(shapes, "backbone.body."),
                fpn_channels,
                anchors_per_location: dim(shapes, "rpn.head.cls_logits.weight", 0),
                box_head_dim: dim(shapes, "roi_heads.box_head.fc6.weight", 0),
                num_classes: dim(shapes, "roi_heads.box_predictor.cls_score.weight", 0),
                mask_head_channels: (!mask.is_empty()).then_some(mask),
                num_keypoints,
                heads,
            };
        }
        if let Some(backbone) = resnet(shapes, "") {
            return ArchSpec {
                kind: ModelKind::Classifier,
                backbone: Some(backbone),
                fpn_channels: None,
                anchors_per_location: None,
                box_head_dim: None,
                num_classes: dim(shapes, "fc.weight", 0),
                mask_head_channels: None,
                num_keypoints: None,
                heads: vec!["fc".into()],
            };
        }
        ArchSpec {
            kind: ModelKind::Generic,
            backbone: None,
            fpn_channels: None,
            anchors_per_location: None,
            box_head_dim: None,
            num_classes: None,
            mask_head_channels: None,
            num_keypoints: None,
            heads: vec![],
        }
    }

    /// One line for tables and logs, e.g. "Mask R-CNN, resnet50 FPN(256), 91 classes, heads rpn+box+mask".
    pub fn summary(&self) -> String {
        let mut s = self.kind.label().to_string();
        if let Some(b) = &self.backbone {
            s += &format!(", {}", b.name);
            if b.name == "resnet-custom" || b.stem_channels != 64 {
                s += &format!(" (blocks {:?}, widths {:?})", b.blocks_per_stage, b.stage_channels);
            }
        }
        if let Some(c) = self.fpn_channels {
            s += &format!(" FPN({c})");
        }
        if let Some(n) = self.num_classes {
            s += &format!(", {n} classes");
        }
        if let Some(k) = self.num_keypoints {
            s += &format!(", {k} keypoints");
        }
        if !self.heads.is_empty() {
            s += &format!(", heads {}", self.heads.join("+"));
        }
        s
    }
}
