//! Training data: a [`Dataset`] read from COCO json (+ an image folder) or a Pascal VOC folder, checked when it
//! is opened so that a bad file fails in one line before any training starts; [`Sample`]s decoded from it
//! (image, boxes, labels, instance masks, keypoints); the torchvision transforms training applies to them
//! (horizontal flip with the keypoint flip map, `GeneralizedRCNNTransform`'s resize onto a fixed canvas); and a
//! the order training visits it in is `train::batches`.
//!
//! Decisions, after torchvision's detection references (`coco_utils.ConvertCocoPolysToMask`):
//! - crowd annotations (`iscrowd: 1`) are dropped: the references filter them out before training;
//! - a box partly outside its image is clipped to the image, as the references clamp it;
//! - a box with no area after clipping (`w` or `h` ≤ 0) is dropped, as the references drop degenerate boxes —
//!   real COCO has a few, and refusing them would make train2017 unloadable; both counts are reported;
//! - a box entirely outside its image is an input error: no clipping makes it right, it means the file's
//!   `image_id` or coordinates are wrong.
use super::keypoints::flip_map_from_names;
use crate::error::{Context, Error, Result};
use crate::imaging::transform::{resized_size, rgb_to_chw, IMAGE_MEAN, IMAGE_STD};
use crate::imaging::{BoxXyxy, Hw};
use crate::progress::Progress;
use hotcoco::Segmentation;
use ndarray::{s, Array3};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Category {
    pub id: u64,
    pub name: String,
    /// Keypoint names; empty for a category without keypoints.
    pub keypoints: Vec<String>,
    /// 1-based pairs, as in the file.
    pub skeleton: Vec<[u32; 2]>,
}

/// One object as the file describes it, after the checks and clipping above.
#[derive(Clone, Debug)]
pub struct Object {
    pub annotation_id: u64,
    pub category_id: u64,
    /// `1 + ` the category's index in [`Dataset::categories`]: the model's class (0 is background).
    pub label: usize,
    /// In image pixels, clipped to the image.
    pub box_xyxy: BoxXyxy,
    pub segmentation: Option<Segmentation>,
    /// `(x, y, visibility)` per keypoint of the category; empty for a category without keypoints.
    pub keypoints: Vec<[f32; 3]>,
}

#[derive(Clone, Debug)]
pub struct ImageEntry {
    pub id: u64,
    pub path: PathBuf,
    /// Size the annotation file gives; the decoded image must agree.
    pub hw: Hw,
    pub objects: Vec<Object>,
}

/// A checked dataset: every image exists, every annotation refers to a known image and category.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The annotation file (COCO) or folder (VOC), named in errors.
    pub source: PathBuf,
    /// Sorted by id.
    pub categories: Vec<Category>,
    pub images: Vec<ImageEntry>,
    /// True when every kept object has a segmentation: samples then carry masks.
    pub has_masks: bool,
    /// Keypoints per object (the most any category has); 0 when no category has keypoints.
    pub num_keypoints: usize,
    /// Keypoint names of the category that has them (flip map source).
    pub keypoint_names: Vec<String>,
    pub dropped_crowd: usize,
    pub dropped_degenerate: usize,
    /// Where another annotation file's images begin (`joined`: a teacher's labels after the user's): the index of
    /// the first and that file, named in errors about them instead of `source`.
    pub joined_from: Option<(usize, PathBuf)>,
}

/// Refuses files larger than this before reading them (a COCO train2017 file is ~450 MB).
pub const MAX_ANNOTATION_BYTES: u64 = 2 << 30;

/// Reads a COCO annotation file (bounded, regular files only) without checking what it says: see [`validate_gt`].
pub fn read_coco(path: &Path) -> Result<hotcoco::Dataset> {
    parse_coco(path, &crate::fsio::read_limited(path, MAX_ANNOTATION_BYTES)?)
}

/// Parses the bytes of a COCO annotation file (`path` names it in errors).
pub fn parse_coco(path: &Path, bytes: &[u8]) -> Result<hotcoco::Dataset> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::input(path, "empty file: expected COCO annotation json"));
    }
    serde_json::from_slice(bytes).context(path, "not a COCO annotation file")
}

/// The one check of ground truth, shared by `ticket data check`/training and `ticket eval`, so that neither
/// accepts what the other refuses: images with a size and a unique id, categories with a unique id, every
/// annotation with a unique id on a known image and category, boxes `[x, y, w, h]` finite with `w, h ≥ 0` and not entirely
/// outside their image, a finite non-negative area, RLE masks of their image's size whose runs cover it, and
/// `3·K` keypoint values for a category with K keypoints. What training alone needs (a box on every object) is
/// checked where it is needed.
pub fn validate_gt(source: &Path, ds: &hotcoco::Dataset) -> Result<()> {
    let fail = |msg: String| Err(Error::input(source, msg));
    if ds.images.is_empty() {
        return fail("no images: a COCO annotation file lists its images under \"images\"".into());
    }
    if ds.categories.is_empty() {
        return fail("no categories".into());
    }
    let mut cats: HashMap<u64, &hotcoco::Category> = HashMap::new();
    for c in &ds.categories {
        if c.name.trim().is_empty() {
            return fail(format!("category {} has no name", c.id));
        }
        if cats.insert(c.id, c).is_some() {
            return fail(format!("category id {} appears twice", c.id));
        }
    }
    let mut sizes: HashMap<u64, (u32, u32)> = HashMap::new();
    for img in &ds.images {
        if img.height == 0 || img.width == 0 {
            return fail(format!("image {} ({}) has no size (width/height 0)", img.id, img.file_name));
        }
        if sizes.insert(img.id, (img.height, img.width)).is_some() {
            return fail(format!("image id {} appears twice", img.id));
        }
    }
    let mut ann_ids = std::collections::HashSet::new();
    for (n, a) in ds.annotations.iter().enumerate() {
        let bad = |msg: String| Err(Error::input(source, format!("annotation {} (#{n}): {msg}", a.id)));
        // hotcoco would look up only the last of two annotations with one id (and warn on stderr).
        if !ann_ids.insert(a.id) {
            return bad(format!("annotation id {} appears twice", a.id));
        }
        let Some(&(h, w)) = sizes.get(&a.image_id) else {
            return bad(format!("image_id {} is not an image of the file", a.image_id));
        };
        let Some(cat) = cats.get(&a.category_id) else {
            return bad(format!("category_id {} is not a category of the file", a.category_id));
        };
        if let Some(b) = a.bbox {
            if !b.iter().all(|v| v.is_finite()) || b[2] < 0.0 || b[3] < 0.0 {
                return bad(format!("bbox {b:?} is not [x, y, w, h] with w, h ≥ 0"));
            }
            if b[0] >= w as f64 || b[1] >= h as f64 || b[0] + b[2] <= 0.0 || b[1] + b[3] <= 0.0 {
                return bad(format!("bbox {b:?} lies outside its {w}x{h} image {}", a.image_id));
            }
        }
        if let Some(area) = a.area {
            if !(area.is_finite() && area >= 0.0) {
                return bad(format!("area {area} is not a finite number ≥ 0"));
            }
        }
        if let Some(seg) = &a.segmentation {
            check_rle(seg, (h, w)).with_context(source, || format!("annotation {} (#{n}): segmentation", a.id))?;
        }
        let k = cat.keypoints.as_ref().map_or(0, Vec::len);
        if let Some(kp) = a.keypoints.as_ref().filter(|_| k > 0) {
            if kp.len() != 3 * k || !kp.iter().all(|v| v.is_finite()) {
                return bad(format!("{} keypoint values, category \"{}\" needs {} finite ones", kp.len(), cat.name, 3 * k));
            }
        }
    }
    Ok(())
}

/// An RLE segmentation (either spelling) must be of its image's `(h, w)` and its runs must cover exactly
/// `h·w` pixels, as pycocotools writes them; polygons are not RLE and pass.
pub fn check_rle(seg: &Segmentation, hw: (u32, u32)) -> std::result::Result<(), String> {
    let Some(r) = seg.rle_ref() else { return Ok(()) };
    let rle = r.to_rle().map_err(|e| e.to_string())?;
    if (rle.h, rle.w) != hw {
        return Err(format!("RLE size {}x{} differs from its image's {}x{}", rle.h, rle.w, hw.0, hw.1));
    }
    let covered: u64 = rle.counts.iter().map(|&c| c as u64).sum();
    if covered != rle.h as u64 * rle.w as u64 {
        return Err(format!("RLE runs cover {covered} pixels, its {}x{} size has {}", rle.h, rle.w, rle.h as u64 * rle.w as u64));
    }
    Ok(())
}

impl Dataset {
    /// COCO annotations; `file_name`s are relative to `image_dir`.
    pub fn from_coco(annotations: &Path, image_dir: &Path) -> Result<Self> {
        let ds = read_coco(annotations)?;
        Self::from_hotcoco(annotations, ds, image_dir)
    }

    /// [`Dataset::from_coco`] on the bytes of the annotation file.
    pub fn from_coco_bytes(annotations: &Path, bytes: &[u8], image_dir: &Path) -> Result<Self> {
        let ds = parse_coco(annotations, bytes)?;
        Self::from_hotcoco(annotations, ds, image_dir)
    }

    /// A Pascal VOC folder: `Annotations/*.xml` (or `*.xml` in the folder); images in `image_dir`, by default
    /// `DIR/JPEGImages` as `ticket eval --voc` reads them.
    pub fn from_voc(dir: &Path, image_dir: Option<&Path>) -> Result<Self> {
        // VocDataset checks the folder and names the classes as evaluation does; it keeps its hotcoco dataset
        // to itself, so the boxes are read again through the same hotcoco converter.
        let voc = super::voc::VocDataset::load(dir)?;
        let ds = hotcoco::convert::voc_to_coco(dir).at(dir)?;
        if ds.categories.len() != voc.classes.len() {
            return Err(Error::Runtime(format!("{}: read the classes twice and got different lists", dir.display())));
        }
        let image_dir = image_dir.map_or_else(|| dir.join("JPEGImages"), Path::to_path_buf);
        Self::from_hotcoco(dir, ds, &image_dir)
    }

    fn from_hotcoco(source: &Path, ds: hotcoco::Dataset, image_dir: &Path) -> Result<Self> {
        validate_gt(source, &ds)?;
        let fail = |msg: String| Error::input(source, msg);
        let mut cats = ds.categories.clone();
        cats.sort_by_key(|c| c.id);
        let categories: Vec<Category> = cats
            .into_iter()
            .map(|c| Category {
                id: c.id,
                name: c.name,
                keypoints: c.keypoints.unwrap_or_default(),
                skeleton: c.skeleton.unwrap_or_default(),
            })
            .collect();
        let label_of: HashMap<u64, usize> = categories.iter().enumerate().map(|(i, c)| (c.id, i + 1)).collect();
        let kp_cat = categories.iter().filter(|c| !c.keypoints.is_empty()).max_by_key(|c| c.keypoints.len());
        let num_keypoints = kp_cat.map_or(0, |c| c.keypoints.len());
        let keypoint_names = kp_cat.map(|c| c.keypoints.clone()).unwrap_or_default();

        let mut images = Vec::with_capacity(ds.images.len());
        let mut index: HashMap<u64, usize> = HashMap::new();
        for img in &ds.images {
            // A file name from the annotation file stays inside the image folder: `/etc/hostname` or
            // `../../x.jpg` is refused, not decoded.
            let path = crate::fsio::confined_join(image_dir, &img.file_name, &format!("image {} file_name", img.id)).map_err(fail)?;
            if !path.is_file() {
                return Err(Error::input(&path, format!("missing image file (image {} of {})", img.id, source.display())));
            }
            index.insert(img.id, images.len());
            images.push(ImageEntry { id: img.id, path, hw: (img.height as usize, img.width as usize), objects: Vec::new() });
        }

        let (mut dropped_crowd, mut dropped_degenerate) = (0, 0);
        for (n, a) in ds.annotations.iter().enumerate() {
            let fail = |msg: String| Error::input(source, format!("annotation {} (#{n}): {msg}", a.id));
            let slot = index[&a.image_id];
            let label = label_of[&a.category_id];
            if a.iscrowd {
                dropped_crowd += 1;
                continue;
            }
            let entry = &mut images[slot];
            let (h, w) = (entry.hw.0 as f64, entry.hw.1 as f64);
            // Training needs a box for every object; validate_gt checked the ones that are there.
            let b = a.bbox.ok_or_else(|| fail("no bbox".into()))?;
            let clipped = [b[0].max(0.0), b[1].max(0.0), (b[0] + b[2]).min(w), (b[1] + b[3]).min(h)];
            if clipped[2] <= clipped[0] || clipped[3] <= clipped[1] {
                dropped_degenerate += 1;
                continue;
            }
            let cat = &categories[label - 1];
            let keypoints = match &a.keypoints {
                Some(k) if !cat.keypoints.is_empty() => k.chunks(3).map(|t| [t[0] as f32, t[1] as f32, t[2] as f32]).collect(),
                _ => Vec::new(),
            };
            entry.objects.push(Object {
                annotation_id: a.id,
                category_id: a.category_id,
                label,
                box_xyxy: clipped.map(|v| v as f32),
                segmentation: a.segmentation.clone(),
                keypoints,
            });
        }
        let has_masks =
            images.iter().flat_map(|i| &i.objects).all(|o| o.segmentation.is_some()) && images.iter().any(|i| !i.objects.is_empty());
        Ok(Dataset {
            source: source.to_path_buf(),
            categories,
            images,
            has_masks,
            num_keypoints,
            keypoint_names,
            dropped_crowd,
            dropped_degenerate,
            joined_from: None,
        })
    }

    /// The annotation file that describes image `i`.
    pub fn source_of(&self, i: usize) -> &Path {
        match &self.joined_from {
            Some((first, other)) if i >= *first => other,
            _ => &self.source,
        }
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    pub fn num_objects(&self) -> usize {
        self.images.iter().map(|i| i.objects.len()).sum()
    }

    /// The keypoint flip map: COCO's for the 17 COCO names, else left/right by name.
    pub fn flip_map(&self) -> Vec<usize> {
        flip_map_from_names(&self.keypoint_names)
    }

    /// Decodes image `i` with its objects at the image's own size.
    pub fn sample(&self, i: usize) -> Result<Sample> {
        let entry = &self.images[i];
        let img = crate::imaging::reader::read_image(&entry.path)?;
        let hw = (img.height() as usize, img.width() as usize);
        if hw != entry.hw {
            return Err(Error::input(
                &entry.path,
                format!("image is {}x{} but {} says {}x{}", hw.1, hw.0, self.source_of(i).display(), entry.hw.1, entry.hw.0),
            ));
        }
        let masks = if self.has_masks {
            let mut m = Array3::<u8>::zeros((entry.objects.len(), hw.0, hw.1));
            for (k, o) in entry.objects.iter().enumerate() {
                let seg = o.segmentation.as_ref().expect("has_masks: every object has one");
                let rle = seg
                    .to_rle(hw.0 as u32, hw.1 as u32)
                    .with_context(self.source_of(i), || format!("annotation {}: segmentation", o.annotation_id))?;
                // hotcoco decodes column-major (pycocotools' Fortran order): pixel (x, y) at y + h * x.
                let col = hotcoco::mask::decode(&rle);
                for x in 0..hw.1 {
                    for y in 0..hw.0 {
                        m[[k, y, x]] = col[y + hw.0 * x];
                    }
                }
            }
            Some(m)
        } else {
            None
        };
        let keypoints = (self.num_keypoints > 0).then(|| {
            entry
                .objects
                .iter()
                .map(|o| if o.keypoints.len() == self.num_keypoints { o.keypoints.clone() } else { vec![[0.0; 3]; self.num_keypoints] })
                .collect()
        });
        Ok(Sample {
            image_id: entry.id,
            image: img,
            boxes: entry.objects.iter().map(|o| o.box_xyxy).collect(),
            labels: entry.objects.iter().map(|o| o.label).collect(),
            masks,
            keypoints,
        })
    }

    /// Decodes every image once: the check `ticket data check` runs before a long training run.
    pub fn verify(&self, on: &mut dyn FnMut(Progress)) -> Result<()> {
        for i in 0..self.len() {
            self.sample(i)?;
            on(Progress::Step);
        }
        on(Progress::Done);
        Ok(())
    }
}

/// One training image at its own size. Masks are `[N, H, W]` 0/1; keypoints `N × K × (x, y, v)`.
#[derive(Clone, Debug)]
pub struct Sample {
    pub image_id: u64,
    pub image: image::RgbImage,
    pub boxes: Vec<BoxXyxy>,
    pub labels: Vec<usize>,
    pub masks: Option<Array3<u8>>,
    pub keypoints: Option<Vec<Vec<[f32; 3]>>>,
}

impl Sample {
    pub fn hw(&self) -> Hw {
        (self.image.height() as usize, self.image.width() as usize)
    }

    /// torchvision's `RandomHorizontalFlip` (detection references): `x → W − x` for boxes (x1 and x2 swap) and
    /// keypoints, masks mirrored, keypoints reordered by `flip_map` and unlabelled ones (v = 0) zeroed.
    pub fn hflip(&self, flip_map: &[usize]) -> Sample {
        let w = self.image.width() as f32;
        let keypoints = self.keypoints.as_ref().map(|all| {
            all.iter()
                .map(|kps| {
                    (0..kps.len())
                        .map(|j| {
                            let k = kps[flip_map.get(j).copied().unwrap_or(j)];
                            if k[2] == 0.0 {
                                [0.0; 3]
                            } else {
                                [w - k[0], k[1], k[2]]
                            }
                        })
                        .collect()
                })
                .collect()
        });
        Sample {
            image_id: self.image_id,
            image: image::imageops::flip_horizontal(&self.image),
            boxes: self.boxes.iter().map(|b| [w - b[2], b[1], w - b[0], b[3]]).collect(),
            labels: self.labels.clone(),
            masks: self.masks.as_ref().map(|m| m.slice(s![.., .., ..;-1]).to_owned()),
            keypoints,
        }
    }

    /// `GeneralizedRCNNTransform` for training at one fixed input shape: normalise, resize by
    /// [`resized_size`] (boxes and keypoints by the same per-side ratios, masks by nearest neighbour as
    /// `F.interpolate` does), zero-pad bottom/right to the canvas.
    pub fn to_canvas(&self, canvas: &Canvas) -> Result<CanvasSample> {
        let hw = self.hw();
        let (rh, rw) = resized_size(hw, canvas.min_size, canvas.max_size);
        if rh == 0 || rw == 0 || rh > canvas.hw.0 || rw > canvas.hw.1 {
            return Err(Error::Input(format!(
                "image {} ({}x{}) resizes to {rh}x{rw}, which does not fit the {}x{} canvas (min_size {}, max_size {})",
                self.image_id, hw.1, hw.0, canvas.hw.1, canvas.hw.0, canvas.min_size, canvas.max_size
            )));
        }
        let mut chw = rgb_to_chw(&self.image);
        for (c, mut plane) in chw.outer_iter_mut().enumerate() {
            plane.mapv_inplace(|v| (v - IMAGE_MEAN[c]) / IMAGE_STD[c]);
        }
        let resized = crate::imaging::interpolate::resize_bilinear(chw.view(), rh, rw);
        let mut image = Array3::<f32>::zeros((3, canvas.hw.0, canvas.hw.1));
        image.slice_mut(s![.., ..rh, ..rw]).assign(&resized);
        // torchvision's resize_boxes / resize_keypoints: new / old per side, in float32.
        let (ry, rx) = (rh as f32 / hw.0 as f32, rw as f32 / hw.1 as f32);
        let boxes = self.boxes.iter().map(|b| [b[0] * rx, b[1] * ry, b[2] * rx, b[3] * ry]).collect();
        let keypoints =
            self.keypoints.as_ref().map(|all| all.iter().map(|kps| kps.iter().map(|k| [k[0] * rx, k[1] * ry, k[2]]).collect()).collect());
        let masks = self.masks.as_ref().map(|m| {
            let mut out = Array3::<u8>::zeros((m.dim().0, canvas.hw.0, canvas.hw.1));
            // Nearest (`F.interpolate` default mode, recompute_scale_factor): source = floor(dst · in / out).
            for y in 0..rh {
                let sy = ((y as f64 * hw.0 as f64 / rh as f64) as usize).min(hw.0 - 1);
                for x in 0..rw {
                    let sx = ((x as f64 * hw.1 as f64 / rw as f64) as usize).min(hw.1 - 1);
                    for k in 0..m.dim().0 {
                        out[[k, y, x]] = m[[k, sy, sx]];
                    }
                }
            }
            out
        });
        Ok(CanvasSample {
            image_id: self.image_id,
            image,
            resized_hw: (rh, rw),
            original_hw: hw,
            boxes,
            labels: self.labels.clone(),
            masks,
            keypoints,
        })
    }
}

/// The fixed input shape of a training run and the resize rule that fills it.
#[derive(Clone, Debug)]
pub struct Canvas {
    pub min_size: usize,
    pub max_size: usize,
    /// `(H, W)`; every resized image must fit.
    pub hw: Hw,
}

impl Canvas {
    /// A square canvas of side `size` with `min_size = max_size = size`: every image fits, its long side fills it.
    pub fn square(size: usize) -> Self {
        Canvas { min_size: size, max_size: size, hw: (size, size) }
    }
}

/// A sample on the canvas: what the training graph takes.
#[derive(Clone, Debug)]
pub struct CanvasSample {
    pub image_id: u64,
    /// Normalised, `[3, H, W]` of the canvas, zero beyond `resized_hw`.
    pub image: Array3<f32>,
    pub resized_hw: Hw,
    pub original_hw: Hw,
    pub boxes: Vec<BoxXyxy>,
    pub labels: Vec<usize>,
    /// `[N, H, W]` of the canvas.
    pub masks: Option<Array3<u8>>,
    pub keypoints: Option<Vec<Vec<[f32; 3]>>>,
}
