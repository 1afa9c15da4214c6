//! The report's plotting style: line charts drawn with `plotters` to PNG and SVG, with the
//! DejaVu Sans font bundled in the repository (so figures render on machines without system
//! fonts), a colour-blind-safe palette, dashes and markers that tell series apart in print,
//! and the legend in a margin beside the plots so it never covers data.

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// DejaVu Sans (see `assets/fonts/LICENSE-DejaVu.txt`).
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The font family every text of the report uses.
const FAMILY: &str = "sans-serif";

/// Size of a one-panel figure's PNG, in pixels.
pub const SINGLE: (u32, u32) = (1000, 700);

/// Size of a two-panel figure's PNG, in pixels.
pub const DOUBLE: (u32, u32) = (1500, 650);

/// Okabe–Ito colours (colour-blind safe), yellow left out for contrast on white.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0x00, 0x9E, 0x73), // bluish green
    RGBColor(0xCC, 0x79, 0xA7), // reddish purple
    RGBColor(0xE6, 0x9F, 0x00), // orange
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0x00, 0x00, 0x00), // black
    RGBColor(0x88, 0x88, 0x88), // grey
];

/// Grey of reference lines (chance level and the like).
pub const REFERENCE: RGBColor = RGBColor(0x77, 0x77, 0x77);

/// How a line is stroked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dash {
    /// A continuous line.
    Solid,
    /// Long dashes.
    Dashed,
    /// Short dots.
    Dotted,
    /// Dashes and dots, approximated by short dashes.
    DashDot,
}

/// The marker drawn at every data point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// No marker.
    None,
    /// A filled circle.
    Circle,
    /// A filled square.
    Square,
    /// A filled triangle.
    Triangle,
    /// A filled diamond.
    Diamond,
    /// A cross.
    Cross,
}

/// Markers in the order series get them.
pub const MARKERS: [Marker; 5] = [Marker::Circle, Marker::Square, Marker::Triangle, Marker::Diamond, Marker::Cross];

/// Dashes in the order series get them.
pub const DASHES: [Dash; 4] = [Dash::Solid, Dash::Dashed, Dash::Dotted, Dash::DashDot];

/// How one series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    /// Line and marker colour.
    pub color: RGBColor,
    /// Line stroke.
    pub dash: Dash,
    /// Marker at each point.
    pub marker: Marker,
}

impl Style {
    /// The `i`-th colour of the palette with this dash and marker.
    pub fn nth(i: usize, dash: Dash, marker: Marker) -> Self {
        Self { color: PALETTE[i % PALETTE.len()], dash, marker }
    }
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Points in data coordinates, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Colour, dash and marker.
    pub style: Style,
}

/// One set of axes.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Caption above the axes (optional).
    pub title: Option<String>,
    /// Horizontal axis title, with units.
    pub x_label: String,
    /// Vertical axis title, with units.
    pub y_label: String,
    /// Horizontal range.
    pub x_range: Range<f64>,
    /// Vertical range.
    pub y_range: Range<f64>,
    /// The lines.
    pub series: Vec<Series>,
}

/// A figure: a title, panels side by side, and one legend for all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Title above the panels.
    pub title: String,
    /// The panels, left to right.
    pub panels: Vec<Panel>,
    /// PNG size in pixels (the SVG gets the same size).
    pub size: (u32, u32),
}

/// Registers the bundled font with plotters (once per process).
pub fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok { Ok(()) } else { Err(anyhow!("the bundled DejaVuSans.ttf is not a usable font")) }
}

/// Writes `figure` as `dir/stem.png` and `dir/stem.svg`; returns both paths.
pub fn save(figure: &Figure, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    register_font()?;
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    draw(BitMapBackend::new(&png, figure.size).into_drawing_area(), figure)
        .map_err(|e| anyhow!("cannot draw {}: {e}", png.display()))?;
    draw(SVGBackend::new(&svg, figure.size).into_drawing_area(), figure)
        .map_err(|e| anyhow!("cannot draw {}: {e}", svg.display()))?;
    Ok(vec![png, svg])
}

/// Font sizes, in pixels.
const TITLE_SIZE: f64 = 28.0;
const CAPTION_SIZE: f64 = 22.0;
const AXIS_SIZE: f64 = 21.0;
const TICK_SIZE: f64 = 17.0;
const LEGEND_SIZE: f64 = 17.0;
/// Legend geometry, in pixels.
const LEGEND_SAMPLE: i32 = 44;
const LEGEND_ROW: i32 = 28;
const LEGEND_PAD: i32 = 14;

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, figure: &Figure) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let body = root.titled(&figure.title, (FAMILY, TITLE_SIZE).into_font().color(&BLACK))?;
    let entries = legend_entries(figure);
    let legend_font: TextStyle = (FAMILY, LEGEND_SIZE).into();
    let mut text_width = 0;
    for (label, _) in &entries {
        text_width = text_width.max(body.estimate_text_size(label, &legend_font)?.0 as i32);
    }
    let (width, _) = body.dim_in_pixel();
    let legend_width = (text_width + LEGEND_SAMPLE + 3 * LEGEND_PAD).min(width as i32 * 2 / 5);
    let (plots, legend) = body.split_horizontally(width as i32 - legend_width);
    let areas = plots.split_evenly((1, figure.panels.len().max(1)));
    for (area, panel) in areas.iter().zip(&figure.panels) {
        draw_panel(area, panel)?;
    }
    draw_legend(&legend, &entries)?;
    root.present()
}

/// One legend entry per distinct label, in first-appearance order.
fn legend_entries(figure: &Figure) -> Vec<(String, Style)> {
    let mut entries: Vec<(String, Style)> = Vec::new();
    for series in figure.panels.iter().flat_map(|p| &p.series) {
        if !series.label.is_empty() && !entries.iter().any(|(l, _)| *l == series.label) {
            entries.push((series.label.clone(), series.style));
        }
    }
    entries
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Panel) -> DrawResult<DB> {
    let mut builder = ChartBuilder::on(area);
    builder.margin_top(16).margin_right(24).margin_left(8).margin_bottom(8);
    builder.x_label_area_size(64).y_label_area_size(88);
    if let Some(title) = &panel.title {
        builder.caption(title, (FAMILY, CAPTION_SIZE));
    }
    let mut chart = builder.build_cartesian_2d(panel.x_range.clone(), panel.y_range.clone())?;
    let x_format = tick_format(&panel.x_range);
    let y_format = tick_format(&panel.y_range);
    chart
        .configure_mesh()
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .axis_desc_style((FAMILY, AXIS_SIZE))
        .label_style((FAMILY, TICK_SIZE))
        .x_labels(MAX_TICKS)
        .y_labels(MAX_TICKS)
        .x_label_formatter(&x_format)
        .y_label_formatter(&y_format)
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .axis_style(BLACK.stroke_width(1))
        .draw()?;
    for series in &panel.series {
        draw_series(&mut chart, series)?;
    }
    Ok(())
}

type Chart<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

fn draw_series<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, series: &Series) -> DrawResult<DB> {
    let line = series.style.color.stroke_width(3);
    // A diverged run's NaN or infinite losses are left out rather than drawn off the chart.
    let points: Vec<(f64, f64)> =
        series.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    match series.style.dash {
        Dash::Solid => {
            chart.draw_series(LineSeries::new(points.clone(), line))?;
        }
        Dash::Dashed => {
            chart.draw_series(DashedLineSeries::new(points.clone(), 14, 8, line))?;
        }
        Dash::Dotted => {
            chart.draw_series(DashedLineSeries::new(points.clone(), 3, 6, line))?;
        }
        Dash::DashDot => {
            chart.draw_series(DashedLineSeries::new(points.clone(), 8, 5, line))?;
        }
    }
    let fill = series.style.color.filled();
    let pts = points.iter().copied();
    match series.style.marker {
        Marker::None => {}
        Marker::Circle => {
            chart.draw_series(pts.map(|p| Circle::new(p, 6, fill)))?;
        }
        Marker::Square => {
            chart.draw_series(pts.map(|p| EmptyElement::at(p) + Rectangle::new([(-5, -5), (5, 5)], fill)))?;
        }
        Marker::Triangle => {
            chart.draw_series(pts.map(|p| TriangleMarker::new(p, 8, fill)))?;
        }
        Marker::Diamond => {
            chart.draw_series(
                pts.map(|p| EmptyElement::at(p) + Polygon::new(vec![(0, -7), (7, 0), (0, 7), (-7, 0)], fill)),
            )?;
        }
        Marker::Cross => {
            chart.draw_series(pts.map(|p| Cross::new(p, 6, series.style.color.stroke_width(3))))?;
        }
    }
    Ok(())
}

fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[(String, Style)]) -> DrawResult<DB> {
    let font = TextStyle::from((FAMILY, LEGEND_SIZE)).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (label, style)) in entries.iter().enumerate() {
        let y = 40 + LEGEND_ROW * i as i32;
        let (x0, x1) = (LEGEND_PAD, LEGEND_PAD + LEGEND_SAMPLE);
        let line = style.color.stroke_width(3);
        let path = vec![(x0, y), (x1, y)];
        match style.dash {
            Dash::Solid => area.draw(&PathElement::new(path, line))?,
            Dash::Dashed => area.draw(&DashedPathElement::new(path, 14, 8, line))?,
            Dash::Dotted => area.draw(&DashedPathElement::new(path, 3, 6, line))?,
            Dash::DashDot => area.draw(&DashedPathElement::new(path, 8, 5, line))?,
        }
        let c = ((x0 + x1) / 2, y);
        let fill = style.color.filled();
        match style.marker {
            Marker::None => {}
            Marker::Circle => area.draw(&Circle::new(c, 6, fill))?,
            Marker::Square => area.draw(&Rectangle::new([(c.0 - 5, c.1 - 5), (c.0 + 5, c.1 + 5)], fill))?,
            Marker::Triangle => area.draw(&TriangleMarker::new(c, 8, fill))?,
            Marker::Diamond => {
                area.draw(&Polygon::new(vec![(c.0, c.1 - 7), (c.0 + 7, c.1), (c.0, c.1 + 7), (c.0 - 7, c.1)], fill))?
            }
            Marker::Cross => area.draw(&Cross::new(c, 6, style.color.stroke_width(3)))?,
        }
        area.draw(&Text::new(label.as_str(), (x1 + LEGEND_PAD, y), font.clone()))?;
    }
    Ok(())
}

/// Most tick labels per axis (plotters picks steps of 1, 2 or 5 × 10^k giving at most this).
const MAX_TICKS: usize = 8;

/// Decimals of the tick step plotters chooses for `range`: the smallest step of 1, 2 or
/// 5 × 10^k with at most [`MAX_TICKS`] ticks in the range.
fn tick_decimals(range: &Range<f64>) -> usize {
    let (lo, hi) = (range.start.min(range.end), range.start.max(range.end));
    let span = hi - lo;
    if !(span > 0.0 && span.is_finite()) {
        return 0;
    }
    let top = span.log10().floor() as i32 + 1;
    let mut best = 10f64.powi(top);
    'search: for power in (top - 4..=top).rev() {
        for m in [5.0, 2.0, 1.0] {
            let step = m * 10f64.powi(power);
            let ticks = (hi / step).floor() - (lo / step).ceil() + 1.0;
            if ticks > MAX_TICKS as f64 {
                break 'search;
            }
            best = step;
        }
    }
    (-(best.log10() + 1e-9).floor()).max(0.0) as usize
}

/// A tick formatter with the decimals of the tick step (`0.0 0.5 1.0`, `0 20 40`), and more
/// where a value needs them, so that no label is ever rounded.
fn tick_format(range: &Range<f64>) -> impl Fn(&f64) -> String + use<> {
    let decimals = tick_decimals(range);
    move |v: &f64| {
        for d in decimals..decimals + 8 {
            let text = format!("{v:.d$}");
            if text.parse::<f64>().is_ok_and(|t| (t - v).abs() <= 1e-9 * (1.0 + v.abs())) {
                return text
                    .strip_prefix('-')
                    .filter(|t| t.chars().all(|c| c == '0' || c == '.'))
                    .map_or(text.clone(), String::from);
            }
        }
        format!("{v}")
    }
}

/// `[0, max·(1 + pad)]`, or `[0, 1]` when there is nothing positive.
pub fn from_zero(values: impl IntoIterator<Item = f64>, pad: f64) -> Range<f64> {
    let max = values.into_iter().filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    if max > 0.0 { 0.0..max * (1.0 + pad) } else { 0.0..1.0 }
}

/// The corruption-probability axis: `[0, 1]` with a little room for the markers.
pub const P_RANGE: Range<f64> = -0.03..1.03;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_have_enough_decimals() {
        let f = tick_format(&(0.0..2.78));
        let labels: Vec<String> = [0.0, 0.5, 1.0, 2.5, -0.0].iter().map(&f).collect();
        assert_eq!(labels, ["0.0", "0.5", "1.0", "2.5", "0.0"]);
        assert_eq!(f(&0.25), "0.25", "a value the step does not cover is not rounded");
        let f = tick_format(&P_RANGE);
        assert_eq!((f(&0.2), f(&1.0)), ("0.2".into(), "1.0".into()));
        let f = tick_format(&(-3.0..103.0));
        assert_eq!((f(&40.0), f(&0.0)), ("40".into(), "0".into()));
        let f = tick_format(&(0.0..0.048));
        assert_eq!(f(&0.005), "0.005");
        assert_eq!(tick_decimals(&(0.0..48.0)), 0);
        assert_eq!(tick_decimals(&(0.0..0.0)), 0);
        assert_eq!(from_zero([1.0, 4.0, f64::NAN], 0.25), 0.0..5.0);
        assert_eq!(from_zero([], 0.1), 0.0..1.0);
    }

    #[test]
    fn draws_png_and_svg_with_the_bundled_font() {
        let dir = tempfile::tempdir().unwrap();
        let series = |label: &str, i| Series {
            label: label.into(),
            points: vec![(0.0, 1.0), (0.5, 2.0), (1.0, 1.5)],
            style: Style::nth(i, DASHES[i % 4], MARKERS[i % 5]),
        };
        let figure = Figure {
            title: "A test figure".into(),
            panels: vec![Panel {
                title: None,
                x_label: "label corruption p".into(),
                y_label: "relative time".into(),
                x_range: P_RANGE,
                y_range: 0.0..3.0,
                series: (0..5).map(|i| series(&format!("series {i}"), i)).collect(),
            }],
            size: SINGLE,
        };
        let paths = save(&figure, dir.path(), "test").unwrap();
        let svg = std::fs::read_to_string(&paths[1]).unwrap();
        assert!(svg.contains("label corruption p") && svg.contains("series 4"));
        let png = std::fs::read(&paths[0]).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        // Width and height of the IHDR chunk.
        assert_eq!(u32::from_be_bytes([png[16], png[17], png[18], png[19]]), SINGLE.0);
        assert_eq!(u32::from_be_bytes([png[20], png[21], png[22], png[23]]), SINGLE.1);
    }
}
