//! A small hand-written SVG line chart: stacked panels sharing one time axis,
//! each with its own y axis, ticks, labels and a legend.

use std::fmt::Write as _;

/// Width of the whole picture, px.
const WIDTH: f64 = 900.0;
/// Height of one panel including its margins, px.
const PANEL_HEIGHT: f64 = 260.0;
/// Space above the first panel for the title.
const TITLE_SPACE: f64 = 40.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 46.0;
const BOTTOM: f64 = 42.0;
const TICKS: usize = 5;

/// One line: a name for the legend, a colour and (x, y) points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Stroke colour (any SVG colour).
    pub color: &'static str,
    /// Points, x ascending.
    pub points: Vec<(f64, f64)>,
}

/// One panel: a title, y-axis label and its lines.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Panel title.
    pub title: String,
    /// Y-axis label (with unit).
    pub y_label: String,
    /// The lines drawn.
    pub series: Vec<Series>,
}

/// Escapes text for SVG content and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A round tick step near `span / TICKS` (1, 2 or 5 times a power of ten).
fn nice_step(span: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / TICKS as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let m = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Renders the panels stacked under `title`, all sharing the x range
/// `[0, x_max]` labelled `x_label`. Non-finite points are skipped.
pub fn render(title: &str, x_label: &str, x_max: f64, panels: &[Panel]) -> String {
    let height = TITLE_SPACE + PANEL_HEIGHT * panels.len().max(1) as f64;
    let mut s = String::with_capacity(16 * 1024);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    let x_max = if x_max.is_finite() && x_max > 0.0 {
        x_max
    } else {
        1.0
    };
    for (i, p) in panels.iter().enumerate() {
        let top = TITLE_SPACE + PANEL_HEIGHT * i as f64;
        panel(&mut s, p, top, x_label, x_max);
    }
    s.push_str("</svg>\n");
    s
}

/// The plot area of one panel, px, and the data ranges it shows.
struct Frame {
    /// Left edge of the plot area.
    x0: f64,
    /// Right edge of the plot area.
    x1: f64,
    /// Bottom of the plot area.
    y0: f64,
    /// Top of the plot area.
    y1: f64,
    /// The x range shown is `[0, x_max]`.
    x_max: f64,
    /// The y range shown is `[0, y_max]`, a whole number of `step_y`.
    y_max: f64,
    /// Y tick step.
    step_y: f64,
}

impl Frame {
    /// The frame of panel `p` whose top is at `top`, the y range rounded up
    /// to a tick above its largest finite value.
    fn new(p: &Panel, top: f64, x_max: f64) -> Self {
        let y_data_max = p
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|pt| pt.1))
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let step_y = nice_step(if y_data_max > 0.0 { y_data_max } else { 1.0 });
        Self {
            x0: LEFT,
            x1: WIDTH - RIGHT,
            y0: top + PANEL_HEIGHT - BOTTOM,
            y1: top + TOP,
            x_max,
            y_max: (y_data_max / step_y).ceil().max(1.0) * step_y,
            step_y,
        }
    }

    /// Data x to picture x.
    fn sx(&self, x: f64) -> f64 {
        self.x0 + (x / self.x_max).clamp(0.0, 1.0) * (self.x1 - self.x0)
    }

    /// Data y to picture y.
    fn sy(&self, y: f64) -> f64 {
        self.y0 - (y / self.y_max).clamp(0.0, 1.0) * (self.y0 - self.y1)
    }
}

/// Draws panel `p`, its top at `top`: title, grid, ticks, axes, lines and
/// legend.
fn panel(s: &mut String, p: &Panel, top: f64, x_label: &str, x_max: f64) {
    let f = Frame::new(p, top, x_max);
    let _ = writeln!(s, r#"<g class="panel">"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-weight="bold">{}</text>"#,
        f.x0,
        top + 18.0,
        escape(&p.title)
    );
    y_grid(s, &f);
    x_ticks(s, &f);
    axes(s, &f, x_label, &p.y_label);
    lines_and_legend(s, &f, p, top);
    s.push_str("</g>\n");
}

/// Grid and y ticks.
fn y_grid(s: &mut String, f: &Frame) {
    let (x0, x1) = (f.x0, f.x1);
    let mut v = 0.0;
    while v <= f.y_max + f.step_y * 1e-9 {
        let y = f.sy(v);
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#e4e4e4"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            x0 - 6.0,
            y + 4.0,
            fmt_tick(v)
        );
        v += f.step_y;
    }
}

/// X ticks.
fn x_ticks(s: &mut String, f: &Frame) {
    let y0 = f.y0;
    let step_x = nice_step(f.x_max);
    let mut v = 0.0;
    while v <= f.x_max + step_x * 1e-9 {
        let x = f.sx(v);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{}" stroke="black"/>"#,
            y0 + 4.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            y0 + 16.0,
            fmt_tick(v)
        );
        v += step_x;
    }
}

/// Axes and their labels.
fn axes(s: &mut String, f: &Frame, x_label: &str, y_label: &str) {
    let (x0, x1, y0, y1) = (f.x0, f.x1, f.y0, f.y1);
    let _ = writeln!(
        s,
        r#"<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/>"#
    );
    let _ = writeln!(
        s,
        r#"<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="black"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (x0 + x1) / 2.0,
        y0 + 32.0,
        escape(x_label)
    );
    let ym = (y0 + y1) / 2.0;
    let _ = writeln!(
        s,
        r#"<text x="16" y="{ym}" text-anchor="middle" transform="rotate(-90 16 {ym})">{}</text>"#,
        escape(y_label)
    );
}

/// Lines and legend.
fn lines_and_legend(s: &mut String, f: &Frame, p: &Panel, top: f64) {
    for (k, series) in p.series.iter().enumerate() {
        let pts: Vec<String> = series
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", f.sx(x), f.sy(y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            series.color,
            pts.join(" ")
        );
        let lx = f.x1 - 190.0;
        let ly = top + 14.0 + 14.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="3"/>"#,
            ly - 4.0,
            lx + 18.0,
            ly - 4.0,
            series.color
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{ly}">{}</text>"#,
            lx + 24.0,
            escape(&series.name)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(hay: &str, needle: &str) -> usize {
        hay.matches(needle).count()
    }

    #[test]
    fn svg_is_well_formed_with_every_point() {
        let panels = vec![
            Panel {
                title: "latency <per height>".into(),
                y_label: "ms".into(),
                series: vec![Series {
                    name: "p50 & max".into(),
                    color: "steelblue",
                    points: (0..37)
                        .map(|i| (f64::from(i) * 0.5, f64::from(i % 7)))
                        .collect(),
                }],
            },
            Panel {
                title: "throughput".into(),
                y_label: "per second".into(),
                series: vec![
                    Series {
                        name: "heights/s".into(),
                        color: "green",
                        points: (0..20).map(|i| (f64::from(i), 60.0)).collect(),
                    },
                    Series {
                        name: "tx/s".into(),
                        color: "red",
                        points: vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0)],
                    },
                ],
            },
        ];
        let svg = render("bench \"4 validators\"", "seconds", 18.5, &panels);
        assert!(svg.starts_with("<svg "));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(count(&svg, "<svg"), 1);
        assert_eq!(count(&svg, "<g "), count(&svg, "</g>"));
        assert_eq!(count(&svg, "<g "), 2);
        assert_eq!(count(&svg, "<text"), count(&svg, "</text>"));
        assert_eq!(count(&svg, "<polyline"), 3);
        let polylines: Vec<usize> = svg
            .lines()
            .filter(|l| l.starts_with("<polyline"))
            .map(|l| {
                let pts = l.split("points=\"").nth(1).unwrap();
                let pts = pts.split('"').next().unwrap();
                pts.split_whitespace().count()
            })
            .collect();
        assert_eq!(polylines, [37, 20, 2], "NaN points are skipped");
        // Text is escaped: no raw '<' or '&' inside text content.
        assert!(svg.contains("latency &lt;per height&gt;"));
        assert!(svg.contains("p50 &amp; max"));
        assert!(svg.contains("bench &quot;4 validators&quot;"));
        // Every element opened with '<' is closed: count self-closing and paired tags.
        let opens = count(&svg, "<") - count(&svg, "</");
        let closes = count(&svg, "/>") + count(&svg, "</");
        assert_eq!(opens, closes);
    }

    #[test]
    fn nice_steps() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.abs().max(1.0);
        assert!(close(nice_step(100.0), 20.0));
        assert!(close(nice_step(7.0), 2.0));
        assert!(close(nice_step(0.3), 0.1));
        assert!(close(nice_step(40.0), 10.0));
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(f64::NAN), 1.0);
    }

    #[test]
    fn empty_panels_still_render() {
        let svg = render(
            "t",
            "s",
            0.0,
            &[Panel {
                title: "x".into(),
                y_label: "y".into(),
                series: vec![],
            }],
        );
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"));
    }
}
