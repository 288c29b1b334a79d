//! The training worker protocol: how `ticket` talks to `tools/train_worker.py`.
//!
//! # Why a worker
//! Only ONNX Runtime 1.19.2 has training, and no registry package exposes its training C API to Rust (the
//! `onnxruntime` wheel's GetTrainingApi returns NULL; the training wheels hold only a Python module). So
//! training runs through ORT's official Python API (`onnxruntime.training.api`: CheckpointState, Module,
//! Optimizer) in a long-running Python process that the binary starts and drives (docs/engine-facts.md).
//!
//! # Process
//! `python -u <train_worker.py>` with stdin/stdout as the frame stream and stderr as its log. The binary
//! carries `tools/train_worker.py` (`include_str!`) and writes it to a private temporary folder at start, so
//! an installed binary and its worker can never disagree on this protocol. The Python is the training venv
//! `.venv-train` made by `tools/setup.sh` from `tools/requirements-train.txt` (`TICKET_TRAIN_PYTHON` in
//! `tools/env.sh`). The worker moves its stdout away from fd 1 at start-up, so stray prints (Python's or ORT's
//! C++ logging) go to stderr and never corrupt a frame. It exits 0 on `shutdown` or on EOF of stdin.
//!
//! # Framing (both directions)
//! ```text
//! frame   = header_len: u32 little-endian | header: header_len bytes of UTF-8 JSON (an object) | payload
//! payload = the raw bytes of header.tensors, in order, each C-ordered little-endian, no padding
//! header.tensors       = [{"name": str, "dtype": "f32" | "i64", "shape": [int, ...]}, ...]   (may be absent)
//! header.payload_bytes = total payload length (0 or absent when there are no tensors)
//! ```
//! A header is at most 64 MiB. `payload_bytes` is read whole even when the tensor list is malformed, so one
//! bad request never desynchronises the stream. Tensors use two wire types: `f32` and `i64` (the worker
//! widens other ONNX integer and boolean outputs to i64 and other floats to f32). No pickle, no shared
//! memory: a pipe moves a 320² image batch or a 124 MB checkpoint's parameters in milliseconds.
//!
//! # Requests and replies
//! A request header is `{"cmd": <name>, ...arguments}`. Every request gets exactly one reply:
//! `{"ok": true, "cmd": <name>, "result": {...}}` with the result's tensors in the payload, or
//! `{"ok": false, "cmd": <name>, "error": {"kind": "input" | "runtime", "message": str}}`. `input` means the
//! arguments or files were wrong (exit 2 on the Rust side), `runtime` that ORT or the environment failed
//! (exit 3); a Python traceback, if any, goes to stderr. An unparseable frame header gets an error reply with
//! `"cmd": null` and the worker exits 2, since the stream cannot be resynchronised.
//!
//! | cmd | arguments (header) | request tensors | result | reply tensors |
//! |-----|--------------------|-----------------|--------|---------------|
//! | `hello` | – | – | `protocol`, `onnxruntime`, `onnx`, `numpy`, `python`, `providers`, `cuda_libraries`, `pid` | – |
//! | `generate_artifacts` | `model` (path), `requires_grad`, `frozen` (name lists), `optimizer` (`adamw`\|`sgd`\|`momentum`), `momentum`, `weight_decay`, `clip_grad_norm` (`momentum` only, optional), `out` (folder, created) | – | `files` {training_model, eval_model, optimizer_model, checkpoint, manifest}, `eval_batchnorm_fixed`, `outputs` | – |
//! | `open` | `artifacts` (folder), `checkpoint` (path, default `<artifacts>/checkpoint`), `device` (`cpu`\|`cuda`), `threads` (0 = ORT's default) | – | session description (below) | – |
//! | `train_step` | – | every model input, by name | `loss` (null when non-finite), `finite`, `grads_discarded` | the model outputs, loss first |
//! | `eval_step` | – | every model input | as `train_step` (eval model; no gradients) | the eval outputs |
//! | `forward` | `model` (path) | the model's non-parameter inputs | `outputs` (names) | every output of `model`, run by an inference session with the checkpoint's current parameters fed to the inputs named like them |
//! | `optimizer_step` | – | – | `lr`; `grad_norm` (the gradients' L2 norm before clipping) when the optimizer clips | – |
//! | `lazy_reset_grad` | – | – | – | – |
//! | `set_lr` | `lr` | – | `lr` | – |
//! | `get_params` | `names` (null = all) | – | – | the parameters |
//! | `set_params` | – | parameters to overwrite | `names` | – |
//! | `save_checkpoint` | `path`, `include_optimizer_state` (bool) | – | `path`, `bytes` | – |
//! | `load_checkpoint` | `path` | – | session description | – |
//! | `export` | `path`, `outputs` (names) | – | `path` | – |
//! | `shutdown` | – | – | – (then the worker exits 0) | – |
//! | `_crash` | – (test only: exits 17 without a reply) | – | – | – |
//! | `_sleep` | `seconds` (test only: stands for a hung step) | – | – | – |
//!
//! The session description is `train_inputs` [{name, dtype, shape}], `train_outputs`, `eval_inputs`,
//! `eval_outputs`, `params` [{name, shape, requires_grad}], `lr` (null without an optimizer model), `device`.
//!
//! # Semantics worth knowing (each measured with ORT 1.19.2, see tests/train_engine.rs)
//! - The training graph's first output is the loss (a single value); `generate_artifacts` passes `loss=None`.
//!   Shapes are fixed per artifact set: the worker checks input names, dtypes and shapes against the
//!   artifact manifest (`ticket_artifacts.json`) before ORT sees them.
//! - `generate_artifacts` creates the output folder (ORT's generator does not) and drops outputs[1:] of
//!   BatchNormalization nodes with training_mode=0 in eval_model.onnx (ORT 1.19's generator keeps them and the
//!   eval model then fails to load). It writes the manifest: parameter names/shapes, user inputs, outputs.
//! - `open` and `load_checkpoint` check the checkpoint against the manifest by parameter name and shape: ORT
//!   itself would take a foreign checkpoint's missing parameters for user inputs and fail later and obscurely.
//!   Both build the whole session (state, module, optimizer) before replacing the open one, so a failure
//!   leaves the previous session usable.
//! - A non-finite loss in `train_step` makes the worker call `lazy_reset_grad` at once and refuse
//!   `optimizer_step` (an `input` error) until a train_step with a finite loss has run, because ORT's reset is
//!   lazy and the poisoned gradients stay in their buffers until the next backward pass. So those gradients
//!   never reach the parameters.
//! - Masks: W_eff = W · M with M a frozen parameter. Gradients at masked entries are exactly 0, so AdamW
//!   leaves W there unchanged — W itself is zero only if it was zeroed when the mask was applied (do so).
//!   A new mask between rounds is `set_params` on M (and W zeroed at the newly masked entries), with no
//!   artifact regeneration.
//! - Adam moments survive `set_params` and a new optimizer; they are reset by `save_checkpoint` without
//!   optimizer state followed by `load_checkpoint` of that file. `load_checkpoint` keeps the learning rate
//!   last set with `set_lr` (a checkpoint without optimizer state would otherwise fall back to the optimizer
//!   model's default, 1e-3 for AdamW).
//! - Rewind: `get_params` then later `set_params` restores parameters bit for bit.
//! - `save_checkpoint` and `export` write through a temporary file and a rename: the previous file at that path
//!   stays whole if the worker dies mid-write.
//!
//! # CUDA (`--device cuda`)
//! `open` with `device: "cuda"` needs the CUDA build of ORT training, `onnxruntime-training==1.19.2`, in place
//! of `onnxruntime-training-cpu` in `.venv-train`: install `tools/requirements-train-cuda.txt`, which adds the
//! CUDA 11.8 libraries from PyPI (nvidia-cuda-runtime-cu11, -cublas-cu11, -cufft-cu11, -curand-cu11 and
//! nvidia-cudnn-cu11 pinned to 8.9.6.50, since 9.x lacks libcudnn.so.8). ORT 1.19 does not search
//! site-packages for them, so the worker preloads every `nvidia/*/lib/lib*.so*` with RTLD_GLOBAL before
//! importing ORT (listed in hello's `cuda_libraries`). `Worker::start` with `Device::Cuda` refuses a worker
//! whose providers lack `CUDAExecutionProvider`. Newer drivers run CUDA 11.8 code, and 11.8 knows the H100.
//! This path has not run yet: no GPU was available.
use crate::error::{Error, Result};
use ndarray::ArrayD;
use serde_json::{Map, Value};
use std::io::{Read, Write};

/// Bumped whenever a command, argument or reply field changes meaning; `hello` must report the same.
pub const PROTOCOL_VERSION: u64 = 2;
/// The only ONNX Runtime release with training (training packages were deprecated after it).
pub const ORT_TRAINING_VERSION: &str = "1.19.2";
/// Same limit as the worker's: a header is a command description, never bulk data.
pub const MAX_HEADER_BYTES: usize = 64 << 20;

/// A tensor on the wire.
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
}

impl From<ArrayD<f32>> for Tensor {
    fn from(a: ArrayD<f32>) -> Self {
        Tensor::F32(a)
    }
}

impl From<ArrayD<i64>> for Tensor {
    fn from(a: ArrayD<i64>) -> Self {
        Tensor::I64(a)
    }
}

impl Tensor {
    pub fn shape(&self) -> &[usize] {
        match self {
            Tensor::F32(a) => a.shape(),
            Tensor::I64(a) => a.shape(),
        }
    }

    pub fn dtype(&self) -> &'static str {
        match self {
            Tensor::F32(_) => "f32",
            Tensor::I64(_) => "i64",
        }
    }

    pub fn as_f32(&self) -> Option<&ArrayD<f32>> {
        match self {
            Tensor::F32(a) => Some(a),
            Tensor::I64(_) => None,
        }
    }

    pub fn as_i64(&self) -> Option<&ArrayD<i64>> {
        match self {
            Tensor::I64(a) => Some(a),
            Tensor::F32(_) => None,
        }
    }

    fn byte_len(&self) -> usize {
        self.shape().iter().product::<usize>() * if matches!(self, Tensor::F32(_)) { 4 } else { 8 }
    }

    fn write_le(&self, out: &mut Vec<u8>) {
        // `iter` walks logical (C) order whatever the memory layout, which is what the wire wants.
        match self {
            Tensor::F32(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Tensor::I64(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        }
    }
}

/// Encodes one request: `header` (an object, `cmd` included) plus `tensors` in the payload.
pub fn encode_frame(mut header: Map<String, Value>, tensors: &[(&str, &Tensor)]) -> Vec<u8> {
    let descs: Vec<Value> =
        tensors.iter().map(|(name, t)| serde_json::json!({"name": name, "dtype": t.dtype(), "shape": t.shape()})).collect();
    let payload_bytes: usize = tensors.iter().map(|(_, t)| t.byte_len()).sum();
    header.insert("tensors".into(), Value::Array(descs));
    header.insert("payload_bytes".into(), payload_bytes.into());
    let body = serde_json::to_vec(&Value::Object(header)).expect("a JSON map always serialises");
    let mut out = Vec::with_capacity(4 + body.len() + payload_bytes);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    for (_, t) in tensors {
        t.write_le(&mut out);
    }
    out
}

/// One reply as read from the stream: its header object and its tensors.
#[derive(Debug)]
pub struct Frame {
    pub header: Map<String, Value>,
    pub tensors: Vec<(String, Tensor)>,
}

/// Reads one frame. Ok(None) on a clean EOF before a frame; an error on a truncated or malformed frame.
pub fn read_frame(r: &mut impl Read) -> std::io::Result<Option<Frame>> {
    use std::io::{Error as IoError, ErrorKind};
    let bad = |msg: String| IoError::new(ErrorKind::InvalidData, msg);
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_HEADER_BYTES {
        return Err(bad(format!("reply header of {len} bytes is over the {MAX_HEADER_BYTES} byte limit")));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let header = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(bad("reply header is not a JSON object".into())),
        Err(e) => return Err(bad(format!("reply header is not JSON: {e}"))),
    };
    let payload_bytes = header.get("payload_bytes").and_then(Value::as_u64).unwrap_or(0) as usize;
    let mut payload = vec![0u8; payload_bytes];
    r.read_exact(&mut payload)?;
    let tensors = decode_tensors(&header, &payload).map_err(bad)?;
    Ok(Some(Frame { header, tensors }))
}

fn decode_tensors(header: &Map<String, Value>, payload: &[u8]) -> std::result::Result<Vec<(String, Tensor)>, String> {
    let descs = match header.get("tensors") {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(Value::Array(d)) => d,
        Some(_) => return Err("reply 'tensors' is not a list".into()),
    };
    let mut out = Vec::with_capacity(descs.len());
    let mut offset = 0usize;
    for d in descs {
        let name = d.get("name").and_then(Value::as_str).ok_or("reply tensor without a name")?;
        let shape: Vec<usize> = d
            .get("shape")
            .and_then(Value::as_array)
            .and_then(|s| s.iter().map(|v| v.as_u64().map(|v| v as usize)).collect())
            .ok_or_else(|| format!("reply tensor '{name}' has no valid shape"))?;
        let n: usize = shape.iter().product();
        let size = match d.get("dtype").and_then(Value::as_str) {
            Some("f32") => 4,
            Some("i64") => 8,
            other => return Err(format!("reply tensor '{name}' has dtype {other:?}, not f32 or i64")),
        };
        let bytes = payload.get(offset..offset + n * size).ok_or_else(|| format!("reply tensor '{name}' runs past the payload"))?;
        offset += n * size;
        let tensor = if size == 4 {
            let v = bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
            Tensor::F32(ArrayD::from_shape_vec(shape, v).expect("length matches shape"))
        } else {
            let v = bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
            Tensor::I64(ArrayD::from_shape_vec(shape, v).expect("length matches shape"))
        };
        out.push((name.to_string(), tensor));
    }
    if offset != payload.len() {
        return Err(format!("reply payload has {} bytes beyond its tensors", payload.len() - offset));
    }
    Ok(out)
}

/// Writes one already encoded frame and flushes.
pub fn write_frame(w: &mut impl Write, frame: &[u8]) -> std::io::Result<()> {
    w.write_all(frame)?;
    w.flush()
}

/// The error a reply carries, as the crate's error: `input` → Input (exit 2), anything else → Runtime (exit 3).
pub fn reply_error(cmd: &str, header: &Map<String, Value>) -> Error {
    let err = header.get("error");
    let kind = err.and_then(|e| e.get("kind")).and_then(Value::as_str).unwrap_or("runtime");
    let message = err.and_then(|e| e.get("message")).and_then(Value::as_str).unwrap_or("(no message)");
    let text = format!("training worker, {cmd}: {message}");
    match kind {
        "input" => Error::Input(text),
        _ => Error::Runtime(text),
    }
}

/// Checks that a reply answers `cmd` and is not an error; returns its result object.
pub fn reply_result(cmd: &str, frame: &Frame) -> Result<Map<String, Value>> {
    if frame.header.get("ok").and_then(Value::as_bool) != Some(true) {
        return Err(reply_error(cmd, &frame.header));
    }
    let answered = frame.header.get("cmd").and_then(Value::as_str);
    if answered != Some(cmd) {
        return Err(Error::Runtime(format!("training worker answered {answered:?} to {cmd}: protocol out of step")));
    }
    match frame.header.get("result") {
        Some(Value::Object(m)) => Ok(m.clone()),
        None | Some(Value::Null) => Ok(Map::new()),
        Some(_) => Err(Error::Runtime(format!("training worker, {cmd}: the result is not a JSON object"))),
    }
}
