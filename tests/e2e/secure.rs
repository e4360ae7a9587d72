//! Commands without surprises, through the real Dovecot + Postfix (mailbox `intake28`):
//! `digest --now` sends the digest it queued and nothing else waiting in the outbox,
//! `--backfill-since` on a later start re-reads the folder from that date, answering the mail
//! it had never seen and nobody twice, and a server without IDLE (a proxy in front of Dovecot
//! hides it) is polled instead of reconnected to.

use crate::common::*;
use std::time::Duration;

/// Both tests watch `intake28`: one at a time.
static MAILBOX: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const BRANCH: &str = "土木工程学院本科生第一党支部";

fn application(message_id: &str) -> Vec<u8> {
    let (form, summary) = sample_files();
    PersonMail {
        from: "branch1@example.test",
        to: "intake28@example.test",
        subject: &format!("对标争先建设项目申报-{BRANCH}"),
        message_id,
        body: "老师好，申报材料见附件。",
        files: vec![
            (format!("{BRANCH}申请表.docx"), form),
            (format!("{BRANCH}汇总表.xlsx"), summary),
        ],
        headers: Vec::new(),
        in_reply_to: None,
    }
    .build()
}

/// (kind, status) of every outbox row, in order.
async fn outbox(env: &TestEnv) -> Vec<(String, String)> {
    let pool = env.db().await;
    let rows = sqlx::query_as("SELECT kind, status FROM outbox ORDER BY id")
        .fetch_all(&pool)
        .await
        .expect("outbox");
    pool.close().await;
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_now_sends_only_the_digest_it_queued() {
    let _one = MAILBOX.lock().await;
    let env = TestEnv::new("secure-digest", "intake28", EnvOptions::default()).await;
    let mut text = std::fs::read_to_string(&env.config).expect("config");
    text.push_str(
        "\n[[digest]]\nname = \"日报\"\nrecipients = [\"reviewer@example.test\"]\nschedule = \"0 0 8 * * Mon-Fri\"\n",
    );
    std::fs::write(&env.config, text).expect("config");
    let eml = env.dir.join("application.eml");
    std::fs::write(&eml, application("secure-digest.1@example.test")).expect("eml");
    let out = env.cli(&["ingest", eml.to_str().unwrap_or_default()]);
    assert!(out.contains("登记后会回复发件人"), "{out}");
    assert!(out.contains("已放入发件箱"), "{out}");
    assert_eq!(
        outbox(&env).await,
        [("ack".to_string(), "queued".to_string())]
    );

    // Neither flag: explained, nothing queued.
    let (ok, out) = env.run(&["digest"]);
    assert!(!ok, "{out}");
    assert!(out.contains("--dry-run") && out.contains("--now"), "{out}");
    assert_eq!(outbox(&env).await.len(), 1);

    // --now: the digest goes out through Postfix, the ack stays for the daemon.
    let out = env.cli(&["digest", "--now"]);
    assert!(out.contains("摘要 1 封，已发出 1 封"), "{out}");
    assert_eq!(
        outbox(&env).await,
        [
            ("ack".to_string(), "queued".to_string()),
            ("digest".to_string(), "sent".to_string())
        ]
    );
    // Its copy reached the intake mailbox (so Postfix really took it); the ack's did not.
    wait_for("the digest's copy", Duration::from_secs(30), || async {
        count("intake28", "INBOX").await == 1
    })
    .await;
    let copies = fetch_all("intake28", "INBOX").await;
    let copy = mail_parser::MessageParser::default()
        .parse(&copies[0])
        .expect("copy parses");
    assert!(
        copy.subject().unwrap_or_default().contains("日报"),
        "{:?}",
        copy.subject()
    );
    let _ = std::fs::remove_dir_all(&env.dir);
}

/// (mails from branches registered, answers queued or sent)
async fn registered(env: &TestEnv) -> (i64, i64) {
    let pool = env.db().await;
    let mails: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE disposition <> 'own_copy'")
            .fetch_one(&pool)
            .await
            .expect("messages");
    let answers: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE related_message IS NOT NULL")
            .fetch_one(&pool)
            .await
            .expect("outbox");
    pool.close().await;
    (mails, answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_after_the_first_start_rereads_without_answering_twice() {
    let _one = MAILBOX.lock().await;
    let env = TestEnv::new("secure-backfill", "intake28", EnvOptions::default()).await;
    // Mail stays in the folder (nothing moved), and no copies of our answers land there.
    let text = std::fs::read_to_string(&env.config)
        .expect("config")
        .lines()
        .filter(|l| !l.starts_with("processed_folder") && !l.starts_with("staff_folder"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace("[smtp]\n", "[smtp]\ncopy_to_intake = false\n");
    std::fs::write(&env.config, text).expect("config");

    // Old mail, there before the first start: not answered then.
    let mut s = imap("intake28").await;
    append(
        &mut s,
        "INBOX",
        &application("secure-backfill.old@example.test"),
        Some("2025-09-18T10:00:00+08:00"),
    )
    .await;
    let mut d = env.start_daemon();
    env.wait_watermark(&mut d).await;
    // New mail after the first start: answered.
    append(
        &mut s,
        "INBOX",
        &application("secure-backfill.new@example.test"),
        None,
    )
    .await;
    wait_for("the new mail", Duration::from_secs(60), || {
        d.assert_alive();
        async { registered(&env).await == (1, 1) }
    })
    .await;
    d.stop();

    // A later start with --backfill-since: the old mail is read and answered, the new one is
    // recognised and not answered again.
    let mut d = env.start_daemon_with(&["--backfill-since", "2025-09-17"]);
    wait_for("the old mail", Duration::from_secs(60), || {
        d.assert_alive();
        async { registered(&env).await.0 == 2 }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = d.stop();
    assert_eq!(registered(&env).await, (2, 2), "{log}");
    assert!(log.contains("补处理"), "{log}");

    // Again: everything is known, nobody answered twice.
    let mut d = env.start_daemon_with(&["--backfill-since", "2025-09-17"]);
    env.wait_watermark(&mut d).await;
    wait_for("the re-read", Duration::from_secs(30), || {
        d.assert_alive();
        let seen = std::fs::read_to_string(&d.log)
            .unwrap_or_default()
            .contains("已经存过");
        async move { seen }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = d.stop();
    assert_eq!(registered(&env).await, (2, 2), "{log}");
    let _ = s.logout().await;
    let _ = std::fs::remove_dir_all(&env.dir);
}

/// An IMAP proxy in front of Dovecot for a server without IDLE (RFC 2177 is optional): it
/// takes `IDLE` out of every capability list and answers an `IDLE` command with `BAD`, as
/// such a server does. Everything else passes through unchanged.
async fn proxy_without_idle() -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", stack().imap)).await
            else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let cw = std::sync::Arc::new(tokio::sync::Mutex::new(cw));
            let to_client = cw.clone();
            // Server → client: capability lists without IDLE.
            tokio::spawn(async move {
                let mut sr = BufReader::new(sr);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match sr.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let text = String::from_utf8_lossy(&line);
                    let out = if text.contains("CAPABILITY ") {
                        text.replace(" IDLE", "").into_bytes()
                    } else {
                        line.clone()
                    };
                    if to_client.lock().await.write_all(&out).await.is_err() {
                        break;
                    }
                }
            });
            // Client → server: IDLE refused here.
            tokio::spawn(async move {
                let mut cr = BufReader::new(cr);
                let mut sw = sw;
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match cr.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let text = String::from_utf8_lossy(&line);
                    let mut words = text.split_whitespace();
                    if let (Some(tag), Some(cmd), None) = (words.next(), words.next(), words.next())
                        && cmd.eq_ignore_ascii_case("IDLE")
                    {
                        let bad = format!("{tag} BAD Unknown command IDLE\r\n");
                        if cw.lock().await.write_all(bad.as_bytes()).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    if sw.write_all(&line).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A server without IDLE: the daemon polls at `poll_interval` and never reconnects for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_idle_is_polled() {
    let _one = MAILBOX.lock().await;
    let env = TestEnv::new(
        "secure-noidle",
        "intake28",
        EnvOptions {
            poll_interval: "2s",
            ..Default::default()
        },
    )
    .await;
    let port = proxy_without_idle().await;
    let text = std::fs::read_to_string(&env.config)
        .expect("config")
        .replacen(
            &format!("port = {}\n", stack().imap),
            &format!("port = {port}\n"),
            1,
        );
    std::fs::write(&env.config, text).expect("config");
    let mut d = env.start_daemon();
    env.wait_watermark(&mut d).await;
    let mut s = imap("intake28").await;
    for i in 0..3 {
        append(
            &mut s,
            "INBOX",
            &application(&format!("secure-noidle.{i}@example.test")),
            None,
        )
        .await;
        let started = std::time::Instant::now();
        wait_for("the polled mail", Duration::from_secs(20), || {
            d.assert_alive();
            async { registered(&env).await.0 == i + 1 }
        })
        .await;
        // Within about one poll interval (2 s), plus processing.
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "took {:?}",
            started.elapsed()
        );
    }
    let log = d.stop();
    assert!(!log.contains("正在重连"), "no reconnect loop: {log}");
    assert!(log.contains("不支持 IDLE"), "{log}");
    let _ = s.logout().await;
    let _ = std::fs::remove_dir_all(&env.dir);
}
