//! `shenbao db copy --to URL` through the real command: a campaign (mail ingested on this
//! run's backend) copied into a fresh PostgreSQL database, proved table by table by the
//! command itself, and read back by `status` through a config that names the copy — what an
//! office moving from SQLite to PostgreSQL does. Needs `SHENBAO_TEST_POSTGRES` (the target
//! server); without it the test says so and passes.

use crate::common::*;
use std::path::PathBuf;
use std::process::Command;

fn fixture(case: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/samples")
        .join(case)
        .join("message.eml")
        .display()
        .to_string()
}

/// `shenbao --config CONFIG ARGS…` with PGPASSWORD set (the way the README says to give the
/// target's password): success and stdout + stderr.
fn shenbao(config: &std::path::Path, args: &[&str], pgpassword: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shenbao"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("SHENBAO_LOG", "warn")
        .env("PGPASSWORD", pgpassword)
        .output()
        .expect("run shenbao");
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
async fn a_campaign_copied_into_postgresql_reads_back_the_same() {
    if std::env::var(POSTGRES_VAR).map_or(true, |v| v.is_empty()) {
        eprintln!("{POSTGRES_VAR} is not set: db copy skipped (scripts/test.sh sets it)");
        return;
    }
    let roster = sample_roster();
    let env = TestEnv::new(
        "dbcopy",
        "intake40",
        EnvOptions {
            roster: &roster,
            ..EnvOptions::default()
        },
    )
    .await;
    let (ok, out) = env.run(&[
        "ingest",
        "--no-reply",
        &fixture("c001"),
        &fixture("c002"),
        &fixture("c010"),
    ]);
    assert!(ok, "{out}");
    let with_password = create_postgres_database("dbcopy_target").await;
    let mut target = url::Url::parse(&with_password).expect("url");
    let password = target.password().unwrap_or_default().to_string();
    let _ = target.set_password(None);
    let target = target.to_string();

    // A password on the command line is refused (shell history), before anything is done.
    let (ok, out) = shenbao(&env.config, &["db", "copy", "--to", &with_password], "");
    assert!(!ok && out.contains("PGPASSWORD"), "{out}");

    let (ok, out) = shenbao(&env.config, &["db", "copy", "--to", &target], &password);
    assert!(ok, "{out}");
    assert!(out.contains("全部一致"), "{out}");
    let checked = out.split("核对").nth(1).unwrap_or_default();
    for table in ["messages", "submissions", "attachments", "blobs", "outbox"] {
        let line = checked
            .lines()
            .find(|l| l.trim_start().starts_with(table))
            .unwrap_or_else(|| panic!("no line for {table}: {out}"));
        assert!(line.ends_with("一致"), "{line}");
    }
    assert!(
        !out.contains(&password),
        "the password is never shown: {out}"
    );

    // The same campaign, read through a config that names the copy.
    let copy_config = env.dir.join("copy.toml");
    let text = std::fs::read_to_string(&env.config).expect("config");
    let text = match text.find("[database]") {
        // A PostgreSQL run: the env's own [database] section is replaced.
        Some(at) => {
            let end = text[at + 1..]
                .find("\n[")
                .map_or(text.len(), |e| at + 1 + e);
            format!("{}{}", &text[..at], &text[end..])
        }
        None => text,
    };
    std::fs::write(
        &copy_config,
        format!("[database]\nurl = \"{target}\"\npassword_env = \"PGPASSWORD\"\n{text}"),
    )
    .expect("copy config");
    let before = |s: &str| {
        s.split("守护进程与分工：")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let (ok, original) = shenbao(&env.config, &["status"], &password);
    assert!(ok, "{original}");
    let (ok, copied) = shenbao(&copy_config, &["status"], &password);
    assert!(ok, "{copied}");
    assert!(original.contains("已处理 申报 3"), "{original}");
    assert_eq!(before(&copied), before(&original));
    let (ok, a) = shenbao(&env.config, &["export", "--format", "csv"], &password);
    assert!(ok, "{a}");
    let (ok, b) = shenbao(&copy_config, &["export", "--format", "csv"], &password);
    assert!(ok, "{b}");
    assert_eq!(a, b, "the same export from the copy");

    // Copying again into the now full target is refused, and changes nothing.
    let (ok, out) = shenbao(&env.config, &["db", "copy", "--to", &target], &password);
    assert!(!ok && out.contains("已有数据"), "{out}");
}
