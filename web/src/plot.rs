//! The explainer's plots as SVG element trees ([`crate::svg::Node`]): loss,
//! sharpness with 2/η and the edge-of-stability marker, Jacobian norm with
//! the Theorem 5.1 data bound, accuracy. The page patches them in place as
//! rows arrive (nothing is rebuilt, so a hovered point keeps its tooltip);
//! the export writes them out as SVG text.
//!
//! Several runs are overlaid, one colour each from the Okabe–Ito palette
//! (distinguishable with the common colour-vision deficiencies); line style
//! and marker tell the quantities of one run apart (solid with dots, dashed,
//! dotted with rings), so the plots also read in greyscale, and a dotted
//! Gauss–Newton line stays visible on top of an equal Hessian line.
//!
//! Layout: a panel is drawn at the pixel width it is shown at (one SVG unit
//! is one CSS pixel), so its text is [`FONT`] px on a phone as on a desktop;
//! the key under the plot wraps to the width. Axis ranges come from the
//! data: a 2/η more than [`REF_REACH`] times above the sharpness is not
//! stretched into the plot but marked ▲ beside it. Labels sit outside the
//! plot area (title above, 2/η values in the right margin, the key below),
//! so they never cover a curve. Ticks and tick labels come from
//! `curvlab::axis`, as in the CLI's figures.

use curvlab::axis::{self, format_value};
use curvlab::loss::LossKind;
use curvlab::record::MetricsRow;

use crate::bound::BoundNote;
use crate::svg::{num, Node};

/// Okabe & Ito's colour-blind-safe palette (blue, vermillion, bluish green,
/// reddish purple, orange, sky blue, yellow, black).
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000",
];

/// Text size in SVG units (= CSS px on the page).
pub const FONT: f64 = 12.0;

/// A 2/η line is drawn inside the sharpness plot when it is at most this
/// many times the largest sharpness measured; above, the axis follows the
/// data and 2/η is marked ▲ in the margin.
pub const REF_REACH: f64 = 2.5;

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
    /// Δ, the distance between two classes' targets (Theorem 5.1).
    pub gap: f64,
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

    /// The panel's full title (its accessible name) and the visible one,
    /// shorter where the full one would not fit `width`.
    fn titles(self, series: &[Series], width: f64) -> (String, String) {
        let ce = series.iter().any(|s| s.loss == LossKind::CrossEntropy);
        let which = if series.iter().all(|s| s.loss == LossKind::CrossEntropy) {
            "softmax"
        } else if series.iter().all(|s| s.loss == LossKind::Square) {
            "logit"
        } else {
            "softmax (CE) / logit (square)"
        };
        let (full, short) = match self {
            Panel::Loss if ce => (
                "Loss, KL form (label entropy subtracted; log scale)".to_string(),
                "Loss, KL form (log scale)".to_string(),
            ),
            Panel::Loss => ("Loss (log scale)".into(), "Loss (log scale)".into()),
            Panel::Sharpness => (
                "Sharpness λ_max(∇²ℓ) and 2/η".into(),
                "Sharpness λ_max and 2/η".into(),
            ),
            Panel::Jacobian => (
                format!("Input–output Jacobian ‖J‖₂, {which}, and bound B"),
                format!("Jacobian ‖J‖₂ ({which}) and bound B"),
            ),
            Panel::Accuracy => ("Accuracy".into(), "Accuracy".into()),
        };
        let shown = if text_w(&full) * 1.08 <= width - 2.0 * PAD {
            full.clone()
        } else {
            short
        };
        (full, shown)
    }

    /// The lines of this panel, in drawing order (later ones on top).
    fn lines(self) -> &'static [Line] {
        match self {
            Panel::Loss => &[
                Line {
                    name: "train",
                    dash: Dash::Solid,
                    mark: Mark::Dot,
                    value: |r, _| r.train_loss_kl,
                },
                Line {
                    name: "test",
                    dash: Dash::Dashed,
                    mark: Mark::None,
                    value: |r, _| r.test_loss_kl,
                },
            ],
            Panel::Sharpness => &[
                Line {
                    name: "Hessian",
                    dash: Dash::Solid,
                    mark: Mark::Dot,
                    value: |r, _| r.sharpness,
                },
                Line {
                    name: "Gauss–Newton",
                    dash: Dash::Dotted,
                    mark: Mark::Ring,
                    value: |r, _| r.gn_sharpness,
                },
            ],
            Panel::Jacobian => &[
                Line {
                    name: "max_i ‖J_i‖",
                    dash: Dash::Solid,
                    mark: Mark::Dot,
                    value: |r, l| jac(r, l).0,
                },
                Line {
                    name: "mean_i ‖J_i‖",
                    dash: Dash::Dashed,
                    mark: Mark::None,
                    value: |r, l| jac(r, l).1,
                },
                // B says nothing while it is 0 (ℓ ≥ Δ/2): drawn only where positive.
                Line {
                    name: "bound B (Thm 5.1)",
                    dash: Dash::Dotted,
                    mark: Mark::None,
                    value: |r, _| r.bound_b.filter(|b| *b > 0.0),
                },
            ],
            Panel::Accuracy => &[
                Line {
                    name: "train",
                    dash: Dash::Solid,
                    mark: Mark::Dot,
                    value: |r, _| r.train_acc,
                },
                Line {
                    name: "test",
                    dash: Dash::Dashed,
                    mark: Mark::None,
                    value: |r, _| r.test_acc,
                },
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
struct Line {
    name: &'static str,
    dash: Dash,
    mark: Mark,
    value: fn(&MetricsRow, LossKind) -> Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dash {
    Solid,
    Dashed,
    Dotted,
    /// Dash-dot: the 2/η reference line.
    Reference,
}

impl Dash {
    fn apply(self, n: Node) -> Node {
        match self {
            Dash::Solid => n,
            Dash::Dashed => n.attr("stroke-dasharray", "7 4"),
            Dash::Dotted => n
                .attr("stroke-dasharray", "1.5 4")
                .attr("stroke-linecap", "round"),
            Dash::Reference => n.attr("stroke-dasharray", "10 3 2 3"),
        }
    }

    fn width(self) -> f64 {
        match self {
            Dash::Solid => 2.0,
            Dash::Dashed => 1.6,
            Dash::Dotted => 2.4,
            Dash::Reference => 1.3,
        }
    }
}

/// Marker at each measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    None,
    /// Filled disc.
    Dot,
    /// White disc with a coloured ring (visible on top of another line).
    Ring,
}

impl Mark {
    fn node(self, key: String, x: f64, y: f64, color: &str) -> Node {
        let n = Node::new("circle", key).at("cx", x).at("cy", y);
        match self {
            Mark::Ring => n
                .attr("r", "3.6")
                .attr("fill", "#fff")
                .attr("stroke", color)
                .attr("stroke-width", "1.6"),
            _ => n.attr("r", "2.6").attr("fill", color),
        }
    }
}

/// The size a panel is drawn at, in SVG units (CSS px on the page).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame {
    pub width: f64,
    /// Height with a one-row key (a wrapped key adds rows below).
    pub height: f64,
}

impl Frame {
    /// The exported figure's panels.
    pub const EXPORT: Frame = Frame {
        width: 480.0,
        height: 320.0,
    };

    /// A panel shown `width` CSS px wide.
    pub fn for_width(width: f64) -> Frame {
        let width = width.floor().clamp(240.0, 1400.0);
        Frame {
            width,
            height: (width * 0.62).clamp(236.0, 330.0).round(),
        }
    }
}

/// Outer padding.
const PAD: f64 = 8.0;
/// Top of the plot area: the title, then the row of ▼ markers.
const TOP: f64 = 36.0;
/// Height of one key row.
const KEY_ROW: f64 = 18.0;
/// Under the plot area: tick labels and the "step" label.
const X_LABELS: f64 = 36.0;

/// Estimated width of `s` at [`FONT`] (system sans-serif averages ~0.55 em).
fn text_w(s: &str) -> f64 {
    s.chars().count() as f64 * 0.6 * FONT
}

#[derive(Clone, Copy, Debug)]
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

    fn ticks(&self, target: usize, min_step: f64) -> axis::Ticks {
        if self.log {
            axis::log(10f64.powf(self.lo), 10f64.powf(self.hi))
        } else {
            axis::linear(self.lo, self.hi, target, min_step)
        }
    }
}

/// One 2/η line of the sharpness panel (runs with equal lines share one).
#[derive(Clone, Debug)]
struct RefLine {
    steps: Vec<(u64, f64)>,
    color: String,
    /// Drawn in the plot (else marked ▲ above it).
    on_scale: bool,
}

impl RefLine {
    fn last(&self) -> f64 {
        self.steps[self.steps.len() - 1].1
    }

    fn max(&self) -> f64 {
        self.steps.iter().map(|p| p.1).fold(f64::MIN, f64::max)
    }

    fn describe(&self) -> String {
        let v = format_value(self.last());
        if self.steps.len() == 1 {
            format!("2/η = {v}")
        } else {
            format!("2/η {} → {v}", format_value(self.steps[0].1))
        }
    }
}

fn ref_lines(series: &[Series]) -> Vec<RefLine> {
    let lines: Vec<(&Series, Vec<(u64, f64)>)> = series
        .iter()
        .map(|s| (s, two_over_lr_steps(s)))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    let all_same = lines.windows(2).all(|w| w[0].1 == w[1].1);
    let mut out: Vec<RefLine> = Vec::new();
    for (s, steps) in lines {
        if out.iter().any(|l| l.steps == steps) {
            continue;
        }
        out.push(RefLine {
            steps,
            color: if all_same { "#555" } else { s.color }.to_string(),
            on_scale: true,
        });
    }
    out
}

/// Everything a panel's drawing and its hover read share: sizes, axes, lines.
struct Geometry {
    width: f64,
    height: f64,
    left: f64,
    top: f64,
    pw: f64,
    ph: f64,
    x: Axis,
    y: Option<Axis>,
    refs: Vec<RefLine>,
}

impl Geometry {
    fn px(&self, v: f64) -> f64 {
        self.left + self.pw * self.x.t(v)
    }

    fn py(&self, v: f64) -> f64 {
        let y = self.y.expect("a y axis");
        self.top + self.ph * (1.0 - y.t(v))
    }
}

/// The values a panel plots (finite, positive on a log axis).
fn values(panel: Panel, s: &Series) -> Vec<f64> {
    let mut vals = Vec::new();
    for r in s.rows {
        for l in panel.lines() {
            if let Some(v) = (l.value)(r, s.loss) {
                if v.is_finite() && (!panel.log_y() || v > 0.0) {
                    vals.push(v);
                }
            }
        }
    }
    vals
}

/// The y axis from the data (and, for sharpness, the 2/η lines in reach).
fn y_axis(panel: Panel, series: &[Series], refs: &mut [RefLine]) -> Option<Axis> {
    let vals: Vec<f64> = series.iter().flat_map(|s| values(panel, s)).collect();
    let data_hi = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut hi = data_hi;
    for r in refs.iter_mut() {
        r.on_scale = vals.is_empty() || r.max() <= REF_REACH * data_hi;
        if r.on_scale {
            hi = hi.max(r.max());
        }
    }
    if !hi.is_finite() {
        return None;
    }
    let lo = vals.iter().cloned().fold(f64::INFINITY, f64::min).min(hi);
    Some(match panel {
        Panel::Loss => {
            let (mut a, mut b) = (lo.log10(), hi.log10());
            // At least a factor of 1.5 on show, then 5 % of room each side.
            let min_span = 1.5f64.log10();
            if b - a < min_span {
                let mid = (a + b) / 2.0;
                (a, b) = (mid - min_span / 2.0, mid + min_span / 2.0);
            }
            let pad = (b - a) * 0.05;
            Axis {
                lo: a - pad,
                hi: b + pad,
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

/// One entry of the key under a panel.
struct KeyItem {
    sample: Sample,
    text: String,
    color: String,
}

enum Sample {
    Line(Dash, Mark),
    /// The ▼ edge-of-stability marker.
    Eos,
    /// ▲: a 2/η above the plot.
    Above,
}

const SAMPLE_W: f64 = 24.0;
const KEY_GAP: f64 = 14.0;

fn key_items(panel: Panel, series: &[Series], refs: &[RefLine]) -> Vec<KeyItem> {
    let mut items: Vec<KeyItem> = panel
        .lines()
        .iter()
        .map(|l| KeyItem {
            sample: Sample::Line(l.dash, l.mark),
            text: l.name.to_string(),
            color: "#333".into(),
        })
        .collect();
    match panel {
        Panel::Sharpness => {
            // The two estimates often agree to a fraction of a percent: say so,
            // since the Gauss–Newton line then lies on the Hessian's.
            let diffs: Vec<f64> = series
                .iter()
                .flat_map(|s| s.rows)
                .filter_map(|r| match (r.sharpness, r.gn_sharpness) {
                    (Some(h), Some(g)) if h.abs() > 0.0 => Some(((g - h) / h).abs()),
                    _ => None,
                })
                .collect();
            let worst = diffs.iter().cloned().fold(0.0, f64::max);
            if !diffs.is_empty() && worst <= 0.01 {
                items[1].text = format!(
                    "Gauss–Newton (≈ Hessian, within {} %)",
                    format_value((worst * 100.0).max(0.01))
                );
            }
            for r in refs {
                items.push(KeyItem {
                    sample: if r.on_scale {
                        Sample::Line(Dash::Reference, Mark::None)
                    } else {
                        Sample::Above
                    },
                    text: if r.on_scale {
                        r.describe()
                    } else {
                        format!("{}, above the plot", r.describe())
                    },
                    color: r.color.clone(),
                });
            }
            items.push(KeyItem {
                sample: Sample::Eos,
                text: "edge of stability".into(),
                color: "#333".into(),
            });
        }
        Panel::Jacobian => {
            // B is positive only once every example is fitted within Δ/2.
            let notes: Vec<BoundNote> = series
                .iter()
                .filter_map(|s| {
                    let last = s.rows.last()?;
                    BoundNote::of(last, s.gap, jac(last, s.loss).0)
                })
                .collect();
            if !notes.is_empty() && notes.iter().all(|n| !n.active()) {
                items[2].text = match &notes[..] {
                    [n] => format!(
                        "bound B = 0 so far: ℓ {} > Δ/2 {}",
                        format_value(n.ell),
                        format_value(n.half_gap)
                    ),
                    _ => "bound B = 0 so far (ℓ > Δ/2)".into(),
                };
            }
        }
        _ => {}
    }
    items
}

/// Places the key's items in rows no wider than `width`: (x, row) of each.
fn key_layout(items: &[KeyItem], x0: f64, width: f64) -> (Vec<(f64, usize)>, usize) {
    let mut out = Vec::with_capacity(items.len());
    let (mut x, mut row) = (x0, 0);
    for it in items {
        let w = SAMPLE_W + 5.0 + text_w(&it.text);
        if x > x0 && x + w > width - PAD {
            row += 1;
            x = x0;
        }
        out.push((x, row));
        x += w + KEY_GAP;
    }
    let rows = if items.is_empty() { 0 } else { row + 1 };
    (out, rows)
}

fn geometry(
    panel: Panel,
    series: &[Series],
    x_max: u64,
    frame: Frame,
    key_rows: usize,
) -> Geometry {
    let mut refs = if panel == Panel::Sharpness {
        ref_lines(series)
    } else {
        Vec::new()
    };
    let y = y_axis(panel, series, &mut refs);
    let height = frame.height + KEY_ROW * key_rows.saturating_sub(1) as f64;
    let ph = height - TOP - X_LABELS - KEY_ROW * key_rows.max(1) as f64 - 4.0;
    // Left margin: the widest y tick label.
    let left = y
        .map(|y| {
            y.ticks(y_target(ph), 0.0)
                .labels
                .iter()
                .map(|l| text_w(l))
                .fold(0.0, f64::max)
        })
        .unwrap_or(0.0)
        .max(2.0 * FONT)
        + PAD
        + 6.0;
    // Right margin: the 2/η values beside their lines.
    let right = refs
        .iter()
        .map(|r| text_w(&format_value(r.last())) + if r.on_scale { 6.0 } else { 14.0 })
        .fold(0.0, f64::max)
        .max(FONT * 0.5)
        + PAD;
    let pw = frame.width - left - right;
    Geometry {
        width: frame.width,
        height,
        left,
        top: TOP,
        pw,
        ph,
        x: Axis {
            lo: 0.0,
            hi: x_max.max(1) as f64,
            log: false,
        },
        y,
        refs,
    }
}

fn y_target(ph: f64) -> usize {
    (ph / 42.0).round().clamp(3.0, 6.0) as usize
}

fn text(key: impl Into<String>, x: f64, y: f64, anchor: &str, fill: &str, t: &str) -> Node {
    let n = Node::new("text", key)
        .at("x", x)
        .at("y", y)
        .attr("fill", fill);
    let n = if anchor == "start" {
        n
    } else {
        n.attr("text-anchor", anchor)
    };
    n.text(t)
}

/// What the pointer at `x` (SVG units) reads from a panel: the nearest
/// measured step, a marker on each line there, and one line of text per value.
#[derive(Clone, Debug, PartialEq)]
pub struct Hover {
    pub step: u64,
    /// x of that step in the panel (SVG units).
    pub x: f64,
    /// (colour, text), first the step itself.
    pub lines: Vec<(String, String)>,
    marks: Vec<(f64, f64, String)>,
}

fn hover_at(panel: Panel, series: &[Series], g: &Geometry, x: f64) -> Option<Hover> {
    let log = g.y?.log;
    let want = g.x.lo + (x - g.left) / g.pw * (g.x.hi - g.x.lo);
    let step = series
        .iter()
        .flat_map(|s| s.rows.iter().map(|r| r.step))
        .min_by(|a, b| {
            (*a as f64 - want)
                .abs()
                .total_cmp(&(*b as f64 - want).abs())
        })?;
    let mut lines = vec![("#222".to_string(), format!("step {step}"))];
    let mut marks = Vec::new();
    for s in series {
        let Some(r) = s.rows.iter().find(|r| r.step == step) else {
            continue;
        };
        let who = if s.label.is_empty() {
            String::new()
        } else {
            format!("{}: ", s.label)
        };
        for l in panel.lines() {
            let v = (l.value)(r, s.loss).filter(|v| v.is_finite() && (!log || *v > 0.0));
            let residual = match (panel, l.mark) {
                (Panel::Sharpness, Mark::Dot) => r.sharpness_residual,
                (Panel::Sharpness, _) => r.gn_residual,
                _ => None,
            };
            let text = match v {
                Some(v) => {
                    marks.push((g.px(step as f64), g.py(v), s.color.to_string()));
                    let err = residual
                        .map(|e| format!(" (residual {})", format_value(e)))
                        .unwrap_or_default();
                    format!("{who}{} {}{err}", l.name, format_value(v))
                }
                None if panel == Panel::Jacobian && l.dash == Dash::Dotted => {
                    match BoundNote::of(r, s.gap, None) {
                        Some(b) => format!(
                            "{who}bound B 0: ℓ {} > Δ/2 {}",
                            format_value(b.ell),
                            format_value(b.half_gap)
                        ),
                        None => continue,
                    }
                }
                None => continue,
            };
            lines.push((s.color.to_string(), text));
        }
        if panel == Panel::Sharpness {
            if let Some(two) = two_over_lr(r) {
                lines.push((
                    s.color.to_string(),
                    format!("{who}2/η = {}", format_value(two)),
                ));
            }
            if s.full_batch && edge_of_stability(s).is_some_and(|(e, _)| e == step) {
                lines.push((
                    s.color.to_string(),
                    format!("{who}▼ edge of stability reached here"),
                ));
            }
        }
    }
    Some(Hover {
        step,
        x: g.px(step as f64),
        lines,
        marks,
    })
}

/// One panel as an `<svg>` element tree `frame.width` wide (its height
/// grows with the key's rows), with the hover guide at `hover_x` when the
/// pointer is over it; and what the pointer reads there.
pub fn panel(
    panel: Panel,
    series: &[Series],
    x_max: u64,
    frame: Frame,
    hover_x: Option<f64>,
) -> (Node, Option<Hover>) {
    // The key first: its rows decide the plot's height.
    let refs_for_key = {
        let mut refs = if panel == Panel::Sharpness {
            ref_lines(series)
        } else {
            Vec::new()
        };
        y_axis(panel, series, &mut refs);
        refs
    };
    let items = key_items(panel, series, &refs_for_key);
    let (places, key_rows) = key_layout(&items, PAD, frame.width);
    let g = geometry(panel, series, x_max, frame, key_rows);
    let (full, shown) = panel.titles(series, frame.width);
    let id = panel.id();
    let mut svg = Node::new("svg", "svg")
        .attr("xmlns", "http://www.w3.org/2000/svg")
        .attr("viewBox", format!("0 0 {} {}", num(g.width), num(g.height)))
        .attr("role", "img")
        .attr("aria-labelledby", format!("t-{id}"))
        .attr("class", "panel")
        .attr("data-panel", id)
        .attr("font-family", "system-ui, sans-serif")
        .attr("font-size", FONT)
        .child(
            Node::new("title", "t")
                .attr("id", format!("t-{id}"))
                .text(&full),
        )
        .child(
            Node::new("rect", "bg")
                .attr("width", num(g.width))
                .attr("height", num(g.height))
                .attr("fill", "#fff"),
        )
        .child(text("title", PAD, 17.0, "start", "#222", &shown).attr("font-weight", "600"));
    let (pw, ph) = (g.pw, g.ph);
    // x ticks and the frame
    let mut grid = Node::new("g", "grid").attr("stroke", "#eee");
    let mut labels = Node::new("g", "labels").attr("fill", "#444");
    let x_target = (pw / 80.0).round().clamp(2.0, 6.0) as usize;
    let xt = g.x.ticks(x_target, 1.0);
    for (i, (&t, l)) in xt.major.iter().zip(&xt.labels).enumerate() {
        let x = g.px(t);
        grid.push(
            Node::new("line", format!("x{i}"))
                .at("x1", x)
                .at("x2", x)
                .at("y1", g.top)
                .at("y2", g.top + ph),
        );
        labels.push(text(
            format!("x{i}"),
            x,
            g.top + ph + 15.0,
            "middle",
            "#444",
            l,
        ));
    }
    labels.push(text(
        "step",
        g.left + pw / 2.0,
        g.top + ph + 30.0,
        "middle",
        "#444",
        "step",
    ));
    let Some(ya) = g.y else {
        svg.push(grid);
        svg.push(labels);
        svg.push(frame_rect(&g));
        svg.push(text(
            "empty",
            g.left + pw / 2.0,
            g.top + ph / 2.0,
            "middle",
            "#888",
            "no measurements yet",
        ));
        svg.push(draw_key(&items, &places, &g));
        return (svg, None);
    };
    let yt = ya.ticks(y_target(ph), 0.0);
    for (i, (&t, l)) in yt.major.iter().zip(&yt.labels).enumerate() {
        let y = g.py(t);
        grid.push(
            Node::new("line", format!("y{i}"))
                .at("x1", g.left)
                .at("x2", g.left + pw)
                .at("y1", y)
                .at("y2", y),
        );
        labels.push(text(
            format!("y{i}"),
            g.left - 5.0,
            y + 4.0,
            "end",
            "#444",
            l,
        ));
    }
    svg.push(grid);
    svg.push(labels);
    svg.push(frame_rect(&g));
    if panel == Panel::Sharpness {
        draw_refs(&mut svg, &g);
    }
    // The lines, run by run.
    let marker_room = pw / 7.0;
    for (si, s) in series.iter().enumerate() {
        let mut run = Node::new("g", format!("run{si}")).attr("class", "run");
        for (li, l) in panel.lines().iter().enumerate() {
            let pts: Vec<(f64, f64)> = s
                .rows
                .iter()
                .filter_map(|r| {
                    let v = (l.value)(r, s.loss)?;
                    (v.is_finite() && (!ya.log || v > 0.0)).then(|| (g.px(r.step as f64), g.py(v)))
                })
                .collect();
            if pts.is_empty() {
                continue;
            }
            let points: Vec<String> = pts
                .iter()
                .map(|(x, y)| format!("{},{}", num(*x), num(*y)))
                .collect();
            run.push(
                l.dash.apply(
                    Node::new("polyline", format!("l{li}"))
                        .attr(
                            "class",
                            format!("line-{}", l.name.split(' ').next().unwrap_or("")),
                        )
                        .attr("fill", "none")
                        .attr("stroke-linejoin", "round")
                        .attr("stroke", s.color)
                        .attr("stroke-width", l.dash.width())
                        .attr("points", points.join(" ")),
                ),
            );
            if l.mark != Mark::None {
                // Every measurement, thinned where they would crowd.
                let stride = (pts.len() as f64 / marker_room).ceil().max(1.0) as usize;
                let mut marks = Node::new("g", format!("m{li}"));
                for (k, (x, y)) in pts.iter().enumerate() {
                    if k % stride == 0 || k + 1 == pts.len() {
                        marks.push(l.mark.node(format!("{k}"), *x, *y, s.color));
                    }
                }
                run.push(marks);
            }
        }
        svg.push(run);
    }
    // The edge of stability: ▼ above the plot at its step, a guide down to the point.
    if panel == Panel::Sharpness {
        for (si, s) in series.iter().enumerate() {
            let Some((step, v)) = edge_of_stability(s).filter(|_| s.full_batch) else {
                continue;
            };
            let (x, y) = (g.px(step as f64), g.py(v));
            let who = if s.label.is_empty() {
                String::new()
            } else {
                format!("{}: ", s.label)
            };
            svg.push(
                Node::new("g", format!("eos{si}"))
                    .attr("class", "eos")
                    .child(
                        Node::new("line", "guide")
                            .at("x1", x)
                            .at("x2", x)
                            .at("y1", g.top)
                            .at("y2", y)
                            .attr("stroke", s.color)
                            .attr("stroke-dasharray", "3 3"),
                    )
                    .child(
                        Node::new("path", "mark")
                            .attr("d", format!("M{},{} l-6,-10 h12 z", num(x), num(g.top - 1.0)))
                            .attr("fill", s.color)
                            .titled(format!(
                                "{who}edge of stability reached at step {step} (sharpness {} ≥ 2/η)",
                                format_value(v)
                            )),
                    ),
            );
        }
    }
    svg.push(draw_key(&items, &places, &g));
    let hover = hover_x.and_then(|x| hover_at(panel, series, &g, x));
    if let Some(h) = &hover {
        let mut grp = Node::new("g", "hover")
            .attr("class", "hover")
            .attr("pointer-events", "none");
        grp.push(
            Node::new("line", "guide")
                .at("x1", h.x)
                .at("x2", h.x)
                .at("y1", g.top)
                .at("y2", g.top + ph)
                .attr("stroke", "#888")
                .attr("stroke-width", "1"),
        );
        for (k, (x, y, c)) in h.marks.iter().enumerate() {
            grp.push(
                Node::new("circle", format!("{k}"))
                    .at("cx", *x)
                    .at("cy", *y)
                    .attr("r", "5")
                    .attr("fill", c.as_str())
                    .attr("stroke", "#fff")
                    .attr("stroke-width", "2"),
            );
        }
        svg.push(grp);
    }
    (svg, hover)
}

fn frame_rect(g: &Geometry) -> Node {
    Node::new("rect", "frame")
        .at("x", g.left)
        .at("y", g.top)
        .at("width", g.pw)
        .at("height", g.ph)
        .attr("fill", "none")
        .attr("stroke", "#999")
}

/// The 2/η lines (step lines following each run's rows) with their values in
/// the right margin; the ones above the plot as ▲ and their value at its top.
fn draw_refs(svg: &mut Node, g: &Geometry) {
    let right = g.left + g.pw;
    let mut taken: Vec<f64> = Vec::new();
    for (k, r) in g.refs.iter().enumerate() {
        let v = format_value(r.last());
        let what = if r.steps.len() == 1 {
            format!("2/η = {v}")
        } else {
            format!(
                "2/η, from {} to {v} (the learning rate changes)",
                format_value(r.steps[0].1)
            )
        };
        // The value beside the plot, clear of the other values.
        let mut ty = if r.on_scale {
            g.py(r.last()) + 4.0
        } else {
            g.top + 9.0
        };
        while taken.iter().any(|t| (t - ty).abs() < FONT + 1.0) {
            ty += FONT + 1.0;
        }
        taken.push(ty);
        let mut grp = Node::new("g", format!("ref{k}")).attr("class", "two-over-lr-ref");
        if r.on_scale {
            // Flat before the first row, then each value until the next change,
            // the last to the right edge.
            let mut d = format!("M{},{}", num(g.left), num(g.py(r.steps[0].1)));
            for (i, &(step, v)) in r.steps.iter().enumerate() {
                if i > 0 {
                    d.push_str(&format!(" H{} V{}", num(g.px(step as f64)), num(g.py(v))));
                }
            }
            d.push_str(&format!(" H{}", num(right)));
            grp.push(
                Dash::Reference
                    .apply(
                        Node::new("path", "line")
                            .attr("d", d)
                            .attr("fill", "none")
                            .attr("stroke", &r.color)
                            .attr("stroke-width", Dash::Reference.width())
                            .attr("class", "two-over-lr"),
                    )
                    .titled(what),
            );
            grp.push(text("value", right + 4.0, ty, "start", &r.color, &v));
        } else {
            grp.push(
                Node::new("path", "above")
                    .attr(
                        "d",
                        format!("M{},{} l-4.5,8 h9 z", num(right + 8.5), num(ty - 9.0)),
                    )
                    .attr("fill", &r.color)
                    .attr("class", "two-over-lr-above")
                    .titled(format!("{what}: above the plot")),
            );
            grp.push(text("value", right + 14.0, ty, "start", &r.color, &v));
        }
        svg.push(grp);
    }
}

fn draw_key(items: &[KeyItem], places: &[(f64, usize)], g: &Geometry) -> Node {
    let mut key = Node::new("g", "key").attr("class", "key");
    let y0 = g.top + g.ph + X_LABELS + 12.0;
    for (i, (it, &(x, row))) in items.iter().zip(places).enumerate() {
        let y = y0 + KEY_ROW * row as f64;
        let mut item = Node::new("g", format!("k{i}"));
        match it.sample {
            Sample::Line(dash, mark) => {
                item.push(
                    dash.apply(
                        Node::new("line", "line")
                            .at("x1", x)
                            .at("x2", x + SAMPLE_W)
                            .at("y1", y - 4.0)
                            .at("y2", y - 4.0)
                            .attr("stroke", &it.color)
                            .attr("stroke-width", dash.width()),
                    ),
                );
                if mark != Mark::None {
                    item.push(mark.node("mark".into(), x + SAMPLE_W / 2.0, y - 4.0, &it.color));
                }
            }
            Sample::Eos => item.push(
                Node::new("path", "mark")
                    .attr(
                        "d",
                        format!(
                            "M{},{} l-6,-10 h12 z",
                            num(x + SAMPLE_W / 2.0),
                            num(y + 1.0)
                        ),
                    )
                    .attr("fill", &it.color),
            ),
            Sample::Above => item.push(
                Node::new("path", "mark")
                    .attr(
                        "d",
                        format!("M{},{} l-4.5,8 h9 z", num(x + SAMPLE_W / 2.0), num(y - 9.0)),
                    )
                    .attr("fill", &it.color),
            ),
        }
        item.push(text(
            "text",
            x + SAMPLE_W + 5.0,
            y,
            "start",
            "#333",
            &it.text,
        ));
        key.push(item);
    }
    key
}

/// One panel as standalone SVG text at the export size, without hover.
pub fn panel_svg(p: Panel, series: &[Series], x_max: u64) -> String {
    panel(p, series, x_max, Frame::EXPORT, None).0.to_svg()
}

/// A self-contained SVG of all four panels (2×2) with a legend of runs, for export.
pub fn figure_svg(series: &[Series], x_max: u64, caption: &str) -> String {
    let legend_h = 30.0;
    let panels: Vec<Node> = Panel::ALL
        .iter()
        .map(|p| panel(*p, series, x_max, Frame::EXPORT, None).0)
        .collect();
    let height_of = |n: &Node| {
        n.get("viewBox")
            .and_then(|v| v.split(' ').nth(3))
            .and_then(|h| h.parse::<f64>().ok())
            .unwrap_or(Frame::EXPORT.height)
    };
    let rows = [
        height_of(&panels[0]).max(height_of(&panels[1])),
        height_of(&panels[2]).max(height_of(&panels[3])),
    ];
    let (w, h) = (2.0 * Frame::EXPORT.width, legend_h + rows[0] + rows[1]);
    let mut fig = Node::new("svg", "figure")
        .attr("xmlns", "http://www.w3.org/2000/svg")
        .attr("width", num(w))
        .attr("height", num(h))
        .attr("viewBox", format!("0 0 {} {}", num(w), num(h)))
        .attr("font-family", "system-ui, sans-serif")
        .attr("font-size", FONT)
        .child(Node::new("title", "t").text(caption))
        .child(
            Node::new("rect", "bg")
                .attr("width", num(w))
                .attr("height", num(h))
                .attr("fill", "#fff"),
        )
        .child(text("caption", 12.0, 19.0, "start", "#222", caption).attr("font-weight", "600"));
    let mut x = 12.0 + 8.0 * caption.chars().count() as f64 + 16.0;
    for (i, s) in series
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.label.is_empty())
    {
        fig.push(
            Node::new("rect", format!("sw{i}"))
                .at("x", x)
                .attr("y", "9")
                .attr("width", "14")
                .attr("height", "14")
                .attr("fill", s.color),
        );
        fig.push(text(
            format!("lab{i}"),
            x + 19.0,
            20.0,
            "start",
            "#222",
            s.label,
        ));
        x += 34.0 + 7.0 * s.label.chars().count() as f64;
    }
    for (i, mut p) in panels.into_iter().enumerate() {
        let ox = (i % 2) as f64 * Frame::EXPORT.width;
        let oy = legend_h + if i >= 2 { rows[0] } else { 0.0 };
        // Nested <svg> elements, each at its place; their ids made unique.
        p.attrs.retain(|(k, _)| *k != "xmlns");
        p.key = format!("p{i}");
        p.set("x", num(ox));
        p.set("y", num(oy));
        p.set("width", num(Frame::EXPORT.width));
        p.set("height", num(height_of(&p)));
        fig.push(p);
    }
    fig.to_svg()
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
                bound_ell: Some(0.4),
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
            gap: std::f64::consts::SQRT_2,
        }
    }

    fn draw(p: Panel, series: &[Series], x_max: u64, width: f64) -> Node {
        panel(p, series, x_max, Frame::for_width(width), None).0
    }

    /// The texts of the `<text>` elements of a group.
    fn texts<'a>(n: &'a Node, group: &str) -> Vec<&'a str> {
        n.children
            .iter()
            .find(|c| c.key == group)
            .map(|g| {
                g.walk()
                    .into_iter()
                    .filter(|c| c.tag == "text")
                    .map(|c| c.text.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn attr_f(n: &Node, a: &str) -> f64 {
        n.get(a).unwrap().parse().unwrap()
    }

    #[test]
    fn ticks_and_labels_come_from_the_shared_axis_module() {
        let r = rows();
        let n = draw(Panel::Sharpness, &[lone(&r)], 2000, 480.0);
        // x: 0 … 2000 in steps of 500, as curvlab::axis::linear gives them.
        let x = axis::linear(0.0, 2000.0, 5, 1.0);
        assert_eq!(x.labels, ["0", "500", "1000", "1500", "2000"]);
        let labels = texts(&n, "labels");
        for l in &x.labels {
            assert!(labels.contains(&l.as_str()), "{l}: {labels:?}");
        }
        // Values read as the CLI writes them: three significant digits.
        assert!(n.text_content().contains("2/η = 33.3"));
    }

    #[test]
    fn text_is_font_size_at_every_width_and_the_key_wraps() {
        let r = rows();
        for w in [300.0, 358.0, 430.0, 900.0] {
            for p in Panel::ALL {
                let n = draw(p, &[lone(&r)], 40, w);
                // One unit is one CSS px: the view box is the width it is shown at.
                let vb: Vec<f64> = n
                    .get("viewBox")
                    .unwrap()
                    .split(' ')
                    .map(|v| v.parse().unwrap())
                    .collect();
                assert_eq!(vb[2], Frame::for_width(w).width);
                assert_eq!(n.get("font-size"), Some("12"));
                assert!(n.walk()[1..].iter().all(|t| t.get("font-size").is_none()));
                // Every key item ends inside the panel (estimated text width).
                let key = n.children.iter().find(|c| c.key == "key").unwrap();
                for item in &key.children {
                    let t = item.children.iter().find(|c| c.tag == "text").unwrap();
                    let end = attr_f(t, "x") + text_w(&t.text);
                    assert!(
                        end <= vb[2] + 1.0,
                        "{p:?} at {w}: '{}' ends at {end}",
                        t.text
                    );
                }
                // The title fits.
                let title = n.children.iter().find(|c| c.key == "title").unwrap();
                assert!(
                    PAD + text_w(&title.text) <= vb[2],
                    "{p:?} at {w}: {}",
                    title.text
                );
            }
        }
        // The sharpness key needs two rows at phone width, one on a desktop; the
        // panel grows by a row rather than shrinking the plot.
        let narrow = draw(Panel::Sharpness, &[lone(&r)], 40, 330.0);
        let wide = draw(Panel::Sharpness, &[lone(&r)], 40, 900.0);
        let h = |n: &Node| {
            n.get("viewBox")
                .unwrap()
                .split(' ')
                .nth(3)
                .unwrap()
                .parse::<f64>()
                .unwrap()
        };
        assert!(h(&narrow) > Frame::for_width(330.0).height);
        assert_eq!(h(&wide), Frame::for_width(900.0).height);
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
        // The ▼ sits above the plot area, not on the curve.
        let n = draw(Panel::Sharpness, &[s], 40, 480.0);
        let mark = n.find_class("eos").unwrap().children[1]
            .get("d")
            .unwrap()
            .to_string();
        let y: f64 = mark[1..]
            .split(' ')
            .next()
            .unwrap()
            .split(',')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert!(y < TOP, "{mark}");
        let r = rows_at(200.0);
        let calm = lone(&r);
        assert_eq!(edge_of_stability(&calm), None);
        assert!(!panel_svg(Panel::Sharpness, &[calm], 40).contains("reached at step"));
    }

    #[test]
    fn hover_reads_the_nearest_measurement() {
        let r = rows_at(25.0);
        let s = lone(&r);
        let f = Frame::for_width(480.0);
        let (n, none) = panel(Panel::Sharpness, &[s], 40, f, None);
        assert!(none.is_none());
        let frame = n.children.iter().find(|c| c.key == "frame").unwrap();
        let (x0, w) = (attr_f(frame, "x"), attr_f(frame, "width"));
        // Pointer a little right of step 30 (of 0 … 40): reads step 30.
        let (n, h) = panel(Panel::Sharpness, &[s], 40, f, Some(x0 + w * 0.78));
        let h = h.unwrap();
        assert_eq!(h.step, 30);
        let lines: Vec<&str> = h.lines.iter().map(|l| l.1.as_str()).collect();
        assert_eq!(lines[0], "step 30");
        assert!(lines.contains(&"Hessian 28 (residual 0.01)"), "{lines:?}");
        assert!(lines.contains(&"2/η = 25"), "{lines:?}");
        assert!(
            lines.contains(&"▼ edge of stability reached here"),
            "{lines:?}"
        );
        // The guide and one marker (no Gauss–Newton value in these rows).
        let g = n.find_class("hover").unwrap();
        assert_eq!(g.children.len(), 2);
        assert!((attr_f(&g.children[0], "x1") - (x0 + w * 0.75)).abs() < 0.06);
        // Outside the plot area it snaps to the nearest end.
        let (_, h) = panel(Panel::Sharpness, &[s], 40, f, Some(-50.0));
        assert_eq!(h.unwrap().step, 0);
        // A zero bound says why in the hover.
        let mut r0 = rows();
        r0[4].bound_b = Some(0.0);
        r0[4].bound_ell = Some(1.2);
        let (_, h) = panel(Panel::Jacobian, &[lone(&r0)], 40, f, Some(1e4));
        let lines: Vec<String> = h.unwrap().lines.into_iter().map(|l| l.1).collect();
        assert!(
            lines.contains(&"bound B 0: ℓ 1.2 > Δ/2 0.707".to_string()),
            "{lines:?}"
        );
    }

    #[test]
    fn sharpness_axis_follows_the_data_and_marks_a_far_two_over_lr() {
        // Sharpness 10 … 34 against 2/η = 200: the axis ends near 34, 2/η is ▲.
        let r = rows_at(200.0);
        let n = draw(Panel::Sharpness, &[lone(&r)], 40, 480.0);
        assert!(n.find_class("two-over-lr").is_none());
        assert!(n.find_class("two-over-lr-above").is_some());
        assert!(n.text_content().contains("2/η = 200, above the plot"));
        let labels = texts(&n, "labels");
        let top: f64 = labels
            .iter()
            .filter(|l| **l != "step")
            .filter_map(|l| l.parse::<f64>().ok())
            .fold(0.0, f64::max);
        assert!((30.0..=40.0).contains(&top), "{labels:?}");
        // 2/η = 50 is within reach (≤ 2.5 × 34): drawn, and the axis extends to it.
        let r = rows_at(50.0);
        let n = draw(Panel::Sharpness, &[lone(&r)], 40, 480.0);
        assert!(n.find_class("two-over-lr").is_some());
        let top: f64 = texts(&n, "labels")
            .iter()
            .filter_map(|l| l.parse::<f64>().ok())
            .fold(0.0, f64::max);
        assert!(top >= 40.0, "{top}");
    }

    #[test]
    fn gauss_newton_stays_visible_on_an_equal_hessian() {
        let mut r = rows();
        for row in &mut r {
            row.gn_sharpness = row.sharpness.map(|h| h * 0.998);
        }
        let n = draw(Panel::Sharpness, &[lone(&r)], 40, 480.0);
        let run = n.find_class("run").unwrap();
        // Drawn after (on top of) the Hessian, dotted, with white-filled rings.
        let keys: Vec<&str> = run.children.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["l0", "m0", "l1", "m1"]);
        assert!(run.children[2].get("stroke-dasharray").is_some());
        assert!(run.children[3]
            .children
            .iter()
            .all(|c| c.get("fill") == Some("#fff")));
        assert!(
            n.text_content()
                .contains("Gauss–Newton (≈ Hessian, within 0.2 %)"),
            "{}",
            n.text_content()
        );
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
        let n = draw(Panel::Sharpness, &[s], 40, 480.0);
        // One step line: flat at 50, down at step 20 to 25, on to the right edge.
        let line = n
            .find_class("two-over-lr")
            .unwrap()
            .get("d")
            .unwrap()
            .to_string();
        assert_eq!(line.matches(" V").count(), 1, "{line}");
        assert_eq!(line.matches(" H").count(), 2, "{line}");
        let svg = n.to_svg();
        assert!(svg.contains("2/η, from 50 to 25"), "{svg}");
        assert!(n.text_content().contains("2/η 50 → 25"));
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
        let n = draw(Panel::Sharpness, &[a, c], 40, 480.0);
        assert_eq!(n.to_svg().matches(r#"class="two-over-lr""#).count(), 2);
        // Both values in the right margin, apart.
        let ys: Vec<f64> = n
            .walk()
            .into_iter()
            .filter(|c| c.key == "value")
            .map(|c| attr_f(c, "y"))
            .collect();
        assert_eq!(ys.len(), 2);
        assert!((ys[0] - ys[1]).abs() >= FONT, "{ys:?}");
        assert!(n.text_content().contains("2/η = 40"));
    }

    #[test]
    fn the_bound_is_drawn_only_where_it_is_positive() {
        let mut r = rows();
        for row in &mut r[..3] {
            row.bound_b = Some(0.0);
            row.bound_ell = Some(1.1);
        }
        let n = draw(Panel::Jacobian, &[lone(&r)], 40, 480.0);
        let run = n.find_class("run").unwrap();
        let b = run.children.iter().find(|c| c.key == "l2").unwrap();
        assert_eq!(b.get("points").unwrap().split(' ').count(), 2);
        // Zero at the latest row: no line, and the key says why.
        for row in &mut r {
            row.bound_b = Some(0.0);
            row.bound_ell = Some(1.1);
        }
        let n = draw(Panel::Jacobian, &[lone(&r)], 40, 480.0);
        let run = n.find_class("run").unwrap();
        assert!(run.children.iter().all(|c| c.key != "l2"));
        assert!(
            n.text_content()
                .contains("bound B = 0 so far: ℓ 1.1 > Δ/2 0.707"),
            "{}",
            n.text_content()
        );
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
        assert_eq!(fig.matches("<svg").count(), 5);
    }

    #[test]
    fn log_axis_ignores_non_positive_losses() {
        let mut r = rows();
        r[2].train_loss_kl = Some(0.0);
        r[3].train_loss_kl = Some(f64::NAN);
        let n = draw(Panel::Loss, &[lone(&r)], 40, 480.0);
        let train = n.find_class("line-train").unwrap();
        assert_eq!(train.get("points").unwrap().split(' ').count(), 3);
        // The range is the data's (0.2 … 1.2), not whole decades: the y labels.
        let labels: Vec<&str> = n
            .children
            .iter()
            .find(|c| c.key == "labels")
            .unwrap()
            .children
            .iter()
            .filter(|c| c.key.starts_with('y'))
            .map(|c| c.text.as_str())
            .collect();
        assert!(
            labels.contains(&"0.2") && labels.contains(&"1"),
            "{labels:?}"
        );
        assert!(
            !labels.contains(&"0.01") && !labels.contains(&"10"),
            "{labels:?}"
        );
    }
}
