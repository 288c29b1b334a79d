//! Pascal VOC folders (`DIR/Annotations/*.xml` or `DIR/*.xml`), read by hotcoco into COCO form: the one reader
//! behind training (`Dataset::from_voc`) and evaluation (`eval::voc`).
use crate::error::{Context, Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize)]
pub struct VocImage {
    /// The id detections use in memory (1-based, in annotation-file order).
    pub id: u64,
    /// The annotation file's stem, VOC's image id (`000005`).
    pub stem: String,
    pub file_name: String,
}

/// VOC ground truth: every `*.xml` of `DIR/Annotations` (or `DIR`), read by hotcoco into COCO form.
pub struct VocDataset {
    pub dir: PathBuf,
    pub images: Vec<VocImage>,
    /// Class names; class `i` has category id `i + 1`. Sorted by name, or in `DIR/labels.txt` order.
    pub classes: Vec<String>,
    /// The annotations in COCO form; evaluation matches against them.
    pub(crate) dataset: hotcoco::Dataset,
}

/// A VOC annotation is a few kB; anything this large is not one.
const MAX_XML_BYTES: u64 = 16 << 20;

impl VocDataset {
    pub fn load(dir: &Path) -> Result<Self> {
        std::fs::metadata(dir).at(dir)?;
        let ann_dir = if dir.join("Annotations").is_dir() { dir.join("Annotations") } else { dir.to_path_buf() };
        // voc_to_coco numbers images in the sorted order of the .xml files; list them the same way for the stems.
        let mut xml: Vec<PathBuf> = std::fs::read_dir(&ann_dir)
            .at(&ann_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("xml"))
            .collect();
        xml.sort();
        if xml.is_empty() {
            return Err(Error::input(dir, "no VOC annotations (*.xml) here or under Annotations/"));
        }
        // hotcoco reads the files itself, unbounded: only regular files of a sane size get that far (a FIFO
        // named *.xml would block it forever).
        for p in xml.iter().chain(Some(&dir.join("labels.txt")).filter(|l| l.exists())) {
            let (_, len) = crate::fsio::open_regular(p)?;
            if len > MAX_XML_BYTES {
                return Err(Error::input(p, format!("{len} bytes is larger than the {MAX_XML_BYTES} byte limit for a VOC file")));
            }
        }
        let dataset = hotcoco::convert::voc_to_coco(dir).at(dir)?;
        if xml.len() != dataset.images.len() {
            return Err(Error::Runtime(format!(
                "{}: read {} images from {} annotation files",
                dir.display(),
                dataset.images.len(),
                xml.len()
            )));
        }
        let images = dataset
            .images
            .iter()
            .zip(&xml)
            .map(|(img, p)| VocImage {
                id: img.id,
                stem: p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
                file_name: img.file_name.clone(),
            })
            .collect();
        let mut cats = dataset.categories.clone();
        cats.sort_by_key(|c| c.id);
        let classes = cats.into_iter().map(|c| c.name).collect();
        Ok(VocDataset { dir: dir.to_path_buf(), images, classes, dataset })
    }

    /// The images under `images_dir` (by the annotations' `<filename>`), with their ids; a file name must stay
    /// inside `images_dir` (no absolute path, no `..`).
    pub fn image_paths(&self, images_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
        self.images
            .iter()
            .map(|im| {
                let path = crate::fsio::confined_join(images_dir, &im.file_name, &format!("image {} filename", im.stem)).at(&self.dir)?;
                Ok((im.id, path))
            })
            .collect()
    }
}
