//! One synthetic scene: a striped, noisy background and non-overlapping objects, each painted from the very
//! raster hotcoco makes of its polygons (so boxes, masks and pixels agree exactly).
use super::shapes::{round2, shape};
use super::{Drawn, Scales, SceneMix, CATEGORIES, PERSON_ID};
use crate::data::rng::SeededRng;
use crate::error::{Error, Result};
use serde_json::json;

/// COCO's object area ranges in pixels of the image: small below 32², medium below 96², large from 96².
pub const SMALL_AREA: u64 = 32 * 32;
pub const MEDIUM_AREA: u64 = 96 * 96;

/// The COCO area range of an object of `area` pixels: 0 small, 1 medium, 2 large.
pub fn area_range(area: u64) -> usize {
    match area {
        a if a < SMALL_AREA => 0,
        a if a < MEDIUM_AREA => 1,
        _ => 2,
    }
}

/// With `--scales coco`, each object's range is drawn first, in COCO's own shares (train2017: 41% small, 34%
/// medium, 24% large), then an area within it.
const RANGE_SHARES: [f64; 3] = [0.41, 0.34, 0.25];
/// The smallest area drawn: a shape below ~6×6 px is noise rather than an object.
const MIN_AREA: f64 = 36.0;
/// The largest area per category, as a fraction of the canvas: what still fits inside it (a bar as long as the
/// canvas, a person as tall) and leaves room for others. Where that is below large's range, the object is
/// medium instead.
const MAX_AREA_FRACTION: [f64; 5] = [0.3, 0.3, 0.25, 0.1, 0.1];
/// Each category's mean mask area at `scale` 1 (its outline's sizes as `shapes::shape` draws them at 128 px),
/// from which the scale that gives a wanted area follows (area ∝ scale²).
const NOMINAL_AREA: [f64; 5] = [1017.0, 799.0, 469.0, 360.0, 759.0];

/// One object the scene asks for: its category and, with COCO scales, its area range.
#[derive(Clone, Copy)]
struct Wanted {
    category_id: u64,
    range: Option<usize>,
}

/// Draws image `index` of a dataset: the image and its objects. With the default mix the draws are exactly
/// those of the 128-px set the tests and docs/RESULTS.md were made on.
pub(crate) fn render(seed: u64, index: u64, size: usize, mix: &SceneMix) -> Result<(image::RgbImage, Vec<Drawn>)> {
    let mut rng = SeededRng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let size = match mix.size_max {
        Some(max) if max > size => rng.int(size as i64, max as i64) as usize,
        _ => size,
    };
    let (mut img, base) = background(&mut rng, size);
    let mut drawn = Vec::new();
    let mut boxes: Vec<[f64; 4]> = Vec::new();
    for want in wanted(&mut rng, mix, size as f64) {
        // Up to 30 placements: objects never overlap, so every mask is the object's whole shape.
        for _attempt in 0..30 {
            if let Some(d) = place(&mut rng, want, &mut img, &base, &boxes)? {
                boxes.push(d.bbox);
                drawn.push(d);
                break;
            }
        }
    }
    Ok((img, drawn))
}

/// Background: a base colour, stripes at a random angle and frequency, per-pixel noise; and the base colour.
fn background(rng: &mut SeededRng, size: usize) -> (image::RgbImage, [f64; 3]) {
    let scale = size as f64 / 128.0;
    let base: [f64; 3] = [rng.range(50.0, 200.0), rng.range(50.0, 200.0), rng.range(50.0, 200.0)];
    let (theta, freq, amp) = (rng.range(0.0, std::f64::consts::PI), rng.range(0.04, 0.3) / scale, rng.range(8.0, 30.0));
    let mut img = image::RgbImage::new(size as u32, size as u32);
    for (x, y, p) in img.enumerate_pixels_mut() {
        let stripe = amp * ((x as f64 * theta.cos() + y as f64 * theta.sin()) * freq).sin();
        for c in 0..3 {
            p[c] = (base[c] + stripe + rng.range(-18.0, 18.0)).clamp(0.0, 255.0) as u8;
        }
    }
    (img, base)
}

/// The objects a scene asks for, in placement order: the largest first, since they would rarely find room
/// among the others (persons first on the default canvas; with COCO scales, large before medium before small).
fn wanted(rng: &mut SeededRng, mix: &SceneMix, s: f64) -> Vec<Wanted> {
    let mut wanted: Vec<Wanted> = match mix.scales {
        Scales::Canvas => {
            let n = rng.int(1, 4) as usize;
            (0..n).map(|_| Wanted { category_id: category(rng, mix), range: None }).collect()
        }
        Scales::Coco => {
            let n = rng.int(2, 6) as usize;
            (0..n)
                .map(|_| {
                    let u = rng.unit();
                    let range = if u < RANGE_SHARES[0] {
                        0
                    } else if u < RANGE_SHARES[0] + RANGE_SHARES[1] {
                        1
                    } else {
                        2
                    };
                    Wanted { category_id: category_in_range(rng, mix, range, s), range: Some(range) }
                })
                .collect()
        }
    };
    wanted.sort_by_key(|w| (std::cmp::Reverse(w.range), std::cmp::Reverse(w.category_id == PERSON_ID)));
    wanted
}

/// A category: uniform, or the rare one with its probability and the others uniform.
fn category(rng: &mut SeededRng, mix: &SceneMix) -> u64 {
    match &mix.rare {
        None => rng.int(1, CATEGORIES.len() as i64) as u64,
        Some(r) if rng.unit() < r.fraction => r.category_id,
        Some(r) => {
            let k = rng.int(1, CATEGORIES.len() as i64 - 1) as u64;
            if k >= r.category_id {
                k + 1
            } else {
                k
            }
        }
    }
}

/// With COCO scales, a category that reaches `range` on a `s`-pixel canvas: uniform among those, or the rare
/// one with a probability that keeps its share of all objects at its fraction (a rare category that cannot be
/// large is drawn more often among small and medium objects).
fn category_in_range(rng: &mut SeededRng, mix: &SceneMix, range: usize, s: f64) -> u64 {
    let ids = 1..=CATEGORIES.len() as u64;
    let rare = mix.rare.as_ref().map(|r| {
        let p = match (largest_range(r.category_id, s), range) {
            (2, _) => r.fraction,
            (_, 2) => 0.0,
            _ => r.fraction / (1.0 - RANGE_SHARES[2]),
        };
        (r.category_id, p)
    });
    if let Some((id, p)) = rare {
        if rng.unit() < p {
            return id;
        }
    }
    let others: Vec<u64> = ids.filter(|&c| largest_range(c, s) >= range && rare.is_none_or(|(id, _)| id != c)).collect();
    others[rng.int(0, others.len() as i64 - 1) as usize]
}

/// The largest area of a category on a `s`-pixel canvas.
fn max_area(category_id: u64, s: f64) -> f64 {
    MAX_AREA_FRACTION[category_id as usize - 1] * s * s
}

/// The largest COCO range a category reaches on a `s`-pixel canvas: large only where its largest area leaves
/// a quarter of large's lower bound to draw from.
fn largest_range(category_id: u64, s: f64) -> usize {
    if max_area(category_id, s) >= 1.25 * MEDIUM_AREA as f64 {
        2
    } else {
        1
    }
}

/// The scale of one object's outline: the canvas's, or (COCO scales) the one that gives an area drawn
/// log-uniformly within its range.
fn object_scale(rng: &mut SeededRng, want: Wanted, s: f64) -> f64 {
    let Some(range) = want.range else { return s / 128.0 };
    let (lo, hi) = match range {
        0 => (MIN_AREA, SMALL_AREA as f64),
        1 => (SMALL_AREA as f64, MEDIUM_AREA as f64),
        _ => (MEDIUM_AREA as f64, max_area(want.category_id, s)),
    };
    let area = (lo.ln() + (hi.ln() - lo.ln()) * rng.unit()).exp();
    (area / NOMINAL_AREA[want.category_id as usize - 1]).sqrt()
}

fn inside(poly: &[f64], size: f64) -> bool {
    poly.iter().all(|&v| (2.0..=size - 3.0).contains(&v))
}

/// One placement attempt: the object drawn and painted, or `None` where it leaves the canvas, is too thin,
/// touches another object or (COCO scales) misses its area range.
fn place(rng: &mut SeededRng, want: Wanted, img: &mut image::RgbImage, base: &[f64; 3], boxes: &[[f64; 4]]) -> Result<Option<Drawn>> {
    let size = img.width() as usize;
    let s = size as f64;
    let scale = object_scale(rng, want, s);
    let (polys, keypoints) = shape(rng, want.category_id, s, scale, want.range.is_some());
    if !polys.iter().all(|p| inside(p, s)) || keypoints.is_some_and(|k| !k.iter().all(|p| inside(p, s))) {
        return Ok(None);
    }
    let rle = hotcoco::mask::fr_polys(&polys, size as u32, size as u32).map_err(|e| Error::Runtime(format!("rasterising a shape: {e}")))?;
    let area = hotcoco::mask::area(&rle);
    let bbox = hotcoco::mask::to_bbox(&rle);
    // Too thin to see, or touching another object (2 px gap): try elsewhere.
    if area < 16
        || want.range.is_some_and(|r| area_range(area) != r)
        || boxes.iter().any(|b| {
            bbox[0] < b[0] + b[2] + 2.0 && b[0] < bbox[0] + bbox[2] + 2.0 && bbox[1] < b[1] + b[3] + 2.0 && b[1] < bbox[1] + bbox[3] + 2.0
        })
    {
        return Ok(None);
    }
    paint(rng, img, base, &hotcoco::mask::decode(&rle));
    // A person is one union of many polygons: written as RLE, the form COCO uses for such masks.
    let segmentation =
        if keypoints.is_some() { json!({ "size": [size, size], "counts": hotcoco::mask::rle_to_string(&rle) }) } else { json!(polys) };
    Ok(Some(Drawn {
        category_id: want.category_id,
        segmentation,
        bbox,
        area,
        keypoints: keypoints.map(|k| k.iter().flat_map(|p| [round2(p[0]), round2(p[1]), 2.0]).collect()),
    }))
}

/// Paints the pixels of a column-major mask in an object colour far from the background, with a little noise
/// of its own.
fn paint(rng: &mut SeededRng, img: &mut image::RgbImage, base: &[f64; 3], col_major: &[u8]) {
    let size = img.width() as usize;
    let mut colour = [rng.range(0.0, 255.0), rng.range(0.0, 255.0), rng.range(0.0, 255.0)];
    if colour.iter().zip(base).map(|(a, b)| (a - b).abs()).sum::<f64>() < 150.0 {
        colour = base.map(|b| if b > 127.0 { b - 110.0 } else { b + 110.0 });
    }
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
}
