//! Line charts of the bench's results, as SVG files.
//!
//! Drawn with `plotters` and its SVG backend only: the labels become SVG
//! `<text>` elements that the viewer draws with its own fonts, so no font
//! file, fontconfig or raster backend is built (plotters sizes the labels
//! with its built-in estimate, which is good enough for placing them).
//!
//! One chart shape serves every scenario: series of `(x, y)` points, each
//! on the left or the right y axis (a soak draws RSS on one and p99 on the
//! other), and vertical markers for events along x (a server restart).
//! Points that are not finite are left out, and a chart with no point at
//! all, or one point, still renders (with a default or widened range).

use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

/// Pixels of a chart.
const SIZE: (u32, u32) = (960, 540);

/// Which y axis a series is read against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Left,
    Right,
}

/// One line of a chart, with its legend name.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub axis: Axis,
}

/// What to draw.
#[derive(Debug, Clone, Copy)]
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_left_label: &'a str,
    /// The right axis is drawn only with a label.
    pub y_right_label: Option<&'a str>,
    pub series: &'a [Series],
    /// Vertical lines at an x, with a label: events such as restarts.
    pub markers: &'a [(f64, String)],
}

/// Why a chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("drawing the chart: {0}")]
    Draw(String),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

fn draw_error<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError::Draw(format!("{e:?}"))
}

/// Renders `chart` and writes it to `path`.
pub fn line_chart(path: &Path, chart: &Chart<'_>) -> Result<(), PlotError> {
    let svg = render(chart)?;
    std::fs::write(path, svg).map_err(|source| PlotError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// `path` with its extension replaced by `svg` (`ramp.json` → `ramp.svg`;
/// a path without an extension gets one).
pub fn svg_beside(path: &Path) -> std::path::PathBuf {
    path.with_extension("svg")
}

/// The SVG text of `chart`.
pub fn render(chart: &Chart<'_>) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        draw(&root, chart)?;
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

fn finite(points: &[(f64, f64)]) -> impl Iterator<Item = (f64, f64)> + '_ {
    points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
}

/// The range spanned by `values` with a little room on either side, so no
/// point sits on the frame; never empty, and `0..1` without any value. It
/// follows the data rather than starting at 0: a soak's RSS that grows by
/// a few percent must show as growing.
fn span(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return 0.0..1.0;
    }
    if hi - lo < f64::EPSILON * hi.abs().max(1.0) {
        let pad = (hi.abs() * 0.1).max(1.0);
        return lo - pad..hi + pad;
    }
    let pad = (hi - lo) * 0.05;
    lo - pad..hi + pad
}

fn axis_span(chart: &Chart<'_>, axis: Axis) -> Range<f64> {
    span(
        chart
            .series
            .iter()
            .filter(|s| s.axis == axis)
            .flat_map(|s| finite(&s.points).map(|p| p.1)),
    )
}

/// An axis label: whole numbers from 100 up, fewer decimals the larger.
fn tick(v: &f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

fn draw(root: &DrawingArea<SVGBackend<'_>, Shift>, chart: &Chart<'_>) -> Result<(), PlotError> {
    let x = span(
        chart
            .series
            .iter()
            .flat_map(|s| finite(&s.points).map(|p| p.0))
            .chain(chart.markers.iter().map(|m| m.0).filter(|x| x.is_finite())),
    );
    let left = axis_span(chart, Axis::Left);
    let right = axis_span(chart, Axis::Right);
    let mut ctx = ChartBuilder::on(root)
        .caption(chart.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .right_y_label_area_size(if chart.y_right_label.is_some() { 72 } else { 0 })
        .build_cartesian_2d(x.clone(), left.clone())
        .map_err(draw_error)?
        .set_secondary_coord(x.clone(), right);
    ctx.configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_left_label)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .draw()
        .map_err(draw_error)?;
    if let Some(label) = chart.y_right_label {
        ctx.configure_secondary_axes()
            .y_desc(label)
            .y_label_formatter(&tick)
            .draw()
            .map_err(draw_error)?;
    }
    for (i, series) in chart.series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let style = color.stroke_width(2);
        let points: Vec<(f64, f64)> = finite(&series.points).collect();
        let marks = points
            .iter()
            .map(move |&p| Circle::new(p, 3, color.filled()));
        let name = match (series.axis, chart.y_right_label) {
            (Axis::Right, Some(_)) => format!("{} (right axis)", series.name),
            _ => series.name.clone(),
        };
        let anno = match series.axis {
            Axis::Left => {
                ctx.draw_series(marks).map_err(draw_error)?;
                ctx.draw_series(LineSeries::new(points, style))
                    .map_err(draw_error)?
            }
            Axis::Right => {
                ctx.draw_secondary_series(marks).map_err(draw_error)?;
                ctx.draw_secondary_series(LineSeries::new(points, style))
                    .map_err(draw_error)?
            }
        };
        anno.label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    // Markers are labelled near the bottom, away from the legend.
    let grey = RGBColor(90, 90, 90);
    let label_at = left.start + (left.end - left.start) * 0.06;
    for (at, label) in chart.markers.iter().filter(|m| m.0.is_finite()) {
        ctx.draw_series(std::iter::once(PathElement::new(
            vec![(*at, left.start), (*at, left.end)],
            grey.stroke_width(2),
        )))
        .map_err(draw_error)?;
        ctx.draw_series(std::iter::once(Text::new(
            format!(" {label}"),
            (*at, label_at),
            ("sans-serif", 13).into_font().color(&grey),
        )))
        .map_err(draw_error)?;
    }
    if !chart.series.is_empty() {
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(draw_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start tags of `svg`'s elements, checking that the text is one
    /// well-formed element tree: every tag closed in order, quoted
    /// attributes, nothing after the root.
    fn element_names(svg: &str) -> Vec<String> {
        let body = svg.trim();
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let mut rest = body;
        let mut closed_root = false;
        while let Some(open) = rest.find('<') {
            assert!(!closed_root, "content after the root element: {rest}");
            let text = &rest[..open];
            assert!(!text.contains('>'), "stray '>' in text: {text}");
            let close = rest[open..].find('>').expect("unterminated tag") + open;
            let tag = &rest[open + 1..close];
            rest = &rest[close + 1..];
            if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(name.trim()),
                    "mismatched </{name}>"
                );
                closed_root = stack.is_empty();
                continue;
            }
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let name = tag.split_whitespace().next().expect("tag name").to_string();
            assert_eq!(
                tag.matches('"').count() % 2,
                0,
                "unbalanced quotes in <{tag}>"
            );
            names.push(name.clone());
            if self_closing {
                closed_root = stack.is_empty();
            } else {
                stack.push(name);
            }
        }
        assert!(stack.is_empty(), "unclosed elements: {stack:?}");
        assert!(rest.trim().is_empty(), "trailing text: {rest}");
        names
    }

    fn series(name: &str, points: Vec<(f64, f64)>, axis: Axis) -> Series {
        Series {
            name: name.into(),
            points,
            axis,
        }
    }

    #[test]
    fn a_two_axis_chart_is_well_formed_svg_with_every_series_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("soak.svg");
        let series = [
            series(
                "RSS MiB",
                (0..50)
                    .map(|i| (f64::from(i), 100.0 + f64::from(i)))
                    .collect(),
                Axis::Left,
            ),
            series(
                "p99 <ms> & more",
                (0..50).map(|i| (f64::from(i), 2.0)).collect(),
                Axis::Right,
            ),
        ];
        line_chart(
            &path,
            &Chart {
                title: "soak",
                x_label: "seconds",
                y_left_label: "MiB",
                y_right_label: Some("ms"),
                series: &series,
                markers: &[(25.0, "restart".into())],
            },
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let names = element_names(&svg);
        assert_eq!(names.first().map(String::as_str), Some("svg"));
        assert!(names.iter().any(|n| n == "polyline"), "{names:?}");
        assert!(svg.contains("RSS MiB"));
        // Escaped as XML text.
        assert!(
            svg.contains("p99 &lt;ms&gt; &amp; more (right axis)"),
            "{svg}"
        );
        assert!(svg.contains("restart"));
    }

    #[test]
    fn empty_and_single_point_series_render() {
        for points in [
            vec![],
            vec![(3.0, 7.0)],
            vec![(f64::NAN, 1.0), (1.0, f64::INFINITY)],
        ] {
            let series = [series("only", points.clone(), Axis::Left)];
            let svg = render(&Chart {
                title: "t",
                x_label: "x",
                y_left_label: "y",
                y_right_label: None,
                series: &series,
                markers: &[],
            })
            .unwrap();
            element_names(&svg);
            assert!(svg.contains("only"), "{points:?}");
        }
        let svg = render(&Chart {
            title: "nothing",
            x_label: "x",
            y_left_label: "y",
            y_right_label: Some("y2"),
            series: &[],
            markers: &[],
        })
        .unwrap();
        element_names(&svg);
    }

    #[test]
    fn spans_are_never_empty_and_follow_the_data() {
        assert_eq!(span(std::iter::empty()), 0.0..1.0);
        assert_eq!(span([5.0].into_iter()), 4.0..6.0);
        assert_eq!(span([100.0, 110.0].into_iter()), 99.5..110.5);
        assert_eq!(span([-2.0, 2.0].into_iter()), -2.2..2.2);
    }

    #[test]
    fn the_svg_goes_beside_the_json() {
        assert_eq!(
            svg_beside(Path::new("a/ramp.json")),
            Path::new("a/ramp.svg")
        );
        assert_eq!(svg_beside(Path::new("soak")), Path::new("soak.svg"));
    }
}
