//! A whole application window on a set clock, through the real mail servers: six branches,
//! some apply early, one with a problem it never fixes, one fixes its problem, one never
//! applies, one applies late. The scheduler is stepped from wake-up to wake-up as the daemon
//! would (each step run twice, and the pipeline reopened halfway, as after a restart); the
//! deadline is moved once. Then the reminders and digests are read back over IMAP: each branch
//! got exactly the reminders its state called for, the reviewer exactly one digest per period
//! with something new, and what `--dry-run` planned is what was sent.

use crate::common::*;
use shenbao::clock::Clock;
use shenbao::config::Config;
use std::collections::BTreeMap;
use std::sync::Arc;

struct Apply {
    at: &'static str,
    branch: usize,
    clean: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_campaign() {
    let tag = format!("c{}", std::process::id());
    let names = ["第一", "第二", "第三", "第四", "第五", "第六"];
    let addr = |i: usize| format!("b{}.{tag}@campaign.test", i + 1);
    let mut roster = String::from("学院,支部名称,书记,书记邮箱\n");
    for (i, n) in names.iter().enumerate() {
        roster.push_str(&format!("测试学院,测试学院{n}党支部,书记{i},{}\n", addr(i)));
    }
    let env = TestEnv::new(
        "campaign",
        "intake10",
        EnvOptions {
            roster: &roster,
            max_per_sender: 1000,
            ..Default::default()
        },
    )
    .await;
    let mut text = std::fs::read_to_string(&env.config).expect("config");
    text.push_str(
        "\n[[reminder]]\nname = \"申报截止提醒\"\ndeadline = \"application\"\noffsets = [\"7d\", \"3d\", \"1d\"]\ntime = \"09:00\"\naudience = [\"not_submitted\", \"has_problems\"]\n\
         \n[[digest]]\nname = \"日报\"\nrecipients = [\"reviewer@example.test\"]\nschedule = \"0 0 8 * * Mon-Fri\"\nsend_when_empty = false\n",
    );
    std::fs::write(&env.config, &text).expect("config");

    let clean = String::from_utf8(read(
        &root().join("tests/fixtures/samples/c010/message.eml"),
    ))
    .expect("utf-8");
    let no_summary = String::from_utf8(read(
        &root().join("tests/fixtures/samples/c002/message.eml"),
    ))
    .expect("utf-8");
    // Branch 0 early and clean; 1 without a summary and never fixes it; 2 clean after the
    // 7-day reminder; 3 with a problem, fixed before the 1-day reminder; 4 never; 5 late.
    let plan = [
        Apply {
            at: "2025-09-16T10:00:00+08:00",
            branch: 0,
            clean: true,
        },
        Apply {
            at: "2025-09-17T15:00:00+08:00",
            branch: 1,
            clean: false,
        },
        Apply {
            at: "2025-09-22T11:00:00+08:00",
            branch: 2,
            clean: true,
        },
        Apply {
            at: "2025-09-25T16:00:00+08:00",
            branch: 3,
            clean: false,
        },
        Apply {
            at: "2025-09-26T07:30:00+08:00",
            branch: 3,
            clean: true,
        },
        Apply {
            at: "2025-09-28T10:00:00+08:00",
            branch: 5,
            clean: true,
        },
    ];
    let mail = |a: &Apply, n: usize| {
        let base = if a.clean { &clean } else { &no_summary };
        let subject = format!("对标争先建设项目申报-测试学院{}党支部", names[a.branch]);
        with_subject(base, &format!("=?UTF-8?B?{}?=", b64(&subject)))
            .replace("3906048146@qq.com", &addr(a.branch))
            .replace("xieren7052@126.com", &addr(a.branch))
            .replace("Message-ID: <", &format!("Message-ID: <{tag}-{n}-"))
            .into_bytes()
    };

    let mut cfg = Arc::new(Config::load(&env.config).expect("config loads"));
    let (mut store, mut pipeline, mut wake) = shenbao::daemon::open(cfg.clone(), Clock::System)
        .await
        .expect("open");
    let mut now = utc("2025-09-15T07:00:00+08:00");
    let end = utc("2025-09-30T12:00:00+08:00");
    let mut applied = 0;
    let mut steps = 0;
    let mut planned_to: BTreeMap<String, usize> = BTreeMap::new();
    let mut planned_digests: Vec<(String, String)> = Vec::new();
    while now < end {
        // Mail that arrived up to this instant.
        while applied < plan.len() && utc(plan[applied].at) <= now {
            let a = &plan[applied];
            let id = store
                .insert_file_message(&mail(a, applied), Some(utc(a.at)), utc(a.at))
                .await
                .expect("store")
                .id();
            pipeline.process(id).await.expect("process");
            applied += 1;
        }
        // What a dry run would show, then the step itself, twice (a second daemon, a restart).
        for p in shenbao::schedule::remind::plan_reminders(&pipeline, now)
            .await
            .expect("plan")
        {
            *planned_to.entry(p.to).or_default() += 1;
        }
        for d in shenbao::schedule::remind::plan_digests(&pipeline, now, false)
            .await
            .expect("plan digests")
        {
            if d.mail.is_some() {
                planned_digests.push((d.subject.clone(), d.text.clone()));
            }
        }
        shenbao::schedule::remind::tick(&pipeline, now)
            .await
            .expect("tick");
        shenbao::schedule::remind::tick(&pipeline, now)
            .await
            .expect("tick again");
        let sender = shenbao::send::Sender::new(
            store.clone(),
            Clock::set(now),
            cfg.smtp.clone(),
            &cfg.campaign.intake_address,
            wake.clone(),
        )
        .expect("sender");
        sender.drain().await.expect("drain");
        steps += 1;
        if steps == 6 {
            // A restart: everything reopened from the database.
            let (s2, p2, w2) = shenbao::daemon::open(cfg.clone(), Clock::System)
                .await
                .expect("reopen");
            (store, pipeline, wake) = (s2, p2, w2);
        }
        if now >= utc("2025-09-20T09:00:00+08:00")
            && cfg.campaign.deadline == utc("2025-09-27T23:59:59+08:00")
            && steps > 8
        {
            // The office extends the deadline by a day after the 7-day reminder went out.
            let moved = text.replace(
                "deadline = \"2025-09-27T23:59:59\"",
                "deadline = \"2025-09-28T23:59:59\"",
            );
            std::fs::write(&env.config, &moved).expect("config");
            cfg = Arc::new(Config::load(&env.config).expect("config loads"));
            let (s2, p2, w2) = shenbao::daemon::open(cfg.clone(), Clock::System)
                .await
                .expect("reopen");
            (store, pipeline, wake) = (s2, p2, w2);
        }
        let next_event = plan.get(applied).map(|a| utc(a.at));
        let next_due = shenbao::schedule::next_wakeup(
            &cfg.reminders,
            &cfg.digests,
            |_| Some(cfg.campaign.deadline),
            cfg.campaign.timezone,
            now,
        );
        now = [next_event, next_due, Some(end)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end);
    }

    // Read back what arrived.
    let sent = acks(&env, "catchall").await;
    let mut reminders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &sent {
        let subject = m.subject().unwrap_or_default().to_string();
        if subject.starts_with("【提醒】") {
            let to = m
                .to()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_string();
            reminders
                .entry(to)
                .or_default()
                .push(m.date().map(|d| d.to_rfc3339()).unwrap_or_default());
        }
    }
    let count = |i: usize| reminders.get(&addr(i)).map(Vec::len).unwrap_or(0);
    // 7 days before (09-20 09:00, deadline 09-27): branches 1 (problem), 2, 3, 4, 5 (not yet).
    // Deadline moved to 09-28: 3 days before is 09-25 09:00: branches 1, 3, 4, 5.
    // 1 day before is 09-27 09:00: branches 1, 4, 5 (3 fixed its problem on 09-26).
    let want = [0, 3, 1, 2, 3, 3];
    for (i, w) in want.iter().enumerate() {
        assert_eq!(
            count(i),
            *w,
            "branch {i}: reminders {:?}",
            reminders.get(&addr(i))
        );
    }
    // Nobody got "7 days left" twice although the moved deadline gave 7d a new date.
    // The dry runs planned exactly what was sent.
    for i in 0..names.len() {
        assert_eq!(
            planned_to.get(&addr(i)).copied().unwrap_or(0),
            count(i),
            "branch {i}: dry run vs sent"
        );
    }

    // Digests: one per weekday morning after something arrived, none on weekends, none empty.
    let digests: Vec<_> = acks(&env, "reviewer").await;
    let mut days: Vec<String> = digests
        .iter()
        .map(|m| {
            m.date()
                .map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
                .unwrap_or_default()
        })
        .collect();
    days.sort();
    // Arrivals: Tue 16, Wed 17, Mon 22, Thu 25 + Fri 26 07:30, Sun 28 → digests Wed 17, Thu 18,
    // Tue 23, Fri 26, Mon 29 (dates in the Date header are UTC: 08:00 Beijing is 00:00 UTC).
    assert_eq!(
        days,
        [
            "2025-09-17",
            "2025-09-18",
            "2025-09-23",
            "2025-09-26",
            "2025-09-29"
        ],
        "{days:?}"
    );
    // Counts: one new (latest) application each time, and the running total of branches.
    let mut by_day: Vec<(String, String)> = digests
        .iter()
        .map(|m| {
            let day = m
                .date()
                .map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
                .unwrap_or_default();
            (day, m.subject().unwrap_or_default().to_string())
        })
        .collect();
    by_day.sort();
    for ((day, subject), applied) in by_day.iter().zip([1, 2, 3, 4, 5]) {
        assert!(subject.contains("新收到 1 份"), "{day}: {subject}");
        assert!(
            subject.contains(&format!("共 {applied}/6 个支部已申报")),
            "{day}: {subject}"
        );
    }
    // What the dry run planned is, word for word, what the reviewer received.
    assert_eq!(planned_digests.len(), digests.len());
    for m in &digests {
        let subject = m.subject().unwrap_or_default();
        let body = m.body_text(0).unwrap_or_default();
        let norm = |t: &str| t.replace("\r\n", "\n").trim().to_string();
        let planned = planned_digests
            .iter()
            .find(|(s, _)| s == subject)
            .map(|(_, t)| norm(t));
        assert_eq!(
            planned.as_deref(),
            Some(norm(&body).as_str()),
            "{subject}: sent text differs from the dry run"
        );
    }
    for m in &digests {
        assert!(
            m.attachments().count() >= 1,
            "the digest carries the 汇总表"
        );
        let html = m.body_html(0).unwrap_or_default();
        assert!(html.contains("测试学院"), "HTML part present");
    }
}
