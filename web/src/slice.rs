//! The mechanism panel: the loss along the top Hessian eigenvector through
//! the current θ (computed by the core, [`curvlab::slice`]) with one gradient
//! descent step drawn on it, as SVG text. Below 2/η the step lands inside the
//! valley; at 2/η it lands on the opposite wall at the same height, and the
//! next step comes back: gradient descent bounces between the walls.

use std::fmt::Write as _;

use curvlab::slice::LossSlice;

use curvlab::axis::format_value;

/// View box of the panel (narrower than the line plots, so its text stays
/// legible on a phone: 14 units are ≥ 12 px from 343 px of width up).
pub const WIDTH: f64 = 400.0;
pub const HEIGHT: f64 = 300.0;
const FONT: f64 = 15.0;
const LEFT: f64 = 14.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 74.0;

/// Where a GD step lands relative to the valley of the slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Landing {
    /// 0 < 1 − ηλ < 1: on the same side, closer to the floor.
    Closer,
    /// −1 < 1 − ηλ ≤ 0 (and not near −1): across the floor, lower on the far wall.
    Across,
    /// 1 − ηλ ≈ −1: on the far wall at the same height (the edge of stability).
    Bounce,
    /// 1 − ηλ < −1: higher on the far wall (sharper than 2/η: the loss along u grows).
    Climbs,
}

impl Landing {
    /// Classifies a step by c = 1 − ηλ; within 10 % of −1 counts as a bounce.
    pub fn of(contraction: f64) -> Landing {
        if (contraction + 1.0).abs() <= 0.1 {
            Landing::Bounce
        } else if contraction < -1.0 {
            Landing::Climbs
        } else if contraction <= 0.0 {
            Landing::Across
        } else {
            Landing::Closer
        }
    }

    /// One sentence for the caption.
    pub fn sentence(self) -> &'static str {
        match self {
            Landing::Closer => "the step lands inside the valley, on the same side, closer to its floor",
            Landing::Across => "the step crosses the floor and lands lower on the far wall",
            Landing::Bounce => "the step lands on the far wall at the same height: GD bounces between the walls (edge of stability)",
            Landing::Climbs => "the step lands higher on the far wall: along u the loss grows (sharper than 2/η)",
        }
    }

    /// Short class name (CSS hook and test handle).
    pub fn id(self) -> &'static str {
        match self {
            Landing::Closer => "closer",
            Landing::Across => "across",
            Landing::Bounce => "bounce",
            Landing::Climbs => "climbs",
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The panel as a standalone `<svg>`; `None` draws the empty panel with `note`.
pub fn slice_svg(slice: Option<&LossSlice>, color: &str, note: &str) -> String {
    let mut out = String::new();
    let title = "Why GD stops at 2/η: the loss along u";
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="t-mechanism" class="panel" data-panel="mechanism" font-family="system-ui, sans-serif" font-size="{FONT}"><title id="t-mechanism">{t}</title><rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/><text x="{LEFT}" y="21" font-weight="600" fill="#222">{t}</text>"##,
        t = esc(title)
    );
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let Some(s) = slice.filter(|s| s.t.len() >= 2) else {
        let _ = write!(
            out,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/><text x="{cx:.1}" y="{cy:.1}" text-anchor="middle" fill="#666">{n}</text></svg>"##,
            cx = LEFT + pw / 2.0,
            cy = TOP + ph / 2.0,
            n = esc(note)
        );
        return out;
    };
    let (t0, t1) = (s.t[0], s.t[s.t.len() - 1]);
    let lo = s
        .loss
        .iter()
        .chain([&s.loss_step, &s.loss0])
        .cloned()
        .fold(f64::INFINITY, f64::min);
    let hi = s
        .loss
        .iter()
        .chain([&s.loss_step, &s.loss0])
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = (hi - lo).max(1e-12 * hi.abs().max(1e-30)) * 0.08;
    let (lo, hi) = (lo - pad, hi + pad);
    let px = |t: f64| LEFT + pw * (t - t0) / (t1 - t0);
    let py = |l: f64| TOP + ph * (1.0 - (l - lo) / (hi - lo));
    let _ = write!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#bbb"/>"##
    );
    // The quadratic model ℓ₀ + (g·u)t + ½λt², clipped to the frame: what λ alone predicts.
    let mut model = String::new();
    for i in 0..=60 {
        let t = t0 + (t1 - t0) * i as f64 / 60.0;
        let l = s.loss0 + s.slope * t + 0.5 * s.curvature * t * t;
        if l <= hi && l >= lo {
            let _ = write!(model, "{:.1},{:.1} ", px(t), py(l));
        }
    }
    if !model.is_empty() {
        let _ = write!(
            out,
            r##"<polyline class="quadratic" fill="none" stroke="#999" stroke-width="1.4" stroke-dasharray="5 4" points="{}"><title>ℓ(θ) + (g·u)t + ½λt², λ = {}</title></polyline>"##,
            model.trim_end(),
            format_value(s.curvature)
        );
    }
    let pts: Vec<String> =
        s.t.iter()
            .zip(&s.loss)
            .map(|(&t, &l)| format!("{:.1},{:.1}", px(t), py(l)))
            .collect();
    let _ = write!(
        out,
        r##"<polyline class="slice" fill="none" stroke="{color}" stroke-width="2.6" stroke-linejoin="round" points="{}"><title>ℓ(θ + t·u) along the top eigenvector u</title></polyline>"##,
        pts.join(" ")
    );
    // θ now, the step, where it lands.
    let (x0, y0) = (px(0.0), py(s.loss0));
    let (x1, y1) = (px(s.t_step), py(s.loss_step));
    let lift = 26.0f64.min(y0.min(y1) - TOP - 4.0).max(8.0);
    let _ = write!(
        out,
        r##"<defs><marker id="arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#222"/></marker></defs><path class="gd-step" d="M{x0:.1},{y0:.1} Q{mx:.1},{my:.1} {x1:.1},{y1:.1}" fill="none" stroke="#222" stroke-width="1.6" marker-end="url(#arrowhead)"><title>one GD step: t moves by −η·(g·u) = {ts}</title></path><circle cx="{x0:.1}" cy="{y0:.1}" r="6" fill="{color}" stroke="#fff" stroke-width="1.5"><title>θ now: loss {l0}</title></circle><circle class="landing" cx="{x1:.1}" cy="{y1:.1}" r="6" fill="#fff" stroke="#222" stroke-width="2"><title>after one GD step: loss along u {l1}</title></circle>"##,
        mx = (x0 + x1) / 2.0,
        my = y0.min(y1) - lift,
        ts = format_value(s.t_step),
        l0 = format_value(s.loss0),
        l1 = format_value(s.loss_step)
    );
    // Labels under the frame, never on the curve.
    let c = s.contraction();
    let landing = Landing::of(c);
    let _ = write!(
        out,
        r##"<text x="{LEFT}" y="{y:.1}" fill="#333">t along u · <tspan fill="{color}">●</tspan> θ now · ○ after one GD step</text><text x="{LEFT}" y="{y2:.1}" fill="#222" class="landing-text" data-landing="{id}">λ = {l}, 2/η = {two}: 1 − ηλ = {c}</text><text x="{LEFT}" y="{y3:.1}" fill="#555" font-size="14">{why}</text>"##,
        y = TOP + ph + 19.0,
        y2 = TOP + ph + 40.0,
        y3 = TOP + ph + 60.0,
        id = landing.id(),
        l = format_value(s.curvature),
        two = format_value(2.0 / s.lr),
        c = format_value(c),
        why = esc(short(landing))
    );
    out.push_str("</svg>");
    out
}

/// The caption's second line (fits the panel's width).
fn short(l: Landing) -> &'static str {
    match l {
        Landing::Closer => "below 2/η: the step lands inside the valley",
        Landing::Across => "below 2/η: the step crosses the floor, lands lower",
        Landing::Bounce => "at 2/η: the step bounces between the walls",
        Landing::Climbs => "above 2/η: the step lands higher — unstable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parabola(lambda: f64, lr: f64) -> LossSlice {
        let slope = -0.5;
        let t: Vec<f64> = (0..21).map(|i| -1.0 + 0.1 * i as f64).collect();
        let loss = t
            .iter()
            .map(|t| 1.0 + slope * t + 0.5 * lambda * t * t)
            .collect();
        let t_step = -lr * slope;
        LossSlice {
            t,
            loss,
            loss0: 1.0,
            slope,
            curvature: lambda,
            lr,
            t_step,
            loss_step: 1.0 + slope * t_step + 0.5 * lambda * t_step * t_step,
            t_vertex: Some(-slope / lambda),
        }
    }

    #[test]
    fn landing_follows_one_minus_eta_lambda() {
        assert_eq!(Landing::of(1.0 - 0.1 * 5.0), Landing::Closer);
        assert_eq!(Landing::of(1.0 - 0.1 * 15.0), Landing::Across);
        assert_eq!(Landing::of(1.0 - 0.1 * 20.0), Landing::Bounce);
        assert_eq!(Landing::of(1.0 - 0.1 * 25.0), Landing::Climbs);
    }

    #[test]
    fn draws_the_slice_the_step_and_says_where_it_lands() {
        let s = parabola(20.0, 0.1);
        let svg = slice_svg(Some(&s), "#0072B2", "");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(
            svg.matches("<polyline").count(),
            2,
            "slice and its quadratic model"
        );
        assert!(svg.contains(r#"data-landing="bounce""#), "{svg}");
        assert!(svg.contains("2/η = 20"));
        assert!(svg.contains("bounces between the walls"));
        let calm = slice_svg(Some(&parabola(5.0, 0.1)), "#0072B2", "");
        assert!(calm.contains(r#"data-landing="closer""#));
        let empty = slice_svg(None, "#0072B2", "waiting for the first sharpness estimate");
        assert!(empty.contains("waiting for the first sharpness estimate"));
        assert!(!empty.contains("<polyline"));
    }
}
