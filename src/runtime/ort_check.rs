//! Runs a model in ONNX Runtime and compares two models' outputs on the same inputs. The library is loaded at
//! run time (the `onnxruntime` wheel's libonnxruntime.so, found by `runtime::env`: ORT_DYLIB_PATH, else the venv
//! `ticket setup` or tools/setup.sh made), because ort's default download of binaries cannot work offline.
use crate::error::{Error, Result};
use crate::onnx::proto::{tensor_shape_proto::dimension::Value as Dim, type_proto};
use crate::onnx::OnnxModel;
use ndarray::ArrayD;
use ort::session::Session;
use ort::value::{Tensor, ValueType};
use serde::Serialize;
use std::sync::OnceLock;

static ENV: OnceLock<std::result::Result<ort::environment::Environment, String>> = OnceLock::new();

fn environment() -> Result<&'static ort::environment::Environment> {
    ENV.get_or_init(|| {
        // $ORT_DYLIB_PATH, else the data folder's or the checkout's venv (runtime::env).
        let path = super::env::ort_library().map_err(|e| e.to_string())?.display().to_string();
        // ORT's own log lines (warnings about the model, its reasons for rejecting one) would add lines to a
        // one-line error: the reason comes back in the error itself, so the log is dropped.
        let env = ort::init_from(&path)
            .map_err(|e| format!("{path}: cannot load ONNX Runtime: {e}"))?
            .with_name("ticket")
            .with_logger(std::sync::Arc::new(
                |_level: ort::logging::LogLevel, _category: &str, _id: &str, _location: &str, _message: &str| {},
            ))
            .build()
            .map_err(|e| format!("{path}: cannot create an ONNX Runtime environment: {e}"))?;
        env.set_log_level(ort::logging::LogLevel::Fatal);
        Ok(env)
    })
    .as_ref()
    .map_err(|e| Error::Runtime(e.clone()))
}

/// Loads the ONNX Runtime library once (what `ticket doctor` checks); an error says why it cannot.
pub fn load() -> Result<()> {
    environment().map(|_| ())
}

#[derive(Clone, Debug)]
pub enum Output {
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
    /// Types the comparison does not look into (named for the report).
    Other(String),
}

/// Deterministic inputs for every graph input: uniform [0, 1) floats from a fixed generator, with dynamic
/// dimensions set to `dynamic_dim`. Inputs that are not float are refused: the check is for vision models.
pub fn default_inputs(model: &OnnxModel, dynamic_dim: usize) -> Result<Vec<(String, ArrayD<f32>)>> {
    let graph = model.graph();
    let inits: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::new();
    for vi in graph.input.iter().filter(|i| !inits.contains(i.name())) {
        let tensor = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(t)) => t,
            _ => return Err(Error::input(&model.path, format!("graph input '{}' is not a tensor", vi.name()))),
        };
        if tensor.elem_type() != crate::onnx::proto::tensor_proto::DataType::Float as i32 {
            return Err(Error::input(&model.path, format!("graph input '{}' is not float; give inputs explicitly", vi.name())));
        }
        let dims: Vec<usize> = tensor
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(Dim::DimValue(v)) if v > 0 => v as usize,
                        _ => dynamic_dim,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let n: usize = dims.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect();
        out.push((vi.name().to_string(), ArrayD::from_shape_vec(dims, data).expect("shape matches length")));
    }
    Ok(out)
}

/// An error of a working ONNX Runtime about a model: the model is what is wrong (exit 2). Only a runtime that
/// cannot be loaded or set up (see [`environment`]) is the environment's fault (exit 3).
fn rejected(what: &str, e: impl std::fmt::Display) -> Error {
    let msg = e.to_string();
    Error::Input(format!("{what}: ONNX Runtime rejects the model: {}", msg.split_whitespace().collect::<Vec<_>>().join(" ")))
}

/// A session on an encoded model (external data already inlined), intra-op threads on all cores; for callers
/// that run the same model many times (benchmarks), since building one costs more than a run.
pub fn session(model_bytes: &[u8], what: &str) -> Result<Session> {
    session_with_threads(model_bytes, what, 0)
}

/// A session with `threads` intra-op threads (0: one per core), for comparisons at equal thread counts.
pub fn session_with_threads(model_bytes: &[u8], what: &str, threads: usize) -> Result<Session> {
    let env = environment()?;
    let err = |e: ort::Error| rejected(what, e);
    let threads = crate::runtime::threads::resolve(threads);
    Session::builder(env).map_err(err)?.with_intra_threads(threads).map_err(|e| err(e.into()))?.commit_from_memory(model_bytes).map_err(err)
}

/// Runs an encoded model (external data already inlined) on the given inputs, returning outputs by name.
pub fn run(model_bytes: &[u8], inputs: &[(String, ArrayD<f32>)], what: &str) -> Result<Vec<(String, Output)>> {
    let err = |e: ort::Error| rejected(what, e);
    let mut session = session(model_bytes, what)?;
    let mut feed = Vec::new();
    for (name, arr) in inputs {
        let t = Tensor::from_array(arr.clone()).map_err(err)?;
        feed.push((std::borrow::Cow::from(name.clone()), ort::session::SessionInputValue::from(t)));
    }
    let outputs = session.run(feed).map_err(err)?;
    let mut out = Vec::new();
    for (name, value) in outputs.iter() {
        let o = match value.dtype() {
            ValueType::Tensor { ty: ort::value::TensorElementType::Float32, .. } => {
                Output::F32(value.try_extract_array::<f32>().map_err(err)?.to_owned())
            }
            ValueType::Tensor { ty: ort::value::TensorElementType::Int64, .. } => {
                Output::I64(value.try_extract_array::<i64>().map_err(err)?.to_owned())
            }
            other => Output::Other(format!("{other:?}")),
        };
        out.push((name.to_string(), o));
    }
    Ok(out)
}

#[derive(Clone, Debug, Serialize)]
pub struct OutputDiff {
    pub name: String,
    pub shape: Vec<usize>,
    pub same_shape: bool,
    pub max_abs_diff: f64,
}

/// Compares two runs output by output; shapes must agree and values are compared element-wise.
pub fn compare(a: &[(String, Output)], b: &[(String, Output)]) -> Vec<OutputDiff> {
    a.iter()
        .map(|(name, oa)| {
            let ob = b.iter().find(|(n, _)| n == name).map(|(_, o)| o);
            let (shape, same_shape, max) = match (oa, ob) {
                (Output::F32(x), Some(Output::F32(y))) if x.shape() == y.shape() => {
                    (x.shape().to_vec(), true, x.iter().zip(y).map(|(p, q)| (*p as f64 - *q as f64).abs()).fold(0.0, f64::max))
                }
                (Output::I64(x), Some(Output::I64(y))) if x.shape() == y.shape() => {
                    (x.shape().to_vec(), true, x.iter().zip(y).map(|(p, q)| (*p - *q).unsigned_abs() as f64).fold(0.0, f64::max))
                }
                (Output::F32(x), _) => (x.shape().to_vec(), false, f64::INFINITY),
                (Output::I64(x), _) => (x.shape().to_vec(), false, f64::INFINITY),
                (Output::Other(_), _) => (vec![], ob.is_some(), 0.0),
            };
            OutputDiff { name: name.clone(), shape, same_shape, max_abs_diff: max }
        })
        .collect()
}
