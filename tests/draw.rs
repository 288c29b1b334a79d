//! Drawing detections: what a person sees is where the detections are. Pixels are checked on a flat grey
//! image, where anything drawn stands out.
use image::{Rgb, RgbImage};
use ndarray::{Array2, Array3};
use ticket::detect::pipeline::ImageDetections;
use ticket::report::draw::{tag_height_px, MASK_ALPHA};
use ticket::report::{class_colour, draw_detections};

const GREY: Rgb<u8> = Rgb([100, 100, 100]);
const W: u32 = 200;
const H: u32 = 150;

fn grey() -> RgbImage {
    RgbImage::from_pixel(W, H, GREY)
}

/// One cat (label 3) at [20, 40, 120, 130] whose mask covers the middle of its box (about x 57..89, y 73..103);
/// one box half outside the top-left corner (label 5); one wholly outside; one below the score threshold.
fn detections() -> ImageDetections {
    // Mask probabilities in the box, as the mask head gives them (28 x 28), pasted when drawn.
    let mut probs = Array3::<f32>::zeros((4, 28, 28));
    probs.slice_mut(ndarray::s![0, 10..20, 10..20]).fill(0.9);
    // Below the 0.5 threshold: not drawn (pasted around y 109..125).
    probs.slice_mut(ndarray::s![0, 21..27, 10..20]).fill(0.4);
    ImageDetections {
        boxes: vec![[20.0, 40.0, 120.0, 130.0], [-30.0, -20.0, 60.0, 30.0], [500.0, 500.0, 600.0, 600.0], [150.0, 60.0, 190.0, 100.0]],
        scores: vec![0.9, 0.8, 0.7, 0.1],
        labels: vec![3, 5, 7, 9],
        mask_probs: Some(probs),
        image_hw: (H as usize, W as usize),
        ..Default::default()
    }
}

#[test]
fn box_edges_have_the_class_colour() {
    let out = draw_detections(&grey(), &detections(), 0.5, None);
    let c = class_colour(3);
    // Both pixels of the 2 px outline, on all four sides; pixel 119 is the last column of a box ending at 120.
    for (x, y) in [(20, 80), (21, 80), (118, 80), (119, 80), (70, 40), (70, 41), (70, 128), (70, 129)] {
        assert_eq!(*out.get_pixel(x, y), c, "box edge pixel ({x}, {y})");
    }
    // Just outside and just inside the outline: untouched.
    assert_eq!(*out.get_pixel(19, 80), GREY);
    assert_eq!(*out.get_pixel(22, 80), GREY);
    assert_eq!(*out.get_pixel(120, 80), GREY);
    assert_ne!(class_colour(3), class_colour(5), "classes get different colours");
}

#[test]
fn masked_pixels_are_blended_in_the_class_colour() {
    let out = draw_detections(&grey(), &detections(), 0.5, None);
    let c = class_colour(3);
    let want: Vec<u8> = (0..3).map(|ch| ((1.0 - MASK_ALPHA) * GREY[ch] as f32 + MASK_ALPHA * c[ch] as f32).round() as u8).collect();
    assert_eq!(out.get_pixel(75, 90).0.to_vec(), want, "a masked pixel");
    assert_eq!(*out.get_pixel(30, 60), GREY, "inside the box but outside the mask");
    assert_eq!(*out.get_pixel(75, 115), GREY, "mask probability 0.4 is below the threshold");
}

#[test]
fn the_tag_sits_above_the_box_with_text() {
    let out = draw_detections(&grey(), &detections(), 0.5, None);
    let c = class_colour(3);
    let tag = |img: &RgbImage| -> Vec<Rgb<u8>> {
        (40 - tag_height_px(img)..40).flat_map(|y| (20..60).map(move |x| (x, y))).map(|(x, y)| *img.get_pixel(x, y)).collect()
    };
    let pixels = tag(&out);
    let fill = pixels.iter().filter(|p| **p == c).count();
    let text = pixels.iter().filter(|p| **p != c && **p != GREY).count();
    assert!(fill > pixels.len() / 2, "the tag is filled with the class colour ({fill} of {})", pixels.len());
    assert!(text > 20, "the tag has text pixels ({text})");
    // Names from the list, when given, make a different (longer) text than the bare number.
    let names: Vec<String> = ["__background__", "person", "bicycle", "cat"].iter().map(|s| s.to_string()).collect();
    let named = draw_detections(&grey(), &detections(), 0.5, Some(&names));
    assert_ne!(tag(&named), pixels);
    let row = 40 - tag_height_px(&out) / 2;
    let width = |img: &RgbImage| (20..W).take_while(|&x| *img.get_pixel(x, row) != GREY).count();
    assert!(width(&named) > width(&out), "'cat 0.90' is wider than '3 0.90'");
}

#[test]
fn boxes_outside_the_image_draw_only_what_is_inside() {
    let out = draw_detections(&grey(), &detections(), 0.5, None);
    let c = class_colour(5);
    // The half-outside box's right and bottom edges are in the image; its tag goes inside the box.
    assert_eq!(*out.get_pixel(59, 10), c);
    assert_eq!(*out.get_pixel(10, 29), c);
    assert!((0..10).any(|y| (0..40).any(|x| *out.get_pixel(x, y) != c && *out.get_pixel(x, y) != GREY)), "tag text inside the box");
    // The box wholly outside draws nothing, not even a tag clamped into the image.
    assert!(out.pixels().all(|p| *p != class_colour(7)));
    // Below score_min: untouched.
    assert!((60..100).all(|y| (150..190).all(|x| *out.get_pixel(x, y) == GREY)));
}

#[test]
fn nonsense_coordinates_do_not_panic() {
    let mut kp = Array3::<f32>::zeros((2, 17, 3));
    kp.slice_mut(ndarray::s![.., .., 2]).fill(1.0);
    kp[[0, 0, 0]] = f32::NAN;
    kp[[0, 5, 0]] = 1e30;
    kp[[0, 6, 1]] = -1e30;
    kp[[1, 3, 0]] = f32::INFINITY;
    let dets = ImageDetections {
        boxes: vec![[f32::NAN, 0.0, 1e30, f32::INFINITY], [-1e30, -1e30, -1e29, -1e29], [5.0, 5.0, 5.0, 5.0]],
        scores: vec![0.9, 0.9, 0.9],
        // A label past the palette and past the names, and a negative one.
        labels: vec![1000, -1, 2],
        mask_probs: Some(Array3::<f32>::ones((3, 10, 10))),
        keypoints: Some(kp),
        keypoint_scores: Some(Array2::<f32>::from_elem((2, 17), 10.0)),
        image_hw: (H as usize, W as usize),
    };
    let names = vec!["a".to_string()];
    draw_detections(&grey(), &dets, 0.0, Some(&names));
    draw_detections(&RgbImage::new(1, 1), &dets, 0.0, None);
    draw_detections(&RgbImage::new(0, 0), &dets, 0.0, None);
}

#[test]
fn keypoints_are_dots_joined_by_the_skeleton() {
    // A stick figure: keypoint j at (20 + 8j, 20 + 6j); the left shoulder (5) and right shoulder (6) are joined.
    let mut kp = Array3::<f32>::zeros((1, 17, 3));
    for j in 0..17 {
        kp[[0, j, 0]] = 20.0 + 8.0 * j as f32;
        kp[[0, j, 1]] = 20.0 + 6.0 * j as f32;
        kp[[0, j, 2]] = 1.0;
    }
    let mut scores = Array2::<f32>::from_elem((1, 17), 5.0);
    // Nose below the logit threshold: no dot, and no nose–eye line.
    scores[[0, 0]] = 0.0;
    let dets = ImageDetections {
        boxes: vec![[10.0, 10.0, 190.0, 140.0]],
        scores: vec![0.95],
        labels: vec![1],
        keypoints: Some(kp),
        keypoint_scores: Some(scores),
        ..Default::default()
    };
    let out = draw_detections(&grey(), &dets, 0.5, None);
    let c = class_colour(1);
    assert_eq!(*out.get_pixel(20 + 8 * 5, 20 + 6 * 5), c, "left shoulder dot");
    // Midway along the 5–6 shoulder line, away from both dots.
    assert_eq!(*out.get_pixel(20 + 8 * 5 + 4, 20 + 6 * 5 + 3), c, "skeleton line");
    assert_eq!(*out.get_pixel(20, 20), GREY, "nose below the keypoint threshold");
}

#[test]
fn no_detections_leave_the_image_unchanged() {
    let mut img = grey();
    img.put_pixel(3, 4, Rgb([1, 2, 3]));
    assert_eq!(draw_detections(&img, &ImageDetections::default(), 0.0, None), img);
    // All below the threshold is the same as none.
    assert_eq!(draw_detections(&img, &detections(), 0.99, None), img);
}
