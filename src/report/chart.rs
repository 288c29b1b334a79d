//! The few chart shapes the reports need, drawn with plotters to PNG (bitmap backend, encoded by `image`) and
//! SVG from one drawing routine: lines with error bars and baseline bands, and grouped bars.
//!
//! Text uses DejaVu Sans, embedded (assets/fonts, Debian's fonts-dejavu-core), so a plot looks the same on
//! every machine and nothing is looked up or downloaded.
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
pub const WIDTH: u32 = 900;
pub const HEIGHT: u32 = 540;

fn register_font() -> Result<()> {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *ONCE.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    ok.then_some(()).ok_or_else(|| Error::Runtime("the embedded font (assets/fonts/DejaVuSans.ttf) does not load".into()))
}

/// A distinct colour per series (Paul Tol's bright scheme: readable on white and by most colour-blind eyes).
pub fn colour(i: usize) -> RGBColor {
    const C: [RGBColor; 7] = [
        RGBColor(68, 119, 170),
        RGBColor(238, 102, 119),
        RGBColor(34, 136, 51),
        RGBColor(204, 187, 68),
        RGBColor(102, 204, 238),
        RGBColor(170, 51, 119),
        RGBColor(187, 187, 187),
    ];
    C[i % C.len()]
}

/// One line: points (x, mean, std); std 0 draws no bar.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// A horizontal reference: mean with a ± std band (the dense baseline).
#[derive(Clone, Debug)]
pub struct Band {
    pub label: String,
    pub mean: f64,
    pub std: f64,
}

#[derive(Clone, Debug)]
pub struct LinePlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
    /// Draw a marker at every point (off for dense curves such as training loss).
    pub markers: bool,
    /// Fixed axis ranges where the quantity has natural bounds (a fraction of training, an IoU); else fitted.
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
}

/// Bars grouped per category: `values[s][c]` is series s at category c (None: no bar).
#[derive(Clone, Debug)]
pub struct BarPlot {
    pub title: String,
    pub y_label: String,
    pub categories: Vec<String>,
    pub series: Vec<(String, Vec<Option<f64>>)>,
    /// Label every category on the x axis (off for many narrow bars, e.g. one per layer).
    pub category_labels: bool,
    /// Colour each bar by `colour_of[c]` (an index into the legend `series` names) instead of by series.
    pub colour_of: Option<Vec<usize>>,
}

pub enum Plot {
    Line(LinePlot),
    Bar(BarPlot),
}

type DrawResult<E> = std::result::Result<(), DrawingAreaErrorKind<E>>;

fn span(lo: f64, hi: f64) -> (f64, f64) {
    // Values come from files: the range and its padding must stay finite too (−1e308..1e308 is finite, its
    // width is not, and plotters then never finishes laying out the axis).
    let (a, b) = (lo.max(-MAX_AXIS), hi.min(MAX_AXIS));
    if !(a.is_finite() && b.is_finite() && a <= b) {
        return (0.0, 1.0);
    }
    let (lo, hi) = (a, b);
    // A flat series (every AP 0 after a few steps, say) still gets a readable range around its value.
    // A range that is a sliver of its values (tickets at 31.3815% and 31.3845% sparsity) is widened too, or the
    // axis would spell out digits nobody compares.
    let pad = if hi - lo > 0.02 * lo.abs().max(hi.abs()) { 0.06 * (hi - lo) } else { 0.05 * lo.abs().max(hi.abs()).max(1.0) };
    (lo - pad, hi + pad)
}

/// The widest value an axis shows; beyond it points are drawn off the chart.
const MAX_AXIS: f64 = 1e12;

/// A title cut to the image's width (about 12 px a character at 22 px), with an ellipsis.
fn fit_title(t: &str) -> String {
    let max = (WIDTH / 12) as usize;
    if t.chars().count() <= max {
        t.to_string()
    } else {
        t.chars().take(max - 1).collect::<String>() + "…"
    }
}

impl LinePlot {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB::ErrorType> {
        root.fill(&WHITE)?;
        let xs = self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
        let (x_lo, x_hi) = xs.clone().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
        let ys = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().flat_map(|p| [p.1 - p.2, p.1 + p.2]))
            .chain(self.bands.iter().flat_map(|b| [b.mean - b.std, b.mean + b.std]));
        let (y_lo, y_hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
        let (x_lo, x_hi) = self.x_range.unwrap_or_else(|| span(x_lo, x_hi));
        let (y_lo, y_hi) = self.y_range.unwrap_or_else(|| span(y_lo, y_hi));
        let mut chart = ChartBuilder::on(root)
            .caption(fit_title(&self.title), (FAMILY, 22))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(65)
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)?;
        // Steps and counts read as whole numbers ("500", not plotters' "500.0"); fractions keep their decimals.
        let whole = |x: &f64| format!("{x:.0}");
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(&self.x_label).y_desc(&self.y_label).label_style((FAMILY, 14)).axis_desc_style((FAMILY, 16));
        if x_hi - x_lo >= 10.0 {
            mesh.x_label_formatter(&whole);
        }
        mesh.draw()?;
        let n = self.series.len();
        for (i, b) in self.bands.iter().enumerate() {
            let c = colour(n + i);
            if b.std > 0.0 {
                chart
                    .draw_series(std::iter::once(Rectangle::new([(x_lo, b.mean - b.std), (x_hi, b.mean + b.std)], c.mix(0.2).filled())))?;
            }
            chart.draw_series(LineSeries::new([(x_lo, b.mean), (x_hi, b.mean)], c.stroke_width(2)))?;
        }
        for (i, s) in self.series.iter().enumerate() {
            let c = colour(i);
            chart.draw_series(LineSeries::new(s.points.iter().map(|p| (p.0, p.1)), c.stroke_width(2)))?;
            if self.markers {
                chart.draw_series(s.points.iter().map(|p| Circle::new((p.0, p.1), 4, c.filled())))?;
            }
            chart.draw_series(
                s.points.iter().filter(|p| p.2 > 0.0).map(|p| ErrorBar::new_vertical(p.0, p.1 - p.2, p.1, p.1 + p.2, c.stroke_width(2), 8)),
            )?;
        }
        Ok(())
    }
}

impl BarPlot {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB::ErrorType> {
        root.fill(&WHITE)?;
        let vals = self.series.iter().flat_map(|s| s.1.iter().flatten().copied());
        let (lo, hi) = vals.fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
        let (lo, hi) = if hi > lo { span(lo, hi) } else { (-1.0, 1.0) };
        let k = self.categories.len().max(1);
        let cats = self.categories.clone();
        let show = self.category_labels;
        let mut chart = ChartBuilder::on(root)
            .caption(fit_title(&self.title), (FAMILY, 22))
            .margin(12)
            .x_label_area_size(if show { 60 } else { 40 })
            .y_label_area_size(65)
            .build_cartesian_2d(-0.5f64..k as f64 - 0.5, lo..hi)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(if show { k } else { 10 })
            .x_label_formatter(&move |x| {
                let i = x.round();
                if (x - i).abs() > 1e-6 || i < 0.0 {
                    return String::new();
                }
                if show {
                    cats.get(i as usize).cloned().unwrap_or_default()
                } else {
                    format!("{}", i as usize)
                }
            })
            .y_desc(&self.y_label)
            .x_desc(if show { "" } else { "layer (network order)" })
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 16))
            .draw()?;
        chart.draw_series(std::iter::once(PathElement::new([(-0.5, 0.0), (k as f64 - 0.5, 0.0)], BLACK)))?;
        let per_cat = if self.colour_of.is_some() { 1 } else { self.series.len().max(1) };
        let width = 0.8 / per_cat as f64;
        for (s, (_, values)) in self.series.iter().enumerate() {
            let bars = values.iter().enumerate().filter_map(|(c, v)| v.map(|v| (c, v)));
            let colour_of = self.colour_of.clone();
            let slot = if colour_of.is_some() { 0 } else { s };
            chart.draw_series(bars.map(move |(c, v)| {
                let col = colour(colour_of.as_ref().map_or(s, |m| m[c]));
                let x0 = c as f64 - 0.4 + slot as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.92, v)], col.filled())
            }))?;
        }
        Ok(())
    }
}

/// One legend line: a line (series, bands) or a box (bars) in its colour, and its text.
struct Entry {
    label: String,
    colour: RGBColor,
    boxed: bool,
}

const LEGEND_LINE: u32 = 22;

impl Plot {
    /// The legend goes under the chart, one entry a line, so it never hides data however long the labels.
    fn entries(&self) -> Vec<Entry> {
        match self {
            Plot::Line(p) => {
                let n = p.series.len();
                let series = p.series.iter().enumerate().map(|(i, s)| Entry { label: s.label.clone(), colour: colour(i), boxed: false });
                let bands = p.bands.iter().enumerate().map(|(i, b)| Entry { label: b.label.clone(), colour: colour(n + i), boxed: false });
                series.chain(bands).collect()
            }
            Plot::Bar(p) => {
                p.series.iter().enumerate().map(|(i, (label, _))| Entry { label: label.clone(), colour: colour(i), boxed: true }).collect()
            }
        }
    }

    fn legend_height(&self) -> u32 {
        match self.entries().len() {
            0 => 0,
            n => 12 + LEGEND_LINE * n as u32,
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB::ErrorType> {
        root.fill(&WHITE)?;
        let (chart, legend) = root.split_vertically(HEIGHT);
        match self {
            Plot::Line(p) => p.draw(&chart)?,
            Plot::Bar(p) => p.draw(&chart)?,
        }
        // About 8 px a character at 14 px: longer labels are cut with an ellipsis rather than run off the image.
        let max_chars = ((WIDTH - 120) / 8) as usize;
        for (i, e) in self.entries().iter().enumerate() {
            let y = 6 + (LEGEND_LINE * i as u32) as i32 + LEGEND_LINE as i32 / 2;
            if e.boxed {
                legend.draw(&Rectangle::new([(70, y - 6), (84, y + 6)], e.colour.filled()))?;
            } else {
                legend.draw(&PathElement::new([(64, y), (90, y)], e.colour.stroke_width(3)))?;
            }
            let text = if e.label.chars().count() > max_chars {
                e.label.chars().take(max_chars - 1).collect::<String>() + "…"
            } else {
                e.label.clone()
            };
            legend.draw(&Text::new(text, (100, y - 8), (FAMILY, 14)))?;
        }
        root.present()
    }

    /// The plot as PNG bytes and as an SVG document.
    pub fn render(&self, name: &str) -> Result<(Vec<u8>, String)> {
        register_font()?;
        let fail = |e: String| Error::Runtime(format!("plot {name}: {e}"));
        let height = HEIGHT + self.legend_height();
        let mut rgb = vec![0u8; (WIDTH * height * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, height)).into_drawing_area();
            self.draw(&root).map_err(|e| fail(e.to_string()))?;
        }
        let img = image::RgbImage::from_raw(WIDTH, height, rgb).expect("buffer of WIDTH × height × 3");
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).map_err(|e| fail(e.to_string()))?;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
            self.draw(&root).map_err(|e| fail(e.to_string()))?;
        }
        Ok((png, svg))
    }
}
