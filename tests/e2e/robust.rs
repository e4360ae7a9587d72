//! The daemon under stress and odd mail, through the real servers: a kill -9 in the middle of
//! a batch, IDLE latency, and mail that must not be answered (or answered only once).

use crate::common::*;
use std::time::{Duration, Instant};

/// c001 rewritten into `n` distinct applications from distinct senders.
fn batch(n: usize) -> Vec<(String, Vec<u8>)> {
    let template = String::from_utf8(read(
        &root().join("tests/fixtures/samples/c001/message.eml"),
    ))
    .expect("utf-8 sample");
    (0..n)
        .map(|i| {
            let mid = format!("restart-{i}-{}@batch.example.edu.cn", std::process::id());
            let raw = template
                .replace(
                    "81a7713a.02fa.19967605ac0.Coremail.2479582@example.edu.cn",
                    &mid,
                )
                .replace(
                    "2479582@example.edu.cn",
                    &format!("sender{i}@example.edu.cn"),
                );
            assert!(raw.contains(&mid), "the template's Message-ID was replaced");
            (mid, raw.into_bytes())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_batch_loses_and_doubles_nothing() {
    const N: usize = 60;
    let env = TestEnv::new(
        "restart",
        "intake3",
        EnvOptions {
            roster: &sample_roster(),
            max_per_sender: 1000,
            ..Default::default()
        },
    )
    .await;
    let mut s = imap(&env.user).await;
    let mut daemon = env.start_daemon();
    env.wait_watermark(&mut daemon).await;
    let mails = batch(N);
    for (_, raw) in &mails {
        append(&mut s, &env.folder, raw, Some("2025-09-20T21:46:35+08:00")).await;
    }
    let _ = s.logout().await;

    // Crash once part of the batch is in. Looked at every 5 ms, not at wait_for's pace: the
    // whole batch is processed in well under a second.
    let pool = env.db().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while scalar(
        &pool,
        "SELECT COUNT(*) FROM messages WHERE status = 'processed'",
    )
    .await
        < 8
    {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for part of the batch to be processed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    daemon.kill();
    // Messages are stored a fetch (up to 50) at a time, then processed one by one: the kill
    // lands among the processing.
    let at_kill = scalar(
        &pool,
        "SELECT COUNT(*) FROM messages WHERE status = 'processed' AND disposition != 'own_copy'",
    )
    .await;
    assert!(
        at_kill < N as i64,
        "the kill came mid-batch ({at_kill} of {N} processed)"
    );

    let mut daemon = env.start_daemon();
    wait_for("every message to be processed and answered", Duration::from_secs(120), || {
        daemon.assert_alive();
        let pool = &pool;
        async move {
            scalar(pool, "SELECT COUNT(*) FROM messages WHERE status = 'processed' AND disposition != 'own_copy'").await == N as i64
                && scalar(pool, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'").await == N as i64
        }
    })
    .await;
    wait_for(
        "all acknowledgements delivered",
        Duration::from_secs(60),
        || async { acks(&env, "catchall").await.len() >= N },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert_eq!(
        scalar(
            &pool,
            "SELECT COUNT(*) FROM messages WHERE disposition != 'own_copy'"
        )
        .await,
        N as i64,
        "no message stored twice"
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT COUNT(DISTINCT uid) FROM messages WHERE disposition != 'own_copy'"
        )
        .await,
        N as i64
    );
    assert_eq!(
        scalar(&pool, "SELECT COUNT(*) FROM submissions").await,
        N as i64
    );
    assert_eq!(
        scalar(&pool, "SELECT COUNT(DISTINCT version) FROM submissions").await,
        N as i64,
        "versions 1..N of the one branch, none repeated"
    );
    assert_eq!(
        scalar(&pool, "SELECT MAX(version) FROM submissions").await,
        N as i64
    );
    assert_eq!(
        scalar(&pool, "SELECT COUNT(*) FROM outbox").await,
        N as i64,
        "one ack queued per message"
    );
    let got = acks(&env, "catchall").await;
    assert_eq!(got.len(), N, "exactly one ack per message delivered");
    let mut answered: Vec<String> = got
        .iter()
        .filter_map(|m| m.in_reply_to().as_text().map(str::to_string))
        .collect();
    answered.sort();
    answered.dedup();
    assert_eq!(answered.len(), N, "every message answered, none twice");
    for (mid, _) in &mails {
        assert!(answered.contains(mid), "{mid} answered");
    }
    wait_for(
        "the intake folder to empty",
        Duration::from_secs(20),
        || async { count(&env.user, &env.folder).await == 0 },
    )
    .await;
    wait_for(
        "the processed folder to hold the batch and our copies",
        Duration::from_secs(20),
        || async { count(&env.user, &env.processed).await as usize == 2 * N },
    )
    .await;
    let log = daemon.stop();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_notices_new_mail_within_seconds() {
    let env = TestEnv::new(
        "idle",
        "intake4",
        EnvOptions {
            roster: &sample_roster(),
            // The backstop poll is far away: only IDLE can explain a quick answer.
            poll_interval: "10m",
            ..Default::default()
        },
    )
    .await;
    let mut s = imap(&env.user).await;
    let mut daemon = env.start_daemon();
    env.wait_watermark(&mut daemon).await;
    // Let the daemon settle into IDLE (Dovecot batches notifications every ~0.5 s anyway).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pool = env.db().await;
    let mut latencies = Vec::new();
    for (_, raw) in batch(3) {
        let t0 = Instant::now();
        let before = scalar(&pool, "SELECT COUNT(*) FROM outbox").await;
        append(&mut s, &env.folder, &raw, None).await;
        wait_for("the ack to be queued", Duration::from_secs(10), || async {
            scalar(&pool, "SELECT COUNT(*) FROM outbox").await > before
        })
        .await;
        latencies.push(t0.elapsed());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let _ = s.logout().await;
    eprintln!("delivery → ack queued: {latencies:?}");
    for l in &latencies {
        assert!(
            *l < Duration::from_secs(5),
            "ack queued {l:?} after delivery: IDLE is not working"
        );
    }
    daemon.stop();
}

const BOUNCE: &str = "Return-Path: <>\r\nFrom: Mail Delivery System <MAILER-DAEMON@qq.com>\r\nTo: intake@example.test\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce-1@qq.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nThis is the mail system.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.qq.com\r\n--b--\r\n";

const NEWSLETTER: &str = "From: 校园新闻 <news@example.edu.cn>\r\nTo: intake@example.test\r\nSubject: =?UTF-8?B?5pys5ZGo5qCh5Zut5paw6Ze7?=\r\nMessage-ID: <news-1@example.edu.cn>\r\nList-Id: <campus-news.example.edu.cn>\r\nList-Unsubscribe: <mailto:leave@example.edu.cn>\r\nPrecedence: bulk\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nnews\r\n";

const QUESTION: &str = "From: =?UTF-8?B?5byg5LiJ?= <asker@example.edu.cn>\r\nTo: intake@example.test\r\nSubject: =?UTF-8?B?6K+36Zeu55Sz5oql5oiq5q2i5pe26Ze05piv5ZOq5aSp77yf?=\r\nMessage-ID: <question-1@example.edu.cn>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n老师好\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_people_get_answers_and_a_wrong_subject_gets_one() {
    let env = TestEnv::new(
        "odd",
        "intake5",
        EnvOptions {
            roster: &sample_roster(),
            ..Default::default()
        },
    )
    .await;
    let c002 = String::from_utf8(read(
        &root().join("tests/fixtures/samples/c002/message.eml"),
    ))
    .expect("utf-8");
    let wrong1 = with_subject(&c002, "申报材料");
    let wrong2 = with_subject(&c002, "申报材料（再发一次）")
        .replace("fddb4996.8d48.1996f154528", "second-try");
    // Our own acknowledgement coming back (a forwarding rule, a misconfigured alias …).
    let looped = "From: =?UTF-8?B?55Sz5oql57O757uf?= <intake@example.test>\r\nTo: someone@qq.com\r\nSubject: Re: x\r\nMessage-ID: <shenbao.ack.1.abc@elsewhere.test>\r\nX-Shenbao-Loop: intake@example.test\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nok\r\n";
    let mut s = imap(&env.user).await;
    let mut daemon = env.start_daemon();
    env.wait_watermark(&mut daemon).await;
    for raw in [
        BOUNCE.as_bytes(),
        NEWSLETTER.as_bytes(),
        QUESTION.as_bytes(),
        wrong1.as_bytes(),
        wrong2.as_bytes(),
        looped.as_bytes(),
    ] {
        append(&mut s, &env.folder, raw, None).await;
    }
    let _ = s.logout().await;
    let pool = env.db().await;
    wait_for("all six to be processed", Duration::from_secs(60), || async {
        scalar(&pool, "SELECT COUNT(*) FROM messages WHERE status = 'processed' AND disposition != 'own_copy'").await == 6
    })
    .await;
    wait_for("the outbox to drain", Duration::from_secs(30), || async {
        scalar(&pool, "SELECT COUNT(*) FROM outbox WHERE status = 'queued'").await == 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let dispositions: Vec<(String, String)> =
        sqlx::query_as("SELECT COALESCE(message_id, ''), disposition FROM messages ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("dispositions");
    let want = [
        ("bounce-1@qq.com", "auto"),
        ("news-1@example.edu.cn", "auto"),
        ("question-1@example.edu.cn", "question"),
        (
            "fddb4996.8d48.1996f154528.Coremail.xieren7052@126.com",
            "subject_help",
        ),
        ("second-try.Coremail.xieren7052@126.com", "subject_help"),
        ("shenbao.ack.1.abc@elsewhere.test", "auto"),
    ];
    for (mid, disp) in want {
        assert!(
            dispositions.iter().any(|(m, d)| m == mid && d == disp),
            "{mid} should be {disp}: {dispositions:?}"
        );
    }
    let got = acks(&env, "catchall").await;
    assert_eq!(got.len(), 1, "only the first wrong subject is answered");
    let help = &got[0];
    assert_eq!(
        help.in_reply_to().as_text(),
        Some("fddb4996.8d48.1996f154528.Coremail.xieren7052@126.com")
    );
    let body = help.body_text(0).unwrap_or_default().to_string();
    assert!(body.contains("对标争先建设项目申报-支部名称"), "{body}");
    // The roster knows this sender: the help mail spells out their exact subject.
    assert!(
        body.contains("对标争先建设项目申报-设计创意学院2024级博士生党支部"),
        "{body}"
    );
    let status = env.cli(&["status"]);
    assert!(status.contains("需要人工处理"), "{status}");
    assert!(
        status.contains("question-1") || status.contains("asker@example.edu.cn"),
        "{status}"
    );
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_uidvalidity_rescans_without_doubling() {
    let env = TestEnv::new(
        "uidvalidity",
        "intake8",
        EnvOptions {
            roster: &sample_roster(),
            max_per_sender: 1000,
            ..Default::default()
        },
    )
    .await;
    // A folder of its own that the test can delete and recreate.
    let folder = format!("uidv-{}", chrono::Utc::now().timestamp_millis());
    let text = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(
        &env.config,
        text.replace("folder = \"INBOX\"", &format!("folder = \"{folder}\"")),
    )
    .expect("config");
    let mut s = imap(&env.user).await;
    let _ = s.create(mutf7(&folder)).await;
    let mails = batch(3);
    let db_url = env.db_url();

    let mut daemon = env.start_daemon();
    wait_for("the daemon to connect", Duration::from_secs(30), || {
        daemon.assert_alive();
        let url = db_url.clone();
        async move {
            let Ok(pool) = any_pool(&url).await else {
                return false;
            };
            let n = scalar(&pool, "SELECT COUNT(*) FROM mailbox_state").await;
            pool.close().await;
            n == 1
        }
    })
    .await;
    for (_, raw) in &mails[..2] {
        append(&mut s, &folder, raw, None).await;
    }
    let pool = env.db().await;
    wait_for("two answers queued", Duration::from_secs(30), || async {
        scalar(&pool, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'").await == 2
    })
    .await;
    daemon.stop();

    // The folder is deleted and made again: the server gives it a new UIDVALIDITY, and the
    // two old messages come back with new UIDs next to one new message.
    s.delete(mutf7(&folder)).await.expect("DELETE");
    s.create(mutf7(&folder)).await.expect("CREATE");
    for (_, raw) in &mails {
        append(&mut s, &folder, raw, None).await;
    }
    let _ = s.logout().await;
    let daemon = env.start_daemon();
    wait_for(
        "the new message to be answered",
        Duration::from_secs(30),
        || async { scalar(&pool, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'").await >= 3 },
    )
    .await;
    wait_for(
        "the folder to be rescanned and emptied",
        Duration::from_secs(30),
        || async { count(&env.user, &folder).await == 0 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        scalar(
            &pool,
            "SELECT COUNT(*) FROM messages WHERE disposition != 'own_copy'"
        )
        .await,
        3,
        "the old two are not stored again"
    );
    assert_eq!(
        scalar(&pool, "SELECT COUNT(*) FROM outbox").await,
        3,
        "nor answered again"
    );
    assert_eq!(
        scalar(&pool, "SELECT COUNT(DISTINCT uidvalidity) FROM messages").await,
        2
    );
    daemon.stop();
}
