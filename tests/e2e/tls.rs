//! TLS, for real: IMAPS (implicit TLS) and SMTP STARTTLS against the mail stack's private CA,
//! through `check-config --probe` and through a whole application → acknowledgement round.

use crate::common::*;
use std::process::Command;
use std::time::Duration;

fn ca_pem() -> String {
    let out = Command::new("bash")
        .arg(root().join("scripts/mailstack.sh"))
        .arg("env")
        .output()
        .expect("mailstack env");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("MAILSTACK_CA_PEM="))
        .map(|v| v.trim_matches('\'').to_string())
        .expect("MAILSTACK_CA_PEM in mailstack env")
}

/// Rewrites the test config for TLS: IMAP on 3993 with implicit TLS, SMTP with STARTTLS.
fn use_tls(env: &TestEnv, imap: (&str, u16), smtp: &str, ca: Option<&str>) {
    let text = std::fs::read_to_string(&env.config).expect("config");
    let mut out = String::new();
    let mut section = "";
    for line in text.lines() {
        if line.starts_with('[') {
            section = if line.starts_with("[imap]") {
                "imap"
            } else if line.starts_with("[smtp]") {
                "smtp"
            } else {
                "other"
            };
        }
        let replaced = match (section, line.split('=').next().unwrap_or("").trim()) {
            ("imap", "host") | ("smtp", "host") => "host = \"localhost\"".to_string(),
            ("imap", "port") => format!("port = {}", imap.1),
            ("imap", "tls") => format!("tls = \"{}\"", imap.0),
            ("smtp", "tls") => format!("tls = \"{smtp}\""),
            _ => line.to_string(),
        };
        out.push_str(&replaced);
        out.push('\n');
        if let (Some(ca), true) = (ca, line.starts_with("[imap]") || line.starts_with("[smtp]")) {
            out.push_str(&format!("ca_file = \"{ca}\"\n"));
        }
    }
    std::fs::write(&env.config, out).expect("write config");
}

fn probe(env: &TestEnv) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shenbao"))
        .arg("--config")
        .arg(&env.config)
        .args(["check-config", "--probe"])
        .output()
        .expect("run check-config");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_over_every_tls_mode() {
    let ca = ca_pem();
    for (imap, smtp) in [
        (("implicit", 3993), "starttls"),
        (("starttls", IMAP_PORT), "starttls"),
        (("none", IMAP_PORT), "none"),
    ] {
        let env = TestEnv::new("probe", "intake6", EnvOptions::default()).await;
        use_tls(&env, imap, smtp, Some(&ca));
        let (ok, text) = probe(&env);
        assert!(ok, "probe with IMAP {imap:?} / SMTP {smtp} failed:\n{text}");
        assert!(text.contains("IMAP：登录成功"), "{text}");
        assert!(text.contains("SMTP：连接成功"), "{text}");
        // The database is reached too (SQLite or PostgreSQL, by the test backend); nothing
        // has run on it yet.
        assert!(
            text.contains("数据库：") && text.contains("还没有建表"),
            "{text}"
        );
    }
    // Without the private CA the certificate is not trusted, and the message says what to do.
    let env = TestEnv::new("probe-noca", "intake6", EnvOptions::default()).await;
    use_tls(&env, ("implicit", 3993), "none", None);
    let (ok, text) = probe(&env);
    assert!(!ok, "an untrusted certificate must fail:\n{text}");
    assert!(
        text.contains("imap.ca_file"),
        "the error names the setting to fix:\n{text}"
    );
    // A wrong password is a login error, not a hang.
    let env = TestEnv::new("probe-badpw", "intake6", EnvOptions::default()).await;
    std::fs::write(env.dir.join("secrets/imap.password"), "wrong\n").expect("pw");
    let (ok, text) = probe(&env);
    assert!(!ok);
    assert!(text.contains("IMAP 登录失败"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_over_imaps_and_starttls() {
    let ca = ca_pem();
    let env = TestEnv::new(
        "tls",
        "intake7",
        EnvOptions {
            roster: &sample_roster(),
            ..Default::default()
        },
    )
    .await;
    use_tls(&env, ("implicit", 3993), "starttls", Some(&ca));
    let mut daemon = env.start_daemon();
    env.wait_watermark(&mut daemon).await;
    let mut s = imap(&env.user).await;
    append(
        &mut s,
        "INBOX",
        &read(&root().join("tests/fixtures/samples/c010/message.eml")),
        Some("2025-09-26T08:40:43+08:00"),
    )
    .await;
    let _ = s.logout().await;
    wait_for(
        "the acknowledgement over TLS",
        Duration::from_secs(60),
        || {
            daemon.assert_alive();
            let env = &env;
            async move { !acks(env, "catchall").await.is_empty() }
        },
    )
    .await;
    let got = acks(&env, "catchall").await;
    assert_eq!(got.len(), 1);
    let body = got[0].body_text(0).unwrap_or_default().to_string();
    assert!(
        body.contains("海洋与地球科学学院2022级本科生党支部"),
        "{body}"
    );
    daemon.stop();
}
