//! The Rust side of the training worker: starts `tools/train_worker.py` in the training venv, checks who
//! answered, and turns each protocol command (src/train/protocol.rs) into a typed method.
//!
//! Failure handling is the point of this file. Every call has a deadline (a hung worker is killed and
//! reported), a dead worker (EOF, non-zero exit) becomes a Runtime error with the tail of its stderr, and
//! after such a failure every further call says the worker is gone instead of blocking.
use super::protocol::{self, Frame, Tensor, ORT_TRAINING_VERSION, PROTOCOL_VERSION};
use crate::error::{Error, Result, WriteContext};
use ndarray::ArrayD;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The worker script, carried by the binary so that binary and worker always speak the same protocol.
const WORKER_SOURCE: &str = include_str!("../../tools/train_worker.py");
/// Lines of the worker's stderr kept for error messages.
const STDERR_TAIL_LINES: usize = 25;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda,
}

impl Device {
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda),
            _ => Err(Error::setting("device", format!("`device` must be cpu or cuda, got '{s}'"))),
        }
    }
}

/// How parameters move. `Sgd` and `AdamW` are ORT's optimizer models (ORT's AdamW without weight decay;
/// its SGD has neither momentum nor weight decay); `Momentum` is torch's SGD with momentum and weight decay,
/// applied by the worker to ORT's gradients (torchvision's detection recipe).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    AdamW,
    Sgd,
    Momentum { momentum: f32, weight_decay: f32, clip_grad_norm: Option<f32> },
}

impl Optimizer {
    fn as_str(self) -> &'static str {
        match self {
            Optimizer::AdamW => "adamw",
            Optimizer::Sgd => "sgd",
            Optimizer::Momentum { .. } => "momentum",
        }
    }
}

#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Deadline of every command after `hello`; a worker that misses it is killed.
    pub timeout: Duration,
    /// Deadline of start-up and `hello` (importing ORT from a cold disk takes seconds).
    pub start_timeout: Duration,
    /// Run this script instead of the copy carried by the binary (worker development).
    pub script: Option<PathBuf>,
    /// ORT intra-op threads; 0 lets ORT choose (one per core).
    pub threads: usize,
    /// Write ONNX Runtime's per-operator profile of the training session (chrome-trace JSON) to files starting
    /// with this path; they are complete once the worker has shut down.
    pub profile: Option<PathBuf>,
}

/// Environment variable that sets the deadline of a worker command in seconds instead of 900.
pub const TIMEOUT_VAR: &str = "TICKET_WORKER_TIMEOUT";

impl Default for WorkerOptions {
    fn default() -> Self {
        // A detector training step is 4–8 s on 2 cores and artifact generation for R50 well under a minute;
        // 15 minutes only catches a worker that is really stuck (a slower machine can raise it).
        let timeout = std::env::var(TIMEOUT_VAR).ok().and_then(|v| v.trim().parse::<f64>().ok()).filter(|&s| s > 0.0 && s.is_finite());
        WorkerOptions {
            timeout: timeout.map_or(Duration::from_secs(900), Duration::from_secs_f64),
            start_timeout: Duration::from_secs(120),
            script: None,
            threads: 0,
            profile: None,
        }
    }
}

/// What `hello` reported.
#[derive(Clone, Debug)]
pub struct Versions {
    pub protocol: u64,
    pub onnxruntime: String,
    pub onnx: String,
    pub python: String,
    pub providers: Vec<String>,
}

/// The files of one artifact set, as `generate_artifacts` wrote them.
#[derive(Clone, Debug)]
pub struct Artifacts {
    pub folder: PathBuf,
    pub training_model: PathBuf,
    pub eval_model: PathBuf,
    pub optimizer_model: PathBuf,
    /// The initial checkpoint: the graph's initializers as parameters.
    pub checkpoint: PathBuf,
    /// BatchNormalization nodes whose extra outputs were dropped from the eval model (ORT 1.19 bug).
    pub eval_batchnorm_fixed: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub dtype: String,
    /// None for a symbolic dimension (artifacts need fixed shapes; the first step would fail).
    pub shape: Vec<Option<usize>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub requires_grad: bool,
}

/// What an open session takes and gives.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub train_inputs: Vec<InputSpec>,
    pub train_outputs: Vec<String>,
    pub eval_outputs: Vec<String>,
    pub params: Vec<ParamSpec>,
    pub lr: Option<f32>,
}

/// One training or eval step: the loss (the graph's first output) and every output, loss first.
#[derive(Clone, Debug)]
pub struct StepOutput {
    pub loss: f32,
    pub outputs: Vec<(String, Tensor)>,
}

impl StepOutput {
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.outputs.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

/// Parameters by name (weights, masks), as `get_params` returns and `set_params` takes them.
pub type Params = BTreeMap<String, ArrayD<f32>>;

/// A running training worker. Calls are synchronous: one command in flight at a time.
pub struct Worker {
    child: Child,
    /// Encoded frames for the writer thread; dropping it closes the worker's stdin.
    to_worker: Option<Sender<Vec<u8>>>,
    from_worker: Receiver<std::io::Result<Option<Frame>>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_done: Receiver<()>,
    timeout: Duration,
    device: Device,
    threads: usize,
    versions: Versions,
    /// Why the worker is gone, once it is: later calls fail with this instead of blocking.
    dead: Option<String>,
    /// The checkpoint last saved or loaded: named when a step fails, because that file is what survives.
    last_checkpoint: Option<PathBuf>,
    _script_dir: Option<tempfile::TempDir>,
}

/// The worker's script: the caller's (tests), or the embedded source written to a private temporary folder that
/// lives as long as the worker.
fn worker_script(options: &WorkerOptions) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    if let Some(p) = &options.script {
        return Ok((p.clone(), None));
    }
    let dir = tempfile::Builder::new()
        .prefix("ticket-train-worker-")
        .tempdir()
        .map_err(|e| Error::Runtime(format!("cannot create a folder for the training worker: {e}")))?;
    let path = dir.path().join("train_worker.py");
    std::fs::write(&path, WORKER_SOURCE).writing_context(&path, "cannot write the training worker")?;
    Ok((path, Some(dir)))
}

/// A worker's reply: its JSON fields and the tensors that came with them.
type Reply = (Map<String, Value>, Vec<(String, Tensor)>);

impl Worker {
    /// Starts the worker with `python` (the training venv's, `TICKET_TRAIN_PYTHON`) and checks its versions.
    pub fn start(python: &Path, device: Device) -> Result<Worker> {
        Worker::start_with(python, device, WorkerOptions::default())
    }

    pub fn start_with(python: &Path, device: Device, options: WorkerOptions) -> Result<Worker> {
        let setup_hint = "run `ticket setup`, or run tools/setup.sh (it creates .venv-train) and source tools/env.sh (TICKET_TRAIN_PYTHON)";
        if !python.is_file() {
            return Err(Error::Runtime(format!("training Python {} does not exist: {setup_hint}", python.display())));
        }
        let (script, script_dir) = worker_script(&options)?;
        let mut command = Command::new(python);
        if let Some(prefix) = &options.profile {
            command.env("TICKET_ORT_PROFILE", prefix);
        }
        command.arg("-u").arg(&script).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = crate::runtime::child::spawn_tied(command)
            .map_err(|e| Error::Runtime(format!("cannot start the training worker with {}: {e}; {setup_hint}", python.display())))?;

        let stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");

        let (to_worker, writer_rx) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || write_loop(stdin, writer_rx));
        let (reader_tx, from_worker) = mpsc::channel();
        std::thread::spawn(move || loop {
            let frame = protocol::read_frame(&mut stdout);
            let end = !matches!(frame, Ok(Some(_)));
            if reader_tx.send(frame).is_err() || end {
                break;
            }
        });
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let (done_tx, stderr_done) = mpsc::channel();
        let tail = Arc::clone(&stderr_tail);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut t = tail.lock().expect("stderr tail lock");
                if t.len() == STDERR_TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
            let _ = done_tx.send(());
        });

        let mut worker = Worker {
            child,
            to_worker: Some(to_worker),
            from_worker,
            stderr_tail,
            stderr_done,
            timeout: options.start_timeout,
            device,
            threads: options.threads,
            versions: Versions { protocol: 0, onnxruntime: String::new(), onnx: String::new(), python: String::new(), providers: vec![] },
            dead: None,
            last_checkpoint: None,
            _script_dir: script_dir,
        };
        worker.hello(python, &script, setup_hint)?;
        worker.timeout = options.timeout;
        Ok(worker)
    }

    /// The first call: the worker's protocol, onnxruntime version and providers, checked against this binary's.
    fn hello(&mut self, python: &Path, script: &Path, setup_hint: &str) -> Result<()> {
        let hello = self.call("hello", Map::new(), &[]).map_err(|e| match e {
            Error::Runtime(m) | Error::Input(m) => {
                Error::Runtime(format!("{m} (is {} the training venv's Python? {setup_hint})", python.display()))
            }
            other => other,
        })?;
        let result = hello.0;
        let s = |k: &str| result.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        self.versions = Versions {
            protocol: result.get("protocol").and_then(Value::as_u64).unwrap_or(0),
            onnxruntime: s("onnxruntime"),
            onnx: s("onnx"),
            python: s("python"),
            providers: str_list(&result, "providers"),
        };
        let v = &self.versions;
        if v.protocol != PROTOCOL_VERSION {
            return Err(Error::Runtime(format!(
                "{} speaks training protocol {}, this binary {}",
                script.display(),
                v.protocol,
                PROTOCOL_VERSION
            )));
        }
        if v.onnxruntime != ORT_TRAINING_VERSION {
            return Err(Error::Runtime(format!(
                "the training worker runs onnxruntime {}, training needs {ORT_TRAINING_VERSION} (onnxruntime-training-cpu): {setup_hint}",
                v.onnxruntime
            )));
        }
        if self.device == Device::Cuda && !v.providers.iter().any(|p| p == "CUDAExecutionProvider") {
            return Err(Error::Runtime(format!(
                "--device cuda: the training venv's onnxruntime has no CUDA provider (providers: {}); install \
                 tools/requirements-train-cuda.txt into .venv-train (see src/train/protocol.rs, CUDA)",
                v.providers.join(", ")
            )));
        }
        Ok(())
    }

    pub fn versions(&self) -> &Versions {
        &self.versions
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// The worker's process id (tests kill it to play a crash).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Writes training_model.onnx, eval_model.onnx, optimizer_model.onnx, checkpoint and the manifest into
    /// `out` (created). `model`'s first output must be the loss.
    pub fn generate_artifacts(
        &mut self,
        model: &Path,
        requires_grad: &[&str],
        frozen: &[&str],
        optimizer: Optimizer,
        out: &Path,
    ) -> Result<Artifacts> {
        let args = obj(json!({
            "model": path_str(model)?, "requires_grad": requires_grad, "frozen": frozen,
            "optimizer": optimizer.as_str(), "out": path_str(out)?,
        }));
        let mut args = args;
        if let Optimizer::Momentum { momentum, weight_decay, clip_grad_norm } = optimizer {
            args.insert("momentum".into(), json!(momentum));
            args.insert("weight_decay".into(), json!(weight_decay));
            if let Some(c) = clip_grad_norm {
                args.insert("clip_grad_norm".into(), json!(c));
            }
        }
        let (result, _) = self.call("generate_artifacts", args, &[])?;
        let file = |k: &str| -> Result<PathBuf> {
            result
                .get("files")
                .and_then(|f| f.get(k))
                .and_then(Value::as_str)
                .map(PathBuf::from)
                .ok_or_else(|| Error::Runtime(format!("training worker, generate_artifacts: no '{k}' in the reply")))
        };
        Ok(Artifacts {
            folder: out.to_path_buf(),
            training_model: file("training_model")?,
            eval_model: file("eval_model")?,
            optimizer_model: file("optimizer_model")?,
            checkpoint: file("checkpoint")?,
            eval_batchnorm_fixed: result.get("eval_batchnorm_fixed").and_then(Value::as_u64).unwrap_or(0) as usize,
        })
    }

    /// Opens an artifact set with `checkpoint` (default: the artifact folder's initial checkpoint).
    pub fn open(&mut self, artifacts: &Path, checkpoint: Option<&Path>) -> Result<SessionInfo> {
        let mut args = obj(json!({"artifacts": path_str(artifacts)?, "device": self.device.as_str(), "threads": self.threads}));
        if let Some(c) = checkpoint {
            args.insert("checkpoint".into(), path_str(c)?.into());
        }
        let (result, _) = self.call("open", args, &[])?;
        self.last_checkpoint = Some(checkpoint.map(Path::to_path_buf).unwrap_or_else(|| artifacts.join("checkpoint")));
        session_info(&result)
    }

    /// One forward + backward pass; gradients accumulate until `lazy_reset_grad`. A non-finite loss is a
    /// Check error: the worker has already discarded those gradients, the parameters are unchanged.
    pub fn train_step(&mut self, inputs: &[(&str, Tensor)]) -> Result<StepOutput> {
        let out = self.step("train_step", inputs)?;
        if !out.loss.is_finite() {
            let last = match &self.last_checkpoint {
                Some(p) => format!("; the last checkpoint, {}, is intact", p.display()),
                None => String::new(),
            };
            // No step number here: this worker may be a resumed run's, whose count starts again at 1; the
            // training loop names the run's own step.
            return Err(Error::Check(format!(
                "the loss is {} (non-finite); its gradients were discarded and the parameters are unchanged{last}",
                out.loss
            )));
        }
        Ok(out)
    }

    /// A forward pass of the eval model (no gradients). A non-finite loss is returned as it is.
    pub fn eval_step(&mut self, inputs: &[(&str, Tensor)]) -> Result<StepOutput> {
        self.step("eval_step", inputs)
    }

    fn step(&mut self, cmd: &str, inputs: &[(&str, Tensor)]) -> Result<StepOutput> {
        let refs: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (*n, t)).collect();
        let (_, outputs) = self.call(cmd, Map::new(), &refs)?;
        let loss = match outputs.first() {
            Some((_, Tensor::F32(a))) if a.len() == 1 => a.iter().next().copied().expect("one value"),
            Some((name, t)) => {
                return Err(Error::Input(format!(
                    "training worker, {cmd}: the first output '{name}' must be the loss (one f32 value), it is {} {:?}",
                    t.dtype(),
                    t.shape()
                )))
            }
            None => return Err(Error::Runtime(format!("training worker, {cmd}: the model returned no outputs"))),
        };
        Ok(StepOutput { loss, outputs })
    }

    /// Runs the inference graph at `model` with the current parameters: its inputs named like checkpoint
    /// parameters are fed from the open session, `inputs` give the rest. Returns every output by name.
    pub fn forward(&mut self, model: &Path, inputs: &[(&str, &Tensor)]) -> Result<Vec<(String, Tensor)>> {
        let (_, outputs) = self.call("forward", obj(json!({ "model": path_str(model)? })), inputs)?;
        Ok(outputs)
    }

    /// Applies the gradients of the last train_step; returns their global L2 norm before clipping when the
    /// optimizer clips (`Momentum` with `clip_grad_norm`).
    pub fn optimizer_step(&mut self) -> Result<Option<f32>> {
        let (result, _) = self.call("optimizer_step", Map::new(), &[])?;
        Ok(result.get("grad_norm").and_then(Value::as_f64).map(|v| v as f32))
    }

    pub fn lazy_reset_grad(&mut self) -> Result<()> {
        self.call("lazy_reset_grad", Map::new(), &[]).map(drop)
    }

    /// Sets the learning rate; returns it as the optimizer holds it (f32).
    pub fn set_lr(&mut self, lr: f32) -> Result<f32> {
        let (result, _) = self.call("set_lr", obj(json!({"lr": lr})), &[])?;
        Ok(result.get("lr").and_then(Value::as_f64).unwrap_or(lr as f64) as f32)
    }

    /// The current parameters named in `names`, or all of them.
    pub fn get_params(&mut self, names: Option<&[&str]>) -> Result<Params> {
        let (_, tensors) = self.call("get_params", obj(json!({ "names": names })), &[])?;
        tensors
            .into_iter()
            .map(|(n, t)| match t {
                Tensor::F32(a) => Ok((n, a)),
                Tensor::I64(_) => Err(Error::Runtime(format!("training worker, get_params: parameter '{n}' is not float"))),
            })
            .collect()
    }

    /// Overwrites parameters (a new mask, rewound weights). All are checked before any is written.
    pub fn set_params(&mut self, params: &Params) -> Result<()> {
        let tensors: Vec<(String, Tensor)> = params.iter().map(|(n, a)| (n.clone(), Tensor::F32(a.clone()))).collect();
        let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        self.call("set_params", Map::new(), &refs).map(drop)
    }

    /// Saves the parameters (and, if asked, the optimizer state); returns the file's size in bytes.
    pub fn save_checkpoint(&mut self, path: &Path, include_optimizer_state: bool) -> Result<u64> {
        let args = obj(json!({"path": path_str(path)?, "include_optimizer_state": include_optimizer_state}));
        let (result, _) = self.call("save_checkpoint", args, &[])?;
        self.last_checkpoint = Some(path.to_path_buf());
        Ok(result.get("bytes").and_then(Value::as_u64).unwrap_or(0))
    }

    /// Replaces the session's state with a checkpoint of the same artifact set. Loading one saved without
    /// optimizer state is how Adam's moments are reset; the learning rate last set is kept.
    pub fn load_checkpoint(&mut self, path: &Path) -> Result<SessionInfo> {
        let (result, _) = self.call("load_checkpoint", obj(json!({"path": path_str(path)?})), &[])?;
        self.last_checkpoint = Some(path.to_path_buf());
        session_info(&result)
    }

    /// Writes an inference model computing `outputs` with the current parameters as initializers.
    pub fn export(&mut self, path: &Path, outputs: &[&str]) -> Result<()> {
        self.call("export", obj(json!({"path": path_str(path)?, "outputs": outputs})), &[]).map(drop)
    }

    /// Asks the worker to exit and waits for it.
    pub fn shutdown(mut self) -> Result<()> {
        self.call("shutdown", Map::new(), &[])?;
        self.to_worker = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => return Err(Error::Runtime("training worker did not exit after shutdown".into())),
            }
        }
    }

    /// Test-only: the worker exits with status 17 without answering, as a crashing kernel would.
    #[doc(hidden)]
    pub fn crash_for_test(&mut self) -> Result<()> {
        self.call("_crash", Map::new(), &[]).map(drop)
    }

    /// Test-only: the worker sleeps, as a hung step would.
    #[doc(hidden)]
    pub fn sleep_for_test(&mut self, seconds: f64) -> Result<()> {
        self.call("_sleep", obj(json!({ "seconds": seconds })), &[]).map(drop)
    }

    /// Sends one command and waits for its reply (a JSON object and named tensors) within the deadline.
    fn call(&mut self, cmd: &str, mut args: Map<String, Value>, tensors: &[(&str, &Tensor)]) -> Result<Reply> {
        if let Some(why) = &self.dead {
            return Err(Error::Runtime(format!("training worker is no longer running ({why}); cannot run {cmd}")));
        }
        args.insert("cmd".into(), cmd.into());
        let frame = protocol::encode_frame(args, tensors);
        // A send fails only when the writer thread ended (the pipe broke): the reader then reports the exit.
        let _ = self.to_worker.as_ref().expect("open while alive").send(frame);
        match wait_running(&self.from_worker, self.timeout, self.child.id()) {
            Ok(Ok(Some(frame))) => {
                let result = protocol::reply_result(cmd, &frame)?;
                Ok((result, frame.tensors))
            }
            Ok(Ok(None)) | Err(RecvTimeoutError::Disconnected) => Err(self.died(cmd, "")),
            Ok(Err(e)) => Err(self.died(cmd, &format!(" after an unreadable reply ({e})"))),
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let msg = format!("training worker did not answer {cmd} within {} s; it was killed", self.timeout.as_secs_f64());
                self.dead = Some(msg.clone());
                Err(Error::Runtime(format!("{msg}{}", self.stderr_report())))
            }
        }
    }

    /// The error for a worker that stopped answering: its exit status and the last lines of its stderr.
    fn died(&mut self, cmd: &str, detail: &str) -> Error {
        // Give it a moment to finish exiting and the stderr thread to drain the pipe.
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = self.child.kill();
                    break self.child.wait().ok();
                }
            }
        };
        let _ = self.stderr_done.recv_timeout(Duration::from_secs(2));
        let status = match status {
            Some(s) => match (s.code(), signal_of(&s)) {
                (Some(c), _) => format!("exit status {c}"),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                _ => s.to_string(),
            },
            None => "exit status unknown".into(),
        };
        let msg = format!("training worker died during {cmd} ({status}){detail}");
        self.dead = Some(msg.clone());
        Error::Runtime(format!("{msg}{}", self.stderr_report()))
    }

    fn stderr_report(&self) -> String {
        let tail = self.stderr_tail.lock().expect("stderr tail lock");
        if tail.is_empty() {
            return "; it wrote nothing to stderr".into();
        }
        let lines: Vec<&str> = tail.iter().map(String::as_str).collect();
        format!("; last lines of its stderr:\n  {}", lines.join("\n  "))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing stdin lets an idle worker exit on its own; one that does not within a second is killed.
        self.to_worker = None;
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_loop(mut stdin: ChildStdin, frames: Receiver<Vec<u8>>) {
    for frame in frames {
        if protocol::write_frame(&mut stdin, &frame).is_err() {
            break;
        }
    }
}

/// Waits for the worker's reply for at most `timeout` of the time it could have run. Neither a stretch in which the
/// worker was stopped (SIGSTOP, a suspended job) nor a gap in which this process did not run (the whole job
/// suspended with Ctrl-Z and resumed later, the machine asleep) counts: the deadline is there to catch a worker that
/// is stuck, and a paused one answers once it runs again.
fn wait_running<T>(replies: &Receiver<T>, timeout: Duration, pid: u32) -> std::result::Result<T, RecvTimeoutError> {
    const TICK: Duration = Duration::from_millis(250);
    let mut waited = Duration::ZERO;
    loop {
        let start = Instant::now();
        match replies.recv_timeout(TICK.min(timeout.saturating_sub(waited))) {
            Err(RecvTimeoutError::Timeout) => {}
            done => return done,
        }
        // A tick much longer than asked for: this process was not running for most of it.
        if !stopped(pid) {
            waited += start.elapsed().min(2 * TICK);
        }
        if waited >= timeout {
            return Err(RecvTimeoutError::Timeout);
        }
    }
}

/// The process is stopped (state T or t in /proc/PID/stat; false where that cannot be read).
fn stopped(pid: u32) -> bool {
    crate::fsio::process_state(pid).is_some_and(|c| c == 'T' || c == 't')
}

#[cfg(unix)]
fn signal_of(s: &std::process::ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(s)
}

#[cfg(not(unix))]
fn signal_of(_: &std::process::ExitStatus) -> Option<i32> {
    None
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("json! of an object literal"),
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().ok_or_else(|| Error::input(p, "path is not valid UTF-8 (the training worker protocol is JSON)"))
}

fn str_list(m: &Map<String, Value>, key: &str) -> Vec<String> {
    m.get(key).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect()).unwrap_or_default()
}

fn session_info(r: &Map<String, Value>) -> Result<SessionInfo> {
    let bad = || Error::Runtime("training worker: malformed session description".into());
    let train_inputs = r
        .get("train_inputs")
        .and_then(Value::as_array)
        .ok_or_else(bad)?
        .iter()
        .map(|i| {
            Some(InputSpec {
                name: i.get("name")?.as_str()?.to_string(),
                dtype: i.get("dtype").and_then(Value::as_str).unwrap_or("other").to_string(),
                shape: i.get("shape")?.as_array()?.iter().map(|d| d.as_u64().map(|d| d as usize)).collect(),
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(bad)?;
    let params = r
        .get("params")
        .and_then(Value::as_array)
        .ok_or_else(bad)?
        .iter()
        .map(|p| {
            Some(ParamSpec {
                name: p.get("name")?.as_str()?.to_string(),
                shape: p.get("shape")?.as_array()?.iter().map(|d| d.as_u64().map(|d| d as usize)).collect::<Option<_>>()?,
                requires_grad: p.get("requires_grad")?.as_bool()?,
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(bad)?;
    Ok(SessionInfo {
        train_inputs,
        train_outputs: str_list(r, "train_outputs"),
        eval_outputs: str_list(r, "eval_outputs"),
        params,
        lr: r.get("lr").and_then(Value::as_f64).map(|v| v as f32),
    })
}
