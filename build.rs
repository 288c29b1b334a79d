//! Compiles onnx/onnx.proto to Rust with prost. protox is a pure-Rust protobuf compiler, so no system
//! `protoc` is needed on a fresh machine or in CI.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=onnx/onnx.proto");
    let fds = protox::compile(["onnx/onnx.proto"], ["onnx"])?;
    prost_build::Config::new().bytes(["."]).compile_fds(fds)?;
    Ok(())
}
