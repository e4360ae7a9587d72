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
    fn a_hundred_colleges() {
        let rows: Vec<_> = (0..100)
            .map(|i| c(&format!("学院{i}"), i, 100 - i))
            .collect();
        let svg = college_bars(&rows);
        assert_eq!(svg.matches("<g>").count(), 100);
        assert!(svg.contains(r#"viewBox="0 0 480 4604""#));
    }
}
