//! The synthetic objects' outlines: flat shapes and stick-figure persons with COCO's 17 keypoints, as polygons
//! with two decimals (the file's precision), from which the masks are rasterised.
use super::super::rng::SeededRng;

/// Two decimals in the file; the raster is made from the rounded values, so the file reproduces it.
pub(super) fn round2(v: f64) -> f64 {
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

/// A coordinate on a `s`-pixel canvas that leaves `lo` pixels before and `hi` after the object's centre line;
/// with no margins, uniform over the canvas (the default set's draw, bit for bit).
fn coordinate(rng: &mut SeededRng, s: f64, lo: f64, hi: f64) -> f64 {
    if lo + hi >= s {
        return rng.range(s / 2.0, s / 2.0);
    }
    rng.range(lo, s - hi)
}

/// One object of `category_id` at a random place on a `s`-pixel canvas, its sizes those drawn at 128 px times
/// `scale`: its polygons and, for a person, its 17 keypoints. With `fit`, the place is drawn where the object
/// lies inside the canvas (large objects would rarely land inside by chance); without, anywhere (the default
/// set's draws, which the caller retries).
pub(super) fn shape(rng: &mut SeededRng, category_id: u64, s: f64, scale: f64, fit: bool) -> (Vec<Vec<f64>>, Option<[[f64; 2]; 17]>) {
    // The margin an object of half-extent `r` needs from each edge (3 px: the caller's inside test).
    let m = |r: f64| if fit { r + 3.0 } else { 0.0 };
    match category_id {
        1 => {
            let side = rng.range(18.0, 44.0) * scale;
            let r = m(side * std::f64::consts::FRAC_1_SQRT_2);
            let (cx, cy) = (coordinate(rng, s, r, r), coordinate(rng, s, r, r));
            (vec![rotated_rect(cx, cy, side, side, rng.range(0.0, std::f64::consts::FRAC_PI_2))], None)
        }
        2 => {
            let r = rng.range(9.0, 22.0) * scale;
            (vec![regular_polygon(coordinate(rng, s, m(r), m(r)), coordinate(rng, s, m(r), m(r)), r, 32, 0.0)], None)
        }
        3 => {
            let r = rng.range(11.0, 26.0) * scale;
            let (cx, cy) = (coordinate(rng, s, m(r), m(r)), coordinate(rng, s, m(r), m(r)));
            (vec![regular_polygon(cx, cy, r, 3, rng.range(0.0, std::f64::consts::TAU))], None)
        }
        4 => {
            let len = rng.range(30.0, 60.0) * scale;
            let w = rng.range(6.0, 10.0) * scale;
            let r = m((len + w) / 2.0);
            let (cx, cy) = (coordinate(rng, s, r, r), coordinate(rng, s, r, r));
            (vec![rotated_rect(cx, cy, len, w, rng.range(0.0, std::f64::consts::PI))], None)
        }
        _ => {
            let h = rng.range(48.0, 84.0) * scale;
            // Arms reach about half the height to each side; the feet end within the height below the top.
            let (cx, top) = (coordinate(rng, s, m(0.5 * h), m(0.5 * h)), coordinate(rng, s, m(0.0), m(1.0 * h)));
            let k = stick_figure(rng, cx, top, h);
            (figure_polygons(&k, h), Some(k))
        }
    }
}
