//! Where an ONNX Runtime training step's time goes, read from ORT's own profiler (chrome-trace JSON, one event
//! per kernel run): per operator type and per part of the network, forward and backward apart, plus the
//! optimizer session and what the step costs outside ORT's kernels (the worker's Python, the tensors crossing
//! the pipe). A gradient node is attributed to the part of the forward node it differentiates: ORT's gradient
//! builder names it `<forward node>_Grad/…`.
use crate::error::{Context, Error, Result};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// One kernel run or session run of a profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub name: String,
    /// The operator type (kernel events only).
    pub op: Option<String>,
    pub ts_us: f64,
    pub dur_us: f64,
}

/// The events of one ORT profile file. Read line by line, one event a line as ORT writes them, skipping what
/// does not parse: the sessions a training module opens in the same second share one file name and may have
/// written over its first lines.
pub fn read_profile(path: &Path) -> Result<Vec<Event>> {
    let text = crate::fsio::read_limited(path, 4 << 30)?;
    let text = String::from_utf8_lossy(&text);
    let mut events = Vec::new();
    for line in text.lines() {
        let line = line.trim().trim_end_matches(',');
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let (Some(name), Some(dur), Some(ts)) = (v["name"].as_str(), v["dur"].as_f64(), v["ts"].as_f64()) else { continue };
        let op = v["args"]["op_name"].as_str().map(str::to_string);
        match (v["cat"].as_str(), name.strip_suffix("_kernel_time")) {
            (Some("Node"), Some(node)) => events.push(Event { name: node.to_string(), op, ts_us: ts, dur_us: dur }),
            (Some("Session"), _) if name == "model_run" => events.push(Event { name: name.to_string(), op: None, ts_us: ts, dur_us: dur }),
            _ => {}
        }
    }
    Ok(events)
}

/// The profile files ORT wrote under `prefix` (`{prefix}_{date}_{time}.json`), oldest name first.
pub fn profile_files(prefix: &Path) -> Result<Vec<PathBuf>> {
    let dir = prefix.parent().unwrap_or(Path::new("."));
    let stem = prefix.file_name().and_then(|s| s.to_str()).unwrap_or_default().to_string();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .at(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{stem}_")) && n.ends_with(".json")))
        .collect();
    files.sort();
    Ok(files)
}

/// Milliseconds per step of one row of a breakdown.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Row {
    pub name: String,
    pub forward_ms: f64,
    pub backward_ms: f64,
}

impl Row {
    pub fn ms(&self) -> f64 {
        self.forward_ms + self.backward_ms
    }
}

/// An ORT training step taken apart.
#[derive(Clone, Debug, Serialize)]
pub struct OrtProfile {
    /// Steps averaged (the warm-up step is left out).
    pub steps: usize,
    /// The training session's run per step (its kernels and ORT's executor between them).
    pub train_session_ms: f64,
    /// The optimizer session's run per step.
    pub optimizer_ms: f64,
    /// Sum of the training session's kernel times per step.
    pub kernels_ms: f64,
    /// Per operator type, largest first (backward: kernels of gradient nodes).
    pub ops: Vec<Row>,
    /// Per part of the network in graph order, then "ORT-made" (nodes ORT added: gradient accumulation,
    /// layout changes) when there are any.
    pub parts: Vec<Row>,
}

/// Whether a node (profile name) is a gradient node, and the forward node it belongs to.
fn forward_of(node: &str) -> (bool, &str) {
    match node.find("_Grad/") {
        Some(i) => (true, &node[..i]),
        None => (node.contains("_Grad"), node.split("_Grad").next().unwrap_or(node)),
    }
}

/// The session runs (`model_run`) among `events`, in time order.
fn session_runs(events: &[Event]) -> Vec<&Event> {
    let mut r: Vec<&Event> = events.iter().filter(|e| e.op.is_none()).collect();
    r.sort_by(|a, b| a.ts_us.total_cmp(&b.ts_us));
    r
}

/// Takes apart the steps after the first of the training session's `train` events, with the optimizer
/// session's `optimizer` events; `parts` as [`crate::graph::train_core::TrainGraph::parts`].
pub fn analyse(train: &[Event], optimizer: &[Event], parts: &[(String, Vec<String>)]) -> Result<OrtProfile> {
    let train_runs = session_runs(train);
    if train_runs.len() < 2 {
        return Err(Error::Runtime(format!("the ORT profile holds {} training runs; at least 2 were expected", train_runs.len())));
    }
    let steps = train_runs.len() - 1;
    let from = train_runs[1].ts_us;
    let opt_runs = session_runs(optimizer);
    let optimizer_ms = opt_runs.iter().skip(1).map(|e| e.dur_us).sum::<f64>() / 1e3 / opt_runs.len().saturating_sub(1).max(1) as f64;
    let per_step = |us: f64| us / 1e3 / steps as f64;
    let part_of: HashMap<&str, usize> =
        parts.iter().enumerate().flat_map(|(i, (_, nodes))| nodes.iter().map(move |n| (n.as_str(), i))).collect();
    let mut ops: BTreeMap<String, Row> = BTreeMap::new();
    let mut by_part: Vec<Row> = parts.iter().map(|(n, _)| Row { name: n.clone(), forward_ms: 0.0, backward_ms: 0.0 }).collect();
    let mut other = Row { name: "ORT-made".into(), forward_ms: 0.0, backward_ms: 0.0 };
    let mut kernels = 0.0;
    for e in train.iter().filter(|e| e.ts_us >= from) {
        let Some(op) = &e.op else { continue };
        let ms = per_step(e.dur_us);
        kernels += ms;
        let (grad, fwd) = forward_of(&e.name);
        let add = |r: &mut Row| if grad { r.backward_ms += ms } else { r.forward_ms += ms };
        add(ops.entry(op.clone()).or_insert_with(|| Row { name: op.clone(), forward_ms: 0.0, backward_ms: 0.0 }));
        match part_of.get(fwd) {
            Some(&i) => add(&mut by_part[i]),
            None => add(&mut other),
        }
    }
    let mut ops: Vec<Row> = ops.into_values().collect();
    ops.sort_by(|a, b| b.ms().total_cmp(&a.ms()));
    if other.ms() > 0.0 {
        by_part.push(other);
    }
    let train_session_ms = per_step(train_runs[1..].iter().map(|e| e.dur_us).sum());
    Ok(OrtProfile { steps, train_session_ms, optimizer_ms, kernels_ms: kernels, ops, parts: by_part })
}

/// [`analyse`] of the files ORT wrote under `{prefix}train` and `{prefix}optimizer` (the worker's prefixes).
pub fn analyse_files(prefix: &Path, parts: &[(String, Vec<String>)]) -> Result<OrtProfile> {
    let with = |suffix: &str| -> Result<Vec<Event>> {
        let p = PathBuf::from(format!("{}{suffix}", prefix.display()));
        let mut events = Vec::new();
        for f in profile_files(&p)? {
            events.extend(read_profile(&f)?);
        }
        Ok(events)
    };
    analyse(&with("train")?, &with("optimizer")?, parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, op: &str, ts: f64, dur: f64) -> Event {
        Event { name: name.into(), op: Some(op.into()), ts_us: ts, dur_us: dur }
    }

    fn run(ts: f64, dur: f64) -> Event {
        Event { name: "model_run".into(), op: None, ts_us: ts, dur_us: dur }
    }

    #[test]
    fn steps_after_the_warm_up_split_by_op_and_part_forward_and_backward() {
        let parts = vec![("backbone".to_string(), vec!["conv_1".to_string()]), ("box head".to_string(), vec!["fc6/Gemm".to_string()])];
        let mut train = vec![run(0.0, 900.0), node("conv_1", "Conv", 10.0, 500.0)]; // warm-up: left out
        for s in 1..=2 {
            let t = 1000.0 * s as f64;
            train.extend([
                node("conv_1", "Conv", t, 100.0),
                node("fc6/Gemm", "Gemm", t + 100.0, 40.0),
                node("fc6/Gemm_Grad/Gemm_0", "Gemm", t + 140.0, 60.0),
                node("conv_1_Grad/ConvGrad_0", "ConvGrad", t + 200.0, 200.0),
                node("Sum_3", "Sum", t + 400.0, 10.0),
                run(t, 500.0),
            ]);
        }
        let opt = vec![run(0.0, 50.0), run(1600.0, 30.0), run(2600.0, 10.0)];
        let p = analyse(&train, &opt, &parts).unwrap();
        assert_eq!(p.steps, 2);
        assert!((p.train_session_ms - 0.5).abs() < 1e-12 && (p.optimizer_ms - 0.02).abs() < 1e-12);
        assert!((p.kernels_ms - 0.41).abs() < 1e-12);
        let names: Vec<&str> = p.ops.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["ConvGrad", "Conv", "Gemm", "Sum"]);
        assert_eq!((p.ops[2].forward_ms, p.ops[2].backward_ms), (0.04, 0.06));
        let parts: Vec<(&str, f64, f64)> = p.parts.iter().map(|r| (r.name.as_str(), r.forward_ms, r.backward_ms)).collect();
        assert_eq!(parts, [("backbone", 0.1, 0.2), ("box head", 0.04, 0.06), ("ORT-made", 0.01, 0.0)]);
        assert!(analyse(&train[..2], &opt, &[]).is_err());
    }

    #[test]
    fn a_profile_written_over_at_its_start_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ptrain_2026-01-01_00-00-00.json");
        let text = "[\n{\"cat\" : \"Session\",\"pid\" :1,\"dur\" :5,\"ts\" :1,\"ph\" : \"X\",\"name\" :\"model_run\",\"args\" : {}}\n]\n\
            0_fence_after\",\"args\" : {\"op_name\" : \"Div\"}},\n\
            {\"cat\" : \"Node\",\"pid\" :1,\"dur\" :7,\"ts\" :9,\"ph\" : \"X\",\"name\" :\"Relu_3_kernel_time\",\"args\" : {\"op_name\" : \"Relu\"}},\n\
            {\"cat\" : \"Node\",\"pid\" :1,\"dur\" :0,\"ts\" :9,\"ph\" : \"X\",\"name\" :\"Relu_3_fence_after\",\"args\" : {\"op_name\" : \"Relu\"}}\n]\n";
        std::fs::write(&f, text).unwrap();
        assert_eq!(profile_files(&dir.path().join("ptrain")).unwrap(), vec![f.clone()]);
        let events = read_profile(&f).unwrap();
        assert_eq!(events, vec![run(1.0, 5.0), node("Relu_3", "Relu", 9.0, 7.0)]);
    }
}
