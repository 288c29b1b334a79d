//! ONNX model I/O: the prost-generated schema, decoding with checks, external data, atomic encoding.
//! A model that is decoded and encoded again loses nothing: every field of onnx.proto is in the schema, and
//! the only thing the tool ever changes in a user's model is initializer data.
pub mod check;
pub mod compact;
pub mod external;
pub mod tensor;

pub mod proto {
    #![allow(clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use crate::error::{Context, Error, Result};
use prost::Message;
use proto::{GraphProto, ModelProto, TensorProto};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Protobuf cannot encode a message over 2 GiB; larger models must use external data.
pub const MAX_PROTO_BYTES: u64 = (2u64 << 30) - 1;

/// A decoded model together with where it came from, and the bytes of initializers kept in external files.
#[derive(Clone, Debug)]
pub struct OnnxModel {
    pub path: PathBuf,
    pub proto: ModelProto,
    /// Initializer name → its bytes, for initializers whose data lives in external files (already checked).
    pub external: HashMap<String, prost::bytes::Bytes>,
    /// Initializer name → its data as a compact file stores it, for the initializers of a compact file that
    /// were packed (their proto tensors hold no data): filled in only where a dense tensor is needed.
    pub packed: HashMap<String, Arc<compact::Packed>>,
}

impl OnnxModel {
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::fsio::read_limited(path, MAX_PROTO_BYTES)?;
        Self::from_bytes(path, &bytes)
    }

    /// Decodes `bytes` as the model at `path` (the path locates external data and names the file in errors).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        Self::from_proto(path, Self::decode_proto(path, bytes)?)
    }

    /// Decodes the protobuf and checks that it is a model with a graph; nothing about its tensors yet.
    pub fn decode_proto(path: &Path, bytes: &[u8]) -> Result<ModelProto> {
        if bytes.is_empty() {
            return Err(Error::input(path, "empty file, not an ONNX model"));
        }
        let proto = ModelProto::decode(bytes)
            .map_err(|e| Error::input(path, format!("not a valid ONNX model (protobuf decode failed: {e}); truncated or not ONNX?")))?;
        let graph = proto.graph.as_ref().ok_or_else(|| Error::input(path, "not an ONNX model: it has no graph"))?;
        if proto.ir_version.unwrap_or(0) <= 0 {
            return Err(Error::input(path, "not an ONNX model: ir_version is missing"));
        }
        if graph.node.is_empty() {
            return Err(Error::input(path, "the ONNX graph has no nodes"));
        }
        Ok(proto)
    }

    /// A decoded model, checked (see [`check::model`]) and with its external data read.
    pub fn from_proto(path: &Path, proto: ModelProto) -> Result<Self> {
        Self::from_proto_packed(path, proto, HashMap::new())
    }

    /// [`OnnxModel::from_proto`] for a compact file's graph, whose initializers named in `packed` hold their
    /// data there (already checked against their shapes) instead of in the proto.
    pub fn from_proto_packed(path: &Path, mut proto: ModelProto, packed: HashMap<String, Arc<compact::Packed>>) -> Result<Self> {
        let graph = proto.graph.as_mut().ok_or_else(|| Error::input(path, "not an ONNX model: it has no graph"))?;
        for t in graph.initializer.iter_mut().filter(|t| packed.contains_key(t.name())) {
            t.raw_data = None;
            t.float_data.clear();
        }
        check::model_with(path, graph, &|name| packed.contains_key(name))?;
        let external = external::load_all(path, graph)?;
        Ok(OnnxModel { path: path.to_path_buf(), proto, external, packed })
    }

    /// Writes every packed initializer's data into the proto as dense values (a plain ONNX model again).
    pub fn materialise(&mut self) {
        let graph = self.proto.graph.as_mut().expect("checked at load");
        for t in graph.initializer.iter_mut() {
            if let Some(p) = self.packed.get(t.name()) {
                fill_packed(t, p, None);
            }
        }
        self.packed.clear();
    }

    pub fn graph(&self) -> &GraphProto {
        self.proto.graph.as_ref().expect("checked at load")
    }

    pub fn initializer(&self, name: &str) -> Option<&TensorProto> {
        self.graph().initializer.iter().find(|t| t.name() == name)
    }

    /// Bytes of a tensor stored as raw data, inline or external.
    pub fn raw_bytes<'a>(&'a self, t: &'a TensorProto) -> Option<&'a [u8]> {
        if external::is_external(t) {
            self.external.get(t.name()).map(|b| &b[..])
        } else {
            t.raw_data.as_deref()
        }
    }

    pub fn f32_values(&self, t: &TensorProto) -> Result<Vec<f32>> {
        if let Some(p) = self.packed.get(t.name()) {
            return Ok(p.dense());
        }
        tensor::f32_values(t, self.raw_bytes(t)).with_context(&self.path, || format!("initializer '{}'", t.name()))
    }

    pub fn encoded_len(&self) -> usize {
        self.proto.encoded_len()
    }

    /// Writes the model with initializer data replaced by `replace` (name → values). Initializers that lived
    /// in external files are written to `<out>.data` beside the output; everything else is encoded as read.
    pub fn save_with(&self, out: &Path, replace: &HashMap<String, Vec<f32>>) -> Result<SavedSizes> {
        crate::fsio::ensure_distinct(out, &[&self.path])?;
        let mut proto = self.proto.clone();
        let graph = proto.graph.as_mut().expect("checked at load");
        let mut ext_writer = external::Writer::for_output(out, !self.external.is_empty())?;
        if let Some(w) = &ext_writer {
            for p in self.external_files() {
                crate::fsio::ensure_distinct(w.path(), &[&p, &self.path])?;
            }
        }
        for t in graph.initializer.iter_mut() {
            let new_values = replace.get(t.name());
            if external::is_external(t) {
                let w = ext_writer.as_mut().expect("created when the model has external data");
                let original = &self.external[t.name()];
                let bytes = match new_values {
                    Some(v) => tensor::encode_like(t, Some(original), v),
                    None => original.to_vec(),
                };
                w.append(t, &bytes);
            } else if let Some(p) = self.packed.get(t.name()) {
                fill_packed(t, p, new_values);
            } else if let Some(v) = new_values {
                tensor::set_f32_values(t, v);
            }
        }
        let onnx_bytes = proto.encode_to_vec();
        if onnx_bytes.len() as u64 > MAX_PROTO_BYTES {
            return Err(Error::input(out, "the model is over 2 GiB and must be saved with external data"));
        }
        let data_bytes = match ext_writer {
            Some(w) => w.finish()?,
            None => 0,
        };
        crate::fsio::write_atomic(out, &onnx_bytes)?;
        Ok(SavedSizes { onnx_bytes: onnx_bytes.len() as u64, external_bytes: data_bytes })
    }

    /// The external data files this model reads (so that an output never overwrites one).
    pub fn external_files(&self) -> Vec<PathBuf> {
        let dir = external::model_dir(&self.path);
        let mut files: Vec<PathBuf> = self
            .graph()
            .initializer
            .iter()
            .filter(|t| external::is_external(t))
            .filter_map(|t| external::location(t).map(|l| dir.join(l)))
            .collect();
        files.sort();
        files.dedup();
        files
    }
}

#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct SavedSizes {
    pub onnx_bytes: u64,
    pub external_bytes: u64,
}

impl SavedSizes {
    pub fn total(&self) -> u64 {
        self.onnx_bytes + self.external_bytes
    }
}

/// Gives a packed initializer dense data again — `values` where given, else its own — in the field it was read
/// from (`raw_data` or `float_data`).
fn fill_packed(t: &mut TensorProto, p: &compact::Packed, values: Option<&Vec<f32>>) {
    let dense = values.cloned().unwrap_or_else(|| p.dense());
    if p.float_data {
        t.raw_data = None;
        t.float_data = dense;
    } else {
        t.float_data.clear();
        t.raw_data = Some(tensor::f32_to_le_bytes(&dense).into());
    }
}

/// Visits every node of a graph and of the graphs nested in its attributes (If/Loop/Scan bodies).
pub fn for_each_node<'a>(graph: &'a GraphProto, f: &mut impl FnMut(&'a proto::NodeProto)) {
    for node in &graph.node {
        f(node);
        for attr in &node.attribute {
            if let Some(g) = &attr.g {
                for_each_node(g, f);
            }
            for g in &attr.graphs {
                for_each_node(g, f);
            }
        }
    }
}

impl OnnxModel {
    /// Encodes the model as one buffer (external data inlined), with initializer data replaced by `replace`:
    /// what ONNX Runtime loads from memory.
    pub fn encode_inline(&self, replace: &HashMap<String, Vec<f32>>) -> Result<Vec<u8>> {
        let mut proto = self.proto.clone();
        let graph = proto.graph.as_mut().expect("checked at load");
        for t in graph.initializer.iter_mut() {
            if external::is_external(t) {
                t.raw_data = Some(self.external[t.name()].clone());
                t.data_location = None;
                t.external_data.clear();
            }
            if let Some(p) = self.packed.get(t.name()) {
                fill_packed(t, p, replace.get(t.name()));
            } else if let Some(v) = replace.get(t.name()) {
                tensor::set_f32_values(t, v);
            }
        }
        let bytes = proto.encode_to_vec();
        if bytes.len() as u64 > MAX_PROTO_BYTES {
            return Err(Error::input(&self.path, "over 2 GiB once external data is inlined"));
        }
        Ok(bytes)
    }
}
