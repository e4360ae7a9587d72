//! Review decisions end to end: four sample applications are registered, the consolidated sheet
//! is exported by shenbao itself, reviewers' two columns are added, and `review import` must
//! refuse a sheet with every kind of error (naming row and column, importing nothing) and take
//! a clean one; `review notify` then mails each branch its result once, threaded to its
//! application, read back over IMAP.

use crate::common::*;
use shenbao::clock::Clock;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_import_and_result_mails() {
    let env = TestEnv::new(
        "review",
        "intake11",
        EnvOptions {
            roster: &sample_roster(),
            max_per_sender: 1000,
            ..Default::default()
        },
    )
    .await;
    let cfg = Arc::new(shenbao::config::Config::load(&env.config).expect("config"));
    let (store, pipeline, _) = shenbao::daemon::open(cfg, Clock::System)
        .await
        .expect("open");
    let cases = ["c001", "c002", "c007", "c010"];
    let mut message_ids = Vec::new();
    for c in cases {
        let raw = read(&root().join(format!("tests/fixtures/samples/{c}/message.eml")));
        // Before the closure deadline (15 December): these are on time.
        let on_time = chrono::DateTime::parse_from_rfc3339("2025-12-10T10:00:00+08:00")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let id = store
            .insert_file_message(&raw, Some(on_time), chrono::Utc::now())
            .await
            .expect("store")
            .id();
        pipeline.process(id).await.expect("process");
        message_ids.push(shenbao::store::raw_message_id(&raw).expect("message id"));
    }
    let export = env.dir.join("汇总表.xlsx");
    let (ok, out) = env.run(&[
        "export",
        "--format",
        "xlsx",
        "-o",
        export.to_str().unwrap_or_default(),
    ]);
    assert!(ok, "{out}");
    let export = std::fs::read(&export).expect("export");
    let a = "汽车工程学院本科生第二党支部";
    let b = "设计创意学院2024级博士生党支部";
    let c = "经济与管理学院2023级博士生党支部";
    let d = "海洋与地球科学学院2022级本科生党支部";

    // Every kind of error at once: nothing is imported, each is named by row and column.
    let bad = graded_export(
        &export,
        &[
            (a, "重点", "6000"),
            (b, "优秀", "1000"),
            (c, "", ""),
            (d, "不立项", "500"),
        ],
        &[["不存在的党支部", "一般", "800"], [a, "特色", "3000"]],
    );
    let bad_path = env.dir.join("bad.xlsx");
    std::fs::write(&bad_path, bad).expect("write");
    let (ok, out) = env.run(&["review", "import", bad_path.to_str().unwrap_or_default()]);
    assert!(!ok, "{out}");
    for needle in [
        "5000",
        "优秀",
        "未填写评审等级",
        "不立项",
        "不存在的党支部",
        "两次",
    ] {
        assert!(out.contains(needle), "the report mentions {needle}:\n{out}");
    }
    assert!(
        out.contains("第 ") && out.contains("行"),
        "rows are named:\n{out}"
    );
    assert!(out.contains("没有导入任何结果"), "{out}");
    let pool = env.db().await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reviews")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(n, 0, "nothing half-imported");

    // A clean sheet: all four levels.
    let good = graded_export(
        &export,
        &[
            (a, "重点", "5000"),
            (b, "特色", "3000"),
            (c, "一般", "1,000"),
            (d, "不立项", ""),
        ],
        &[],
    );
    let good_path = env.dir.join("good.xlsx");
    std::fs::write(&good_path, good).expect("write");
    let (ok, out) = env.run(&[
        "review",
        "import",
        good_path.to_str().unwrap_or_default(),
        "--by",
        "测试员",
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("已导入 4 条评审结果（立项 3 个，未立项 1 个）"),
        "{out}"
    );
    let (ok, out) = env.run(&["review", "notify", "--dry-run"]);
    assert!(ok, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains("【评审结果】")).count(),
        4,
        "{out}"
    );
    let (ok, out) = env.run(&["review", "notify"]);
    assert!(ok && out.contains("评审结果 4 封已放入发件箱"), "{out}");
    // Once: a second notify (or re-importing the same sheet) sends nothing more.
    let (ok, _) = env.run(&["review", "import", good_path.to_str().unwrap_or_default()]);
    assert!(ok);
    let (_, out) = env.run(&["review", "notify"]);
    assert!(out.contains("没有需要发送的评审结果"), "{out}");

    wait_for("the result mails", Duration::from_secs(30), || async {
        acks(&env, "catchall")
            .await
            .iter()
            .filter(|m| m.subject().is_some_and(|s| s.starts_with("【评审结果】")))
            .count()
            >= 4
    })
    .await;
    let got: Vec<_> = acks(&env, "catchall")
        .await
        .into_iter()
        .filter(|m| m.subject().is_some_and(|s| s.starts_with("【评审结果】")))
        .collect();
    assert_eq!(got.len(), 4, "each branch once");
    for (branch, mid, want) in [
        (a, &message_ids[0], "重点项目"),
        (b, &message_ids[1], "特色项目"),
        (c, &message_ids[2], "一般项目"),
        (d, &message_ids[3], "未予立项"),
    ] {
        let m = got
            .iter()
            .find(|m| m.subject().is_some_and(|s| s.contains(branch)))
            .unwrap_or_else(|| panic!("{branch}: no result mail"));
        assert_eq!(
            m.in_reply_to().as_text(),
            Some(mid.as_str()),
            "{branch}: threaded to its application"
        );
        let body = m.body_text(0).unwrap_or_default().to_string();
        assert!(
            body.contains(want) || m.subject().is_some_and(|s| s.contains(want)),
            "{branch}: {want}\n{body}"
        );
        if want == "重点项目" {
            assert!(
                body.contains("工作案例") && body.contains("支部书济"),
                "{body}"
            );
        }
        if want == "一般项目" {
            assert!(
                body.contains("活动总结") && !body.contains("支部书济"),
                "{body}"
            );
        }
    }

    // The closure phase: a funded 重点 project sends its materials in two mails; a 特色 one only
    // its report; the 一般 one nothing; the unfunded branch is never asked.
    let mut text = std::fs::read_to_string(&env.config).expect("config");
    text = text.replace(
        "roster = \"roster.csv\"",
        "roster = \"roster.csv\"\nclosure_deadline = \"2025-12-15T23:59:59\"",
    );
    text.push_str("\n[[reminder]]\nname = \"结项提醒\"\ndeadline = \"closure\"\noffsets = [\"3d\"]\ntime = \"09:00\"\naudience = [\"funded_missing_closure\"]\n");
    std::fs::write(&env.config, &text).expect("config");
    let cfg = Arc::new(shenbao::config::Config::load(&env.config).expect("config"));
    let (store, pipeline, wake) = shenbao::daemon::open(cfg.clone(), Clock::System)
        .await
        .expect("open");
    let docx = read(&root().join("tests/fixtures/office/form-base.docx"));
    let closure_mail = |branch: &str, from: &str, n: usize, files: &[&str]| {
        closure_mail(
            from,
            "intake11@example.test",
            branch,
            &format!("closure-{n}-{}@example.edu.cn", std::process::id()),
            files,
            &docx,
        )
    };
    let closures = [
        (a, "2479582@example.edu.cn", vec!["结题报告.docx"]),
        (b, "xieren7052@126.com", vec!["结题报告.docx"]),
        (
            a,
            "2479582@example.edu.cn",
            vec!["报销材料.pdf", "工作案例.docx"],
        ),
    ];
    for (n, (branch, from, files)) in closures.iter().enumerate() {
        let raw = closure_mail(branch, from, n, files);
        // Before the closure deadline (15 December): these are on time.
        let on_time = chrono::DateTime::parse_from_rfc3339("2025-12-10T10:00:00+08:00")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let id = store
            .insert_file_message(&raw, Some(on_time), chrono::Utc::now())
            .await
            .expect("store")
            .id();
        let o = pipeline
            .process(id)
            .await
            .expect("process")
            .expect("processed");
        assert_eq!(o.disposition, shenbao::pipeline::Disposition::Closure);
        let codes: Vec<&str> = o.problems.iter().map(|p| p.code()).collect();
        let want: &[&str] = if n == 2 { &[] } else { &["closure_incomplete"] };
        assert_eq!(codes, want, "closure mail {n}");
    }
    let sender = shenbao::send::Sender::new(
        store.clone(),
        Clock::System,
        cfg.smtp.clone(),
        &cfg.campaign.intake_address,
        wake,
    )
    .expect("sender");
    sender.drain().await.expect("drain");
    // Accepted by Postfix is not yet delivered: wait for the three to land (a loaded machine
    // delivers in seconds, not at once).
    let closure_only = |all: Vec<mail_parser::Message<'static>>| -> Vec<_> {
        all.into_iter()
            .filter(|m| {
                m.in_reply_to()
                    .as_text()
                    .is_some_and(|r| r.starts_with("closure-"))
            })
            .collect()
    };
    wait_for(
        "the three closure acks to be delivered",
        Duration::from_secs(30),
        || async { closure_only(acks(&env, "catchall").await).len() >= 3 },
    )
    .await;
    let closure_acks = closure_only(acks(&env, "catchall").await);
    assert_eq!(closure_acks.len(), 3);
    let body_of = |n: usize| {
        let mid = format!("closure-{n}-{}@example.edu.cn", std::process::id());
        closure_acks
            .iter()
            .find(|m| m.in_reply_to().as_text() == Some(mid.as_str()))
            .map(|m| m.body_text(0).unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    let first = body_of(0);
    assert!(
        first.contains("☑ 结题报告")
            && first.contains("☐ 报销材料（尚未收到）")
            && first.contains("☐ 工作案例"),
        "{first}"
    );
    assert!(
        first.contains("支部书济"),
        "重点 projects are reminded to publish: {first}"
    );
    let last = body_of(2);
    assert!(
        last.contains("结项材料已齐全")
            && last.contains("☑ 报销材料")
            && last.contains("☑ 工作案例"),
        "{last}"
    );
    // Three days before the closure deadline: only the funded projects still missing materials.
    let planned = shenbao::schedule::remind::plan_reminders(
        &pipeline,
        chrono::DateTime::parse_from_rfc3339("2025-12-12T09:00:00+08:00")
            .expect("t")
            .with_timezone(&chrono::Utc),
    )
    .await
    .expect("plan");
    let mut reminded: Vec<String> = planned.iter().filter_map(|p| p.branch.clone()).collect();
    reminded.sort();
    let mut want = vec![b.to_string(), c.to_string()];
    want.sort();
    assert_eq!(reminded, want, "funded_missing_closure");
    let b_reminder = planned
        .iter()
        .find(|p| p.branch.as_deref() == Some(b))
        .expect("b reminded");
    assert!(
        b_reminder.text.contains("报销材料") && !b_reminder.text.contains("1. 结题报告"),
        "{}",
        b_reminder.text
    );
    // Staff see the phase and the closure counts.
    let (ok, out) = env.run(&["status"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("结项已截止（已立项 3 个，结项材料齐全 1 个，尚未齐全 2 个）"),
        "{out}"
    );
}
