//! Every problem code, triggered end to end through the real mail servers: applications built
//! from a sample's genuine .docx and .xlsx, patched one field at a time, are delivered to the
//! intake mailbox; the daemon must record exactly the expected codes and explain each one in
//! the acknowledgement it sends back.

use crate::common::*;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use std::time::Duration;

struct Case {
    name: &'static str,
    subject: String,
    from: String,
    files: Vec<(String, Vec<u8>)>,
    body: String,
    internal_date: &'static str,
    want: Vec<&'static str>,
}

fn mail(c: &Case, n: usize) -> Vec<u8> {
    let mut parts = MultiPart::mixed().singlepart(
        SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(c.body.clone()),
    );
    for (name, bytes) in &c.files {
        let ct = ContentType::parse("application/octet-stream").expect("content type");
        parts = parts.singlepart(Attachment::new(name.clone()).body(bytes.clone(), ct));
    }
    let from: Mailbox = c.from.parse().expect("from");
    let m = lettre::Message::builder()
        .from(from)
        .to("intake9@example.test".parse().expect("to"))
        .subject(c.subject.clone())
        .message_id(Some(format!("<problem-{n}-{}@example.edu.cn>", c.name)))
        .multipart(parts)
        .expect("message");
    m.formatted()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_problem_code_end_to_end() {
    let (docx, xlsx) = sample_files();
    let branch = "海洋与地球科学学院2022级本科生党支部";
    let subject = format!("对标争先建设项目申报-{branch}");
    let form = |edits: &[(&str, &str)]| {
        (
            "项目申请表.docx".to_string(),
            if edits.is_empty() {
                docx.clone()
            } else {
                patch_office(&docx, "word/document.xml", edits)
            },
        )
    };
    let sheet = |edits: &[(&str, &str)]| {
        (
            "申报汇总表.xlsx".to_string(),
            if edits.is_empty() {
                xlsx.clone()
            } else {
                patch_office(&xlsx, "sheet1.xml", edits)
            },
        )
    };
    let html = b"<html><head><meta charset=\"utf-8\"></head><body><table><tr><td>\xe9\xa1\xb9\xe7\x9b\xae</td></tr></table></body></html>".to_vec();
    let on_time = "2025-09-26T08:40:43+08:00";
    let case = |name, files: Vec<(String, Vec<u8>)>, want: Vec<&'static str>| Case {
        name,
        subject: subject.clone(),
        from: format!("{name} <{name}@example.edu.cn>"),
        files,
        body: "老师好，附件是我们支部的申报材料。".to_string(),
        internal_date: on_time,
        want,
    };
    let cases = vec![
        case("clean", vec![form(&[]), sheet(&[])], vec![]),
        case("nosummary", vec![form(&[])], vec!["summary_missing"]),
        case("noform", vec![sheet(&[])], vec!["form_missing"]),
        case("htmlform", vec![("项目申请表.doc".to_string(), html.clone()), sheet(&[])], vec!["form_unreadable"]),
        case("htmlsheet", vec![form(&[]), ("申报汇总表.xls".to_string(), html.clone())], vec!["summary_unreadable"]),
        case("section", vec![form(&[(">育苗成长·薪火相传<", ">文化育人<")]), sheet(&[])], vec!["section_invalid"]),
        case("role", vec![form(&[(">副书记<", ">组织委员<")]), sheet(&[])], vec!["leader_not_secretary"]),
        case("advisor", vec![form(&[(">吴睿婷<", "><")]), sheet(&[])], vec!["advisor_missing"]),
        case("overcap", vec![form(&[(">4000<", ">6000<")]), sheet(&[("<t>4000</t>", "<t>6000</t>")])], vec!["budget_over_cap"]),
        case("unparsed", vec![form(&[(">4000<", ">待定<")]), sheet(&[])], vec!["budget_unparsed"]),
        case("mismatch", vec![form(&[(">4000<", ">3500<")]), sheet(&[])], vec!["form_summary_mismatch"]),
        Case { internal_date: "2025-09-28T08:00:00+08:00", ..case("late", vec![form(&[]), sheet(&[])], vec!["late"]) },
        Case {
            subject: "对标争先建设项目申报-海洋学院不存在党支部".to_string(),
            ..case("unknown", vec![form(&[]), sheet(&[])], vec!["branch_unknown"])
        },
        Case {
            subject: format!("对标争先项目申报_{branch}"),
            ..case("wording", vec![form(&[]), sheet(&[])], vec!["subject_nonstandard"])
        },
        Case {
            body: "老师好，材料较大，用超大附件发送：\n从QQ邮箱发来的超大附件\n项目申请表.docx (1.2M, 2025年10月10日 12:00 到期)\n进入下载页面：https://mail.qq.com/cgi-bin/ftnExs_download?k=abcdef&t=exs_ftn_download&code=1234\n".to_string(),
            ..case("cloud", vec![], vec!["form_missing", "summary_missing", "cloud_attachment"])
        },
    ];

    let env = TestEnv::new(
        "problems",
        "intake9",
        EnvOptions {
            roster: &sample_roster(),
            max_per_sender: 1000,
            ..Default::default()
        },
    )
    .await;
    let mut daemon = env.start_daemon();
    env.wait_watermark(&mut daemon).await;
    let mut s = imap(&env.user).await;
    for (n, c) in cases.iter().enumerate() {
        append(&mut s, "INBOX", &mail(c, n), Some(c.internal_date)).await;
    }
    let _ = s.logout().await;
    let pool = env.db().await;
    let n = cases.len() as i64;
    wait_for("every case to be recorded", Duration::from_secs(90), || {
        daemon.assert_alive();
        let pool = &pool;
        async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM submissions")
                .fetch_one(pool)
                .await
                .unwrap_or(0)
                == n
        }
    })
    .await;
    wait_for("every acknowledgement", Duration::from_secs(60), || async {
        acks(&env, "catchall").await.len() >= cases.len()
    })
    .await;
    let got = acks(&env, "catchall").await;
    for (i, c) in cases.iter().enumerate() {
        let mid = format!("problem-{i}-{}@example.edu.cn", c.name);
        let (problems,): (String,) = sqlx::query_as("SELECT s.problems FROM submissions s JOIN messages m ON m.id = s.message_id WHERE m.message_id = $1")
            .bind(&mid)
            .fetch_one(&pool)
            .await
            .unwrap_or_else(|e| panic!("{}: not recorded: {e}", c.name));
        let codes: Vec<String> = serde_json::from_str(&problems).expect("codes");
        assert_eq!(codes, c.want, "{}: problem codes", c.name);
        let ack = got
            .iter()
            .find(|m| m.in_reply_to().as_text() == Some(mid.as_str()))
            .unwrap_or_else(|| panic!("{}: no acknowledgement", c.name));
        let body = ack.body_text(0).unwrap_or_default().to_string();
        if c.want.is_empty() {
            assert!(body.contains("材料齐全"), "{}:\n{body}", c.name);
        }
        for code in &c.want {
            let p = shenbao::campaign::rules::Problem::from_code(code).expect("known code");
            assert!(
                body.contains(p.title_zh()),
                "{}: the ack explains {code}:\n{body}",
                c.name
            );
            assert!(
                body.contains(p.fix_zh()),
                "{}: the ack says how to fix {code}:\n{body}",
                c.name
            );
        }
    }
    daemon.stop();
}
