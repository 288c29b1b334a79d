//! A small ONNX graph builder over the prost types: initializers from f32 data, nodes with attributes, inputs
//! and outputs with concrete shapes. Emitted graphs declare IR 8 / opset 17, which tract and ORT 1.19 both load.
use crate::onnx::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension::Value as Dim, tensor_shape_proto::Dimension,
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

pub const IR_VERSION: i64 = 8;
pub const OPSET: i64 = 17;

#[derive(Default)]
pub struct GraphBuilder {
    graph: GraphProto,
    counter: usize,
    /// Op domains other than ONNX's that nodes use (declared in opset_import).
    domains: Vec<&'static str>,
}

pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Str(&'static str),
}

fn value_info(name: &str, elem: DataType, shape: &[i64]) -> ValueInfoProto {
    let dims = shape.iter().map(|&d| Dimension { value: Some(Dim::DimValue(d)), ..Default::default() }).collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem as i32),
                shape: Some(TensorShapeProto { dim: dims }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl GraphBuilder {
    pub fn new(name: &str) -> Self {
        GraphBuilder { graph: GraphProto { name: Some(name.to_string()), ..Default::default() }, counter: 0, domains: Vec::new() }
    }

    pub fn input(&mut self, name: &str, shape: &[i64]) -> String {
        self.typed_input(name, DataType::Float, shape)
    }

    /// An input of any element type (training graphs take int64 indices and labels).
    pub fn typed_input(&mut self, name: &str, elem: DataType, shape: &[i64]) -> String {
        self.graph.input.push(value_info(name, elem, shape));
        name.to_string()
    }

    pub fn output(&mut self, value: &str, name: &str) {
        // An output takes the node's value under a stable name through Identity.
        self.node("Identity", &[value], name, vec![]);
        self.graph.output.push(ValueInfoProto { name: Some(name.to_string()), ..Default::default() });
    }

    /// An output with a declared type and shape (ORT's training artifact generator reads them).
    pub fn typed_output(&mut self, value: &str, name: &str, elem: DataType, shape: &[i64]) {
        self.node("Identity", &[value], name, vec![]);
        self.graph.output.push(value_info(name, elem, shape));
    }

    pub fn f32_init(&mut self, name: &str, shape: &[usize], data: &[f32]) -> String {
        self.raw_init(name, DataType::Float, shape, || crate::onnx::tensor::f32_to_le_bytes(data))
    }

    /// A uint8 initializer (a sparse weight's bitmap of non-zero positions).
    pub fn u8_init(&mut self, name: &str, shape: &[usize], data: &[u8]) -> String {
        self.raw_init(name, DataType::Uint8, shape, || data.to_vec())
    }

    /// An initializer holding `bytes()` as raw data, added once per name.
    fn raw_init(&mut self, name: &str, elem: DataType, shape: &[usize], bytes: impl FnOnce() -> Vec<u8>) -> String {
        if !self.graph.initializer.iter().any(|t| t.name() == name) {
            self.graph.initializer.push(TensorProto {
                name: Some(name.to_string()),
                dims: shape.iter().map(|&d| d as i64).collect(),
                data_type: Some(elem as i32),
                raw_data: Some(bytes().into()),
                ..Default::default()
            });
        }
        name.to_string()
    }

    pub fn i64_const(&mut self, values: &[i64]) -> String {
        let name = self.fresh("const");
        self.graph.initializer.push(TensorProto {
            name: Some(name.clone()),
            dims: vec![values.len() as i64],
            data_type: Some(DataType::Int64 as i32),
            int64_data: values.to_vec(),
            ..Default::default()
        });
        name
    }

    /// An int64 initializer of any shape under a fresh name.
    pub fn i64_tensor(&mut self, shape: &[usize], values: &[i64]) -> String {
        let name = self.fresh("const");
        self.graph.initializer.push(TensorProto {
            name: Some(name.clone()),
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: Some(DataType::Int64 as i32),
            int64_data: values.to_vec(),
            ..Default::default()
        });
        name
    }

    /// A float initializer under a fresh name (constants that are not parameters).
    pub fn f32_const(&mut self, prefix: &str, shape: &[usize], data: &[f32]) -> String {
        let name = self.fresh(prefix);
        self.f32_init(&name, shape, data)
    }

    /// Nodes added so far: where a part of the network starts (see `graph::train_core::TrainGraph::parts`).
    pub fn node_count(&self) -> usize {
        self.graph.node.len()
    }

    /// The names of the nodes at indices `range` (in the order they were added).
    pub fn node_names(&self, range: std::ops::Range<usize>) -> Vec<String> {
        self.graph.node[range].iter().map(|n| n.name().to_string()).collect()
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}_{}", self.counter)
    }

    /// Adds a node named after `name` (its output gets the same name) and returns the output.
    pub fn node(&mut self, op: &str, inputs: &[&str], name: &str, attrs: Vec<(&str, Attr)>) -> String {
        let out = if self.graph.node.iter().any(|n| n.output.iter().any(|o| o == name)) || name.is_empty() {
            self.fresh(op)
        } else {
            name.to_string()
        };
        let attribute = attrs
            .into_iter()
            .map(|(k, v)| {
                let mut a = AttributeProto { name: Some(k.to_string()), ..Default::default() };
                match v {
                    Attr::Int(i) => {
                        a.i = Some(i);
                        a.r#type = Some(AttributeType::Int as i32);
                    }
                    Attr::Ints(is) => {
                        a.ints = is;
                        a.r#type = Some(AttributeType::Ints as i32);
                    }
                    Attr::Float(f) => {
                        a.f = Some(f);
                        a.r#type = Some(AttributeType::Float as i32);
                    }
                    Attr::Str(s) => {
                        a.s = Some(s.as_bytes().to_vec().into());
                        a.r#type = Some(AttributeType::String as i32);
                    }
                }
                a
            })
            .collect();
        self.graph.node.push(NodeProto {
            op_type: Some(op.to_string()),
            name: Some(out.clone()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute,
            ..Default::default()
        });
        out
    }

    /// A node of an op outside ONNX's domain (this crate's sparse ops, registered with tract at load).
    pub fn custom_node(&mut self, domain: &'static str, op: &str, inputs: &[&str], name: &str, attrs: Vec<(&str, Attr)>) -> String {
        let out = self.node(op, inputs, name, attrs);
        if let Some(n) = self.graph.node.last_mut() {
            n.domain = Some(domain.to_string());
        }
        if !self.domains.contains(&domain) {
            self.domains.push(domain);
        }
        out
    }

    pub fn finish(self) -> ModelProto {
        let custom = self.domains.iter().map(|d| OperatorSetIdProto { domain: Some(d.to_string()), version: Some(1) });
        ModelProto {
            ir_version: Some(IR_VERSION),
            producer_name: Some("ticket".into()),
            producer_version: Some(env!("CARGO_PKG_VERSION").into()),
            opset_import: std::iter::once(OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }).chain(custom).collect(),
            graph: Some(self.graph),
            ..Default::default()
        }
    }
}
