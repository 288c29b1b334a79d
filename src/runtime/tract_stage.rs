//! Runs an emitted stage graph in tract. Plans are optimised once per stage and shape, then reused.
use crate::error::{Error, Result};
use crate::onnx::proto::ModelProto;
use ndarray::ArrayD;
use prost::Message;
use tract_onnx::prelude::*;

/// The number of threads `n` stands for: 0 is one per core; never more than [`max_threads`].
pub fn resolve_threads(n: usize) -> usize {
    if n == 0 {
        cores()
    } else {
        n.min(max_threads())
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Environment variable that sets the thread cap instead of 4 × cores.
pub const MAX_THREADS_VAR: &str = "TICKET_MAX_THREADS";

/// The most threads any `--threads` may ask for: 4 × the cores (more only adds switching), or
/// `TICKET_MAX_THREADS` when set to a number.
pub fn max_threads() -> usize {
    std::env::var(MAX_THREADS_VAR).ok().and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n > 0).unwrap_or(4 * cores())
}

/// A `--threads` value, checked once for every command that takes one (tract's matmul threads, ORT's
/// intra-op threads): a number (0 where the command means one per core) of at most [`max_threads`], so that
/// `--threads 10000` is refused before anything starts instead of spawning ten thousand threads.
pub fn parse_threads(s: &str) -> std::result::Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|e| format!("'{s}' is not a thread count: {e}"))?;
    let max = max_threads();
    if n > max {
        let why = if max == 4 * cores() { format!("4 × {} cores", cores()) } else { format!("{MAX_THREADS_VAR}={max}") };
        return Err(format!("{n} threads is more than the {max} allowed ({why}); set {MAX_THREADS_VAR}={n} to allow it"));
    }
    Ok(n)
}

/// Sets the threads tract's matrix products use from now on, process-wide (tract-linalg's `multithread-mm`;
/// without it every stage runs on one core). Nodes still run one after another; small products stay on one
/// thread.
pub fn set_threads(n: usize) {
    use tract_linalg::multithread::{set_default_executor, Executor};
    let n = resolve_threads(n);
    crate::sparse::set_threads(n);
    set_default_executor(if n <= 1 { Executor::SingleThread } else { Executor::multithread(n) });
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
