//! `ticket inspect` on real torchvision exports: architecture and per-module counts equal torch's.
mod common;
use common::*;
use serde_json::Value;

fn counts(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(&format!("{name}.counts.json"))).unwrap()).unwrap()
}

fn groups(report: &Value, field: &str) -> std::collections::BTreeMap<String, u64> {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g[field].as_u64().unwrap() > 0)
        .map(|g| (g["group"].as_str().unwrap().to_string(), g[field].as_u64().unwrap()))
        .collect()
}

fn as_map(v: &Value) -> std::collections::BTreeMap<String, u64> {
    v.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).filter(|(_, v)| *v > 0).collect()
}

#[test]
fn per_module_counts_equal_torch() {
    for name in all_models() {
        let torch = counts(name);
        let r = ticket_json(&[&"inspect", &fixture(&format!("{name}.onnx"))]);
        assert_eq!(groups(&r, "params"), as_map(&torch["groups"]), "{name}: parameters per module");
        assert_eq!(groups(&r, "prunable"), as_map(&torch["prunable"]), "{name}: prunable weights per module");
        assert_eq!(r["params"].as_u64(), torch["total_params"].as_u64(), "{name}: total");
        assert_eq!(r["arch"]["kind"], torch["kind"], "{name}");
        assert_eq!(r["arch"]["backbone"]["name"], torch["backbone"], "{name}");
        assert_eq!(r["arch"]["num_classes"], torch["num_classes"], "{name}");
        assert!(r["recovered_names"].as_array().unwrap().is_empty(), "{name}: no names should need recovery");
    }
}

#[test]
fn layers_list_every_parameter_with_its_torch_name() {
    let torch = counts("maskrcnn_r18_fpn");
    let r = ticket_json(&[&"inspect", &fixture("maskrcnn_r18_fpn.onnx"), &"--layers"]);
    let ours: std::collections::BTreeMap<String, u64> =
        r["layers"].as_array().unwrap().iter().map(|l| (l["name"].as_str().unwrap().to_string(), l["numel"].as_u64().unwrap())).collect();
    assert_eq!(ours, as_map(&torch["params"]));
}

#[test]
fn folded_exports_recover_names_from_node_scopes_and_say_so() {
    let torch = counts("resnet18");
    let r = ticket_json(&[&"inspect", &fixture("resnet18_folded.onnx")]);
    assert_eq!(r["arch"]["kind"], "classifier");
    assert_eq!(r["arch"]["backbone"]["name"], "resnet18");
    assert!(!r["recovered_names"].as_array().unwrap().is_empty());
    // Conv+BatchNorm fusion changes values and adds conv biases, but not which weights are prunable.
    assert_eq!(groups(&r, "prunable"), as_map(&torch["prunable"]));
    let text = ticket(&[&"inspect", &fixture("resnet18_folded.onnx")]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("recovered from node scopes"));
}

#[test]
fn generic_models_group_by_name_prefix() {
    // A classifier seen without torchvision naming rules is still inventoried: treat it as generic by
    // stripping the names torchvision would recognise.
    use prost::Message;
    let bytes = std::fs::read(fixture("resnet18.onnx")).unwrap();
    let mut m = ticket::onnx::proto::ModelProto::decode(&bytes[..]).unwrap();
    let g = m.graph.as_mut().unwrap();
    let rename = |s: &str| format!("net.{s}");
    // Only the initializers and the uses of them: renaming a node's input without its producer's output would
    // make an invalid graph (which import refuses).
    let inits: std::collections::HashSet<String> = g.initializer.iter().map(|t| t.name().to_string()).collect();
    for t in g.initializer.iter_mut() {
        t.name = Some(rename(t.name()));
    }
    for n in g.node.iter_mut() {
        for i in n.input.iter_mut() {
            if inits.contains(i.as_str()) {
                *i = rename(i);
            }
        }
    }
    for i in g.input.iter_mut() {
        if inits.contains(i.name()) {
            i.name = Some(rename(i.name()));
        }
    }
    let dir = tempdir();
    let p = dir.path().join("generic.onnx");
    std::fs::write(&p, m.encode_to_vec()).unwrap();
    let r = ticket_json(&[&"inspect", &p]);
    assert_eq!(r["arch"]["kind"], "generic");
    let torch = counts("resnet18");
    let total_prunable: u64 = as_map(&torch["prunable"]).values().sum();
    assert_eq!(groups(&r, "prunable"), [("net".to_string(), total_prunable)].into_iter().collect());
}
