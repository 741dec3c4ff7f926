//! The explainer's plots as SVG text (crisp at any pixel density, exportable
//! as it is): loss, sharpness with 2/η and the edge-of-stability marker,
//! Jacobian norm with the Theorem 5.1 data bound, accuracy. Several runs are
//! overlaid, one colour each from the Okabe–Ito palette (distinguishable
//! with the common colour-vision deficiencies); line style tells the
//! quantities of one run apart (solid, dashed, dotted), so the plots also
//! read in greyscale.
//!
//! Pure functions of the rows: the page redraws after each batch of rows.

use std::fmt::Write as _;

use curvlab::loss::LossKind;
use curvlab::record::MetricsRow;

/// Okabe & Ito's colour-blind-safe palette (blue, vermillion, bluish green,
/// reddish purple, orange, sky blue, yellow, black).
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000",
];

/// One run as the plots need it.
#[derive(Clone, Copy, Debug)]
pub struct Series<'a> {
    /// Legend label ("α = 0.1"); empty for a lone run.
    pub label: &'a str,
    /// Stroke colour.
    pub color: &'a str,
    /// Measurement rows so far, in step order.
    pub rows: &'a [MetricsRow],
    /// Which loss (decides which Jacobian the bound applies to).
    pub loss: LossKind,
    /// Learning rate η (the 2/η line).
    pub lr: f64,
    /// Full-batch GD (the edge of stability is a GD notion; the line is still drawn for SGD).
    pub full_batch: bool,
}

/// The four panels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Panel {
    Loss,
    Sharpness,
    Jacobian,
    Accuracy,
}

impl Panel {
    pub const ALL: [Panel; 4] = [
        Panel::Loss,
        Panel::Sharpness,
        Panel::Jacobian,
        Panel::Accuracy,
    ];

    /// Element-id suffix and file-name stem.
    pub fn id(self) -> &'static str {
        match self {
            Panel::Loss => "loss",
            Panel::Sharpness => "sharpness",
            Panel::Jacobian => "jacobian",
            Panel::Accuracy => "accuracy",
        }
    }

    fn title(self, series: &[Series]) -> String {
        let ce = series.iter().any(|s| s.loss == LossKind::CrossEntropy);
        match self {
            Panel::Loss if ce => "Loss, KL form (label entropy subtracted; log scale)".into(),
            Panel::Loss => "Loss (log scale)".into(),
            Panel::Sharpness => "Sharpness λ_max(∇²ℓ) and 2/η".into(),
            Panel::Jacobian => {
                let which = if series.iter().all(|s| s.loss == LossKind::CrossEntropy) {
                    "softmax"
                } else if series.iter().all(|s| s.loss == LossKind::Square) {
                    "logit"
                } else {
                    "softmax (CE) / logit (square)"
                };
                format!("Input–output Jacobian ‖J‖₂, {which}, and bound B")
            }
            Panel::Accuracy => "Accuracy".into(),
        }
    }

    /// The lines of this panel: (name, style, value of a row).
    fn lines(self) -> &'static [Line] {
        match self {
            Panel::Loss => &[
                ("train", Dash::Solid, |r, _| r.train_loss_kl),
                ("test", Dash::Dashed, |r, _| r.test_loss_kl),
            ],
            Panel::Sharpness => &[
                ("Hessian", Dash::Solid, |r, _| r.sharpness),
                ("Gauss–Newton", Dash::Dotted, |r, _| r.gn_sharpness),
            ],
            Panel::Jacobian => &[
                ("max_i ‖J_i‖", Dash::Solid, |r, l| jac(r, l).0),
                ("mean_i ‖J_i‖", Dash::Dashed, |r, l| jac(r, l).1),
                ("bound B (Thm 5.1)", Dash::Dotted, |r, _| r.bound_b),
            ],
            Panel::Accuracy => &[
                ("train", Dash::Solid, |r, _| r.train_acc),
                ("test", Dash::Dashed, |r, _| r.test_acc),
            ],
        }
    }

    fn log_y(self) -> bool {
        self == Panel::Loss
    }
}

/// (max, mean) of the Jacobian the loss is applied to: softmax for
/// cross-entropy, logits for the square loss (SPEC, Theorem 5.1).
pub fn jac(r: &MetricsRow, loss: LossKind) -> (Option<f64>, Option<f64>) {
    match loss {
        LossKind::CrossEntropy => (r.jac_softmax_max, r.jac_softmax_mean),
        LossKind::Square => (r.jac_logit_max, r.jac_logit_mean),
    }
}

/// The first row at which a run's sharpness reached 2/η: (step, sharpness).
pub fn edge_of_stability(s: &Series) -> Option<(u64, f64)> {
    let two = 2.0 / s.lr;
    s.rows
        .iter()
        .find_map(|r| r.sharpness.filter(|&v| v >= two).map(|v| (r.step, v)))
}

/// One line of a panel: its name in the key, its style, and its value in a row.
type Line = (&'static str, Dash, fn(&MetricsRow, LossKind) -> Option<f64>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dash {
    Solid,
    Dashed,
    Dotted,
}

impl Dash {
    fn attr(self) -> &'static str {
        match self {
            Dash::Solid => "",
            Dash::Dashed => r#" stroke-dasharray="7 4""#,
            Dash::Dotted => r#" stroke-dasharray="2 3""#,
        }
    }
}

/// Size of one panel's view box.
pub const WIDTH: f64 = 480.0;
pub const HEIGHT: f64 = 300.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 62.0;

/// Tick positions ("nice" numbers: 1, 2, 5 × 10^k) covering [lo, hi], about `n` of them.
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A short label for a tick or a value: trailing zeros trimmed, exponent form
/// for very large or small magnitudes.
pub fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.1e}");
        return s.replace(".0e", "e");
    }
    let decimals = if a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        (2 - a.log10().floor() as i32).max(0) as usize
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    fn t(&self, v: f64) -> f64 {
        if self.log {
            (v.log10() - self.lo) / (self.hi - self.lo)
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }
}

/// The y range of a panel: its data and reference lines, padded.
fn y_axis(panel: Panel, series: &[Series]) -> Option<Axis> {
    let mut vals: Vec<f64> = Vec::new();
    for s in series {
        for r in s.rows {
            for (_, _, f) in panel.lines() {
                if let Some(v) = f(r, s.loss) {
                    if v.is_finite() && (!panel.log_y() || v > 0.0) {
                        vals.push(v);
                    }
                }
            }
        }
        if panel == Panel::Sharpness && !s.rows.is_empty() {
            vals.push(2.0 / s.lr);
        }
    }
    if vals.is_empty() {
        return None;
    }
    let lo = vals.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    Some(match panel {
        Panel::Loss => {
            let (a, b) = (lo.log10().floor(), hi.log10().ceil());
            Axis {
                lo: a,
                hi: if b > a { b } else { a + 1.0 },
                log: true,
            }
        }
        Panel::Accuracy => Axis {
            lo: 0.0,
            hi: 1.0,
            log: false,
        },
        _ => {
            let lo = lo.min(0.0);
            let pad = (hi - lo).max(1e-9) * 0.06;
            Axis {
                lo,
                hi: hi + pad,
                log: false,
            }
        }
    })
}

/// One panel as a standalone `<svg>` element (view box [`WIDTH`]×[`HEIGHT`],
/// scaled to its container's width). `x_max`: the last step of the longest run.
pub fn panel_svg(panel: Panel, series: &[Series], x_max: u64) -> String {
    let mut out = String::new();
    let title = panel.title(series);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="t-{id}" class="panel" data-panel="{id}" font-family="system-ui, sans-serif" font-size="12"><title id="t-{id}">{t}</title>"#,
        id = panel.id(),
        t = esc(&title)
    );
    draw_panel(&mut out, panel, series, x_max, 0.0, 0.0);
    out.push_str("</svg>");
    out
}

/// "label: " for hover titles (escaped), empty for a lone run.
fn who(s: &Series) -> String {
    if s.label.is_empty() {
        String::new()
    } else {
        esc(&format!("{}: ", s.label))
    }
}

/// Draws a panel's contents with its top-left corner at (ox, oy).
fn draw_panel(out: &mut String, panel: Panel, series: &[Series], x_max: u64, ox: f64, oy: f64) {
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let title = panel.title(series);
    let _ = write!(
        out,
        r##"<rect x="{ox}" y="{oy}" width="{WIDTH}" height="{HEIGHT}" fill="#fff"/><text x="{x}" y="{y}" font-weight="600" fill="#222">{t}</text>"##,
        x = ox + LEFT,
        y = oy + 17.0,
        t = esc(&title)
    );
    let x_axis = Axis {
        lo: 0.0,
        hi: x_max.max(1) as f64,
        log: false,
    };
    let px = |v: f64| ox + LEFT + pw * x_axis.t(v);
    // x ticks and frame
    for t in nice_ticks(0.0, x_axis.hi, 5) {
        let x = px(t);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{y1:.1}" stroke="#eee"/><text x="{x:.1}" y="{ty:.1}" text-anchor="middle" fill="#444">{l}</text>"##,
            y0 = oy + TOP,
            y1 = oy + TOP + ph,
            ty = oy + TOP + ph + 15.0,
            l = fmt_num(t)
        );
    }
    let _ = write!(
        out,
        r##"<text x="{x:.1}" y="{y:.1}" text-anchor="middle" fill="#444">step</text>"##,
        x = ox + LEFT + pw / 2.0,
        y = oy + TOP + ph + 30.0
    );
    let Some(ya) = y_axis(panel, series) else {
        let _ = write!(
            out,
            r##"<rect x="{x}" y="{y}" width="{pw}" height="{ph}" fill="none" stroke="#999"/><text x="{cx:.1}" y="{cy:.1}" text-anchor="middle" fill="#888">no measurements yet</text>"##,
            x = ox + LEFT,
            y = oy + TOP,
            cx = ox + LEFT + pw / 2.0,
            cy = oy + TOP + ph / 2.0
        );
        draw_key(out, panel, ox, oy + HEIGHT - 14.0);
        return;
    };
    let py = |v: f64| oy + TOP + ph * (1.0 - ya.t(v));
    let y_ticks: Vec<f64> = if ya.log {
        (ya.lo as i32..=ya.hi as i32)
            .map(|e| 10f64.powi(e))
            .collect()
    } else {
        nice_ticks(ya.lo, ya.hi, 5)
    };
    for t in y_ticks {
        let y = py(t);
        let _ = write!(
            out,
            r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}" stroke="#eee"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="end" fill="#444">{l}</text>"##,
            x0 = ox + LEFT,
            x1 = ox + LEFT + pw,
            tx = ox + LEFT - 5.0,
            ty = y + 4.0,
            l = fmt_num(t)
        );
    }
    let _ = write!(
        out,
        r##"<rect x="{x}" y="{y}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##,
        x = ox + LEFT,
        y = oy + TOP
    );
    // reference lines and markers
    if panel == Panel::Sharpness {
        let mut drawn: Vec<f64> = Vec::new();
        for s in series.iter().filter(|s| !s.rows.is_empty()) {
            let two = 2.0 / s.lr;
            if drawn.iter().any(|d| (d - two).abs() <= 1e-9 * two) {
                continue;
            }
            drawn.push(two);
            let colour = if series.iter().all(|o| o.lr == s.lr) {
                "#555"
            } else {
                s.color
            };
            let y = py(two);
            let _ = write!(
                out,
                r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="1.2" stroke-dasharray="10 3 2 3" class="two-over-lr"><title>2/η = {v}</title></line><text x="{tx:.1}" y="{ty:.1}" text-anchor="end" fill="{colour}">2/η = {v}</text>"##,
                x0 = ox + LEFT,
                x1 = ox + LEFT + pw,
                tx = ox + LEFT + pw - 4.0,
                ty = y - 4.0,
                v = fmt_num(two)
            );
        }
    }
    for s in series {
        for (name, dash, f) in panel.lines() {
            let pts: Vec<(f64, f64, &MetricsRow, f64)> = s
                .rows
                .iter()
                .filter_map(|r| {
                    let v = f(r, s.loss)?;
                    (v.is_finite() && (!ya.log || v > 0.0)).then_some((
                        px(r.step as f64),
                        py(v),
                        r,
                        v,
                    ))
                })
                .collect();
            if pts.is_empty() {
                continue;
            }
            let width = if *dash == Dash::Solid { 2.0 } else { 1.6 };
            let _ = write!(
                out,
                r#"<polyline fill="none" stroke-linejoin="round" stroke="{}" stroke-width="{width}"{} points=""#,
                s.color,
                dash.attr()
            );
            for (i, (x, y, ..)) in pts.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "{x:.1},{y:.1}");
            }
            out.push_str(r#""/>"#);
            // hover targets: one per measurement, with the exact value (and,
            // for eigenvalues, the residual ‖Au − λu‖ that bounds its error)
            let who = who(s);
            for (x, y, r, v) in &pts {
                let residual = match (panel, *dash) {
                    (Panel::Sharpness, Dash::Solid) => r.sharpness_residual,
                    (Panel::Sharpness, _) => r.gn_residual,
                    _ => None,
                };
                let err = residual
                    .map(|e| format!(" (residual {})", fmt_num(e)))
                    .unwrap_or_default();
                let _ = write!(
                    out,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.2" fill="{c}"><title>{who}{name} at step {step}: {v}{err}</title></circle>"#,
                    c = s.color,
                    step = r.step,
                    v = fmt_num(*v)
                );
            }
        }
        if panel == Panel::Sharpness && s.full_batch {
            if let Some((step, v)) = edge_of_stability(s) {
                let (x, y) = (px(step as f64), py(v));
                let _ = write!(
                    out,
                    r##"<g class="eos"><line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{y1:.1}" stroke="{c}" stroke-width="1" stroke-dasharray="3 3"/><path d="M{x:.1},{yt:.1} l-6,-10 h12 z" fill="{c}"><title>{who}edge of stability reached at step {step} (sharpness {v} ≥ 2/η)</title></path><text x="{x:.1}" y="{ty:.1}" text-anchor="middle" fill="{c}" font-size="10">EoS</text></g>"##,
                    y0 = oy + TOP,
                    y1 = oy + TOP + ph,
                    yt = y - 3.0,
                    ty = y - 16.0,
                    c = s.color,
                    who = who(s),
                    v = fmt_num(v)
                );
            }
        }
    }
    draw_key(out, panel, ox, oy + HEIGHT - 14.0);
}

/// The line-style key under a panel (what solid/dashed/dotted mean).
fn draw_key(out: &mut String, panel: Panel, ox: f64, y: f64) {
    let mut x = ox + LEFT;
    for (name, dash, _) in panel.lines() {
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{ly:.1}" x2="{x2:.1}" y2="{ly:.1}" stroke="#333" stroke-width="1.8"{d}/><text x="{tx:.1}" y="{y:.1}" fill="#333">{n}</text>"##,
            ly = y - 4.0,
            x2 = x + 22.0,
            d = dash.attr(),
            tx = x + 27.0,
            n = esc(name)
        );
        x += 40.0 + 7.2 * name.chars().count() as f64;
    }
    if panel == Panel::Sharpness {
        let _ = write!(
            out,
            r##"<path d="M{x:.1},{y:.1} l-5,-9 h10 z" fill="#333"/><text x="{tx:.1}" y="{y:.1}" fill="#333">edge of stability</text>"##,
            tx = x + 9.0
        );
    }
}

/// A self-contained SVG of all four panels (2×2) with a legend of runs, for export.
pub fn figure_svg(series: &[Series], x_max: u64, caption: &str) -> String {
    let legend_h = 30.0;
    let (w, h) = (2.0 * WIDTH, 2.0 * HEIGHT + legend_h);
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="system-ui, sans-serif" font-size="12"><title>{c}</title><rect width="{w}" height="{h}" fill="#fff"/>"##,
        c = esc(caption)
    );
    let mut x = 12.0;
    let _ = write!(
        out,
        r##"<text x="{x}" y="19" fill="#222" font-weight="600">{}</text>"##,
        esc(caption)
    );
    x += 8.0 * caption.chars().count() as f64 + 16.0;
    for s in series.iter().filter(|s| !s.label.is_empty()) {
        let _ = write!(
            out,
            r##"<rect x="{x:.1}" y="9" width="14" height="14" fill="{c}"/><text x="{tx:.1}" y="20" fill="#222">{l}</text>"##,
            c = s.color,
            tx = x + 19.0,
            l = esc(s.label)
        );
        x += 34.0 + 7.0 * s.label.chars().count() as f64;
    }
    for (i, p) in Panel::ALL.iter().enumerate() {
        let (ox, oy) = ((i % 2) as f64 * WIDTH, legend_h + (i / 2) as f64 * HEIGHT);
        draw_panel(&mut out, *p, series, x_max, ox, oy);
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<MetricsRow> {
        (0..5)
            .map(|i| MetricsRow {
                step: 10 * i,
                train_loss_kl: Some(1.0 / (1.0 + i as f64)),
                test_loss_kl: Some(1.2 / (1.0 + i as f64)),
                train_acc: Some(0.2 * i as f64),
                sharpness: Some(10.0 + 6.0 * i as f64),
                sharpness_residual: Some(0.01),
                jac_logit_max: Some(1.0 + i as f64),
                jac_logit_mean: Some(0.5 + i as f64),
                bound_b: Some(0.3),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn ticks_and_numbers() {
        assert_eq!(
            nice_ticks(0.0, 2000.0, 5),
            vec![0.0, 500.0, 1000.0, 1500.0, 2000.0]
        );
        assert_eq!(
            nice_ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(nice_ticks(3.0, 3.0, 5), vec![3.0]);
        assert_eq!(fmt_num(33.333333), "33.3");
        assert_eq!(fmt_num(2000.0), "2000");
        assert_eq!(fmt_num(0.06), "0.06");
        assert_eq!(fmt_num(0.123456), "0.123");
        assert_eq!(fmt_num(1.5e-5), "1.5e-5");
        assert_eq!(fmt_num(0.0), "0");
    }

    #[test]
    fn edge_of_stability_is_the_first_row_at_two_over_lr() {
        let r = rows();
        let s = Series {
            label: "",
            color: PALETTE[0],
            rows: &r,
            loss: LossKind::Square,
            lr: 0.08,
            full_batch: true,
        };
        // 2/η = 25: sharpness 10, 16, 22, 28 → step 30.
        assert_eq!(edge_of_stability(&s), Some((30, 28.0)));
        let svg = panel_svg(Panel::Sharpness, &[s], 40);
        assert!(svg.contains("2/η = 25"), "{svg}");
        assert!(svg.contains("edge of stability reached at step 30"));
        assert!(
            svg.contains("Hessian at step 30: 28 (residual 0.01)"),
            "{svg}"
        );
        let calm = Series { lr: 0.01, ..s };
        assert_eq!(edge_of_stability(&calm), None);
        assert!(!panel_svg(Panel::Sharpness, &[calm], 40).contains("reached at step"));
    }

    #[test]
    fn panels_draw_each_run_and_skip_missing_values() {
        let r = rows();
        let a = Series {
            label: "α = 0",
            color: PALETTE[0],
            rows: &r,
            loss: LossKind::Square,
            lr: 0.06,
            full_batch: true,
        };
        let b = Series {
            label: "α = 0.1",
            color: PALETTE[1],
            ..a
        };
        let svg = panel_svg(Panel::Jacobian, &[a, b], 40);
        // max, mean and B for two runs; softmax norms absent for square loss.
        assert_eq!(svg.matches("<polyline").count(), 6);
        assert!(svg.contains(PALETTE[1]));
        assert!(svg.contains("α = 0.1: max_i ‖J_i‖ at step 40: 5"));
        let acc = panel_svg(Panel::Accuracy, &[a], 40);
        assert_eq!(
            acc.matches("<polyline").count(),
            1,
            "no test accuracy in the rows"
        );
        let empty = panel_svg(Panel::Loss, &[], 40);
        assert!(empty.contains("no measurements yet"));
        let fig = figure_svg(&[a, b], 40, "curvlab");
        assert_eq!(fig.matches("<polyline").count(), 2 * (2 + 1 + 3 + 1));
        assert!(fig.starts_with("<svg") && fig.ends_with("</svg>"));
    }

    #[test]
    fn log_axis_ignores_non_positive_losses() {
        let mut r = rows();
        r[2].train_loss_kl = Some(0.0);
        r[3].train_loss_kl = Some(f64::NAN);
        let s = Series {
            label: "",
            color: PALETTE[0],
            rows: &r,
            loss: LossKind::Square,
            lr: 0.06,
            full_batch: true,
        };
        let svg = panel_svg(Panel::Loss, &[s], 40);
        let train = svg.split("<polyline").nth(1).unwrap();
        let pts = train
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(pts.split(' ').count(), 3);
    }
}
