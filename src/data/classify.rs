//! Classification sets: `DIR/labels.json` and `DIR/images/*.png`, read the same way by classifier training and
//! scoring, and the synthetic one cut from the synthetic detection scenes.
//!
//! `labels.json`:
//! ```json
//! { "categories": ["square", "disc", "triangle", "bar", "person"],
//!   "images": [ { "file_name": "000001.png", "category": "disc" }, … ] }
//! ```
//! `file_name` is relative to `DIR/images`; `category` is one of `categories`, whose order is the classifier's
//! output order (class index = position). Images are RGB of any size; they are resized to the training side.
//!
//! The synthetic set is one square crop per object of the scenes `ticket data synth` draws (128 px scenes, the
//! detection set's default): the object centred with a margin of its own background, resized to `size`. Crops,
//! rather than scenes of one object, because they give every image exactly one label while keeping the
//! detector's objects, backgrounds and categories, so the backbone pretrains on what the detector will see.
use super::synth::{render, CATEGORIES};
use crate::error::{Context, Error, Result, WriteContext};
use crate::imaging::transform::{IMAGE_MEAN, IMAGE_STD};
use crate::progress::Progress;
use ndarray::Array3;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const LABELS: &str = "labels.json";
const MAX_LABELS_BYTES: u64 = 64 << 20;
/// Side of the scenes crops are cut from: the synthetic detection set's default, so objects have the size a
/// detector trained on that set sees.
pub const SCENE_SIZE: usize = 128;

#[derive(Serialize, Deserialize)]
struct LabelsFile {
    categories: Vec<String>,
    images: Vec<LabelEntry>,
}

#[derive(Serialize, Deserialize)]
struct LabelEntry {
    file_name: String,
    category: String,
}

/// A classification set, checked: every image exists as a regular file and every label is a category.
#[derive(Clone, Debug)]
pub struct ClassifyDataset {
    /// The labels file.
    pub source: PathBuf,
    pub categories: Vec<String>,
    /// Image path and class index.
    pub items: Vec<(PathBuf, usize)>,
}

impl ClassifyDataset {
    pub fn load(dir: &Path) -> Result<Self> {
        let source = dir.join(LABELS);
        let bytes = crate::fsio::read_limited(&source, MAX_LABELS_BYTES)?;
        let file: LabelsFile = serde_json::from_slice(&bytes).context(&source, "not a classification labels file")?;
        if file.categories.is_empty() {
            return Err(Error::input(&source, "lists no categories"));
        }
        if let Some(dup) = file.categories.iter().enumerate().find(|(i, c)| file.categories[..*i].contains(c)) {
            return Err(Error::input(&source, format!("lists category '{}' twice", dup.1)));
        }
        if file.images.is_empty() {
            return Err(Error::input(&source, "lists no images"));
        }
        let image_dir = dir.join("images");
        let mut items = Vec::with_capacity(file.images.len());
        for (i, e) in file.images.iter().enumerate() {
            let label = file.categories.iter().position(|c| *c == e.category).ok_or_else(|| {
                Error::input(
                    &source,
                    format!("image {i} ('{}') has category '{}', which is not one of {:?}", e.file_name, e.category, file.categories),
                )
            })?;
            let path = crate::fsio::confined_join(&image_dir, &e.file_name, "file_name").at(&source)?;
            if !path.is_file() {
                return Err(Error::input(&path, format!("is listed in {} but is not a file", source.display())));
            }
            items.push((path, label));
        }
        Ok(ClassifyDataset { source, categories: file.categories, items })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Image `i` as the classifier takes it — `[3, side, side]`, normalised with the detectors' ImageNet
    /// statistics (so a body pretrained here sees the input a detector's body sees), bilinearly resized — and
    /// its class index.
    pub fn sample(&self, i: usize, side: usize) -> Result<(Array3<f32>, usize)> {
        let (path, label) = &self.items[i];
        let img = crate::imaging::reader::read_image(path)?;
        // Converted and normalised where the resize reads it (no float copy of the whole image); at the same
        // size the resize's weights are 1 and 0, so the values are `to_tensor` then normalise, exactly.
        let (w, h) = (img.width() as usize, img.height() as usize);
        let raw = img.as_raw();
        let normalised = |c: usize, y: usize, x: usize| (raw[(y * w + x) * 3 + c] as f32 / 255.0 - IMAGE_MEAN[c]) / IMAGE_STD[c];
        let image = crate::imaging::interpolate::resize_bilinear_with((3, h, w), normalised, side, side);
        Ok((image, *label))
    }

    /// Decodes every image once, so a broken file fails in one line before a run starts.
    pub fn verify(&self) -> Result<()> {
        (0..self.len()).try_for_each(|i| self.sample(i, 32).map(|_| ()))
    }

    /// The default training and scoring side: the first image's, which must be square and within
    /// [`check_side`]'s range. One odd first image must not set the network's input size for the whole set (a
    /// 1×20000 strip made a 20000 px classifier that needed 4.75 GB); the other images are resized to it.
    pub fn side(&self) -> Result<usize> {
        let first = &self.items[0].0;
        let (w, h) = crate::imaging::reader::image_size(first)?;
        if w != h {
            return Err(Error::input(
                first,
                format!(
                    "is {w}x{h}: the classifier's side is taken from the first image of {}, which must be square (or give the side)",
                    self.source.display()
                ),
            ));
        }
        check_side(w as usize).map_err(|m| {
            Error::input(first, format!("{m} (the first image of {} sets the side; give the side instead)", self.source.display()))
        })
    }
    /// Images per class index.
    pub fn per_class(&self) -> Vec<usize> {
        let mut n = vec![0; self.categories.len()];
        for (_, l) in &self.items {
            n[*l] += 1;
        }
        n
    }
}

/// Classifier input sides accepted, in pixels: the stem and four stages halve the side five times (below 32
/// nothing is left), and past 1024 px a ResNet's activations alone take gigabytes per image.
pub const SIDES: std::ops::RangeInclusive<usize> = 32..=1024;

/// `side` if it is a classifier input side this tool runs (see [`SIDES`]).
pub fn check_side(side: usize) -> std::result::Result<usize, String> {
    if SIDES.contains(&side) {
        Ok(side)
    } else {
        Err(format!("a classifier side of {side} px is outside {}..={} px", SIDES.start(), SIDES.end()))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ClassifyReport {
    pub out: PathBuf,
    pub labels: PathBuf,
    pub images: usize,
    /// Scenes drawn to cut them from.
    pub scenes: usize,
    pub seed: u64,
    pub size: usize,
    pub per_category: Vec<(String, usize)>,
}

/// Writes the new folder `out`: `images` object crops (`images/NNNNNN.png`) and `labels.json`, built beside it
/// and moved into place complete (`fsio::write_dir_atomic`): an existing non-empty `out` is refused, so new
/// images never sit beside an older set's labels. Scene `i` is the synthetic detection set's image `i` of the
/// same seed; its objects are cut in the order they were drawn.
pub fn write_classify(out: &Path, images: usize, seed: u64, size: usize, on: &mut dyn FnMut(Progress)) -> Result<ClassifyReport> {
    super::synth::SynthOptions { images, seed, size }.validate()?;
    let (scenes, per_category) = crate::fsio::write_dir_atomic(out, |dir| write_classify_files(dir, images, seed, size, on))?;
    Ok(ClassifyReport {
        out: out.to_path_buf(),
        labels: out.join(LABELS),
        images,
        scenes,
        seed,
        size,
        per_category: CATEGORIES.iter().map(|s| s.to_string()).zip(per_category).collect(),
    })
}

/// The set's files in `out`; the scenes drawn and the images per category.
fn write_classify_files(out: &Path, images: usize, seed: u64, size: usize, on: &mut dyn FnMut(Progress)) -> Result<(usize, Vec<usize>)> {
    let image_dir = out.join("images");
    std::fs::create_dir_all(&image_dir).writing(&image_dir)?;
    let mut entries = Vec::with_capacity(images);
    let mut per_category = vec![0usize; CATEGORIES.len()];
    let mut scene = 0u64;
    while entries.len() < images {
        let (img, drawn) = render(seed, scene, SCENE_SIZE, &super::synth::SceneMix::default())?;
        scene += 1;
        for d in drawn.iter().take(images - entries.len()) {
            let crop = crop_square(&img, d.bbox, size);
            let file_name = format!("{:06}.png", entries.len() + 1);
            let path = image_dir.join(&file_name);
            let mut png = Vec::new();
            crop.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .map_err(|e| Error::Runtime(format!("{}: {e}", path.display())))?;
            crate::fsio::write_atomic(&path, &png)?;
            let c = d.category_id as usize - 1;
            per_category[c] += 1;
            entries.push(LabelEntry { file_name, category: CATEGORIES[c].to_string() });
            on(Progress::Step);
        }
    }
    on(Progress::Done);
    let file = LabelsFile { categories: CATEGORIES.iter().map(|s| s.to_string()).collect(), images: entries };
    let labels = out.join(LABELS);
    crate::fsio::write_atomic(&labels, serde_json::to_string(&file).expect("serialises").as_bytes())?;
    Ok((scene as usize, per_category))
}

/// The square around a box `[x, y, w, h]` with a quarter of its long side (and 4 px) as margin, moved inside the
/// scene, resized to `size`.
fn crop_square(img: &image::RgbImage, bbox: [f64; 4], size: usize) -> image::RgbImage {
    let scene = img.width().min(img.height()) as f64;
    let side = (bbox[2].max(bbox[3]) * 1.25 + 4.0).ceil().min(scene);
    let x0 = (bbox[0] + bbox[2] / 2.0 - side / 2.0).clamp(0.0, scene - side);
    let y0 = (bbox[1] + bbox[3] / 2.0 - side / 2.0).clamp(0.0, scene - side);
    let crop = image::imageops::crop_imm(img, x0 as u32, y0 as u32, side as u32, side as u32).to_image();
    image::imageops::resize(&crop, size as u32, size as u32, image::imageops::FilterType::Triangle)
}
