//! Drawing the report's figures, as PNG and SVG from the same code: a row or
//! a column of panels sharing an x-axis, with error bars, reference lines and
//! one legend band below the panels (font, colours and axes: [`crate::chart`]).

use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::chart::{ensure_font, font, Axis, GRID_BOLD, GRID_LIGHT};
pub use crate::chart::{DARK, PALETTE};

const TITLE_H: u32 = 40;
const TICK_FONT: f64 = 14.0;
const DESC_FONT: f64 = 16.0;
const CAPTION_FONT: f64 = 17.0;
const LEGEND_FONT: f64 = 14.0;
const LEGEND_ROW: u32 = 22;
const LEGEND_SAMPLE: i32 = 34;

/// Marker drawn at each point of a line.
#[derive(Clone, Copy, Debug)]
pub enum Marker {
    None,
    Circle,
    Triangle,
    Square,
}

impl Marker {
    pub fn nth(i: usize) -> Marker {
        [Marker::Circle, Marker::Triangle, Marker::Square][i % 3]
    }
}

/// One curve: points (x, y, ±error) in data units.
#[derive(Clone, Debug)]
pub struct Line {
    pub label: String,
    pub color: RGBColor,
    pub dashed: bool,
    pub marker: Marker,
    pub points: Vec<(f64, f64, Option<f64>)>,
    /// Listed in the legend.
    pub in_legend: bool,
}

/// One chart of a figure.
#[derive(Clone, Debug)]
pub struct Panel {
    pub caption: String,
    pub y_desc: String,
    pub lines: Vec<Line>,
    /// Log y-axis (when every value is positive).
    pub log_y: bool,
}

/// The x-axis shared by the panels.
#[derive(Clone, Debug)]
pub enum XAxis {
    /// Ticks at given positions with given labels (swept values).
    Ticks {
        desc: String,
        ticks: Vec<(f64, String)>,
    },
    /// A plain numeric axis (step, epoch).
    Numeric { desc: String },
}

/// Panels side by side (sweep figures) or stacked (time series).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Row,
    Column,
}

/// A figure: title, x-axis, panels.
#[derive(Clone, Debug)]
pub struct Figure {
    pub title: String,
    pub x: XAxis,
    pub panels: Vec<Panel>,
    pub layout: Layout,
    /// Size of one panel in pixels.
    pub panel_size: (u32, u32),
}

impl Figure {
    /// Writes `stem.png` and `stem.svg`, each atomically ([`curvlab::atomic`]).
    pub fn write(&self, stem: &Path) -> Result<()> {
        ensure_font();
        let size = self.size();
        crate::chart::write_png(&stem.with_extension("png"), size, |root| self.draw(root))?;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
            self.draw(&root)?;
            root.present()?;
        }
        curvlab::atomic::write(&stem.with_extension("svg"), svg.as_bytes())?;
        Ok(())
    }

    fn legend_entries(&self) -> Vec<&Line> {
        let mut seen: Vec<&Line> = Vec::new();
        for p in &self.panels {
            for l in &p.lines {
                if l.in_legend && !seen.iter().any(|s| s.label == l.label) {
                    seen.push(l);
                }
            }
        }
        seen
    }

    /// Legend rows for a given width: entries with their widths, packed.
    fn legend_rows(&self, width: u32) -> Vec<Vec<(&Line, u32)>> {
        let mut rows: Vec<Vec<(&Line, u32)>> = vec![];
        let mut used = 0;
        for l in self.legend_entries() {
            // ~0.55 em per character is DejaVu Sans's average advance.
            let w = (l.label.chars().count() as f64 * LEGEND_FONT * 0.58) as u32
                + LEGEND_SAMPLE as u32
                + 28;
            if rows.is_empty() || used + w > width.saturating_sub(40) {
                rows.push(vec![]);
                used = 0;
            }
            used += w;
            rows.last_mut().expect("a row").push((l, w));
        }
        rows
    }

    fn size(&self) -> (u32, u32) {
        let n = self.panels.len().max(1) as u32;
        let (pw, ph) = self.panel_size;
        let w = if self.layout == Layout::Row {
            pw * n
        } else {
            pw
        };
        let legend = self.legend_rows(w).len() as u32 * LEGEND_ROW + 12;
        let h = if self.layout == Layout::Row {
            ph
        } else {
            ph * n
        };
        (w, TITLE_H + h + legend)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let (w, _) = root.dim_in_pixel();
        let (title_area, rest) = root.split_vertically(TITLE_H);
        title_area.draw(&Text::new(
            self.title.clone(),
            (w as i32 / 2, TITLE_H as i32 / 2 + 4),
            TextStyle::from(font(19.0))
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        let n = self.panels.len().max(1) as u32;
        let body_h = match self.layout {
            Layout::Row => self.panel_size.1,
            Layout::Column => self.panel_size.1 * n,
        };
        let (body, legend) = rest.split_vertically(body_h);
        let areas = match self.layout {
            Layout::Row => body.split_evenly((1, n as usize)),
            Layout::Column => body.split_evenly((n as usize, 1)),
        };
        let xr = self.x_range();
        for (p, area) in self.panels.iter().zip(&areas) {
            self.draw_panel(area, p, xr)?;
        }
        self.draw_legend(&legend)?;
        Ok(())
    }

    /// The x-range of all data (and ticks), padded.
    fn x_range(&self) -> (f64, f64) {
        let mut xs: Vec<f64> = self
            .panels
            .iter()
            .flat_map(|p| p.lines.iter().flat_map(|l| l.points.iter().map(|q| q.0)))
            .filter(|x| x.is_finite())
            .collect();
        // Room for tick labels at the ends: a third of the closest spacing.
        let mut label_pad: f64 = 0.0;
        if let XAxis::Ticks { ticks, .. } = &self.x {
            xs.extend(ticks.iter().map(|t| t.0));
            let mut pos: Vec<f64> = ticks.iter().map(|t| t.0).collect();
            pos.sort_by(f64::total_cmp);
            let gap = pos
                .windows(2)
                .map(|w| w[1] - w[0])
                .filter(|g| *g > 0.0)
                .fold(f64::INFINITY, f64::min);
            if gap.is_finite() {
                label_pad = gap / 3.0;
            }
        }
        let (lo, hi) = xs
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(*x), b.max(*x))
            });
        if lo > hi {
            return (0.0, 1.0);
        }
        let pad = if hi > lo {
            (0.06 * (hi - lo)).max(label_pad)
        } else {
            0.5
        };
        (lo - pad, hi + pad)
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        p: &Panel,
        xr: (f64, f64),
    ) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let ys: Vec<f64> = p
            .lines
            .iter()
            .flat_map(|l| {
                l.points.iter().flat_map(|&(_, y, e)| {
                    let e = e.unwrap_or(0.0);
                    [y - e, y, y + e]
                })
            })
            .filter(|y| y.is_finite())
            .collect();
        let log =
            p.log_y && !ys.is_empty() && p.lines.iter().all(|l| l.points.iter().all(|q| q.1 > 0.0));
        let tf = |v: f64| if log { v.log10() } else { v };
        let vals: Vec<f64> = ys
            .iter()
            .copied()
            .filter(|v| !log || *v > 0.0)
            .map(tf)
            .collect();
        let (lo, hi) = vals
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
                (a.min(*y), b.max(*y))
            });
        let (lo, hi) = if lo > hi {
            (0.0, 1.0)
        } else if hi - lo < 1e-12 * hi.abs().max(1e-300) {
            let d = if log { 0.3 } else { 0.1 * hi.abs().max(1e-3) };
            (lo - d, hi + d)
        } else {
            let pad = 0.06 * (hi - lo);
            (lo - pad, hi + pad)
        };
        let yaxis = if log {
            Axis::log(lo, hi)
        } else {
            Axis::linear(lo, hi, 5, 0.0)
        };
        let xaxis = match &self.x {
            XAxis::Ticks { ticks, .. } => Axis::custom(xr.0, xr.1, ticks.clone()),
            XAxis::Numeric { .. } => Axis::linear(xr.0, xr.1, 5, 0.0),
        };
        let x_desc = match &self.x {
            XAxis::Ticks { desc, .. } | XAxis::Numeric { desc } => desc.clone(),
        };
        let mut chart = ChartBuilder::on(area)
            .caption(&p.caption, font(CAPTION_FONT))
            .margin_top(6)
            .margin_left(8)
            .margin_right(20)
            .margin_bottom(4)
            .x_label_area_size(46)
            .y_label_area_size(72)
            .build_cartesian_2d(xaxis.clone(), yaxis.clone())?;
        let xfmt = |v: &f64| xaxis.label(*v);
        let yfmt = |v: &f64| yaxis.label(*v);
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(&p.y_desc)
            .x_label_formatter(&xfmt)
            .y_label_formatter(&yfmt)
            .label_style(font(TICK_FONT))
            .axis_desc_style(font(DESC_FONT))
            .bold_line_style(GRID_BOLD)
            .light_line_style(GRID_LIGHT)
            .draw()?;
        if vals.is_empty() {
            let (w, h) = chart.plotting_area().dim_in_pixel();
            chart.plotting_area().strip_coord_spec().draw(&Text::new(
                "no data",
                (w as i32 / 2, h as i32 / 2),
                TextStyle::from(font(16.0))
                    .color(&DARK)
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            ))?;
            return Ok(());
        }
        let (ylo, yhi) = (yaxis.lo, yaxis.hi);
        let clamp = |v: f64| v.clamp(ylo, yhi);
        for l in &p.lines {
            let pts: Vec<(f64, f64)> = l
                .points
                .iter()
                .filter(|q| q.0.is_finite() && q.1.is_finite() && (!log || q.1 > 0.0))
                .map(|q| (q.0, tf(q.1)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            let style = l.color.stroke_width(2);
            if l.dashed {
                chart.draw_series(DashedLineSeries::new(pts.clone(), 8, 5, style))?;
            } else {
                chart.draw_series(LineSeries::new(pts.clone(), style))?;
            }
            // Error bars: ±e in value space, clipped to the axis.
            for q in &l.points {
                let Some(e) = q.2.filter(|e| *e > 0.0 && e.is_finite()) else {
                    continue;
                };
                if !(q.0.is_finite() && q.1.is_finite()) {
                    continue;
                }
                let top = clamp(tf(q.1 + e));
                let bottom = if log && q.1 - e <= 0.0 {
                    ylo
                } else {
                    clamp(tf(q.1 - e))
                };
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(q.0, bottom), (q.0, top)],
                    l.color.stroke_width(1),
                )))?;
                let cap = |y: f64| {
                    EmptyElement::at((q.0, y))
                        + PathElement::new(vec![(-4, 0), (4, 0)], l.color.stroke_width(1))
                };
                chart.draw_series([cap(bottom), cap(top)])?;
            }
            if pts.len() <= 60 {
                let fill = l.color.filled();
                match l.marker {
                    Marker::None => {}
                    Marker::Circle => {
                        chart.draw_series(pts.iter().map(|&c| Circle::new(c, 4, fill)))?;
                    }
                    Marker::Triangle => {
                        chart.draw_series(pts.iter().map(|&c| TriangleMarker::new(c, 5, fill)))?;
                    }
                    Marker::Square => {
                        chart.draw_series(pts.iter().map(|&c| {
                            EmptyElement::at(c) + Rectangle::new([(-4, -4), (4, 4)], fill)
                        }))?;
                    }
                }
            }
        }
        Ok(())
    }

    fn draw_legend<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let (w, _) = area.dim_in_pixel();
        let style = TextStyle::from(font(LEGEND_FONT))
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (r, row) in self.legend_rows(w).iter().enumerate() {
            let total: u32 = row.iter().map(|e| e.1).sum();
            let mut x = (w.saturating_sub(total) / 2) as i32;
            let y = 6 + r as i32 * LEGEND_ROW as i32 + LEGEND_ROW as i32 / 2;
            for (l, ew) in row {
                let s = l.color.stroke_width(2);
                if l.dashed {
                    for k in 0..3 {
                        area.draw(&PathElement::new(
                            vec![(x + 12 * k, y), (x + 12 * k + 8, y)],
                            s,
                        ))?;
                    }
                } else {
                    area.draw(&PathElement::new(vec![(x, y), (x + LEGEND_SAMPLE, y)], s))?;
                }
                let c = (x + LEGEND_SAMPLE / 2, y);
                let fill = l.color.filled();
                match l.marker {
                    Marker::None => {}
                    Marker::Circle => area.draw(&Circle::new(c, 4, fill))?,
                    Marker::Triangle => area.draw(&TriangleMarker::new(c, 5, fill))?,
                    Marker::Square => area.draw(&Rectangle::new(
                        [(c.0 - 4, c.1 - 4), (c.0 + 4, c.1 + 4)],
                        fill,
                    ))?,
                }
                area.draw(&Text::new(
                    l.label.clone(),
                    (x + LEGEND_SAMPLE + 8, y),
                    style.clone(),
                ))?;
                x += *ew as i32;
            }
        }
        Ok(())
    }
}
