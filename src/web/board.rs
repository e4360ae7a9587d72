//! What the board shows, computed from what the store returned: each roster branch's state,
//! the per-college counts, problems by code, the time to the next deadline. Pure: plain data
//! in, plain data out (the handlers in `web/mod.rs` read the store and render).

use crate::campaign::roster::Branch;
use crate::export::ExportSubmission;
use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// A roster branch's state on the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum State {
    NotApplied,
    Problems,
    Late,
    SenderChanged,
    Complete,
}

impl State {
    pub const ALL: [State; 5] = [
        State::NotApplied,
        State::Problems,
        State::Complete,
        State::Late,
        State::SenderChanged,
    ];

    pub fn label(self) -> &'static str {
        match self {
            State::NotApplied => "未申报",
            State::Problems => "有问题",
            State::Late => "迟交",
            State::SenderChanged => "发件人变更",
            State::Complete => "材料齐全",
        }
    }

    /// The query value (`?state=…`).
    pub fn code(self) -> &'static str {
        match self {
            State::NotApplied => "none",
            State::Problems => "problems",
            State::Late => "late",
            State::SenderChanged => "sender",
            State::Complete => "complete",
        }
    }

    pub fn from_code(code: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.code() == code)
    }
}

/// The state of a branch whose latest application is `latest`: problems first (the branch
/// must act), then late, then a changed sender (staff should look), else complete. Lateness
/// is itself a problem code (`late`); alone, it makes the branch 迟交, not 有问题.
pub fn state_of(latest: Option<&ExportSubmission>) -> State {
    latest.map_or(State::NotApplied, |s| {
        state_from(&s.problems, s.late, s.sender_changed)
    })
}

/// [`state_of`] for an application with these problem codes and flags.
pub fn state_from(problems: &[String], late: bool, sender_changed: bool) -> State {
    let late_code = crate::campaign::rules::Problem::Late.code();
    if problems.iter().any(|p| p != late_code) {
        State::Problems
    } else if late || !problems.is_empty() {
        State::Late
    } else if sender_changed {
        State::SenderChanged
    } else {
        State::Complete
    }
}

/// One row of the 支部 page.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BranchRow {
    pub college: String,
    pub name: String,
    pub state: State,
    pub state_label: &'static str,
    /// 申报板块 as the latest application's form (or summary) gives it.
    pub section: Option<String>,
    pub version: Option<i64>,
    pub received_at: Option<String>,
    pub problems: Vec<String>,
    /// The level it was funded at in the campaign before this one ("上学期已立项"), if it was
    /// ([`mark_previously_funded`]).
    pub previous_level: Option<String>,
    /// The branch's and the college's names normalised, as the search compares them.
    #[serde(skip)]
    pub search_key: String,
}

/// A branch's latest application, in the few columns 总览 and 支部 show (the store's
/// `board_latest`).
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    /// The roster name.
    pub branch: String,
    pub version: i64,
    pub received_at: DateTime<Utc>,
    pub late: bool,
    pub sender_changed: bool,
    /// The problem codes.
    pub problems: Vec<String>,
    /// 申报板块 as the form (or summary) gives it.
    pub section: Option<String>,
}

/// The branch's and the college's names normalised, as the search compares them.
pub fn search_key(b: &Branch) -> String {
    format!(
        "{}\n{}",
        crate::textnorm::normalize(&b.name),
        crate::textnorm::normalize(&b.college)
    )
}

/// [`search_key`] of every roster branch, in roster order. The roster does not change while
/// the board runs, so the board computes them once instead of on every re-read (at 10,000
/// branches normalising the names took ~20 ms of every re-read).
pub fn search_keys(roster: &[Branch]) -> Vec<String> {
    roster.iter().map(search_key).collect()
}

/// Every roster branch with its state, in roster order, from the latest applications.
/// `keys` are the roster's [`search_keys`] (a branch without one gets it computed).
pub fn branch_rows(
    roster: &[Branch],
    keys: &[String],
    latest: &[Latest],
    tz: chrono_tz::Tz,
) -> Vec<BranchRow> {
    let by_branch: HashMap<&str, &Latest> = latest.iter().map(|s| (s.branch.as_str(), s)).collect();
    roster
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let s = by_branch.get(b.name.as_str()).copied();
            let state = s.map_or(State::NotApplied, |s| {
                state_from(&s.problems, s.late, s.sender_changed)
            });
            BranchRow {
                search_key: keys.get(i).cloned().unwrap_or_else(|| search_key(b)),
                college: b.college.clone(),
                name: b.name.clone(),
                state,
                state_label: state.label(),
                section: s.and_then(|s| s.section.clone()),
                version: s.map(|s| s.version),
                received_at: s.map(|s| minute(s.received_at.with_timezone(&tz))),
                problems: s
                    .map(|s| s.problems.iter().map(|c| problem_title(c)).collect())
                    .unwrap_or_default(),
                previous_level: None,
            }
        })
        .collect()
}

/// Marks the rows of the branches funded in the previous campaign (`funded`: branch → level,
/// from that campaign's current review decisions).
pub fn mark_previously_funded(rows: &mut [BranchRow], funded: &HashMap<String, String>) {
    for r in rows {
        r.previous_level = funded.get(&r.name).cloned();
    }
}

/// `2025-09-26 08:40`: what `format("%Y-%m-%d %H:%M")` gives, without parsing the format
/// string for each of 10,000 rows.
fn minute<T: Datelike + Timelike>(t: T) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// `2025-09-26T08:40:43+08:00` (the export's Beijing time) as `2025-09-26 08:40`.
pub fn short_time(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// A problem code in words (the code itself when it is not one shenbao knows).
pub fn problem_title(code: &str) -> String {
    crate::campaign::rules::Problem::from_code(code)
        .map(|p| p.title_zh().to_string())
        .unwrap_or_else(|| code.to_string())
}

/// The filters of the 支部 page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub college: Option<String>,
    pub state: Option<State>,
    /// A 板块 (or part of its name).
    pub section: Option<String>,
    /// Part of the branch's or the college's name.
    pub search: Option<String>,
    /// Only the branches funded in the previous campaign ("上学期已立项").
    pub previously_funded: bool,
}

pub fn filter_rows<'a>(rows: &'a [BranchRow], f: &Filter) -> Vec<&'a BranchRow> {
    let needle = f
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(crate::textnorm::normalize);
    let section = f
        .section
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(crate::textnorm::normalize);
    rows.iter()
        .filter(|r| {
            section.as_deref().is_none_or(|x| {
                r.section
                    .as_deref()
                    .is_some_and(|s| crate::textnorm::normalize(s).contains(x))
            })
        })
        .filter(|r| {
            f.college
                .as_deref()
                .is_none_or(|c| c.is_empty() || r.college == c)
        })
        .filter(|r| f.state.is_none_or(|s| r.state == s))
        .filter(|r| !f.previously_funded || r.previous_level.is_some())
        .filter(|r| needle.as_deref().is_none_or(|n| r.search_key.contains(n)))
        .collect()
}

/// One page of a long list: which rows it shows and how many pages there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pager {
    /// 1-based, within `1..=pages`.
    pub page: usize,
    /// At least 1, even for an empty list.
    pub pages: usize,
    /// The rows shown: `start..end`.
    pub start: usize,
    pub end: usize,
}

impl Pager {
    /// Page `asked` (1-based; out of range or missing gives the nearest page) of `total`
    /// rows, `per` rows a page.
    pub fn new(total: usize, asked: Option<usize>, per: usize) -> Pager {
        let per = per.max(1);
        let pages = total.div_ceil(per).max(1);
        let page = asked.unwrap_or(1).clamp(1, pages);
        let start = (page - 1) * per;
        Pager {
            page,
            pages,
            start: start.min(total),
            end: (start + per).min(total),
        }
    }
}

/// Applied and not applied in one college.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CollegeCount {
    pub college: String,
    pub applied: u32,
    pub not_applied: u32,
}

/// Per college, in the order colleges first appear in the roster.
pub fn college_counts(rows: &[BranchRow]) -> Vec<CollegeCount> {
    let mut out: Vec<CollegeCount> = Vec::new();
    for r in rows {
        let college = if r.college.is_empty() {
            "（未写学院）".to_string()
        } else {
            r.college.clone()
        };
        let i = match out.iter().position(|c| c.college == college) {
            Some(i) => i,
            None => {
                out.push(CollegeCount {
                    college,
                    applied: 0,
                    not_applied: 0,
                });
                out.len() - 1
            }
        };
        if r.state == State::NotApplied {
            out[i].not_applied += 1;
        } else {
            out[i].applied += 1;
        }
    }
    out
}

/// How many of the latest applications (recognised or not) have each problem, most first.
pub fn problems_by_code(latest: &[Latest]) -> Vec<(String, String, usize)> {
    let mut n: BTreeMap<&str, usize> = BTreeMap::new();
    for s in latest {
        for p in &s.problems {
            *n.entry(p.as_str()).or_default() += 1;
        }
    }
    let mut v: Vec<(String, String, usize)> = n
        .into_iter()
        .map(|(code, k)| (code.to_string(), problem_title(code), k))
        .collect();
    v.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    v
}

/// Arrivals per day (in the campaign's zone) for the `days` days ending with `now`'s day,
/// oldest first; days without arrivals count 0.
pub fn arrivals_per_day(
    times: &[DateTime<Utc>],
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
    days: u32,
) -> Vec<(chrono::NaiveDate, u32)> {
    let today = now.with_timezone(&tz).date_naive();
    let first = today - chrono::Duration::days(i64::from(days.max(1)) - 1);
    let mut out: Vec<(chrono::NaiveDate, u32)> = first
        .iter_days()
        .take_while(|d| *d <= today)
        .map(|d| (d, 0))
        .collect();
    for t in times {
        let d = t.with_timezone(&tz).date_naive();
        if let Some(i) = usize::try_from((d - first).num_days())
            .ok()
            .filter(|i| *i < out.len())
        {
            out[i].1 += 1;
        }
    }
    out
}

/// “距申报截止还有 3 天 4 小时” for the next deadline after `now`, or that all have passed.
pub fn next_deadline(deadlines: &[(&str, DateTime<Utc>)], now: DateTime<Utc>) -> String {
    let next = deadlines
        .iter()
        .filter(|(_, d)| *d > now)
        .min_by_key(|(_, d)| *d);
    match next {
        Some((name, d)) => {
            let left = *d - now;
            let (days, hours, minutes) = (
                left.num_days(),
                left.num_hours() % 24,
                left.num_minutes() % 60,
            );
            let span = if days > 0 {
                format!("{days} 天 {hours} 小时")
            } else if hours > 0 {
                format!("{hours} 小时 {minutes} 分钟")
            } else {
                format!("{} 分钟", minutes.max(1))
            };
            format!("距{name}还有 {span}（{}）", crate::clock::beijing(*d))
        }
        None => match deadlines.iter().max_by_key(|(_, d)| *d) {
            Some((name, d)) => format!("{name}已过（{}）", crate::clock::beijing(*d)),
            None => "没有设定截止时间".to_string(),
        },
    }
}

// 支部详情 (one branch's page).

/// The latest application among one branch's versions (`branch`'s own, not those still
/// filed under the name as written): what its state on 支部 is computed from.
pub fn latest_application<'a>(
    versions: impl IntoIterator<Item = &'a ExportSubmission>,
    branch: &str,
) -> Option<&'a ExportSubmission> {
    versions
        .into_iter()
        .filter(|s| s.kind == "application" && s.branch.as_deref() == Some(branch))
        .max_by_key(|s| s.version)
}

/// A version's fields as 支部详情 shows them: (label, value) in the order of the notice's
/// 汇总表, with the labels of the field catalogue; fields not found are left out. A 板块 or
/// an amount that was not understood shows as written.
pub fn field_rows(fields: Option<&serde_json::Value>) -> Vec<(&'static str, String)> {
    use crate::extract::field::Field;
    let Some(f) = fields else {
        return Vec::new();
    };
    let text = |key: &str| match f.get(key) {
        Some(serde_json::Value::String(t)) => t.trim().to_string(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    Field::ALL
        .into_iter()
        .filter_map(|field| {
            let value = match field {
                Field::Branch => text("branch_in_form"),
                Field::Section => match text("section") {
                    s if s.is_empty() => text("section_as_written"),
                    s => s,
                },
                Field::Budget => match text("budget_yuan") {
                    y if y.is_empty() => text("budget_as_written"),
                    y => format!("{y} 元"),
                },
                other => text(other.key()),
            };
            (!value.is_empty()).then_some((field.label(), value))
        })
        .collect()
}

/// A version's problems in words: the title, and what exactly was found when the check
/// said (`problem_details`, in the same order as the codes).
pub fn problem_lines(codes: &[String], details: &[serde_json::Value]) -> Vec<String> {
    codes
        .iter()
        .map(|code| {
            let detail = details
                .iter()
                .find(|d| d.get("code").and_then(|c| c.as_str()) == Some(code.as_str()))
                .and_then(|d| d.get("detail")?.as_str())
                .map(str::trim)
                .filter(|d| !d.is_empty());
            match detail {
                Some(d) => format!("{}（{d}）", problem_title(code)),
                None => problem_title(code),
            }
        })
        .collect()
}

/// An outbox mail's delivery state: a code for the style sheet and the words staff read.
pub fn delivery(status: &str, attempts: i64) -> (&'static str, &'static str) {
    match status {
        "sent" => ("sent", "已发出"),
        "dead" => ("dead", "发送失败，已放弃"),
        "queued" if attempts > 0 => ("retrying", "发送失败，等待重试"),
        "queued" => ("queued", "排队待发"),
        "sending" => ("queued", "正在发送"),
        "unconfirmed" => ("retrying", "发送中断，正在确认"),
        _ => ("queued", "状态未知"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(branch: &str, problems: &[&str], late: bool, changed: bool) -> ExportSubmission {
        ExportSubmission {
            kind: "application".into(),
            branch: Some(branch.into()),
            college: None,
            branch_in_subject: None,
            branch_match: "exact".into(),
            match_score: 1.0,
            match_reason: String::new(),
            version: 2,
            versions: 2,
            received_at: "2025-09-26T08:40:43+08:00".into(),
            late,
            sender: "a@b".into(),
            subject: None,
            message_id: None,
            attachments: vec![],
            problems: problems.iter().map(|p| p.to_string()).collect(),
            fields: None,
            fields_source: None,
            problem_details: vec![],
            sender_changed: changed,
            suggested_branch: None,
            level: None,
            amount_yuan: None,
            closure_status: None,
            closure_missing: vec![],
        }
    }

    fn lat(branch: &str, problems: &[&str], section: Option<&str>) -> Latest {
        Latest {
            branch: branch.into(),
            version: 2,
            received_at: DateTime::parse_from_rfc3339("2025-09-26T00:40:43Z")
                .expect("time")
                .with_timezone(&Utc),
            late: false,
            sender_changed: false,
            problems: problems.iter().map(|p| p.to_string()).collect(),
            section: section.map(str::to_string),
        }
    }

    fn branch(college: &str, name: &str) -> Branch {
        Branch {
            college: college.into(),
            name: name.into(),
            secretary: String::new(),
            email: String::new(),
        }
    }

    #[test]
    fn the_state_of_a_branch() {
        let cases = [
            (None, State::NotApplied),
            (Some(sub("a", &[], false, false)), State::Complete),
            (
                Some(sub("a", &["advisor_missing"], false, false)),
                State::Problems,
            ),
            (
                Some(sub("a", &["advisor_missing"], true, true)),
                State::Problems,
            ),
            (Some(sub("a", &[], true, false)), State::Late),
            (Some(sub("a", &[], true, true)), State::Late),
            (Some(sub("a", &[], false, true)), State::SenderChanged),
            (Some(sub("a", &["late"], true, false)), State::Late),
            (Some(sub("a", &["late"], false, false)), State::Late),
            (
                Some(sub("a", &["late", "form_missing"], true, true)),
                State::Problems,
            ),
        ];
        for (s, want) in cases {
            assert_eq!(state_of(s.as_ref()), want, "{s:?}");
        }
    }

    #[test]
    fn times_are_shortened() {
        assert_eq!(short_time("2025-09-26T08:40:43+08:00"), "2025-09-26 08:40");
        assert_eq!(short_time("garbled"), "garbled");
    }

    #[test]
    fn state_codes_round_trip_and_labels_are_the_issues() {
        for s in State::ALL {
            assert_eq!(State::from_code(s.code()), Some(s));
        }
        assert_eq!(State::from_code("x"), None);
        let labels: Vec<_> = State::ALL.iter().map(|s| s.label()).collect();
        assert_eq!(
            labels,
            ["未申报", "有问题", "材料齐全", "迟交", "发件人变更"]
        );
    }

    fn rows() -> Vec<BranchRow> {
        let roster = [
            branch("土木工程学院", "土木一支部"),
            branch("土木工程学院", "土木二支部"),
            branch("海洋学院", "海洋支部"),
            branch("", "无学院支部"),
        ];
        let latest = [
            lat("土木一支部", &["advisor_missing"], None),
            lat("海洋支部", &[], Some("学思践悟·固本强基")),
            lat("不在名册", &[], None),
        ];
        branch_rows(
            &roster,
            &search_keys(&roster),
            &latest,
            chrono_tz::Asia::Shanghai,
        )
    }

    /// The keys computed once give the rows computed each time; a roster longer than its
    /// keys still gets keys, and the time reads as `format` would write it.
    #[test]
    fn rows_reuse_the_rosters_search_keys() {
        let roster = [
            branch("土木工程学院", "土木一支部"),
            branch("海洋学院", "海洋　支部"),
        ];
        let latest = [lat("海洋　支部", &[], None)];
        let tz = chrono_tz::Asia::Shanghai;
        let keys = search_keys(&roster);
        assert_eq!(keys[1], search_key(&roster[1]));
        let full = branch_rows(&roster, &keys, &latest, tz);
        let short = branch_rows(&roster, &keys[..1], &latest, tz);
        let got: Vec<_> = full.iter().map(|r| r.search_key.as_str()).collect();
        assert_eq!(
            got,
            short
                .iter()
                .map(|r| r.search_key.as_str())
                .collect::<Vec<_>>()
        );
        assert_eq!(got, keys.iter().map(String::as_str).collect::<Vec<_>>());
        let t = latest[0].received_at.with_timezone(&tz);
        assert_eq!(
            full[1].received_at.as_deref(),
            Some(t.format("%Y-%m-%d %H:%M").to_string().as_str())
        );
    }

    #[test]
    fn rows_follow_the_roster_in_the_campaigns_time() {
        let r = rows();
        let got: Vec<_> = r.iter().map(|r| (r.name.as_str(), r.state)).collect();
        assert_eq!(
            got,
            [
                ("土木一支部", State::Problems),
                ("土木二支部", State::NotApplied),
                ("海洋支部", State::Complete),
                ("无学院支部", State::NotApplied),
            ]
        );
        assert_eq!(r[0].problems, ["未填写指导老师"]);
        assert_eq!(r[2].section.as_deref(), Some("学思践悟·固本强基"));
        assert_eq!(r[0].section, None);
        assert_eq!(r[0].version, Some(2));
        assert_eq!(r[1].version, None);
        // 00:40 UTC is 08:40 in Beijing.
        assert_eq!(r[0].received_at.as_deref(), Some("2025-09-26 08:40"));
        assert_eq!(r[1].received_at, None);
    }

    #[test]
    fn counts_per_college_in_roster_order() {
        let c = college_counts(&rows());
        let got: Vec<_> = c
            .iter()
            .map(|c| (c.college.as_str(), c.applied, c.not_applied))
            .collect();
        assert_eq!(
            got,
            [
                ("土木工程学院", 1, 1),
                ("海洋学院", 1, 0),
                ("（未写学院）", 0, 1)
            ]
        );
        assert!(college_counts(&[]).is_empty());
    }

    #[test]
    fn filters_combine() {
        let f = |college: Option<&str>, state: Option<State>, search: Option<&str>| {
            filter_rows(
                &rows(),
                &Filter {
                    college: college.map(String::from),
                    state,
                    section: None,
                    search: search.map(String::from),
                    previously_funded: false,
                },
            )
            .into_iter()
            .map(|r| r.name.clone())
            .collect::<Vec<_>>()
        };
        assert_eq!(f(None, None, None).len(), 4);
        assert_eq!(f(Some(""), None, Some("  ")).len(), 4);
        assert_eq!(
            f(Some("土木工程学院"), None, None),
            ["土木一支部", "土木二支部"]
        );
        assert_eq!(
            f(None, Some(State::NotApplied), None),
            ["土木二支部", "无学院支部"]
        );
        assert_eq!(
            f(Some("土木工程学院"), Some(State::NotApplied), None),
            ["土木二支部"]
        );
        assert_eq!(f(None, None, Some("海洋")), ["海洋支部"]);
        // The college's name matches too.
        assert_eq!(
            f(None, None, Some("土木工程")),
            ["土木一支部", "土木二支部"]
        );
        assert!(f(None, Some(State::Late), None).is_empty());
        assert!(f(None, None, Some("<script>")).is_empty());
        let by_section = |section: &str| {
            filter_rows(
                &rows(),
                &Filter {
                    section: Some(section.to_string()),
                    ..Filter::default()
                },
            )
            .into_iter()
            .map(|r| r.name.clone())
            .collect::<Vec<_>>()
        };
        assert_eq!(by_section("学思践悟·固本强基"), ["海洋支部"]);
        // Part of the name, and a full-width space or middle dot written differently.
        assert_eq!(by_section("学思践悟"), ["海洋支部"]);
        assert_eq!(by_section(" "), by_section(""));
        assert_eq!(by_section("").len(), 4);
        assert!(by_section("党建+").is_empty());
    }

    /// "上学期已立项": the rows of branches funded in the previous campaign carry its level,
    /// and the filter keeps only those, with the other filters.
    #[test]
    fn the_previous_campaigns_funded_branches_are_a_filter() {
        let mut rows = rows();
        let funded: HashMap<String, String> = [
            ("海洋支部".to_string(), "重点".to_string()),
            ("土木二支部".to_string(), "一般".to_string()),
            ("不在名册".to_string(), "特色".to_string()),
        ]
        .into();
        mark_previously_funded(&mut rows, &funded);
        let levels: Vec<(&str, Option<&str>)> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.previous_level.as_deref()))
            .collect();
        assert_eq!(
            levels,
            [
                ("土木一支部", None),
                ("土木二支部", Some("一般")),
                ("海洋支部", Some("重点")),
                ("无学院支部", None),
            ]
        );
        let names = |rows: &[BranchRow], f: &Filter| {
            filter_rows(rows, f)
                .into_iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
        };
        let only = Filter {
            previously_funded: true,
            ..Filter::default()
        };
        assert_eq!(names(&rows, &only), ["土木二支部", "海洋支部"]);
        assert_eq!(
            names(
                &rows,
                &Filter {
                    state: Some(State::NotApplied),
                    ..only.clone()
                }
            ),
            ["土木二支部"],
            "funded last term, not applied this term"
        );
        assert_eq!(names(&rows, &Filter::default()).len(), 4);
        // Marked again with nothing funded (a first campaign): no row keeps a level.
        mark_previously_funded(&mut rows, &HashMap::new());
        assert!(names(&rows, &only).is_empty());
    }

    #[test]
    fn pages_cover_every_row_once() {
        assert_eq!(
            Pager::new(0, None, 200),
            Pager {
                page: 1,
                pages: 1,
                start: 0,
                end: 0
            }
        );
        assert_eq!(
            Pager::new(200, Some(1), 200),
            Pager {
                page: 1,
                pages: 1,
                start: 0,
                end: 200
            }
        );
        assert_eq!(
            Pager::new(201, Some(2), 200),
            Pager {
                page: 2,
                pages: 2,
                start: 200,
                end: 201
            }
        );
        // Out of range: the nearest page.
        assert_eq!(Pager::new(201, Some(9), 200).page, 2);
        assert_eq!(Pager::new(201, Some(0), 200).page, 1);
        assert_eq!(
            Pager::new(5, Some(3), 0).pages,
            5,
            "at least one row a page"
        );
        for total in [0, 1, 199, 200, 201, 10_000, 10_001] {
            let first = Pager::new(total, None, 200);
            let mut seen = 0;
            for p in 1..=first.pages {
                let pg = Pager::new(total, Some(p), 200);
                assert_eq!(pg.start, seen, "{total} page {p}");
                assert!(pg.end - pg.start <= 200);
                seen = pg.end;
            }
            assert_eq!(seen, total);
        }
    }

    #[test]
    fn problems_counted_by_code_most_first() {
        let latest = [
            lat("a", &["advisor_missing", "form_missing"], None),
            lat("b", &["advisor_missing"], None),
            lat("c", &["no_such_code"], None),
        ];
        let p = problems_by_code(&latest);
        assert_eq!(p[0], ("advisor_missing".into(), "未填写指导老师".into(), 2));
        assert_eq!(p.len(), 3);
        assert!(p.iter().any(|x| x.1 == "no_such_code"));
        assert!(problems_by_code(&[]).is_empty());
    }

    #[test]
    fn arrivals_are_counted_per_day_in_the_campaigns_zone() {
        let d = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        let tz = chrono_tz::Asia::Shanghai;
        let now = d("2025-09-27T10:00:00+08:00");
        let times = [
            // 23:30 UTC on the 25th is the 26th in Beijing.
            d("2025-09-25T23:30:00Z"),
            d("2025-09-26T08:00:00+08:00"),
            d("2025-09-27T09:00:00+08:00"),
            // Outside the window: too old, and in the future.
            d("2025-09-20T09:00:00+08:00"),
            d("2025-09-28T09:00:00+08:00"),
        ];
        let got: Vec<(String, u32)> = arrivals_per_day(&times, tz, now, 3)
            .into_iter()
            .map(|(day, n)| (day.to_string(), n))
            .collect();
        assert_eq!(
            got,
            [
                ("2025-09-25".to_string(), 0),
                ("2025-09-26".to_string(), 2),
                ("2025-09-27".to_string(), 1)
            ]
        );
        assert_eq!(arrivals_per_day(&[], tz, now, 14).len(), 14);
        assert_eq!(arrivals_per_day(&[], tz, now, 0).len(), 1);
    }

    #[test]
    fn time_to_the_next_deadline() {
        let d = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        let apply = d("2025-09-27T23:59:59+08:00");
        let close = d("2026-06-30T23:59:59+08:00");
        let both = [("申报截止", apply), ("结项截止", close)];
        let t = next_deadline(&both, d("2025-09-24T20:59:59+08:00"));
        assert!(t.starts_with("距申报截止还有 3 天 3 小时"), "{t}");
        let t = next_deadline(&both, d("2025-09-27T21:29:59+08:00"));
        assert!(t.starts_with("距申报截止还有 2 小时 30 分钟"), "{t}");
        let t = next_deadline(&both, d("2025-09-27T23:59:30+08:00"));
        assert!(t.starts_with("距申报截止还有 1 分钟"), "{t}");
        let t = next_deadline(&both, d("2025-09-28T00:00:00+08:00"));
        assert!(t.starts_with("距结项截止还有"), "{t}");
        let t = next_deadline(&both, d("2026-07-01T00:00:00+08:00"));
        assert!(t.starts_with("结项截止已过"), "{t}");
        assert_eq!(next_deadline(&[], apply), "没有设定截止时间");
    }

    #[test]
    fn the_latest_application_of_the_branch_itself() {
        let mut v1 = sub("海洋支部", &[], false, false);
        v1.version = 1;
        let mut v3 = sub("海洋支部", &["late"], true, false);
        v3.version = 3;
        let mut closure = sub("海洋支部", &[], false, false);
        closure.kind = "closure".into();
        closure.version = 9;
        let mut unknown = sub("海洋支部", &[], false, false);
        unknown.branch = None;
        unknown.version = 7;
        let versions = [v3.clone(), v1, closure, unknown];
        assert_eq!(
            latest_application(&versions, "海洋支部").map(|s| s.version),
            Some(3)
        );
        assert_eq!(
            state_of(latest_application(&versions, "海洋支部")),
            State::Late
        );
        assert!(latest_application(&versions, "别的支部").is_none());
        assert!(latest_application(&[][..], "海洋支部").is_none());
    }

    #[test]
    fn fields_in_the_summary_sheets_order_with_its_labels() {
        let f = serde_json::json!({
            "college": "海洋学院",
            "branch_in_form": "海洋支部",
            "project_name": "“育苗”工程",
            "section": null,
            "section_as_written": "育苗成长",
            "leader": " 朱语嫣 ",
            "leader_role": "",
            "phone": "18224039607",
            "email": null,
            "advisor": "吴睿婷",
            "budget_yuan": 4000,
            "budget_as_written": "4000",
        });
        let rows = field_rows(Some(&f));
        let got: Vec<(&str, &str)> = rows.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("学院", "海洋学院"),
                ("支部名称", "海洋支部"),
                ("项目名称", "“育苗”工程"),
                ("申报板块", "育苗成长"),
                ("项目负责人", "朱语嫣"),
                ("联系方式", "18224039607"),
                ("指导老师", "吴睿婷"),
                ("申请经费", "4000 元"),
            ]
        );
        let unclear = serde_json::json!({ "budget_yuan": null, "budget_as_written": "四千元左右", "section": "学思践悟" });
        let got = field_rows(Some(&unclear));
        assert_eq!(
            got,
            [
                ("申报板块", "学思践悟".to_string()),
                ("申请经费", "四千元左右".to_string())
            ]
        );
        assert!(field_rows(None).is_empty());
    }

    #[test]
    fn problems_in_words_with_what_was_found() {
        let codes = vec![
            "budget_over_cap".to_string(),
            "late".to_string(),
            "x".to_string(),
        ];
        let details = vec![
            serde_json::json!({ "code": "budget_over_cap", "detail": "申请经费 6000 元" }),
            serde_json::json!({ "code": "late", "detail": null }),
        ];
        let lines = problem_lines(&codes, &details);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].ends_with("（申请经费 6000 元）"), "{lines:?}");
        assert_eq!(lines[1], "邮件在截止时间之后到达");
        assert_eq!(lines[2], "x");
        assert!(problem_lines(&[], &details).is_empty());
    }

    #[test]
    fn delivery_states_in_words() {
        assert_eq!(delivery("sent", 1), ("sent", "已发出"));
        assert_eq!(delivery("queued", 0), ("queued", "排队待发"));
        assert_eq!(delivery("queued", 2).0, "retrying");
        assert_eq!(delivery("dead", 5).0, "dead");
        assert_eq!(delivery("unconfirmed", 1).0, "retrying");
        assert_eq!(delivery("sending", 1).0, "queued");
        assert_eq!(delivery("??", 0).1, "状态未知");
    }
}
