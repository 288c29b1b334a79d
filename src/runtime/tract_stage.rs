//! Runs an emitted stage graph in tract. Plans are optimised once per stage and shape, then reused.
use crate::error::{Error, Result};
use crate::onnx::proto::ModelProto;
use ndarray::ArrayD;
use prost::Message;
use tract_onnx::prelude::*;

/// Sets the threads tract's matrix products (and the sparse kernels) use from now on, process-wide
/// (tract-linalg's `multithread-mm`; without it every stage runs on one core). `n` follows
/// [`super::threads::resolve`]. Nodes still run one after another; small products stay on one thread. Being
/// process-wide, this is the command's to call, once, before it runs any stage.
pub fn set_threads(n: usize) {
    use tract_linalg::multithread::{set_default_executor, Executor};
    let n = super::threads::resolve(n);
    crate::sparse::set_threads(n);
    set_default_executor(if n <= 1 { Executor::SingleThread } else { Executor::multithread(n) });
}

/// The threads [`set_threads`] set (1 before it is called): what the stages' products use, and so what the
/// work between stages may use too.
pub fn threads() -> usize {
    crate::sparse::threads()
}

pub struct TractStage {
    name: String,
    plan: std::sync::Arc<TypedRunnableModel>,
    outputs: Vec<String>,
}

impl TractStage {
    pub fn new(name: &str, model: &ModelProto) -> Result<Self> {
        let err = |e: TractError| Error::Runtime(format!("tract, stage {name}: {e:#}"));
        let bytes = model.encode_to_vec();
        let outputs = model.graph.as_ref().map(|g| g.output.iter().map(|o| o.name().to_string()).collect()).unwrap_or_default();
        // The sparse layers (SparseConv, SparseGemm) the stage graphs may use are ops of this crate.
        let mut onnx = tract_onnx::onnx();
        crate::sparse::tract_op::register(&mut onnx);
        let plan = onnx.model_for_read(&mut &bytes[..]).and_then(|m| m.into_optimized()).and_then(|m| m.into_runnable()).map_err(err)?;
        Ok(TractStage { name: name.to_string(), plan, outputs })
    }

    /// Runs on f32 inputs (in graph input order) and returns the f32 outputs by name.
    pub fn run(&self, inputs: Vec<ArrayD<f32>>) -> Result<Vec<(String, ArrayD<f32>)>> {
        let err = |e: TractError| Error::Runtime(format!("tract, stage {}: {e:#}", self.name));
        let feed: TVec<TValue> = inputs.into_iter().map(|a| Tensor::from(a).into()).collect();
        let out = self.plan.run(feed).map_err(err)?;
        out.into_iter().zip(&self.outputs).map(|(v, n)| Ok((n.clone(), v.to_plain_array_view::<f32>().map_err(err)?.to_owned()))).collect()
    }
}
