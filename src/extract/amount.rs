//! Amounts of money as branch secretaries write them in the form and the summary sheet.
//!
//! The budget cell is free text: `3000`, `3,000元`, `￥2800.00`, `RMB 2800`, `0.3万元`,
//! `3千元`, `叁仟伍佰元整`, `三千五`, `3000（三千元）`, `约3000元`, `2000-3000元`, `待定` …
//! [`parse_amount`] turns it into one number of yuan, or says why it is not one, so the rules
//! can check the cap and flag `budget_unparsed` without a person reading every cell.
//!
//! Decisions (each is a choice a reviewer could make differently, so they are written down):
//! * Qualifiers that do not change the amount are accepted: `约3000元`, `3000元左右`,
//!   `预计3000元`, `暂定3000元`, `不超过3000元` all give 3000. A budget is an estimate anyway,
//!   and the cap check is still meaningful on the written number.
//! * `待定`, `未定`, `若干`, `不确定`, `不详` make the cell `Unparsed { reason: "待定" }`
//!   even next to a number; `暂定` alone (no number) too.
//! * Two numbers joined by `-`, `~`, `至`, `到` are a range: `Unparsed { reason: "区间" }`.
//! * Several amounts: if the cell names a total (`合计`, `共计`, `总计`, `总额`, `=`), the
//!   amounts after the last such word decide; otherwise all must be equal
//!   (`3000（三千元）`), else `Unparsed { reason: "多个金额" }`.
//! * Numbers followed by a counting word (`3场`, `2025年`, `20人`, `5%`) are not amounts.
//! * A bare Chinese numeral counts only with a unit (`伍仟`, `贰万`) or `元` (`五元`), so that
//!   `一般` or `两场` are never read as money.
//! * Negative amounts and amounts above 10^8 yuan are `Unparsed` (`负数`, `金额过大`): such a
//!   cell is a typo or a phone number, never a branch budget.
//! * The result is rounded to cents.

use super::model::Amount;
use crate::textnorm;

/// Largest amount taken at face value, in yuan.
const MAX_YUAN: f64 = 1e8;

/// Parses an amount of money as people write it; `None` when the text is empty or blank.
///
/// See the module documentation for what counts as one amount.
pub fn parse_amount(text: &str) -> Option<Amount> {
    let norm = textnorm::normalize(text);
    if norm.is_empty() {
        return None;
    }
    let chars: Vec<char> = norm.chars().collect();
    let unparsed = |reason: &str| {
        Some(Amount::Unparsed {
            reason: reason.to_string(),
        })
    };
    if ["待定", "未定", "若干", "不确定", "不详"]
        .iter()
        .any(|k| norm.contains(k))
    {
        return unparsed("待定");
    }
    let tokens = tokenize(&chars);
    for pair in tokens.windows(2) {
        if let [a, b] = pair
            && chars
                .get(a.end..b.start)
                .is_some_and(|gap| !gap.is_empty() && gap.iter().all(|c| is_range_sep(*c)))
        {
            return unparsed("区间");
        }
    }
    if tokens.iter().any(|t| t.negative) {
        return unparsed("负数");
    }
    // A named total decides when the cell also lists the items.
    let total_at = ["合计", "共计", "总计", "总额", "="]
        .iter()
        .filter_map(|k| {
            norm.rfind(k)
                .and_then(|b| norm.get(..b))
                .map(|s| s.chars().count())
        })
        .max();
    let chosen: Vec<f64> = match total_at {
        Some(at) if tokens.iter().any(|t| t.start > at) => tokens
            .iter()
            .filter(|t| t.start > at)
            .map(|t| t.value)
            .collect(),
        _ => tokens.iter().map(|t| t.value).collect(),
    };
    let Some(&first) = chosen.first() else {
        return if norm.contains("暂定") {
            unparsed("待定")
        } else {
            unparsed("无法识别")
        };
    };
    if chosen.iter().any(|v| (v - first).abs() > 0.005) {
        return unparsed("多个金额");
    }
    if !first.is_finite() || first > MAX_YUAN {
        return unparsed("金额过大");
    }
    Some(Amount::Yuan {
        yuan: (first * 100.0).round() / 100.0,
    })
}

/// One amount found in the normalised text: its value in yuan and its char range
/// (including a currency prefix and a unit suffix, so that ranges can be seen between tokens).
#[derive(Debug)]
struct Token {
    value: f64,
    start: usize,
    end: usize,
    negative: bool,
}

fn is_range_sep(c: char) -> bool {
    matches!(c, '-' | '~' | '〜' | '至' | '到')
}

fn chinese_digit(c: char) -> Option<f64> {
    let d = match c {
        '一' | '壹' | '幺' => 1,
        '二' | '贰' | '貳' | '两' | '兩' => 2,
        '三' | '叁' | '參' => 3,
        '四' | '肆' => 4,
        '五' | '伍' => 5,
        '六' | '陆' | '陸' => 6,
        '七' | '柒' => 7,
        '八' | '捌' => 8,
        '九' | '玖' => 9,
        _ => return None,
    };
    Some(f64::from(d))
}

fn chinese_unit(c: char) -> Option<f64> {
    match c {
        '十' | '拾' => Some(10.0),
        '百' | '佰' => Some(100.0),
        '千' | '仟' => Some(1e3),
        '万' | '萬' => Some(1e4),
        '亿' | '億' => Some(1e8),
        _ => None,
    }
}

fn is_zero(c: char) -> bool {
    matches!(c, '零' | '〇')
}

/// Words after a number that make it a count, a date or a percentage rather than money.
fn is_count_word(c: char) -> bool {
    "年月日号时点秒人名位次场期个项天周届级%‰页张份本条套件批组队".contains(c)
}

/// One element of a numeral: a digit value (Arabic number or Chinese digit), a unit, or `零`.
#[derive(Debug, Clone, Copy)]
enum Part {
    Num(f64, bool),
    Unit(f64),
    Zero,
}

/// Finds every amount in `s` (already normalised: half-width, lowercase, no spaces).
fn tokenize(s: &[char]) -> Vec<Token> {
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    let starts_with = |i: usize, w: &str| w.chars().enumerate().all(|(k, c)| at(i + k) == c);
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = at(i);
        let numeral_start = c.is_ascii_digit()
            || chinese_digit(c).is_some()
            || chinese_unit(c).is_some()
            || is_zero(c);
        if !numeral_start {
            i += 1;
            continue;
        }
        // Currency prefix immediately before the number.
        let mut start = i;
        let mut marked = false;
        for p in ["人民币", "rmb", "cny", "¥", "$"] {
            let n = p.chars().count();
            if i >= n && starts_with(i - n, p) {
                start = i - n;
                marked = true;
                break;
            }
        }
        let negative =
            start > 0 && at(start - 1) == '-' && (start < 2 || !at(start - 2).is_ascii_digit());
        let (parts, mut j) = read_numeral(s, i);
        // Multipliers written the Latin way: 3k, 0.3w.
        let mut factor = 1.0;
        if matches!(parts.last(), Some(Part::Num(_, true))) {
            match at(j) {
                'k' => (factor, j) = (1e3, j + 1),
                'w' => (factor, j) = (1e4, j + 1),
                _ => {}
            }
        }
        for suffix in ["元整", "元", "圆", "块钱", "块", "rmb", "yuan", "cny"] {
            if starts_with(j, suffix) {
                j += suffix.chars().count();
                marked = true;
                break;
            }
        }
        let counted = !marked && is_count_word(at(j));
        let chinese_only = parts.iter().all(|p| !matches!(p, Part::Num(_, true)));
        let has_unit = parts.iter().any(|p| matches!(p, Part::Unit(_)));
        let plausible = !chinese_only || marked || has_unit;
        if !counted
            && plausible
            && let Some(v) = numeral_value(&parts)
        {
            out.push(Token {
                value: v * factor,
                start,
                end: j,
                negative,
            });
        }
        i = j.max(i + 1);
    }
    out
}

/// Reads a numeral starting at `i`: Arabic numbers (with `,` thousands groups and a decimal
/// point), Chinese digits, units and `零`, mixed freely (`3千5百`, `0.3万`, `叁仟伍佰`).
/// Returns the parts and the index after the numeral.
fn read_numeral(s: &[char], mut i: usize) -> (Vec<Part>, usize) {
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    let mut parts = Vec::new();
    while i < s.len() {
        let c = at(i);
        if c.is_ascii_digit() {
            let mut text = String::new();
            while i < s.len() {
                let d = at(i);
                if d.is_ascii_digit() {
                    text.push(d);
                    i += 1;
                } else if d == ','
                    && (1..=3).all(|k| at(i + k).is_ascii_digit())
                    && !at(i + 4).is_ascii_digit()
                {
                    i += 1; // thousands separator: exactly three digits follow
                } else if d == '.' && at(i + 1).is_ascii_digit() && !text.contains('.') {
                    text.push('.');
                    i += 1;
                } else {
                    break;
                }
            }
            parts.push(Part::Num(text.parse().unwrap_or(f64::NAN), true));
        } else if let Some(d) = chinese_digit(c) {
            // 点 as a decimal point: 零点三万, 三点五万.
            if at(i + 1) == '点'
                && chinese_digit(at(i + 2))
                    .or(is_zero(at(i + 2)).then_some(0.0))
                    .is_some()
            {
                let mut v = d;
                let mut scale = 0.1;
                i += 2;
                while let Some(f) = chinese_digit(at(i)).or(is_zero(at(i)).then_some(0.0)) {
                    v += f * scale;
                    scale /= 10.0;
                    i += 1;
                }
                parts.push(Part::Num(v, false));
            } else {
                parts.push(Part::Num(d, false));
                i += 1;
            }
        } else if let Some(u) = chinese_unit(c) {
            parts.push(Part::Unit(u));
            i += 1;
        } else if is_zero(c) {
            if at(i + 1) == '点' && chinese_digit(at(i + 2)).is_some() {
                // 零点三万: handled as a digit 0 with a fraction.
                let mut v = 0.0;
                let mut scale = 0.1;
                i += 2;
                while let Some(f) = chinese_digit(at(i)).or(is_zero(at(i)).then_some(0.0)) {
                    v += f * scale;
                    scale /= 10.0;
                    i += 1;
                }
                parts.push(Part::Num(v, false));
            } else {
                parts.push(Part::Zero);
                i += 1;
            }
        } else {
            break;
        }
    }
    (parts, i)
}

/// The value of a numeral; `None` when the parts do not form one number (`一二`, `二〇二五`).
///
/// Sections below 万 are accumulated and closed by 万/亿, the usual reading. A trailing digit
/// right after a unit of 百 or more is the colloquial short form: `三千五` = 3500, `一万二` =
/// 12000; after `零` it is not (`三千零五` = 3005).
fn numeral_value(parts: &[Part]) -> Option<f64> {
    // A unit alone (`万元` in a header) is not a number; `十元` is.
    let has_digit = parts
        .iter()
        .any(|p| matches!(p, Part::Num(..) | Part::Zero));
    if !has_digit && !matches!(parts.first(), Some(Part::Unit(u)) if *u == 10.0) {
        return None;
    }
    let (mut total, mut section) = (0.0_f64, 0.0_f64);
    let mut pending: Option<f64> = None;
    let mut last_unit: Option<f64> = None;
    let mut after_zero = false;
    for p in parts {
        match *p {
            Part::Num(n, _) => {
                if pending.is_some() {
                    return None;
                }
                pending = Some(n);
            }
            Part::Zero => {
                if pending.is_some() {
                    return None;
                }
                after_zero = true;
            }
            Part::Unit(u) if u < 1e4 => {
                section += pending.take().unwrap_or(1.0) * u;
                last_unit = Some(u);
                after_zero = false;
            }
            Part::Unit(u) => {
                section += pending
                    .take()
                    .unwrap_or(if section == 0.0 { 1.0 } else { 0.0 });
                if u >= 1e8 {
                    total = (total + section) * u;
                } else {
                    total += section * u;
                }
                section = 0.0;
                last_unit = Some(u);
                after_zero = false;
            }
        }
    }
    if let Some(n) = pending {
        match last_unit {
            Some(u) if u >= 100.0 && !after_zero && n < 10.0 && n.fract() == 0.0 => {
                section += n * u / 10.0
            }
            _ => section += n,
        }
    } else if parts.iter().all(|p| matches!(p, Part::Zero)) {
        // 零 alone is zero.
        return parts.first().map(|_| 0.0);
    }
    let v = total + section;
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yuan(s: &str) -> Option<f64> {
        match parse_amount(s) {
            Some(Amount::Yuan { yuan }) => Some(yuan),
            _ => None,
        }
    }

    fn reason(s: &str) -> Option<String> {
        match parse_amount(s) {
            Some(Amount::Unparsed { reason }) => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn parses_single_amounts() {
        let cases: &[(&str, f64)] = &[
            ("3000", 3000.0),
            ("3,000元", 3000.0),
            ("3，000 元", 3000.0),
            ("￥2800.00", 2800.0),
            ("¥2800", 2800.0),
            ("RMB 2800", 2800.0),
            ("rmb2800元", 2800.0),
            ("人民币2800元", 2800.0),
            ("2800.5元", 2800.5),
            ("0.3万元", 3000.0),
            ("0.3万", 3000.0),
            ("3千元", 3000.0),
            ("叁仟元整", 3000.0),
            ("叁仟伍佰元", 3500.0),
            ("三千五百元", 3500.0),
            ("伍仟", 5000.0),
            ("贰万", 20000.0),
            ("3000（三千元）", 3000.0),
            ("３０００元", 3000.0),
            ("约3000元", 3000.0),
            ("3000元左右", 3000.0),
            ("暂定3000元", 3000.0),
            ("4000元", 4000.0),
            ("1,234,567.89", 1234567.89),
            ("三千五", 3500.0),
            ("一万二", 12000.0),
            ("三千零五元", 3005.0),
            ("十五元", 15.0),
            ("3k", 3000.0),
            ("0.3w", 3000.0),
            ("零点三万元", 3000.0),
            ("两千元", 2000.0),
            ("壹仟贰佰叁拾肆元", 1234.0),
            ("3千5百元", 3500.0),
            ("1.5万元", 15000.0),
            ("5000元（伍仟元整）", 5000.0),
            ("0", 0.0),
            ("0元", 0.0),
            ("共3场活动，3000元", 3000.0),
            ("资料费1000元，活动费2000元，合计3000元", 3000.0),
            ("1000+2000=3000元", 3000.0),
            ("2025年预算3000元", 3000.0),
            ("  3000 ", 3000.0),
            ("\u{3000}3000元\u{200B}", 3000.0),
            ("3 000元", 3000.0),
            ("壹亿元", 1e8),
            ("十元", 10.0),
            ("拾万元", 100_000.0),
            ("两千五", 2500.0),
            ("2千5", 2500.0),
            ("人民币叁仟元整（¥3000.00）", 3000.0),
        ];
        for (input, want) in cases {
            assert_eq!(
                yuan(input),
                Some(*want),
                "input {input:?} → {:?}",
                parse_amount(input)
            );
        }
    }

    #[test]
    fn blank_is_none() {
        for s in ["", "   ", "\u{3000}", "\u{200B}\n\t"] {
            assert_eq!(parse_amount(s), None, "{s:?}");
        }
    }

    #[test]
    fn ranges_are_unparsed() {
        for s in [
            "2000-3000元",
            "2000~3000",
            "2000～3000元",
            "2000元-3000元",
            "2000至3000元",
            "2000到3000",
            "2000—3000",
            "两千到三千元",
        ] {
            assert_eq!(reason(s).as_deref(), Some("区间"), "{s:?}");
        }
    }

    #[test]
    fn undecided_and_unreadable_are_unparsed() {
        for s in [
            "待定",
            "暂定",
            "若干",
            "未定",
            "3000元（待定）",
            "金额不确定",
        ] {
            assert_eq!(reason(s).as_deref(), Some("待定"), "{s:?}");
        }
        for s in [
            "无",
            "XXX元",
            "（请填写）",
            "一般",
            "万元",
            "金额（万元）",
            "千元",
        ] {
            assert_eq!(reason(s).as_deref(), Some("无法识别"), "{s:?}");
        }
    }

    #[test]
    fn several_different_amounts_are_unparsed() {
        for s in [
            "3000或4000",
            "1000元，2000元",
            "3000（两千元）",
            "1000,2000",
        ] {
            assert_eq!(reason(s).as_deref(), Some("多个金额"), "{s:?}");
        }
    }

    #[test]
    fn negative_and_absurd_are_unparsed() {
        assert_eq!(reason("-3000").as_deref(), Some("负数"));
        assert_eq!(reason("－3000元").as_deref(), Some("负数"));
        assert_eq!(reason("13800138000").as_deref(), Some("金额过大"));
        assert_eq!(reason("2亿元").as_deref(), Some("金额过大"));
        assert_eq!(
            reason("99999999999999999999999999999999999999999").as_deref(),
            Some("金额过大")
        );
    }

    #[test]
    fn year_like_chinese_numerals_are_not_amounts() {
        assert_eq!(reason("二〇二五").as_deref(), Some("无法识别"));
        assert_eq!(yuan("二〇二五年经费3000元"), Some(3000.0));
    }

    #[test]
    fn hostile_text_does_not_panic() {
        let long = "9".repeat(10_000);
        assert!(parse_amount(&long).is_some());
        let mixed = "万亿千百十零点,.,.元¥-~至".repeat(500);
        let _ = parse_amount(&mixed);
        let _ = parse_amount("点点点");
        let _ = parse_amount("零点");
        let _ = parse_amount("1.");
        let _ = parse_amount(",000");
    }
}
