//! The samples, end to end through the real servers: APPEND each application mail to the
//! intake folder with its INTERNALDATE, let the daemon (IDLE) pick them up, read the
//! acknowledgements back from the senders' mailbox over IMAP, and compare `export --format
//! json` with each case's `expected.json`.
//!
//! `samples_from_fixtures` uses the five cases copied into `tests/fixtures/samples` and always
//! runs; `samples_from_shared` sweeps all of `../shared/samples` where that directory exists.

use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Case {
    id: String,
    dir: PathBuf,
    expected: Value,
}

fn load_cases(root: &Path) -> Vec<Case> {
    let mut cases: Vec<Case> = std::fs::read_dir(root)
        .expect("samples dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("expected.json").is_file())
        .map(|dir| {
            let expected: Value =
                serde_json::from_slice(&read(&dir.join("expected.json"))).expect("expected.json");
            Case {
                id: expected["case_id"].as_str().unwrap_or_default().to_string(),
                dir,
                expected,
            }
        })
        .collect();
    cases.sort_by(|a, b| a.id.cmp(&b.id));
    cases
}

fn attachment_view(a: &Value) -> Value {
    let mut v = serde_json::json!({
        "filename": a["filename"],
        "role": a["role"],
        "format": a["format"],
        "declared_format": a["declared_format"],
        "size": a["size"],
        "sha256": a["sha256"],
    });
    if let Some(entries) = a["entries"].as_array().filter(|e| !e.is_empty()) {
        v["entries"] = Value::Array(entries.iter().map(attachment_view).collect());
    }
    v
}

async fn run_samples(name: &str, user: &str, samples: &Path) {
    let cases = load_cases(samples);
    assert!(!cases.is_empty(), "no cases in {}", samples.display());
    let roster = String::from_utf8(read(&samples.join("roster.csv"))).expect("utf-8 roster");
    let env = TestEnv::new(
        name,
        user,
        EnvOptions {
            roster: &roster,
            deadline: "2025-09-27T23:59:59",
            ..Default::default()
        },
    )
    .await;
    let mut s = imap(&env.user).await;
    let mut daemon = env.start_daemon();
    env.wait_watermark(&mut daemon).await;

    // Deliver in index order, with the INTERNALDATE each case gives.
    for c in &cases {
        let raw = read(&c.dir.join("message.eml"));
        append(
            &mut s,
            &env.folder,
            &raw,
            c.expected["internaldate"].as_str(),
        )
        .await;
    }
    let _ = s.logout().await;

    let want_acks = cases
        .iter()
        .filter(|c| c.expected["expect_ack"] == Value::Bool(true))
        .count();
    wait_for(
        "every acknowledgement to arrive",
        Duration::from_secs(90),
        || {
            daemon.assert_alive();
            let env = &env;
            async move { acks(env, "catchall").await.len() >= want_acks }
        },
    )
    .await;
    // Give a duplicate the chance to show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = acks(&env, "catchall").await;
    assert_eq!(
        got.len(),
        want_acks,
        "exactly one acknowledgement per application"
    );

    // Everything was moved out of the intake folder once handled.
    wait_for(
        "the intake folder to empty",
        Duration::from_secs(20),
        || async { count(&env.user, &env.folder).await == 0 },
    )
    .await;
    // The cases, plus our own copy of each acknowledgement.
    wait_for(
        "our copies to be filed",
        Duration::from_secs(20),
        || async { count(&env.user, &env.processed).await as usize == cases.len() + want_acks },
    )
    .await;

    for c in &cases {
        let e = &c.expected;
        let mid = e["message_id"]
            .as_str()
            .unwrap_or_default()
            .trim_matches(['<', '>'])
            .to_string();
        let answers: Vec<_> = got
            .iter()
            .filter(|m| m.in_reply_to().as_text() == Some(mid.as_str()))
            .collect();
        if e["expect_ack"] == Value::Bool(false) {
            assert!(
                answers.is_empty(),
                "{}: auto-generated mail must not be answered",
                c.id
            );
            continue;
        }
        assert_eq!(
            answers.len(),
            1,
            "{}: one acknowledgement threaded to {mid}",
            c.id
        );
        let ack = answers[0];
        let refs = ack.references().as_text_list().unwrap_or_default();
        assert!(
            refs.iter().any(|r| *r == mid),
            "{}: References carries the original",
            c.id
        );
        assert_eq!(
            ack.header("Auto-Submitted").and_then(|h| h.as_text()),
            Some("auto-replied")
        );
        let to = ack
            .to()
            .and_then(|t| t.first())
            .and_then(|a| a.address())
            .unwrap_or_default();
        assert_eq!(
            to,
            e["from"].as_str().unwrap_or_default(),
            "{}: answered to the sender",
            c.id
        );
        let body = ack.body_text(0).unwrap_or_default().to_string();
        let branch = e["branch"].as_str().unwrap_or_default();
        assert!(
            body.contains(branch),
            "{}: the ack names the branch {branch}:\n{body}",
            c.id
        );
        assert!(
            body.contains(&format!("第 {} 版", e["version"])),
            "{}: the ack names the version:\n{body}",
            c.id
        );
        for a in e["attachments"].as_array().into_iter().flatten() {
            let f = a["filename"].as_str().unwrap_or_default();
            assert!(
                body.contains(f),
                "{}: the ack lists attachment {f}:\n{body}",
                c.id
            );
        }
        let problems = e["problems"].as_array().map(Vec::len).unwrap_or(0);
        if problems == 0 {
            assert!(
                body.contains("材料齐全"),
                "{}: a clean application says so:\n{body}",
                c.id
            );
        } else {
            assert!(
                body.contains("发现以下"),
                "{}: problems are listed:\n{body}",
                c.id
            );
        }
        assert!(
            body.contains("北京时间"),
            "{}: the time is in Beijing time",
            c.id
        );
    }

    // The export is the contract: branch, version, attachments, problems.
    let export: Value =
        serde_json::from_str(&env.cli(&["export", "--format", "json"])).expect("export json");
    let subs = export["submissions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let applications: Vec<&Case> = cases
        .iter()
        .filter(|c| c.expected["kind"] == "application")
        .collect();
    assert_eq!(
        subs.len(),
        applications.len(),
        "one export row per application"
    );
    for c in applications {
        let e = &c.expected;
        let row = subs
            .iter()
            .find(|s| {
                s["message_id"].as_str()
                    == e["message_id"].as_str().map(|m| m.trim_matches(['<', '>']))
            })
            .unwrap_or_else(|| panic!("{}: not in the export", c.id));
        assert_eq!(row["branch"], e["branch"], "{}: branch", c.id);
        assert_eq!(
            row["branch_match"], e["branch_match"],
            "{}: branch_match",
            c.id
        );
        assert_eq!(row["version"], e["version"], "{}: version", c.id);
        assert_eq!(row["late"], e["late"], "{}: late", c.id);
        assert_eq!(row["problems"], e["problems"], "{}: problems", c.id);
        assert_eq!(row["sender"], e["from"], "{}: sender", c.id);
        let want: Vec<Value> = e["attachments"]
            .as_array()
            .into_iter()
            .flatten()
            .map(attachment_view)
            .collect();
        let have: Vec<Value> = row["attachments"]
            .as_array()
            .into_iter()
            .flatten()
            .map(attachment_view)
            .collect();
        assert_eq!(have, want, "{}: attachments", c.id);
        assert_eq!(
            row["fields_source"], e["fields_source"],
            "{}: fields_source",
            c.id
        );
        if let Some(want) = e["fields"].as_object() {
            for (k, v) in want {
                assert_eq!(&row["fields"][k], v, "{}: field {k}", c.id);
            }
        } else {
            assert!(row["fields"].is_null(), "{}: no fields expected", c.id);
        }
        let received =
            chrono::DateTime::parse_from_rfc3339(row["received_at"].as_str().unwrap_or_default())
                .expect("received_at");
        let internal =
            chrono::DateTime::parse_from_rfc3339(e["internaldate"].as_str().unwrap_or_default())
                .expect("internaldate");
        assert_eq!(
            received, internal,
            "{}: received_at is the INTERNALDATE",
            c.id
        );
    }

    // The auto-reply is recorded, not answered.
    let pool = env.db().await;
    let auto: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE disposition = 'auto'")
        .fetch_one(&pool)
        .await
        .expect("count");
    let want_auto = cases
        .iter()
        .filter(|c| c.expected["kind"] == "auto_reply")
        .count() as i64;
    assert_eq!(auto, want_auto);

    let status = env.cli(&["status"]);
    assert!(status.contains("已申报"), "{status}");
    let log = daemon.stop();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_from_fixtures() {
    run_samples(
        "fixtures",
        "intake1",
        &root().join("tests/fixtures/samples"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_from_shared() {
    let Some(shared) = shared() else {
        eprintln!("../shared/samples not present: skipped (CI has it)");
        return;
    };
    run_samples("shared", "intake2", &shared.join("samples")).await;
}
