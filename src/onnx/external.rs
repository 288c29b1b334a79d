//! ONNX external data: initializers whose bytes live in files beside the model. A location is trusted only
//! when it stays inside the model's folder: absolute paths, `..` and links that lead out are refused, because
//! a model file is untrusted input and must not make the tool read arbitrary files.
use super::proto::{tensor_proto::DataLocation, GraphProto, StringStringEntryProto, TensorProto};
use crate::error::{Context, Error, Result};
use prost::bytes::Bytes;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

pub fn is_external(t: &TensorProto) -> bool {
    t.data_location == Some(DataLocation::External as i32)
}

fn entry<'a>(t: &'a TensorProto, key: &str) -> Option<&'a str> {
    t.external_data.iter().find(|e| e.key() == key).map(|e| e.value())
}

pub fn location(t: &TensorProto) -> Option<&str> {
    entry(t, "location")
}

pub fn model_dir(model_path: &Path) -> PathBuf {
    match model_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Resolves a location against the model folder, refusing anything that would leave it.
fn safe_path(model_path: &Path, tensor: &str, loc: &str) -> Result<PathBuf> {
    let rel = Path::new(loc);
    let escapes = rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if loc.is_empty() || escapes {
        return Err(Error::input(
            model_path,
            format!("initializer '{tensor}': external data location '{loc}' is not a relative path inside the model's folder; refused"),
        ));
    }
    let dir = model_dir(model_path);
    let full = dir.join(rel);
    let canon_dir = std::fs::canonicalize(&dir).at(&dir)?;
    let canon = std::fs::canonicalize(&full).with_context(model_path, || format!("initializer '{tensor}': external data file '{loc}'"))?;
    if !canon.starts_with(&canon_dir) {
        return Err(Error::input(
            model_path,
            format!("initializer '{tensor}': external data location '{loc}' leads out of the model's folder; refused"),
        ));
    }
    Ok(canon)
}

fn parse_u64(model_path: &Path, tensor: &str, key: &str, v: Option<&str>) -> Result<Option<u64>> {
    v.map(|s| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| Error::input(model_path, format!("initializer '{tensor}': external data {key} '{s}' is not a number")))
    })
    .transpose()
}

/// Reads the bytes of every external initializer of the main graph, checking each range against its file.
pub fn load_all(model_path: &Path, graph: &GraphProto) -> Result<HashMap<String, Bytes>> {
    let mut out = HashMap::new();
    let mut files: HashMap<PathBuf, (std::fs::File, u64)> = HashMap::new();
    for t in graph.initializer.iter().filter(|t| is_external(t)) {
        let name = t.name();
        let loc = location(t).ok_or_else(|| Error::input(model_path, format!("initializer '{name}': external data without a location")))?;
        let path = safe_path(model_path, name, loc)?;
        let offset = parse_u64(model_path, name, "offset", entry(t, "offset"))?.unwrap_or(0);
        let expected = super::tensor::byte_len(t).with_context(model_path, || format!("initializer '{name}'"))?;
        let length = parse_u64(model_path, name, "length", entry(t, "length"))?.unwrap_or(expected);
        if length != expected {
            return Err(Error::input(
                model_path,
                format!("initializer '{name}': external data length {length} does not match its shape ({expected} bytes)"),
            ));
        }
        if !files.contains_key(&path) {
            // Only a regular file: a FIFO named by a model would block the read forever.
            let (f, len) = crate::fsio::open_regular(&path)
                .with_context(model_path, || format!("initializer '{name}': external data file '{loc}'"))?;
            files.insert(path.clone(), (f, len));
        }
        let (file, file_len) = files.get_mut(&path).expect("inserted above");
        let end = offset.checked_add(length).filter(|end| end <= file_len).ok_or_else(|| {
            Error::input(
                &path,
                format!(
                    "initializer '{name}': bytes {offset}..{} are past the end of the file ({file_len} bytes)",
                    offset.saturating_add(length)
                ),
            )
        })?;
        let mut buf = vec![0u8; (end - offset) as usize];
        file.seek(SeekFrom::Start(offset)).and_then(|_| file.read_exact(&mut buf)).at(&path)?;
        out.insert(name.to_string(), Bytes::from(buf));
    }
    Ok(out)
}

/// Collects external initializer bytes for an output model into one `<out>.data` file beside it.
pub struct Writer {
    path: PathBuf,
    location: String,
    buf: Vec<u8>,
}

impl Writer {
    pub fn for_output(out: &Path, needed: bool) -> Result<Option<Self>> {
        if !needed {
            return Ok(None);
        }
        let name = out.file_name().ok_or_else(|| Error::input(out, "not a file path"))?.to_string_lossy();
        let location = format!("{name}.data");
        Ok(Some(Writer { path: model_dir(out).join(&location), location, buf: Vec::new() }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a tensor's bytes and points the tensor at them (offsets aligned to 4 KiB as onnx does for mmap).
    pub fn append(&mut self, t: &mut TensorProto, bytes: &[u8]) {
        let pad = (4096 - self.buf.len() % 4096) % 4096;
        self.buf.resize(self.buf.len() + pad, 0);
        let offset = self.buf.len();
        self.buf.extend_from_slice(bytes);
        t.raw_data = None;
        t.external_data = vec![kv("location", &self.location), kv("offset", &offset.to_string()), kv("length", &bytes.len().to_string())];
    }

    pub fn finish(self) -> Result<u64> {
        crate::fsio::write_atomic_with(&self.path, |f| f.write_all(&self.buf))?;
        Ok(self.buf.len() as u64)
    }
}

fn kv(k: &str, v: &str) -> StringStringEntryProto {
    StringStringEntryProto { key: Some(k.to_string()), value: Some(v.to_string()) }
}
