//! The data panel of the mechanism, as SVG text: for 2-D data the points
//! over the model's decision regions (as TensorFlow Playground draws them,
//! computed by the core's forward pass on a grid, [`curvlab::regions`]),
//! with the examples of largest Jacobian norm ringed; for images, those
//! examples themselves. Theorem 5.1 in one picture: where two examples of
//! different classes sit close together, the boundary between them must be
//! steep — the network's output changes fast there, its Jacobian is large.

use std::fmt::Write as _;

use curvlab::mechanism::JacobianExample;
use curvlab::regions::Regions;

use crate::plot::PALETTE;
use crate::protocol::Thumb;
use curvlab::axis::format_value;

/// View box (square plot area plus a caption).
pub const WIDTH: f64 = 400.0;
pub const HEIGHT: f64 = 300.0;
const FONT: f64 = 15.0;
const TOP: f64 = 32.0;
const SIDE: f64 = 210.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn open(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="t-regions" class="panel" data-panel="regions" font-family="system-ui, sans-serif" font-size="{FONT}"><title id="t-regions">{t}</title><rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/><text x="14" y="21" font-weight="600" fill="#222">{t}</text>"##,
        t = esc(title)
    );
}

/// Class colour (the palette, skipping black for the rings).
fn class_color(k: usize) -> &'static str {
    PALETTE[k % (PALETTE.len() - 1)]
}

/// 2-D data: regions (one rect per run of equal cells in a row, opacity by
/// confidence), the points, and rings around the largest-Jacobian examples.
pub fn plane_svg(
    regions: Option<&Regions>,
    points: &[[f32; 2]],
    labels: &[u32],
    top: &[JacobianExample],
    classes: usize,
) -> String {
    let mut out = String::new();
    open(&mut out, "Decision regions and the largest ‖J‖");
    let x0 = 14.0;
    let Some(g) = regions else {
        let _ = write!(
            out,
            r##"<text x="14" y="{y}" fill="#666">waiting for the first measurement</text></svg>"##,
            y = TOP + SIDE / 2.0
        );
        return out;
    };
    let b = g.bounds;
    let px = |x: f64| x0 + SIDE * (x - b.x0) / (b.x1 - b.x0);
    let py = |y: f64| TOP + SIDE * (1.0 - (y - b.y0) / (b.y1 - b.y0));
    let (cw, ch) = (SIDE / g.nx as f64, SIDE / g.ny as f64);
    let floor = 1.0 / classes.max(2) as f32;
    out.push_str(r#"<g class="regions" shape-rendering="crispEdges">"#);
    for r in 0..g.ny {
        let y = TOP + SIDE - (r + 1) as f64 * ch;
        let mut c = 0;
        while c < g.nx {
            let i = r * g.nx + c;
            let (k, conf) = (g.class[i], g.confidence[i]);
            // Opacity in steps of 0.1 so that neighbouring cells merge.
            let level = |conf: f32| ((conf - floor) / (1.0 - floor)).clamp(0.0, 1.0) * 5.0;
            let q = level(conf).round();
            let mut end = c + 1;
            while end < g.nx
                && g.class[r * g.nx + end] == k
                && level(g.confidence[r * g.nx + end]).round() == q
            {
                end += 1;
            }
            let _ = write!(
                out,
                r#"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" fill="{f}" fill-opacity="{o:.2}"/>"#,
                x = x0 + c as f64 * cw,
                w = (end - c) as f64 * cw + 0.05,
                h = ch + 0.05,
                f = class_color(k as usize),
                o = 0.12 + 0.08 * q
            );
            c = end;
        }
    }
    out.push_str("</g>");
    let _ = write!(
        out,
        r##"<rect x="{x0:.1}" y="{TOP}" width="{SIDE}" height="{SIDE}" fill="none" stroke="#999"/>"##
    );
    out.push_str(r#"<g class="points">"#);
    for (p, &y) in points.iter().zip(labels) {
        let _ = write!(
            out,
            r##"<circle cx="{:.1}" cy="{:.1}" r="2.6" fill="{}" stroke="#fff" stroke-width="0.6"/>"##,
            px(f64::from(p[0])),
            py(f64::from(p[1])),
            class_color(y as usize)
        );
    }
    out.push_str("</g>");
    for (rank, e) in top.iter().enumerate() {
        let Some(p) = points.get(e.index) else {
            continue;
        };
        let (cx, cy) = (px(f64::from(p[0])), py(f64::from(p[1])));
        let _ = write!(
            out,
            r##"<g class="top-jacobian"><circle cx="{cx:.1}" cy="{cy:.1}" r="7.5" fill="none" stroke="#000" stroke-width="2"><title>example {i} (class {k}): ‖J‖ = {n}, rank {r}</title></circle><text x="{tx:.1}" y="{ty:.1}" font-size="14" font-weight="700" fill="#000">{r}</text></g>"##,
            i = e.index,
            k = e.label,
            n = format_value(e.norm),
            r = rank + 1,
            tx = cx + 8.0,
            ty = cy - 7.0
        );
    }
    // The key, right of the plane.
    let kx = x0 + SIDE + 14.0;
    let lines = [
        "ringed: largest ‖J‖.",
        "They sit where",
        "classes meet: the",
        "output must change",
        "fast there (Thm 5.1).",
    ];
    for (i, l) in lines.iter().enumerate() {
        let _ = write!(
            out,
            r##"<text x="{kx:.1}" y="{y:.1}" fill="#333" font-size="14">{l}</text>"##,
            y = TOP + 14.0 + 18.0 * i as f64,
            l = esc(l)
        );
    }
    for (rank, e) in top.iter().enumerate().take(5) {
        let _ = write!(
            out,
            r##"<text x="{kx:.1}" y="{y:.1}" fill="#222" font-size="14">{r}. ‖J‖ = {n}</text>"##,
            y = TOP + 116.0 + 18.0 * rank as f64,
            r = rank + 1,
            n = format_value(e.norm)
        );
    }
    let _ = write!(
        out,
        r##"<text x="14" y="{y:.1}" fill="#555" font-size="14">shade: predicted class, darker where surer</text></svg>"##,
        y = TOP + SIDE + 34.0
    );
    out
}

/// Image data: the examples of largest Jacobian norm, with class and norm.
pub fn images_svg(top: &[JacobianExample], thumbs: &[Thumb], class_names: &[&str]) -> String {
    let mut out = String::new();
    open(&mut out, "The training images of largest ‖J‖");
    if thumbs.is_empty() {
        let _ = write!(
            out,
            r##"<text x="14" y="{y}" fill="#666">waiting for the first measurement</text></svg>"##,
            y = TOP + 60.0
        );
        return out;
    }
    let size = 66.0;
    for (i, (e, t)) in top.iter().zip(thumbs).enumerate() {
        let x = 14.0 + i as f64 * (size + 9.0);
        let name = class_names
            .get(e.label as usize)
            .copied()
            .unwrap_or("class");
        let _ = write!(
            out,
            r##"<g class="top-jacobian"><image x="{x:.1}" y="{y:.1}" width="{size}" height="{size}" preserveAspectRatio="none" style="image-rendering:pixelated" href="data:image/bmp;base64,{b}"><title>example {idx} ({name}): ‖J‖ = {n}</title></image><text x="{x:.1}" y="{ty:.1}" font-size="14" fill="#222">{name}</text><text x="{x:.1}" y="{ty2:.1}" font-size="14" fill="#444">{n}</text></g>"##,
            y = TOP + 12.0,
            b = base64(&bmp(&t.rgb, 32, 32)),
            idx = e.index,
            n = format_value(e.norm),
            ty = TOP + size + 30.0,
            ty2 = TOP + size + 47.0,
        );
    }
    let _ = write!(
        out,
        r##"<text x="14" y="{y:.1}" fill="#555" font-size="14">the output is most sensitive to these inputs</text></svg>"##,
        y = TOP + size + 90.0
    );
    out
}

/// A 24-bit BMP of `rgb` (`[h, w, 3]`, top row first).
pub fn bmp(rgb: &[u8], w: usize, h: usize) -> Vec<u8> {
    let row = (3 * w).div_ceil(4) * 4;
    let size = 54 + row * h;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(b"BM");
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&54u32.to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&(w as i32).to_le_bytes());
    out.extend_from_slice(&(h as i32).to_le_bytes()); // positive: bottom row first
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&24u16.to_le_bytes());
    out.extend_from_slice(&[0; 24]);
    for y in (0..h).rev() {
        for x in 0..w {
            let p = &rgb[3 * (y * w + x)..3 * (y * w + x) + 3];
            out.extend_from_slice(&[p[2], p[1], p[0]]);
        }
        out.resize(out.len() + row - 3 * w, 0);
    }
    out
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use curvlab::regions::Bounds;

    #[test]
    fn base64_and_bmp() {
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
        let b = bmp(&[255, 0, 0, 0, 0, 255], 2, 1);
        assert_eq!(&b[..2], b"BM");
        assert_eq!(b.len(), 54 + 8);
        assert_eq!(&b[54..60], &[0, 0, 255, 255, 0, 0], "BGR order");
    }

    #[test]
    fn plane_draws_regions_points_and_rings() {
        let g = Regions {
            bounds: Bounds {
                x0: 0.0,
                x1: 1.0,
                y0: 0.0,
                y1: 1.0,
            },
            nx: 4,
            ny: 2,
            class: vec![0, 0, 1, 1, 0, 0, 0, 1],
            confidence: vec![0.9; 8],
        };
        let pts = [[0.1f32, 0.1], [0.9, 0.9]];
        let top = [JacobianExample {
            index: 1,
            label: 1,
            norm: 2.5,
        }];
        let svg = plane_svg(Some(&g), &pts, &[0, 1], &top, 2);
        // Runs of equal cells merge: row 0 has 2 rects, row 1 has 2.
        let regions = svg.split(r#"<g class="regions""#).nth(1).unwrap();
        let regions = regions.split("</g>").next().unwrap();
        assert_eq!(regions.matches("<rect").count(), 4);
        assert_eq!(svg.matches(r#"r="2.6""#).count(), 2);
        assert!(svg.contains("‖J‖ = 2.5"));
        assert!(svg.matches("class=\"top-jacobian\"").count() == 1);
        let waiting = plane_svg(None, &pts, &[0, 1], &[], 2);
        assert!(waiting.contains("waiting"));
    }

    #[test]
    fn images_embed_bitmaps() {
        let top = [JacobianExample {
            index: 3,
            label: 2,
            norm: 0.7,
        }];
        let thumbs = [Thumb {
            index: 3,
            rgb: vec![128; 3 * 32 * 32],
        }];
        let svg = images_svg(&top, &thumbs, &["airplane", "automobile", "bird"]);
        assert!(svg.contains("data:image/bmp;base64,Qk"));
        assert!(svg.contains("bird"));
    }
}
