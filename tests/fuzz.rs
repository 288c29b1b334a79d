//! Deterministic mutation fuzzing of every reader of untrusted files, in-process through the library:
//! the ONNX loader (inline and external data) with model import, compact ticket files, mask files, COCO ground
//! truth and detections (through `eval` and `data check`'s reader), Pascal VOC folders, run folders
//! (`state.json`, checkpoint descriptions, checkpoints, `log.jsonl`), image files (PNG and JPEG: bytes, header
//! sizes, truncation, a FIFO in place of the file) and classification sets (`labels.json` and its images).
//!
//! Each case mutates a valid seed file with a seeded generator (bit flips, interesting bytes, truncation,
//! insertion, duplication, huge length fields, and for JSON a structural edit of one value), writes it, and
//! calls the reader. A case fails when the reader panics (caught with `catch_unwind`), returns an error of
//! more than one line, hangs (a watchdog aborts the process after `TICKET_FUZZ_TIMEOUT_S`, default 60 s), or
//! breaks an invariant (a resumed run must never start from a checkpoint whose bytes changed). A failing
//! input is written to `target/fuzz-crashes/` to reproduce it.
//!
//! IMP run folders, sweep specs, sweep folders and report inputs are the `runs` block's targets (at the end).
//!
//! - `fuzz_short` (CI): 600 cases per target (7,200), seed 1, about a minute in release.
//! - `fuzz_long` (ignored; `tools/fuzz.sh`): `TICKET_FUZZ_CASES` cases in all (default 1,000,000) from
//!   `TICKET_FUZZ_SEED` (default 12), spread over the targets by `LONG_MIX`; prints executions per target,
//!   failures and wall time.
//!
//! Cargo-fuzz needs a nightly toolchain; a seeded mutator on stable keeps the runs reproducible: the case
//! number and seed name the input.
mod common;
use common::*;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ticket::eval::{CocoGt, DetSource, EvalOptions, IouType, VocDataset};
use ticket::model::{Mask, Masks, ModelState};

/// xorshift64*: small, seedable, the same on every platform.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u8] = &[0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, b'{', b'"', b'-', b'9', b'\n', b'/', b'.'];

/// One to four byte-level edits.
fn mutate_bytes(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => v.truncate(rng.below(len + 1)),
            3 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(i..i, bytes);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                v.drain(i..i + n);
            }
            5 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let chunk = v[i..i + n].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, chunk);
            }
            // A protobuf varint / length field blown up: ten 0xff-ish bytes make a huge length.
            6 if len > 0 => {
                let i = rng.below(len);
                let n = (len - i).min(1 + rng.below(9));
                for b in &mut v[i..i + n] {
                    *b = 0xff;
                }
            }
            7 if len > 8 => {
                // Little-endian u32/u64 set to an extreme (safetensors header length, offsets).
                let i = rng.below(len - 8);
                let x = [u64::MAX, u32::MAX as u64, 1 << 40, 0, (len as u64) * 2][rng.below(5)];
                v[i..i + 8].copy_from_slice(&x.to_le_bytes());
            }
            _ => {
                if len > 0 {
                    let i = rng.below(len);
                    v[i] = rng.next() as u8;
                }
            }
        }
    }
    v
}

const JSON_STRINGS: &[&str] =
    &["", "/etc/hostname", "../../etc/passwd", "checkpoints/../../x", "checkpoints/step-000002.ckpt", "\u{0}", "a\nb"];

/// One structural edit of a JSON document: a value replaced by an extreme or wrong-typed one, a key dropped,
/// an array element duplicated. Falls back to byte edits for text that does not parse.
fn mutate_json(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(input) else { return mutate_bytes(rng, input) };
    let mut leaves = 0;
    count(&v, &mut leaves);
    let target = rng.below(leaves.max(1));
    let mut seen = 0;
    edit(&mut v, rng, target, &mut seen);
    serde_json::to_vec(&v).unwrap()
}

fn count(v: &serde_json::Value, n: &mut usize) {
    *n += 1;
    match v {
        serde_json::Value::Array(a) => a.iter().for_each(|x| count(x, n)),
        serde_json::Value::Object(o) => o.values().for_each(|x| count(x, n)),
        _ => {}
    }
}

fn edit(v: &mut serde_json::Value, rng: &mut Rng, target: usize, seen: &mut usize) -> bool {
    use serde_json::Value;
    if *seen == target {
        *v = match rng.below(10) {
            0 => Value::from(-1),
            1 => Value::from(0),
            2 => Value::from(u64::MAX),
            3 => Value::from(1e300),
            4 => Value::from(-0.5),
            5 => Value::from(JSON_STRINGS[rng.below(JSON_STRINGS.len())]),
            6 => Value::Null,
            7 => Value::Array(vec![]),
            8 => match v {
                Value::Array(a) if !a.is_empty() => {
                    let i = rng.below(a.len());
                    let x = a[i].clone();
                    a.push(x);
                    return true;
                }
                Value::Object(o) if !o.is_empty() => {
                    let k = o.keys().nth(rng.below(o.len())).unwrap().clone();
                    o.remove(&k);
                    return true;
                }
                _ => Value::from(7),
            },
            _ => Value::from(2),
        };
        return true;
    }
    *seen += 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|x| edit(x, rng, target, seen)),
        Value::Object(o) => o.values_mut().any(|x| edit(x, rng, target, seen)),
        _ => false,
    }
}

/// What a case did; a `Fail` ends the run as a failure.
enum Outcome {
    Ok,
    Refused,
    Fail(String),
}

fn check<T>(r: ticket::Result<T>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok,
        Err(e) => {
            let msg = e.to_string();
            if msg.contains('\n') {
                Outcome::Fail(format!("error of more than one line: {msg}"))
            } else {
                Outcome::Refused
            }
        }
    }
}

/// The seeds and scratch folders every target reads from, built once.
struct Seeds {
    scratch: tempfile::TempDir,
    onnx: Vec<u8>,
    ext_onnx: Vec<u8>,
    ext_weights: Vec<u8>,
    compact: Vec<u8>,
    masks: Vec<u8>,
    state: ModelState,
    coco_gt: Vec<u8>,
    coco_dets: Vec<u8>,
    coco_records: Vec<ticket::eval::Detection>,
    coco_gt_loaded: CocoGt,
    voc_dir: PathBuf,
    voc_xml: Vec<PathBuf>,
    voc_dets: PathBuf,
    run_files: Vec<(String, Vec<u8>)>,
    png: Vec<u8>,
    jpeg: Vec<u8>,
    classify_dir: PathBuf,
    classify_labels: Vec<u8>,
    /// IMP run folders, sweep specs and sweep folders (the `runs` block below).
    runs: runs::RunSeeds,
}

fn seeds() -> Seeds {
    let scratch = tempfile::tempdir().unwrap();
    let onnx = std::fs::read(fixture("resnet18.onnx")).unwrap();
    let state = ModelState::import(&fixture("resnet18.onnx")).unwrap();
    // A ticket: every other weight zeroed, packed.
    let mut replace = HashMap::new();
    let mut map = std::collections::BTreeMap::new();
    for w in state.prunable() {
        let keep: Vec<u8> = (0..w.numel()).map(|i| (i % 2) as u8).collect();
        replace.insert(
            w.initializer.clone(),
            w.values.dense().iter().zip(&keep).map(|(v, k)| if *k == 1 { *v } else { 0.0 }).collect::<Vec<f32>>(),
        );
        map.insert(w.name.clone(), Mask { shape: w.shape.clone(), keep });
    }
    let compact_path = scratch.path().join("seed.tkt");
    ticket::export::compact::pack(&state.source, &replace, &compact_path).unwrap();
    let masks_path = scratch.path().join("seed.masks");
    Masks { map }.save(&masks_path, &[]).unwrap();
    let ext = fixtures().join("maskrcnn_r18_fpn_ext");

    let voc_dir = scratch.path().join("voc");
    std::fs::create_dir_all(voc_dir.join("Annotations")).unwrap();
    let mut voc_xml = Vec::new();
    for e in std::fs::read_dir(fixture("eval/voc/Annotations")).unwrap() {
        let p = e.unwrap().path();
        let to = voc_dir.join("Annotations").join(p.file_name().unwrap());
        std::fs::copy(&p, &to).unwrap();
        voc_xml.push(to);
    }
    voc_xml.sort();

    // A run folder as `Run::save` leaves it: two checkpoints (one with a momentum file), described.
    std::fs::create_dir_all(scratch.path().join("ext")).unwrap();
    std::fs::copy(ext.join("weights.bin"), scratch.path().join("ext/weights.bin")).unwrap();
    let run = scratch.path().join("run");
    let ck = run.join("checkpoints");
    std::fs::create_dir_all(&ck).unwrap();
    for step in [2u64, 4] {
        std::fs::write(ck.join(format!("step-{step:06}.ckpt")), vec![step as u8; 300 + step as usize]).unwrap();
        std::fs::write(ck.join(format!("step-{step:06}.ckpt.momentum.npz")), vec![7u8; 50]).unwrap();
        ticket::train::checkpoints::describe_checkpoint(&ck, step).unwrap();
    }
    std::fs::write(run.join("state.json"), br#"{"step":4,"checkpoint":"checkpoints/step-000004.ckpt"}"#).unwrap();
    let rec = |s: u64| {
        format!(
            r#"{{"step":{s},"loss":1.5,"loss_classifier":0.5,"lr":0.01,"proposals":10,"positive_rois":2,"data_s":0.1,"rpn_s":0.1,"step_s":0.2}}"#
        )
    };
    std::fs::write(run.join("log.jsonl"), (1..=5).map(|s| rec(s) + "\n").collect::<String>()).unwrap();
    let mut run_files = Vec::new();
    for rel in [
        "state.json",
        "log.jsonl",
        "checkpoints/step-000002.ckpt",
        "checkpoints/step-000004.ckpt",
        "checkpoints/step-000002.ckpt.json",
        "checkpoints/step-000004.ckpt.json",
        "checkpoints/step-000004.ckpt.momentum.npz",
    ] {
        run_files.push((rel.to_string(), std::fs::read(run.join(rel)).unwrap()));
    }

    // Images: a small PNG and JPEG, and a FIFO in the scratch folder (an image reader that opens it blocks).
    let img = image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([(x * 10) as u8, (y * 15) as u8, ((x ^ y) * 8) as u8]));
    let encode = |f: image::ImageFormat| {
        let mut b = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut b), f).unwrap();
        b
    };
    let (png, jpeg) = (encode(image::ImageFormat::Png), encode(image::ImageFormat::Jpeg));
    assert!(std::process::Command::new("mkfifo").arg(scratch.path().join("fifo.png")).status().unwrap().success());
    // A classification set of three 32 px crops.
    let classify_dir = scratch.path().join("classify");
    std::fs::create_dir_all(classify_dir.join("images")).unwrap();
    for i in 0..3 {
        image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 8) as u8, (y * 8) as u8, (i * 80) as u8]))
            .save(classify_dir.join(format!("images/{i}.png")))
            .unwrap();
    }
    let classify_labels = br#"{"categories": ["a", "b"], "images": [{"file_name": "0.png", "category": "a"}, {"file_name": "1.png", "category": "b"}, {"file_name": "2.png", "category": "a"}]}"#.to_vec();
    std::fs::write(classify_dir.join("labels.json"), &classify_labels).unwrap();

    Seeds {
        png,
        jpeg,
        classify_dir,
        classify_labels,
        runs: runs::seeds(scratch.path()),
        onnx,
        ext_onnx: std::fs::read(ext.join("model.onnx")).unwrap(),
        ext_weights: std::fs::read(ext.join("weights.bin")).unwrap(),
        compact: std::fs::read(&compact_path).unwrap(),
        masks: std::fs::read(&masks_path).unwrap(),
        state,
        coco_gt: std::fs::read(fixture("eval/coco_gt.json")).unwrap(),
        coco_dets: std::fs::read(fixture("eval/coco_dets_bbox.json")).unwrap(),
        coco_records: serde_json::from_slice(&std::fs::read(fixture("eval/coco_dets_bbox.json")).unwrap()).unwrap(),
        coco_gt_loaded: CocoGt::load(&fixture("eval/coco_gt.json")).unwrap(),
        voc_dir,
        voc_xml,
        voc_dets: fixture("eval/voc_dets.json"),
        run_files,
        scratch,
    }
}

const TARGETS: &[&str] = &[
    "onnx",
    "onnx_external",
    "compact",
    "masks",
    "coco",
    "voc",
    "run_folder",
    "image",
    "classify_set",
    "imp_run",
    "sweep_spec",
    "sweep_dir",
];

/// Extreme and ordinary sides for header edits.
const SIDES: &[u32] = &[0, 1, 2, 31, 32, 20000, 16384, 16385, 8192, 8193, 65535, 1 << 24, u32::MAX, 12000];

/// An image with its declared size changed: PNG's IHDR (checksum fixed) or JPEG's SOF0 fields.
fn resize_header(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    let (w, h) = (SIDES[rng.below(SIDES.len())], SIDES[rng.below(SIDES.len())]);
    if v.starts_with(b"\x89PNG") && v.len() >= 33 {
        v = png_declaring(&v, w, h);
    } else if let Some(i) = v.windows(2).position(|m| m == [0xFF, 0xC0]).filter(|i| i + 9 <= v.len()) {
        v[i + 5..i + 7].copy_from_slice(&(h.min(65535) as u16).to_be_bytes());
        v[i + 7..i + 9].copy_from_slice(&(w.min(65535) as u16).to_be_bytes());
    }
    v
}

/// An image mutated: its header size, its bytes, or both.
fn mutate_image(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    match rng.below(3) {
        0 => resize_header(rng, seed),
        1 => mutate_bytes(rng, seed),
        _ => {
            let v = resize_header(rng, seed);
            mutate_bytes(rng, &v)
        }
    }
}

/// Reads an image as every command does; a decoded image must be within the caps and of its header's size.
fn image_case(path: &Path) -> Outcome {
    use ticket::imaging::reader::{image_size, read_image, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE};
    let size = image_size(path);
    match read_image(path) {
        Ok(img) => {
            let (w, h) = img.dimensions();
            if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE || w as u64 * h as u64 > MAX_IMAGE_PIXELS {
                return Outcome::Fail(format!("decoded a {w}x{h} image past the caps"));
            }
            if size.as_ref().ok() != Some(&(w, h)) {
                return Outcome::Fail(format!("decoded {w}x{h} but the header said {size:?}"));
            }
            Outcome::Ok
        }
        Err(e) => check::<()>(Err(e)),
    }
}

/// Runs case `case` of `target`; returns the outcome and the mutated input (for a reproducer).
fn run_case(s: &Seeds, target: &str, case: u64, seed: u64) -> (Outcome, Vec<u8>) {
    let mut rng = Rng::new(seed ^ case.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ (target.len() as u64) << 56);
    let dir = s.scratch.path();
    match target {
        "onnx" => {
            let bytes = mutate_bytes(&mut rng, &s.onnx);
            let r = ticket::onnx::OnnxModel::from_bytes(&dir.join("m.onnx"), &bytes).and_then(ModelState::from_onnx);
            (check(r), bytes)
        }
        "onnx_external" => {
            // The graph (in memory, beside the real weights.bin) or its weights file, mutated.
            let d = dir.join("ext");
            let model = d.join("model.onnx");
            if rng.below(3) == 0 {
                let w = mutate_bytes(&mut rng, &s.ext_weights);
                std::fs::write(d.join("weights.bin"), &w).unwrap();
                let r = ticket::onnx::OnnxModel::from_bytes(&model, &s.ext_onnx).and_then(ModelState::from_onnx);
                std::fs::write(d.join("weights.bin"), &s.ext_weights).unwrap();
                (check(r), w)
            } else {
                let g = mutate_bytes(&mut rng, &s.ext_onnx);
                let r = ticket::onnx::OnnxModel::from_bytes(&model, &g).and_then(ModelState::from_onnx);
                (check(r), g)
            }
        }
        "compact" => {
            let bytes = mutate_bytes(&mut rng, &s.compact);
            let p = dir.join("m.tkt");
            let r = if ticket::onnx::compact::looks_compact(&bytes) {
                ticket::onnx::compact::unpack(&p, &bytes)
            } else {
                ticket::onnx::OnnxModel::from_bytes(&p, &bytes)
            };
            (check(r.and_then(ModelState::from_onnx)), bytes)
        }
        "masks" => {
            let bytes = mutate_bytes(&mut rng, &s.masks);
            let p = dir.join("m.masks");
            let r = Masks::from_bytes(&p, &bytes).and_then(|m| {
                let mut st = s.state.clone();
                st.apply_masks(m, &p)
            });
            (check(r), bytes)
        }
        "coco" => {
            // Ground truth (through eval's and data check's reader) or detections, one of them mutated.
            let mutate = |rng: &mut Rng, b: &[u8]| if rng.below(3) == 0 { mutate_bytes(rng, b) } else { mutate_json(rng, b) };
            let opts = EvalOptions { tide: false, ..Default::default() };
            let gp = dir.join("gt.json");
            if rng.below(2) == 0 {
                let gt = mutate(&mut rng, &s.coco_gt);
                let r = CocoGt::from_bytes(&gp, &gt).and_then(|g| {
                    g.evaluate(DetSource::Records(s.coco_records.clone()), IouType::Bbox, &opts, &mut ticket::progress::silent)
                });
                let out = check(r);
                if let Outcome::Fail(_) = out {
                    return (out, gt);
                }
                (check(ticket::data::Dataset::from_coco_bytes(&gp, &gt, dir)), gt)
            } else {
                let dets = mutate(&mut rng, &s.coco_dets);
                let dp = dir.join("dets.json");
                std::fs::write(&dp, &dets).unwrap();
                (check(s.coco_gt_loaded.evaluate(DetSource::File(dp), IouType::Bbox, &opts, &mut ticket::progress::silent)), dets)
            }
        }
        "voc" => {
            let i = rng.below(s.voc_xml.len());
            let orig = std::fs::read(fixture("eval/voc/Annotations").join(s.voc_xml[i].file_name().unwrap())).unwrap();
            let bytes = mutate_bytes(&mut rng, &orig);
            std::fs::write(&s.voc_xml[i], &bytes).unwrap();
            let r = VocDataset::load(&s.voc_dir).and_then(|_| ticket::eval::evaluate_voc(&s.voc_dir, DetSource::File(s.voc_dets.clone())));
            let out = check(r);
            std::fs::write(&s.voc_xml[i], &orig).unwrap();
            (out, bytes)
        }
        "run_folder" => {
            // The seed run folder with one file mutated (and sometimes state.json gone), restored afterwards.
            let run = dir.join("run");
            let k = rng.below(s.run_files.len());
            let (rel, orig) = &s.run_files[k];
            let mutated =
                if rel.ends_with(".json") && rng.below(3) > 0 { mutate_json(&mut rng, orig) } else { mutate_bytes(&mut rng, orig) };
            std::fs::write(run.join(rel), &mutated).unwrap();
            let drop_state = rng.below(8) == 0;
            if drop_state {
                std::fs::remove_file(run.join("state.json")).unwrap();
            }
            let out = run_folder_case(s, &run, &mutated);
            std::fs::write(run.join(rel), orig).unwrap();
            if drop_state {
                std::fs::write(run.join("state.json"), &s.run_files[0].1).unwrap();
            }
            (out, mutated)
        }
        "image" => {
            // One case in 50 reads the FIFO (which must be refused at once, not block); the others a mutated
            // PNG or JPEG.
            if rng.below(50) == 0 {
                return (image_case(&dir.join("fifo.png")), vec![]);
            }
            let (seed_bytes, name) = if rng.below(2) == 0 { (&s.png, "m.png") } else { (&s.jpeg, "m.jpg") };
            let bytes = mutate_image(&mut rng, seed_bytes);
            let p = dir.join(name);
            std::fs::write(&p, &bytes).unwrap();
            (image_case(&p), bytes)
        }
        "classify_set" => {
            // labels.json or one of the images mutated, then the set loaded, its side taken and every image
            // decoded, as `train --classify` and `eval --classify` do before they start; restored afterwards.
            let d = &s.classify_dir;
            let (rel, orig) = if rng.below(2) == 0 {
                ("labels.json".to_string(), s.classify_labels.clone())
            } else {
                let rel = format!("images/{}.png", rng.below(3));
                let orig = std::fs::read(d.join(&rel)).unwrap();
                (rel, orig)
            };
            let mutated = if rel == "labels.json" { mutate_json(&mut rng, &orig) } else { mutate_image(&mut rng, &orig) };
            std::fs::write(d.join(&rel), &mutated).unwrap();
            let out = match ticket::data::ClassifyDataset::load(d) {
                Err(e) => check::<()>(Err(e)),
                Ok(set) => {
                    let side = set.side();
                    let decoded = set.verify();
                    match side {
                        Ok(n) if !ticket::data::classify::SIDES.contains(&n) => {
                            Outcome::Fail(format!("a classifier side of {n} px was accepted"))
                        }
                        side => check(side.and(decoded)),
                    }
                }
            };
            std::fs::write(d.join(&rel), &orig).unwrap();
            (out, mutated)
        }
        t if runs::TARGETS.contains(&t) => runs::run_case(&s.runs, t, &mut rng),
        _ => unreachable!(),
    }
}

fn run_folder_case(s: &Seeds, run: &Path, _mutated: &[u8]) -> Outcome {
    let log = std::fs::read(run.join("log.jsonl")).unwrap();
    let kept = ticket::train::log::kept_log(&log, 4);
    if kept.lines().any(|l| serde_json::from_str::<ticket::train::log::StepRecord>(l).map_or(true, |r| r.step > 4)) {
        return Outcome::Fail(format!("kept a log line that is not a record of steps 1..=4: {kept}"));
    }
    let r = ticket::train::checkpoints::resume_point(run);
    // A resume must start from a checkpoint exactly as saved: never from one whose bytes changed.
    if let Ok(Some(p)) = &r {
        let rel = p.checkpoint.strip_prefix(run).map(|r| r.to_string_lossy().into_owned()).unwrap_or_default();
        let saved = s.run_files.iter().find(|(n, _)| *n == rel).map(|(_, b)| b);
        let now = std::fs::read(&p.checkpoint).ok();
        if saved.is_none() || now.as_ref() != saved {
            return Outcome::Fail(format!("resumes from {} whose bytes changed", p.checkpoint.display()));
        }
    }
    check(r)
}

#[derive(Default, Debug)]
struct Tally {
    executions: u64,
    ok: u64,
    refused: u64,
    failures: Vec<String>,
    /// Seconds spent per target.
    seconds: HashMap<&'static str, f64>,
    per_target: std::collections::BTreeMap<&'static str, u64>,
}

/// The long form's mix: cases per round of 50, the in-memory readers (about 0.1-0.5 ms a case) more often than
/// the ones that read folders or evaluate (3-7 ms: COCO, run folders, VOC, a Mask R-CNN with external data), so
/// that a million executions take about a quarter of an hour of one core.
const LONG_MIX: &[(&str, u64)] = &[
    ("onnx", 20),
    ("compact", 12),
    ("masks", 12),
    ("coco", 3),
    ("run_folder", 1),
    ("voc", 1),
    ("onnx_external", 1),
    ("image", 6),
    ("classify_set", 1),
    ("imp_run", 1),
    ("sweep_spec", 1),
    ("sweep_dir", 1),
];

fn target_of(case: u64, weighted: bool) -> &'static str {
    if !weighted {
        return TARGETS[(case % TARGETS.len() as u64) as usize];
    }
    let total: u64 = LONG_MIX.iter().map(|(_, w)| w).sum();
    let mut k = case % total;
    for (t, w) in LONG_MIX {
        if k < *w {
            return t;
        }
        k -= w;
    }
    unreachable!()
}

/// Runs `cases` cases spread over the targets (round-robin, or [`LONG_MIX`]), with a watchdog against hangs.
fn fuzz(cases: u64, seed: u64, report_every: u64, weighted: bool) -> Tally {
    let s = seeds();
    let crashes = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
    let heartbeat = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let timeout = std::env::var("TICKET_FUZZ_TIMEOUT_S").ok().and_then(|v| v.parse().ok()).unwrap_or(60u64);
    {
        let hb = heartbeat.clone();
        std::thread::spawn(move || {
            let mut last = (u64::MAX, Instant::now());
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let now = hb.load(Ordering::SeqCst);
                if now != last.0 {
                    last = (now, Instant::now());
                } else if last.1.elapsed() > Duration::from_secs(timeout) {
                    eprintln!("fuzz: case {now} (seed {seed}) has run for over {timeout} s: a hang");
                    std::process::exit(70);
                }
            }
        });
    }
    // Panics are counted, not printed one by one.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut t = Tally::default();
    for case in 0..cases {
        heartbeat.store(case, Ordering::SeqCst);
        let target = target_of(case, weighted);
        *t.per_target.entry(target).or_default() += 1;
        let t0 = Instant::now();
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| run_case(&s, target, case, seed)));
        *t.seconds.entry(target).or_default() += t0.elapsed().as_secs_f64();
        t.executions += 1;
        let (failure, input) = match r {
            Ok((Outcome::Ok, _)) => {
                t.ok += 1;
                (None, vec![])
            }
            Ok((Outcome::Refused, _)) => {
                t.refused += 1;
                (None, vec![])
            }
            Ok((Outcome::Fail(why), input)) => (Some(why), input),
            Err(p) => {
                let msg =
                    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                (Some(format!("panic: {msg}")), vec![])
            }
        };
        if let Some(why) = failure {
            std::fs::create_dir_all(&crashes).unwrap();
            let path = crashes.join(format!("{target}-seed{seed}-case{case}.bin"));
            std::fs::write(&path, &input).unwrap();
            t.failures.push(format!("{target} case {case} (seed {seed}, input {}): {why}", path.display()));
        }
        if report_every > 0 && (case + 1) % report_every == 0 {
            eprintln!("fuzz: {} executions, {} failures, {:.0} s", case + 1, t.failures.len(), started.elapsed().as_secs_f64());
        }
    }
    std::panic::set_hook(default_hook);
    t
}

#[test]
fn fuzz_short() {
    let t = fuzz(600 * TARGETS.len() as u64, 1, 0, false);
    eprintln!(
        "fuzz_short: {} executions, {} accepted, {} refused, {} failures; seconds per target {:?}",
        t.executions,
        t.ok,
        t.refused,
        t.failures.len(),
        t.seconds
    );
    assert!(t.failures.is_empty(), "{} failures:\n{}", t.failures.len(), t.failures.join("\n"));
    // The mutations must reach both sides: some inputs still load, most are refused.
    assert!(t.ok > 0 && t.refused > t.executions / 4, "{t:?}");
}

#[test]
#[ignore = "long form: tools/fuzz.sh"]
fn fuzz_long() {
    let cases = std::env::var("TICKET_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000u64);
    let seed = std::env::var("TICKET_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(12u64);
    let started = Instant::now();
    let t = fuzz(cases, seed, 10_000, true);
    println!(
        "fuzz_long: seed {seed}: {} executions ({} accepted, {} refused), {} failures, {:.0} s wall; per target {:?}",
        t.executions,
        t.ok,
        t.refused,
        t.failures.len(),
        started.elapsed().as_secs_f64(),
        t.per_target
    );
    assert!(t.failures.is_empty(), "{} failures:\n{}", t.failures.len(), t.failures.join("\n"));
}

// ================================================================ run folders, sweeps and reports (issue 17)
//
// Three targets, kept in this block: `imp_run` (an IMP run folder: run.json with its settings record,
// summary.json, each level's metrics.json and log.jsonl, and the folder's shape — a level gone, a level that is a
// link), read as a resume reads it and as `ticket report` reads it, sometimes with a report written (and an
// output inside the run, which must be refused); `sweep_spec` (a spec's TOML, expanded with `ticket imp`'s option
// table, the library's check of each task and the task cap); `sweep_dir` (sweep.json and the task state files,
// read as `--status`, `--task` and `report` read them, with the task run by a binary that does not exist, so
// nothing but the task's own files is written).
mod runs {
    use super::*;
    use std::collections::BTreeMap;
    use ticket::data::DataSpec;
    use ticket::lottery::early_bird::EarlyBirdReport;
    use ticket::lottery::level::Scores;
    use ticket::lottery::sweep::folder;
    use ticket::lottery::{ImpConfig, ImpSummary, LevelRow, Rewind};
    use ticket::train::RunConfig;

    pub const TARGETS: &[&str] = &["imp_run", "sweep_spec", "sweep_dir"];

    pub struct RunSeeds {
        root: PathBuf,
        config: ImpConfig,
        /// The run folder's files (relative path, bytes).
        run_files: Vec<(String, Vec<u8>)>,
        spec: String,
        sweep_files: Vec<(String, Vec<u8>)>,
        opts: ticket::lottery::sweep::OptionTable,
    }

    fn config(root: &Path) -> ImpConfig {
        let data = root.join("classes");
        let train = RunConfig {
            model: fixture("resnet18.onnx"),
            model_fingerprint: "00".into(),
            data: DataSpec::Classify { dir: data.clone() },
            masks: None,
            steps: 4,
            lr: 0.01,
            optimizer: "sgd".into(),
            momentum: 0.9,
            weight_decay: 1e-4,
            clip_grad_norm: None,
            clip_from_step: None,
            warmup: 1,
            warmup_factor: 1e-3,
            decay_at: vec![],
            gamma: 0.1,
            shape: ticket::graph::train_core::TrainShape {
                batch: 2,
                height: 64,
                width: 64,
                rois_per_image: 32,
                mask_rois_per_image: 8,
                keypoint_rois_per_image: 8,
                pooling: None,
            },
            min_size: 64,
            max_size: 64,
            trainable_layers: 5,
            flip: 0.5,
            seed: 1,
            save_every: 2,
            device: "cpu".into(),
            distill: None,
            threads: None,
        };
        ImpConfig {
            model: fixture("resnet18.onnx"),
            model_fingerprint: "00".into(),
            trained: None,
            trained_fingerprint: None,
            masks_from: None,
            val: DataSpec::Classify { dir: data },
            sparsity: 0.8,
            rounds: 2,
            scope: ticket::prune::Scope::Global,
            modules: None,
            min_layer_density: None,
            rewind: Rewind::Init,
            mask: Default::default(),
            floor_on: None,
            dense_steps: 4,
            train,
            early_bird: vec![0.5],
            early_stop_every: 0,
            max_map_drop: 0.5,
            agreement_score: None,
            val_every: 0,
            threads: 1,
            structure: ticket::lottery::Structure::Weight,
            importance: Default::default(),
            round_to: 8,
            distill: None,
        }
    }

    /// Every file of a folder with its bytes (the shared snapshot, as relative path strings).
    fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
        super::snapshot(dir).into_iter().map(|(p, b)| (p.to_string_lossy().into_owned(), b)).collect()
    }

    /// The folder `dir` made anew from `files` (links, extra files and folders of the last case gone).
    fn restore(dir: &Path, files: &[(String, Vec<u8>)]) {
        let _ = std::fs::remove_file(dir);
        let _ = std::fs::remove_dir_all(dir);
        for (rel, bytes) in files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
    }

    pub fn seeds(scratch: &Path) -> RunSeeds {
        let root = scratch.join("runs");
        std::fs::create_dir_all(&root).unwrap();
        // An IMP run folder with two finished levels, written with the library's own types.
        let config = config(&root);
        let run = root.join("run");
        std::fs::create_dir_all(&run).unwrap();
        ticket::lottery::imp::save_config(&run, &config).unwrap();
        let mut rows = Vec::new();
        for level in 0..=config.rounds {
            let scores = BTreeMap::from([(
                "top1".to_string(),
                Scores { ap: Some(0.5 - 0.1 * level as f64), ap50: None, ap75: None, ap_small: None, ap_medium: None, ap_large: None },
            )]);
            let row = LevelRow {
                level,
                selected_sparsity: level as f64 * 0.4,
                network_sparsity: level as f64 * 0.35,
                flops_removed: None,
                scores,
                steps: 4,
                train_s: 1.5,
                latency_ms: 2.0,
                model_bytes: 1000,
                compact_bytes: (level > 0).then_some(500),
                collapsed: vec![],
            };
            let early = (level == 0).then(EarlyBirdReport::default);
            let ldir = run.join(format!("level_{level}"));
            std::fs::create_dir_all(&ldir).unwrap();
            let metrics =
                serde_json::json!({ "row": row, "reports": serde_json::json!({"map_area": 0.5}), "prune": null, "early_bird": early });
            std::fs::write(ldir.join("metrics.json"), serde_json::to_vec_pretty(&metrics).unwrap()).unwrap();
            let rec = |s: u64| {
                format!(
                    r#"{{"step":{s},"loss":{},"lr":0.01,"proposals":0,"positive_rois":0,"data_s":0.1,"rpn_s":0.0,"step_s":0.2}}"#,
                    2.0 / s as f64
                )
            };
            std::fs::write(ldir.join("log.jsonl"), (1..=4).map(|s| rec(s) + "\n").collect::<String>()).unwrap();
            rows.push(row);
        }
        let delta = rows.iter().map(|r| r.delta(&rows[0])).collect();
        let summary = ImpSummary {
            run_dir: run.clone(),
            levels: rows,
            delta,
            max_map_drop: 0.5,
            ticket_level: Some(1),
            ticket: None,
            early_bird: None,
            agreement_with: None,
        };
        std::fs::write(run.join("summary.json"), serde_json::to_vec_pretty(&summary).unwrap()).unwrap();

        // A sweep spec over the small classifier (each task's check imports its model: the smallest keeps a
        // case cheap; the files need only exist), and the sweep folder it makes.
        std::fs::create_dir_all(root.join("data")).unwrap();
        let spec = format!(
            "name = \"fuzz\"\n[fixed]\nmodel = {:?}\nclassify = \"data\"\nval-classify = \"data\"\ncanvas = 64\nsteps = 4\nwarmup = 1\n\
             early-bird = [0.25, 0.5]\nthreads = 1\n[grid]\nsparsity = [0.5, 0.8]\n",
            fixture("resnet18.onnx").to_string_lossy()
        );
        let opts = ticket::cli::ImpArgs::option_table();
        let plan = ticket::lottery::sweep::parse_spec(&spec, "fuzz", &root, &opts, 1000).unwrap();
        let sweep = root.join("sweep");
        folder::open_or_create(&sweep, &plan).unwrap();
        let hash = &plan.tasks[0].hash;
        let done = format!("tasks/{hash}/{}", folder::DONE);
        std::fs::write(sweep.join(&done), br#"{"exit_code":0,"seconds":1.5}"#).unwrap();
        let running = format!("tasks/{}/{}", plan.tasks[1].hash, folder::RUNNING);
        std::fs::write(sweep.join(&running), br#"{"host":"elsewhere","pid":1}"#).unwrap();
        RunSeeds { run_files: files_of(&run), sweep_files: files_of(&sweep), root, config, spec, opts }
    }

    /// One structural edit of a TOML document (through its JSON form), else byte edits.
    fn mutate_toml(rng: &mut Rng, text: &str) -> Vec<u8> {
        let Ok(v) = toml::from_str::<toml::Table>(text) else { return mutate_bytes(rng, text.as_bytes()) };
        let json = serde_json::to_vec(&v).unwrap();
        let edited: serde_json::Value = serde_json::from_slice(&mutate_json(rng, &json)).unwrap_or_default();
        match to_toml(&edited) {
            Some(t) => t.into_bytes(),
            None => mutate_bytes(rng, text.as_bytes()),
        }
    }

    /// A JSON document as TOML: scalars and arrays at the top, then tables and arrays of tables; `None` where
    /// TOML has no spelling (null).
    fn to_toml(v: &serde_json::Value) -> Option<String> {
        use serde_json::Value;
        fn value(v: &Value) -> Option<String> {
            Some(match v {
                Value::Null => return None,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                Value::String(s) => serde_json::to_string(s).unwrap(),
                Value::Array(a) => format!("[{}]", a.iter().map(value).collect::<Option<Vec<_>>>()?.join(", ")),
                Value::Object(o) => format!(
                    "{{{}}}",
                    o.iter().map(|(k, x)| Some(format!("{} = {}", key(k), value(x)?))).collect::<Option<Vec<_>>>()?.join(", ")
                ),
            })
        }
        fn key(k: &str) -> String {
            serde_json::to_string(k).unwrap()
        }
        let Value::Object(top) = v else { return None };
        let mut out = String::new();
        let tables =
            |x: &Value| matches!(x, Value::Object(_)) || matches!(x, Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_object));
        for (k, x) in top.iter().filter(|(_, x)| !tables(x)) {
            out += &format!("{} = {}\n", key(k), value(x)?);
        }
        for (k, x) in top.iter().filter(|(_, x)| tables(x)) {
            let items: Vec<&serde_json::Map<String, Value>> = match x {
                Value::Object(o) => vec![o],
                Value::Array(a) => a.iter().filter_map(Value::as_object).collect(),
                _ => unreachable!(),
            };
            for o in items {
                out += &if x.is_array() { format!("[[{}]]\n", key(k)) } else { format!("[{}]\n", key(k)) };
                for (ik, ix) in o {
                    out += &format!("{} = {}\n", key(ik), value(ix)?);
                }
            }
        }
        Some(out)
    }

    /// A grid axis of `n` values, `axes` times: the expansion the cap must refuse before it happens.
    fn huge_grid(rng: &mut Rng, text: &str) -> Vec<u8> {
        let n = [10usize, 1000, 100_000][rng.below(3)];
        let axes = 1 + rng.below(3);
        let mut out = text.replace("[grid]\nsparsity = [0.5, 0.8]\n", "[grid]\n");
        for (k, key) in ["seed", "lr", "warmup"].iter().take(axes).enumerate() {
            let vals: Vec<String> =
                (0..n).map(|i| if *key == "lr" { format!("{}", (i + 1) as f64 * 1e-6) } else { (i + k).to_string() }).collect();
            out += &format!("{key} = [{}]\n", vals.join(", "));
        }
        out.into_bytes()
    }

    pub fn run_case(s: &RunSeeds, target: &str, rng: &mut Rng) -> (Outcome, Vec<u8>) {
        match target {
            "imp_run" => imp_run(s, rng),
            "sweep_spec" => {
                let bytes = match rng.below(10) {
                    0 => huge_grid(rng, &s.spec),
                    1..=3 => mutate_bytes(rng, s.spec.as_bytes()),
                    _ => mutate_toml(rng, &s.spec),
                };
                let Ok(text) = String::from_utf8(bytes.clone()) else { return (Outcome::Refused, bytes) };
                let t0 = Instant::now();
                let r = ticket::lottery::sweep::parse_spec(&text, "fuzz", &s.root, &s.opts, 1000);
                if t0.elapsed() > Duration::from_secs(10) {
                    return (Outcome::Fail(format!("the spec took {:?} to expand or refuse", t0.elapsed())), bytes);
                }
                let out = match r {
                    Ok(plan) if plan.tasks.len() > 1000 => Outcome::Fail(format!("{} tasks passed the cap of 1000", plan.tasks.len())),
                    // Every plan a spec makes must read back as a sweep folder's plan does.
                    Ok(plan) => match plan.check_arguments(&s.opts) {
                        Ok(()) => Outcome::Ok,
                        Err(e) => Outcome::Fail(format!("a plan made from a spec fails its own check: {e}")),
                    },
                    Err(m) if m.contains('\n') => Outcome::Fail(format!("error of more than one line: {m}")),
                    Err(_) => Outcome::Refused,
                };
                (out, bytes)
            }
            "sweep_dir" => sweep_dir(s, rng),
            _ => unreachable!(),
        }
    }

    fn imp_run(s: &RunSeeds, rng: &mut Rng) -> (Outcome, Vec<u8>) {
        let run = s.root.join("run");
        restore(&run, &s.run_files);
        let k = rng.below(s.run_files.len() + 2);
        let mut input = Vec::new();
        if k < s.run_files.len() {
            let (rel, orig) = &s.run_files[k];
            input = if rel.ends_with(".json") && rng.below(3) > 0 { mutate_json(rng, orig) } else { mutate_bytes(rng, orig) };
            std::fs::write(run.join(rel), &input).unwrap();
        } else if k == s.run_files.len() {
            // The folder's shape: a level that is a link elsewhere, or gone.
            let l = run.join(format!("level_{}", 1 + rng.below(2)));
            if rng.below(2) == 0 {
                let away = s.root.join("away");
                let _ = std::fs::remove_dir_all(&away);
                std::fs::rename(&l, &away).unwrap();
                std::os::unix::fs::symlink(&away, &l).unwrap();
            } else {
                std::fs::remove_dir_all(&l).unwrap();
            }
        } else {
            // A setting out of range with the record made to match: only the settings' own check stands.
            let mut c = s.config.clone();
            match rng.below(4) {
                0 => c.rounds = [0, 101, usize::MAX, 1 << 40][rng.below(4)],
                1 => c.max_map_drop = [f64::INFINITY, f64::NAN, -1.0][rng.below(3)],
                2 => c.train.shape.batch = [0, usize::MAX][rng.below(2)],
                _ => c.early_bird = vec![0.5, 0.5],
            }
            input = match ticket::lottery::imp::save_config(&run, &c) {
                Ok(()) => std::fs::read(run.join("run.json")).unwrap(),
                // A NaN does not serialise as a number: write what an older ticket wrote (null).
                Err(_) => return (Outcome::Refused, input),
            };
        }
        let resumed = ticket::lottery::imp::read_config(&run);
        if let Ok(c) = &resumed {
            let mut want = s.config.clone();
            want.threads = c.threads;
            if *c != want {
                return (Outcome::Fail(format!("a resume accepted changed settings: {c:?}")), input);
            }
            for r in 0..=c.rounds {
                if let Outcome::Fail(m) = check(ticket::lottery::level::read_row(&run, r)) {
                    return (Outcome::Fail(m), input);
                }
            }
        }
        let read = ticket::lottery::report::runs::read_runs(std::slice::from_ref(&run));
        if let Ok(runs) = &read {
            if runs[0].config.rounds > ticket::lottery::imp::MAX_ROUNDS {
                return (Outcome::Fail(format!("the report read a run of {} rounds", runs[0].config.rounds)), input);
            }
        }
        // Sometimes the whole report: into its own folder, or into the run (refused before anything renders).
        match rng.below(48) {
            0 => {
                let out = s.root.join("report");
                let _ = std::fs::remove_dir_all(&out);
                let r = ticket::lottery::report::write_imp_report(&[run.clone(), run.clone()], &out);
                if let Ok(rep) = &r {
                    if rep.groups.iter().map(|g| g.runs.len()).sum::<usize>() != 1 {
                        return (Outcome::Fail("one run given twice was counted twice".into()), input);
                    }
                }
                (check(r), input)
            }
            1 => match ticket::lottery::report::write_imp_report(std::slice::from_ref(&run), &run.join("level_1/report")) {
                Ok(_) => (Outcome::Fail("a report was written inside its input".into()), input),
                Err(e) => (check::<()>(Err(e)), input),
            },
            _ => (check(resumed.and(read)), input),
        }
    }

    fn sweep_dir(s: &RunSeeds, rng: &mut Rng) -> (Outcome, Vec<u8>) {
        let sweep = s.root.join("sweep");
        restore(&sweep, &s.sweep_files);
        let outside = s.root.join("x");
        let _ = std::fs::remove_dir_all(&outside);
        let k = rng.below(s.sweep_files.len());
        let (rel, orig) = &s.sweep_files[k];
        let input = if rel.ends_with(".json") && rng.below(4) > 0 { mutate_json(rng, orig) } else { mutate_bytes(rng, orig) };
        std::fs::write(sweep.join(rel), &input).unwrap();
        let plan = match folder::load(&sweep) {
            Ok(p) => p,
            Err(e) => return (check::<()>(Err(e)), input),
        };
        for t in &plan.tasks {
            let dir = folder::task_dir(&sweep, t);
            if dir.parent() != Some(sweep.join("tasks").as_path()) || t.hash.len() != 16 {
                return (Outcome::Fail(format!("task {} has the folder {}", t.index, dir.display())), input);
            }
            let _ = folder::state(&sweep, t);
        }
        let o = ticket::lottery::sweep::slurm::SlurmOptions { partition: Some("p".into()), ..Default::default() };
        let script = ticket::lottery::sweep::slurm::script(&sweep, &plan, &[0], Path::new("/bin/ticket"), &o, None);
        if script.lines().count() != 7 {
            return (Outcome::Fail(format!("the sbatch script has other lines than its own: {script:?}")), input);
        }
        if let Err(m) = plan.check_arguments(&s.opts) {
            return (if m.contains('\n') { Outcome::Fail(m) } else { Outcome::Refused }, input);
        }
        // Now and then the task, run by a binary that does not exist: it may write its own state files
        // (atomically, so slowly), nothing elsewhere.
        if rng.below(4) > 0 {
            return (Outcome::Ok, input);
        }
        let index = rng.below(plan.tasks.len());
        let r = ticket::lottery::sweep::task::run_task(&sweep, &plan, index, &s.root.join("no-ticket"), Some(1));
        if outside.exists() || std::fs::read_dir(&s.root).unwrap().count() > 6 {
            return (Outcome::Fail("a task wrote outside its sweep folder".into()), input);
        }
        (check(r), input)
    }
}
