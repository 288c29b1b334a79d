//! Helpers shared by the integration tests: fixture paths, running the real `ticket` binary, the Python
//! references from tools/ (run in the venv that tools/test.sh sets up).
#![allow(dead_code)]
pub mod imp;
pub mod procs;
pub mod sweep;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Fixture folder: tests/fixtures, or TICKET_FIXTURES to run the same tests on other exports (the full-size
/// models written by `tools/export_models.py --full`).
pub fn fixtures() -> PathBuf {
    std::env::var_os("TICKET_FIXTURES").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

/// Every `.rs` file below `dir`, added to `out` (the tests that read the crate's own sources).
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

pub fn fixture(name: &str) -> PathBuf {
    let p = fixtures().join(name);
    assert!(p.exists(), "missing fixture {} (regenerate with tools/export_models.py)", p.display());
    p
}

pub const DETECTORS: &[&str] = &["fasterrcnn_r18_fpn_voc", "maskrcnn_r18_fpn", "maskrcnn_r50_fpn", "keypointrcnn_r50_fpn"];
pub const CLASSIFIERS: &[&str] = &["resnet18", "resnet50"];

pub fn all_models() -> Vec<&'static str> {
    DETECTORS.iter().chain(CLASSIFIERS).copied().collect()
}

pub fn ticket(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticket"));
    for a in args {
        cmd.arg(a.as_ref());
    }
    cmd.output().expect("run ticket")
}

/// Runs ticket, asserting success, and returns its parsed `--json` report.
pub fn ticket_json(args: &[&dyn AsRef<std::ffi::OsStr>]) -> serde_json::Value {
    let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = args.to_vec();
    all.push(&"--json");
    let out = ticket(&all);
    assert!(
        out.status.success(),
        "ticket {:?} failed ({:?}): {}",
        args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect::<Vec<_>>(),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ticket --json prints JSON")
}

/// Runs a command that must fail on bad input: exit 2 and a single line on stderr (with --json, which
/// keeps progress lines off stderr).
pub fn run_err(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let mut all = args.to_vec();
    all.push(&"--json");
    let out = ticket(&all);
    assert_eq!(out.status.code(), Some(2), "expected exit 2, got {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one-line error expected: {err}");
    err
}

pub fn python() -> PathBuf {
    let p = std::env::var_os("TICKET_PYTHON").map(PathBuf::from).expect("TICKET_PYTHON is not set: run the tests through tools/test.sh");
    assert!(p.exists(), "TICKET_PYTHON={} does not exist: run tools/setup.sh", p.display());
    p
}

/// Runs a tools/ script in the test venv, asserting success; returns stdout.
pub fn tool(script: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let mut cmd = Command::new(python());
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools").join(script));
    for a in args {
        cmd.arg(a.as_ref());
    }
    let out = cmd.output().expect("run python");
    assert!(out.status.success(), "{script} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file under a folder with its bytes, for "nothing changed" checks (the lock file, which holds the pid of
/// its last holder, is not saved work and is left out).
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().is_some_and(|n| n == ".lock") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Noise PNGs `dir/img0.png`, `img1.png`, … of the given sizes from one seeded generator (random-weight
/// fixtures detect plenty on them).
pub fn noise_images(dir: &Path, sizes: &[(u32, u32)], seed: u64) -> Vec<PathBuf> {
    let mut s = seed;
    sizes
        .iter()
        .enumerate()
        .map(|(i, &(w, h))| {
            let img = image::RgbImage::from_fn(w, h, |_, _| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                image::Rgb([(s >> 56) as u8, (s >> 48) as u8, (s >> 40) as u8])
            });
            let p = dir.join(format!("img{i}.png"));
            img.save(&p).unwrap();
            p
        })
        .collect()
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Tensors of a safetensors file as f32/i64 values widened to f64, by name.
pub fn read_safetensors(path: &Path) -> std::collections::BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let bytes = std::fs::read(path).expect("read safetensors");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            let vals: Vec<f64> = match v.dtype() {
                safetensors::Dtype::F32 => v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
                safetensors::Dtype::I64 => v.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
                safetensors::Dtype::U8 => v.data().iter().map(|&b| b as f64).collect(),
                d => panic!("{}: unexpected dtype {d:?} for {name}", path.display()),
            };
            (name, (v.shape().to_vec(), vals))
        })
        .collect()
}

/// A model decoded with its initializer data taken out (returned by name): what must stay equal between a
/// user's ONNX and an export that only replaces initializer data.
pub fn without_initializer_data(path: &Path) -> (ticket::onnx::proto::ModelProto, Vec<(String, Vec<u8>)>) {
    use prost::Message;
    let mut m = ticket::onnx::proto::ModelProto::decode(&std::fs::read(path).unwrap()[..]).unwrap();
    let mut data = Vec::new();
    for t in m.graph.as_mut().unwrap().initializer.iter_mut() {
        data.push((t.name().to_string(), t.raw_data.take().map(|b| b.to_vec()).unwrap_or_default()));
        t.float_data.clear();
    }
    (m, data)
}

/// A Pascal VOC folder in `dir` from the evaluation fixture's annotations (tests/fixtures/eval/voc), each XML passed
/// through `edit`, with a patterned JPEG of the size the XML states per image.
pub fn voc_folder(dir: &Path, edit: impl Fn(String) -> String) {
    let (ann, jpg) = (dir.join("Annotations"), dir.join("JPEGImages"));
    std::fs::create_dir_all(&ann).unwrap();
    std::fs::create_dir_all(&jpg).unwrap();
    let field = |xml: &str, tag: &str| -> u32 {
        let start = xml.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
        xml[start..start + xml[start..].find('<').unwrap()].parse().unwrap()
    };
    for e in std::fs::read_dir(fixture("eval/voc/Annotations")).unwrap() {
        let p = e.unwrap().path();
        let xml = edit(std::fs::read_to_string(&p).unwrap());
        std::fs::write(ann.join(p.file_name().unwrap()), &xml).unwrap();
        let (w, h) = (field(&xml, "width"), field(&xml, "height"));
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 200) as u8, (y % 200) as u8, 120]))
            .save(jpg.join(p.with_extension("jpg").file_name().unwrap()))
            .unwrap();
    }
}

/// A PNG whose header (IHDR, checksum fixed) declares `w`×`h` while its data stays that of `png`: a file of a
/// few hundred bytes that claims any size, for the readers' size checks.
pub fn png_declaring(png: &[u8], w: u32, h: u32) -> Vec<u8> {
    assert!(png.starts_with(b"\x89PNG") && png.len() >= 33, "not a PNG");
    let mut v = png.to_vec();
    v[16..20].copy_from_slice(&w.to_be_bytes());
    v[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&v[12..29]);
    v[29..33].copy_from_slice(&crc.to_be_bytes());
    v
}

/// CRC-32 (IEEE), as PNG chunks carry it.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// Runs ticket with `env` added, killing it after 60 s (a hang fails the test instead of blocking it); returns
/// (exit code, stdout, stderr).
pub fn run_with_deadline(args: &[&dyn AsRef<std::ffi::OsStr>], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    use std::time::{Duration, Instant};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticket"));
    cmd.args(args.iter().map(|a| a.as_ref())).envs(env.iter().copied());
    let mut child =
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!(
                "ticket {:?} hung (killed after 60 s)",
                args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}
