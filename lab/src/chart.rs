//! What every figure of the lab shares (the run plot, [`crate::plot`], and
//! the report's figures): the embedded font, the colours, and [`Axis`], a
//! plotters coordinate whose ticks and labels come from [`curvlab::axis`]
//! (the same ticks as the browser's plots).
//!
//! Text is DejaVu Sans, embedded (`lab/assets/DejaVuSans.ttf`, see
//! `lab/assets/README.md`) and registered as plotters' "sans-serif", so the
//! PNGs do not depend on the fonts of the machine; an SVG names the family,
//! so viewers use theirs.

use std::path::Path;
use std::sync::Once;

use curvlab::axis::{self, Ticks};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static FONT_INIT: Once = Once::new();

/// Registers the embedded font as plotters' "sans-serif", once per process.
pub fn ensure_font() {
    FONT_INIT.call_once(|| {
        // A font that fails to parse surfaces as a font error from the first
        // text drawn, which the figure's writer returns.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT_BYTES);
    });
}

/// Draws a picture of `size` pixels in memory with `draw`, encodes it as a
/// PNG, and only then writes it to `path`, atomically
/// ([`curvlab::atomic::write`]): the file is the whole picture or the one
/// before, never half a PNG, and a failure (a full disk) is one line naming
/// the file.
pub fn write_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use image::ImageEncoder;
    ensure_font();
    let (w, h) = size;
    let mut pixels = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        draw(&root)
            .and_then(|()| root.present().map_err(anyhow::Error::from))
            .map_err(|e| anyhow::anyhow!("{}: cannot draw the figure: {e}", path.display()))?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&pixels, w, h, image::ColorType::Rgb8)
        .map_err(|e| anyhow::anyhow!("{}: cannot encode the PNG: {e}", path.display()))?;
    curvlab::atomic::write(path, &png)?;
    Ok(())
}

/// The embedded font at `size` pixels.
pub fn font(size: f64) -> FontDesc<'static> {
    ("sans-serif", size).into_font()
}

/// Okabe–Ito colour-blind-safe palette (then darker variants).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0x33, 0x33, 0x33),
    RGBColor(0x80, 0x4D, 0x00),
    RGBColor(0x00, 0x4D, 0x73),
    RGBColor(0x8C, 0x8C, 0x00),
];
pub const BLUE: RGBColor = PALETTE[0];
pub const VERMILLION: RGBColor = PALETTE[1];
pub const GREEN: RGBColor = PALETTE[2];
pub const PURPLE: RGBColor = PALETTE[3];
pub const ORANGE: RGBColor = PALETTE[4];
pub const SKY: RGBColor = PALETTE[5];
/// Reference lines (2/η) and text.
pub const DARK: RGBColor = RGBColor(0x33, 0x33, 0x33);
/// Grid lines at major and minor ticks.
pub const GRID_BOLD: RGBColor = RGBColor(0xDD, 0xDD, 0xDD);
pub const GRID_LIGHT: RGBColor = RGBColor(0xF2, 0xF2, 0xF2);

/// An x- or y-axis: its range in plotted units (log10 of the value on a log
/// axis), tick positions in the same units, and their labels. Majors are the
/// bold grid lines and the labels, minors the light grid lines.
#[derive(Clone, Debug)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub major: Vec<f64>,
    pub minor: Vec<f64>,
    labels: Vec<String>,
    log: bool,
}

impl Axis {
    /// [`axis::linear`] ticks over [lo, hi]: about `target` of them, never
    /// closer than `min_step` (1 for steps).
    pub fn linear(lo: f64, hi: f64, target: usize, min_step: f64) -> Axis {
        Axis::from_ticks(lo, hi, axis::linear(lo, hi, target, min_step), false)
    }

    /// A log10 axis over [lo, hi] in decades, with [`axis::log`] ticks.
    pub fn log(lo: f64, hi: f64) -> Axis {
        let t = axis::log(10f64.powf(lo), 10f64.powf(hi));
        Axis::from_ticks(lo, hi, t, true)
    }

    /// Ticks at given positions, labelled as given (swept values).
    pub fn custom(lo: f64, hi: f64, ticks: Vec<(f64, String)>) -> Axis {
        Axis {
            lo,
            hi,
            major: ticks.iter().map(|t| t.0).collect(),
            labels: ticks.into_iter().map(|t| t.1).collect(),
            minor: vec![],
            log: false,
        }
    }

    fn from_ticks(lo: f64, hi: f64, t: Ticks, log: bool) -> Axis {
        let plotted = |v: &Vec<f64>| -> Vec<f64> {
            v.iter()
                .filter(|x| !log || **x > 0.0)
                .map(|x| if log { x.log10() } else { *x })
                .collect()
        };
        let keep: Vec<bool> = t.major.iter().map(|x| !log || *x > 0.0).collect();
        Axis {
            lo,
            hi,
            major: plotted(&t.major),
            minor: plotted(&t.minor),
            labels: t
                .labels
                .into_iter()
                .zip(keep)
                .filter_map(|(l, k)| k.then_some(l))
                .collect(),
            log,
        }
    }

    /// The label of the tick at `t` (plotted units); a position that is not a
    /// tick gets its value to three significant digits.
    pub fn label(&self, t: f64) -> String {
        let tol = 1e-9 * (self.hi - self.lo).abs().max(1e-12);
        match self.major.iter().position(|m| (m - t).abs() <= tol) {
            Some(i) => self.labels[i].clone(),
            None => axis::format_value(if self.log { 10f64.powf(t) } else { t }),
        }
    }
}

/// Linear in plotted units, mapped to pixels as plotters maps its own f64
/// coordinates.
impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let frac = (v - self.lo) / (self.hi - self.lo);
        let len = (limit.1 - limit.0) as f64;
        if !frac.is_finite() {
            return if frac > 0.0 { limit.1 } else { limit.0 };
        }
        limit.0 + (len * frac + 1e-3 * len.signum()).trunc() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.major.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_take_their_ticks_from_core() {
        let x = Axis::linear(-0.5, 1000.0, 8, 1.0);
        assert_eq!(x.major.first(), Some(&0.0));
        assert_eq!(x.label(200.0), "200");
        // A log axis holds log10 positions and labels the values.
        let y = Axis::log(-2.2, 0.5);
        assert!(y.major.len() >= 2, "{:?}", y.major);
        let i = y.major.iter().position(|m| m.abs() < 1e-12).unwrap();
        assert_eq!(y.label(y.major[i]), "1");
        let y = Axis::log(0.35, 0.37);
        assert!(y.major.len() >= 2, "{:?}", y.major);
        assert_eq!(y.major.len(), y.labels.len());
        let c = Axis::custom(0.0, 2.0, vec![(0.0, "0".into()), (1.0, "1e-4".into())]);
        assert_eq!(c.label(1.0), "1e-4");
        assert_eq!(c.label(0.5), "0.5");
        // Pixels: the ends of the range map to the ends of the limit.
        assert_eq!(x.map(&x.lo, (10, 110)), 10);
        assert_eq!(x.map(&x.hi, (10, 110)), 110);
    }
}
