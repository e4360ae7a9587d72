//! The mails shenbao writes: rendered from templates, wrapped with the headers that keep
//! threads together and keep auto-responders (ours and theirs) from talking to each other.
//!
//! Pure: no I/O besides reading override templates once at start. Every outgoing mail is
//! rendered to its final bytes here, so the outbox stores and resends exactly the same mail.

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use minijinja::Environment;
use serde::Serialize;
use std::path::Path;

/// The header we stamp on every mail we send; mail that carries it is never answered.
pub const LOOP_HEADER: &str = "X-Shenbao-Loop";

/// Built-in templates; a file of the same name in `ack.templates_dir` overrides one.
const BUILTIN: &[(&str, &str)] = &[
    ("ack.txt.j2", include_str!("../config/templates/ack.txt.j2")),
    (
        "subject_help.txt.j2",
        include_str!("../config/templates/subject_help.txt.j2"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("模板 {name} 有错误：{source}。请对照 config/templates/ 中的原版修改。")]
    Template {
        name: String,
        source: minijinja::Error,
    },
    #[error("读不了模板文件 {path}：{source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("地址“{0}”无法用于发信")]
    Address(String),
    #[error("生成邮件失败：{0}")]
    Build(String),
}

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Built-in templates, with overrides from `dir` where it has a file of the same name.
    pub fn load(dir: Option<&Path>) -> Result<Templates, ComposeError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, builtin) in BUILTIN {
            let text = match dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(p) => std::fs::read_to_string(&p).map_err(|source| ComposeError::Read {
                    path: p.display().to_string(),
                    source,
                })?,
                None => (*builtin).to_string(),
            };
            env.add_template_owned(name.to_string(), text)
                .map_err(|source| ComposeError::Template {
                    name: name.to_string(),
                    source,
                })?;
        }
        Ok(Templates { env })
    }

    pub fn render(&self, name: &str, ctx: impl Serialize) -> Result<String, ComposeError> {
        let tmpl = self
            .env
            .get_template(name)
            .map_err(|source| ComposeError::Template {
                name: name.to_string(),
                source,
            })?;
        tmpl.render(ctx).map_err(|source| ComposeError::Template {
            name: name.to_string(),
            source,
        })
    }
}

/// A mail ready for the outbox.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub kind: String,
    /// Without <>.
    pub message_id: String,
    pub to: String,
    pub subject: String,
    pub raw: Vec<u8>,
}

/// Everything needed to write one automatic mail.
pub struct MailSpec<'a> {
    pub kind: &'a str,
    pub from_name: &'a str,
    pub from_addr: &'a str,
    pub to_name: Option<&'a str>,
    pub to_addr: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    /// Our Message-ID, without <>; derive it from stable inputs so a replay produces the same id.
    pub message_id: String,
    /// The sender's Message-ID we answer, without <>.
    pub in_reply_to: Option<&'a str>,
    /// The sender's References, without <>; ours are those plus `in_reply_to`.
    pub references: &'a [String],
    /// Value of our loop header (the intake address).
    pub loop_value: &'a str,
    pub date: DateTime<Utc>,
    /// `Auto-Submitted` value: `auto-replied` for answers, `auto-generated` for reminders.
    pub auto_submitted: &'a str,
}

/// A stable Message-ID: `shenbao.<kind>.<key>@<domain>`.
pub fn message_id(kind: &str, key: &str, domain: &str) -> String {
    let key: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    format!("shenbao.{kind}.{key}@{domain}")
}

fn header(name: &'static str, value: impl Into<String>) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.into())
}

fn mailbox(name: Option<&str>, addr: &str) -> Result<Mailbox, ComposeError> {
    let address = addr
        .parse()
        .map_err(|_| ComposeError::Address(addr.to_string()))?;
    Ok(Mailbox::new(
        name.filter(|n| !n.trim().is_empty()).map(str::to_string),
        address,
    ))
}

/// Renders the final bytes of an automatic mail.
pub fn build(spec: &MailSpec<'_>) -> Result<Outgoing, ComposeError> {
    let mut b = Message::builder()
        .from(mailbox(Some(spec.from_name), spec.from_addr)?)
        .to(mailbox(spec.to_name, spec.to_addr)?)
        .subject(spec.subject)
        .message_id(Some(format!("<{}>", spec.message_id)))
        .date(spec.date.into())
        .raw_header(header("Auto-Submitted", spec.auto_submitted))
        // Exchange/Outlook: do not answer this with out-of-office or read receipts.
        .raw_header(header("X-Auto-Response-Suppress", "All"))
        .raw_header(header("Precedence", "auto_reply"))
        .raw_header(header(LOOP_HEADER, spec.loop_value));
    if let Some(irt) = spec.in_reply_to {
        b = b.in_reply_to(format!("<{irt}>"));
        let mut refs: Vec<String> = spec
            .references
            .iter()
            .filter(|r| r.as_str() != irt)
            .map(|r| format!("<{r}>"))
            .collect();
        refs.push(format!("<{irt}>"));
        b = b.references(refs.join(" "));
    }
    let msg = b
        .multipart(
            MultiPart::mixed().singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(spec.text.to_string()),
            ),
        )
        .map_err(|e| ComposeError::Build(e.to_string()))?;
    Ok(Outgoing {
        kind: spec.kind.to_string(),
        message_id: spec.message_id.clone(),
        to: spec.to_addr.to_string(),
        subject: spec.subject.to_string(),
        raw: msg.formatted(),
    })
}

/// `38.2 KB`, for people.
pub fn size_label(bytes: usize) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.1} KB", b / 1024.0)
    } else {
        format!("{bytes} 字节")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(refs: &'a [String]) -> MailSpec<'a> {
        MailSpec {
            kind: "ack",
            from_name: "申报系统",
            from_addr: "intake@example.test",
            to_name: Some("余晨"),
            to_addr: "xieren7052@126.com",
            subject: "Re: 对标争先建设项目申报-设计创意学院2024级博士生党支部",
            text: "您好！\n已收到。",
            message_id: message_id("ack", "42.abc", "shenbao.example.test"),
            in_reply_to: Some("orig@126.com"),
            references: refs,
            loop_value: "intake@example.test",
            date: chrono::DateTime::parse_from_rfc3339("2025-09-22T09:41:42+08:00")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            auto_submitted: "auto-replied",
        }
    }

    #[test]
    fn an_ack_carries_threading_and_loop_headers() {
        let refs = vec!["root@qq.com".to_string()];
        let out = build(&spec(&refs)).expect("builds");
        let text = String::from_utf8_lossy(&out.raw);
        assert!(text.contains("In-Reply-To: <orig@126.com>"), "{text}");
        assert!(
            text.contains("References: <root@qq.com> <orig@126.com>"),
            "{text}"
        );
        assert!(text.contains("Auto-Submitted: auto-replied"));
        assert!(text.contains("X-Auto-Response-Suppress: All"));
        assert!(text.contains("X-Shenbao-Loop: intake@example.test"));
        assert!(text.contains("Message-ID: <shenbao.ack.42.abc@shenbao.example.test>"));
        // Parse it back: the Chinese subject and body survive encoding.
        let parsed = mail_parser::MessageParser::default()
            .parse(&out.raw[..])
            .expect("parses");
        assert_eq!(
            parsed.subject(),
            Some("Re: 对标争先建设项目申报-设计创意学院2024级博士生党支部")
        );
        assert!(parsed.body_text(0).is_some_and(|b| b.contains("已收到")));
    }

    #[test]
    fn builtin_templates_compile() {
        let t = Templates::load(None).expect("builtins load");
        assert!(t.env.get_template("ack.txt.j2").is_ok());
        assert!(t.env.get_template("subject_help.txt.j2").is_ok());
    }

    #[test]
    fn the_ack_template_lays_out_one_item_per_line() {
        let t = Templates::load(None).expect("builtins load");
        let ctx = serde_json::json!({
            "greeting": "余晨同学", "organizer": "党委学生工作部", "campaign_name": "对标争先建设项目",
            "kind_label": "申报", "branch_display": "设计创意学院2024级博士生党支部（设计创意学院）",
            "match_note": null, "version": 2, "received_at": "2025年9月22日 09:41:42",
            "subject": "对标争先建设项目申报-设计创意学院2024级博士生党支部",
            "attachments": [
                {"filename": "申请表.docx", "role_label": "项目申请表", "format_label": "Word 文档", "size_label": "37.8 KB", "error": null, "entries": []},
                {"filename": "材料.zip", "role_label": "其他材料", "format_label": "压缩包", "size_label": "11.3 KB", "error": null,
                 "entries": [{"filename": "汇总表.xlsx", "role_label": "申报汇总表", "format_label": "Excel 表格", "size_label": "5.6 KB", "error": null, "entries": []}]}
            ],
            "problems": [{"code": "late", "title": "邮件在截止时间之后到达", "fix": "本邮件已登记", "detail": null}],
            "fields": [{"label": "项目名称", "value": "“科研启明星”"}, {"label": "申请经费", "value": "4000 元"}],
            "fields_source": "项目申请表",
            "exact_subject": "对标争先建设项目申报-设计创意学院2024级博士生党支部",
            "deadline": "2025年9月27日 23:59:59", "staff_contact": "学生工作部"
        });
        let text = t.render("ack.txt.j2", &ctx).expect("renders");
        for line in [
            "余晨同学：\n",
            "\n  识别的支部：设计创意学院2024级博士生党支部（设计创意学院）\n  登记版本：第 2 版（以本版为准",
            "\n  收到时间：2025年9月22日 09:41:42（北京时间）\n",
            "\n  1. 申请表.docx\n     识别为：项目申请表（Word 文档，37.8 KB）\n  2. 材料.zip\n",
            "\n     - 压缩包内：汇总表.xlsx —— 申报汇总表（Excel 表格，5.6 KB）\n",
            "发现以下 1 个问题，请按说明处理：\n  1. 邮件在截止时间之后到达\n     怎么办：本邮件已登记\n",
            "从项目申请表中读到的内容（请核对，如有误请修改后重新发送）：\n  项目名称：“科研启明星”\n  申请经费：4000 元\n\n发现以下",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(!text.contains("材料齐全"));
    }

    #[test]
    fn message_ids_are_stable_and_clean() {
        assert_eq!(
            message_id("ack", "7.ab<cd>", "d.test"),
            "shenbao.ack.7.abcd@d.test"
        );
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(size_label(500), "500 字节");
        assert_eq!(size_label(38708), "37.8 KB");
        assert_eq!(size_label(5 * 1024 * 1024), "5.0 MB");
    }
}
