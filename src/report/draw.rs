//! Detections drawn on their image for a person to look at: per-class colours, 2 px box outlines, a filled
//! tag with the class and score, masks blended in the class colour, keypoints with the COCO skeleton. The text
//! comes from a built-in 5×7 bitmap font so that drawing needs no font files and no drawing crate.
//!
//! Everything is clipped per pixel, so boxes, masks and keypoints partly (or wholly) outside the image draw
//! what falls inside and nothing else.
use crate::detect::pipeline::ImageDetections;
use crate::error::{Error, Result};
use image::{Rgb, RgbImage};
use std::path::Path;

/// torchvision's mask threshold when it binarises Mask R-CNN probabilities.
pub const MASK_THRESHOLD: f32 = 0.5;
/// Weight of the class colour over a masked pixel.
pub const MASK_ALPHA: f32 = 0.4;
/// Keypoints whose heatmap logit is below this are not drawn (Detectron's `kp_thresh`): Keypoint R-CNN places
/// all K points on every person, also the ones it cannot see.
pub const KEYPOINT_LOGIT_MIN: f32 = 2.0;
/// Box outline width in pixels.
pub const BOX_WIDTH: i64 = 2;

/// COCO's person skeleton in torchvision's keypoint order (0 nose, 1–4 eyes and ears, 5–10 shoulders, elbows,
/// wrists, 11–16 hips, knees, ankles), left before right.
pub const COCO_SKELETON: [(usize, usize); 19] = [
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
];

/// Sasha Trubetskoy's distinct colours, without white, black, grey and the two darkest, which tags and thin
/// outlines would lose on most photographs.
const PALETTE: [[u8; 3]; 16] = [
    [230, 25, 75],
    [60, 180, 75],
    [255, 225, 25],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [210, 245, 60],
    [250, 190, 212],
    [0, 128, 128],
    [220, 190, 255],
    [170, 110, 40],
    [170, 255, 195],
    [128, 128, 0],
    [255, 215, 180],
];

/// The colour a class is drawn in (the same for a label in every image).
pub fn class_colour(label: i64) -> Rgb<u8> {
    Rgb(PALETTE[label.rem_euclid(PALETTE.len() as i64) as usize])
}

/// Black text on light colours, white on dark ones.
fn text_colour(c: Rgb<u8>) -> Rgb<u8> {
    let luma = 0.299 * c[0] as f32 + 0.587 * c[1] as f32 + 0.114 * c[2] as f32;
    if luma > 150.0 {
        Rgb([0, 0, 0])
    } else {
        Rgb([255, 255, 255])
    }
}

/// Draws `dets` on `img` (read from `image_path`) and writes it as `dir/<image stem>.png`.
pub fn write_drawn(dir: &Path, image_path: &Path, img: &RgbImage, dets: &ImageDetections) -> Result<()> {
    let drawn = draw_detections(img, dets, 0.0, None);
    let stem = image_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    let out = dir.join(format!("{stem}.png"));
    let mut bytes = Vec::new();
    drawn
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| Error::input(&out, format!("cannot encode PNG: {e}")))?;
    crate::fsio::write_atomic(&out, &bytes)
}

/// Draws the detections with score ≥ `score_min` on a copy of `img`. Labels index `class_names` (torchvision's
/// lists start with the background, so label 1 is `class_names[1]`); without a name the number is written.
/// Lower scores are drawn first, so the best detection ends up on top.
pub fn draw_detections(img: &RgbImage, dets: &ImageDetections, score_min: f32, class_names: Option<&[String]>) -> RgbImage {
    let mut out = img.clone();
    let n = dets.boxes.len().min(dets.scores.len());
    let mut shown: Vec<usize> = (0..n).filter(|&i| dets.scores[i] >= score_min).collect();
    shown.sort_by(|&a, &b| dets.scores[a].total_cmp(&dets.scores[b]));
    let label = |i: usize| dets.labels.get(i).copied().unwrap_or(0);
    let scale = text_scale(img);

    // One pasted mask at a time (a whole-image mask per detection would take N × the image in floats).
    for &i in &shown {
        if let Some(m) = dets.pasted_mask(i) {
            blend_mask(&mut out, &m, class_colour(label(i)));
        }
    }
    for &i in &shown {
        let [l, t, r, b] = pixel_box(dets.boxes[i]);
        let c = class_colour(label(i));
        fill_rect(&mut out, l, t, r + 1, t + BOX_WIDTH, c);
        fill_rect(&mut out, l, b + 1 - BOX_WIDTH, r + 1, b + 1, c);
        fill_rect(&mut out, l, t, l + BOX_WIDTH, b + 1, c);
        fill_rect(&mut out, r + 1 - BOX_WIDTH, t, r + 1, b + 1, c);
    }
    if let Some(points) = &dets.keypoints {
        for &i in shown.iter().filter(|&&i| i < points.dim().0) {
            let scores = dets.keypoint_scores.as_ref().filter(|s| i < s.dim().0).map(|s| s.row(i));
            let k = points.dim().1;
            let p: Vec<Option<(f32, f32)>> = (0..k)
                .map(|j| {
                    let visible = points[[i, j, 2]] > 0.0 && scores.as_ref().is_none_or(|s| j >= s.len() || s[j] >= KEYPOINT_LOGIT_MIN);
                    visible.then_some((points[[i, j, 0]], points[[i, j, 1]]))
                })
                .collect();
            let c = class_colour(label(i));
            if k == 17 {
                for (a, b) in COCO_SKELETON {
                    if let (Some(pa), Some(pb)) = (p[a], p[b]) {
                        draw_line(&mut out, pa, pb, scale + 1, c);
                    }
                }
            }
            for (x, y) in p.into_iter().flatten() {
                fill_disc(&mut out, x, y, 2 * scale + 1, text_colour(c));
                fill_disc(&mut out, x, y, 2 * scale, c);
            }
        }
    }
    for &i in &shown {
        let [bl, bt, br, bb] = pixel_box(dets.boxes[i]);
        // A tag clamped into the image for a box outside it would label something that is not there.
        if br < 0 || bb < 0 || bl >= img.width() as i64 || bt >= img.height() as i64 {
            continue;
        }
        let l = label(i);
        let name = class_names.and_then(|names| usize::try_from(l).ok().and_then(|j| names.get(j))).filter(|s| !s.trim().is_empty());
        let text = match name {
            Some(s) => format!("{s} {:.2}", dets.scores[i]),
            None => format!("{l} {:.2}", dets.scores[i]),
        };
        draw_tag(&mut out, pixel_box(dets.boxes[i]), &text, class_colour(l), scale);
    }
    out
}

/// Text grows with the image so that it stays readable on full-size photographs: 1× below 800 px on the
/// short side, 2× from 800 (torchvision's eval size), up to 4×.
fn text_scale(img: &RgbImage) -> i64 {
    (img.width().min(img.height()) / 400).clamp(1, 4) as i64
}

/// Height of the class-and-score tag drawn on `img`, in pixels.
pub fn tag_height_px(img: &RgbImage) -> u32 {
    let scale = text_scale(img);
    (2 * scale + GLYPH_H * scale) as u32
}

/// A coordinate as a pixel index far enough from i64's ends that adding widths cannot overflow; NaN gives 0.
fn px(v: f32) -> i64 {
    v.clamp(-1e9, 1e9) as i64
}

/// Inclusive pixel bounds `[left, top, right, bottom]` of a box in continuous coordinates: pixel x covers
/// [x, x + 1), so a box [10, 10, 50, 40] covers columns 10..=49.
fn pixel_box(b: [f32; 4]) -> [i64; 4] {
    let p = |v: f32| px(v.round());
    let (l, t) = (p(b[0]), p(b[1]));
    [l, t, (p(b[2]) - 1).max(l), (p(b[3]) - 1).max(t)]
}

/// Fills [x0, x1) × [y0, y1), clipped to the image.
fn fill_rect(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb<u8>) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    for y in y0.clamp(0, h)..y1.clamp(0, h) {
        for x in x0.clamp(0, w)..x1.clamp(0, w) {
            img.put_pixel(x as u32, y as u32, c);
        }
    }
}

fn blend_mask(img: &mut RgbImage, mask: &crate::detect::paste::PastedMask, c: Rgb<u8>) {
    let (mh, mw) = mask.probs.dim();
    let (y1, x1) = ((img.height() as usize).min(mask.y0 + mh), (img.width() as usize).min(mask.x0 + mw));
    for y in mask.y0..y1 {
        for x in mask.x0..x1 {
            if mask.probs[[y - mask.y0, x - mask.x0]] > MASK_THRESHOLD {
                let p = img.get_pixel_mut(x as u32, y as u32);
                for ch in 0..3 {
                    p[ch] = ((1.0 - MASK_ALPHA) * p[ch] as f32 + MASK_ALPHA * c[ch] as f32).round() as u8;
                }
            }
        }
    }
}

fn fill_disc(img: &mut RgbImage, cx: f32, cy: f32, r: i64, c: Rgb<u8>) {
    if !(cx.is_finite() && cy.is_finite()) {
        return;
    }
    let (x0, y0) = (px(cx.floor()), px(cy.floor()));
    for dy in -r..=r {
        for dx in -r..=r {
            if dx * dx + dy * dy <= r * r {
                fill_rect(img, x0 + dx, y0 + dy, x0 + dx + 1, y0 + dy + 1, c);
            }
        }
    }
}

/// A `width`-pixel line. It is clipped to the image first (Liang–Barsky), so far-away end points cost nothing.
fn draw_line(img: &mut RgbImage, a: (f32, f32), b: (f32, f32), width: i64, c: Rgb<u8>) {
    let margin = width as f32;
    let (xmin, ymin, xmax, ymax) = (-margin, -margin, img.width() as f32 + margin, img.height() as f32 + margin);
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    if !(dx.is_finite() && dy.is_finite()) {
        return;
    }
    let (mut t0, mut t1) = (0f32, 1f32);
    for (p, q) in [(-dx, a.0 - xmin), (dx, xmax - a.0), (-dy, a.1 - ymin), (dy, ymax - a.1)] {
        if p == 0.0 {
            if q < 0.0 {
                return;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    if t0 > t1 {
        return;
    }
    let (x0, y0) = ((a.0 + t0 * dx).floor() as i64, (a.1 + t0 * dy).floor() as i64);
    let (x1, y1) = ((a.0 + t1 * dx).floor() as i64, (a.1 + t1 * dy).floor() as i64);
    // Bresenham over the clipped segment, stamping a width × width square at each step.
    let (sx, sy) = ((x1 - x0).signum(), (y1 - y0).signum());
    let (ax, ay) = ((x1 - x0).abs(), -(y1 - y0).abs());
    let (mut x, mut y, mut err) = (x0, y0, ax + ay);
    let lo = width / 2;
    loop {
        fill_rect(img, x - lo, y - lo, x - lo + width, y - lo + width, c);
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= ay {
            err += ay;
            x += sx;
        }
        if e2 <= ax {
            err += ax;
            y += sy;
        }
    }
}

/// The class-and-score tag: a filled rectangle in the class colour sitting on the box's top edge, or just
/// inside the box when there is no room above it, kept inside the image horizontally.
fn draw_tag(img: &mut RgbImage, [l, t, _, _]: [i64; 4], text: &str, c: Rgb<u8>, scale: i64) {
    let pad = scale;
    let chars = text.chars().count() as i64;
    let tag_w = 2 * pad + chars * GLYPH_ADVANCE * scale - scale;
    let tag_h = 2 * pad + GLYPH_H * scale;
    let (w, h) = (img.width() as i64, img.height() as i64);
    let x = l.min(w - tag_w).max(0);
    let y = if t - tag_h >= 0 { t - tag_h } else { t.max(0).min(h - tag_h).max(0) };
    fill_rect(img, x, y, x + tag_w, y + tag_h, c);
    draw_text(img, x + pad, y + pad, text, scale, text_colour(c));
}

const GLYPH_W: i64 = 5;
const GLYPH_H: i64 = 7;
/// Glyph width plus one column of space.
const GLYPH_ADVANCE: i64 = GLYPH_W + 1;

fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: i64, c: Rgb<u8>) {
    for (k, ch) in text.chars().enumerate() {
        let gx = x + k as i64 * GLYPH_ADVANCE * scale;
        for (row, bits) in glyph(ch).iter().enumerate() {
            for col in 0..GLYPH_W {
                if bits >> (GLYPH_W - 1 - col) & 1 == 1 {
                    let (px, py) = (gx + col * scale, y + row as i64 * scale);
                    fill_rect(img, px, py, px + scale, py + scale, c);
                }
            }
        }
    }
}

/// 5×7 glyphs, one byte per row, bit 4 the leftmost column (the HD44780 character set's shapes). Letters are
/// drawn as capitals, which read better than 5×7 lower case; anything else becomes '?'.
fn glyph(ch: char) -> [u8; 7] {
    match ch.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        ' ' => [0; 7],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ',' => [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '\'' => [0x0C, 0x04, 0x08, 0, 0, 0, 0],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
    }
}
