//! The sparse layers as tract ops, so a stage stays one tract plan. The stage graphs name them
//! `SparseConv` (attributes kernel_shape, strides, pads as Conv, and relu = 1 for a fused ReLU) and
//! `SparseGemm` (a Gemm with transB = 1) in the domain [`DOMAIN`]. The weight comes in one of two forms:
//! - dense: inputs X, W, optional B (W as Conv's or Gemm's);
//! - packed, with the attribute [`WEIGHT_SHAPE`]: inputs X, the bitmap of W's non-zero positions (uint8, bit
//!   `i % 8` of byte `i / 8`), the non-zero values in order (float), optional B — a compact ticket file's form,
//!   so a graph carries no dense copy of a sparse weight.
//!
//! W (or bitmap and values) and B must be initializers. At load, the ONNX node is an expansion whose `wire`
//! packs the constant weights once for the input shape it sees and wires a [`SparseOp`] that only takes the
//! activations.
use super::conv::{ConvGeom, SparseConv, SparseGemm};
use super::kernel::Isa;
use super::layer::WeightsIn;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

pub const DOMAIN: &str = "ai.ticket";
/// The attribute that marks a packed weight and gives its dense shape.
pub const WEIGHT_SHAPE: &str = "weight_shape";

/// Adds `SparseConv` and `SparseGemm` to an ONNX loader's op registry.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert("SparseConv", sparse_conv);
    onnx.op_register.insert("SparseGemm", sparse_gemm);
}

fn weight_shape(node: &NodeProto) -> TractResult<Option<Vec<usize>>> {
    Ok(node.get_attr_opt_tvec::<usize>(WEIGHT_SHAPE)?.map(|s| s.to_vec()))
}

fn sparse_conv(_ctx: &tract_onnx::model::ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let kernel: TVec<usize> = node.get_attr_tvec("kernel_shape")?;
    let strides: TVec<usize> = node.get_attr_opt_tvec("strides")?.unwrap_or_else(|| tvec![1, 1]);
    let pads: TVec<usize> = node.get_attr_opt_tvec("pads")?.unwrap_or_else(|| tvec![0; 4]);
    if kernel.len() != 2
        || kernel[0] != kernel[1]
        || strides.len() != 2
        || strides[0] != strides[1]
        || pads.len() != 4
        || pads.iter().any(|&p| p != pads[0])
    {
        bail!("SparseConv {}: square kernels, strides and pads only", node.name);
    }
    let relu = node.get_attr_opt::<i64>("relu")?.unwrap_or(0) != 0;
    let packed = weight_shape(node)?;
    Ok((expand(SparseExpansion::Conv { kernel: kernel[0], stride: strides[0], pad: pads[0], relu, packed }), vec![]))
}

fn sparse_gemm(_ctx: &tract_onnx::model::ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    if node.get_attr_opt::<i64>("transB")?.unwrap_or(0) != 1 || node.get_attr_opt::<i64>("transA")?.unwrap_or(0) != 0 {
        bail!("SparseGemm {}: transA = 0, transB = 1 only", node.name);
    }
    Ok((expand(SparseExpansion::Gemm { packed: weight_shape(node)? }), vec![]))
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SparseExpansion {
    /// `relu`: the conv's ReLU applied as it writes its output.
    Conv {
        kernel: usize,
        stride: usize,
        pad: usize,
        relu: bool,
        /// The weight's shape when it comes packed (bitmap and values).
        packed: Option<Vec<usize>>,
    },
    Gemm {
        packed: Option<Vec<usize>>,
    },
}

impl SparseExpansion {
    fn packed(&self) -> Option<&[usize]> {
        match self {
            SparseExpansion::Conv { packed, .. } | SparseExpansion::Gemm { packed } => packed.as_deref(),
        }
    }

    /// Inputs the weight takes (after X): W, or bitmap and values.
    fn weight_inputs(&self) -> usize {
        1 + usize::from(self.packed().is_some())
    }
}

fn out_dim(i: &TDim, k: usize, s: usize, p: usize) -> TDim {
    i.to_usize().map(|i| TDim::from((i + 2 * p).saturating_sub(k) / s + 1)).unwrap_or_else(|_| (i.clone() + 2 * p - k) / s + 1)
}

/// Input `i` of a node being wired, which must be a constant of type `T`.
fn constant<T: Datum>(model: &TypedModel, inputs: &[OutletId], i: usize, prefix: &str) -> TractResult<Arc<Tensor>> {
    let t = model.outlet_fact(inputs[i])?.konst.clone().with_context(|| format!("{prefix}: input {i} must be a constant"))?;
    if t.datum_type() != T::datum_type() {
        bail!("{prefix}: input {i} must be {:?}", T::datum_type());
    }
    Ok(t)
}

impl Expansion for SparseExpansion {
    fn name(&self) -> StaticName {
        match self {
            SparseExpansion::Conv { .. } => "SparseConv".into(),
            SparseExpansion::Gemm { .. } => "SparseGemm".into(),
        }
    }

    fn rules<'r, 'p: 'r, 's: 'r>(&'s self, s: &mut Solver<'r>, inputs: &'p [TensorProxy], outputs: &'p [TensorProxy]) -> InferenceResult {
        let w = self.weight_inputs();
        if inputs.len() != 1 + w && inputs.len() != 2 + w {
            bail!("{} takes {} or {} inputs, got {}", self.name(), 1 + w, 2 + w, inputs.len());
        }
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        match self.packed() {
            Some(shape) => s.equals(&outputs[0].shape[1], TDim::from(shape.first().copied().unwrap_or(0)))?,
            None => s.equals(&outputs[0].shape[1], &inputs[1].shape[0])?,
        }
        let rank = if matches!(self, SparseExpansion::Conv { .. }) { 4 } else { 2 };
        s.equals(&inputs[0].rank, rank)?;
        s.equals(&outputs[0].rank, rank)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        if let SparseExpansion::Conv { kernel, stride, pad, .. } = *self {
            s.given(&inputs[0].shape[2], move |s, h| s.equals(&outputs[0].shape[2], out_dim(&h, kernel, stride, pad)))?;
            s.given(&inputs[0].shape[3], move |s, w| s.equals(&outputs[0].shape[3], out_dim(&w, kernel, stride, pad)))?;
        }
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let shape: TVec<usize> = model
            .outlet_fact(inputs[0])?
            .shape
            .iter()
            .map(|d| d.to_usize().ok())
            .collect::<Option<_>>()
            .with_context(|| format!("{prefix}: the input shape must be concrete"))?;
        let nw = self.weight_inputs();
        let b = if inputs.len() > 1 + nw { Some(constant::<f32>(model, inputs, 1 + nw, prefix)?) } else { None };
        let bv = b.as_ref().map(|b| b.try_as_plain_ram()).transpose()?;
        let bv = bv.as_ref().map(|b| b.as_slice::<f32>()).transpose()?;
        let layer = match self.packed() {
            Some(ws) => {
                let (bits, values) = (constant::<u8>(model, inputs, 1, prefix)?, constant::<f32>(model, inputs, 2, prefix)?);
                let (bits, values) = (bits.try_as_plain_ram()?, values.try_as_plain_ram()?);
                let len = ws.iter().product();
                let weights = WeightsIn::Bitmap { len, bits: bits.as_slice::<u8>()?, values: values.as_slice::<f32>()? };
                self.layer(prefix, &shape, ws, weights, bv)?
            }
            None => {
                let w = constant::<f32>(model, inputs, 1, prefix)?;
                let wv = w.try_as_plain_ram()?;
                self.layer(prefix, &shape, w.shape(), WeightsIn::Dense(wv.as_slice::<f32>()?), bv)?
            }
        };
        model.wire_node(prefix, SparseOp { layer: Arc::new(layer) }, &inputs[..1])
    }
}

impl SparseExpansion {
    /// The packed layer for input `shape` and weights of shape `ws`.
    fn layer(&self, prefix: &str, shape: &[usize], ws: &[usize], weights: WeightsIn, bias: Option<&[f32]>) -> TractResult<Layer> {
        Ok(match *self {
            SparseExpansion::Conv { kernel, stride, pad, relu, .. } => {
                if ws.len() != 4 || ws[2] != kernel || ws[3] != kernel || shape.len() != 4 || ws[1] != shape[1] {
                    bail!("{prefix}: weight shape {ws:?} does not fit input {shape:?} and kernel {kernel}");
                }
                let geom = ConvGeom { cin: ws[1], cout: ws[0], kernel, stride, pad, height: shape[2], width: shape[3] };
                let mut conv = SparseConv::packing(Isa::detect(), geom, weights, bias).map_err(|e| format_err!("{prefix}: {e}"))?;
                conv.relu = relu;
                Layer::Conv { batch: shape[0], conv }
            }
            SparseExpansion::Gemm { .. } => {
                if ws.len() != 2 || shape.len() != 2 || ws[1] != shape[1] {
                    bail!("{prefix}: weight shape {ws:?} does not fit input {shape:?}");
                }
                let gemm = SparseGemm::packing(Isa::detect(), shape[0], weights, ws[0], ws[1], bias);
                Layer::Gemm(gemm.map_err(|e| format_err!("{prefix}: {e}"))?)
            }
        })
    }
}

#[derive(Debug)]
pub enum Layer {
    Conv { batch: usize, conv: SparseConv },
    Gemm(SparseGemm),
}

impl Layer {
    pub fn output_shape(&self) -> TVec<usize> {
        match self {
            Layer::Conv { batch, conv } => {
                let (ho, wo) = conv.geom.out_hw();
                tvec![*batch, conv.geom.cout, ho, wo]
            }
            Layer::Gemm(g) => tvec![g.n, g.m],
        }
    }

    pub fn run(&self, x: &[f32], threads: usize) -> crate::Result<Vec<f32>> {
        match self {
            Layer::Conv { batch, conv } => conv.run(x, *batch, threads),
            Layer::Gemm(g) => g.run(x, threads),
        }
    }
}

/// A packed sparse layer in a typed tract model: one input (the activations), one output.
#[derive(Clone, Debug)]
pub struct SparseOp {
    pub layer: Arc<Layer>,
}

impl PartialEq for SparseOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.layer, &other.layer)
    }
}
impl Eq for SparseOp {}

impl Op for SparseOp {
    fn name(&self) -> StaticName {
        match &*self.layer {
            Layer::Conv { .. } => "SparseConv".into(),
            Layer::Gemm(_) => "SparseGemm".into(),
        }
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let (nnz, dense) = match &*self.layer {
            Layer::Conv { conv, .. } => (conv.nnz(), conv.geom.cout * conv.geom.cin * conv.geom.kernel * conv.geom.kernel),
            Layer::Gemm(g) => (g.nnz(), g.m * g.k),
        };
        Ok(vec![format!("{nnz} non-zeros of {dense}")])
    }

    op_as_typed_op!();
}

impl EvalOp for SparseOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let view = x.try_as_plain_ram()?;
        let y = self.layer.run(view.as_slice::<f32>()?, super::threads()).map_err(|e| format_err!("{e}"))?;
        let y = tract_ndarray::ArrayD::from_shape_vec(self.layer.output_shape().to_vec(), y)?;
        Ok(tvec!(Tensor::from(y).into_tvalue()))
    }
}

impl TypedOp for SparseOp {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        if inputs[0].datum_type != f32::datum_type() {
            bail!("{}: f32 input only", self.name());
        }
        Ok(tvec!(f32::fact(self.layer.output_shape())))
    }
}
