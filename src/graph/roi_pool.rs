//! RoIAlign in an emitted graph, from the inputs [`TrainShape::pool_inputs`] names: the training core's (box,
//! mask and keypoint heads) and the distilling teacher's, which reads the same step inputs. ORT has no RoiAlign
//! gradient (docs/engine-facts.md), so the pooling is spelled with differentiable operators, in one of two forms
//! ([`Pooling`]): taps gathered from a feature table, or two matrix products per level with interpolation
//! matrices (`detect::roi_planes`).
use super::builder::GraphBuilder;
use super::loss_ops::Ops;
use super::net::V;
use super::train_shape::{Pooling, TrainShape};

/// What pooling reads of P2..P5, built once and shared by every head that pools.
pub enum RoiFeatures {
    /// P2..P5 as rows `[Σ_l B·H_l·W_l, C]` (`detect::roi_align::feature_table` order).
    Table { table: String, c: usize },
    /// Each level as `[B, H_l, W_l·C]` (channel-last rows), with its width.
    Planes { levels: Vec<(String, usize)>, c: usize },
}

impl RoiFeatures {
    /// The form `shape` pools with, from the FPN levels `[B, C, H, W]` (P2..P5 first; more are ignored).
    pub fn new(b: &mut GraphBuilder, levels: &[V], shape: &TrainShape) -> RoiFeatures {
        let levels = &levels[..4];
        let c = levels[0].shape[1];
        match shape.pooling() {
            Pooling::Taps => RoiFeatures::Table { table: Ops(b).feature_table(levels), c },
            Pooling::Planes => {
                let mut ops = Ops(b);
                let levels = levels
                    .iter()
                    .map(|f| {
                        let [bs, c, h, w] = f.shape;
                        let t = ops.transpose(&f.name, &[0, 2, 3, 1]);
                        (ops.reshape(&t, &[bs as i64, h as i64, (w * c) as i64]), w)
                    })
                    .collect();
                RoiFeatures::Planes { levels, c }
            }
        }
    }

    /// RoIAlign of `rows` RoIs (image-major, the same count per image) from `inputs`, the graph inputs of
    /// [`TrainShape::pool_inputs`] in its order: `[rows, C, side, side]`.
    pub fn pool(&self, b: &mut GraphBuilder, inputs: &[String], rows: usize, side: usize) -> V {
        let mut g = Ops(b);
        match self {
            RoiFeatures::Table { table, c } => g.pool(table, &inputs[0], &inputs[1], rows, *c, side),
            RoiFeatures::Planes { levels, c } => {
                let (r, p, c) = (rows as i64, side as i64, *c as i64);
                let mut sum: Option<String> = None;
                for ((f, w), pair) in levels.iter().zip(inputs.chunks(2)) {
                    // [B, per·P, H] · [B, H, W·C] → [B, per·P, W·C] = [rows, P (y), W, C]
                    let t = g.op("MatMul", &[&pair[0], f]);
                    let t = g.reshape(&t, &[r, p, *w as i64, c]);
                    // [rows, 1, P (x), W] · [rows, P (y), W, C] → [rows, P (y), P (x), C]
                    let o = g.op("MatMul", &[&pair[1], &t]);
                    sum = Some(match sum {
                        None => o,
                        Some(s) => g.op("Add", &[&s, &o]),
                    });
                }
                let pooled = g.reshape(&sum.expect("four levels"), &[r, p * p, c]);
                let pooled = g.transpose(&pooled, &[0, 2, 1]);
                V { name: g.reshape(&pooled, &[r, c, p, p]), shape: [rows, c as usize, side, side] }
            }
        }
    }
}
