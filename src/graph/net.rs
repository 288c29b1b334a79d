//! The network, described once: torchvision's ResNet body with FrozenBatchNorm, FPN, RPN head, box head, mask
//! head and keypoint head, emitted as ONNX nodes. Training graphs and tract stage graphs both go through here;
//! they differ only in how a parameter enters the graph (`Params`).
use super::builder::{Attr, GraphBuilder};
use crate::error::{Error, Result};
use crate::model::arch::BlockKind;
use crate::model::ModelState;
use crate::onnx::compact::Packed;
use crate::sparse::tract_op::DOMAIN as SPARSE_DOMAIN;
use crate::sparse::tract_op::WEIGHT_SHAPE;
use crate::sparse::LayerShape;
use std::sync::Arc;

/// How parameters enter a graph: as constants (inference) or as trainable weights times frozen masks.
pub trait Params {
    fn has(&self, name: &str) -> bool;
    fn shape(&self, name: &str) -> Result<Vec<usize>>;
    /// Adds (once) what the graph needs for parameter `name` and returns the value to use.
    fn param(&mut self, b: &mut GraphBuilder, name: &str) -> Result<String>;
    /// Whether the layer with weight `name` is emitted as this crate's sparse op (inference stages only).
    fn sparse(&mut self, _name: &str, _shape: LayerShape) -> bool {
        false
    }
    /// The non-zeros of a constant weight (as a compact file stores them), for a layer that runs sparse.
    fn packed(&self, _name: &str) -> Option<Arc<Packed>> {
        None
    }
    /// The values of a constant parameter, where the graph holds them as constants (to fold a FrozenBatchNorm
    /// into a sparse conv); `None` for trainable ones.
    fn values(&self, _name: &str) -> Option<Vec<f32>> {
        None
    }
}

/// Inference: every parameter is an initializer holding the model's (masked) values.
pub struct Constants<'a>(pub &'a ModelState);

impl Params for Constants<'_> {
    fn has(&self, name: &str) -> bool {
        self.0.weights.get(name).is_some() || self.0.buffers.contains_key(name)
    }

    fn shape(&self, name: &str) -> Result<Vec<usize>> {
        match (self.0.weights.get(name), self.0.buffers.get(name)) {
            (Some(w), _) => Ok(w.shape.clone()),
            (None, Some((s, _))) => Ok(s.clone()),
            _ => Err(missing(self.0, name)),
        }
    }

    fn param(&mut self, b: &mut GraphBuilder, name: &str) -> Result<String> {
        match (self.0.weights.get(name), self.0.buffers.get(name)) {
            (Some(w), _) => Ok(b.f32_init(name, &w.shape, &w.values.dense())),
            (None, Some((s, v))) => Ok(b.f32_init(name, s, v)),
            _ => Err(missing(self.0, name)),
        }
    }
}

fn missing(state: &ModelState, name: &str) -> Error {
    Error::input(state.path(), format!("parameter '{name}' is missing: the model does not have the layout of a torchvision detector"))
}

pub struct Net<'a, P: Params> {
    pub b: &'a mut GraphBuilder,
    pub p: &'a mut P,
}

/// A value with its static shape [N, C, H, W] (the emitter needs shapes for reshapes).
#[derive(Clone, Debug)]
pub struct V {
    pub name: String,
    pub shape: [usize; 4],
}

/// A square conv's attributes.
fn conv_attrs(k: usize, stride: usize, pad: usize) -> Vec<(&'static str, Attr)> {
    vec![
        ("kernel_shape", Attr::Ints(vec![k as i64, k as i64])),
        ("strides", Attr::Ints(vec![stride as i64; 2])),
        ("pads", Attr::Ints(vec![pad as i64; 4])),
    ]
}

/// The output of a square conv with `cout` channels on `x`.
fn conv_output(x: &V, name: String, cout: usize, k: usize, stride: usize, pad: usize) -> V {
    let [n, _, h, w] = x.shape;
    V { name, shape: [n, cout, (h + 2 * pad - k) / stride + 1, (w + 2 * pad - k) / stride + 1] }
}

impl<P: Params> Net<'_, P> {
    pub fn conv(&mut self, x: &V, prefix: &str, stride: usize, pad: usize) -> Result<V> {
        let w = format!("{prefix}.weight");
        let ws = self.p.shape(&w)?;
        let (cout, k) = (ws[0], ws[2]);
        let attrs = conv_attrs(k, stride, pad);
        let packed = (ws[2] == ws[3] && self.p.sparse(&w, LayerShape::Conv { kernel: k, stride })).then(|| self.p.packed(&w)).flatten();
        let mut inputs = vec![x.name.clone()];
        match &packed {
            Some(p) => inputs.extend(self.packed_weight(&w, p)),
            None => inputs.push(self.p.param(self.b, &w)?),
        }
        let bias = format!("{prefix}.bias");
        if self.p.has(&bias) {
            inputs.push(self.p.param(self.b, &bias)?);
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let out = match packed {
            Some(_) => self.sparse_node("SparseConv", &refs, &format!("{prefix}/SparseConv"), attrs, &ws),
            None => self.b.node("Conv", &refs, &format!("{prefix}/Conv"), attrs),
        };
        Ok(conv_output(x, out, cout, k, stride, pad))
    }

    /// A sparse layer's weight as the sparse ops take it: `{name}.bits`, the bitmap of its non-zero positions
    /// (uint8), and `{name}.nonzeros`, the values at those positions in order — no dense tensor in the graph.
    fn packed_weight(&mut self, name: &str, p: &Packed) -> [String; 2] {
        [
            self.b.u8_init(&format!("{name}.bits"), &[p.bits.len()], &p.bits),
            self.b.f32_init(&format!("{name}.nonzeros"), &[p.values.len()], &p.values),
        ]
    }

    /// A sparse op node on a packed weight of shape `shape` (its `weight_shape` attribute).
    fn sparse_node(&mut self, op: &str, inputs: &[&str], name: &str, mut attrs: Vec<(&'static str, Attr)>, shape: &[usize]) -> String {
        attrs.push((WEIGHT_SHAPE, Attr::Ints(shape.iter().map(|&d| d as i64).collect())));
        self.b.custom_node(SPARSE_DOMAIN, op, inputs, name, attrs)
    }

    /// A conv followed by its FrozenBatchNorm. A conv on the sparse kernels takes the normalisation folded into
    /// its weights and bias (w · scale, b · scale + shift: zeros stay zeros), which saves two passes over its
    /// output; tract folds them into its dense convs itself.
    /// With `relu`, a ReLU follows (fused into the sparse conv).
    pub fn conv_bn(&mut self, x: &V, conv: &str, bn: &str, stride: usize, pad: usize, relu: bool) -> Result<V> {
        let w = format!("{conv}.weight");
        let ws = self.p.shape(&w)?;
        let (scale, shift) = (format!("{bn}.scale"), format!("{bn}.shift"));
        let square = ws.len() == 4 && ws[2] == ws[3];
        let bn_values = match (self.p.values(&scale), self.p.values(&shift)) {
            (Some(sc), Some(sh)) if square && sc.len() == ws[0] && sh.len() == ws[0] => Some((sc, sh)),
            _ => None,
        };
        // The non-zeros are read only for a layer that runs sparse (a parameter that can run sparse has them).
        let folded = bn_values
            .filter(|_| self.p.sparse(&w, LayerShape::Conv { kernel: ws[2], stride }))
            .and_then(|(sc, sh)| Some((self.p.packed(&w)?, sc, sh)));
        let Some((packed, sc, sh)) = folded else {
            let y = self.conv(x, conv, stride, pad)?;
            let y = self.frozen_bn(&y, bn)?;
            return Ok(if relu { self.relu(&y) } else { y });
        };
        let scaled = packed.scale_rows(packed.len / ws[0], &sc);
        let bias = self.p.values(&format!("{conv}.bias"));
        let bv: Vec<f32> = (0..ws[0]).map(|c| bias.as_ref().map_or(0.0, |b| b[c]) * sc[c] + sh[c]).collect();
        let [bits, nonzeros] = self.packed_weight(&format!("{conv}.weight_bn"), &scaled);
        let bn_ = self.b.f32_init(&format!("{conv}.bias_bn"), &[ws[0]], &bv);
        let mut attrs = conv_attrs(ws[2], stride, pad);
        attrs.push(("relu", Attr::Int(relu as i64)));
        let out = self.sparse_node("SparseConv", &[&x.name, &bits, &nonzeros, &bn_], &format!("{conv}/SparseConv"), attrs, &ws);
        Ok(conv_output(x, out, ws[0], ws[2], stride, pad))
    }

    /// torchvision's FrozenBatchNorm2d: x · scale + shift, with the folded constants found at import.
    pub fn frozen_bn(&mut self, x: &V, prefix: &str) -> Result<V> {
        let scale = self.p.param(self.b, &format!("{prefix}.scale"))?;
        let shift = self.p.param(self.b, &format!("{prefix}.shift"))?;
        let m = self.b.node("Mul", &[&x.name, &scale], &format!("{prefix}/Mul"), vec![]);
        let a = self.b.node("Add", &[&m, &shift], &format!("{prefix}/Add"), vec![]);
        Ok(V { name: a, shape: x.shape })
    }

    pub fn relu(&mut self, x: &V) -> V {
        V { name: self.b.node("Relu", &[&x.name], "", vec![]), shape: x.shape }
    }

    fn add(&mut self, a: &V, c: &V) -> V {
        V { name: self.b.node("Add", &[&a.name, &c.name], "", vec![]), shape: a.shape }
    }

    fn max_pool(&mut self, x: &V, k: usize, stride: usize, pad: usize) -> V {
        let out = self.b.node(
            "MaxPool",
            &[&x.name],
            "",
            vec![
                ("kernel_shape", Attr::Ints(vec![k as i64; 2])),
                ("strides", Attr::Ints(vec![stride as i64; 2])),
                ("pads", Attr::Ints(vec![pad as i64; 4])),
            ],
        );
        let [n, c, h, w] = x.shape;
        V { name: out, shape: [n, c, (h + 2 * pad - k) / stride + 1, (w + 2 * pad - k) / stride + 1] }
    }

    fn reshape(&mut self, x: &str, shape: &[i64]) -> String {
        let s = self.b.i64_const(shape);
        self.b.node("Reshape", &[x, &s], "", vec![])
    }

    /// Nearest 2× upsampling as Reshape → Expand → Reshape: exact for FPN on a canvas that is a multiple of 32,
    /// and unlike Resize it has a gradient kernel in ORT training.
    pub fn upsample2x(&mut self, x: &V) -> V {
        let [n, c, h, w] = x.shape;
        let r = self.reshape(&x.name, &[n as i64, c as i64, h as i64, 1, w as i64, 1]);
        let s = self.b.i64_const(&[n as i64, c as i64, h as i64, 2, w as i64, 2]);
        let e = self.b.node("Expand", &[&r, &s], "", vec![]);
        V { name: self.reshape(&e, &[n as i64, c as i64, 2 * h as i64, 2 * w as i64]), shape: [n, c, 2 * h, 2 * w] }
    }

    fn block(&mut self, x: &V, prefix: &str, kind: BlockKind, stride: usize) -> Result<V> {
        let out = match kind {
            BlockKind::Basic => {
                let y = self.conv_bn(x, &format!("{prefix}.conv1"), &format!("{prefix}.bn1"), stride, 1, true)?;
                self.conv_bn(&y, &format!("{prefix}.conv2"), &format!("{prefix}.bn2"), 1, 1, false)?
            }
            BlockKind::Bottleneck => {
                // torchvision's ResNet v1.5: the stride sits on the 3×3 conv.
                let y = self.conv_bn(x, &format!("{prefix}.conv1"), &format!("{prefix}.bn1"), 1, 0, true)?;
                let y = self.conv_bn(&y, &format!("{prefix}.conv2"), &format!("{prefix}.bn2"), stride, 1, true)?;
                self.conv_bn(&y, &format!("{prefix}.conv3"), &format!("{prefix}.bn3"), 1, 0, false)?
            }
        };
        let identity = if self.p.has(&format!("{prefix}.downsample.0.weight")) {
            self.conv_bn(x, &format!("{prefix}.downsample.0"), &format!("{prefix}.downsample.1"), stride, 0, false)?
        } else {
            x.clone()
        };
        let sum = self.add(&out, &identity);
        Ok(self.relu(&sum))
    }

    /// ResNet body: returns the outputs of layer1..layer4 (C2..C5).
    pub fn resnet(&mut self, x: &V, prefix: &str, kind: BlockKind, blocks: &[usize]) -> Result<Vec<V>> {
        let y = self.conv_bn(x, &format!("{prefix}conv1"), &format!("{prefix}bn1"), 2, 3, true)?;
        let mut y = self.max_pool(&y, 3, 2, 1);
        let mut outs = Vec::new();
        for (s, &n) in blocks.iter().enumerate() {
            for j in 0..n {
                let stride = if s > 0 && j == 0 { 2 } else { 1 };
                y = self.block(&y, &format!("{prefix}layer{}.{j}", s + 1), kind, stride)?;
            }
            outs.push(y.clone());
        }
        Ok(outs)
    }

    /// FeaturePyramidNetwork with LastLevelMaxPool: [P2, P3, P4, P5, pool].
    pub fn fpn(&mut self, c: &[V]) -> Result<Vec<V>> {
        let last = c.len() - 1;
        let mut inner = self.conv(&c[last], &format!("backbone.fpn.inner_blocks.{last}.0"), 1, 0)?;
        let mut results = vec![self.conv(&inner, &format!("backbone.fpn.layer_blocks.{last}.0"), 1, 1)?];
        for i in (0..last).rev() {
            let lateral = self.conv(&c[i], &format!("backbone.fpn.inner_blocks.{i}.0"), 1, 0)?;
            let top_down = self.upsample2x(&inner);
            inner = self.add(&lateral, &top_down);
            results.insert(0, self.conv(&inner, &format!("backbone.fpn.layer_blocks.{i}.0"), 1, 1)?);
        }
        let pool = self.max_pool(&results[last], 1, 2, 0);
        results.push(pool);
        Ok(results)
    }

    /// RPN head on one level: (objectness [N, A, H, W], deltas [N, 4A, H, W]); the weights are shared by levels.
    pub fn rpn_head(&mut self, x: &V) -> Result<(V, V)> {
        let conv = if self.p.has("rpn.head.conv.0.0.weight") { "rpn.head.conv.0.0" } else { "rpn.head.conv" };
        let t = self.conv(x, conv, 1, 1)?;
        let t = self.relu(&t);
        Ok((self.conv(&t, "rpn.head.cls_logits", 1, 0)?, self.conv(&t, "rpn.head.bbox_pred", 1, 0)?))
    }

    /// torchvision's ResNet classifier: the body (no prefix, FrozenBatchNorm as folded at import), global
    /// average pooling, flatten and `fc`: logits [N, classes].
    pub fn resnet_classifier(&mut self, x: &V, kind: BlockKind, blocks: &[usize]) -> Result<String> {
        let c = self.resnet(x, "", kind, blocks)?;
        let last = c.last().expect("four stages");
        let pooled = self.b.node("GlobalAveragePool", &[&last.name], "avgpool", vec![]);
        let flat = self.b.node("Flatten", &[&pooled], "", vec![("axis", Attr::Int(1))]);
        self.linear(&flat, "fc")
    }

    fn linear(&mut self, x: &str, prefix: &str) -> Result<String> {
        let name = format!("{prefix}.weight");
        let shape = self.p.shape(&name)?;
        let inputs = shape.get(1).copied().unwrap_or(0);
        let packed = self.p.sparse(&name, LayerShape::Gemm { inputs }).then(|| self.p.packed(&name)).flatten();
        let attrs = vec![("transB", Attr::Int(1))];
        Ok(match packed {
            Some(p) => {
                let [bits, nonzeros] = self.packed_weight(&name, &p);
                let bias = self.p.param(self.b, &format!("{prefix}.bias"))?;
                self.sparse_node("SparseGemm", &[x, &bits, &nonzeros, &bias], &format!("{prefix}/SparseGemm"), attrs, &shape)
            }
            None => {
                let w = self.p.param(self.b, &name)?;
                let bias = self.p.param(self.b, &format!("{prefix}.bias"))?;
                self.b.node("Gemm", &[x, &w, &bias], &format!("{prefix}/Gemm"), attrs)
            }
        })
    }

    /// TwoMLPHead + FastRCNNPredictor on pooled [N, C, 7, 7]: (class logits [N, K], box deltas [N, 4K]).
    pub fn box_head(&mut self, pooled: &V) -> Result<(String, String)> {
        let x = self.b.node("Flatten", &[&pooled.name], "", vec![("axis", Attr::Int(1))]);
        let x = self.linear(&x, "roi_heads.box_head.fc6")?;
        let x = self.b.node("Relu", &[&x], "", vec![]);
        let x = self.linear(&x, "roi_heads.box_head.fc7")?;
        let x = self.b.node("Relu", &[&x], "", vec![]);
        Ok((self.linear(&x, "roi_heads.box_predictor.cls_score")?, self.linear(&x, "roi_heads.box_predictor.bbox_pred")?))
    }

    /// The 4·Cout channels of `y` (computed on `x`'s grid), ordered (cout, dy, dx), interleaved into a 2× grid,
    /// plus the layer's bias: the second half of both transposed-conv rewrites.
    fn pixel_shuffle_2x(&mut self, y: &str, x: &V, cout: usize, prefix: &str) -> Result<V> {
        let [n, _, h, wd] = x.shape;
        let (n, co, h, wd) = (n as i64, cout as i64, h as i64, wd as i64);
        let y = self.reshape(y, &[n, co, 2, 2, h, wd]);
        let y = self.b.node("Transpose", &[&y], "", vec![("perm", Attr::Ints(vec![0, 1, 4, 2, 5, 3]))]);
        let y = self.reshape(&y, &[n, co, 2 * h, 2 * wd]);
        let b = self.p.param(self.b, &format!("{prefix}.bias"))?;
        let b = self.reshape(&b, &[1, co, 1, 1]);
        let y = self.b.node("Add", &[&y, &b], "", vec![]);
        Ok(V { name: y, shape: [x.shape[0], cout, x.shape[2] * 2, x.shape[3] * 2] })
    }

    /// ConvTranspose2d(k=2, s=2) as a 1×1 conv to 4·Cout channels and a pixel shuffle: exact, and both tract and
    /// ORT training (which has no ConvTransposeGrad CPU kernel) run it.
    fn conv_transpose_2x2(&mut self, x: &V, prefix: &str) -> Result<V> {
        let ws = self.p.shape(&format!("{prefix}.weight"))?;
        let (cin, cout) = (ws[0], ws[1]);
        let w = self.p.param(self.b, &format!("{prefix}.weight"))?;
        let wt = self.b.node("Transpose", &[&w], "", vec![("perm", Attr::Ints(vec![1, 2, 3, 0]))]);
        let w1 = self.reshape(&wt, &[4 * cout as i64, cin as i64, 1, 1]);
        let y = self.b.node("Conv", &[&x.name, &w1], &format!("{prefix}/Conv"), vec![("kernel_shape", Attr::Ints(vec![1, 1]))]);
        self.pixel_shuffle_2x(&y, x, cout, prefix)
    }

    /// MaskRCNNHeads + MaskRCNNPredictor on pooled [M, C, 14, 14]: logits [M, K, 28, 28].
    pub fn mask_head(&mut self, pooled: &V) -> Result<V> {
        let mut x = pooled.clone();
        for i in 0.. {
            let (new, old) = (format!("roi_heads.mask_head.{i}.0"), format!("roi_heads.mask_head.mask_fcn{}", i + 1));
            let prefix = if self.p.has(&format!("{new}.weight")) {
                new
            } else if self.p.has(&format!("{old}.weight")) {
                old
            } else {
                break;
            };
            x = self.conv(&x, &prefix, 1, 1)?;
            x = self.relu(&x);
        }
        let x = self.conv_transpose_2x2(&x, "roi_heads.mask_predictor.conv5_mask")?;
        let x = self.relu(&x);
        self.conv(&x, "roi_heads.mask_predictor.mask_fcn_logits", 1, 0)
    }

    /// KeypointRCNNHeads + KeypointRCNNPredictor on pooled [M, C, 14, 14]: heatmap logits [M, K, 56, 56]. The
    /// predictor's ConvTranspose and bilinear upsampling are emitted in exact forms that ORT training can
    /// differentiate on CPU; tract runs them as well.
    pub fn keypoint_head(&mut self, pooled: &V) -> Result<V> {
        let mut x = pooled.clone();
        let mut i = 0;
        while self.p.has(&format!("roi_heads.keypoint_head.{i}.weight")) {
            x = self.conv(&x, &format!("roi_heads.keypoint_head.{i}"), 1, 1)?;
            x = self.relu(&x);
            i += 2; // nn.Sequential(conv, relu, conv, relu, ...): weights sit at even indices
        }
        let lowres = self.conv_transpose_4x4_s2(&x, "roi_heads.keypoint_predictor.kps_score_lowres")?;
        Ok(self.bilinear_upsample2x(&lowres))
    }

    /// ConvTranspose2d(k=4, s=2, p=1) as a 3×3 conv to 4·Cout channels and a pixel shuffle: output pixel
    /// (2m + ry, 2n + rx) only sees inputs m + dy, n + dx with dy, dx ∈ {-1, 0, 1}, through kernel tap
    /// ky = ry + 1 − 2·dy (none when that falls outside 0..4). The 3×3 kernels are gathered from the
    /// ConvTranspose weight inside the graph, so the parameter keeps its torchvision shape and gets its gradient;
    /// ORT training has no CPU kernel for ConvTransposeGrad (docs/engine-facts.md). Exact up to summation order.
    fn conv_transpose_4x4_s2(&mut self, x: &V, prefix: &str) -> Result<V> {
        let ws = self.p.shape(&format!("{prefix}.weight"))?;
        if ws.len() != 4 || ws[2] != 4 || ws[3] != 4 {
            return Err(Error::Input(format!("{prefix}.weight has shape {ws:?}; expected a 4×4 ConvTranspose2d kernel")));
        }
        let (cin, cout) = (ws[0], ws[1]);
        let w = self.p.param(self.b, &format!("{prefix}.weight"))?;
        let flat = self.reshape(&w, &[cin as i64, cout as i64, 16]);
        // Index 16 is an appended zero: the taps a parity does not use.
        let zero = self.b.f32_const("zero_tap", &[cin, cout, 1], &vec![0.0; cin * cout]);
        let padded = self.b.node("Concat", &[&flat, &zero], "", vec![("axis", Attr::Int(2))]);
        let tap = |r: i64, d: i64| Some(r + 1 - 2 * d).filter(|k| (0..4).contains(k));
        let mut index = Vec::with_capacity(36);
        for ry in 0..2 {
            for rx in 0..2 {
                for dy in -1..=1 {
                    for dx in -1..=1 {
                        index.push(match (tap(ry, dy), tap(rx, dx)) {
                            (Some(ky), Some(kx)) => ky * 4 + kx,
                            _ => 16,
                        });
                    }
                }
            }
        }
        let index = self.b.i64_tensor(&[36], &index);
        let k = self.b.node("Gather", &[&padded, &index], "", vec![("axis", Attr::Int(2))]);
        let k = self.reshape(&k, &[cin as i64, cout as i64, 2, 2, 3, 3]);
        let k = self.b.node("Transpose", &[&k], "", vec![("perm", Attr::Ints(vec![1, 2, 3, 0, 4, 5]))]);
        let k = self.reshape(&k, &[4 * cout as i64, cin as i64, 3, 3]);
        let y = self.b.node(
            "Conv",
            &[&x.name, &k],
            &format!("{prefix}/Conv"),
            vec![("kernel_shape", Attr::Ints(vec![3, 3])), ("pads", Attr::Ints(vec![1; 4]))],
        );
        self.pixel_shuffle_2x(&y, x, cout, prefix)
    }

    /// torchvision's `F.interpolate(scale_factor=2, mode="bilinear", align_corners=False)` as two MatMuls with
    /// constant interpolation matrices (rows: output pixel, columns: input pixel). Exact up to summation order,
    /// and it has gradients in ORT training, where ResizeGrad has no CPU kernel (docs/engine-facts.md).
    fn bilinear_upsample2x(&mut self, x: &V) -> V {
        let [n, c, h, w] = x.shape;
        let uh = bilinear_matrix(h, 2);
        let uw = bilinear_matrix(w, 2);
        // x · Uwᵀ: [n, c, h, 2w]
        let mut uwt = vec![0f32; w * 2 * w];
        for o in 0..2 * w {
            for i in 0..w {
                uwt[i * 2 * w + o] = uw[o * w + i];
            }
        }
        let uwt = self.b.f32_const("upsample_cols", &[w, 2 * w], &uwt);
        let y = self.b.node("MatMul", &[&x.name, &uwt], "", vec![]);
        // Uh · y: [n, c, 2h, 2w]
        let uh = self.b.f32_const("upsample_rows", &[2 * h, h], &uh);
        let y = self.b.node("MatMul", &[&uh, &y], "keypoint_upsample", vec![]);
        V { name: y, shape: [n, c, 2 * h, 2 * w] }
    }
}

/// The `[size·scale, size]` matrix of torch's linear interpolation by an integer `scale` with
/// `align_corners=False` and the scale factor given (`recompute_scale_factor=False`): output `o` samples
/// `max((o + 0.5) / scale − 0.5, 0)` between its two neighbours, the upper one clamped to the last pixel.
fn bilinear_matrix(size: usize, scale: usize) -> Vec<f32> {
    let out = size * scale;
    let mut m = vec![0f32; out * size];
    let inv = 1.0 / scale as f32;
    for o in 0..out {
        let src = f32::max(inv * (o as f32 + 0.5) - 0.5, 0.0);
        let lo = src as usize;
        let hi = if lo + 1 < size { lo + 1 } else { lo };
        let l1 = src - lo as f32;
        m[o * size + lo] += 1.0 - l1;
        m[o * size + hi] += l1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::bilinear_matrix;

    #[test]
    fn bilinear_2x_weights_are_torchs() {
        // 3 → 6: sources max(o/2 − 0.25, 0) = 0, 0.25, 0.75, 1.25, 1.75, 2.25 (upper neighbour clamped to 2).
        let m = bilinear_matrix(3, 2);
        let rows: Vec<&[f32]> = m.chunks(3).collect();
        assert_eq!(
            rows,
            vec![&[1.0, 0.0, 0.0][..], &[0.75, 0.25, 0.0], &[0.25, 0.75, 0.0], &[0.0, 0.75, 0.25], &[0.0, 0.25, 0.75], &[0.0, 0.0, 1.0]]
        );
    }
}
