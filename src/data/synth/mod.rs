//! A synthetic COCO dataset small enough for a detector to learn on two cores: ~128 px images of flat shapes
//! (square, disc, triangle, on) and stick-figure persons with COCO's 17 keypoints, on striped, noisy
//! backgrounds. Every mask is rasterised by hotcoco (pycocotools' rasteriser) from the very polygons written to
//! the file, and the image is painted from that raster, so boxes, masks and pixels agree exactly.
//!
//! Beyond the default set, a [`SceneMix`] asks for what the claims on object size and rarity need: a larger
//! canvas (one side, or a range each image draws its side from), objects of COCO's three area ranges (small
//! below 32², medium below 96², large above, in pixels of the image) instead of objects scaled with the canvas,
//! and one category made rare.
//!
//! Deterministic: image `i` is drawn from its own generator seeded by `(seed, i)`, so the same seed writes the
//! same bytes, and a larger `--images` only appends images.
mod scene;
mod shapes;

pub(crate) use scene::render;
pub use scene::{area_range, MEDIUM_AREA, SMALL_AREA};

use super::keypoints::{COCO_KEYPOINTS, COCO_SKELETON};
use crate::choice::named_choices;
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
    /// Side of the square images, in pixels (with [`SceneMix::size_max`], the smallest side).
    pub size: usize,
}

/// Image sides accepted, in pixels: below 32 there is no room for a shape, above 1024 the masks get slow for no
/// gain.
const SIDES: std::ops::RangeInclusive<usize> = 32..=1024;

impl SynthOptions {
    /// The checked form.
    pub fn validate(&self) -> Result<()> {
        if self.images == 0 {
            return Err(Error::setting("images", "`images` must be at least 1"));
        }
        if !SIDES.contains(&self.size) {
            return Err(Error::setting("size", format!("`size` {} is outside 32..=1024 pixels", self.size)));
        }
        Ok(())
    }
}

/// How objects are sized.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scales {
    /// Each category's sizes at 128 px, scaled with the canvas (the default set).
    #[default]
    Canvas,
    /// Each object's area drawn within one of COCO's small, medium and large ranges (in pixels of the image).
    Coco,
}

named_choices!(Scales, "object scales", [
    Canvas = "canvas": "each category's sizes at 128 px, scaled with the canvas (the default set)",
    Coco = "coco": "small, medium and large objects by COCO's area ranges (< 32², < 96², ≥ 96² px); needs a side of at least 192 px",
]);

/// The smallest side on which COCO scales leave room for large objects (≥ 96² px) among others.
pub const COCO_SCALES_MIN_SIDE: usize = 192;

/// One category made rare: drawn with probability `fraction` per object, the others sharing the rest evenly.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rare {
    pub category: String,
    #[serde(skip)]
    pub(crate) category_id: u64,
    pub fraction: f64,
}

impl Rare {
    /// `category` (one of [`CATEGORIES`]) at `fraction`, which must lie in (0, 0.2): rarer than the even share.
    pub fn new(category: &str, fraction: f64) -> Result<Self> {
        let Some(i) = CATEGORIES.iter().position(|c| *c == category) else {
            return Err(Error::setting("rare_category", format!("`rare_category` '{category}' is not one of {CATEGORIES:?}")));
        };
        if !(fraction > 0.0 && fraction < 1.0 / CATEGORIES.len() as f64) {
            return Err(Error::setting(
                "rare_fraction",
                format!("`rare_fraction` {fraction} is outside (0, 0.2): a rare category is rarer than the even share of 1/5"),
            ));
        }
        Ok(Rare { category: category.to_string(), category_id: i as u64 + 1, fraction })
    }
}

/// What the scenes hold beyond the default set. The default is the default set.
#[derive(Clone, Debug, Default)]
pub struct SceneMix {
    /// With a value above [`SynthOptions::size`], each image draws its side from `size..=size_max`.
    pub size_max: Option<usize>,
    pub scales: Scales,
    pub rare: Option<Rare>,
}

impl SceneMix {
    /// The checked form, with the options it goes with.
    pub fn validate(&self, opts: &SynthOptions) -> Result<()> {
        if let Some(max) = self.size_max {
            if !SIDES.contains(&max) || max < opts.size {
                return Err(Error::setting("size", format!("`size` {}..{max} is not a range within 32..=1024 pixels", opts.size)));
            }
        }
        if self.scales == Scales::Coco && opts.size < COCO_SCALES_MIN_SIDE {
            return Err(Error::setting(
                "scales",
                format!(
                    "`scales` coco needs a side of at least {COCO_SCALES_MIN_SIDE} px (large objects are ≥ 96² px and need room), not {}",
                    opts.size
                ),
            ));
        }
        Ok(())
    }

    fn is_default(&self) -> bool {
        self.size_max.is_none() && self.scales == Scales::Canvas && self.rare.is_none()
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
    /// The largest side, when each image drew its side from `size..=size_max`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_max: Option<usize>,
    /// `(name, objects)` per category.
    pub per_category: Vec<(String, usize)>,
    /// With COCO scales: objects per COCO area range, `[small, medium, large]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_area: Option<[usize; 3]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rare: Option<Rare>,
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

/// What the files hold, counted while they are written.
struct Counts {
    objects: usize,
    per_category: Vec<usize>,
    per_area: [usize; 3],
}

/// Writes the new folder `out`: `images/NNNNNN.png` and `annotations.json`, built beside it and moved into
/// place complete (`fsio::write_dir_atomic`): an existing non-empty `out` is refused, never mixed with.
pub fn write_synth(out: &Path, opts: &SynthOptions, on: &mut dyn FnMut(Progress)) -> Result<SynthReport> {
    write_synth_mix(out, opts, &SceneMix::default(), on)
}

/// [`write_synth`] with scenes that hold `mix`.
pub fn write_synth_mix(out: &Path, opts: &SynthOptions, mix: &SceneMix, on: &mut dyn FnMut(Progress)) -> Result<SynthReport> {
    opts.validate()?;
    mix.validate(opts)?;
    let counts = crate::fsio::write_dir_atomic(out, |dir| write_synth_files(dir, opts, mix, on))?;
    Ok(SynthReport {
        out: out.to_path_buf(),
        annotations: out.join("annotations.json"),
        images: opts.images,
        objects: counts.objects,
        seed: opts.seed,
        size: opts.size,
        size_max: mix.size_max,
        per_category: CATEGORIES.iter().map(|s| s.to_string()).zip(counts.per_category).collect(),
        per_area: (mix.scales == Scales::Coco).then_some(counts.per_area),
        rare: mix.rare.clone(),
    })
}

/// The dataset's files in `out`, counted.
fn write_synth_files(out: &Path, opts: &SynthOptions, mix: &SceneMix, on: &mut dyn FnMut(Progress)) -> Result<Counts> {
    let image_dir = out.join("images");
    std::fs::create_dir_all(&image_dir).writing(&image_dir)?;
    let mut images = Vec::with_capacity(opts.images);
    let mut annotations = Vec::new();
    let mut counts = Counts { objects: 0, per_category: vec![0; CATEGORIES.len()], per_area: [0; 3] };
    for i in 0..opts.images {
        let id = i as u64 + 1;
        let file_name = format!("{id:06}.png");
        let (img, drawn) = render(opts.seed, i as u64, opts.size, mix)?;
        let path = image_dir.join(&file_name);
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| Error::Runtime(format!("{}: {e}", path.display())))?;
        crate::fsio::write_atomic(&path, &png)?;
        images.push(json!({ "id": id, "file_name": file_name, "width": img.width(), "height": img.height() }));
        for d in drawn {
            counts.per_category[d.category_id as usize - 1] += 1;
            counts.per_area[area_range(d.area)] += 1;
            annotations.push(annotation(annotations.len() + 1, id, d));
        }
        on(Progress::Step);
    }
    on(Progress::Done);
    counts.objects = annotations.len();
    let doc = json!({
        "info": info(opts, mix),
        "images": images,
        "annotations": annotations,
        "categories": categories(),
    });
    let ann_path = out.join("annotations.json");
    crate::fsio::write_atomic(&ann_path, serde_json::to_string(&doc).expect("json values serialise").as_bytes())?;
    Ok(counts)
}

/// One object as a COCO annotation.
fn annotation(id: usize, image_id: u64, d: Drawn) -> Value {
    let mut a = json!({
        "id": id,
        "image_id": image_id,
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
    a
}

fn categories() -> Vec<Value> {
    CATEGORIES
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
        .collect()
}

/// The file's `info`: the seed and side, and, beyond the default set, the mix it was drawn with (the side
/// range, `scales`, and which category is rare at what fraction), so the set says what it is.
fn info(opts: &SynthOptions, mix: &SceneMix) -> Value {
    let side = match mix.size_max {
        Some(max) => format!("{}..{max}", opts.size),
        None => opts.size.to_string(),
    };
    let mut info = json!({ "description": format!("ticket synthetic shapes, seed {}, {side} px", opts.seed), "version": "1" });
    if !mix.is_default() {
        info["seed"] = json!(opts.seed);
        info["size"] = json!([opts.size, mix.size_max.unwrap_or(opts.size)]);
        info["scales"] = json!(mix.scales);
        if let Some(r) = &mix.rare {
            info["rare_category"] = json!(r.category);
            info["rare_fraction"] = json!(r.fraction);
        }
    }
    info
}
