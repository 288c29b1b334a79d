//! The benchmarks behind `ticket bench`: speed goals measured against baselines in the same run. Each one takes
//! its settings, reports its progress through a callback and returns a serialisable report; the command line
//! renders it (`--json` or a table).
//! - [`prune`]: the global magnitude mask against torch's `global_unstructured` and a plain copy;
//! - [`stages`]: every tract stage graph in tract and ONNX Runtime, dense and pruned;
//! - [`train`]: one ONNX Runtime training step against one PyTorch eager step; [`train_profile`]: where the
//!   ORT step's time goes;
//! - [`detect`]: end-to-end detection latency of dense models and tickets;
//! - [`sparse`]: the sparse kernels' speed-up over tract's dense ones against density.
pub mod detect;
pub mod prune;
pub mod sparse;
pub mod stages;
pub mod train;
pub mod train_profile;

use crate::error::{Error, Result};
use ndarray::{ArrayD, IxDyn};
use std::path::Path;
use std::time::Instant;

pub use crate::eval::model::median;

/// How far a benchmark is: `Total(steps)` once, `Step` after each step, `Done` at the end.
pub use crate::progress::Progress;

/// Runs a tools/ baseline script with `--json` and returns its report; None when `python` is "none". The
/// Python and the tools folder default to `runtime::env`'s.
pub fn torch_baseline(
    python: Option<&str>,
    tools: Option<&Path>,
    script: &str,
    args: &[std::ffi::OsString],
) -> Result<Option<serde_json::Value>> {
    if python == Some("none") {
        return Ok(None);
    }
    let python = match python {
        Some(p) => p.to_string(),
        None => crate::runtime::env::python(crate::runtime::env::Venv::Torch)?.display().to_string(),
    };
    let script = tools.map(Path::to_path_buf).unwrap_or_else(crate::runtime::env::tools_dir).join(script);
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(&script).args(args).arg("--json");
    // Tied: a bench killed mid-baseline does not leave torch timing on both cores.
    let out = crate::runtime::child::output_tied(cmd)
        .map_err(|e| Error::Runtime(format!("{python}: cannot run the torch baseline ({e}); run `ticket setup --torch` (or `tools/setup.sh torch`) or pass --torch-python none")))?;
    if !out.status.success() {
        return Err(Error::Runtime(format!(
            "{}: torch baseline failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        )));
    }
    serde_json::from_slice(&out.stdout).map(Some).map_err(|e| Error::Runtime(format!("{}: unreadable output ({e})", script.display())))
}

/// The median of `repeat` timed calls of `f` (at least one), in ms.
pub fn median_ms(repeat: usize, mut f: impl FnMut()) -> f64 {
    let times: Vec<f64> = (0..repeat.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            elapsed_ms(s)
        })
        .collect();
    median(&times)
}

/// Milliseconds since `s`.
pub fn elapsed_ms(s: Instant) -> f64 {
    s.elapsed().as_secs_f64() * 1e3
}

/// Uniform [0, 1) values from a fixed generator (xorshift): the same input for every engine and variant.
pub fn uniform(shape: &[usize]) -> ArrayD<f32> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_repeat_and_lie_in_the_unit_interval() {
        let (a, b) = (uniform(&[2, 3, 5]), uniform(&[2, 3, 5]));
        assert_eq!(a, b);
        assert!(a.iter().all(|v| (0.0..1.0).contains(v)));
        assert_eq!(torch_baseline(Some("none"), None, "x.py", &[]).unwrap(), None);
        let mut calls = 0;
        assert!(median_ms(0, || calls += 1) >= 0.0);
        assert_eq!(calls, 1);
    }
}
