//! `ticket unpack`: compact ticket file → plain ONNX that ONNX Runtime and onnx.checker accept.
use super::print_report;
use crate::error::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub compact: PathBuf,
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
}

pub fn run(args: Args, json: bool) -> Result<()> {
    let report = crate::export::compact::unpack_file(&args.compact, &args.output)?;
    print_report(json, &report, |r| format!("{}: {} bytes\n", r.output.display(), r.bytes));
    Ok(())
}
