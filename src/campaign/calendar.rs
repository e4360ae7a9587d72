//! Which campaign a mail belongs to, and which campaign is "the current one".
//!
//! The office runs the same campaign every semester: the same subject (`对标争先建设项目申报-…`)
//! arrives again next spring, while last autumn's records must stay apart and queryable. So
//! the configuration lists several campaigns (`[[campaign]]`), each with a time window, and a
//! mail is given to a campaign by two facts the mail itself carries: its subject and when it
//! arrived at the server. This module decides that, and says *why* when it cannot, so the
//! pipeline can record the reason (a closure report sent a week after the closure deadline is
//! not the same case as a question with no campaign subject at all).
//!
//! A window runs from the campaign's `opens` (unbounded before when the configuration sets
//! none) to the end of its closure phase: the closure deadline plus the campaign's grace
//! (unbounded after while the closure deadline is not set yet). Both ends are inclusive, like
//! the deadlines themselves (a mail at 23:59:59 on the deadline day is on time).
//!
//! Pure: the arrival time and "now" are arguments; nothing here reads the clock.

use chrono::{DateTime, Utc};

use crate::campaign::subject::{SubjectGrammar, SubjectKind};

/// When a campaign takes mail; `None` ends are unbounded. Both ends are inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The first instant that belongs to the campaign (`opens` in the configuration).
    pub opens: Option<DateTime<Utc>>,
    /// The last instant: the closure deadline plus grace.
    pub closes: Option<DateTime<Utc>>,
}

impl Window {
    /// Whether `t` lies in the window.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.opens.is_none_or(|o| o <= t) && self.closes.is_none_or(|c| t <= c)
    }

    /// Whether the two windows share at least one instant.
    pub fn overlaps(&self, other: &Window) -> bool {
        let starts_before_other_ends = match (self.opens, other.closes) {
            (Some(o), Some(c)) => o <= c,
            _ => true,
        };
        let other_starts_before_end = match (other.opens, self.closes) {
            (Some(o), Some(c)) => o <= c,
            _ => true,
        };
        starts_before_other_ends && other_starts_before_end
    }

    /// How far `t` lies outside the window (zero inside it).
    pub fn distance(&self, t: DateTime<Utc>) -> chrono::Duration {
        match (self.opens, self.closes) {
            (Some(o), _) if t < o => o - t,
            (_, Some(c)) if t > c => t - c,
            _ => chrono::Duration::zero(),
        }
    }
}

/// One campaign as selection sees it: its id, its window and its subject grammar.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub window: Window,
    pub grammar: SubjectGrammar,
}

impl Candidate {
    /// Whether `subject` carries this campaign's application or closure subject (with the
    /// grammar's tolerance: reply prefixes, brackets, a dropped word …).
    pub fn carries(&self, subject: &str) -> bool {
        self.grammar.parse(subject).kind != SubjectKind::Other
    }
}

/// The campaign a mail belongs to, or why it belongs to none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The mail carries this campaign's subject and arrived in its window.
    Matched(String),
    /// The mail carries the subject of one or more campaigns but arrived in none of their
    /// windows; `nearest` is the one whose window is closest to the arrival time (a closure
    /// report a week late: the campaign whose closure phase just ended).
    OutsideWindow { nearest: String },
    /// The mail carries no campaign's subject (a question, an out-of-office reply …).
    NoSubject,
}

impl Selection {
    /// A stable label for the database and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Selection::Matched(_) => "matched",
            Selection::OutsideWindow { .. } => "outside_window",
            Selection::NoSubject => "no_subject",
        }
    }

    /// The campaign the mail was given to; `None` unless [`Selection::Matched`].
    pub fn campaign(&self) -> Option<&str> {
        match self {
            Selection::Matched(id) => Some(id),
            _ => None,
        }
    }

    /// For staff: what was decided, in a sentence.
    pub fn describe_zh(&self) -> String {
        match self {
            Selection::Matched(id) => format!("归入活动 {id}"),
            Selection::OutsideWindow { nearest } => format!(
                "主题属于活动 {nearest}，但到达时间不在任何同主题活动的收件时间内（最接近的是 {nearest}）"
            ),
            Selection::NoSubject => "主题不属于任何活动".to_string(),
        }
    }
}

/// Orders window starts: an unbounded start is the earliest.
fn start_key(w: &Window) -> (bool, Option<DateTime<Utc>>) {
    (w.opens.is_some(), w.opens)
}

/// Picks the campaign of a mail with subject `subject` that arrived at `received_at`.
///
/// Among the campaigns whose subject the mail carries, the one whose window holds
/// `received_at`; when several do, the one whose window started latest (a later entry wins a
/// tie). When the subject matches but no window holds the time: [`Selection::OutsideWindow`]
/// with the campaign whose window is nearest. When no subject matches: [`Selection::NoSubject`].
pub fn select(candidates: &[Candidate], subject: &str, received_at: DateTime<Utc>) -> Selection {
    let carrying: Vec<&Candidate> = candidates.iter().filter(|c| c.carries(subject)).collect();
    let in_window = carrying
        .iter()
        .filter(|c| c.window.contains(received_at))
        // max_by_key keeps the last of equal keys: a later entry wins a tie.
        .max_by_key(|c| start_key(&c.window));
    if let Some(c) = in_window {
        return Selection::Matched(c.id.clone());
    }
    // Nearest window; on equal distance the later-starting one (then the later entry).
    let nearest = carrying.iter().min_by(|a, b| {
        a.window
            .distance(received_at)
            .cmp(&b.window.distance(received_at))
            .then_with(|| start_key(&b.window).cmp(&start_key(&a.window)))
    });
    match nearest {
        Some(c) => Selection::OutsideWindow {
            nearest: c.id.clone(),
        },
        None => Selection::NoSubject,
    }
}

/// The current campaign at `now` (the default of `--campaign`): the one whose window holds
/// `now` (the latest-starting if several), else the latest that opened before `now` (on equal
/// starts the one that closed last), else — every campaign is still to come — the one that
/// opens first. `None` only for an empty list.
pub fn current<T>(items: &[T], window: impl Fn(&T) -> Window, now: DateTime<Utc>) -> Option<&T> {
    if let Some(t) = items
        .iter()
        .filter(|t| window(t).contains(now))
        .max_by_key(|t| start_key(&window(t)))
    {
        return Some(t);
    }
    let opened = items
        .iter()
        .filter(|t| window(t).opens.is_none_or(|o| o <= now))
        .max_by_key(|t| {
            let w = window(t);
            (start_key(&w), w.closes.is_none(), w.closes)
        });
    opened.or_else(|| items.iter().min_by_key(|t| window(t).opens))
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "对标争先建设项目申报-{支部名称}";
    const CLO: &str = "对标争先建设项目结项-{支部名称}";

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .expect("valid instant")
    }

    fn candidate(id: &str, opens: Option<&str>, closes: Option<&str>) -> Candidate {
        Candidate {
            id: id.to_string(),
            window: Window {
                opens: opens.map(at),
                closes: closes.map(at),
            },
            grammar: SubjectGrammar::new(APP, CLO).expect("valid patterns"),
        }
    }

    /// 2025-autumn: no `opens`, closure deadline 2025-12-15 23:59:59 Beijing time (closed);
    /// 2026-spring: opens 2026-02-16 00:00 Beijing time, no closure deadline yet (open).
    fn two_semesters() -> Vec<Candidate> {
        vec![
            candidate("2025-autumn", None, Some("2025-12-15T23:59:59+08:00")),
            candidate("2026-spring", Some("2026-02-16T00:00:00+08:00"), None),
        ]
    }

    const APPLY: &str = "对标争先建设项目申报-土木工程学院本科生第一党支部";
    const CLOSE: &str = "回复：对标争先建设项目结项-土木工程学院本科生第一党支部";

    fn matched(id: &str) -> Selection {
        Selection::Matched(id.to_string())
    }

    fn outside(id: &str) -> Selection {
        Selection::OutsideWindow {
            nearest: id.to_string(),
        }
    }

    #[test]
    fn the_same_subject_goes_to_the_campaign_of_its_date() {
        let c = two_semesters();
        for (when, subject, want) in [
            // Autumn's application phase, right at its deadline (Beijing time), and later.
            ("2025-09-20T10:00:00+08:00", APPLY, matched("2025-autumn")),
            ("2025-09-27T23:59:59+08:00", APPLY, matched("2025-autumn")),
            ("2025-09-28T00:00:00+08:00", APPLY, matched("2025-autumn")),
            // Autumn's closure phase up to its last second.
            ("2025-12-10T09:00:00+08:00", CLOSE, matched("2025-autumn")),
            ("2025-12-15T23:59:59+08:00", CLOSE, matched("2025-autumn")),
            // Spring from its first second on, and for ever while it has no closure deadline.
            ("2026-02-16T00:00:00+08:00", APPLY, matched("2026-spring")),
            ("2026-03-28T23:59:59+08:00", APPLY, matched("2026-spring")),
            ("2026-06-30T12:00:00+08:00", CLOSE, matched("2026-spring")),
            ("2030-01-01T00:00:00+08:00", APPLY, matched("2026-spring")),
        ] {
            assert_eq!(select(&c, subject, at(when)), want, "{subject} at {when}");
        }
    }

    #[test]
    fn boundaries_are_inclusive_and_exact_to_the_second() {
        let c = two_semesters();
        // The closure deadline 2025-12-15 23:59:59 in Shanghai is 15:59:59 UTC.
        assert_eq!(
            select(&c, CLOSE, at("2025-12-15T15:59:59Z")),
            matched("2025-autumn")
        );
        assert_eq!(
            select(&c, CLOSE, at("2025-12-15T16:00:00Z")),
            outside("2025-autumn")
        );
        // Spring opens 2026-02-16 00:00 in Shanghai, i.e. 2026-02-15 16:00 UTC.
        assert_eq!(
            select(&c, APPLY, at("2026-02-15T15:59:59Z")),
            outside("2026-spring")
        );
        assert_eq!(
            select(&c, APPLY, at("2026-02-15T16:00:00Z")),
            matched("2026-spring")
        );
    }

    #[test]
    fn a_mail_between_campaigns_is_outside_and_names_the_nearest() {
        let c = two_semesters();
        // 26 days after autumn closed, 37 days before spring opens.
        let s = select(&c, CLOSE, at("2026-01-10T12:00:00+08:00"));
        assert_eq!(s, outside("2025-autumn"));
        assert_eq!(s.label(), "outside_window");
        assert_eq!(s.campaign(), None);
        assert!(
            s.describe_zh().contains("2025-autumn"),
            "{}",
            s.describe_zh()
        );
        // Six days before spring opens, 57 days after autumn closed.
        assert_eq!(
            select(&c, APPLY, at("2026-02-10T12:00:00+08:00")),
            outside("2026-spring")
        );
    }

    #[test]
    fn a_campaign_without_opens_reaches_back_without_bound() {
        let c = two_semesters();
        assert_eq!(
            select(&c, APPLY, at("2019-05-01T00:00:00Z")),
            matched("2025-autumn")
        );
        let only = vec![candidate("default", None, None)];
        for when in [
            "1999-01-01T00:00:00Z",
            "2025-09-27T15:59:59Z",
            "2099-12-31T00:00:00Z",
        ] {
            assert_eq!(select(&only, APPLY, at(when)), matched("default"), "{when}");
        }
    }

    #[test]
    fn a_mail_without_a_campaign_subject_is_no_subject() {
        let c = two_semesters();
        for subject in ["请问申报表在哪里下载？", "自动回复：我正在休假", ""] {
            let s = select(&c, subject, at("2025-09-20T10:00:00+08:00"));
            assert_eq!(s, Selection::NoSubject, "{subject}");
            assert_eq!(s.label(), "no_subject");
        }
        assert_eq!(
            select(&[], APPLY, at("2025-09-20T10:00:00Z")),
            Selection::NoSubject
        );
        let m = matched("2025-autumn");
        assert_eq!((m.label(), m.campaign()), ("matched", Some("2025-autumn")));
    }

    #[test]
    fn overlapping_windows_go_to_the_one_that_started_latest() {
        // A second campaign with another wording of the subject runs inside the first one's
        // window; the tolerant grammar lets one subject match both.
        let mut c = vec![candidate("long", None, None)];
        c.push(Candidate {
            id: "special".to_string(),
            window: Window {
                opens: Some(at("2025-10-01T00:00:00+08:00")),
                closes: Some(at("2025-10-31T23:59:59+08:00")),
            },
            grammar: SubjectGrammar::new(
                "对标争先项目申报-{支部名称}",
                "对标争先项目结项-{支部名称}",
            )
            .expect("valid"),
        });
        // Without 建设: the special campaign's own wording, and the long one's with a word
        // dropped.
        let short = "对标争先项目申报-土木工程学院本科生第一党支部";
        assert!(c[0].carries(short) && c[1].carries(short));
        assert_eq!(
            select(&c, short, at("2025-10-15T10:00:00+08:00")),
            matched("special")
        );
        assert_eq!(
            select(&c, short, at("2025-11-15T10:00:00+08:00")),
            matched("long")
        );
        // Equal starts: the later entry wins.
        let twins = vec![candidate("a", None, None), candidate("b", None, None)];
        assert_eq!(
            select(&twins, APPLY, at("2025-10-15T10:00:00Z")),
            matched("b")
        );
    }

    #[test]
    fn campaigns_with_other_subjects_run_side_by_side() {
        let mut c = two_semesters();
        c.push(Candidate {
            id: "red-engine".to_string(),
            window: Window {
                opens: Some(at("2025-09-01T00:00:00+08:00")),
                closes: Some(at("2025-12-31T23:59:59+08:00")),
            },
            grammar: SubjectGrammar::new("红色引擎工程申报_{branch}", "红色引擎工程结项_{branch}")
                .expect("valid"),
        });
        let when = at("2025-10-01T10:00:00+08:00");
        assert_eq!(
            select(&c, "红色引擎工程申报_机械学院党支部", when),
            matched("red-engine")
        );
        assert_eq!(select(&c, APPLY, when), matched("2025-autumn"));
        // Outside red-engine's window, its subject names only itself as nearest.
        assert_eq!(
            select(
                &c,
                "红色引擎工程结项_机械学院党支部",
                at("2026-03-01T00:00:00Z")
            ),
            outside("red-engine")
        );
    }

    #[test]
    fn the_current_campaign() {
        let c = two_semesters();
        let cur = |when: &str| current(&c, |c| c.window, at(when)).map(|c| c.id.as_str());
        assert_eq!(cur("2025-09-27T23:59:59+08:00"), Some("2025-autumn"));
        assert_eq!(cur("2025-12-15T23:59:59+08:00"), Some("2025-autumn"));
        // Between the two: the latest that opened before now is autumn.
        assert_eq!(cur("2026-01-10T00:00:00+08:00"), Some("2025-autumn"));
        assert_eq!(cur("2026-02-16T00:00:00+08:00"), Some("2026-spring"));
        assert_eq!(cur("2027-01-01T00:00:00+08:00"), Some("2026-spring"));
        // Both closed: the latest that opened.
        let closed = vec![
            candidate("2025-autumn", None, Some("2025-12-15T23:59:59+08:00")),
            candidate(
                "2026-spring",
                Some("2026-02-16T00:00:00+08:00"),
                Some("2026-06-30T23:59:59+08:00"),
            ),
        ];
        let cur = |when: &str| current(&closed, |c| c.window, at(when)).map(|c| c.id.as_str());
        assert_eq!(cur("2026-12-07T00:00:00Z"), Some("2026-spring"));
        // Everything still to come: the one that opens first.
        let future = vec![
            candidate("b", Some("2027-02-01T00:00:00Z"), None),
            candidate(
                "a",
                Some("2026-09-01T00:00:00Z"),
                Some("2027-01-15T00:00:00Z"),
            ),
        ];
        assert_eq!(
            current(&future, |c| c.window, at("2026-01-01T00:00:00Z")).map(|c| c.id.as_str()),
            Some("a")
        );
        assert!(
            current(
                &[] as &[Candidate],
                |c| c.window,
                at("2026-01-01T00:00:00Z")
            )
            .is_none()
        );
    }

    #[test]
    fn windows_overlap_and_measure_distance() {
        let w = |o: Option<&str>, c: Option<&str>| Window {
            opens: o.map(at),
            closes: c.map(at),
        };
        let autumn = w(None, Some("2025-12-15T15:59:59Z"));
        let spring = w(Some("2026-02-15T16:00:00Z"), None);
        assert!(!autumn.overlaps(&spring) && !spring.overlaps(&autumn));
        // Touching at one instant is an overlap (both ends are inclusive).
        let touching = w(Some("2025-12-15T15:59:59Z"), None);
        assert!(autumn.overlaps(&touching) && touching.overlaps(&autumn));
        assert!(w(None, None).overlaps(&autumn));
        assert!(w(None, None).overlaps(&w(None, None)));
        assert_eq!(
            autumn.distance(at("2025-12-16T15:59:59Z")),
            chrono::Duration::days(1)
        );
        assert_eq!(
            spring.distance(at("2026-02-14T16:00:00Z")),
            chrono::Duration::days(1)
        );
        assert_eq!(
            spring.distance(at("2026-03-01T00:00:00Z")),
            chrono::Duration::zero()
        );
    }
}
