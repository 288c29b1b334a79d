//! Module groups in the seed paper's vocabulary (its Table 3 and Fig. 1): where a parameter lives decides how
//! it is reported and whether `--modules` selects it.
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ModuleGroup {
    Base,
    Top,
    Fpn,
    Rpn,
    BoxHead,
    BoxPredictor,
    MaskHead,
    KeypointHead,
    Fc,
    /// A generic model's parameters, grouped by the first component of their name.
    Prefix(String),
}

impl ModuleGroup {
    /// The key used on the command line (`--modules`) and in JSON.
    pub fn key(&self) -> String {
        match self {
            ModuleGroup::Base => "base".into(),
            ModuleGroup::Top => "top".into(),
            ModuleGroup::Fpn => "fpn".into(),
            ModuleGroup::Rpn => "rpn".into(),
            ModuleGroup::BoxHead => "box_head".into(),
            ModuleGroup::BoxPredictor => "box_predictor".into(),
            ModuleGroup::MaskHead => "mask_head".into(),
            ModuleGroup::KeypointHead => "keypoint_head".into(),
            ModuleGroup::Fc => "fc".into(),
            ModuleGroup::Prefix(p) => p.clone(),
        }
    }

    /// The label used in tables, as the seed paper names the parts of a detector.
    pub fn label(&self) -> String {
        match self {
            ModuleGroup::Base => "Base".into(),
            ModuleGroup::Top => "Top".into(),
            ModuleGroup::Fpn => "FPN".into(),
            ModuleGroup::Rpn => "RPN".into(),
            ModuleGroup::BoxHead => "Box head".into(),
            ModuleGroup::BoxPredictor => "Cls+box predictor".into(),
            ModuleGroup::MaskHead => "Mask head".into(),
            ModuleGroup::KeypointHead => "Keypoint head".into(),
            ModuleGroup::Fc => "FC".into(),
            ModuleGroup::Prefix(p) => p.clone(),
        }
    }

    /// Group of a torchvision detector parameter. torchvision's FPN detectors run layer4 in the backbone, so
    /// there is no Top group for them; a C4 model keeps layer4 in its RoI head (`roi_heads.box_head.layer4`).
    pub fn of_detector_param(name: &str) -> Option<Self> {
        const TABLE: &[(&str, ModuleGroup)] = &[
            ("backbone.body.", ModuleGroup::Base),
            ("backbone.fpn.", ModuleGroup::Fpn),
            ("rpn.", ModuleGroup::Rpn),
            ("roi_heads.box_head.layer4.", ModuleGroup::Top),
            ("roi_heads.box_head.", ModuleGroup::BoxHead),
            ("roi_heads.box_predictor.", ModuleGroup::BoxPredictor),
            ("roi_heads.mask_head.", ModuleGroup::MaskHead),
            ("roi_heads.mask_predictor.", ModuleGroup::MaskHead),
            ("roi_heads.keypoint_head.", ModuleGroup::KeypointHead),
            ("roi_heads.keypoint_predictor.", ModuleGroup::KeypointHead),
        ];
        TABLE.iter().find(|(p, _)| name.starts_with(p)).map(|(_, g)| g.clone())
    }

    pub fn of_classifier_param(name: &str) -> Self {
        if name.starts_with("fc.") {
            ModuleGroup::Fc
        } else {
            ModuleGroup::Base
        }
    }

    /// A generic model groups by the first component of a dotted name, else by the first scope of the node.
    pub fn of_generic(name: &str, node_name: Option<&str>) -> Self {
        if let Some((first, _)) = name.split_once('.') {
            if !first.is_empty() && !name.starts_with("onnx::") {
                return ModuleGroup::Prefix(first.to_string());
            }
        }
        let scope = node_name.and_then(|n| n.trim_start_matches('/').split('/').next()).filter(|s| !s.is_empty());
        ModuleGroup::Prefix(scope.unwrap_or("(root)").to_string())
    }

    /// Parses a `--modules` entry. Named groups are always accepted; anything else is a generic prefix.
    pub fn parse(key: &str) -> Self {
        match key {
            "base" => ModuleGroup::Base,
            "top" => ModuleGroup::Top,
            "fpn" => ModuleGroup::Fpn,
            "rpn" => ModuleGroup::Rpn,
            "box_head" => ModuleGroup::BoxHead,
            "box_predictor" | "cls" => ModuleGroup::BoxPredictor,
            "mask_head" | "mask" => ModuleGroup::MaskHead,
            "keypoint_head" | "keypoint" => ModuleGroup::KeypointHead,
            "fc" => ModuleGroup::Fc,
            other => ModuleGroup::Prefix(other.to_string()),
        }
    }
}

impl Serialize for ModuleGroup {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.key())
    }
}
