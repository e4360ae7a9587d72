//! The outbox sender against the real Postfix: a chunk of due mails goes out over two SMTP
//! sessions at once (`smtp.connections`), and a recipient the server refuses for good
//! (550 at RCPT) costs that one mail, not the others in its chunk nor its lane.

use crate::common::*;
use shenbao::clock::Clock;
use shenbao::config::Config;
use std::sync::Arc;

/// A minimal mail with our Message-ID, as the pipeline would have composed it.
fn mail(to: &str, message_id: &str) -> Vec<u8> {
    format!(
        "From: intake13@example.test\r\nTo: {to}\r\nSubject: 回执测试\r\nMessage-ID: <{message_id}>\r\nDate: Sat, 20 Sep 2025 21:46:35 +0800\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n已收到。\r\n"
    )
    .into_bytes()
}

/// UIDs in `user`'s INBOX whose Message-ID is `message_id`.
async fn found(user: &str, message_id: &str) -> usize {
    let mut s = imap(user).await;
    s.select("INBOX").await.expect("SELECT");
    let n = s
        .uid_search(format!("HEADER Message-ID \"{message_id}\""))
        .await
        .expect("SEARCH")
        .len();
    let _ = s.logout().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_goes_out_over_two_sessions_and_a_refused_recipient_costs_only_its_mail() {
    let env = TestEnv::new("lanes", "intake13", EnvOptions::default()).await;
    let cfg = Arc::new(Config::load(&env.config).expect("config loads"));
    assert_eq!(cfg.smtp.connections, 2, "two sessions unless configured");
    let store = shenbao::store::Store::open(&cfg.database_connect_url(), &cfg.data_dir)
        .await
        .expect("store");
    // Seven due mails; the fourth to an address Postfix refuses (unknown user: 550). With two
    // lanes it falls to the second lane, which still has mails after it.
    let recipients = [
        "branch1@example.test",
        "branch2@example.test",
        "branch3@example.test",
        "nobody-here@example.test",
        "branch1@example.test",
        "branch2@example.test",
        "branch3@example.test",
    ];
    let now = shenbao::store::db_time(chrono::Utc::now());
    let pool = env.db().await;
    let mut ids = Vec::new();
    for (i, to) in recipients.iter().enumerate() {
        let mid = format!("lanes.{i}.{}@{}", std::process::id(), env.domain);
        sqlx::query(
            "INSERT INTO outbox (kind, message_id, to_addr, subject, raw, next_attempt_at, created_at) VALUES ('ack', $1, $2, '回执测试', $3, $4, $5)",
        )
        .bind(&mid)
        .bind(to)
        .bind(mail(to, &mid))
        .bind(&now)
        .bind(&now)
        .execute(&pool)
        .await
        .expect("queue");
        ids.push(mid);
    }
    let sender = shenbao::send::Sender::new(
        store.clone(),
        Clock::System,
        cfg.smtp.clone(),
        &cfg.campaign.intake_address,
        Arc::new(tokio::sync::Notify::new()),
    )
    .expect("sender");
    let sent = sender.drain().await.expect("drain");
    assert_eq!(sent, 6, "every mail but the refused one");
    // Both lanes sent at once, each over a session of its own. The lane whose mail was
    // refused drops that session and takes another for its next mail, so which sessions stay
    // open for the rest of the burst depends on which lane finishes first: at least one, at
    // most one per lane.
    assert_eq!(sender.peak_sessions(), 2, "both lanes sent side by side");
    assert!(
        (1..=2).contains(&sender.open_sessions()),
        "sessions kept for the burst: {}",
        sender.open_sessions()
    );

    let rows: Vec<(String, String, i64, Option<String>)> =
        sqlx::query_as("SELECT message_id, status, attempts, last_error FROM outbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("outbox");
    for (i, (mid, status, attempts, error)) in rows.iter().enumerate() {
        assert_eq!(mid, &ids[i]);
        assert_eq!(*attempts, 1, "{mid}: one attempt each");
        if i == 3 {
            assert_eq!(status, "dead", "refused for good: no retry");
            let error = error.as_deref().unwrap_or_default();
            assert!(
                error.contains("550"),
                "the server's answer is kept: {error}"
            );
        } else {
            assert_eq!(status, "sent", "{mid}: {error:?}");
        }
    }
    // Draining again sends nothing more: nothing is due.
    assert_eq!(sender.drain().await.expect("drain again"), 0);

    // Each delivered once to its recipient, and its copy once to the intake mailbox.
    for (i, to) in recipients.iter().enumerate() {
        if i == 3 {
            assert_eq!(
                found(&env.user, &ids[i]).await,
                0,
                "refused: no copy either"
            );
            continue;
        }
        let user = to.split('@').next().unwrap_or_default();
        wait_for("delivery", std::time::Duration::from_secs(20), || async {
            found(user, &ids[i]).await >= 1 && found(&env.user, &ids[i]).await >= 1
        })
        .await;
        assert_eq!(found(user, &ids[i]).await, 1, "{} once to {to}", ids[i]);
        assert_eq!(found(&env.user, &ids[i]).await, 1, "{} copied once", ids[i]);
    }
    // The copies sit in the intake INBOX; leave it empty for the next run.
    empty_inbox(&env.user).await;
}

/// The account's caps pace sending: a reminder run of four mails under `smtp.max_per_minute =
/// 4` (each mail is two recipients: the branch and the intake copy) goes out two now and two a
/// minute later, measured by Postfix's acceptance times in the outbox; `status` forecasts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_run_is_paced_by_max_per_minute() {
    let roster = "学院,支部名称,书记,书记邮箱\n\
        土木工程学院,土木工程学院本科生第一党支部,张一,branch1@example.test\n\
        土木工程学院,土木工程学院本科生第二党支部,张二,branch2@example.test\n\
        土木工程学院,土木工程学院本科生第三党支部,张三,branch3@example.test\n\
        土木工程学院,土木工程学院研究生党支部,张四,grad@example.edu.cn\n";
    let env = TestEnv::new(
        "paced",
        "intake30",
        EnvOptions {
            roster,
            ..Default::default()
        },
    )
    .await;
    let text = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(
        &env.config,
        text.replacen("[smtp]\n", "[smtp]\nmax_per_minute = 4\n", 1),
    )
    .expect("config");
    let mut daemon = env.start_daemon();
    env.wait_watermark(&mut daemon).await;
    // Three days before the deadline, at nine: the default reminder, to all four branches.
    let out = env.cli(&["remind", "--at", "2025-09-24T09:00:00+08:00"]);
    assert!(out.contains("已放入发件箱 4 封"), "{out}");
    let pool = env.db().await;
    wait_for(
        "two reminders sent",
        std::time::Duration::from_secs(40),
        || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM outbox WHERE status = 'sent'")
                .fetch_one(&pool)
                .await
                .unwrap_or(0)
                >= 2
        },
    )
    .await;
    let status = env.cli(&["status"]);
    assert!(
        status.contains("发送限额（每分钟 4 个收件人）：待发 2 封"),
        "{status}"
    );
    wait_for(
        "all four sent",
        std::time::Duration::from_secs(120),
        || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM outbox WHERE status = 'sent'")
                .fetch_one(&pool)
                .await
                .unwrap_or(0)
                == 4
        },
    )
    .await;
    let times: Vec<String> =
        sqlx::query_scalar("SELECT sent_at FROM outbox WHERE status = 'sent' ORDER BY sent_at")
            .fetch_all(&pool)
            .await
            .expect("sent times");
    let t: Vec<chrono::DateTime<chrono::Utc>> = times
        .iter()
        .map(|s| shenbao::store::parse_db_time(s).expect("time"))
        .collect();
    let gap = |a: usize, b: usize| (t[b] - t[a]).num_milliseconds() as f64 / 1000.0;
    eprintln!(
        "paced: 4 reminders × 2 recipients at 4 per minute, sent at +0, +{:.1} s, +{:.1} s, +{:.1} s",
        gap(0, 1),
        gap(0, 2),
        gap(0, 3)
    );
    assert!(gap(0, 1) < 10.0, "the first two go at once: {times:?}");
    assert!(
        gap(0, 2) >= 59.0,
        "the third waits for the minute: {times:?}"
    );
    assert!(gap(0, 3) < 75.0, "and then goes: {times:?}");
    // Each reached its branch.
    for user in ["branch1", "branch2", "branch3"] {
        assert!(
            acks(&env, user)
                .await
                .iter()
                .any(|m| m.subject().is_some_and(|s| s.contains("【提醒】"))),
            "{user} got its reminder"
        );
    }
    daemon.stop();
}
