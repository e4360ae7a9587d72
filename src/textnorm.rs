//! Text normalisation shared by the subject grammar and the roster matcher.
//!
//! Branch secretaries type subjects and names with whatever their input method produced:
//! full-width letters and digits (`２０２４级`), full-width or typographic dashes
//! (`－ — – ――`), ideographic spaces (U+3000), zero-width characters pasted from web pages,
//! and half a dozen different "middle dots". None of that changes what they meant, so before
//! comparing two strings we fold them into one canonical spelling:
//!
//! 1. NFKC, which turns compatibility forms (full-width ASCII, `（）`, `：`, U+3000 …) into
//!    their plain forms;
//! 2. every dash variant becomes `-`, and a run of dashes (`——`, `--`) becomes one `-`;
//! 3. every whitespace, control and zero-width character is removed (Chinese text has no
//!    meaningful spaces, and `对标争先 建设项目` must equal `对标争先建设项目`);
//! 4. every middle-dot variant becomes `·` (U+00B7);
//! 5. ASCII letters are lowercased (`RE:` = `re:`, `V2` = `v2`).
//!
//! [`normalize_mapped`] does the same but remembers, for every output character, which bytes of
//! the input it came from. The subject grammar needs that to hand back the branch name *as
//! written*, while doing all of its matching on the normalised form.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::canonical_combining_class;

/// One character of normalised text and the byte range of the input it came from.
///
/// `start..end` is always a valid char-boundary range of the input string, so slicing the
/// input with it cannot panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedChar {
    /// The normalised character.
    pub ch: char,
    /// Byte offset (inclusive) in the input where the source of this character starts.
    pub start: usize,
    /// Byte offset (exclusive) in the input where the source of this character ends.
    pub end: usize,
}

/// Normalises `s` for comparison (see the module documentation for the exact steps).
///
/// ```text
/// "对标争先建设项目申报 － ２０２４级" → "对标争先建设项目申报-2024级"
/// ```
pub fn normalize(s: &str) -> String {
    normalize_mapped(s).into_iter().map(|m| m.ch).collect()
}

/// Normalises `s` and keeps, for each output character, the input bytes it came from.
///
/// NFKC is applied per grapheme-like cluster (a starter plus the combining marks that follow
/// it) rather than to the whole string, so that every output character can be traced back to a
/// contiguous input range. For the text this project sees (CJK, ASCII, punctuation) the result
/// is identical to whole-string NFKC; it differs only for conjoining Hangul jamo, which never
/// occur in branch names.
pub fn normalize_mapped(s: &str) -> Vec<MappedChar> {
    let mut out: Vec<MappedChar> = Vec::with_capacity(s.len());
    let mut cluster = String::new();
    let mut iter = s.char_indices().peekable();
    while let Some((start, c)) = iter.next() {
        cluster.clear();
        cluster.push(c);
        let mut end = start + c.len_utf8();
        while let Some(&(i, next)) = iter.peek() {
            if canonical_combining_class(next) == 0 {
                break;
            }
            cluster.push(next);
            end = i + next.len_utf8();
            iter.next();
        }
        for n in cluster.nfkc() {
            push_folded(&mut out, n, start, end);
        }
    }
    out
}

/// Applies steps 2–5 to one NFKC output character.
fn push_folded(out: &mut Vec<MappedChar>, c: char, start: usize, end: usize) {
    if is_invisible(c) {
        return;
    }
    let folded = if is_dash(c) {
        '-'
    } else if is_middle_dot(c) {
        '·'
    } else {
        c.to_ascii_lowercase()
    };
    // "——" (the Chinese dash is two em dashes) and "- -" are one separator, not two.
    if folded == '-'
        && let Some(last) = out.last_mut()
        && last.ch == '-'
    {
        last.end = end;
        return;
    }
    out.push(MappedChar {
        ch: folded,
        start,
        end,
    });
}

/// True for every character people use as a hyphen or dash in Chinese subjects.
///
/// This covers ASCII `-`, the full-width `－` and small `﹣` (NFKC already maps those two to
/// `-`, they are listed for callers that skip NFKC), the Unicode hyphens and dashes
/// U+2010–U+2015, `⁃`, the minus sign `−`, `﹘` and the two- and three-em dashes.
pub fn is_dash(c: char) -> bool {
    matches!(
        c,
        '-' | '\u{FF0D}' | '\u{FE63}' | '\u{FE58}' | '\u{2010}'
            ..='\u{2015}' | '\u{2043}' | '\u{2212}' | '\u{2E3A}' | '\u{2E3B}'
    )
}

/// True for the middle-dot variants that appear in section names such as `学思践悟·固本强基`.
///
/// Chinese input methods produce `·` (U+00B7), `•`, `・` (Japanese katakana middle dot),
/// `‧`, `∙`, `⋅`, the half-width `･`, or the Greek ano teleia `·`; all mean the same.
pub fn is_middle_dot(c: char) -> bool {
    matches!(
        c,
        '\u{00B7}'
            | '\u{0387}'
            | '\u{2022}'
            | '\u{2027}'
            | '\u{2219}'
            | '\u{22C5}'
            | '\u{30FB}'
            | '\u{FF65}'
            | '\u{2E31}'
            | '\u{1427}'
    )
}

/// True for characters that carry no visible content: whitespace (including the ideographic
/// space U+3000 and no-break spaces), control characters, zero-width characters, bidi marks,
/// the soft hyphen and the byte-order mark. Pasted text often contains these invisibly.
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// Trims invisible characters (see [`is_invisible`]) from both ends of `s`.
///
/// `str::trim` does not remove zero-width spaces or the BOM, which spreadsheets and web forms
/// like to leave at the edges of cells.
pub fn trim_invisible(s: &str) -> &str {
    s.trim_matches(is_invisible)
}

/// True for CJK ideographs (the unified blocks, extension A/B and the compatibility block) and
/// `〇`, which is how Chinese writes zero in years (`二〇二四`).
pub fn is_cjk(c: char) -> bool {
    matches!(
        c,
        '\u{3007}'
            | '\u{3400}'..='\u{4DBF}'
            | '\u{4E00}'..='\u{9FFF}'
            | '\u{F900}'..='\u{FAFF}'
            | '\u{20000}'..='\u{2A6DF}'
    )
}

/// Character-level Levenshtein distance (insert, delete, substitute all cost 1).
///
/// Works on `char`s, not bytes, so one Chinese character is one edit. Uses two rows, so memory
/// is linear in the shorter input.
pub fn levenshtein(a: &[char], b: &[char]) -> usize {
    let (a, b) = if a.len() < b.len() { (b, a) } else { (a, b) };
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_width_dashes_spaces_dots_and_case() {
        let cases = [
            ("对标争先建设项目申报－Ｘ", "对标争先建设项目申报-x"),
            (
                "对标争先 建设项目\u{3000}申报 —— X",
                "对标争先建设项目申报-x",
            ),
            ("２０２４级", "2024级"),
            ("a\u{200B}b\u{FEFF}c", "abc"),
            ("学思践悟•固本强基", "学思践悟·固本强基"),
            ("学思践悟・固本强基", "学思践悟·固本强基"),
            ("学思践悟･固本强基", "学思践悟·固本强基"),
            ("RE：Fwd:", "re:fwd:"),
            ("a–b―c‐d‑e‒f⁃g−h﹣i", "a-b-c-d-e-f-g-h-i"),
            ("（修改版）", "(修改版)"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input), want, "input {input:?}");
        }
    }

    #[test]
    fn mapping_points_back_at_the_input() {
        let s = "Ｒｅ： 对标－X";
        let m = normalize_mapped(s);
        let text: String = m.iter().map(|c| c.ch).collect();
        assert_eq!(text, "re:对标-x");
        for c in &m {
            assert!(s.get(c.start..c.end).is_some());
        }
        assert_eq!(&s[m[3].start..m[3].end], "对");
    }

    #[test]
    fn combining_marks_stay_with_their_base() {
        let s = "e\u{301}x";
        let m = normalize_mapped(s);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].ch, 'é');
        assert_eq!((m[0].start, m[0].end), (0, 3));
    }

    #[test]
    fn levenshtein_counts_chars() {
        let a: Vec<char> = "第二党支部".chars().collect();
        let b: Vec<char> = "第二支部".chars().collect();
        assert_eq!(levenshtein(&a, &b), 1);
        assert_eq!(levenshtein(&a, &[]), 5);
        assert_eq!(levenshtein(&[], &[]), 0);
    }

    #[test]
    fn trims_invisible_edges() {
        assert_eq!(trim_invisible("\u{FEFF}\u{3000} 支部\u{200B}"), "支部");
    }
}
