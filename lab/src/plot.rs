//! The run figure: loss, sharpness and Jacobian norm against step, and the
//! spectrum extras when a run measured them (trace, spectral density,
//! per-layer λ_max, the Ansatz factors, fold sharpness), as a PNG (font,
//! colours and axes: [`crate::chart`]).

use std::path::Path;

use anyhow::{bail, Result};
use curvlab::record::MetricsRow;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::chart::{
    font, write_png, Axis, BLUE, DARK, GREEN, GRID_BOLD, GRID_LIGHT, ORANGE, PURPLE, SKY,
    VERMILLION,
};

/// Figure size in pixels (three panels; each extra panel adds [`PANEL_H`]).
const WIDTH: u32 = 900;
const HEIGHT: u32 = 1000;
/// Height of one panel: the three base panels share HEIGHT − TITLE_H.
const PANEL_H: u32 = (HEIGHT - TITLE_H) / 3;
/// Densities drawn: the first, the middle and the last measured.
const DENSITY_CURVES: usize = 3;
/// Layer blocks drawn in the per-layer panel (those of largest last λ_max).
const LAYER_LINES: usize = 6;
/// The density's log axis stops this far below its peak.
const DENSITY_FLOOR: f64 = 1e-7;
/// Height of the title band.
const TITLE_H: u32 = 44;

/// Panel layout (pixels): margins around each chart and the label areas.
const MARGIN_TOP: u32 = 8;
const MARGIN_BOTTOM: u32 = 4;
const MARGIN_LEFT: u32 = 8;
const MARGIN_RIGHT: u32 = 24;
const X_LABEL_AREA: u32 = 44;
const Y_LABEL_AREA: u32 = 80;

const TICK_FONT: f64 = 14.0;
const DESC_FONT: f64 = 18.0;
const LEGEND_FONT: f64 = 15.0;
const NOTE_FONT: f64 = 16.0;
const CAPTION_FONT: f64 = 16.0;
/// Legend: width of the line sample, and padding inside the box.
const LEGEND_SAMPLE: u32 = 32;
const LEGEND_MARGIN: u32 = 6;

/// "‖J‖₂", with hair spaces: the rasteriser drops side bearings, which
/// would otherwise run the bars into the J.
const JAC_DESC: &str = "‖\u{200A}J\u{200A}‖₂";

/// One curve of a panel.
struct Series {
    label: String,
    color: RGBColor,
    dashed: bool,
    markers: bool,
    /// A reference level (2/η): drawn as a step function across the whole
    /// x-range, and not counted as data when deciding whether a panel is empty.
    reference: bool,
    /// Listed in the legend.
    in_legend: bool,
    /// (x, value), finite values only, sorted by x.
    points: Vec<(f64, f64)>,
    /// ± error of each point (same length as `points`), drawn as bars.
    errors: Option<Vec<f64>>,
}

impl Series {
    fn new(label: impl Into<String>, color: RGBColor, points: Vec<(f64, f64)>) -> Series {
        Series {
            label: label.into(),
            color,
            dashed: false,
            markers: true,
            reference: false,
            in_legend: true,
            points,
            errors: None,
        }
    }

    /// Points with error bars: (x, value, ±error), finite values only.
    fn with_errors(
        label: impl Into<String>,
        color: RGBColor,
        points: Vec<(f64, f64, f64)>,
    ) -> Series {
        let errors = points.iter().map(|p| p.2).collect();
        let mut s = Series::new(label, color, points.iter().map(|p| (p.0, p.1)).collect());
        s.errors = Some(errors);
        s
    }

    fn unlisted(mut self) -> Series {
        self.in_legend = false;
        self
    }

    fn dashed(mut self) -> Series {
        self.dashed = true;
        self
    }

    fn reference(mut self) -> Series {
        self.reference = true;
        self.dashed = true;
        self.markers = false;
        self
    }
}

/// One of the stacked charts.
struct Panel {
    y_desc: &'static str,
    series: Vec<Series>,
    log: bool,
    /// Shown in the panel when none of its (non-reference) series has a value.
    empty_note: &'static str,
    /// A caption above the chart (the extras' panels).
    caption: Option<String>,
    /// The x-axis: steps (shared by the panels), or its own range and name
    /// (the density's eigenvalue axis).
    x: PanelX,
}

/// The x-axis of a panel.
enum PanelX {
    Step,
    Own {
        desc: &'static str,
        range: (f64, f64),
    },
}

/// The finite values of one field, as (step, value), sorted by step.
fn collect(rows: &[MetricsRow], field: impl Fn(&MetricsRow) -> Option<f64>) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| {
            field(r)
                .filter(|v| v.is_finite())
                .map(|v| (r.step as f64, v))
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

fn all_values(series: &[Series]) -> impl Iterator<Item = f64> + '_ {
    series.iter().flat_map(|s| s.points.iter().map(|p| p.1))
}

fn panels(rows: &[MetricsRow]) -> Vec<Panel> {
    let loss = vec![
        Series::new("train loss", BLUE, collect(rows, |r| r.train_loss_kl)),
        Series::new("test loss", VERMILLION, collect(rows, |r| r.test_loss_kl)),
    ];
    let mut sharp = vec![
        Series::new("λₘₐₓ (Hessian)", BLUE, collect(rows, |r| r.sharpness)),
        Series::new(
            "λₘₐₓ (Gauss–Newton)",
            GREEN,
            collect(rows, |r| r.gn_sharpness),
        ),
        Series::new(
            "2/η",
            DARK,
            collect(rows, |r| Some(r.two_over_lr).filter(|v| *v > 0.0)),
        )
        .reference(),
    ];
    // Fold sharpness (mean ± sd over the folds) and eq. 3's residual along u.
    let folds = collect_err(rows, |r| r.sharpness_fold_mean, |r| r.sharpness_fold_sd);
    if !folds.is_empty() {
        sharp.push(Series::with_errors("λₘₐₓ of folds, mean ± sd", PURPLE, folds).dashed());
    }
    let residual = collect(rows, |r| r.residual_curvature);
    if !residual.is_empty() {
        sharp.push(Series::new("uᵀ(H − G)u along u", ORANGE, residual).dashed());
    }
    let jac = vec![
        Series::new(
            "softmax Jacobian, max",
            BLUE,
            collect(rows, |r| r.jac_softmax_max),
        ),
        Series::new(
            "softmax Jacobian, mean",
            SKY,
            collect(rows, |r| r.jac_softmax_mean),
        ),
        Series::new(
            "bound B (Thm 5.1)",
            VERMILLION,
            collect(rows, |r| r.bound_b),
        )
        .dashed(),
        Series::new(
            "logit Jacobian, max",
            ORANGE,
            collect(rows, |r| r.jac_logit_max),
        ),
    ];
    // Loss: log axis whenever it can be. Jacobian norms: log axis when the
    // softmax and logit norms (or the bound) differ by more than a decade or so.
    let positive = |s: &[Series]| all_values(s).next().is_some() && all_values(s).all(|v| v > 0.0);
    let ratio = |s: &[Series]| {
        let (lo, hi) = all_values(s).fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        hi / lo
    };
    let loss_log = positive(&loss);
    let jac_log = positive(&jac) && ratio(&jac) >= 20.0;
    let mut out = vec![
        Panel {
            y_desc: "loss (KL)",
            series: loss,
            log: loss_log,
            empty_note: "no loss values",
            caption: None,
            x: PanelX::Step,
        },
        Panel {
            y_desc: "sharpness",
            series: sharp,
            log: false,
            empty_note: "no sharpness measurements",
            caption: None,
            x: PanelX::Step,
        },
        Panel {
            y_desc: JAC_DESC,
            series: jac,
            log: jac_log,
            empty_note: "no Jacobian measurements",
            caption: None,
            x: PanelX::Step,
        },
    ];
    out.extend(extra_panels(rows));
    out
}

/// (step, value, ±error) where both are finite, sorted by step.
fn collect_err(
    rows: &[MetricsRow],
    value: impl Fn(&MetricsRow) -> Option<f64>,
    error: impl Fn(&MetricsRow) -> Option<f64>,
) -> Vec<(f64, f64, f64)> {
    let mut pts: Vec<(f64, f64, f64)> = rows
        .iter()
        .filter_map(|r| {
            let (v, e) = (value(r)?, error(r)?);
            (v.is_finite() && e.is_finite()).then_some((r.step as f64, v, e))
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

/// The panels of the spectrum extras the rows carry (none when none does):
/// the trace ± its standard error; the Ansatz factors; per-layer λ_max; the
/// spectral density at the first, middle and last measurement.
fn extra_panels(rows: &[MetricsRow]) -> Vec<Panel> {
    let mut out = Vec::new();
    let trace = collect_err(rows, |r| r.trace, |r| r.trace_se);
    if !trace.is_empty() {
        out.push(Panel {
            y_desc: "tr ∇²ℓ",
            series: vec![Series::with_errors("trace (Hutch++) ± se", BLUE, trace)],
            log: false,
            empty_note: "",
            caption: Some("Hessian trace (Hutch++), ± its standard error".into()),
            x: PanelX::Step,
        });
    }
    let factors = vec![
        Series::new("uᵀGu / uᵀHu", BLUE, collect(rows, |r| r.gn_share)),
        Series::new(
            "cost curvature, max",
            VERMILLION,
            collect(rows, |r| r.cost_curvature_max),
        ),
        Series::new(
            "cost curvature, mean",
            VERMILLION,
            collect(rows, |r| r.cost_curvature_mean),
        )
        .dashed(),
    ];
    if factors.iter().any(|s| !s.points.is_empty()) {
        out.push(Panel {
            y_desc: "factor",
            series: factors,
            log: false,
            empty_note: "",
            caption: Some(
                "Ansatz factors: Gauss–Newton share along u, λₘₐₓ(∇²_z c) per example".into(),
            ),
            x: PanelX::Step,
        });
    }
    if let Some(p) = layer_panel(rows) {
        out.push(p);
    }
    if let Some(p) = density_panel(rows) {
        out.push(p);
    }
    out
}

/// λ_max of each layer's Hessian block (solid) and Gauss–Newton block
/// (dashed, same colour) against step: the [`LAYER_LINES`] blocks of largest
/// last value.
fn layer_panel(rows: &[MetricsRow]) -> Option<Panel> {
    let last = |get: fn(&MetricsRow) -> Option<&curvlab::record::ByName>| {
        rows.iter().rev().find_map(get).map(|b| b.0.clone())
    };
    let h_last = last(|r| r.layer_sharpness.as_ref());
    let g_last = last(|r| r.gn_layer_sharpness.as_ref());
    let mut names: Vec<(String, f64)> = h_last.clone().or(g_last.clone())?;
    let total = names.len();
    names.sort_by(|a, b| b.1.total_cmp(&a.1));
    names.truncate(LAYER_LINES);
    // Back in θ order.
    let order = h_last.or(g_last).unwrap_or_default();
    names.sort_by_key(|(n, _)| order.iter().position(|(m, _)| m == n));
    let mut series = Vec::new();
    for (i, (name, _)) in names.iter().enumerate() {
        let color = crate::chart::PALETTE[i % crate::chart::PALETTE.len()];
        let n = name.clone();
        series.push(Series::new(
            name.clone(),
            color,
            collect(rows, |r| r.layer_sharpness.as_ref().and_then(|b| b.get(&n))),
        ));
        let n = name.clone();
        let gn = collect(rows, |r| {
            r.gn_layer_sharpness.as_ref().and_then(|b| b.get(&n))
        });
        let mut g = Series::new(format!("{name} (GN)"), color, gn).dashed();
        if series.last().is_some_and(|s| !s.points.is_empty()) {
            g = g.unlisted();
        }
        series.push(g);
    }
    let shown = if total > names.len() {
        format!(", the {} of {total} largest", names.len())
    } else {
        String::new()
    };
    Some(Panel {
        y_desc: "λₘₐₓ of block",
        series,
        log: false,
        empty_note: "",
        caption: Some(format!(
            "per-layer λₘₐₓ: Hessian block H_ll (solid), Gauss–Newton block G_ll (dashed){shown}"
        )),
        x: PanelX::Step,
    })
}

/// The spectral density at the first, middle and last measurement that has
/// one, on a log axis floored at [`DENSITY_FLOOR`] of the peak.
fn density_panel(rows: &[MetricsRow]) -> Option<Panel> {
    let with: Vec<&MetricsRow> = rows
        .iter()
        .filter(|r| {
            matches!((&r.density_grid, &r.density), (Some(g), Some(d)) if g.len() == d.len() && g.len() >= 2)
        })
        .collect();
    let picks = pick_spread(with.len(), DENSITY_CURVES);
    if picks.is_empty() {
        return None;
    }
    let peak = picks
        .iter()
        .flat_map(|&i| with[i].density.iter().flatten().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    if peak <= 0.0 {
        return None;
    }
    let floor = peak * DENSITY_FLOOR;
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let colors = [SKY, BLUE, DARK];
    let mut series = Vec::new();
    for (k, &i) in picks.iter().enumerate() {
        let r = with[i];
        let (g, d) = (r.density_grid.as_ref()?, r.density.as_ref()?);
        let pts: Vec<(f64, f64)> = g
            .iter()
            .zip(d)
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(&x, &y)| (x, y.max(floor)))
            .collect();
        for p in &pts {
            lo = lo.min(p.0);
            hi = hi.max(p.0);
        }
        let mut s = Series::new(
            format!("step {}", r.step),
            colors[(k + colors.len() - picks.len()) % colors.len()],
            pts,
        );
        s.markers = false;
        series.push(s);
    }
    if lo >= hi {
        return None;
    }
    let sigma = with[*picks.last()?].density_sigma.unwrap_or(f64::NAN);
    Some(Panel {
        y_desc: "density ρ(t)",
        series,
        log: true,
        empty_note: "",
        caption: Some(format!(
            "Hessian spectral density (SLQ, σ = {}), log scale from 1e-7 of the peak",
            curvlab::axis::format_value(sigma)
        )),
        x: PanelX::Own {
            desc: "eigenvalue t",
            range: (lo, hi),
        },
    })
}

/// Up to `k` indices of `0..n`, spread evenly, first and last included.
fn pick_spread(n: usize, k: usize) -> Vec<usize> {
    if n == 0 || k == 0 {
        return vec![];
    }
    if n <= k {
        return (0..n).collect();
    }
    let mut v: Vec<usize> = (0..k)
        .map(|j| ((j * (n - 1)) as f64 / (k - 1).max(1) as f64).round() as usize)
        .collect();
    v.dedup();
    v
}

/// Writes the run figure: three stacked panels against step.
///
/// Panels: (1) train and test loss in KL form (log axis when all values are
/// positive); (2) sharpness λ_max of the Hessian, of the Gauss–Newton matrix
/// when measured, and the 2/η reference; (3) softmax-Jacobian norms (max and
/// mean), the Theorem 5.1 bound B and the max logit-Jacobian norm. Missing
/// (`None`) and non-finite values are skipped; a divergence is marked by a
/// vertical line. Writes a PNG of 900×1000 pixels; `path` must end in `.png`.
/// Empty `rows` give a figure that says "no measurements". The figure is
/// drawn and encoded in memory, then replaced atomically
/// ([`crate::chart::write_png`]): on a full disk the old figure stays and the
/// error is one line naming the file.
pub fn plot_run(rows: &[MetricsRow], title: &str, path: &Path) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if ext.as_deref() != Some("png") {
        bail!(
            "cannot write figure {}: only .png is supported",
            path.display()
        );
    }
    let panels = if rows.is_empty() {
        vec![]
    } else {
        panels(rows)
    };
    write_png(path, (WIDTH, height(panels.len())), |root| {
        draw_run(rows, &panels, title, root)
    })
}

/// The figure's height for `n` panels: [`HEIGHT`] for the three base panels.
fn height(n: usize) -> u32 {
    if n <= 3 {
        HEIGHT
    } else {
        TITLE_H + n as u32 * PANEL_H
    }
}

fn draw_run(
    rows: &[MetricsRow],
    panels: &[Panel],
    title: &str,
    root: &DrawingArea<BitMapBackend, Shift>,
) -> Result<()> {
    root.fill(&WHITE)?;
    let (title_area, body) = root.split_vertically(TITLE_H);
    draw_title(&title_area, title)?;

    if rows.is_empty() {
        let (w, h) = body.dim_in_pixel();
        let style = TextStyle::from(font(20.0))
            .color(&DARK)
            .pos(Pos::new(HPos::Center, VPos::Center));
        body.draw(&Text::new(
            "no measurements",
            (w as i32 / 2, h as i32 / 2),
            style,
        ))?;
    } else {
        let (first, last) = rows.iter().fold((u64::MAX, 0u64), |(lo, hi), r| {
            (lo.min(r.step), hi.max(r.step))
        });
        let (first, last) = (first as f64, last as f64);
        let pad = if first == last {
            1.0
        } else {
            0.02 * (last - first)
        };
        let (x0, x1) = (first - pad, last + pad);
        let diverged_at = rows.iter().find(|r| r.diverged).map(|r| r.step as f64);
        for (panel, area) in panels.iter().zip(body.split_evenly((panels.len(), 1))) {
            match panel.x {
                PanelX::Step => draw_panel(&area, panel, (x0, x1), diverged_at)?,
                PanelX::Own {
                    range: (lo, hi), ..
                } => {
                    let pad = 0.02 * (hi - lo);
                    draw_panel(&area, panel, (lo - pad, hi + pad), None)?
                }
            }
        }
    }
    Ok(())
}

/// The title, centred, shrunk (then cut) to fit the width.
fn draw_title(area: &DrawingArea<BitMapBackend, Shift>, title: &str) -> Result<()> {
    if title.trim().is_empty() {
        return Ok(());
    }
    let (w, h) = area.dim_in_pixel();
    let max_w = w.saturating_sub(40);
    let mut text = title.to_string();
    let mut size = 22.0;
    while size > 14.0 && area.estimate_text_size(&text, &font(size).into())?.0 > max_w {
        size -= 1.0;
    }
    while text.chars().count() > 4 && area.estimate_text_size(&text, &font(size).into())?.0 > max_w
    {
        let keep = text.chars().count() - 2;
        text = text.chars().take(keep).collect::<String>() + "…";
    }
    let style = TextStyle::from(font(size))
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(text, (w as i32 / 2, h as i32 / 2 + 4), style))?;
    Ok(())
}

/// [min, max] padded by 6 % each side; a flat range is widened.
fn padded_range(min: f64, max: f64, log: bool) -> (f64, f64) {
    let span = max - min;
    let scale = min.abs().max(max.abs());
    // (All values are finite here.)
    if span <= 1e-9 * scale {
        let d = if log {
            0.3
        } else if scale > 0.0 {
            0.1 * scale
        } else {
            1.0
        };
        return (min - d, max + d);
    }
    let (lo, hi) = (min - 0.06 * span, max + 0.06 * span);
    // A positive linear quantity keeps a non-negative axis.
    if !log && min >= 0.0 && lo < 0.0 {
        (0.0, hi)
    } else {
        (lo, hi)
    }
}

/// The polyline drawn for a series (reference levels as a step function
/// across the x-range).
fn path_of(s: &Series, pts: &[(f64, f64)], xr: (f64, f64)) -> Vec<(f64, f64)> {
    if !s.reference || pts.is_empty() {
        return pts.to_vec();
    }
    let mut path = vec![(xr.0, pts[0].1)];
    for (i, &(x, y)) in pts.iter().enumerate() {
        path.push((x, y));
        let next_x = pts.get(i + 1).map_or(xr.1, |p| p.0);
        path.push((next_x, y));
    }
    path
}

/// Points along the polylines in normalised plot coordinates ([0,1]², y up),
/// dense enough that a legend box over a line is seen to cover it.
fn samples(paths: &[Vec<(f64, f64)>], xr: (f64, f64), yr: (f64, f64)) -> Vec<(f64, f64)> {
    let norm = |(x, y): (f64, f64)| ((x - xr.0) / (xr.1 - xr.0), (y - yr.0) / (yr.1 - yr.0));
    let mut out = vec![];
    for path in paths {
        for (i, &p) in path.iter().enumerate() {
            let a = norm(p);
            out.push(a);
            if let Some(&q) = path.get(i + 1) {
                let b = norm(q);
                let n = ((b.0 - a.0).hypot(b.1 - a.1) / 0.005).ceil().min(400.0) as usize;
                for k in 1..n {
                    let t = k as f64 / n as f64;
                    out.push((a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1)));
                }
            }
        }
    }
    out
}

const LEGEND_POSITIONS: [SeriesLabelPosition; 8] = [
    SeriesLabelPosition::UpperRight,
    SeriesLabelPosition::UpperLeft,
    SeriesLabelPosition::LowerRight,
    SeriesLabelPosition::LowerLeft,
    SeriesLabelPosition::UpperMiddle,
    SeriesLabelPosition::LowerMiddle,
    SeriesLabelPosition::MiddleRight,
    SeriesLabelPosition::MiddleLeft,
];

/// A rectangle in plot-area pixels: (left, top, width, height), y down.
type PxBox = (f64, f64, f64, f64);

/// How many sample points (normalised, y up) fall in a box, with a little slack.
fn hits(pts: &[(f64, f64)], b: PxBox, plot: (f64, f64)) -> usize {
    let slack = 4.0;
    let (pw, ph) = plot;
    let (u0, u1) = ((b.0 - slack) / pw, (b.0 + b.2 + slack) / pw);
    let (v0, v1) = (1.0 - (b.1 + b.3 + slack) / ph, 1.0 - (b.1 - slack) / ph);
    pts.iter()
        .filter(|p| p.0 >= u0 && p.0 <= u1 && p.1 >= v0 && p.1 <= v1)
        .count()
}

fn overlaps(a: PxBox, b: PxBox) -> bool {
    a.0 < b.0 + b.2 && b.0 < a.0 + a.2 && a.1 < b.1 + b.3 && b.1 < a.1 + a.3
}

/// Where plotters puts a legend of size `legend` in a plot area of size `plot`.
fn legend_box(pos: &SeriesLabelPosition, plot: (f64, f64), legend: (f64, f64)) -> PxBox {
    use SeriesLabelPosition::*;
    let ((pw, ph), (lw, lh)) = (plot, legend);
    let x = match pos {
        UpperLeft | MiddleLeft | LowerLeft => 5.0,
        UpperMiddle | MiddleMiddle | LowerMiddle => (pw - lw) / 2.0,
        UpperRight | MiddleRight | LowerRight => pw - lw - 5.0,
        Coordinate(x, _) => *x as f64,
    };
    let y = match pos {
        UpperLeft | UpperMiddle | UpperRight => 5.0,
        MiddleLeft | MiddleMiddle | MiddleRight => (ph - lh) / 2.0,
        LowerLeft | LowerMiddle | LowerRight => ph - lh - 5.0,
        Coordinate(_, y) => *y as f64,
    };
    (x, y, lw, lh)
}

/// The legend position covering the fewest sample points, and that count.
fn best_legend_position(
    pts: &[(f64, f64)],
    plot: (f64, f64),
    legend: (f64, f64),
) -> (SeriesLabelPosition, usize) {
    let mut best = (SeriesLabelPosition::UpperRight, usize::MAX);
    for pos in LEGEND_POSITIONS {
        let n = hits(pts, legend_box(&pos, plot, legend), plot);
        if n < best.1 {
            best = (pos, n);
        }
    }
    best
}

/// Of the candidate boxes, the first that hides the fewest sample points and
/// stays clear of the legend.
fn least_covering(
    cands: &[PxBox],
    pts: &[(f64, f64)],
    plot: (f64, f64),
    legend: Option<PxBox>,
) -> PxBox {
    let score = |b: PxBox| {
        hits(pts, b, plot) + legend.map_or(0, |l| if overlaps(b, l) { 1_000_000 } else { 0 })
    };
    let mut best = cands[0];
    for &c in &cands[1..] {
        if score(c) < score(best) {
            best = c;
        }
    }
    best
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    panel: &Panel,
    xr: (f64, f64),
    diverged_at: Option<f64>,
) -> Result<()> {
    let (aw, ah) = area.dim_in_pixel();
    let plot_w = (aw.saturating_sub(MARGIN_LEFT + MARGIN_RIGHT + Y_LABEL_AREA)).max(1) as f64;
    let plot_h = (ah.saturating_sub(MARGIN_TOP + MARGIN_BOTTOM + X_LABEL_AREA)).max(1) as f64;

    // Values in plotted units (log10 on a log axis).
    let tf = |v: f64| if panel.log { v.log10() } else { v };
    let plotted: Vec<Vec<(f64, f64)>> = panel
        .series
        .iter()
        .map(|s| s.points.iter().map(|&(x, y)| (x, tf(y))).collect())
        .collect();
    // The ends of the error bars count towards the y-range.
    let bar_ends: Vec<f64> = panel
        .series
        .iter()
        .filter_map(|s| Some(s.points.iter().zip(s.errors.as_ref()?)))
        .flatten()
        .flat_map(|(p, e)| [p.1 - e, p.1 + e])
        .filter(|v| !panel.log || *v > 0.0)
        .map(tf)
        .collect();
    let ys = plotted
        .iter()
        .flatten()
        .map(|p| p.1)
        .chain(bar_ends.iter().copied());
    let (ymin, ymax) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    let has_values = ymin <= ymax;
    let has_data = panel
        .series
        .iter()
        .any(|s| !s.reference && !s.points.is_empty());
    let (ylo, mut yhi) = if has_values {
        padded_range(ymin, ymax, panel.log)
    } else {
        (0.0, 1.0)
    };

    // Legend size, then the position that hides the fewest data; when every
    // position hides some, raise the top of the axis to make room above the data.
    let legend_font = font(LEGEND_FONT);
    let shown: Vec<usize> = (0..panel.series.len())
        .filter(|&i| !plotted[i].is_empty() && panel.series[i].in_legend)
        .collect();
    let mut text_w = 0u32;
    for &i in &shown {
        text_w = text_w.max(
            area.estimate_text_size(&panel.series[i].label, &legend_font.clone().into())?
                .0,
        );
    }
    let legend_px = (
        (text_w + LEGEND_SAMPLE + 2 * LEGEND_MARGIN) as f64,
        (shown.len() as f64 * LEGEND_FONT * 1.25).ceil() + 2.0 * LEGEND_MARGIN as f64,
    );
    let paths: Vec<Vec<(f64, f64)>> = panel
        .series
        .iter()
        .zip(&plotted)
        .map(|(s, pts)| path_of(s, pts, xr))
        .collect();
    // Sample points of the curves, and of the curves and the divergence line.
    let obstacles = |yr: (f64, f64)| {
        let curves = samples(&paths, xr, yr);
        let mut all = curves.clone();
        if let Some(x) = diverged_at {
            all.extend(samples(&[vec![(x, yr.0), (x, yr.1)]], xr, yr));
        }
        (curves, all)
    };
    let plot = (plot_w, plot_h);
    let mut legend_pos = SeriesLabelPosition::UpperRight;
    if !shown.is_empty() {
        let (pos, hidden) = best_legend_position(&obstacles((ylo, yhi)).1, plot, legend_px);
        legend_pos = pos;
        if hidden > 0 && has_values {
            let frac = ((legend_px.1 + 14.0) / plot_h).min(0.6);
            let top = ylo + (ymax - ylo) / (1.0 - frac);
            if top > yhi {
                yhi = top;
                legend_pos = best_legend_position(&obstacles((ylo, yhi)).1, plot, legend_px).0;
            }
        }
    }
    let legend_rect = (!shown.is_empty()).then(|| legend_box(&legend_pos, plot, legend_px));
    let (curve_pts, all_pts) = obstacles((ylo, yhi));

    let (x_desc, xaxis) = match panel.x {
        PanelX::Step => ("step", Axis::linear(xr.0, xr.1, 8, 1.0)),
        PanelX::Own { desc, .. } => (desc, Axis::linear(xr.0, xr.1, 8, 0.0)),
    };
    let yaxis = if panel.log {
        Axis::log(ylo, yhi)
    } else {
        Axis::linear(ylo, yhi, 5, 0.0)
    };

    let mut builder = ChartBuilder::on(area);
    if let Some(c) = &panel.caption {
        builder.caption(c, font(CAPTION_FONT));
    }
    let mut chart = builder
        .margin_top(MARGIN_TOP)
        .margin_bottom(MARGIN_BOTTOM)
        .margin_left(MARGIN_LEFT)
        .margin_right(MARGIN_RIGHT)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(xaxis.clone(), yaxis.clone())?;
    let xfmt = |v: &f64| xaxis.label(*v);
    let yfmt = |v: &f64| yaxis.label(*v);
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(panel.y_desc)
        .x_label_formatter(&xfmt)
        .y_label_formatter(&yfmt)
        .label_style(font(TICK_FONT))
        .axis_desc_style(font(DESC_FONT))
        .bold_line_style(GRID_BOLD)
        .light_line_style(GRID_LIGHT)
        .draw()?;
    // The plot area in pixels, for text placed clear of the data.
    let pixels = chart.plotting_area().strip_coord_spec();

    if let Some(x) = diverged_at {
        let style = PURPLE.stroke_width(2);
        chart.draw_series(DashedLineSeries::new(
            vec![(x, yaxis.lo), (x, yaxis.hi)],
            6,
            4,
            style,
        ))?;
        // "diverged" beside the line, on the side with more room, at the top
        // or the bottom, whichever hides less.
        let text_style = TextStyle::from(font(LEGEND_FONT)).color(&PURPLE);
        let (tw, th) = pixels.estimate_text_size("diverged", &text_style)?;
        let (tw, th) = (tw as f64, th as f64);
        let xl = (x - xr.0) / (xr.1 - xr.0) * plot_w;
        let left = if xl > plot_w / 2.0 {
            xl - 8.0 - tw
        } else {
            xl + 8.0
        };
        let cands = [(left, 6.0, tw, th), (left, plot_h - 8.0 - th, tw, th)];
        let b = least_covering(&cands, &curve_pts, plot, legend_rect);
        draw_text_box(&pixels, "diverged", b, text_style)?;
    }

    for (s, pts) in panel.series.iter().zip(&plotted) {
        if pts.is_empty() {
            continue;
        }
        let color = s.color;
        // Thin lines for dense (noisy) series: thick ones smear.
        let line = color.stroke_width(if !s.reference && pts.len() > 300 {
            1
        } else {
            2
        });
        if let Some(errors) = &s.errors {
            let y = (yaxis.lo, yaxis.hi, panel.log);
            draw_error_bars(&mut chart, &s.points, errors, y, color)?;
        }
        let path = path_of(s, pts, xr);
        let anno = if s.dashed {
            chart.draw_series(DashedLineSeries::new(path, 7, 5, line))?
        } else {
            chart.draw_series(LineSeries::new(path, line))?
        };
        let (dashed, markers) = (s.dashed, s.markers && pts.len() <= 100);
        if s.in_legend {
            // The legend's line sample: three pieces, contiguous for a solid
            // line and gapped for a dashed one, with a marker or not.
            anno.label(s.label.as_str()).legend(move |(x, y)| {
                let piece = |k: i32| {
                    let (a, b) = if dashed {
                        (9 * k, 9 * k + 6)
                    } else {
                        (8 * k, 8 * k + 8)
                    };
                    PathElement::new(vec![(a, 0), (b, 0)], line)
                };
                let dot = if markers {
                    color.filled()
                } else {
                    TRANSPARENT.filled()
                };
                EmptyElement::at((x, y))
                    + piece(0)
                    + piece(1)
                    + piece(2)
                    + Circle::new((12, 0), 3, dot)
            });
        }
        if markers {
            let r = if pts.len() <= 60 { 3 } else { 2 };
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, r, color.filled())))?;
        }
    }

    if !has_data {
        // The note in the middle, or above or below a reference line there.
        let text_style = TextStyle::from(font(NOTE_FONT)).color(&DARK);
        let (tw, th) = pixels.estimate_text_size(panel.empty_note, &text_style)?;
        let (tw, th) = (tw as f64, th as f64);
        let cands: Vec<PxBox> = [0.5, 0.3, 0.7]
            .iter()
            .map(|f| ((plot_w - tw) / 2.0, f * plot_h - th / 2.0, tw, th))
            .collect();
        let b = least_covering(&cands, &all_pts, plot, legend_rect);
        draw_text_box(&pixels, panel.empty_note, b, text_style)?;
    }
    if !shown.is_empty() {
        chart
            .configure_series_labels()
            .position(legend_pos)
            .margin(LEGEND_MARGIN)
            .legend_area_size(LEGEND_SAMPLE)
            .label_font(font(LEGEND_FONT))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(0xAA, 0xAA, 0xAA))
            .draw()?;
    }
    Ok(())
}

/// A vertical bar ±e at each point, with caps, clipped to the y-axis (a
/// log axis: a bar reaching 0 or below ends at the bottom).
fn draw_error_bars(
    chart: &mut ChartContext<BitMapBackend, Cartesian2d<Axis, Axis>>,
    points: &[(f64, f64)],
    errors: &[f64],
    (ylo, yhi, log): (f64, f64, bool),
    color: RGBColor,
) -> Result<()> {
    let tf = |v: f64| if log { v.log10() } else { v };
    let style = color.stroke_width(1);
    for (&(x, y), &e) in points.iter().zip(errors) {
        if !(e > 0.0 && e.is_finite()) {
            continue;
        }
        let top = tf(y + e).clamp(ylo, yhi);
        let bottom = if log && y - e <= 0.0 {
            ylo
        } else {
            tf(y - e).clamp(ylo, yhi)
        };
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x, bottom), (x, top)],
            style,
        )))?;
        let cap =
            |v: f64| EmptyElement::at((x, v)) + PathElement::new(vec![(-4, 0), (4, 0)], style);
        chart.draw_series([cap(bottom), cap(top)])?;
    }
    Ok(())
}

/// Text with its top-left corner at the box's, on a white patch.
fn draw_text_box(
    area: &DrawingArea<BitMapBackend, Shift>,
    text: &str,
    b: PxBox,
    style: TextStyle,
) -> Result<()> {
    let (x, y) = (b.0.round() as i32, b.1.round() as i32);
    let (w, h) = (b.2.round() as i32, b.3.round() as i32);
    area.draw(&Rectangle::new(
        [(x - 3, y - 2), (x + w + 3, y + h + 2)],
        WHITE.mix(0.85).filled(),
    ))?;
    area.draw(&Text::new(
        text,
        (x, y),
        style.pos(Pos::new(HPos::Left, VPos::Top)),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use curvlab::record::ByName;

    /// A realistic run: loss falls, sharpness rises to 2/η and hovers there
    /// (edge of stability), Jacobian norms grow. Sharpness is measured every
    /// other row, the Gauss–Newton one every fourth.
    fn realistic_rows() -> Vec<MetricsRow> {
        let lr = 0.05;
        (0..50)
            .map(|i| {
                let step = 20 * i as u64;
                let t = step as f64;
                let wiggle = (t / 37.0).sin();
                let sharp = (4.0 + 36.0 * t / 420.0).min(40.0 + 2.5 * wiggle);
                let mut row = MetricsRow {
                    step,
                    epoch: t / 100.0,
                    lr,
                    two_over_lr: 2.0 / lr,
                    train_loss_kl: Some(
                        2.3 * (-t / 220.0).exp() + 0.01 + 0.02 * wiggle.abs() * (-t / 500.0).exp(),
                    ),
                    test_loss_kl: Some(2.0 * (-t / 260.0).exp() + 0.35),
                    sharpness: (i % 2 == 0).then_some(sharp),
                    gn_sharpness: (i % 4 == 0).then_some(0.93 * sharp),
                    jac_softmax_max: Some(0.6 + 1.6 * (1.0 - (-t / 250.0).exp()) + 0.1 * wiggle),
                    jac_softmax_mean: Some(0.15 + 0.35 * (1.0 - (-t / 300.0).exp())),
                    jac_logit_max: Some(4.0 + 38.0 * (1.0 - (-t / 300.0).exp())),
                    bound_b: Some(0.35 + 0.9 * (1.0 - (-t / 200.0).exp())),
                    n: 1000,
                    bn_mode: "none".into(),
                    wall_s: t * 0.3,
                    ..Default::default()
                };
                row.train_loss = row.train_loss_kl;
                row.test_loss = row.test_loss_kl;
                row
            })
            .collect()
    }

    /// Plot into a fresh temporary directory, then check the file is a PNG
    /// of the right size and of some substance (a blank 900×1000 PNG is
    /// about 5 KB; text alone makes it larger, curves larger still).
    fn plot_and_check(rows: &[MetricsRow], name: &str, min_bytes: u64) {
        plot_and_check_size(rows, name, min_bytes, HEIGHT)
    }

    fn plot_and_check_size(rows: &[MetricsRow], name: &str, min_bytes: u64, height: u32) {
        let dir =
            std::env::temp_dir().join(format!("curvlab-plot-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        plot_run(rows, &format!("curvlab test: {name}"), &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}: not a PNG");
        // The IHDR chunk holds the size.
        let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((w, h), (WIDTH, height), "{name}: size");
        assert!(
            bytes.len() as u64 >= min_bytes,
            "{name}: only {} bytes",
            bytes.len()
        );
        // Only the figure: no temporary is left beside it.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from(format!("{name}.png"))]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn plot_realistic_run() {
        plot_and_check(&realistic_rows(), "realistic", 80_000);
    }

    #[test]
    fn plot_empty_rows() {
        plot_and_check(&[], "empty", 10_000);
    }

    #[test]
    fn plot_single_row() {
        plot_and_check(&realistic_rows()[3..4], "single", 30_000);
    }

    #[test]
    fn plot_with_gaps_and_divergence() {
        let mut rows = realistic_rows();
        rows.truncate(30);
        for (i, r) in rows.iter_mut().enumerate() {
            if i % 3 == 1 {
                r.test_loss_kl = None;
                r.jac_softmax_max = Some(f64::NAN);
                r.bound_b = None;
            }
            if i % 5 == 2 {
                r.train_loss_kl = Some(f64::INFINITY);
            }
        }
        let last = rows.last_mut().unwrap();
        last.diverged = true;
        last.train_loss_kl = Some(f64::NAN);
        last.test_loss_kl = None;
        last.sharpness = Some(f64::NAN);
        plot_and_check(&rows, "gaps", 80_000);
    }

    #[test]
    fn plot_flat_and_missing_panels() {
        // Every value equal, no sharpness at all, a zero loss (linear axis).
        let rows: Vec<MetricsRow> = (0..5)
            .map(|i| MetricsRow {
                step: i,
                two_over_lr: 2.0,
                train_loss_kl: Some(0.0),
                test_loss_kl: Some(0.0),
                jac_softmax_max: Some(1.0),
                jac_softmax_mean: Some(1.0),
                ..Default::default()
            })
            .collect();
        plot_and_check(&rows, "flat", 30_000);
        // Nothing measured at all, 2/η infinite (lr = 0).
        let rows: Vec<MetricsRow> = (0..3)
            .map(|i| MetricsRow {
                step: 10 * i,
                two_over_lr: f64::INFINITY,
                ..Default::default()
            })
            .collect();
        plot_and_check(&rows, "nothing", 30_000);
    }

    /// [`realistic_rows`] with every spectrum extra at every other row: 11
    /// blocks, a density whose bulk sits at 0 with outliers that grow.
    fn rows_with_extras() -> Vec<MetricsRow> {
        let names: Vec<String> = (0..11).map(|l| format!("features.{l}")).collect();
        realistic_rows()
            .into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                if i % 2 == 1 {
                    return r;
                }
                let t = r.step as f64;
                let top = r.sharpness.unwrap_or(5.0);
                r.trace = Some(50.0 + 0.2 * t);
                r.trace_se = Some(2.0 + 0.01 * t);
                let grid: Vec<f64> = (0..256)
                    .map(|k| -2.0 + (top + 4.0) * k as f64 / 255.0)
                    .collect();
                let gauss = |x: f64, m: f64, s: f64| {
                    (-(x - m).powi(2) / (2.0 * s * s)).exp()
                        / (s * (2.0 * std::f64::consts::PI).sqrt())
                };
                let s = 0.01 * (top + 4.0);
                r.density = Some(
                    grid.iter()
                        .map(|&x| 0.999 * gauss(x, 0.0, s) + 0.001 * gauss(x, top, s))
                        .collect(),
                );
                r.density_grid = Some(grid);
                r.density_sigma = Some(s);
                let by = |scale: f64| {
                    ByName(
                        names
                            .iter()
                            .enumerate()
                            .map(|(l, n)| (n.clone(), scale * top / (1.0 + l as f64)))
                            .collect(),
                    )
                };
                r.layer_sharpness = Some(by(0.8));
                r.gn_layer_sharpness = Some(by(0.7));
                r.gn_share = Some(0.9 - 0.1 * (-t / 300.0).exp());
                r.residual_curvature = Some(0.1 * top);
                r.cost_curvature_max = Some(0.5 * (-t / 400.0).exp());
                r.cost_curvature_mean = Some(0.2 * (-t / 300.0).exp());
                r.sharpness_fold_mean = Some(1.03 * top);
                r.sharpness_fold_sd = Some(0.05 * top);
                r
            })
            .collect()
    }

    #[test]
    fn extras_add_their_panels() {
        let rows = rows_with_extras();
        let p = panels(&rows);
        let captions: Vec<&str> = p.iter().filter_map(|p| p.caption.as_deref()).collect();
        assert_eq!(p.len(), 7, "{captions:?}");
        assert!(captions[0].starts_with("Hessian trace"), "{captions:?}");
        assert!(captions[1].starts_with("Ansatz factors"), "{captions:?}");
        // 11 blocks: the 6 largest, each Hessian and Gauss–Newton, in θ order.
        assert!(captions[2].ends_with("the 6 of 11 largest"), "{captions:?}");
        let layer_labels: Vec<&str> = p[5].series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(layer_labels[0], "features.0");
        assert_eq!(layer_labels[1], "features.0 (GN)");
        assert_eq!(layer_labels.len(), 12);
        assert!(
            !p[5].series[1].in_legend,
            "GN lines share the block's entry"
        );
        // The density: first, middle and last measured, floored on a log axis.
        let d = &p[6];
        assert!(d.log && matches!(d.x, PanelX::Own { .. }));
        let labels: Vec<&str> = d.series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["step 0", "step 480", "step 960"]);
        let peak = d
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max);
        assert!(d
            .series
            .iter()
            .all(|s| s.points.iter().all(|p| p.1 >= peak * DENSITY_FLOOR * 0.999)));
        // Folds (with their sd as bars) and the residual join the sharpness panel.
        let sharp: Vec<&str> = p[1].series.iter().map(|s| s.label.as_str()).collect();
        assert!(sharp.contains(&"λₘₐₓ of folds, mean ± sd"), "{sharp:?}");
        let folds = p[1].series.iter().find(|s| s.errors.is_some()).unwrap();
        assert_eq!(folds.errors.as_ref().unwrap().len(), folds.points.len());
        // No extras, no extra panels.
        assert_eq!(panels(&realistic_rows()).len(), 3);
        assert_eq!(pick_spread(10, 3), [0, 5, 9]);
        assert_eq!(pick_spread(2, 3), [0, 1]);
        assert!(pick_spread(0, 3).is_empty());
    }

    #[test]
    fn plot_with_spectrum_extras() {
        let rows = rows_with_extras();
        plot_and_check_size(&rows, "extras", 150_000, TITLE_H + 7 * PANEL_H);
        // The extras of one row only (a run measuring them once).
        let mut one = realistic_rows();
        let last = one.len() - 1;
        one[last] = rows_with_extras()[last - 1].clone();
        one[last].step = 980;
        plot_and_check_size(&one, "extras-once", 80_000, TITLE_H + 7 * PANEL_H);
    }

    #[test]
    fn plot_rejects_other_formats() {
        assert!(plot_run(&[], "x", Path::new("/tmp/curvlab-plot.svg")).is_err());
    }
}
