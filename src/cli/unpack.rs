//! `ticket unpack`: compact ticket file → plain ONNX that ONNX Runtime and onnx.checker accept.
use super::emit;
use crate::error::{Error, Result};
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub compact: PathBuf,
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
}

#[derive(Serialize)]
struct Unpacked {
    output: PathBuf,
    bytes: u64,
}

pub fn run(args: Args, json: bool) -> Result<()> {
    let bytes = crate::fsio::read_limited(&args.compact, 16 << 30)?;
    if !crate::onnx::compact::looks_compact(&bytes) {
        return Err(Error::input(&args.compact, "not a compact ticket file"));
    }
    let model = crate::onnx::compact::unpack(&args.compact, &bytes)?;
    let saved = model.save_with(&args.output, &Default::default())?;
    emit(json, &Unpacked { output: args.output, bytes: saved.total() }, |r| format!("{}: {} bytes\n", r.output.display(), r.bytes));
    Ok(())
}
