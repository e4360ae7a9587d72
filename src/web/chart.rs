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

/// Row height and the widths of the label and bar areas, in SVG units.
const ROW: u32 = 28;
const LABEL: u32 = 230;
const BAR: u32 = 420;
const COUNT: u32 = 110;

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
    let width = LABEL + BAR + COUNT;
    let height = ROW * rows.len() as u32 + 8;
    let mut s = format!(
        r#"<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg"><title id="chart-title">各学院已申报与未申报的支部数</title>"#
    );
    for (i, r) in rows.iter().enumerate() {
        let y = i as u32 * ROW + 4;
        let applied_w = r.applied * BAR / max;
        let not_w = r.not_applied * BAR / max;
        let name = esc(&shorten(&r.college, 14));
        let full = esc(&r.college);
        s.push_str(&format!(
            r#"<g><title>{full}：已申报 {a}，未申报 {n}</title><text x="{lx}" y="{ty}" text-anchor="end" class="label">{name}</text><rect x="{LABEL}" y="{y}" width="{applied_w}" height="{h}" class="applied"/><rect x="{nx}" y="{y}" width="{not_w}" height="{h}" class="not-applied"/><text x="{cx}" y="{ty}" class="count">{a} / {t}</text></g>"#,
            a = r.applied,
            n = r.not_applied,
            t = r.applied + r.not_applied,
            lx = LABEL - 8,
            ty = y + 15,
            h = ROW - 8,
            nx = LABEL + applied_w,
            cx = LABEL + applied_w + not_w + 6,
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
        // 甲: 4 branches = the full 420; 3 applied = 315.
        assert!(
            svg.contains(r#"width="315" height="20" class="applied""#),
            "{svg}"
        );
        assert!(svg.contains(r#"x="545" y="4" width="105""#), "{svg}");
        // 乙: 2 not applied = 210, no applied bar.
        assert!(
            svg.contains(r#"y="32" width="0" height="20" class="applied""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"width="210" height="20" class="not-applied""#),
            "{svg}"
        );
        // 丙 has no branches: no division by zero, zero-width bars.
        assert!(svg.contains(">0 / 0<"), "{svg}");
        assert!(svg.contains(">3 / 4<") && svg.contains(">0 / 2<"));
        assert!(svg.contains(r#"viewBox="0 0 760 92""#), "{svg}");
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
        let long = "一二三四五六七八九十一二三四五六七八";
        let svg = college_bars(&[c(long, 1, 1)]);
        assert!(svg.contains(">一二三四五六七八九十一二三…<"), "{svg}");
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
        assert!(svg.contains(r#"viewBox="0 0 760 2808""#));
    }
}
