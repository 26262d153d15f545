//! Latency percentile plots as SVG, in HdrHistogram's style.
//!
//! The x axis is `1 / (1 - p)` on a log10 scale, so every "nine" of the
//! percentile gets the same width and the tail is as readable as the
//! median: ticks read 50%, 90%, 99%, 99.9%, 99.99%, 99.999%, and the
//! maximum is drawn one decade further right, labelled `max`. The y axis is
//! the round trip in µs on a log10 scale: a median of a few µs and a tail
//! of milliseconds both stay readable, and the ratio between two curves is
//! the same vertical distance anywhere on the plot.
//!
//! Only the SVG backend is used, and text goes into the SVG as text
//! elements: no font is loaded, so the plot renders the same on a machine
//! without fonts.

use hdrhistogram::Histogram;
use plotters::prelude::*;
use std::path::Path;

/// Failure to draw or write a plot.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// No curve had a sample.
    #[error("nothing to plot: every histogram is empty")]
    Empty,
    /// The drawing backend failed.
    #[error("drawing the plot: {0}")]
    Draw(String),
    /// Writing the file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// One curve: a histogram of round trips in ns and its legend label.
#[derive(Clone, Copy)]
pub struct Curve<'a> {
    /// Legend label.
    pub label: &'a str,
    /// Round trips, ns.
    pub hist: &'a Histogram<u64>,
}

/// The x position (`1 / (1 - p)`) of each labelled percentile, and its
/// label; the last is where the maximum is drawn.
pub const X_TICKS: [(f64, &str); 7] = [
    (2.0, "50%"),
    (10.0, "90%"),
    (100.0, "99%"),
    (1e3, "99.9%"),
    (1e4, "99.99%"),
    (1e5, "99.999%"),
    (1e6, "max"),
];

/// X position of the highest percentile drawn before the maximum.
const X_LAST_PERCENTILE: f64 = 1e5;
/// X position of the maximum.
const X_MAX: f64 = 1e6;
/// Points per decade of the x axis.
const POINTS_PER_DECADE: usize = 40;

/// Width and height of the image, px.
pub const SIZE: (u32, u32) = (1000, 640);

/// The points of one curve: (x, µs) from p50 to p99.999, then the maximum
/// at [`X_MAX`].
pub fn points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let decades = (X_LAST_PERCENTILE / 2.0).log10();
    let n = (decades * POINTS_PER_DECADE as f64).ceil() as usize;
    let mut v: Vec<(f64, f64)> = (0..=n)
        .map(|i| {
            let x = 2.0 * 10f64.powf(decades * i as f64 / n as f64);
            let q = 1.0 - 1.0 / x;
            (x, h.value_at_quantile(q) as f64 / 1e3)
        })
        .collect();
    v.push((X_MAX, h.max() as f64 / 1e3));
    v
}

/// The label of the x tick nearest `x`.
fn x_label(x: &f64) -> String {
    X_TICKS
        .iter()
        .min_by(|a, b| (a.0.ln() - x.ln()).abs().total_cmp(&(b.0.ln() - x.ln()).abs()))
        .map(|t| t.1.to_string())
        .unwrap_or_default()
}

/// Y ticks at 1, 2 and 5 times each power of ten within `lo..=hi`.
fn y_key_points(lo: f64, hi: f64) -> Vec<f64> {
    let mut v = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let y = decade * m;
            if (lo..=hi).contains(&y) {
                v.push(y);
            }
        }
        decade *= 10.0;
    }
    v
}

/// A µs value for a y tick: no more digits than it needs.
fn y_label(us: &f64) -> String {
    if *us >= 100.0 {
        format!("{us:.0}")
    } else if *us >= 1.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.2}")
    }
}

const COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
];

/// Draws the percentile plot of `curves` under `title` into an SVG
/// document. Empty histograms are left out of the drawing (still in the
/// legend); all empty is [`PlotError::Empty`].
pub fn render_svg(title: &str, curves: &[Curve<'_>]) -> Result<String, PlotError> {
    let drawn: Vec<(usize, Vec<(f64, f64)>)> = curves
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.hist.is_empty())
        .map(|(i, c)| (i, points(c.hist)))
        .collect();
    let all = || drawn.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y));
    let lo = all().fold(f64::INFINITY, f64::min);
    let hi = all().fold(0.0f64, f64::max);
    if !lo.is_finite() {
        return Err(PlotError::Empty);
    }
    let (lo, hi) = ((lo * 0.8).max(1e-3), (hi * 1.25).max(lo * 2.0));
    let draw = |e: &dyn std::fmt::Display| PlotError::Draw(e.to_string());

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw(&e))?;
        let keys: Vec<f64> = X_TICKS.iter().map(|t| t.0).collect();
        let y_keys = y_key_points(lo, hi);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(
                (X_TICKS[0].0..X_MAX * 1.2).log_scale().with_key_points(keys),
                (lo..hi).log_scale().with_key_points(y_keys),
            )
            .map_err(|e| draw(&e))?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("round trip (µs, log scale)")
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .draw()
            .map_err(|e| draw(&e))?;
        for (i, pts) in &drawn {
            let color = COLORS[i % COLORS.len()];
            let label = curves[*i].label;
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(|e| draw(&e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| draw(&e))?;
        root.present().map_err(|e| draw(&e))?;
    }
    Ok(svg)
}

/// Draws the percentile plot of `curves` under `title` into the SVG file
/// `path` (replaced if it exists).
pub fn write_svg(path: &Path, title: &str, curves: &[Curve<'_>]) -> Result<(), PlotError> {
    let svg = render_svg(title, curves)?;
    std::fs::write(path, svg).map_err(|source| PlotError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// The command line this process was started with, program name without
/// its directory: a plot's title.
pub fn command_line() -> String {
    let mut args = std::env::args();
    let program = args
        .next()
        .map(|p| {
            Path::new(&p)
                .file_name()
                .map_or(p.clone(), |f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    std::iter::once(program).chain(args).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_run_from_the_median_to_the_max() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).unwrap();
        for v in 1..=100_000u64 {
            h.record(v * 10).unwrap();
        }
        let p = points(&h);
        assert_eq!(p.first().map(|x| x.0), Some(2.0));
        let (x, y) = *p.last().unwrap();
        assert_eq!(x, X_MAX);
        assert!((y - 1000.0).abs() < 1.0, "max 1 ms = 1000 µs, got {y}");
        assert!(p.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        let median = p[0].1;
        assert!((median - 500.0).abs() < 1.0, "{median}");
        assert_eq!(x_label(&1000.0), "99.9%");
        assert_eq!(x_label(&1.1e6), "max");
        assert_eq!(
            y_key_points(3.0, 250.0),
            vec![5.0, 10.0, 20.0, 50.0, 100.0, 200.0]
        );
    }

    #[test]
    fn all_empty_is_an_error() {
        let h = Histogram::<u64>::new(3).unwrap();
        let r = render_svg("t", &[Curve { label: "a", hist: &h }]);
        assert!(matches!(r, Err(PlotError::Empty)));
    }
}
