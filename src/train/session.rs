//! A training session on one model and one fixed shape: the training core (`graph::train_core`) emitted from a
//! [`ModelState`] and its masks, ORT artifacts generated in a work folder by the worker, and the session opened.
//!
//! What it offers, in the terms of iterative magnitude pruning:
//! - [`TrainSession::step`]: one training step (forward + backward, optimizer step, gradient reset) on a batch;
//!   the loss terms by name.
//! - [`TrainSession::set_masks`]: new masks between rounds, written into the `<weight>.mask` parameters with W
//!   zeroed where the mask is 0 — no new artifacts. It also resets the optimizer: Adam's moments at newly
//!   masked entries would otherwise keep moving W there (W·M stays 0 either way, docs/engine-facts.md).
//! - [`TrainSession::checkpoint`] / [`TrainSession::rewind`]: the trainable weights in memory, and putting
//!   them back bit for bit (under the current masks) with a fresh optimizer — lottery-ticket rewinding.
//! - [`TrainSession::save`] / [`TrainSession::load`]: checkpoint files (ORT's format, optimizer state optional).
//! - [`TrainSession::update_state`] / [`TrainSession::into_state`]: the trained parameters back into the
//!   ModelState's weights by torchvision name, as W·M (masked entries exactly +0.0), so that
//!   `crate::export::write_onnx` writes the user's ONNX with trained initializers and nothing else changed.
use super::protocol::Tensor;
use super::worker::{Artifacts, Device, Optimizer, Params, SessionInfo, Worker, WorkerOptions};
use crate::error::{Error, Result, WriteContext};
use crate::graph::train_core::{training_graph, TensorSpec, TrainGraph, TrainOptions, TrainShape};
use crate::model::{Mask, Masks, ModelState, Role};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How the session trains and where it runs.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// The training venv's Python (`TICKET_TRAIN_PYTHON`).
    pub python: PathBuf,
    pub device: Device,
    pub optimizer: Optimizer,
    /// Learning rate, set right after the session opens (and kept across optimizer resets).
    pub lr: f32,
    /// Folder for the training core, the artifacts and the session's own checkpoints; a private temporary
    /// folder (removed with the session) when None.
    pub work_dir: Option<PathBuf>,
    pub worker: WorkerOptions,
}

impl SessionOptions {
    /// AdamW at `lr` = 1e-3 on the CPU, with `python` as the worker's interpreter.
    pub fn new(python: impl Into<PathBuf>) -> Self {
        SessionOptions {
            python: python.into(),
            device: Device::Cpu,
            optimizer: Optimizer::AdamW,
            lr: 1e-3,
            work_dir: None,
            worker: WorkerOptions::default(),
        }
    }

    /// `new` with the training Python `runtime::env` finds (TICKET_TRAIN_PYTHON, else the data folder's or
    /// the checkout's venv).
    pub fn from_env() -> Result<Self> {
        Ok(SessionOptions::new(crate::runtime::env::train_python(None)?))
    }
}

/// The loss terms of one step: `total` is the graph's `loss` (their sum), `terms` the others in the graph's
/// order (`loss_objectness`, `loss_rpn_box_reg`, `loss_classifier`, `loss_box_reg`, then `loss_mask` and/or
/// `loss_keypoint`).
#[derive(Clone, Debug, PartialEq)]
pub struct Losses {
    pub total: f32,
    pub terms: Vec<(String, f32)>,
    /// The gradients' global L2 norm before clipping, in a training step whose optimizer clips.
    pub grad_norm: Option<f32>,
}

impl Losses {
    /// A term by name; `loss` is the total.
    pub fn get(&self, name: &str) -> Option<f32> {
        if name == "loss" {
            return Some(self.total);
        }
        self.terms.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// Trainable weights held in memory for [`TrainSession::rewind`].
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub params: Params,
}

pub struct TrainSession {
    worker: Worker,
    graph_inputs: Vec<TensorSpec>,
    outputs: Vec<String>,
    trainable: Vec<String>,
    frozen: Vec<String>,
    /// Feature-map sizes of P2..P5 and the pool level, for anchors and RoIAlign taps.
    pub feature_hw: Vec<crate::imaging::Hw>,
    pub shape: TrainShape,
    /// Prunable weight → the mask the session holds (every prunable weight the graph uses; ones where the
    /// model had none).
    masks: BTreeMap<String, Mask>,
    artifacts: Artifacts,
    info: SessionInfo,
    work: PathBuf,
    lr: f32,
    _tmp: Option<tempfile::TempDir>,
    steps: u64,
}

impl TrainSession {
    /// Emits the training core of `state` for `shape`, generates its artifacts and opens them.
    pub fn new(state: &ModelState, shape: &TrainShape, train: &TrainOptions, options: &SessionOptions) -> Result<Self> {
        Self::from_graph(state, training_graph(state, shape, train)?, shape, options)
    }

    /// Generates the artifacts of an emitted training graph of `state` (a detector's core, or a classifier's
    /// from `graph::classify`) and opens them.
    pub fn from_graph(state: &ModelState, graph: TrainGraph, shape: &TrainShape, options: &SessionOptions) -> Result<Self> {
        let (work, tmp) = match &options.work_dir {
            Some(d) => {
                std::fs::create_dir_all(d).writing_context(d, "cannot create the work folder")?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("ticket-train-")
                    .tempdir()
                    .map_err(|e| Error::Runtime(format!("cannot create a work folder for training: {e}")))?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let core = work.join("training_core.onnx");
        std::fs::write(&core, prost::Message::encode_to_vec(&graph.model)).writing_context(&core, "cannot write the training core")?;

        let masks = graph_masks(state, &graph)?;
        let mut worker = Worker::start_with(&options.python, options.device, options.worker.clone())?;
        let trainable: Vec<&str> = graph.trainable.iter().map(String::as_str).collect();
        let frozen: Vec<&str> = graph.frozen.iter().map(String::as_str).collect();
        let art_dir = work.join("artifacts");
        if art_dir.exists() {
            // Artifacts of an earlier session in the same folder may be of another shape or model.
            std::fs::remove_dir_all(&art_dir).writing_context(&art_dir, "cannot clear old artifacts")?;
        }
        let artifacts = worker.generate_artifacts(&core, &trainable, &frozen, options.optimizer, &art_dir)?;
        let info = worker.open(&art_dir, None)?;
        let lr = worker.set_lr(options.lr)?;
        Ok(TrainSession {
            worker,
            graph_inputs: graph.inputs,
            outputs: graph.outputs,
            trainable: graph.trainable,
            frozen: graph.frozen,
            feature_hw: graph.feature_hw,
            shape: shape.clone(),
            masks,
            artifacts,
            info,
            work,
            lr,
            _tmp: tmp,
            steps: 0,
        })
    }

    /// The graph inputs a step takes, in order, with element types and shapes.
    pub fn inputs(&self) -> &[TensorSpec] {
        &self.graph_inputs
    }

    /// `loss` first, then the terms.
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    pub fn trainable(&self) -> &[String] {
        &self.trainable
    }

    pub fn frozen(&self) -> &[String] {
        &self.frozen
    }

    pub fn artifacts(&self) -> &Artifacts {
        &self.artifacts
    }

    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    pub fn worker(&mut self) -> &mut Worker {
        &mut self.worker
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    pub fn lr(&self) -> f32 {
        self.lr
    }

    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        self.lr = self.worker.set_lr(lr)?;
        Ok(())
    }

    /// The masks the session trains under, by weight name.
    pub fn masks(&self) -> Masks {
        Masks { map: self.masks.clone() }
    }

    /// One training step on `inputs` (every graph input, by name): forward + backward, optimizer step,
    /// gradient reset. A non-finite loss is a Check error and changes no parameter.
    pub fn step(&mut self, inputs: &[(&str, Tensor)]) -> Result<Losses> {
        let out = self.worker.train_step(inputs)?;
        let grad_norm = self.worker.optimizer_step()?;
        self.worker.lazy_reset_grad()?;
        self.steps += 1;
        Ok(Losses { grad_norm, ..self.losses(&out.outputs)? })
    }

    /// The loss terms on `inputs` without training (the eval model: no gradients, parameters unchanged).
    pub fn eval(&mut self, inputs: &[(&str, Tensor)]) -> Result<Losses> {
        let out = self.worker.eval_step(inputs)?;
        self.losses(&out.outputs)
    }

    fn losses(&self, outputs: &[(String, Tensor)]) -> Result<Losses> {
        let mut values = Vec::new();
        for name in &self.outputs {
            let v = outputs
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, t)| t.as_f32())
                .and_then(|a| a.iter().next().copied())
                .ok_or_else(|| Error::Runtime(format!("training step: output '{name}' is missing or not a float")))?;
            values.push((name.clone(), v));
        }
        let total = values.first().map(|(_, v)| *v).unwrap_or(f32::NAN);
        Ok(Losses { total, terms: values.into_iter().skip(1).collect(), grad_norm: None })
    }

    /// The current parameters (weights as stored, masks as `<weight>.mask`), all or those named.
    pub fn params(&mut self, names: Option<&[&str]>) -> Result<Params> {
        self.worker.get_params(names)
    }

    /// New masks between rounds: tensors named in `masks` get theirs (the others keep the mask they have);
    /// the `.mask` parameters are written, W is zeroed where the mask is 0, and the optimizer is reset (its
    /// moments at newly masked entries would move W off zero). No artifacts are generated.
    pub fn set_masks(&mut self, masks: &Masks) -> Result<()> {
        for (name, m) in &masks.map {
            let current = self
                .masks
                .get(name)
                .ok_or_else(|| Error::Input(format!("mask '{name}' names no prunable weight of the training graph")))?;
            if current.shape != m.shape || m.keep.len() != m.shape.iter().product::<usize>() {
                return Err(Error::Input(format!("mask '{name}' has shape {:?}, the parameter has {:?}", m.shape, current.shape)));
            }
        }
        let names: Vec<&str> = masks.map.keys().map(String::as_str).collect();
        let mut weights = self.worker.get_params(Some(&names))?;
        let mut update = Params::new();
        for (name, m) in &masks.map {
            let mut w = weights.remove(name).ok_or_else(|| Error::Runtime(format!("the training session has no parameter '{name}'")))?;
            for (v, &k) in w.iter_mut().zip(&m.keep) {
                if k == 0 {
                    *v = 0.0;
                }
            }
            let keep = ndarray::ArrayD::from_shape_vec(m.shape.clone(), m.keep.iter().map(|&k| if k == 0 { 0.0 } else { 1.0 }).collect())
                .map_err(|e| Error::Input(format!("mask '{name}': {e}")))?;
            update.insert(name.clone(), w);
            update.insert(format!("{name}.mask"), keep);
        }
        self.worker.set_params(&update)?;
        for (name, m) in &masks.map {
            self.masks.insert(name.clone(), m.clone());
        }
        self.reset_optimizer()
    }

    /// Forgets the optimizer's state (Adam's moments, SGD's momentum): reloads a checkpoint saved without it.
    /// The learning rate is kept.
    pub fn reset_optimizer(&mut self) -> Result<()> {
        let path = self.work.join("optimizer_reset.ckpt");
        self.worker.save_checkpoint(&path, false)?;
        self.info = self.worker.load_checkpoint(&path)?;
        let _ = std::fs::remove_file(&path);
        Ok(())
    }

    /// The trainable weights, in memory, for a later [`Self::rewind`].
    pub fn checkpoint(&mut self) -> Result<Checkpoint> {
        let names: Vec<&str> = self.trainable.iter().map(String::as_str).collect();
        Ok(Checkpoint { params: self.worker.get_params(Some(&names))? })
    }

    /// Puts the weights of `ck` back (bit for bit where the current masks keep them, 0 where they do not)
    /// and resets the optimizer.
    pub fn rewind(&mut self, ck: &Checkpoint) -> Result<()> {
        let mut params = ck.params.clone();
        for (name, w) in params.iter_mut() {
            if !self.trainable.contains(name) {
                return Err(Error::Input(format!("checkpoint parameter '{name}' is not a trainable parameter of this session")));
            }
            if let Some(m) = self.masks.get(name) {
                if m.shape != w.shape() {
                    return Err(Error::Input(format!(
                        "checkpoint parameter '{name}' has shape {:?}, the session {:?}",
                        w.shape(),
                        m.shape
                    )));
                }
                for (v, &k) in w.iter_mut().zip(&m.keep) {
                    if k == 0 {
                        *v = 0.0;
                    }
                }
            }
        }
        self.worker.set_params(&params)?;
        self.reset_optimizer()
    }

    /// Saves a checkpoint file (ORT's format); returns its size in bytes.
    pub fn save(&mut self, path: &Path, include_optimizer_state: bool) -> Result<u64> {
        self.worker.save_checkpoint(path, include_optimizer_state)
    }

    /// Loads a checkpoint file of this session's artifact set (masks included: the session's masks follow it).
    pub fn load(&mut self, path: &Path) -> Result<()> {
        self.info = self.worker.load_checkpoint(path)?;
        let names: Vec<String> = self.masks.keys().map(|n| format!("{n}.mask")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let params = self.worker.get_params(Some(&refs))?;
        for (name, m) in self.masks.iter_mut() {
            let a = &params[&format!("{name}.mask")];
            m.keep = a.iter().map(|&v| (v != 0.0) as u8).collect();
        }
        Ok(())
    }

    /// Writes the trained parameters into `state` by torchvision name, as W·M (masked entries exactly +0.0),
    /// and the session's masks into `state.masks`. `state` must be the model the session was made from.
    pub fn update_state(&mut self, state: &mut ModelState) -> Result<()> {
        let names: Vec<&str> = self.trainable.iter().chain(&self.frozen).filter(|n| !n.ends_with(".mask")).map(String::as_str).collect();
        let params = self.worker.get_params(Some(&names))?;
        let path = state.source.path.clone();
        for (name, a) in &params {
            let w = state
                .weights
                .tensors
                .iter_mut()
                .find(|w| &w.name == name)
                .ok_or_else(|| Error::input(&path, format!("training parameter '{name}' is not a weight of this model")))?;
            if w.shape != a.shape() {
                return Err(Error::input(&path, format!("training parameter '{name}' has shape {:?}, the model {:?}", a.shape(), w.shape)));
            }
            let keep = self.masks.get(name).filter(|_| w.role == Role::Weight).map(|m| &m.keep[..]);
            w.values = match keep {
                Some(k) => a.iter().zip(k).map(|(&v, &k)| if k == 0 { 0.0 } else { v }).collect::<Vec<f32>>(),
                None => a.iter().copied().collect(),
            }
            .into();
        }
        // Masks the model had, and any that prune something; all-ones masks of untouched weights stay out.
        let masks =
            self.masks.iter().filter(|(n, m)| state.masks.map.contains_key(*n) || m.kept() < m.len()).map(|(n, m)| (n.clone(), m.clone()));
        state.masks.merge(Masks { map: masks.collect() });
        Ok(())
    }

    /// `update_state` on `state`, returned.
    pub fn into_state(mut self, mut state: ModelState) -> Result<ModelState> {
        self.update_state(&mut state)?;
        Ok(state)
    }

    /// Asks the worker to exit.
    pub fn shutdown(self) -> Result<()> {
        self.worker.shutdown()
    }
}

/// The mask of every prunable weight the graph multiplies by `<name>.mask`: the model's, or ones.
fn graph_masks(state: &ModelState, graph: &TrainGraph) -> Result<BTreeMap<String, Mask>> {
    let mut out = BTreeMap::new();
    for m in graph.frozen.iter().filter_map(|f| f.strip_suffix(".mask")) {
        let w = state.weights.get(m).ok_or_else(|| Error::Runtime(format!("the training graph masks '{m}', which the model lacks")))?;
        let mask = state.masks.map.get(m).cloned().unwrap_or_else(|| Mask::ones(&w.shape));
        out.insert(m.to_string(), mask);
    }
    Ok(out)
}
