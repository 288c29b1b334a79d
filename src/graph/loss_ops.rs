//! Loss and layout arithmetic on a graph builder, shared by the training core and the distillation terms: the
//! ops ORT 1.19 can differentiate on CPU, written so that rows of weight 0 contribute exactly nothing.
use super::builder::{Attr, GraphBuilder};
use super::net::V;
use super::train_shape::TAPS;
use crate::onnx::proto::tensor_proto::DataType;

/// Loss arithmetic on a builder.
pub(crate) struct Ops<'a>(pub &'a mut GraphBuilder);

impl Ops<'_> {
    pub fn op(&mut self, op: &str, inputs: &[&str]) -> String {
        self.0.node(op, inputs, "", vec![])
    }

    pub fn scalar(&mut self, v: f32) -> String {
        self.0.f32_const("scalar", &[], &[v])
    }

    pub fn reshape(&mut self, x: &str, shape: &[i64]) -> String {
        let s = self.0.i64_const(shape);
        self.0.node("Reshape", &[x, &s], "", vec![])
    }

    pub fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.0.node("Transpose", &[x], "", vec![("perm", Attr::Ints(perm.to_vec()))])
    }

    pub fn concat(&mut self, xs: &[String], axis: i64) -> String {
        let refs: Vec<&str> = xs.iter().map(String::as_str).collect();
        self.0.node("Concat", &refs, "", vec![("axis", Attr::Int(axis))])
    }

    /// RPN head outputs `(objectness [B,A,h,w], deltas [B,4A,h,w])` per level, flattened in torchvision's
    /// `concat_box_prediction_layers` order (image, level, y, x, anchor): objectness `[B·anchors]`, deltas
    /// `[B·anchors, 4]`; `a` anchors per position.
    pub fn flatten_rpn(&mut self, heads: &[(V, V)], a: i64) -> (String, String) {
        let bs = heads[0].0.shape[0] as i64;
        let anchors: i64 = heads.iter().map(|(o, _)| (o.shape[2] * o.shape[3]) as i64 * a).sum();
        let (mut obj, mut del) = (Vec::new(), Vec::new());
        for (o, d) in heads {
            let (fh, fw) = (o.shape[2] as i64, o.shape[3] as i64);
            let t = self.transpose(&o.name, &[0, 2, 3, 1]);
            obj.push(self.reshape(&t, &[bs, fh * fw * a]));
            let r = self.reshape(&d.name, &[bs, a, 4, fh, fw]);
            let t = self.transpose(&r, &[0, 3, 4, 1, 2]);
            del.push(self.reshape(&t, &[bs, fh * fw * a, 4]));
        }
        let obj = self.concat(&obj, 1);
        let obj = self.reshape(&obj, &[bs * anchors]);
        let del = self.concat(&del, 1);
        (obj, self.reshape(&del, &[bs * anchors, 4]))
    }

    /// RoIAlign's feature table: P2..P5 as rows [B·h·w, C], in `detect::roi_align::feature_table` order.
    pub fn feature_table(&mut self, levels: &[V]) -> String {
        let rows: Vec<String> = levels
            .iter()
            .map(|f| {
                let [b, c, h, w] = f.shape;
                let t = self.transpose(&f.name, &[0, 2, 3, 1]);
                self.reshape(&t, &[(b * h * w) as i64, c as i64])
            })
            .collect();
        self.concat(&rows, 0)
    }

    pub fn cast_f32(&mut self, x: &str) -> String {
        self.0.node("Cast", &[x], "", vec![("to", Attr::Int(DataType::Float as i64))])
    }

    pub fn sum_axis(&mut self, x: &str, axis: i64) -> String {
        let axes = self.0.i64_const(&[axis]);
        self.0.node("ReduceSum", &[x, &axes], "", vec![("keepdims", Attr::Int(0))])
    }

    /// `Σ term·w` over the rows with `w > 0`: rows of weight 0 contribute exactly nothing, whatever their term
    /// holds (padding rows, ignored anchors).
    pub fn weighted_sum(&mut self, term: &str, w: &str) -> String {
        let zero = self.scalar(0.0);
        let keep = self.op("Greater", &[w, &zero]);
        let prod = self.op("Mul", &[term, w]);
        let kept = self.op("Where", &[&keep, &prod, &zero]);
        self.0.node("ReduceSum", &[&kept], "", vec![("keepdims", Attr::Int(0))])
    }

    /// `max(Σ w, 1)`: the number of counted rows, 1 when there are none (the term is then 0, not NaN).
    pub fn count(&mut self, w: &str) -> String {
        let s = self.0.node("ReduceSum", &[w], "", vec![("keepdims", Attr::Int(0))]);
        let one = self.scalar(1.0);
        self.op("Max", &[&s, &one])
    }

    /// Stable BCE with logits, element-wise: `relu(x) − x·z + log(1 + exp(−|x|))` (no Softplus: ORT has no
    /// gradient for it).
    pub fn bce_with_logits(&mut self, x: &str, z: &str) -> String {
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
    pub fn smooth_l1(&mut self, diff: &str, beta: f32) -> String {
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
    pub fn cross_entropy(&mut self, logits: &str, labels: &str) -> String {
        self.0.node("SoftmaxCrossEntropyLoss", &[logits, labels], "", vec![("reduction", Attr::Str("none"))])
    }

    /// `x[r, label[r], :]` of `x [R, K, D]` as `[R, 1, D]` (GatherElements, which has a gradient).
    pub fn select_class(&mut self, x: &str, labels: &str, rows: usize, d: usize) -> String {
        let l = self.reshape(labels, &[rows as i64, 1, 1]);
        let shape = self.0.i64_const(&[rows as i64, 1, d as i64]);
        let index = self.op("Expand", &[&l, &shape]);
        self.0.node("GatherElements", &[x, &index], "", vec![("axis", Attr::Int(1))])
    }

    /// RoIAlign as Gather + weighted sum (docs/engine-facts.md): `pooled[r, c, bin] = Σ_t w[r, bin, t] · table[idx[r, bin,
    /// t], c]`, returned as `[rows, C, side, side]`.
    pub fn pool(&mut self, table: &str, idx: &str, w: &str, rows: usize, c: usize, side: usize) -> V {
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
