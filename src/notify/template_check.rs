//! `check-config` for templates: every template (built-in, overridden in `ack.templates_dir`
//! or added there) is rendered with realistic sample data in strict mode, and the names it
//! uses are compared with the names the program gives it, so a typo such as
//! `{{ grettings }}` is reported with the file, the line and the unknown name before the
//! first mail needs it.
//!
//! The samples take every branch of the built-in templates (a note, a suggestion, a closure
//! checklist, problems …); a test renders each built-in template with its sample, so a new
//! name in a template or a view that is missing here fails in CI rather than in a staff
//! member's check. Reminders and digests use the real view types of `notify`.

use crate::notify::compose::{Templates, describe_error};
use crate::notify::{
    CollegeLine, Count, DigestRow, DigestView, MissingBranch, OutboxFailure, ProblemLine,
    ReminderView, SenderChangeItem, StaffItem, TemplateErrorItem, UnansweredItem,
};
use serde_json::{Value, json};

/// Names templates may use that are not data: minijinja's own globals and loop helpers.
const GLOBALS: &[&str] = &[
    "range",
    "dict",
    "namespace",
    "loop",
    "debug",
    "self",
    "super",
    "caller",
    "varargs",
    "kwargs",
    "true",
    "false",
    "none",
];

/// The sample data a template of this name is rendered with. A template added by staff (not
/// one of the built-in names) is a reminder rule's template: it gets a reminder's data.
pub fn sample(name: &str) -> Value {
    match name {
        "ack.txt.j2" => ack(),
        "no_materials.txt.j2" => json!({
            "greeting": "张晓明同学", "organizer": "党委学生工作部",
            "subject": "对标争先建设项目申报-土木工程学院本科生第一党支部",
            "received_at": "2025年9月22日 09:41:42", "kind_label": "申报",
            "branch": "土木工程学院本科生第一党支部", "version": 1,
            "exact_subject": "对标争先建设项目申报-土木工程学院本科生第一党支部",
            "staff_contact": "学生工作部 65980000",
        }),
        "subject_help.txt.j2" => json!({
            "greeting": "张晓明同学", "organizer": "党委学生工作部",
            "campaign_name": "对标争先建设项目", "subject": "申报材料",
            "received_at": "2025年9月22日 09:41:42",
            "exact_subject": "对标争先建设项目申报-支部名称",
            "suggestion": "土木工程学院本科生第一党支部",
            "suggestion_subject": "对标争先建设项目申报-土木工程学院本科生第一党支部",
            "deadline": "2025年9月27日 23:59:59", "staff_contact": "学生工作部 65980000",
        }),
        "result.txt.j2" => json!({
            "greeting": "张晓明同学", "campaign_name": "对标争先建设项目",
            "organizer": "党委学生工作部", "branch": "土木工程学院本科生第一党支部",
            "funded": true, "level": "重点", "amount": "5000 元",
            "implementation": "10月至12月", "closure_time": "2025年12月15日 23:59:59之前",
            "closure_subject": "对标争先建设项目结项-土木工程学院本科生第一党支部",
            "closure_materials": ["结题报告", "报销材料", "工作案例"],
            "publish_required": true, "staff_contact": "学生工作部 65980000",
        }),
        "digest.txt.j2" | "digest.html.j2" => to_value(&digest()),
        _ => to_value(&reminder()),
    }
}

fn to_value(v: &impl serde::Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn ack() -> Value {
    let attachment = |name: &str, role: &str, format: &str, entries: Value, error: Value| {
        json!({"filename": name, "role_label": role, "format_label": format,
               "size_label": "37.8 KB", "error": error, "entries": entries})
    };
    json!({
        "greeting": "张晓明同学", "organizer": "党委学生工作部",
        "campaign_name": "对标争先建设项目", "kind_label": "申报",
        "branch_display": "土木工程学院本科生第一党支部（土木工程学院）",
        "match_note": "主题中写作“土木学院本科一支部”", "version": 2,
        "received_at": "2025年9月22日 09:41:42",
        "subject": "对标争先建设项目申报-土木工程学院本科生第一党支部",
        "attachments": [
            attachment("申请表.docx", "项目申请表", "Word 文档", json!([]), Value::Null),
            attachment("材料.zip", "其他材料", "压缩包",
                json!([{"filename": "汇总表.xlsx", "role_label": "申报汇总表",
                        "format_label": "Excel 表格", "size_label": "5.6 KB",
                        "error": null, "entries": []}]),
                json!("压缩包中有一个文件无法解压")),
        ],
        "problems": [{"code": "budget_over_cap", "title": "申请经费超过上限",
                      "fix": "请按上限修改申请表后重新发送", "detail": "申请 6000 元，上限 5000 元"}],
        "fields": [{"label": "项目名称", "value": "“科研启明星”"}],
        "fields_source": "项目申请表",
        "closure": {"level": "重点", "checklist": [
            {"material": "结题报告", "present": true}, {"material": "工作案例", "present": false}],
            "complete": false, "publish": true},
        "exact_subject": "对标争先建设项目申报-土木工程学院本科生第一党支部",
        "deadline": "2025年9月27日 23:59:59", "staff_contact": "学生工作部 65980000",
        "sender_note": "本版本由 li@163.com 发来，已抄送支部书记。",
        "suggestion": "土木工程学院本科生第一党支部",
    })
}

fn problem() -> ProblemLine {
    ProblemLine {
        code: "budget_over_cap".into(),
        title: "申请经费超过上限".into(),
        fix: "请按上限修改申请表后重新发送".into(),
        detail: Some("申请 6000 元，上限 5000 元".into()),
    }
}

fn reminder() -> ReminderView {
    ReminderView {
        greeting: "张晓明同学".into(),
        organizer: "党委学生工作部".into(),
        campaign_name: "对标争先建设项目".into(),
        branch: "土木工程学院本科生第一党支部".into(),
        college: "土木工程学院".into(),
        deadline: "2025年9月27日 23:59:59".into(),
        time_left: "3 天".into(),
        exact_subject: "对标争先建设项目申报-土木工程学院本科生第一党支部".into(),
        expected_attachments: crate::notify::default_expected_attachments(),
        problems: vec![problem()],
        last_version: Some(1),
        last_received_at: Some("2025-09-22 09:41:42".into()),
        staff_contact: "学生工作部 65980000".into(),
    }
}

fn digest() -> DigestView {
    let row = |late| DigestRow {
        branch: "土木工程学院本科生第一党支部".into(),
        college: "土木工程学院".into(),
        project_name: "科研启明星".into(),
        section: "学思践悟·固本强基".into(),
        budget: "4000 元".into(),
        version: 2,
        received_at: "2025年9月22日 09:41:42".into(),
        late,
        problems: vec!["申请经费超过上限".into()],
    };
    DigestView {
        campaign_name: "对标争先建设项目".into(),
        organizer: "党委学生工作部".into(),
        rule: "daily".into(),
        period_start: Some("2025年9月21日 08:00:00".into()),
        period_end: "2025年9月22日 08:00:00".into(),
        deadline: "2025年9月27日 23:59:59".into(),
        phase: "申报阶段（距截止还有 5 天）".into(),
        roster_total: 24,
        applied: 12,
        clean: 10,
        with_problems_count: 2,
        missing_count: 12,
        late_count: 1,
        new_since: vec![row(false)],
        by_section: vec![Count {
            name: "学思践悟·固本强基".into(),
            count: 3,
        }],
        by_college: vec![CollegeLine {
            college: "土木工程学院".into(),
            roster: 4,
            applied: 2,
            clean: 1,
        }],
        with_problems: vec![row(false)],
        missing: vec![MissingBranch {
            college: "汽车工程学院".into(),
            branch: "汽车工程学院本科生第二党支部".into(),
            secretary: "李华".into(),
        }],
        late: vec![row(true)],
        needs_staff: vec![StaffItem {
            id: 7,
            from: "li@163.com".into(),
            subject: "申报材料".into(),
            reason: "识别不出支部".into(),
            received_at: "2025年9月22日 09:41:42".into(),
            branch: Some("土木工程学院本科生第一党支部".into()),
            suggested_branch: Some("土木工程学院本科生第一党支部".into()),
            thread_subject: Some("Re: 对标争先建设项目申报-土木工程学院本科生第一党支部（已收到，第1版，材料齐全）".into()),
        }],
        unanswered: vec![UnansweredItem {
            id: 8,
            from: "li@163.com".into(),
            subject: "请问截止时间".into(),
            branch: Some("土木工程学院本科生第一党支部".into()),
            why: "问题留给工作人员回答".into(),
            received_at: "2025年9月22日 09:41:42".into(),
        }],
        sender_changes: vec![SenderChangeItem {
            branch: "土木工程学院本科生第一党支部".into(),
            kind_label: "申报".into(),
            version: 2,
            sender: "li@163.com".into(),
            received_at: "2025年9月22日 09:41:42".into(),
        }],
        outbox_failures: vec![OutboxFailure {
            id: 3,
            to: "zhang@tongji.edu.cn".into(),
            subject: "Re: 对标争先建设项目申报".into(),
            error: "收件地址不存在".into(),
            status: "dead".into(),
        }],
        sending: Some(
            "发送限额（每小时 500 个收件人）：待发 40 封，按限额预计 2025年9月22日 10:00:00 全部发出".into(),
        ),
        template_errors: vec![TemplateErrorItem {
            at: "2025年9月22日 09:41:42".into(),
            template: "ack.txt.j2".into(),
            error: "templates/ack.txt.j2 第 1 行：未知的名称“grettings”".into(),
        }],
        attachment_name: "申报汇总表-2025-09-22.xlsx".into(),
    }
}

/// The first line (1-based) where `name` occurs as a whole identifier inside `{{ }}` or `{% %}`.
fn line_of(source: &str, name: &str) -> Option<usize> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut line = 1;
    let mut in_tag = false;
    let mut i = 0;
    let bytes = source.as_bytes();
    while i < source.len() {
        let rest = &source[i..];
        if rest.starts_with("{{") || rest.starts_with("{%") {
            in_tag = true;
        } else if rest.starts_with("}}") || rest.starts_with("%}") {
            in_tag = false;
        } else if bytes[i] == b'\n' {
            line += 1;
        } else if in_tag
            && rest.starts_with(name)
            && !source[..i].chars().next_back().is_some_and(ident)
            && !rest[name.len()..].chars().next().is_some_and(ident)
        {
            return Some(line);
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// Whether the dotted `path` (`closure.level`) exists in the sample.
fn known(sample: &Value, path: &str) -> Result<(), String> {
    let mut v = sample;
    for (i, part) in path.split('.').enumerate() {
        match v {
            Value::Object(m) => match m.get(part) {
                Some(next) => v = next,
                None => {
                    return Err(path.split('.').take(i + 1).collect::<Vec<_>>().join("."));
                }
            },
            // A list, a string or null: what is inside is checked when rendering.
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// Every problem of every loaded template, one Chinese sentence each (empty: all good).
pub fn check(t: &Templates) -> Vec<String> {
    let mut problems = Vec::new();
    for name in t.names() {
        let data = sample(&name);
        let origin = t.origin(&name);
        let source = t.source(&name).unwrap_or_default();
        let available = || match &data {
            Value::Object(m) => m.keys().cloned().collect::<Vec<_>>().join("、"),
            _ => String::new(),
        };
        let mut lines = Vec::new();
        for used in t.names_used(&name) {
            let top = used.split('.').next().unwrap_or_default();
            if GLOBALS.contains(&top) {
                continue;
            }
            if let Err(unknown) = known(&data, &used) {
                let line = line_of(source, unknown.rsplit('.').next().unwrap_or(&unknown));
                lines.push(line);
                problems.push(format!(
                    "{origin}{}：未知的名称“{unknown}”（这个模板可用的名称：{}）",
                    line.map(|l| format!(" 第 {l} 行")).unwrap_or_default(),
                    available()
                ));
            }
        }
        if let Err(e) = t.render(&name, &data) {
            let crate::notify::compose::ComposeError::Template { source: err, .. } = &e else {
                problems.push(format!("{origin}：{e}"));
                continue;
            };
            // The same unknown name, already reported with its list of names.
            if err.kind() == minijinja::ErrorKind::UndefinedError && lines.contains(&err.line()) {
                continue;
            }
            problems.push(describe_error(&origin, err));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> std::path::PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "shenbao-tcheck-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        for (name, text) in files {
            std::fs::write(d.join(name), text).expect("write");
        }
        d
    }

    #[test]
    fn every_builtin_template_renders_with_its_sample() {
        let t = Templates::builtin().expect("builtins");
        assert_eq!(check(&t), Vec::<String>::new());
        for name in t.names() {
            let text = t.render(&name, sample(&name)).expect("renders");
            assert!(
                text.contains("土木工程学院") || text.contains("对标争先"),
                "{name}"
            );
        }
    }

    #[test]
    fn a_typo_is_reported_with_file_line_and_name() {
        let builtin = crate::notify::compose::builtin_templates()
            .find(|(n, _)| *n == "ack.txt.j2")
            .map(|(_, t)| t)
            .expect("ack");
        let edited = builtin.replacen("{{ greeting }}", "{{ grettings }}", 1);
        let d = dir_with(&[("ack.txt.j2", &edited)]);
        let t = crate::config::load_templates(Some(&d)).expect("loads: the syntax is fine");
        let problems = check(&t);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let p = &problems[0];
        assert!(
            p.contains(&d.join("ack.txt.j2").display().to_string()),
            "{p}"
        );
        assert!(p.contains("第 1 行"), "{p}");
        assert!(p.contains("“grettings”"), "{p}");
        assert!(p.contains("greeting"), "lists the names: {p}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn typos_in_branches_loops_and_filters_are_found() {
        for (text, want) in [
            // Only in a branch the sample might not take: found by the names check.
            (
                "a\n{% if closure %}{{ closure.lvel }}{% endif %}",
                "第 2 行：未知的名称“closure.lvel”",
            ),
            // Inside a loop: found by rendering.
            (
                "{% for a in attachments %}\n{{ a.filenme }}\n{% endfor %}",
                "第 2 行：未知的名称",
            ),
            ("{{ version | frmat }}", "第 1 行：未知的过滤器"),
            ("x\ny\n{% if %}", "第 3 行：语法错误"),
        ] {
            let d = dir_with(&[("ack.txt.j2", text)]);
            let problems = match crate::config::load_templates(Some(&d)) {
                Ok(t) => check(&t),
                Err(crate::notify::compose::ComposeError::Template { source, .. }) => {
                    vec![describe_error("ack.txt.j2", &source)]
                }
                Err(e) => vec![e.to_string()],
            };
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "{text:?}: {problems:?}"
            );
            let _ = std::fs::remove_dir_all(&d);
        }
    }

    #[test]
    fn an_added_reminder_template_is_checked_with_reminder_data() {
        let d = dir_with(&[
            ("second.txt.j2", "{{ greeting }}：{{ time_left }}后截止。"),
            ("third.txt.j2", "{{ greeting }}：{{ tiem_left }}后截止。"),
        ]);
        let t = crate::config::load_templates(Some(&d)).expect("loads");
        let problems = check(&t);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("third.txt.j2 第 1 行"), "{problems:?}");
        assert!(problems[0].contains("“tiem_left”"), "{problems:?}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_failing_override_falls_back_to_the_builtin_and_says_why() {
        let d = dir_with(&[("result.txt.j2", "{{ greeting }}\n{{ amout }}")]);
        let t = crate::config::load_templates(Some(&d)).expect("loads");
        let data = sample("result.txt.j2");
        let builtin = Templates::builtin()
            .expect("builtins")
            .render("result.txt.j2", &data)
            .expect("renders");
        let (text, err) = t
            .render_or_builtin("result.txt.j2", &data)
            .expect("falls back");
        assert_eq!(text, builtin);
        let err = err.expect("the error is returned");
        assert!(err.contains("第 2 行"), "{err}");
        assert!(err.contains("“amout”"), "{err}");
        assert!(err.contains("result.txt.j2"), "{err}");
        // A template that works is used as it is, without an error.
        let ok = dir_with(&[("result.txt.j2", "{{ greeting }}：{{ amount }}")]);
        let t = crate::config::load_templates(Some(&ok)).expect("loads");
        let (text, err) = t
            .render_or_builtin("result.txt.j2", &data)
            .expect("renders");
        assert_eq!((text.as_str(), err), ("张晓明同学：5000 元", None));
        // An added template falls back to the built-in it stands for.
        let added = dir_with(&[("second.txt.j2", "{{ nope }}")]);
        let t = crate::config::load_templates(Some(&added)).expect("loads");
        let (text, err) = t
            .render_or("second.txt.j2", "reminder.txt.j2", reminder())
            .expect("falls back");
        assert!(text.contains("张晓明同学"), "{text}");
        assert!(err.is_some_and(|e| e.contains("“nope”")));
        for d in [d, ok, added] {
            let _ = std::fs::remove_dir_all(&d);
        }
    }

    #[test]
    fn lines_of_names() {
        assert_eq!(line_of("a\n{{ x }}", "x"), Some(2));
        // Outside a tag, and inside a longer name, it is not the name.
        assert_eq!(line_of("x\n{{ xy }}\n{{ x }}", "x"), Some(3));
        assert_eq!(line_of("{{ a.x }}", "x"), Some(1));
        assert_eq!(line_of("{{ y }}", "x"), None);
        assert_eq!(line_of("中文\n{% if x %}", "x"), Some(2));
    }
}
