//! Watching the daemon, for real (Dovecot + Postfix, mailbox intake29): `health` is ok while
//! the daemon runs; goes critical when sending fails and a mail waits in the outbox (the
//! test's config points `smtp.port` at a port where nothing listens: the shared Postfix is
//! never stopped, other tests use it); returns to ok when the port is put back and the mail
//! goes out. Then a staff-edited reminder template with a typo: `check-config` names the file,
//! the line and the unknown name; the reminder still reaches the branch, written with the
//! built-in template; `status` and `health` show the error until the template is fixed.

use crate::common::*;
use std::time::Duration;

async fn wait_health(env: &TestEnv, daemon: &mut Daemon, want: i32, what: &str) -> String {
    let mut last = String::new();
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(90) {
        daemon.assert_alive();
        let (code, text) = env.health();
        if code == want {
            return text;
        }
        last = text;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{what}: health never exited {want}; last:\n{last}");
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
fn unused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn set_smtp_port(env: &TestEnv, port: u16) {
    let text = std::fs::read_to_string(&env.config).expect("config");
    let mut section = String::new();
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with('[') {
                section = l.to_string();
            }
            if section == "[smtp]" && l.starts_with("port =") {
                format!("port = {port}")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&env.config, out.join("\n") + "\n").expect("write config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_a_broken_template_through_the_mail_servers() {
    let env = TestEnv::new(
        "ops",
        "intake29",
        EnvOptions {
            roster: &sample_roster(),
            poll_interval: "2s",
            ..Default::default()
        },
    )
    .await;
    // Low thresholds for the test; retries every second or two.
    let text = std::fs::read_to_string(&env.config).expect("config");
    let text = text.replace(
        "confirm_grace = \"5s\"",
        "confirm_grace = \"5s\"\nretry_initial = \"1s\"",
    );
    std::fs::write(
        &env.config,
        format!(
            "{text}templates_dir = \"templates\"\n[health]\noutbox_warning = \"2s\"\noutbox_critical = \"4s\"\n[[digest]]\nname = \"日报\"\nrecipients = [\"reviewer@example.test\"]\nschedule = \"0 0 8 * * *\"\n"
        ),
    )
    .expect("config");
    std::fs::create_dir_all(env.dir.join("templates")).expect("templates dir");
    let real_port = stack().smtp;

    // 1. A running daemon: ok.
    let mut daemon = env.start_daemon();
    env.wait_watermark(&mut daemon).await;
    let ok = wait_health(&env, &mut daemon, 0, "a running daemon").await;
    assert!(ok.starts_with("shenbao 运行状态：正常"), "{ok}");
    assert!(ok.contains("与 IMAP 服务器的联系：最后一次在"), "{ok}");
    let _ = daemon.stop();

    // 2. Sending fails: nothing listens on the SMTP port. An application arrives, its
    //    acknowledgement waits in the outbox, and health turns critical.
    set_smtp_port(&env, unused_port());
    let mut daemon = env.start_daemon();
    let mut s = imap(&env.user).await;
    append(
        &mut s,
        "INBOX",
        &read(&root().join("tests/fixtures/samples/c010/message.eml")),
        Some("2025-09-26T08:40:43+08:00"),
    )
    .await;
    let _ = s.logout().await;
    let critical = wait_health(&env, &mut daemon, 2, "sending fails").await;
    assert!(critical.starts_with("shenbao 运行状态：严重"), "{critical}");
    assert!(
        critical.contains("[严重] 发件箱：1 封等待发送，最早的已等待"),
        "{critical}"
    );
    assert!(critical.contains("请检查配置 [smtp]"), "{critical}");
    assert!(
        critical.contains("[正常] 与 IMAP 服务器的联系"),
        "IMAP is still fine: {critical}"
    );
    let json = env.cli(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["level"], "critical", "{v}");
    assert_eq!(v["outbox_waiting"], 1, "{v}");
    assert!(
        v["outbox_oldest_waiting_seconds"].as_u64() >= Some(4),
        "{v}"
    );
    assert!(v["outbox_oldest_error"].is_string(), "{v}");
    assert!(acks(&env, "catchall").await.is_empty());
    let _ = daemon.stop();

    // 3. The port put back: the waiting mail goes out, health is ok again.
    set_smtp_port(&env, real_port);
    let mut daemon = env.start_daemon();
    let back = wait_health(&env, &mut daemon, 0, "sending works again").await;
    assert!(back.contains("发件箱：没有等待发送的邮件"), "{back}");
    wait_for(
        "the acknowledgement that waited",
        Duration::from_secs(60),
        || {
            daemon.assert_alive();
            let env = &env;
            async move { acks(env, "catchall").await.len() == 1 }
        },
    )
    .await;

    // 4. A reminder template with a typo.
    let builtin = std::fs::read_to_string(root().join("config/templates/reminder.txt.j2"))
        .expect("built-in reminder");
    assert!(builtin.contains("{{ greeting }}"));
    let template = env.dir.join("templates/reminder.txt.j2");
    std::fs::write(
        &template,
        builtin.replacen("{{ greeting }}", "{{ grettings }}", 1),
    )
    .expect("write template");
    let (ok, check) = env.run(&["check-config"]);
    assert!(!ok, "{check}");
    let line = builtin
        .lines()
        .position(|l| l.contains("{{ greeting }}"))
        .map(|i| i + 1)
        .expect("line");
    assert!(
        check.contains(&format!(
            "{} 第 {line} 行：未知的名称“grettings”",
            template.display()
        )),
        "{check}"
    );
    // 7 days before the deadline every roster branch that has not applied is reminded; the
    // broken template falls back to the built-in one, so the reminders still go out.
    let queued = env.cli(&["remind", "--at", "2025-09-20T09:00:00+08:00"]);
    assert!(queued.contains("已放入发件箱"), "{queued}");
    // The sample roster's addresses are delivered to the catch-all mailbox.
    let reminders = || async {
        acks(&env, "catchall")
            .await
            .into_iter()
            .filter(|m| m.subject().is_some_and(|s| s.contains("【提醒】")))
            .collect::<Vec<_>>()
    };
    wait_for("the reminders", Duration::from_secs(90), || {
        daemon.assert_alive();
        let reminders = &reminders;
        async move { !reminders().await.is_empty() }
    })
    .await;
    for m in reminders().await {
        let body = m.body_text(0).unwrap_or_default().to_string();
        let first = body.lines().next().unwrap_or_default();
        assert!(
            first.ends_with("同学：") && !body.contains("grettings"),
            "written with the built-in template: {body}"
        );
    }
    // Every reminder sent before health is asked: under load a queue older than the test's
    // 4 s outbox_critical would read as critical, which is not what this part checks.
    let pool = env.db().await;
    wait_for("the outbox to drain", Duration::from_secs(90), || {
        let pool = pool.clone();
        async move { scalar(&pool, "SELECT COUNT(*) FROM outbox WHERE status != 'sent'").await == 0 }
    })
    .await;
    let status = env.cli(&["status"]);
    assert!(status.contains("模板出错（近 7 天"), "{status}");
    // The running daemon holds the intake folder and the scheduler, and says so.
    let duties = status
        .split("守护进程与分工：")
        .nth(1)
        .unwrap_or_else(|| panic!("no 守护进程与分工 in status: {status}"));
    assert!(
        duties.contains(&format!("收件 {}@", env.user))
            && duties.contains("排期（提醒、摘要）：由"),
        "{duties}"
    );
    assert!(
        duties.contains("在线") && !duties.contains("已失联"),
        "{duties}"
    );
    assert!(
        status.contains(&format!(
            "reminder.txt.j2 第 {line} 行：未知的名称“grettings”"
        )),
        "{status}"
    );
    // The reviewers' digest says so too.
    let digest = env.cli(&["digest", "--dry-run"]);
    assert!(digest.contains("模板出错"), "{digest}");
    assert!(
        digest.contains(&format!(
            "reminder.txt.j2 第 {line} 行：未知的名称“grettings”"
        )),
        "{digest}"
    );
    let (code, warn) = env.health();
    assert_eq!(code, 1, "{warn}");
    assert!(warn.contains("[注意] 模板：近 7 天出错"), "{warn}");

    // 5. The template fixed: no longer counted.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&template, &builtin).expect("fix template");
    let (code, fixed) = env.health();
    assert_eq!(code, 0, "{fixed}");
    assert!(!env.cli(&["status"]).contains("模板出错"));
    let log = daemon.stop();
    assert!(!log.contains("panicked"), "{log}");
}
