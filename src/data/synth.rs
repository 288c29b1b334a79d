//! A synthetic COCO dataset small enough for a detector to learn on two cores: ~128 px images of flat shapes
//! (square, disc, triangle, on) and stick-figure persons with COCO's 17 keypoints, on striped, noisy
//! backgrounds. Every mask is rasterised by hotcoco (pycocotools' rasteriser) from the very polygons written to
//! the file, and the image is painted from that raster, so boxes, masks and pixels agree exactly.
//!
//! Deterministic: image `i` is drawn from its own generator seeded by `(seed, i)`, so the same seed writes the
//! same bytes, and a larger `--images` only appends images.
use super::keypoints::{COCO_KEYPOINTS, COCO_SKELETON};
use super::rng::SeededRng;
use crate::error::{Error, Result, WriteContext};
use crate::progress::Progress;
use serde::Serialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Category names; ids are index + 1. The last one carries keypoints.
pub const CATEGORIES: [&str; 5] = ["square", "disc", "triangle", "bar", "person"];
pub const PERSON_ID: u64 = 5;

#[derive(Clone, Debug)]
pub struct SynthOptions {
    pub images: usize,
    pub seed: u64,
    /// Side of the square images, in pixels.
    pub size: usize,
}

impl SynthOptions {
    /// The checked form: sizes below 32 px leave no room for a shape, above 1024 the masks get slow for no gain.
    pub fn validate(&self) -> Result<()> {
        if self.images == 0 {
            return Err(Error::setting("images", "`images` must be at least 1"));
        }
        if !(32..=1024).contains(&self.size) {
            return Err(Error::setting("size", format!("`size` {} is outside 32..=1024 pixels", self.size)));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SynthReport {
    pub out: PathBuf,
    pub annotations: PathBuf,
    pub images: usize,
    pub objects: usize,
    pub seed: u64,
    pub size: usize,
    /// `(name, objects)` per category.
    pub per_category: Vec<(String, usize)>,
}

/// One drawn object, as the annotation file describes it.
pub(crate) struct Drawn {
    pub(crate) category_id: u64,
    segmentation: Value,
    /// COCO `[x, y, w, h]`.
    pub(crate) bbox: [f64; 4],
    area: u64,
    keypoints: Option<Vec<f64>>,
}

/// Writes the new folder `out`: `images/NNNNNN.png` and `annotations.json`, built beside it and moved into
/// place complete (`fsio::write_dir_atomic`): an existing non-empty `out` is refused, never mixed with.
pub fn write_synth(out: &Path, opts: &SynthOptions, on: &mut dyn FnMut(Progress)) -> Result<SynthReport> {
    opts.validate()?;
    let (objects, per_category) = crate::fsio::write_dir_atomic(out, |dir| write_synth_files(dir, opts, on))?;
    Ok(SynthReport {
        out: out.to_path_buf(),
        annotations: out.join("annotations.json"),
        images: opts.images,
        objects,
        seed: opts.seed,
        size: opts.size,
        per_category: CATEGORIES.iter().map(|s| s.to_string()).zip(per_category).collect(),
    })
}

/// The dataset's files in `out`; the object count and objects per category.
fn write_synth_files(out: &Path, opts: &SynthOptions, on: &mut dyn FnMut(Progress)) -> Result<(usize, Vec<usize>)> {
    let image_dir = out.join("images");
    std::fs::create_dir_all(&image_dir).writing(&image_dir)?;
    let mut images = Vec::with_capacity(opts.images);
    let mut annotations = Vec::new();
    let mut per_category = vec![0usize; CATEGORIES.len()];
    for i in 0..opts.images {
        let id = i as u64 + 1;
        let file_name = format!("{id:06}.png");
        let (img, drawn) = render(opts.seed, i as u64, opts.size)?;
        let path = image_dir.join(&file_name);
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| Error::Runtime(format!("{}: {e}", path.display())))?;
        crate::fsio::write_atomic(&path, &png)?;
        images.push(json!({ "id": id, "file_name": file_name, "width": opts.size, "height": opts.size }));
        for d in drawn {
            per_category[d.category_id as usize - 1] += 1;
            let mut a = json!({
                "id": annotations.len() + 1,
                "image_id": id,
                "category_id": d.category_id,
                "bbox": d.bbox,
                "area": d.area,
                "iscrowd": 0,
                "segmentation": d.segmentation,
            });
            if let Some(k) = d.keypoints {
                a["num_keypoints"] = json!(k.len() / 3);
                a["keypoints"] = json!(k);
            }
            annotations.push(a);
        }
        on(Progress::Step);
    }
    on(Progress::Done);
    let categories: Vec<Value> = CATEGORIES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let id = i as u64 + 1;
            if id == PERSON_ID {
                json!({ "id": id, "name": name, "supercategory": "person", "keypoints": COCO_KEYPOINTS, "skeleton": COCO_SKELETON })
            } else {
                json!({ "id": id, "name": name, "supercategory": "shape" })
            }
        })
        .collect();
    let objects = annotations.len();
    let doc = json!({
        "info": { "description": format!("ticket synthetic shapes, seed {}, {} px", opts.seed, opts.size), "version": "1" },
        "images": images,
        "annotations": annotations,
        "categories": categories,
    });
    let ann_path = out.join("annotations.json");
    crate::fsio::write_atomic(&ann_path, serde_json::to_string(&doc).expect("json values serialise").as_bytes())?;
    Ok((objects, per_category))
}

/// Two decimals in the file; the raster is made from the rounded values, so the file reproduces it.
fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn regular_polygon(cx: f64, cy: f64, r: f64, n: usize, phase: f64) -> Vec<f64> {
    (0..n)
        .flat_map(|k| {
            let a = phase + std::f64::consts::TAU * k as f64 / n as f64;
            [round2(cx + r * a.cos()), round2(cy + r * a.sin())]
        })
        .collect()
}

/// A rectangle of `length × width` centred at `(cx, cy)`, turned by `angle`.
fn rotated_rect(cx: f64, cy: f64, length: f64, width: f64, angle: f64) -> Vec<f64> {
    let (c, s) = (angle.cos(), angle.sin());
    [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]
        .iter()
        .flat_map(|&(u, v)| {
            let (x, y) = (u * length, v * width);
            [round2(cx + x * c - y * s), round2(cy + x * s + y * c)]
        })
        .collect()
}

/// A thick segment from `a` to `b` as a polygon (a rectangle along it, extended by half the thickness so
/// joints close).
fn limb(a: [f64; 2], b: [f64; 2], thickness: f64) -> Vec<f64> {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len = (dx * dx + dy * dy).sqrt().max(1e-6);
    rotated_rect((a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0, len + thickness, thickness, dy.atan2(dx))
}

/// The 17 COCO keypoints of a frontal stick figure whose box spans `top..top + h` around `cx`. The figure faces
/// the viewer, so the person's left is on the image's right; a horizontal flip with the COCO flip map keeps
/// that true, which is what makes left and right learnable.
fn stick_figure(rng: &mut SeededRng, cx: f64, top: f64, h: f64) -> [[f64; 2]; 17] {
    let y = |f: f64| top + f * h;
    let head_y = y(0.1);
    let shoulder_y = y(0.24);
    let hip_y = y(0.56);
    let sw = 0.13 * h;
    let hw = 0.08 * h;
    // Person's left = image right: +x.
    let l_sh = [cx + sw, shoulder_y];
    let r_sh = [cx - sw, shoulder_y];
    let arm = |rng: &mut SeededRng, sh: [f64; 2], side: f64| {
        // Angle from straight down, outwards; elbow and wrist bend independently.
        let a1 = rng.range(0.15, 1.9);
        let a2 = a1 + rng.range(-0.6, 0.9);
        let seg = 0.17 * h;
        let elbow = [sh[0] + side * seg * a1.sin(), sh[1] + seg * a1.cos()];
        let wrist = [elbow[0] + side * seg * a2.sin(), elbow[1] + seg * a2.cos()];
        (elbow, wrist)
    };
    let (l_el, l_wr) = arm(rng, l_sh, 1.0);
    let (r_el, r_wr) = arm(rng, r_sh, -1.0);
    let l_hip = [cx + hw, hip_y];
    let r_hip = [cx - hw, hip_y];
    let leg = |rng: &mut SeededRng, hip: [f64; 2], side: f64| {
        let spread = rng.range(0.0, 0.45);
        let seg = 0.21 * h;
        let knee = [hip[0] + side * seg * spread.sin(), hip[1] + seg * spread.cos()];
        let bend = spread + rng.range(-0.35, 0.2);
        let ankle = [knee[0] + side * seg * bend.sin(), knee[1] + seg * bend.cos()];
        (knee, ankle)
    };
    let (l_kn, l_an) = leg(rng, l_hip, 1.0);
    let (r_kn, r_an) = leg(rng, r_hip, -1.0);
    let e = 0.035 * h;
    [
        [cx, head_y + 0.01 * h],
        [cx + e, head_y - 0.015 * h],
        [cx - e, head_y - 0.015 * h],
        [cx + 2.0 * e, head_y],
        [cx - 2.0 * e, head_y],
        l_sh,
        r_sh,
        l_el,
        r_el,
        l_wr,
        r_wr,
        l_hip,
        r_hip,
        l_kn,
        r_kn,
        l_an,
        r_an,
    ]
}

/// The polygons of a stick figure: head, neck, torso, shoulder and hip bars, limbs.
fn figure_polygons(k: &[[f64; 2]; 17], h: f64) -> Vec<Vec<f64>> {
    let t = (h / 18.0).max(2.0);
    let head_c = [k[0][0], k[0][1] - 0.01 * h];
    let mid_sh = [(k[5][0] + k[6][0]) / 2.0, k[5][1]];
    let mid_hip = [(k[11][0] + k[12][0]) / 2.0, k[11][1]];
    let mut polys = vec![regular_polygon(head_c[0], head_c[1], 0.1 * h, 20, 0.0), limb(head_c, mid_sh, t), limb(mid_sh, mid_hip, t * 1.5)];
    for (a, b) in [(5, 6), (11, 12), (5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16)] {
        polys.push(limb(k[a], k[b], t));
    }
    polys
}

fn inside(poly: &[f64], size: f64) -> bool {
    poly.iter().all(|&v| (2.0..=size - 3.0).contains(&v))
}

/// Draws image `index` of a dataset: the image and its objects.
pub(crate) fn render(seed: u64, index: u64, size: usize) -> Result<(image::RgbImage, Vec<Drawn>)> {
    let mut rng = SeededRng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let s = size as f64;
    let scale = s / 128.0;
    // Background: a base colour, stripes at a random angle and frequency, per-pixel noise.
    let base: [f64; 3] = [rng.range(50.0, 200.0), rng.range(50.0, 200.0), rng.range(50.0, 200.0)];
    let (theta, freq, amp) = (rng.range(0.0, std::f64::consts::PI), rng.range(0.04, 0.3) / scale, rng.range(8.0, 30.0));
    let mut img = image::RgbImage::new(size as u32, size as u32);
    for (x, y, p) in img.enumerate_pixels_mut() {
        let stripe = amp * ((x as f64 * theta.cos() + y as f64 * theta.sin()) * freq).sin();
        for c in 0..3 {
            p[c] = (base[c] + stripe + rng.range(-18.0, 18.0)).clamp(0.0, 255.0) as u8;
        }
    }

    let n = rng.int(1, 4) as usize;
    let mut boxes: Vec<[f64; 4]> = Vec::new();
    let mut drawn = Vec::new();
    // Persons are placed first: they are the largest objects and would rarely find room among shapes.
    let mut wanted: Vec<u64> = (0..n).map(|_| rng.int(1, CATEGORIES.len() as i64) as u64).collect();
    wanted.sort_by_key(|&c| std::cmp::Reverse(c == PERSON_ID));
    for category_id in wanted {
        // Up to 30 placements: objects never overlap, so every mask is the object's whole shape.
        for _attempt in 0..30 {
            let (polys, keypoints) = shape(&mut rng, category_id, s, scale);
            if !polys.iter().all(|p| inside(p, s)) || keypoints.is_some_and(|k| !k.iter().all(|p| inside(p, s))) {
                continue;
            }
            let rle = hotcoco::mask::fr_polys(&polys, size as u32, size as u32)
                .map_err(|e| Error::Runtime(format!("rasterising a shape: {e}")))?;
            let area = hotcoco::mask::area(&rle);
            let bbox = hotcoco::mask::to_bbox(&rle);
            // Too thin to see, or touching another object (2 px gap): try elsewhere.
            if area < 16
                || boxes.iter().any(|b| {
                    bbox[0] < b[0] + b[2] + 2.0
                        && b[0] < bbox[0] + bbox[2] + 2.0
                        && bbox[1] < b[1] + b[3] + 2.0
                        && b[1] < bbox[1] + bbox[3] + 2.0
                })
            {
                continue;
            }
            // An object colour far from the background, with a little noise of its own.
            let mut colour = [rng.range(0.0, 255.0), rng.range(0.0, 255.0), rng.range(0.0, 255.0)];
            if colour.iter().zip(&base).map(|(a, b)| (a - b).abs()).sum::<f64>() < 150.0 {
                colour = base.map(|b| if b > 127.0 { b - 110.0 } else { b + 110.0 });
            }
            let col_major = hotcoco::mask::decode(&rle);
            for x in 0..size {
                for y in 0..size {
                    if col_major[y + size * x] != 0 {
                        let p = img.get_pixel_mut(x as u32, y as u32);
                        for c in 0..3 {
                            p[c] = (colour[c] + rng.range(-10.0, 10.0)).clamp(0.0, 255.0) as u8;
                        }
                    }
                }
            }
            boxes.push(bbox);
            // A person is one union of many polygons: written as RLE, the form COCO uses for such masks.
            let segmentation = if keypoints.is_some() {
                json!({ "size": [size, size], "counts": hotcoco::mask::rle_to_string(&rle) })
            } else {
                json!(polys)
            };
            drawn.push(Drawn {
                category_id,
                segmentation,
                bbox,
                area,
                keypoints: keypoints.map(|k| k.iter().flat_map(|p| [round2(p[0]), round2(p[1]), 2.0]).collect()),
            });
            break;
        }
    }
    Ok((img, drawn))
}

/// One object of `category_id` at a random place on a `s`-pixel canvas (`scale` = s / 128): its polygons and,
/// for a person, its 17 keypoints.
fn shape(rng: &mut SeededRng, category_id: u64, s: f64, scale: f64) -> (Vec<Vec<f64>>, Option<[[f64; 2]; 17]>) {
    match category_id {
        1 => {
            let side = rng.range(18.0, 44.0) * scale;
            let (cx, cy) = (rng.range(0.0, s), rng.range(0.0, s));
            (vec![rotated_rect(cx, cy, side, side, rng.range(0.0, std::f64::consts::FRAC_PI_2))], None)
        }
        2 => {
            let r = rng.range(9.0, 22.0) * scale;
            (vec![regular_polygon(rng.range(0.0, s), rng.range(0.0, s), r, 32, 0.0)], None)
        }
        3 => {
            let r = rng.range(11.0, 26.0) * scale;
            (vec![regular_polygon(rng.range(0.0, s), rng.range(0.0, s), r, 3, rng.range(0.0, std::f64::consts::TAU))], None)
        }
        4 => {
            let len = rng.range(30.0, 60.0) * scale;
            let w = rng.range(6.0, 10.0) * scale;
            (vec![rotated_rect(rng.range(0.0, s), rng.range(0.0, s), len, w, rng.range(0.0, std::f64::consts::PI))], None)
        }
        _ => {
            let h = rng.range(48.0, 84.0) * scale;
            let (cx, top) = (rng.range(0.0, s), rng.range(0.0, s));
            let k = stick_figure(rng, cx, top, h);
            (figure_polygons(&k, h), Some(k))
        }
    }
}
