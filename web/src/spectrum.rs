//! The spectrum panels (issue 14; `docs/measurements.md` "Spectrum extras"),
//! as SVG text from a run's rows, which the core measured in the worker:
//!
//! - [`density_svg`]: the Hessian's spectral density by stochastic Lanczos
//!   quadrature at the latest measurement that has one (the first one faded
//!   behind it), on a log scale, with λ_max marked and the Hutch++ trace ±
//!   its standard error below;
//! - [`layers_svg`]: λ_max of each layer's diagonal Hessian block and
//!   Gauss–Newton block at that measurement, as bars: the terms of the
//!   paper's eq. 4, layer by layer.
//!
//! Pure functions of the rows (tested natively); the page redraws them with
//! the other plots. Ticks come from `curvlab::axis`.

use std::fmt::Write as _;

use curvlab::axis;
use curvlab::record::{ByName, MetricsRow};

/// View box of a panel (the mechanism panels' size: 14 units stay legible on a phone).
pub const WIDTH: f64 = 400.0;
pub const HEIGHT: f64 = 300.0;
const FONT: f64 = 14.0;
const LEFT: f64 = 50.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 72.0;
/// The density's log axis spans this many decades below its peak.
const DECADES: f64 = 7.0;
/// Bars drawn in the per-layer panel (the largest, kept in θ order).
const MAX_BARS: usize = 8;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn open(out: &mut String, id: &str, title: &str) {
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="t-{id}" class="panel" data-panel="{id}" font-family="system-ui, sans-serif" font-size="{FONT}"><title id="t-{id}">{t}</title><rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/><text x="14" y="21" font-weight="600" fill="#222">{t}</text>"##,
        t = esc(title)
    );
}

fn empty(out: &mut String, note: &str) {
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let _ = write!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/><text x="{cx:.1}" y="{cy:.1}" text-anchor="middle" fill="#666" class="note">{n}</text></svg>"##,
        cx = LEFT + pw / 2.0,
        cy = TOP + ph / 2.0,
        n = esc(note)
    );
}

/// The rows that carry a density (grid and values of one length ≥ 2).
fn with_density(rows: &[MetricsRow]) -> Vec<(&MetricsRow, &[f64], &[f64])> {
    rows.iter()
        .filter_map(|r| {
            let (g, d) = (r.density_grid.as_deref()?, r.density.as_deref()?);
            (g.len() == d.len() && g.len() >= 2).then_some((r, g, d))
        })
        .collect()
}

/// The density panel of one run (see the module docs); `note` fills the
/// panel while no row has a density.
pub fn density_svg(rows: &[MetricsRow], color: &str, note: &str) -> String {
    let mut out = String::new();
    open(
        &mut out,
        "density",
        "Spectrum of the Hessian (density, log scale)",
    );
    let dens = with_density(rows);
    let Some(&(last, grid, density)) = dens.last() else {
        empty(&mut out, note);
        return out;
    };
    let first = dens.first().filter(|f| f.0.step != last.step).copied();
    let peak = density
        .iter()
        .chain(first.iter().flat_map(|f| f.2.iter()))
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    if peak <= 0.0 {
        empty(&mut out, "the density has no positive value");
        return out;
    }
    let (x0, x1) = [grid]
        .into_iter()
        .chain(first.map(|f| f.1))
        .flat_map(|g| [g[0], g[g.len() - 1]])
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
    let (y1, y0) = (peak.log10().ceil(), peak.log10().ceil() - DECADES);
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let px = |x: f64| LEFT + pw * (x - x0) / (x1 - x0).max(1e-300);
    let py = |v: f64| {
        let l = if v > 0.0 { v.log10().max(y0) } else { y0 };
        TOP + ph * (1.0 - (l - y0) / (y1 - y0))
    };
    // Ticks.
    let xt = axis::linear(x0, x1, 5, 0.0);
    for (&t, l) in xt.major.iter().zip(&xt.labels) {
        let x = px(t);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{yb:.1}" stroke="#eee"/><text x="{x:.1}" y="{ty:.1}" text-anchor="middle" fill="#444">{l}</text>"##,
            yb = TOP + ph,
            ty = TOP + ph + 16.0
        );
    }
    let yt = axis::log(10f64.powf(y0), 10f64.powf(y1));
    for (&t, l) in yt.major.iter().zip(&yt.labels) {
        if t <= 0.0 {
            continue;
        }
        let y = py(t);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{xr:.1}" y2="{y:.1}" stroke="#eee"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="end" fill="#444" font-size="12">{l}</text>"##,
            xr = LEFT + pw,
            tx = LEFT - 4.0,
            ty = y + 4.0
        );
    }
    let _ = write!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##
    );
    let poly = |g: &[f64], d: &[f64]| -> String {
        g.iter()
            .zip(d)
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(&x, &y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if let Some((f, g, d)) = first {
        let _ = write!(
            out,
            r##"<polyline class="density-first" fill="none" stroke="#aaa" stroke-width="1.4" stroke-dasharray="5 3" points="{}"><title>density at step {}</title></polyline>"##,
            poly(g, d),
            f.step
        );
    }
    let _ = write!(
        out,
        r##"<polyline class="density" fill="none" stroke="{color}" stroke-width="2" stroke-linejoin="round" points="{}"><title>density at step {}</title></polyline>"##,
        poly(grid, density),
        last.step
    );
    if let Some(l) = last
        .sharpness
        .filter(|l| l.is_finite() && *l >= x0 && *l <= x1)
    {
        let x = px(l);
        let _ = write!(
            out,
            r##"<line class="lambda-max" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{yb:.1}" stroke="#222" stroke-width="1" stroke-dasharray="2 3"><title>λ_max = {v}</title></line><text x="{tx:.1}" y="{ty:.1}" text-anchor="end" fill="#222">λ_max</text>"##,
            yb = TOP + ph,
            tx = x - 3.0,
            ty = TOP + 14.0,
            v = axis::format_value(l)
        );
    }
    // What is drawn, under the frame.
    let earlier = first
        .map(|(f, ..)| format!(" · dashed: step {}", f.step))
        .unwrap_or_default();
    let trace = match (last.trace, last.trace_se) {
        (Some(t), Some(se)) => format!(
            " · trace {} ± {} (Hutch++)",
            axis::format_value(t),
            axis::format_value(se)
        ),
        _ => String::new(),
    };
    let _ = write!(
        out,
        r##"<text x="{LEFT}" y="{y1:.1}" fill="#333">eigenvalue · <tspan fill="{color}">━</tspan> step {s}{earlier}</text><text x="{LEFT}" y="{y2:.1}" fill="#333" class="density-text"><title>SLQ: {dp} products; Hutch++: {tp} products</title>σ = {sigma}{trace}</text>"##,
        y1 = TOP + ph + 36.0,
        y2 = TOP + ph + 56.0,
        s = last.step,
        sigma = axis::format_value(last.density_sigma.unwrap_or(f64::NAN)),
        dp = last.density_products.unwrap_or(0),
        tp = last.trace_products.unwrap_or(0),
    );
    out.push_str("</svg>");
    out
}

/// The blocks to draw: every block when they fit, else the [`MAX_BARS`]
/// of largest Hessian value (Gauss–Newton where the Hessian's is absent), in θ order.
fn bars(h: Option<&ByName>, g: Option<&ByName>) -> Vec<(String, Option<f64>, Option<f64>)> {
    let names: Vec<&String> = h
        .or(g)
        .map(|b| b.0.iter().map(|p| &p.0).collect())
        .unwrap_or_default();
    let mut all: Vec<(String, Option<f64>, Option<f64>)> = names
        .iter()
        .map(|n| {
            let v = |b: Option<&ByName>| b.and_then(|b| b.get(n)).filter(|v| v.is_finite());
            (n.to_string(), v(h), v(g))
        })
        .collect();
    if all.len() > MAX_BARS {
        let mut by: Vec<usize> = (0..all.len()).collect();
        let key = |i: usize| all[i].1.or(all[i].2).unwrap_or(f64::NEG_INFINITY);
        by.sort_by(|&a, &b| key(b).total_cmp(&key(a)));
        let mut keep: Vec<usize> = by[..MAX_BARS].to_vec();
        keep.sort();
        all = keep.into_iter().map(|i| all[i].clone()).collect();
    }
    all
}

/// The per-layer panel of one run (see the module docs); `note` fills the
/// panel while no row has per-layer values.
pub fn layers_svg(rows: &[MetricsRow], color: &str, note: &str) -> String {
    let mut out = String::new();
    open(
        &mut out,
        "layers",
        "Sharpness layer by layer (eq. 4's terms)",
    );
    let Some(last) = rows
        .iter()
        .rev()
        .find(|r| r.layer_sharpness.is_some() || r.gn_layer_sharpness.is_some())
    else {
        empty(&mut out, note);
        return out;
    };
    let total = last
        .layer_sharpness
        .as_ref()
        .or(last.gn_layer_sharpness.as_ref())
        .map_or(0, |b| b.0.len());
    let bars = bars(
        last.layer_sharpness.as_ref(),
        last.gn_layer_sharpness.as_ref(),
    );
    let hi = bars
        .iter()
        .flat_map(|b| [b.1, b.2])
        .flatten()
        .chain(last.sharpness.filter(|v| v.is_finite()))
        .fold(0.0f64, f64::max);
    if bars.is_empty() || hi <= 0.0 {
        empty(&mut out, note);
        return out;
    }
    // Names on the left, bars to the right on a shared linear axis from 0.
    let label_w = 112.0;
    let (x0, pw) = (14.0 + label_w, WIDTH - 14.0 - label_w - RIGHT);
    let ph = HEIGHT - TOP - BOTTOM;
    let xt = axis::linear(0.0, hi * 1.05, 4, 0.0);
    let top = xt.major.last().copied().unwrap_or(hi).max(hi * 1.05);
    let px = |v: f64| x0 + pw * v.max(0.0) / top;
    for (&t, l) in xt.major.iter().zip(&xt.labels) {
        let x = px(t);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{yb:.1}" stroke="#eee"/><text x="{x:.1}" y="{ty:.1}" text-anchor="middle" fill="#444">{l}</text>"##,
            yb = TOP + ph,
            ty = TOP + ph + 16.0
        );
    }
    let slot = ph / bars.len() as f64;
    let bh = (slot * 0.36).min(12.0);
    for (i, (name, h, g)) in bars.iter().enumerate() {
        let yc = TOP + slot * (i as f64 + 0.5);
        let shown: String = if name.chars().count() > 14 {
            format!(
                "…{}",
                name.chars()
                    .rev()
                    .take(13)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<String>()
            )
        } else {
            name.clone()
        };
        let _ = write!(
            out,
            r##"<text x="{tx:.1}" y="{ty:.1}" text-anchor="end" fill="#333"><title>{n}</title>{s}</text>"##,
            tx = x0 - 6.0,
            ty = yc + 5.0,
            n = esc(name),
            s = esc(&shown)
        );
        if let Some(h) = h {
            let _ = write!(
                out,
                r##"<rect class="bar-hessian" data-layer="{n}" x="{x0:.1}" y="{y:.1}" width="{w:.1}" height="{bh:.1}" fill="{color}"><title>{n}: λ_max(H_ll) = {v}</title></rect>"##,
                n = esc(name),
                y = yc - bh - 1.0,
                w = px(*h) - x0,
                v = axis::format_value(*h)
            );
        }
        if let Some(g) = g {
            let _ = write!(
                out,
                r##"<rect class="bar-gn" data-layer="{n}" x="{x0:.1}" y="{y:.1}" width="{w:.1}" height="{bh:.1}" fill="#fff" stroke="{color}" stroke-width="1.5"><title>{n}: λ_max(G_ll) = {v}</title></rect>"##,
                n = esc(name),
                y = yc + 1.0,
                w = (px(*g) - x0).max(0.0),
                v = axis::format_value(*g)
            );
        }
    }
    if let Some(l) = last.sharpness.filter(|v| v.is_finite()) {
        let x = px(l);
        let _ = write!(
            out,
            r##"<line class="lambda-max" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{yb:.1}" stroke="#222" stroke-dasharray="2 3"><title>λ_max of the whole Hessian = {v}</title></line>"##,
            yb = TOP + ph,
            v = axis::format_value(l)
        );
    }
    let of = if total > bars.len() {
        format!(" ({} of {total} layers)", bars.len())
    } else {
        String::new()
    };
    let _ = write!(
        out,
        r##"<text x="14" y="{y1:.1}" fill="#333">step {s}: <tspan fill="{color}">■</tspan> Hessian block H_ll · □ Gauss–Newton G_ll</text><text x="14" y="{y2:.1}" fill="#555" font-size="13">dotted: λ_max of the whole Hessian{of}</text>"##,
        y1 = TOP + ph + 36.0,
        y2 = TOP + ph + 56.0,
        s = last.step
    );
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: u64, top: f64) -> MetricsRow {
        let grid: Vec<f64> = (0..64)
            .map(|k| -1.0 + (top + 2.0) * k as f64 / 63.0)
            .collect();
        let s = 0.05;
        let g = |x: f64, m: f64| (-(x - m).powi(2) / (2.0 * s * s)).exp() / (s * 2.5066);
        MetricsRow {
            step,
            sharpness: Some(top),
            density: Some(
                grid.iter()
                    .map(|&x| 0.99 * g(x, 0.0) + 0.01 * g(x, top))
                    .collect(),
            ),
            density_grid: Some(grid),
            density_sigma: Some(s),
            density_products: Some(60),
            trace: Some(12.5),
            trace_se: Some(0.5),
            trace_products: Some(30),
            layer_sharpness: Some(ByName(vec![
                ("layers.0".into(), 0.5 * top),
                ("layers.1".into(), 0.8 * top),
                ("layers.2".into(), 0.3 * top),
            ])),
            gn_layer_sharpness: Some(ByName(vec![
                ("layers.0".into(), 0.4 * top),
                ("layers.1".into(), 0.7 * top),
                ("layers.2".into(), 0.3 * top),
            ])),
            ..Default::default()
        }
    }

    #[test]
    fn density_panel_draws_latest_and_first() {
        let rows = vec![
            row(0, 3.0),
            MetricsRow {
                step: 10,
                ..Default::default()
            },
            row(20, 6.0),
        ];
        let svg = density_svg(&rows, "#0072B2", "waiting");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches(r#"class="density""#).count(), 1, "{svg}");
        assert_eq!(svg.matches(r#"class="density-first""#).count(), 1);
        assert!(svg.contains("density at step 20") && svg.contains("dashed: step 0"));
        assert!(svg.contains("trace 12.5 ± 0.5 (Hutch++)"), "{svg}");
        assert!(svg.contains("Hutch++: 30 products"), "{svg}");
        assert!(svg.contains(r#"class="lambda-max""#));
        // Every drawn y lies in the frame: the log axis floors the tails.
        let pts = svg.split(r#"points=""#).skip(1).flat_map(|p| {
            p.split('"')
                .next()
                .unwrap()
                .split(' ')
                .map(str::to_string)
                .collect::<Vec<_>>()
        });
        for p in pts {
            let y: f64 = p.split(',').nth(1).unwrap().parse().unwrap();
            assert!((TOP - 0.05..=HEIGHT - BOTTOM + 0.05).contains(&y), "{p}");
        }
        let one = density_svg(&rows[..1], "#0072B2", "waiting");
        assert!(!one.contains("density-first"), "one density: nothing faded");
        let none = density_svg(
            &[MetricsRow::default()],
            "#0072B2",
            "waiting for the spectrum",
        );
        assert!(none.contains("waiting for the spectrum") && !none.contains("<polyline"));
    }

    #[test]
    fn layer_panel_has_a_bar_per_block() {
        let rows = vec![row(0, 3.0), row(20, 10.0)];
        let svg = layers_svg(&rows, "#D55E00", "waiting");
        assert_eq!(svg.matches(r#"class="bar-hessian""#).count(), 3);
        assert_eq!(svg.matches(r#"class="bar-gn""#).count(), 3);
        assert!(svg.contains("layers.1: λ_max(H_ll) = 8"), "{svg}");
        assert!(svg.contains("step 20:"));
        // Many blocks: the largest, in θ order.
        let names: Vec<(String, f64)> = (0..12).map(|l| (format!("b{l}"), l as f64)).collect();
        let b = bars(Some(&ByName(names)), None);
        let kept: Vec<&str> = b.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(kept, ["b4", "b5", "b6", "b7", "b8", "b9", "b10", "b11"]);
        let none = layers_svg(&[MetricsRow::default()], "#000", "per-layer is off");
        assert!(none.contains("per-layer is off") && !none.contains("<rect class"));
    }
}
