//! The 总览 bar chart as SVG, drawn on the server: no script, no external font, nothing to
//! fetch. Pure: counts in, markup out; every name is escaped here, since the result is put
//! into the page as it is.

use super::board::CollegeCount;

/// Escapes text for SVG/HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Each college takes two lines: its name, then its bar with the counts. Stacked this way
/// the chart is narrow enough to stay legible on a phone (the SVG scales to the width).
const ROW: u32 = 46;
const BAR: u32 = 400;
const COUNT: u32 = 80;
const WIDTH: u32 = BAR + COUNT;

/// A horizontal stacked bar per college: applied (dark) then not applied (light), scaled to
/// the largest college, with the counts written out so the chart reads without colour.
pub fn college_bars(rows: &[CollegeCount]) -> String {
    if rows.is_empty() {
        return "<p>名册中没有支部。</p>".to_string();
    }
    let max = rows
        .iter()
        .map(|r| r.applied + r.not_applied)
        .max()
        .unwrap_or(0)
        .max(1);
    let height = ROW * rows.len() as u32 + 4;
    let mut s = format!(
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg"><title id="chart-title">各学院已申报与未申报的支部数</title>"#
    );
    for (i, r) in rows.iter().enumerate() {
        let y = i as u32 * ROW;
        let bar_y = y + 22;
        let applied_w = r.applied * BAR / max;
        let not_w = r.not_applied * BAR / max;
        let name = esc(&shorten(&r.college, 28));
        let full = esc(&r.college);
        s.push_str(&format!(
            r#"<g><title>{full}：已申报 {a}，未申报 {n}</title><text x="0" y="{ty}" class="label">{name}</text><rect x="0" y="{bar_y}" width="{applied_w}" height="16" class="applied"/><rect x="{applied_w}" y="{bar_y}" width="{not_w}" height="16" class="not-applied"/><text x="{cx}" y="{cy}" class="count">{a} / {t}</text></g>"#,
            a = r.applied,
            n = r.not_applied,
            t = r.applied + r.not_applied,
            ty = y + 16,
            cx = applied_w + not_w + 6,
            cy = bar_y + 13,
        ));
    }
    s.push_str("</svg>");
    s
}

/// Arrivals per day as a line with a dot and the count at each day, and every few days' date
/// under the axis. `days` are (label such as `9/26`, count), oldest first.
pub fn daily_line(days: &[(String, u32)]) -> String {
    const W: u32 = 480;
    const H: u32 = 150;
    const TOP: u32 = 22;
    const BOTTOM: u32 = 120;
    const LEFT: u32 = 16;
    const RIGHT: u32 = 16;
    if days.is_empty() {
        return String::new();
    }
    let max = days.iter().map(|d| d.1).max().unwrap_or(0).max(1);
    let n = days.len() as u32;
    let x = |i: u32| {
        if n == 1 {
            W / 2
        } else {
            LEFT + i * (W - LEFT - RIGHT) / (n - 1)
        }
    };
    let y = |v: u32| BOTTOM - v * (BOTTOM - TOP) / max;
    let total: u32 = days.iter().map(|d| d.1).sum();
    let mut s = format!(
        r#"<svg class="chart" viewBox="0 0 {W} {H}" width="100%" role="img" aria-labelledby="line-title" xmlns="http://www.w3.org/2000/svg"><title id="line-title">近 {n} 天每天收到的申报（共 {total} 份）</title><line x1="{LEFT}" y1="{BOTTOM}" x2="{x2}" y2="{BOTTOM}" class="axis"/>"#,
        x2 = W - RIGHT
    );
    let points: Vec<String> = days
        .iter()
        .enumerate()
        .map(|(i, d)| format!("{},{}", x(i as u32), y(d.1)))
        .collect();
    s.push_str(&format!(
        r#"<polyline points="{}" class="line"/>"#,
        points.join(" ")
    ));
    // A date label every few days counted back from today, so that 30 labels do not overlap
    // on a phone and today always has one.
    let every = n.div_ceil(7).max(1);
    for (i, (label, v)) in days.iter().enumerate() {
        let i = i as u32;
        let (cx, cy) = (x(i), y(*v));
        s.push_str(&format!(
            r#"<g><title>{label}：{v} 份</title><circle cx="{cx}" cy="{cy}" r="3.5" class="dot"/>"#,
            label = esc(label)
        ));
        if *v > 0 {
            s.push_str(&format!(
                r#"<text x="{cx}" y="{ty}" text-anchor="middle" class="count">{v}</text>"#,
                ty = cy - 7
            ));
        }
        if (n - 1 - i).is_multiple_of(every) {
            s.push_str(&format!(
                r#"<text x="{cx}" y="{ly}" text-anchor="middle" class="label small">{label}</text>"#,
                ly = BOTTOM + 20,
                label = esc(label)
            ));
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>");
    s
}

/// At most `n` characters, with an ellipsis when cut.
fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(college: &str, applied: u32, not_applied: u32) -> CollegeCount {
        CollegeCount {
            college: college.into(),
            applied,
            not_applied,
        }
    }

    #[test]
    fn escapes_everything_that_matters() {
        assert_eq!(
            esc(r#"<script>alert(1)</script>"onmouseover='x'&"#),
            "&lt;script&gt;alert(1)&lt;/script&gt;&quot;onmouseover=&#39;x&#39;&amp;"
        );
        assert_eq!(esc("土木工程学院"), "土木工程学院");
    }

    #[test]
    fn empty_roster() {
        assert_eq!(college_bars(&[]), "<p>名册中没有支部。</p>");
    }

    #[test]
    fn bars_scale_to_the_largest_college() {
        let svg = college_bars(&[c("甲学院", 3, 1), c("乙学院", 0, 2), c("丙学院", 0, 0)]);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.ends_with("</svg>"));
        // 甲: 4 branches = the full 400; 3 applied = 300, then 100 not applied.
        for part in [
            r#"<rect x="0" y="22" width="300" height="16" class="applied"/>"#,
            r#"<rect x="300" y="22" width="100" height="16" class="not-applied"/>"#,
            r#"<text x="406" y="35" class="count">3 / 4</text>"#,
            // 乙: 2 not applied = 200, no applied bar; its name on the line above.
            r#"<text x="0" y="62" class="label">乙学院</text>"#,
            r#"<rect x="0" y="68" width="0" height="16" class="applied"/>"#,
            r#"<rect x="0" y="68" width="200" height="16" class="not-applied"/>"#,
            // 丙 has no branches: no division by zero, zero-width bars.
            r#"<text x="6" y="127" class="count">0 / 0</text>"#,
            r#"viewBox="0 0 480 142""#,
        ] {
            assert!(svg.contains(part), "{part} in {svg}");
        }
        assert_eq!(svg.matches("<g>").count(), 3);
    }

    #[test]
    fn all_zero_counts_do_not_divide_by_zero() {
        let svg = college_bars(&[c("甲", 0, 0)]);
        assert!(svg.contains(r#"width="0""#));
    }

    #[test]
    fn names_are_escaped_and_long_ones_shortened() {
        let svg = college_bars(&[c(r#"<script>alert(1)</script>"onmouseover="#, 1, 0)]);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(!svg.contains(r#""onmouseover"#), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
        let long = "一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十";
        let svg = college_bars(&[c(long, 1, 1)]);
        assert!(
            svg.contains(">一二三四五六七八九十一二三四五六七八九十一二三四五六七…<"),
            "{svg}"
        );
        // The full name stays in the tooltip.
        assert!(svg.contains(&format!("<title>{long}：已申报 1，未申报 1</title>")));
    }

    #[test]
    fn a_line_of_daily_arrivals() {
        assert_eq!(daily_line(&[]), "");
        let days: Vec<(String, u32)> = [0, 2, 4, 1]
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("9/{}", 24 + i), *n))
            .collect();
        let svg = daily_line(&days);
        // x from 16 to 464 in three steps; y from 120 (0) up to 22 (the maximum, 4).
        assert!(
            svg.contains(r#"<polyline points="16,120 165,71 314,22 464,96" class="line"/>"#),
            "{svg}"
        );
        assert!(svg.contains("近 4 天每天收到的申报（共 7 份）"), "{svg}");
        assert!(svg.contains("<title>9/26：4 份</title>"), "{svg}");
        // Counts only where something arrived.
        assert!(!svg.contains(r#"class="count">0<"#), "{svg}");
        assert!(
            svg.contains(r#"y="15" text-anchor="middle" class="count">4<"#),
            "{svg}"
        );
        // One day alone sits in the middle; nothing divides by zero.
        let one = daily_line(&[("9/24".to_string(), 0)]);
        assert!(one.contains(r#"points="240,120""#), "{one}");
    }

    #[test]
    fn thirty_days_label_every_fifth() {
        let days: Vec<(String, u32)> = (0..30).map(|i| (format!("d{i}"), i)).collect();
        let svg = daily_line(&days);
        assert_eq!(svg.matches("class=\"label small\"").count(), 6, "{svg}");
        assert!(svg.contains(">d29<") && svg.contains(">d4<") && !svg.contains(">d0<"));
        assert_eq!(svg.matches("<circle").count(), 30);
    }

    #[test]
    fn a_hundred_colleges() {
        let rows: Vec<_> = (0..100)
            .map(|i| c(&format!("学院{i}"), i, 100 - i))
            .collect();
        let svg = college_bars(&rows);
        assert_eq!(svg.matches("<g>").count(), 100);
        assert!(svg.contains(r#"viewBox="0 0 480 4604""#));
    }
}
