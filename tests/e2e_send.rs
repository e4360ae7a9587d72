//! The outbox sender against the real Postfix: a chunk of due mails goes out over two SMTP
//! sessions at once (`smtp.connections`), and a recipient the server refuses for good
//! (550 at RCPT) costs that one mail, not the others in its chunk nor its lane.

mod common;

use common::*;
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
    let store = shenbao::store::Store::open(&cfg.database_url, &cfg.data_dir)
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
    let now = shenbao::clock::db_time(chrono::Utc::now());
    let mut ids = Vec::new();
    for (i, to) in recipients.iter().enumerate() {
        let mid = format!("lanes.{i}.{}@{}", std::process::id(), env.domain);
        sqlx::query(
            "INSERT INTO outbox (kind, message_id, to_addr, subject, raw, next_attempt_at, created_at) VALUES ('ack', ?, ?, '回执测试', ?, ?, ?)",
        )
        .bind(&mid)
        .bind(to)
        .bind(mail(to, &mid))
        .bind(&now)
        .bind(&now)
        .execute(&store.pool)
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
    assert_eq!(sender.open_sessions(), 2, "both lanes kept a session");

    let rows: Vec<(String, String, i64, Option<String>)> =
        sqlx::query_as("SELECT message_id, status, attempts, last_error FROM outbox ORDER BY id")
            .fetch_all(&store.pool)
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
