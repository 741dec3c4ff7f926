//! The explainer's plots as SVG text (crisp at any pixel density, exportable
//! as it is): loss, sharpness with 2/η and the edge-of-stability marker,
//! Jacobian norm with the Theorem 5.1 data bound, accuracy. Several runs are
//! overlaid, one colour each from the Okabe–Ito palette (distinguishable
//! with the common colour-vision deficiencies); line style tells the
//! quantities of one run apart (solid, dashed, dotted), so the plots also
//! read in greyscale.
//!
//! Pure functions of the rows: the page redraws after each batch of rows.
//! Ticks and tick labels come from `curvlab::axis`, as in the CLI's figures.

use std::fmt::Write as _;

use curvlab::axis;
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
/// cross-entropy, logits for the square loss (docs/measurements.md "Jacobian norms", Theorem 5.1).
pub fn jac(r: &MetricsRow, loss: LossKind) -> (Option<f64>, Option<f64>) {
    match loss {
        LossKind::CrossEntropy => (r.jac_softmax_max, r.jac_softmax_mean),
        LossKind::Square => (r.jac_logit_max, r.jac_logit_mean),
    }
}

/// The first row at which a run's sharpness reached that row's 2/η (the
/// learning rate of its step, which a schedule changes): (step, sharpness).
pub fn edge_of_stability(s: &Series) -> Option<(u64, f64)> {
    s.rows.iter().find_map(|r| {
        r.sharpness
            .filter(|&v| two_over_lr(r).is_some_and(|two| v >= two))
            .map(|v| (r.step, v))
    })
}

/// A row's 2/η, when it is a finite positive number.
fn two_over_lr(r: &MetricsRow) -> Option<f64> {
    Some(r.two_over_lr).filter(|v| v.is_finite() && *v > 0.0)
}

/// A run's 2/η through training as a step line: (step, 2/η) where it
/// changes, from the first row on; empty without rows.
pub fn two_over_lr_steps(s: &Series) -> Vec<(u64, f64)> {
    let mut out: Vec<(u64, f64)> = Vec::new();
    for r in s.rows {
        if let Some(v) = two_over_lr(r) {
            if out.last().is_none_or(|&(_, last)| last != v) {
                out.push((r.step, v));
            }
        }
    }
    out
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
        if panel == Panel::Sharpness {
            vals.extend(two_over_lr_steps(s).iter().map(|p| p.1));
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
    let x_ticks = axis::linear(0.0, x_axis.hi, 5, 1.0);
    for (&t, l) in x_ticks.major.iter().zip(&x_ticks.labels) {
        let x = px(t);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{y1:.1}" stroke="#eee"/><text x="{x:.1}" y="{ty:.1}" text-anchor="middle" fill="#444">{l}</text>"##,
            y0 = oy + TOP,
            y1 = oy + TOP + ph,
            ty = oy + TOP + ph + 15.0,
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
    let y_ticks = if ya.log {
        axis::log(10f64.powf(ya.lo), 10f64.powf(ya.hi))
    } else {
        axis::linear(ya.lo, ya.hi, 5, 0.0)
    };
    for (&t, l) in y_ticks.major.iter().zip(&y_ticks.labels) {
        let y = py(t);
        let _ = write!(
            out,
            r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}" stroke="#eee"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="end" fill="#444">{l}</text>"##,
            x0 = ox + LEFT,
            x1 = ox + LEFT + pw,
            tx = ox + LEFT - 5.0,
            ty = y + 4.0,
        );
    }
    let _ = write!(
        out,
        r##"<rect x="{x}" y="{y}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##,
        x = ox + LEFT,
        y = oy + TOP
    );
    // reference lines and markers: each run's 2/η, a step line following its
    // rows (flat for a constant learning rate); runs with the same line share it.
    if panel == Panel::Sharpness {
        let lines: Vec<(&Series, Vec<(u64, f64)>)> = series
            .iter()
            .map(|s| (s, two_over_lr_steps(s)))
            .filter(|(_, l)| !l.is_empty())
            .collect();
        let all_same = lines.windows(2).all(|w| w[0].1 == w[1].1);
        let mut drawn: Vec<&Vec<(u64, f64)>> = Vec::new();
        for (s, line) in &lines {
            if drawn.contains(&line) {
                continue;
            }
            drawn.push(line);
            let colour = if all_same { "#555" } else { s.color };
            // Flat before the first row, then each value until the next change,
            // the last to the right edge.
            let mut d = format!("M{:.1},{:.1}", ox + LEFT, py(line[0].1));
            for (i, &(step, v)) in line.iter().enumerate() {
                if i > 0 {
                    let _ = write!(d, " H{:.1} V{:.1}", px(step as f64), py(v));
                }
            }
            let _ = write!(d, " H{:.1}", ox + LEFT + pw);
            let last = line[line.len() - 1].1;
            let (first, v) = (line[0].1, axis::format_value(last));
            let what = if line.len() == 1 {
                format!("2/η = {v}")
            } else {
                format!(
                    "2/η, from {} to {v} (the learning rate changes)",
                    axis::format_value(first)
                )
            };
            let _ = write!(
                out,
                r##"<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.2" stroke-dasharray="10 3 2 3" class="two-over-lr"><title>{what}</title></path><text x="{tx:.1}" y="{ty:.1}" text-anchor="end" fill="{colour}">2/η = {v}</text>"##,
                tx = ox + LEFT + pw - 4.0,
                ty = py(last) - 4.0,
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
                    .map(|e| format!(" (residual {})", axis::format_value(e)))
                    .unwrap_or_default();
                let _ = write!(
                    out,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.2" fill="{c}"><title>{who}{name} at step {step}: {v}{err}</title></circle>"#,
                    c = s.color,
                    step = r.step,
                    v = axis::format_value(*v)
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
                    v = axis::format_value(v)
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

    /// Five rows, 10 steps apart, at a constant 2/η = `two`.
    fn rows_at(two: f64) -> Vec<MetricsRow> {
        (0..5)
            .map(|i| MetricsRow {
                step: 10 * i,
                lr: 2.0 / two,
                two_over_lr: two,
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

    fn rows() -> Vec<MetricsRow> {
        rows_at(2.0 / 0.06)
    }

    fn lone(rows: &[MetricsRow]) -> Series<'_> {
        Series {
            label: "",
            color: PALETTE[0],
            rows,
            loss: LossKind::Square,
            full_batch: true,
        }
    }

    #[test]
    fn ticks_and_labels_come_from_the_shared_axis_module() {
        let r = rows();
        let svg = panel_svg(Panel::Sharpness, &[lone(&r)], 2000);
        // x: 0 … 2000 in steps of 500, as curvlab::axis::linear gives them.
        let x = axis::linear(0.0, 2000.0, 5, 1.0);
        assert_eq!(x.labels, ["0", "500", "1000", "1500", "2000"]);
        for l in &x.labels {
            assert!(
                svg.contains(&format!(r##"text-anchor="middle" fill="#444">{l}</text>"##)),
                "{l}: {svg}"
            );
        }
        // Values read as the CLI writes them: three significant digits.
        assert!(svg.contains("2/η = 33.3"), "{svg}");
    }

    #[test]
    fn edge_of_stability_is_the_first_row_at_its_two_over_lr() {
        let r = rows_at(25.0);
        let s = lone(&r);
        // 2/η = 25: sharpness 10, 16, 22, 28 → step 30.
        assert_eq!(edge_of_stability(&s), Some((30, 28.0)));
        assert_eq!(two_over_lr_steps(&s), [(0, 25.0)]);
        let svg = panel_svg(Panel::Sharpness, &[s], 40);
        assert!(svg.contains("2/η = 25"), "{svg}");
        assert_eq!(svg.matches(r#"class="two-over-lr""#).count(), 1);
        assert!(svg.contains("edge of stability reached at step 30"));
        assert!(
            svg.contains("Hessian at step 30: 28 (residual 0.01)"),
            "{svg}"
        );
        let r = rows_at(200.0);
        let calm = lone(&r);
        assert_eq!(edge_of_stability(&calm), None);
        assert!(!panel_svg(Panel::Sharpness, &[calm], 40).contains("reached at step"));
    }

    #[test]
    fn two_over_lr_follows_each_rows_learning_rate() {
        // A schedule: 2/η = 50 for the first two rows, then 25 (the rate doubled).
        let mut r = rows_at(50.0);
        for row in &mut r[2..] {
            row.lr = 0.08;
            row.two_over_lr = 25.0;
        }
        let s = lone(&r);
        assert_eq!(two_over_lr_steps(&s), [(0, 50.0), (20, 25.0)]);
        // Sharpness 22 at step 20 is below 25; 28 at step 30 is not. (With the
        // base rate's 2/η = 50 there would be no edge of stability at all.)
        assert_eq!(edge_of_stability(&s), Some((30, 28.0)));
        let svg = panel_svg(Panel::Sharpness, &[s], 40);
        // One step line: flat at 50, down at step 20 to 25, on to the right edge.
        let line = svg
            .split(r#"class="two-over-lr""#)
            .next()
            .unwrap()
            .rsplit("<path d=\"")
            .next()
            .unwrap();
        assert_eq!(line.matches(" V").count(), 1, "{line}");
        assert_eq!(line.matches(" H").count(), 2, "{line}");
        assert!(svg.contains("2/η, from 50 to 25"), "{svg}");
        assert!(svg.contains("2/η = 25"), "{svg}");
        // Rows without a finite 2/η (η = 0) draw no line.
        let r0 = rows_at(f64::INFINITY);
        assert!(two_over_lr_steps(&lone(&r0)).is_empty());
        assert!(!panel_svg(Panel::Sharpness, &[lone(&r0)], 40).contains("two-over-lr"));
    }

    #[test]
    fn runs_with_the_same_two_over_lr_share_one_line() {
        let (r1, r2) = (rows_at(25.0), rows_at(40.0));
        let a = lone(&r1);
        let b = Series {
            color: PALETTE[1],
            ..a
        };
        let svg = panel_svg(Panel::Sharpness, &[a, b], 40);
        assert_eq!(svg.matches(r#"class="two-over-lr""#).count(), 1);
        assert!(svg.contains(r##"stroke="#555""##));
        let c = Series {
            rows: &r2,
            color: PALETTE[1],
            ..a
        };
        let svg = panel_svg(Panel::Sharpness, &[a, c], 40);
        assert_eq!(svg.matches(r#"class="two-over-lr""#).count(), 2);
        assert!(svg.contains("2/η = 40"));
    }

    #[test]
    fn panels_draw_each_run_and_skip_missing_values() {
        let r = rows();
        let a = Series {
            label: "α = 0",
            ..lone(&r)
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
        let svg = panel_svg(Panel::Loss, &[lone(&r)], 40);
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
