//! `shenbao export` and `shenbao status`: read-only views of the store.
//!
//! The JSON export is a contract (documented in the README): one object per branch and kind,
//! for the latest version, with the attachments as received and the problem codes.

pub mod materials;
pub mod xlsx;

use crate::attach::display_text;
use crate::clock::beijing_rfc3339;
use crate::extract::field::Field;
use crate::store::Store;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExportAttachment {
    pub filename: String,
    pub role: String,
    pub format: String,
    pub declared_format: Option<String>,
    pub size: i64,
    pub sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<ExportAttachment>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExportSubmission {
    pub kind: String,
    pub branch: Option<String>,
    pub college: Option<String>,
    pub branch_in_subject: Option<String>,
    pub branch_match: String,
    pub match_score: f64,
    pub match_reason: String,
    pub version: i64,
    pub versions: i64,
    pub received_at: String,
    pub late: bool,
    pub sender: String,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub attachments: Vec<ExportAttachment>,
    pub problems: Vec<String>,
    /// What the form (or, failing that, the summary) says; null when neither could be read.
    pub fields: Option<serde_json::Value>,
    /// `form`, `summary` or null.
    pub fields_source: Option<String>,
    /// The problems with what exactly was found, in the same order.
    pub problem_details: Vec<serde_json::Value>,
    /// The version came from an address that is neither the roster's nor an earlier
    /// sender's of this branch (the secretary was copied on the acknowledgement).
    pub sender_changed: bool,
    /// When the branch was not recognised: the roster branch the form names.
    pub suggested_branch: Option<String>,
    /// The branch's current review decision (评审等级: 重点, 特色, 一般, 不立项 …); null before
    /// its review is imported. Filled by [`latest_reviewed`].
    pub level: Option<String>,
    /// The amount granted (资助金额, yuan; whole yuan as an integer); null when not funded or
    /// not reviewed.
    pub amount_yuan: Option<serde_json::Value>,
    /// The closure status (结项状态): `not_funded`, `incomplete` or `complete`; null before
    /// the branch is reviewed.
    pub closure_status: Option<String>,
    /// The closure materials still missing (when `incomplete`), as the config names them.
    pub closure_missing: Vec<String>,
}

impl ExportSubmission {
    /// 结项状态 for people: 未立项 / 材料未齐（缺…） / 材料齐全, or empty before the review.
    pub fn closure_label(&self) -> String {
        match self.closure_status.as_deref() {
            Some("not_funded") => crate::campaign::closure::ClosureStatus::NotFunded.label(),
            Some("incomplete") => crate::campaign::closure::ClosureStatus::Incomplete {
                missing: self.closure_missing.clone(),
            }
            .label(),
            Some("complete") => crate::campaign::closure::ClosureStatus::Complete.label(),
            _ => String::new(),
        }
    }
}

/// A number of yuan as the export writes it: whole yuan as an integer (3000, not 3000.0).
fn yuan_value(y: f64) -> serde_json::Value {
    if y.fract() == 0.0 && y.abs() < 1e15 {
        serde_json::Value::from(y as i64)
    } else {
        serde_json::Value::from(y)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Export {
    /// The campaign's title.
    pub campaign: String,
    /// The campaign's id (`default` for a single `[campaign]` without one), as `--campaign`
    /// takes it.
    pub campaign_id: String,
    pub generated_at: String,
    pub submissions: Vec<ExportSubmission>,
}

/// Attachments of a message, zip entries nested under their zip.
pub async fn attachments_of(store: &Store, message: i64) -> anyhow::Result<Vec<ExportAttachment>> {
    Ok(nest(store.attachments(message).await?))
}

/// Stored attachment rows as exported: zip entries nested under their zip.
fn nest(rows: Vec<crate::store::attachments::AttachmentRow>) -> Vec<ExportAttachment> {
    let mut top: Vec<(i64, ExportAttachment)> = Vec::new();
    for r in rows {
        let a = ExportAttachment {
            // Rows stored before names were cleaned at intake are cleaned here.
            filename: crate::attach::display_name(&r.filename),
            role: r.role,
            format: r.format,
            declared_format: r.declared_format,
            size: r.size,
            sha256: r.sha256,
            error: r.error,
            entries: Vec::new(),
        };
        match r.parent {
            None => top.push((r.id, a)),
            Some(parent) => {
                if let Some((_, p)) = top.iter_mut().find(|(id, _)| *id == parent) {
                    p.entries.push(a);
                }
            }
        }
    }
    top.into_iter().map(|(_, a)| a).collect()
}

/// Every branch's latest submission of each kind, in order of arrival.
pub async fn latest(store: &Store) -> anyhow::Result<Vec<ExportSubmission>> {
    let rows = store.latest_submissions().await?;
    rows_to_export(store, rows).await
}

/// Every version of one branch's submissions (matched by roster name or as written), oldest first.
pub async fn history(store: &Store, branch: &str) -> anyhow::Result<Vec<ExportSubmission>> {
    let rows = store.submission_history(branch).await?;
    rows_to_export(store, rows).await
}

async fn rows_to_export(
    store: &Store,
    rows: Vec<crate::store::submissions::SubmissionRow>,
) -> anyhow::Result<Vec<ExportSubmission>> {
    Ok(with_files(store, rows)
        .await?
        .into_iter()
        .map(|(r, files)| to_export(r, nest(files)))
        .collect())
}

/// Each row with its message's stored attachment rows, read in one batch.
async fn with_files(
    store: &Store,
    rows: Vec<crate::store::submissions::SubmissionRow>,
) -> anyhow::Result<
    Vec<(
        crate::store::submissions::SubmissionRow,
        Vec<crate::store::attachments::AttachmentRow>,
    )>,
> {
    let ids: Vec<i64> = rows.iter().map(|r| r.message).collect();
    let mut files = store.attachments_of_many(&ids).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let f = files.remove(&r.message).unwrap_or_default();
            (r, f)
        })
        .collect())
}

/// [`history`] with each version's stored attachment rows beside it (their ids, for the
/// board's downloads by id; zip entries after their zip, naming it in `parent`).
pub async fn history_with_files(
    store: &Store,
    branch: &str,
) -> anyhow::Result<
    Vec<(
        ExportSubmission,
        Vec<crate::store::attachments::AttachmentRow>,
    )>,
> {
    let rows = store.submission_history(branch).await?;
    Ok(with_files(store, rows)
        .await?
        .into_iter()
        .map(|(r, files)| (to_export(r, nest(files.clone())), files))
        .collect())
}

fn to_export(
    r: crate::store::submissions::SubmissionRow,
    attachments: Vec<ExportAttachment>,
) -> ExportSubmission {
    ExportSubmission {
        attachments,
        kind: r.kind,
        branch: r.branch,
        college: r.college,
        branch_in_subject: r.branch_text.map(|b| display_text(&b)),
        branch_match: r.match_kind,
        match_score: r.match_score,
        match_reason: r.match_reason,
        version: r.version,
        versions: r.versions,
        received_at: beijing_rfc3339(r.received_at),
        late: r.late,
        // Text from the mail, shown and exported clean like attachment names.
        sender: display_text(&r.sender),
        subject: r.subject.map(|t| display_text(&t)),
        message_id: r.message_id,
        problems: r.problems,
        fields: r.fields.map(export_fields),
        fields_source: r.fields_source,
        problem_details: r.problem_details,
        sender_changed: r.sender_changed,
        suggested_branch: r.suggested_branch,
        level: None,
        amount_yuan: None,
        closure_status: None,
        closure_missing: Vec::new(),
    }
}

/// [`latest`] with each branch's current review decision and closure status filled in (the
/// closure checklist of each level comes from the configuration): what `export` writes.
pub async fn latest_reviewed(
    store: &Store,
    levels: &[crate::config::LevelConfig],
) -> anyhow::Result<Vec<ExportSubmission>> {
    let mut subs = latest(store).await?;
    let reviewed = reviewed(store, levels).await?;
    for s in &mut subs {
        let Some(r) = s
            .branch
            .as_deref()
            .and_then(|b| reviewed.iter().find(|r| r.branch == b))
        else {
            continue;
        };
        s.level = Some(r.level.clone());
        s.amount_yuan = r
            .amount_yuan
            .filter(|_| r.status != crate::campaign::closure::ClosureStatus::NotFunded)
            .map(yuan_value);
        s.closure_status = Some(r.status.code().to_string());
        s.closure_missing = r.status.missing().to_vec();
    }
    Ok(subs)
}

/// Every branch with a current review decision and its closure status, as the store has
/// them now ([`crate::campaign::closure::reviewed`]).
pub async fn reviewed(
    store: &Store,
    levels: &[crate::config::LevelConfig],
) -> anyhow::Result<Vec<crate::campaign::closure::Reviewed>> {
    Ok(crate::campaign::closure::reviewed(
        levels,
        store.current_reviews_with_closure_roles().await?,
    ))
}

/// Every funded project (current review) with what it still owes.
pub async fn funded_projects(
    store: &Store,
    levels: &[crate::config::LevelConfig],
) -> anyhow::Result<Vec<crate::campaign::closure::ClosureState>> {
    Ok(crate::campaign::closure::funded_projects(
        reviewed(store, levels).await?,
    ))
}

/// The campaign's phase at `now` ([`crate::campaign::closure::phase`]) with the store's counts.
pub async fn phase(
    store: &Store,
    cfg: &crate::config::Config,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<String> {
    let reviews = store.current_review_count().await?;
    let funded = funded_projects(store, &cfg.levels).await?;
    Ok(crate::campaign::closure::phase(
        &cfg.campaign,
        now,
        reviews,
        &funded,
    ))
}

/// The stored fields in the export's shape: the amount as `budget_yuan` (a number, or null
/// when it is not a single amount) next to `budget_as_written`.
fn export_fields(mut v: serde_json::Value) -> serde_json::Value {
    let yuan = v
        .get("budget")
        .and_then(|b| {
            (b.get("kind")?.as_str()? == "yuan")
                .then(|| b.get("yuan").cloned())
                .flatten()
        })
        .map(|y| match y.as_f64() {
            // Whole yuan as an integer (3000, not 3000.0), as people and spreadsheets write it.
            Some(f) => yuan_value(f),
            None => y,
        })
        .unwrap_or(serde_json::Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("budget");
        o.insert("budget_yuan".to_string(), yuan);
        if let Some(b) = o.remove("branch") {
            o.insert("branch_in_form".to_string(), b);
        }
    }
    v
}

fn field(s: &ExportSubmission, key: &str) -> String {
    s.fields
        .as_ref()
        .and_then(|f| f.get(key))
        .map(|v| match v {
            serde_json::Value::String(t) => t.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

/// The consolidated 汇总表 (.xlsx) in the office's own column layout.
pub fn to_xlsx(title: &str, subs: &[ExportSubmission]) -> anyhow::Result<Vec<u8>> {
    let rows: Vec<crate::export::xlsx::XlsxRow> = subs
        .iter()
        .filter(|s| s.kind == "application")
        .map(|s| {
            let budget_yuan = s
                .fields
                .as_ref()
                .and_then(|f| f.get("budget_yuan")?.as_f64());
            let section = match field(s, Field::Section.key()) {
                x if x.is_empty() => field(s, "section_as_written"),
                x => x,
            };
            crate::export::xlsx::XlsxRow {
                college: s
                    .college
                    .clone()
                    .unwrap_or_else(|| field(s, Field::College.key())),
                branch: s
                    .branch
                    .clone()
                    .or_else(|| s.branch_in_subject.clone())
                    .unwrap_or_default(),
                project_name: field(s, Field::ProjectName.key()),
                section,
                leader: field(s, Field::Leader.key()),
                leader_role: field(s, Field::LeaderRole.key()),
                phone: field(s, Field::Phone.key()),
                advisor: field(s, Field::Advisor.key()),
                budget_yuan,
                budget_text: field(s, "budget_as_written"),
                version: s.version,
                received_at: s.received_at.replace('T', " ").chars().take(19).collect(),
                problems: xlsx_problems(s),
                level: s.level.clone().unwrap_or_default(),
                amount_yuan: s.amount_yuan.as_ref().and_then(serde_json::Value::as_f64),
                closure: s.closure_label(),
            }
        })
        .collect();
    crate::export::xlsx::write_summary_xlsx(title, &rows).map_err(anyhow::Error::msg)
}

/// The 汇总表 as `shenbao export --format xlsx` writes it — every branch's latest application
/// with its current review decision — named after the campaign: the sheet reviewers fill in
/// (评审等级, 资助金额) for `review import`, downloaded from the board's 评审 page.
pub async fn summary_xlsx(store: &Store, cfg: &crate::config::Config) -> anyhow::Result<Vec<u8>> {
    let subs = latest_reviewed(store, &cfg.levels).await?;
    to_xlsx(&format!("{}申报汇总表", cfg.campaign.name), &subs)
}

/// What the 汇总表 says an application is missing, one per line. An application whose branch
/// the roster does not know cannot be graded (`review import` needs a roster branch), so its
/// first line says so and what staff do about it: reviewers leave the row as it is.
pub const UNKNOWN_BRANCH_NOTE: &str =
    "支部未识别：须工作人员先用 shenbao assign 指定支部后才能评审，这一行请勿填写评审等级";

fn xlsx_problems(s: &ExportSubmission) -> String {
    let unknown = s.branch.is_none();
    unknown
        .then_some(UNKNOWN_BRANCH_NOTE)
        .into_iter()
        .chain(
            s.problems
                .iter()
                .filter_map(|c| crate::campaign::rules::Problem::from_code(c))
                .filter(|p| !(unknown && *p == crate::campaign::rules::Problem::BranchUnknown))
                .map(|p| p.title_zh()),
        )
        .collect::<Vec<_>>()
        .join("\n")
}

/// CSV with one row per latest submission (UTF-8 with BOM, so Excel shows the Chinese).
/// A text cell of the CSV, safe to open in Excel, WPS or LibreOffice: a cell that begins with
/// `=`, `+`, `-`, `@`, a tab or a carriage return would be read as a formula (CSV injection),
/// so it gets a leading `'`, which those programs show as text. Every cell whose text can come
/// from a mail or from people goes through here; our own numeric fields (版本, 资助金额) do
/// not: they are numbers we wrote ourselves (a version is at least 1, and `review import`
/// accepts no negative amount), so a spreadsheet should keep reading them as numbers.
pub fn csv_text(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

pub fn to_csv(subs: &[ExportSubmission]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(vec![0xEF, 0xBB, 0xBF]);
    w.write_record([
        "类型",
        "支部",
        "学院",
        "主题中的支部",
        "匹配",
        "版本",
        "收到时间",
        "逾期",
        "发件人",
        "附件",
        "问题",
        "评审等级",
        "资助金额",
        "结项状态",
        "发件人变更",
    ])?;
    for s in subs {
        let atts: Vec<String> = s
            .attachments
            .iter()
            .flat_map(|a| std::iter::once(a).chain(a.entries.iter()))
            .map(|a| format!("{}（{}，{}）", a.filename, a.role, a.format))
            .collect();
        let text = |v: &str| csv_text(v).into_owned();
        w.write_record([
            text(s.kind.as_str()),
            text(s.branch.as_deref().unwrap_or("")),
            text(s.college.as_deref().unwrap_or("")),
            text(s.branch_in_subject.as_deref().unwrap_or("")),
            text(s.branch_match.as_str()),
            s.version.to_string(),
            text(s.received_at.as_str()),
            text(if s.late { "是" } else { "否" }),
            text(s.sender.as_str()),
            text(&atts.join("；")),
            text(&s.problems.join(",")),
            text(s.level.as_deref().unwrap_or("")),
            s.amount_yuan
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            text(&s.closure_label()),
            text(if s.sender_changed { "是" } else { "" }),
        ])?;
    }
    Ok(w.into_inner()?)
}

/// One version, for people (`shenbao show`).
pub fn describe(s: &ExportSubmission) -> String {
    let mut out = format!(
        "{} 第{}版（共{}版）  {}  {}{}\n  发件人：{}  主题：{}\n",
        if s.kind == "closure" {
            "结项"
        } else {
            "申报"
        },
        s.version,
        s.versions,
        s.branch
            .as_deref()
            .or(s.branch_in_subject.as_deref())
            .unwrap_or("（未识别支部）"),
        s.received_at,
        if s.late { "（逾期）" } else { "" },
        display_text(&s.sender),
        display_text(s.subject.as_deref().unwrap_or("")),
    );
    if s.sender_changed {
        out.push_str("  发件人变更：发件地址不是名册中的联系邮箱，也没有为该支部发送过材料（回执已抄送支部书记）\n");
    }
    if let Some(b) = &s.suggested_branch {
        out.push_str(&format!(
            "  申请表中填写的支部：{b}（可用 shenbao assign 登记到该支部）\n"
        ));
    }
    let shown = [
        Field::ProjectName,
        Field::Section,
        Field::Leader,
        Field::LeaderRole,
        Field::Phone,
        Field::Advisor,
    ]
    .map(|f| (f.key(), f.label().to_string()));
    let budget = ("budget_yuan", format!("{}（元）", Field::Budget.label()));
    for (key, label) in shown.into_iter().chain([budget]) {
        let v = field(s, key);
        if !v.is_empty() {
            out.push_str(&format!("  {label}：{v}\n"));
        }
    }
    for a in s
        .attachments
        .iter()
        .flat_map(|a| std::iter::once(a).chain(a.entries.iter()))
    {
        out.push_str(&format!(
            "  附件：{}（{}，{}，{}）\n",
            a.filename,
            crate::attach::Role::parse(&a.role).label(),
            a.format
                .parse()
                .map_or("其他格式", crate::attach::Format::label),
            crate::notify::compose::size_label(usize::try_from(a.size).unwrap_or(usize::MAX))
        ));
    }
    if s.problems.is_empty() {
        out.push_str("  问题：无\n");
    } else {
        let titles: Vec<String> = s
            .problems
            .iter()
            .map(|c| match crate::campaign::rules::Problem::from_code(c) {
                Some(p) => p.title_zh().to_string(),
                None => c.clone(),
            })
            .collect();
        out.push_str(&format!("  问题：{}\n", titles.join("；")));
    }
    out
}

/// Counts for `shenbao status`.
#[derive(Debug, Serialize)]
pub struct Status {
    pub messages: Vec<(String, String, i64)>,
    pub roster_size: usize,
    pub applied: i64,
    pub applied_clean: i64,
    pub unknown_branch: i64,
    pub outbox: Vec<(String, i64)>,
    pub dead_letters: Vec<(i64, String, String, String)>,
    pub watermarks: Vec<(String, String, i64, i64)>,
    pub needs_staff: Vec<crate::store::StaffRow>,
    pub unanswered: Vec<crate::store::UnansweredRow>,
    pub sender_changes: Vec<crate::store::SenderChange>,
}

pub async fn status(store: &Store, roster_size: usize) -> anyhow::Result<Status> {
    // Independent reads, at the same time on the pool's connections.
    let (
        messages,
        applications,
        outbox,
        dead_letters,
        watermarks,
        needs_staff,
        unanswered,
        sender_changes,
    ) = tokio::try_join!(
        store.message_counts(),
        store.application_counts(),
        store.outbox_counts(),
        store.dead_letters(),
        store.watermarks(),
        store.needs_staff(None, None),
        store.unanswered(None, None),
        store.sender_changes(None, None),
    )?;
    Ok(Status {
        messages,
        roster_size,
        applied: applications.applied,
        applied_clean: applications.clean,
        unknown_branch: applications.unknown_branch,
        outbox,
        dead_letters,
        watermarks,
        needs_staff,
        unanswered,
        sender_changes,
    })
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "申报：名册共 {} 个支部，已申报 {} 个（材料无问题 {} 个），另有 {} 份无法识别支部的申报",
            self.roster_size, self.applied, self.applied_clean, self.unknown_branch
        )?;
        writeln!(
            f,
            "尚未申报：{} 个支部",
            self.roster_size
                .saturating_sub(usize::try_from(self.applied).unwrap_or(0))
        )?;
        writeln!(f, "邮件：")?;
        for (status, disp, n) in &self.messages {
            let status = match status.as_str() {
                "stored" => "待处理",
                "processed" => "已处理",
                "failed" => "处理失败",
                other => other,
            };
            let disp = match disp.as_str() {
                "-" => "（未分类）",
                d => crate::pipeline::disposition_label(d),
            };
            writeln!(f, "  {status} {disp} {n}")?;
        }
        writeln!(f, "发件箱：")?;
        if self.outbox.is_empty() {
            writeln!(f, "  （空）")?;
        }
        for (status, n) in &self.outbox {
            let status = match status.as_str() {
                "queued" => "待发送",
                "sending" => "正在发送",
                "unconfirmed" => "发送中断、待确认",
                "sent" => "已发出",
                "dead" => "已放弃",
                other => other,
            };
            writeln!(f, "  {status} {n}")?;
        }
        if !self.dead_letters.is_empty() {
            writeln!(
                f,
                "发送失败、已放弃的邮件（修好 SMTP 或收件地址后，按每行末尾的命令重发）："
            )?;
            for (id, to, subject, err) in &self.dead_letters {
                writeln!(
                    f,
                    "  #{id} → {to}  {}  [{err}]  重发：shenbao outbox retry {id}",
                    display_text(subject)
                )?;
            }
        }
        if !self.needs_staff.is_empty() {
            writeln!(
                f,
                "需要人工处理的邮件（处理完后运行 shenbao resolve 编号；识别不出支部的用 shenbao assign 编号 支部名称）："
            )?;
            for s in &self.needs_staff {
                let branch = s
                    .branch
                    .as_deref()
                    .map(|b| format!("【{b}】"))
                    .unwrap_or_default();
                writeln!(
                    f,
                    "  #{} {} {branch}{}  {}  —— {}",
                    s.id,
                    crate::clock::beijing(s.received_at),
                    display_text(&s.from),
                    display_text(&s.subject),
                    s.reason
                )?;
                if let Some(t) = &s.thread_subject {
                    writeln!(f, "      回复的是本系统的邮件：{t}")?;
                }
                if let Some(b) = &s.suggested_branch {
                    writeln!(
                        f,
                        "      申请表中填写的支部是“{b}”：确认后运行 shenbao assign {} 即可登记到该支部",
                        s.id
                    )?;
                }
            }
        }
        if !self.unanswered.is_empty() {
            writeln!(f, "未自动回复的邮件（及原因）：")?;
            for u in &self.unanswered {
                let branch = u
                    .branch
                    .as_deref()
                    .map(|b| format!("【{b}】"))
                    .unwrap_or_default();
                writeln!(
                    f,
                    "  #{} {branch}{}  {}  —— {}",
                    u.id,
                    display_text(&u.from),
                    display_text(&u.subject),
                    u.why
                )?;
            }
        }
        if !self.sender_changes.is_empty() {
            writeln!(
                f,
                "发件人变更（材料不是由名册中的联系邮箱或此前的发件人发来，回执已抄送支部书记）："
            )?;
            for c in &self.sender_changes {
                writeln!(
                    f,
                    "  #{} {} 第 {} 版{}，发件人 {}",
                    c.message,
                    c.branch,
                    c.version,
                    if c.kind == "closure" {
                        "（结项）"
                    } else {
                        ""
                    },
                    c.sender
                )?;
            }
        }
        for (account, folder, v, last) in &self.watermarks {
            writeln!(
                f,
                "IMAP {account} {folder}：UIDVALIDITY {v}，已处理到 UID {last}"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::model::Value;
    use crate::extract::sheet::{SheetLimits, read_workbook};

    fn application(branch: Option<&str>, problems: &[&str]) -> ExportSubmission {
        ExportSubmission {
            kind: "application".into(),
            branch: branch.map(str::to_string),
            college: branch.map(|_| "土木工程学院".to_string()),
            branch_in_subject: Some("土木工程学院本科生第九党支部".into()),
            branch_match: if branch.is_some() { "exact" } else { "unknown" }.into(),
            match_score: 1.0,
            match_reason: String::new(),
            version: 1,
            versions: 1,
            received_at: "2025-09-22T09:41:42+08:00".into(),
            late: false,
            sender: "a@example.test".into(),
            subject: None,
            message_id: None,
            attachments: Vec::new(),
            problems: problems.iter().map(|p| p.to_string()).collect(),
            fields: None,
            fields_source: None,
            problem_details: Vec::new(),
            sender_changed: false,
            suggested_branch: None,
            level: None,
            amount_yuan: None,
            closure_status: None,
            closure_missing: Vec::new(),
        }
    }

    #[test]
    fn unrecognised_branches_are_marked_in_the_sheet() {
        let subs = [
            application(Some("土木工程学院本科生第一党支部"), &["advisor_missing"]),
            application(None, &["branch_unknown", "advisor_missing"]),
        ];
        let bytes = to_xlsx("汇总表", &subs).unwrap();
        let wb = read_workbook(&bytes, &SheetLimits::default()).unwrap();
        let text = |r: usize, c: usize| wb.sheets[0].rows[r].get(c).map(Value::to_text);
        assert_eq!(text(2, 12).as_deref(), Some("未填写指导老师"));
        // The branch as written, and first the note that it cannot be graded yet; the plain
        // "does not match the roster" title is not repeated under it.
        assert_eq!(text(3, 2).as_deref(), Some("土木工程学院本科生第九党支部"));
        assert_eq!(
            text(3, 12),
            Some(format!("{UNKNOWN_BRANCH_NOTE}\n未填写指导老师"))
        );
    }

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_are_text() {
        let cases: &[(&str, &str)] = &[
            ("=1+1", "'=1+1"),
            (
                "=HYPERLINK(\"http://x\",\"点我\")",
                "'=HYPERLINK(\"http://x\",\"点我\")",
            ),
            ("+86 138", "'+86 138"),
            ("-2+3", "'-2+3"),
            ("-3", "'-3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("cmd|' /C calc'!A0", "cmd|' /C calc'!A0"),
            (
                "土木工程学院本科生第一党支部",
                "土木工程学院本科生第一党支部",
            ),
            ("a=1", "a=1"),
            ("", ""),
            ("'=already", "'=already"),
            (" =1", " =1"),
        ];
        for (cell, want) in cases {
            assert_eq!(csv_text(cell), *want, "csv_text({cell:?})");
        }
    }

    /// Every text cell from a mail is neutralised; version and amount stay numbers.
    #[test]
    fn the_csv_export_neutralises_formulas_from_mail() {
        let mut s = application(Some("=土木工程学院本科生第一党支部"), &[]);
        s.college = Some("+学院".into());
        s.branch_in_subject = Some("-主题支部".into());
        s.sender = "@evil@example.test".into();
        s.level = Some("=1".into());
        s.amount_yuan = Some(serde_json::json!(-3));
        s.attachments = vec![ExportAttachment {
            filename: "=cmd|' /C calc'!A0.docx".into(),
            role: "form".into(),
            format: "docx".into(),
            declared_format: None,
            size: 1,
            sha256: String::new(),
            error: None,
            entries: Vec::new(),
        }];
        let bytes = to_csv(&[s]).unwrap();
        let mut r = csv::Reader::from_reader(&bytes[3..]);
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[1], "'=土木工程学院本科生第一党支部");
        assert_eq!(&row[2], "'+学院");
        assert_eq!(&row[3], "'-主题支部");
        assert_eq!(&row[5], "1");
        assert_eq!(&row[8], "'@evil@example.test");
        assert!(row[9].starts_with("'=cmd"), "{}", &row[9]);
        assert_eq!(&row[11], "'=1");
        assert_eq!(&row[12], "-3");
        for cell in row.iter() {
            assert!(
                !cell.starts_with(['=', '+', '@', '\t', '\r']),
                "live cell {cell:?}"
            );
        }
    }
}
