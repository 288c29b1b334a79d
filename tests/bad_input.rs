//! Broken inputs: every case must give exit code 2, a one-line error naming the file and the problem, no
//! output file, an untouched input, and never a panic.
mod common;
use common::*;
use prost::Message;
use std::path::{Path, PathBuf};
use ticket::onnx::proto::{tensor_proto::DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto};

struct Case {
    what: &'static str,
    args: Vec<std::ffi::OsString>,
    /// Must appear in the error line (a file name and the problem).
    expect: Vec<String>,
    /// Files the command must not create.
    outputs: Vec<PathBuf>,
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

/// A valid ONNX model whose only initializer feeds an Add: nothing to prune.
fn no_prunable_model(path: &Path) {
    let t = TensorProto {
        name: Some("bias".into()),
        dims: vec![4],
        data_type: Some(DataType::Float as i32),
        float_data: vec![1.0; 4],
        ..Default::default()
    };
    let node = NodeProto {
        op_type: Some("Add".into()),
        input: vec!["x".into(), "bias".into()],
        output: vec!["y".into()],
        name: Some("add".into()),
        ..Default::default()
    };
    let x = ticket::onnx::proto::ValueInfoProto { name: Some("x".into()), ..Default::default() };
    let graph = GraphProto { name: Some("g".into()), node: vec![node], initializer: vec![t], input: vec![x], ..Default::default() };
    let m = ModelProto {
        ir_version: Some(9),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(graph),
        ..Default::default()
    };
    std::fs::write(path, m.encode_to_vec()).unwrap();
}

fn masks_file(path: &Path, name: &str, shape: Vec<usize>, value: u8) {
    let n: usize = shape.iter().product();
    let data = vec![value; n];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::U8, shape, &data).unwrap();
    std::fs::write(path, safetensors::serialize([(name, view)], None).unwrap()).unwrap();
}

#[test]
fn broken_inputs_fail_cleanly() {
    let dir = tempdir();
    let d = dir.path();
    let good = d.join("good.onnx");
    std::fs::copy(fixture("fasterrcnn_r18_fpn_voc.onnx"), &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(d.join("truncated.onnx"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(d.join("text.onnx"), "this is not a model\n").unwrap();
    std::fs::write(d.join("empty.onnx"), b"").unwrap();
    std::fs::write(d.join("noise.onnx"), (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<_>>()).unwrap();
    no_prunable_model(&d.join("noprune.onnx"));
    masks_file(&d.join("wrongname.safetensors"), "backbone.body.nope.weight", vec![8], 1);
    masks_file(&d.join("wrongshape.safetensors"), "backbone.body.conv1.weight", vec![3, 3], 1);
    masks_file(&d.join("notbinary.safetensors"), "backbone.body.conv1.weight", vec![8, 3, 7, 7], 7);
    std::fs::write(d.join("garbage.safetensors"), b"garbage").unwrap();
    let out = d.join("out.onnx");

    let os = |s: &str| std::ffi::OsString::from(s);
    let p = |name: &str| d.join(name).into_os_string();
    let prune_args = |model: &str, extra: &[&str]| {
        let mut a = vec![os("prune"), p(model), os("-o"), out.clone().into_os_string()];
        a.extend(extra.iter().map(|s| os(s)));
        a
    };
    let mut cases = vec![
        Case {
            what: "truncated ONNX",
            args: prune_args("truncated.onnx", &["--sparsity", "0.5"]),
            expect: vec!["truncated.onnx".into()],
            outputs: vec![out.clone()],
        },
        Case {
            what: "text file",
            args: prune_args("text.onnx", &["--sparsity", "0.5"]),
            expect: vec!["text.onnx".into()],
            outputs: vec![out.clone()],
        },
        Case {
            what: "empty file",
            args: vec![os("inspect"), p("empty.onnx")],
            expect: vec!["empty.onnx".into(), "empty".into()],
            outputs: vec![],
        },
        Case {
            what: "random bytes",
            args: prune_args("noise.onnx", &["--sparsity", "0.5"]),
            expect: vec!["noise.onnx".into()],
            outputs: vec![out.clone()],
        },
        Case {
            what: "missing file",
            args: prune_args("missing.onnx", &["--sparsity", "0.5"]),
            expect: vec!["missing.onnx".into()],
            outputs: vec![out.clone()],
        },
        Case {
            what: "no prunable weights",
            args: prune_args("noprune.onnx", &["--sparsity", "0.5"]),
            expect: vec!["noprune.onnx".into(), "no prunable weights".into()],
            outputs: vec![out.clone()],
        },
        Case {
            what: "mask names",
            args: prune_args("good.onnx", &["--sparsity", "0.5", "--masks", d.join("wrongname.safetensors").to_str().unwrap()]),
            expect: vec!["wrongname.safetensors".into(), "nope".into()],
            outputs: vec![out.clone()],
        },
        Case {
            what: "mask shapes",
            args: vec![os("mask"), os("apply"), p("good.onnx"), p("wrongshape.safetensors"), os("-o"), out.clone().into_os_string()],
            expect: vec!["wrongshape.safetensors".into(), "shape".into()],
            outputs: vec![out.clone()],
        },
        Case {
            what: "mask values",
            args: vec![os("mask"), os("stats"), p("notbinary.safetensors")],
            expect: vec!["notbinary.safetensors".into(), "0 and 1".into()],
            outputs: vec![],
        },
        Case {
            what: "mask not safetensors",
            args: vec![os("mask"), os("iou"), p("garbage.safetensors"), p("garbage.safetensors")],
            expect: vec!["garbage.safetensors".into()],
            outputs: vec![],
        },
        Case {
            what: "mask file as model",
            args: vec![os("inspect"), p("wrongname.safetensors")],
            expect: vec!["wrongname.safetensors".into()],
            outputs: vec![],
        },
        Case {
            what: "output equals input",
            args: vec![os("prune"), p("good.onnx"), os("--sparsity"), os("0.5"), os("-o"), p("good.onnx")],
            expect: vec!["good.onnx".into(), "same file".into()],
            outputs: vec![],
        },
        Case {
            what: "masks output equals input",
            args: prune_args("good.onnx", &["--sparsity", "0.5", "--masks-out", d.join("good.onnx").to_str().unwrap()]),
            expect: vec!["good.onnx".into()],
            outputs: vec![out.clone()],
        },
        Case {
            what: "round outside rounds",
            args: prune_args("good.onnx", &["--sparsity", "0.5", "--rounds", "2", "--round", "3"]),
            expect: vec!["--round".into()],
            outputs: vec![out.clone()],
        },
        Case {
            what: "output folder missing",
            args: vec![os("prune"), p("good.onnx"), os("--sparsity"), os("0.5"), os("-o"), p("nowhere/out.onnx")],
            expect: vec!["nowhere".into()],
            outputs: vec![],
        },
    ];
    for s in ["-0.1", "1", "1.5", "NaN"] {
        cases.push(Case {
            what: "sparsity outside [0, 1)",
            args: prune_args("good.onnx", &[&format!("--sparsity={s}")]),
            expect: vec!["--sparsity".into(), "[0, 1)".into()],
            outputs: vec![out.clone()],
        });
    }

    for c in cases {
        let before = snapshot(d);
        let args: Vec<&dyn AsRef<std::ffi::OsStr>> = c.args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect();
        let r = ticket(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{}: exit {:?}, stderr: {err}", c.what, r.status.code());
        assert_eq!(err.trim_end().lines().count(), 1, "{}: error should be one line: {err}", c.what);
        for e in &c.expect {
            assert!(err.contains(e.as_str()), "{}: '{e}' not in: {err}", c.what);
        }
        for o in &c.outputs {
            assert!(!o.exists(), "{}: left {} behind", c.what, o.display());
        }
        assert_eq!(snapshot(d), before, "{}: files in the folder changed", c.what);
    }
}

#[test]
fn json_mode_reports_errors_as_json() {
    let dir = tempdir();
    let r = ticket(&[&"inspect", &dir.path().join("missing.onnx"), &"--json"]);
    assert_eq!(r.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["exit_code"], 2);
    assert!(v["error"].as_str().unwrap().contains("missing.onnx"));
}
