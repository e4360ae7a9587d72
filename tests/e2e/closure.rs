//! The closure phase per level, through the real mail servers: a 一般 project that sends a
//! 工作案例 is told its 活动总结 is still missing (the notice asks 工作案例 of 重点 and 特色
//! projects only), and completes it with a file whose *title* says 活动总结; a 重点 project's
//! `结项总结.docx` — made from the application form's template — is taken for its closure
//! report, never for a 申请表. The export then carries level, amount and closure status.

use crate::common::*;
use shenbao::clock::Clock;
use std::sync::Arc;
use std::time::Duration;

const GENERAL: &str = "测试学院一般项目党支部";
const KEY: &str = "测试学院重点项目党支部";

/// A sheet with the reviewers' decisions, as `review import` reads it.
fn review_sheet(rows: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let ws = book.add_worksheet();
    for (c, h) in ["支部名称", "评审等级", "资助金额"].iter().enumerate() {
        ws.write_string(0, c as u16, *h).expect("write");
    }
    for (r, (branch, level, amount)) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        ws.write_string(r, 0, *branch).expect("write");
        ws.write_string(r, 1, *level).expect("write");
        ws.write_string(r, 2, *amount).expect("write");
    }
    book.save_to_buffer().expect("xlsx")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closure_materials_are_checked_per_level_and_by_title() {
    let tag = std::process::id();
    let general_addr = format!("general.{tag}@closure.test");
    let key_addr = format!("key.{tag}@closure.test");
    let roster = format!(
        "学院,支部名称,书记,书记邮箱\n测试学院,{GENERAL},王一,{general_addr}\n测试学院,{KEY},王二,{key_addr}\n"
    );
    let env = TestEnv::new(
        "closure",
        "intake22",
        EnvOptions {
            roster: &roster,
            max_per_sender: 1000,
            ..Default::default()
        },
    )
    .await;
    let sheet = env.dir.join("评审.xlsx");
    std::fs::write(
        &sheet,
        review_sheet(&[(GENERAL, "一般", "1000"), (KEY, "重点", "5000")]),
    )
    .expect("write");
    let (ok, out) = env.run(&["review", "import", sheet.to_str().unwrap_or_default()]);
    assert!(ok, "{out}");

    let cfg = Arc::new(shenbao::config::Config::load(&env.config).expect("config"));
    let (store, pipeline, wake) = shenbao::daemon::open(cfg.clone(), Clock::System)
        .await
        .expect("open");
    let form = read(&root().join("tests/fixtures/office/form-base.docx"));
    // The same template retitled 活动总结, sent under a name that says nothing.
    let summary = map_zip_entries(&form, |name, bytes| {
        if name == "word/document.xml" {
            String::from_utf8(bytes)
                .expect("utf-8")
                .replace("建设项目申请表", "建设项目活动总结")
                .into_bytes()
        } else {
            bytes
        }
    });
    let mails: [(&str, &str, &[&str], &[u8]); 3] = [
        (
            GENERAL,
            &general_addr,
            &["结题报告.docx", "报销材料.pdf", "工作案例.docx"],
            &form,
        ),
        (KEY, &key_addr, &["结项总结.docx"], &form),
        (GENERAL, &general_addr, &["附件1.docx"], &summary),
    ];
    let mid = |n: usize| format!("closure-{n}-{tag}@example.edu.cn");
    let mut outcomes = Vec::new();
    for (n, (branch, from, files, docx)) in mails.iter().enumerate() {
        let raw = closure_mail(from, "intake22@example.test", branch, &mid(n), files, docx);
        let id = store
            .insert_file_message(&raw, None, chrono::Utc::now())
            .await
            .expect("store")
            .id();
        let o = pipeline
            .process(id)
            .await
            .expect("process")
            .expect("processed");
        assert_eq!(o.disposition, shenbao::pipeline::Disposition::Closure);
        outcomes.push(o.problems.iter().map(|p| p.code()).collect::<Vec<_>>());
    }
    assert_eq!(
        outcomes,
        [
            vec!["closure_incomplete"],
            vec!["closure_incomplete"],
            vec![]
        ]
    );

    // The roles as recorded.
    let pool = env.db().await;
    let roles: Vec<(String, String)> =
        sqlx::query_as("SELECT filename, role FROM attachments ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("roles");
    let role_of = |f: &str| {
        roles
            .iter()
            .find(|(name, _)| name == f)
            .map(|(_, r)| r.as_str())
    };
    assert_eq!(role_of("工作案例.docx"), Some("case_study"), "{roles:?}");
    assert_eq!(
        role_of("结项总结.docx"),
        Some("closure_report"),
        "{roles:?}"
    );
    assert_eq!(role_of("附件1.docx"), Some("activity_summary"), "{roles:?}");

    // The acknowledgements, read back over IMAP.
    let sender = shenbao::send::Sender::new(
        store.clone(),
        Clock::System,
        cfg.smtp.clone(),
        &cfg.campaign.intake_address,
        wake,
    )
    .expect("sender");
    sender.drain().await.expect("drain");
    let body_of = |n: usize| {
        let env = &env;
        async move {
            let want = mid(n);
            acks(env, "catchall")
                .await
                .iter()
                .find(|m| m.in_reply_to().as_text() == Some(want.as_str()))
                .map(|m| m.body_text(0).unwrap_or_default().to_string())
        }
    };
    wait_for(
        "the three acknowledgements",
        Duration::from_secs(30),
        || async {
            body_of(0).await.is_some() && body_of(1).await.is_some() && body_of(2).await.is_some()
        },
    )
    .await;
    let first = body_of(0).await.unwrap_or_default();
    assert!(
        first.contains("贵支部的项目为一般项目")
            && first.contains("☑ 结题报告")
            && first.contains("☑ 报销材料")
            && first.contains("☐ 活动总结（尚未收到）")
            && first.contains("识别为：工作案例")
            && !first.contains("☑ 活动总结"),
        "a 工作案例 does not stand in for the 活动总结:\n{first}"
    );
    let second = body_of(1).await.unwrap_or_default();
    assert!(
        second.contains("识别为：结题报告") && second.contains("☑ 结题报告"),
        "{second}"
    );
    assert!(
        !second.contains("项目申请表") && !second.contains("中读到的内容"),
        "结项总结.docx is not read as an application form:\n{second}"
    );
    assert!(
        second.contains("☐ 工作案例（尚未收到）") && second.contains("支部书济"),
        "{second}"
    );
    let third = body_of(2).await.unwrap_or_default();
    assert!(
        third.contains("识别为：活动总结") && third.contains("结项材料已齐全"),
        "recognised by its title:\n{third}"
    );

    // The export: level, amount and closure status (the JSON contract and the CSV).
    let json: serde_json::Value =
        serde_json::from_str(&env.cli(&["export", "--format", "json"])).expect("json");
    let closure_row = |branch: &str| {
        json["submissions"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|s| s["branch"] == branch && s["kind"] == "closure")
            })
            .cloned()
            .unwrap_or_default()
    };
    let g = closure_row(GENERAL);
    assert_eq!(
        (&g["level"], &g["amount_yuan"], &g["closure_status"]),
        (
            &serde_json::json!("一般"),
            &serde_json::json!(1000),
            &serde_json::json!("complete")
        ),
        "{g}"
    );
    assert!(
        g["fields"].is_null(),
        "a closure mail carries no form fields: {g}"
    );
    let k = closure_row(KEY);
    assert_eq!(k["level"], "重点");
    assert_eq!(k["amount_yuan"], 5000);
    assert_eq!(k["closure_status"], "incomplete");
    assert_eq!(
        k["closure_missing"],
        serde_json::json!(["报销材料", "工作案例"])
    );
    let csv = env.cli(&["export", "--format", "csv"]);
    assert!(csv.contains("评审等级,资助金额,结项状态"), "{csv}");
    assert!(
        csv.contains("重点,5000,材料未齐（缺报销材料、工作案例）"),
        "{csv}"
    );
    assert!(csv.contains("一般,1000,材料齐全"), "{csv}");
}
