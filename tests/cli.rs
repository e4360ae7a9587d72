//! The command line without mail servers: `init`, `check-config`, `ingest`, `status`, `export`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn shenbao(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shenbao"))
        .current_dir(dir)
        .args(args)
        .env("SHENBAO_LOG", "warn")
        .env_remove("SHENBAO_CONFIG")
        .output()
        .expect("run shenbao")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shenbao-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn fixture(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/samples")
        .join(case)
        .join("message.eml")
}

#[test]
fn init_then_ingest_status_and_export() {
    let dir = tmp("ingest");
    let o = shenbao(&dir, &["init", "--dir", "local"]);
    assert!(o.status.success(), "{}", text(&o));
    // Use the sample roster so the fixtures' branches are known.
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/samples/roster.csv"),
        dir.join("local/roster.csv"),
    )
    .expect("roster");
    let cfg = "local/shenbao.toml";
    let o = shenbao(&dir, &["--config", cfg, "check-config"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("24 个支部"), "{}", text(&o));

    let c001 = fixture("c001");
    let c009 = fixture("c009");
    let o = shenbao(
        &dir,
        &[
            "--config",
            cfg,
            "ingest",
            "--received-at",
            "2025-09-20T21:46:35+08:00",
            c001.to_str().unwrap_or_default(),
            c009.to_str().unwrap_or_default(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("application 汽车工程学院本科生第二党支部 第1版"),
        "{out}"
    );
    assert!(out.contains("auto"), "{out}");
    // The same file again is recognised, not registered twice.
    let o = shenbao(
        &dir,
        &["--config", cfg, "ingest", c001.to_str().unwrap_or_default()],
    );
    assert!(text(&o).contains("相同，跳过"), "{}", text(&o));

    let o = shenbao(&dir, &["--config", cfg, "export", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let subs = v["submissions"].as_array().cloned().unwrap_or_default();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["branch"], "汽车工程学院本科生第二党支部");
    assert_eq!(subs[0]["received_at"], "2025-09-20T21:46:35+08:00");
    assert_eq!(subs[0]["late"], false);
    assert_eq!(subs[0]["attachments"].as_array().map(Vec::len), Some(2));

    let o = shenbao(
        &dir,
        &[
            "--config", cfg, "export", "--format", "csv", "-o", "out.csv",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let csv = std::fs::read(dir.join("out.csv")).expect("csv");
    assert!(csv.starts_with(&[0xEF, 0xBB, 0xBF]), "UTF-8 BOM for Excel");
    let csv = String::from_utf8_lossy(&csv);
    assert!(csv.contains("汽车工程学院本科生第二党支部"), "{csv}");

    // The consolidated 汇总表: the office's columns, one row per branch, read back.
    let o = shenbao(
        &dir,
        &[
            "--config",
            cfg,
            "export",
            "--format",
            "xlsx",
            "-o",
            "汇总表.xlsx",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let wb = shenbao::extract::sheet::read_workbook(
        &std::fs::read(dir.join("汇总表.xlsx")).expect("xlsx"),
        &Default::default(),
    )
    .expect("our own xlsx reads");
    let rows: Vec<Vec<String>> = wb.sheets[0]
        .rows
        .iter()
        .map(|r| r.iter().map(|v| v.to_text()).collect())
        .collect();
    assert!(
        rows[0][0].contains("申报汇总表"),
        "title row: {:?}",
        rows[0]
    );
    assert_eq!(
        rows[1][..13],
        [
            "序号",
            "学院",
            "支部名称",
            "项目名称",
            "申报板块",
            "项目负责人",
            "职务",
            "联系方式",
            "指导老师",
            "申请经费（元）",
            "版本",
            "收到时间",
            "问题"
        ]
    );
    assert_eq!(rows[2][2], "汽车工程学院本科生第二党支部");
    assert_eq!(rows[2][3], "“一人一策”成长档案与联系人制度建设");
    assert_eq!(rows[2][9], "2800");
    // Without -o an xlsx would be binary on the terminal: refused with advice.
    let o = shenbao(&dir, &["--config", cfg, "export", "--format", "xlsx"]);
    assert!(
        !o.status.success() && text(&o).contains("-o"),
        "{}",
        text(&o)
    );

    let o = shenbao(
        &dir,
        &["--config", cfg, "show", "汽车工程学院本科生第二党支部"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("项目名称：“一人一策”成长档案与联系人制度建设"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("问题：无"), "{}", text(&o));

    // What the scheduler would do, previewed on a set date: 7 days before a 9月27日 deadline
    // every roster branch but the one that applied cleanly gets a reminder.
    let config_text = std::fs::read_to_string(dir.join(cfg)).expect("config");
    let deadline_line = config_text
        .lines()
        .find(|l| l.starts_with("deadline = "))
        .unwrap_or_default()
        .to_string();
    std::fs::write(
        dir.join(cfg),
        config_text.replace(&deadline_line, "deadline = \"2025-09-27T23:59:59\""),
    )
    .expect("config");
    let o = shenbao(
        &dir,
        &[
            "--config",
            cfg,
            "remind",
            "--dry-run",
            "--at",
            "2025-09-20T09:00:00+08:00",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("申报截止提醒  →"))
            .count(),
        23,
        "{out}"
    );
    assert!(
        !out.contains("汽车工程学院本科生第二党支部 <"),
        "the branch that applied cleanly is not reminded: {out}"
    );
    assert!(
        out.contains("之后：申报截止提醒 于 2025年9月24日 09:00:00"),
        "{out}"
    );
    let o = shenbao(
        &dir,
        &[
            "--config",
            cfg,
            "remind",
            "--dry-run",
            "--at",
            "2025-09-19T09:00:00+08:00",
        ],
    );
    assert!(text(&o).contains("没有到期的提醒"), "{}", text(&o));
    let o = shenbao(
        &dir,
        &[
            "--config",
            cfg,
            "digest",
            "--dry-run",
            "--at",
            "2025-09-22T08:00:00+08:00",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("reviewer@example.test") && out.contains("名册共 24 个支部，已申报 1 个"),
        "{out}"
    );

    let o = shenbao(&dir, &["--config", cfg, "status"]);
    let st = text(&o);
    assert!(o.status.success(), "{st}");
    assert!(st.contains("名册共 24 个支部，已申报 1 个"), "{st}");
    assert!(st.contains("queued"), "the ack waits in the outbox: {st}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_names_every_bad_key() {
    let dir = tmp("badcfg");
    std::fs::write(
        dir.join("shenbao.toml"),
        "[imap]\nhost = \"imap.example.edu.cn\"\ntls = \"ssl\"\nuser = \"x@example.edu.cn\"\npassword = \"plain\"\n[smtp]\nhost = \"smtp.example.edu.cn\"\nfrom_address = \"nobody\"\n[campaign]\nname = \"x\"\nintake_address = \"x@example.edu.cn\"\ndeadline = \"tomorrow\"\nroster = \"none.csv\"\n[ack]\nwindow = \"soon\"\n",
    )
    .expect("config");
    let o = shenbao(&dir, &["check-config"]);
    assert!(!o.status.success());
    let t = text(&o);
    for key in [
        "imap.tls",
        "imap.password",
        "smtp.from_address",
        "campaign.deadline",
        "campaign.roster",
        "ack.window",
    ] {
        assert!(t.contains(key), "{key} missing from:\n{t}");
    }
    assert!(t.contains("password_env"), "says what to do instead: {t}");
    // A missing config file says how to make one.
    let o = shenbao(&dir, &["--config", "nope.toml", "status"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("shenbao init"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
