//! Charts for the analytics page, drawn on the server as inline SVG (no script, no library):
//! bars for a histogram or a ranking, and stacked bars per day. Labels are escaped.

use std::fmt::Write;

const WIDTH: f64 = 640.0;
const BAR_AREA: f64 = 180.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An `<svg>` element's start, with its title for screen readers.
fn open_svg(svg: &mut String, title: &str, height: f64) {
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = escape(title)
    );
}

/// What a chart with nothing to show says.
fn empty(title: &str) -> String {
    format!(
        r#"<p class="quiet chart-empty" aria-label="{}">No data for this period.</p>"#,
        escape(title)
    )
}

/// Vertical bars, one per (label, value), with the value on hover and every `label_every`-th
/// label under its bar.
pub fn bars(title: &str, data: &[(String, f64)], label_every: usize) -> String {
    if data.is_empty() {
        return empty(title);
    }
    let mut svg = String::new();
    let n = data.len().max(1) as f64;
    let max = data.iter().map(|d| d.1).fold(0.0f64, f64::max).max(1e-9);
    let step = WIDTH / n;
    open_svg(&mut svg, title, BAR_AREA + 30.0);
    for (i, (label, value)) in data.iter().enumerate() {
        let h = (value / max) * BAR_AREA;
        let x = i as f64 * step;
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" class="bar"><title>{l}: {value}</title></rect>"#,
            y = BAR_AREA - h,
            w = (step - 2.0).max(1.0),
            l = escape(label),
        );
        if label_every > 0 && i % label_every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{x:.1}" y="{y}" class="axis">{l}</text>"#,
                y = BAR_AREA + 16.0,
                l = escape(label)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars for a ranking: (label, count), the largest first.
pub fn ranking(title: &str, data: &[(String, i64)]) -> String {
    if data.is_empty() {
        return empty(title);
    }
    let row = 22.0;
    let max = data.iter().map(|d| d.1).max().unwrap_or(1).max(1) as f64;
    let mut svg = String::new();
    open_svg(&mut svg, title, row * data.len().max(1) as f64 + 4.0);
    for (i, (label, count)) in data.iter().enumerate() {
        let y = i as f64 * row;
        let w = (*count as f64 / max) * (WIDTH - 220.0);
        let _ = write!(
            svg,
            r#"<text x="0" y="{ty:.1}" class="axis">{l}</text><rect x="200" y="{y:.1}" width="{w:.1}" height="{bh}" class="bar"/><text x="{cx:.1}" y="{ty:.1}" class="axis">{count}</text>"#,
            ty = y + 15.0,
            l = escape(label),
            bh = row - 6.0,
            cx = 206.0 + w,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Stacked bars per day: (day label, [(series, value)]), series in the same order every day.
pub fn stacked(title: &str, days: &[(String, Vec<(&'static str, i64)>)]) -> String {
    if days.is_empty() {
        return empty(title);
    }
    let n = days.len().max(1) as f64;
    let max = days
        .iter()
        .map(|(_, s)| s.iter().map(|v| v.1).sum::<i64>())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let step = WIDTH / n;
    let mut svg = String::new();
    open_svg(&mut svg, title, BAR_AREA + 30.0);
    let every = (days.len() / 8).max(1);
    for (i, (label, series)) in days.iter().enumerate() {
        let x = i as f64 * step;
        let mut top = BAR_AREA;
        for (name, value) in series {
            let h = *value as f64 / max * BAR_AREA;
            top -= h;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{top:.1}" width="{w:.1}" height="{h:.1}" class="bar {name}"><title>{l} {name}: {value}</title></rect>"#,
                w = (step - 2.0).max(1.0),
                l = escape(label),
            );
        }
        if i % every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{x:.1}" y="{y}" class="axis">{l}</text>"#,
                y = BAR_AREA + 16.0,
                l = escape(label)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_bars_scale_to_the_largest() {
        let svg = bars("t", &[("<a>".into(), 2.0), ("b".into(), 4.0)], 1);
        assert!(svg.contains("&lt;a&gt;") && !svg.contains("<a>"));
        assert!(svg.contains(r#"height="180.0""#), "{svg}");
        assert!(svg.contains(r#"height="90.0""#), "{svg}");
        let r = ranking("top", &[("billing".into(), 3)]);
        assert!(r.contains("billing") && r.contains(">3<"));
        assert!(ranking("top", &[]).contains("No data"));
    }
}
