//! A whole semester on a set clock, through the real mail servers: applications, an
//! application reminder, the weekly digest, the review import, result mails, closure mails in
//! pieces, a closure reminder. The scheduler is stepped from wake-up to wake-up as the daemon
//! would; at the end every party's mailbox is read over IMAP and must hold exactly the mails it
//! should: acknowledgements, reminders, results and digests, no more, no fewer.

use crate::common::*;
use shenbao::clock::Clock;
use shenbao::config::Config;
use std::collections::BTreeMap;
use std::sync::Arc;

enum Event {
    Apply(usize),
    Review,
    Closure(usize, &'static [&'static str]),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_semester() {
    let tag = format!("s{}", std::process::id());
    let names = ["甲", "乙", "丙", "丁"];
    let branch = |i: usize| format!("测试学院{}党支部", names[i]);
    let addr = |i: usize| format!("b{}.{tag}@semester.test", i + 1);
    let mut roster = String::from("学院,支部名称,书记,书记邮箱\n");
    for i in 0..names.len() {
        roster.push_str(&format!("测试学院,{},书记{i},{}\n", branch(i), addr(i)));
    }
    let env = TestEnv::new(
        "semester",
        "intake12",
        EnvOptions {
            roster: &roster,
            max_per_sender: 1000,
            ..Default::default()
        },
    )
    .await;
    let mut text = std::fs::read_to_string(&env.config).expect("config");
    text = text.replace(
        "roster = \"roster.csv\"",
        "roster = \"roster.csv\"\nclosure_deadline = \"2025-12-15T23:59:59\"",
    );
    text.push_str(
        "\n[[reminder]]\nname = \"申报提醒\"\ndeadline = \"application\"\noffsets = [\"3d\"]\ntime = \"09:00\"\naudience = [\"not_submitted\", \"has_problems\"]\n\
         \n[[reminder]]\nname = \"结项提醒\"\ndeadline = \"closure\"\noffsets = [\"7d\"]\ntime = \"09:00\"\naudience = [\"funded_missing_closure\"]\n\
         \n[[digest]]\nname = \"周报\"\nrecipients = [\"reviewer@example.test\"]\nschedule = \"0 0 8 * * Mon\"\n",
    );
    std::fs::write(&env.config, &text).expect("config");
    let cfg = Arc::new(Config::load(&env.config).expect("config loads"));
    let (store, pipeline, wake) = shenbao::daemon::open(cfg.clone(), Clock::System)
        .await
        .expect("open");

    let sample = String::from_utf8(read(
        &root().join("tests/fixtures/samples/c010/message.eml"),
    ))
    .expect("utf-8");
    let docx = read(&root().join("tests/fixtures/office/form-base.docx"));
    let application = |i: usize| {
        with_subject(
            &sample,
            &format!(
                "=?UTF-8?B?{}?=",
                b64(&format!("对标争先建设项目申报-{}", branch(i)))
            ),
        )
        .replace("lu.fengxi27@outlook.com", &addr(i))
        .replace("Message-ID: <", &format!("Message-ID: <{tag}-app{i}-"))
        .into_bytes()
    };
    let closure = |i: usize, n: usize, files: &[&str]| {
        closure_mail(
            &addr(i),
            "intake12@example.test",
            &branch(i),
            &format!("{tag}-closure{i}-{n}@semester.test"),
            files,
            &docx,
        )
    };
    // 甲 重点, 乙 一般, 丙 不立项, 丁 never applies.
    let plan: Vec<(&str, Event)> = vec![
        ("2025-09-20T10:00:00+08:00", Event::Apply(0)),
        ("2025-09-20T11:00:00+08:00", Event::Apply(1)),
        ("2025-09-20T12:00:00+08:00", Event::Apply(2)),
        ("2025-10-08T10:00:00+08:00", Event::Review),
        (
            "2025-12-01T10:00:00+08:00",
            Event::Closure(0, &["结题报告.docx"]),
        ),
        (
            "2025-12-02T10:00:00+08:00",
            Event::Closure(1, &["结题报告.docx", "报销材料.pdf", "活动总结.docx"]),
        ),
        (
            "2025-12-10T10:00:00+08:00",
            Event::Closure(0, &["报销材料.pdf", "工作案例.docx"]),
        ),
    ];
    let deadline_of = |k: shenbao::schedule::DeadlineKind| match k {
        shenbao::schedule::DeadlineKind::Application => Some(cfg.campaign.deadline),
        shenbao::schedule::DeadlineKind::Closure => cfg.campaign.closure_deadline,
    };
    let sender = shenbao::send::Sender::new(
        store.clone(),
        Clock::System,
        cfg.smtp.clone(),
        &cfg.campaign.intake_address,
        wake,
    )
    .expect("sender");
    let mut now = utc("2025-09-15T07:00:00+08:00");
    let end = utc("2025-12-16T12:00:00+08:00");
    let mut next = 0;
    let mut closure_n = 0;
    while now < end {
        while next < plan.len() && utc(plan[next].0) <= now {
            let at = utc(plan[next].0);
            match &plan[next].1 {
                Event::Apply(i) => {
                    let id = store
                        .insert_file_message(&application(*i), Some(at), at)
                        .await
                        .expect("store")
                        .id();
                    pipeline.process(id).await.expect("process");
                }
                Event::Closure(i, files) => {
                    let id = store
                        .insert_file_message(&closure(*i, closure_n, files), Some(at), at)
                        .await
                        .expect("store")
                        .id();
                    closure_n += 1;
                    pipeline.process(id).await.expect("process");
                }
                Event::Review => {
                    let subs = shenbao::export::latest(&store).await.expect("latest");
                    let export = shenbao::export::to_xlsx("汇总表", &subs).expect("xlsx");
                    let (b0, b1, b2) = (branch(0), branch(1), branch(2));
                    let sheet = graded_export(
                        &export,
                        &[
                            (&b0, "重点", "5000"),
                            (&b1, "一般", "800"),
                            (&b2, "不立项", ""),
                        ],
                        &[],
                    );
                    let path = env.dir.join("评审结果.xlsx");
                    std::fs::write(&path, sheet).expect("write");
                    let outcome =
                        shenbao::schedule::results::import(&pipeline, &path, "评审组", at, false)
                            .await
                            .expect("import");
                    let imported = match outcome {
                        shenbao::schedule::results::ImportOutcome::Imported {
                            decisions, ..
                        } => decisions.len(),
                        other => panic!("the review imports: {other:?}"),
                    };
                    assert_eq!(imported, 3, "the review imports");
                    let results = shenbao::schedule::results::plan_results(&pipeline, at)
                        .await
                        .expect("plan results");
                    shenbao::schedule::remind::commit(&pipeline, &results.planned, at)
                        .await
                        .expect("queue results");
                }
            }
            next += 1;
        }
        shenbao::schedule::remind::tick(&pipeline, now)
            .await
            .expect("tick");
        shenbao::schedule::remind::tick(&pipeline, now)
            .await
            .expect("tick again");
        sender.drain().await.expect("drain");
        let due = shenbao::schedule::next_wakeup(
            &cfg.reminders,
            &cfg.digests,
            deadline_of,
            cfg.campaign.timezone,
            now,
        );
        now = [plan.get(next).map(|e| utc(e.0)), due, Some(end)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end);
    }
    sender.drain().await.expect("drain");

    // Every mail each party received, by kind.
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in acks(&env, "catchall").await {
        let to = m
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_string();
        let subject = m.subject().unwrap_or_default();
        let kind = if subject.starts_with("【提醒】结项") {
            "closure-reminder"
        } else if subject.starts_with("【提醒】") {
            "reminder"
        } else if subject.starts_with("【评审结果】") {
            if subject.contains("未予立项") {
                "result-not-funded"
            } else {
                "result-funded"
            }
        } else if subject.contains("结项-") {
            "closure-ack"
        } else if subject.contains("申报-") {
            "ack"
        } else {
            "other"
        };
        got.entry(to).or_default().push(kind.to_string());
    }
    for v in got.values_mut() {
        v.sort();
    }
    let want = |kinds: &[&str]| {
        let mut v: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(
        got.get(&addr(0)),
        Some(&want(&[
            "ack",
            "result-funded",
            "closure-ack",
            "closure-reminder",
            "closure-ack"
        ])),
        "甲: {got:?}"
    );
    assert_eq!(
        got.get(&addr(1)),
        Some(&want(&["ack", "result-funded", "closure-ack"])),
        "乙: {got:?}"
    );
    assert_eq!(
        got.get(&addr(2)),
        Some(&want(&["ack", "result-not-funded"])),
        "丙: {got:?}"
    );
    assert_eq!(got.get(&addr(3)), Some(&want(&["reminder"])), "丁: {got:?}");
    // The reviewer: the one Monday digest after the applications came in.
    let digests = acks(&env, "reviewer").await;
    assert_eq!(
        digests.len(),
        1,
        "{:?}",
        digests
            .iter()
            .map(|m| m.subject().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    );
    let subject = digests[0].subject().unwrap_or_default();
    assert!(
        subject.contains("新收到 3 份") && subject.contains("3/4"),
        "{subject}"
    );
}
