//! `ticket doctor`: what this machine offers `ticket` and where each piece was found — the ONNX Runtime library
//! (and whether it loads), the training environment (its ONNX Runtime, its execution providers, so whether
//! `--device cuda` can work), the torch environment, the tool scripts, the cores and the SIMD level tract's
//! kernels use.
use crate::runtime::env::{self, Found, Venv};
use crate::train::{Device, Worker};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Clone, Debug, Serialize)]
pub struct Doctor {
    pub data_dir: Option<PathBuf>,
    pub ort: Piece,
    /// ONNX Runtime's version, from the library's file name.
    pub ort_version: Option<String>,
    pub train: Piece,
    /// The training worker's onnxruntime and Python versions and execution providers (from its hello).
    pub train_onnxruntime: Option<String>,
    pub train_python_version: Option<String>,
    pub train_providers: Vec<String>,
    pub cuda: bool,
    pub torch: Piece,
    pub tools_dir: PathBuf,
    pub cores: usize,
    pub simd: &'static str,
}

/// One piece: where it was found and whether it works; `error` says why not (one line).
#[derive(Clone, Debug, Serialize)]
pub struct Piece {
    pub found: Option<Found>,
    pub ok: bool,
    pub error: Option<String>,
}

impl Piece {
    fn of(found: Option<Found>, check: impl FnOnce(&Found) -> crate::Result<()>, missing: impl FnOnce() -> crate::Error) -> Piece {
        let result = match &found {
            Some(f) => check(f),
            None => Err(missing()),
        };
        Piece { found, ok: result.is_ok(), error: result.err().map(|e| e.to_string()) }
    }
}

/// Looks at everything; starts the training worker once (a second or two) to ask it its versions.
pub fn examine() -> Doctor {
    let ort_found = env::find_ort_library();
    let ort_version = ort_found.as_ref().and_then(|f| env::ort_library_version(&f.path));
    let ort = Piece::of(ort_found, |_| crate::runtime::ort_check::load(), || env::ort_library().expect_err("nothing found"));
    let mut versions = None;
    let train = Piece::of(
        env::find_python(Venv::Train),
        |f| {
            let worker = Worker::start(&f.path, Device::Cpu)?;
            versions = Some(worker.versions().clone());
            Ok(())
        },
        || env::python(Venv::Train).expect_err("nothing found"),
    );
    let torch = Piece::of(
        env::find_python(Venv::Torch),
        |f| if f.path.is_file() { Ok(()) } else { Err(crate::Error::Runtime(format!("{} is not a file", f.path.display()))) },
        || env::python(Venv::Torch).expect_err("nothing found"),
    );
    let providers = versions.as_ref().map(|v| v.providers.clone()).unwrap_or_default();
    Doctor {
        data_dir: env::data_dir(),
        ort,
        ort_version,
        train_onnxruntime: versions.as_ref().map(|v| v.onnxruntime.clone()),
        train_python_version: versions.as_ref().map(|v| v.python.clone()),
        cuda: providers.iter().any(|p| p == "CUDAExecutionProvider"),
        train_providers: providers,
        train,
        torch,
        tools_dir: env::tools_dir(),
        cores: crate::runtime::threads::cores(),
        simd: env::simd_level(),
    }
}

impl Doctor {
    /// What `ticket setup` would still have to make for training and checking to work.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if !self.ort.ok {
            m.push("the ONNX Runtime library");
        }
        if !self.train.ok {
            m.push("the training environment");
        }
        m
    }
}
