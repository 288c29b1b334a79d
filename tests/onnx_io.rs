//! ONNX I/O on real torchvision exports: lossless round trips, external data, and refusing data locations
//! that leave the model's folder.
mod common;
use common::*;
use prost::Message;
use ticket::onnx::proto::{tensor_proto::DataLocation, ModelProto, StringStringEntryProto};

#[test]
fn decode_encode_round_trip_is_byte_identical() {
    for name in all_models() {
        let path = fixture(&format!("{name}.onnx"));
        let bytes = std::fs::read(&path).unwrap();
        let model = ModelProto::decode(&bytes[..]).unwrap();
        assert_eq!(model.encode_to_vec(), bytes, "{name}: re-encoding changed the file");
    }
}

#[test]
fn external_data_loads_with_the_same_weights_as_inline() {
    let inline = ticket::model::ModelState::import(&fixture("maskrcnn_r18_fpn.onnx")).unwrap();
    let ext = ticket::model::ModelState::import(&fixture("maskrcnn_r18_fpn_ext/model.onnx")).unwrap();
    assert!(!ext.source.external.is_empty(), "fixture should keep its weights in weights.bin");
    assert_eq!(inline.arch, ext.arch);
    assert_eq!(inline.weights.tensors.len(), ext.weights.tensors.len());
    for (a, b) in inline.weights.tensors.iter().zip(&ext.weights.tensors) {
        assert_eq!((&a.name, &a.shape), (&b.name, &b.shape));
        assert_eq!(a.values, b.values, "{}", a.name);
    }
}

#[test]
fn pruning_a_model_with_external_data_writes_external_data_next_to_the_output() {
    let dir = tempdir();
    let out = dir.path().join("pruned.onnx");
    let masks = dir.path().join("m.safetensors");
    ticket_json(&[&"prune", &fixture("maskrcnn_r18_fpn_ext/model.onnx"), &"--sparsity", &"0.8", &"-o", &out, &"--masks-out", &masks]);
    assert!(dir.path().join("pruned.onnx.data").is_file());
    tool("check_onnx.py", &[&out]);
    // The output reads back with the pruned weights, and runs in ONNX Runtime like the masked dense model.
    let v = ticket_json(&[&"check", &out, &"--reference", &fixture("maskrcnn_r18_fpn_ext/model.onnx"), &"--masks", &masks]);
    assert_eq!(v["passed"], true);
}

/// Copies a fixture into `dir` with its first initializer pointing at `location` as external data.
fn with_external_location(dir: &std::path::Path, location: &str) -> std::path::PathBuf {
    let bytes = std::fs::read(fixture("resnet18.onnx")).unwrap();
    let mut model = ModelProto::decode(&bytes[..]).unwrap();
    let t = &mut model.graph.as_mut().unwrap().initializer[0];
    let len = t.raw_data.as_ref().map(|b| b.len()).unwrap_or(0);
    t.raw_data = None;
    t.data_location = Some(DataLocation::External as i32);
    let kv = |k: &str, v: String| StringStringEntryProto { key: Some(k.into()), value: Some(v) };
    t.external_data = vec![kv("location", location.into()), kv("offset", "0".into()), kv("length", len.to_string())];
    let path = dir.join("model.onnx");
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

#[test]
fn external_data_outside_the_model_folder_is_refused() {
    let root = tempdir();
    let secret = root.path().join("secret.bin");
    std::fs::write(&secret, vec![0u8; 1 << 20]).unwrap();
    let dir = root.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("link.bin")).unwrap();
    for location in ["../secret.bin", secret.to_str().unwrap(), "link.bin", "sub/../../secret.bin"] {
        let model = with_external_location(&dir, location);
        let out = ticket(&[&"inspect", &model]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{location}: {err}");
        assert!(err.contains("refused") && err.contains("model.onnx"), "{location}: {err}");
    }
}

#[test]
fn external_data_past_the_end_of_its_file_is_an_input_error() {
    let dir = tempdir();
    std::fs::write(dir.path().join("short.bin"), [0u8; 16]).unwrap();
    let model = with_external_location(dir.path(), "short.bin");
    let out = ticket(&[&"inspect", &model]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("past the end"), "{err}");
}
