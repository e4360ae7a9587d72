//! The reviewers' materials end to end: two branches' real sample applications (one with its
//! form and summary attached, one with them inside a zip) and two closure mails of the first
//! branch go through the real mail servers and the daemon; `export --materials` then writes a
//! zip and directories, which are read back and compared, file by file, with the sha256 the
//! database recorded for each attachment. A third branch applied with nothing a reviewer can
//! use (a PDF note): it has no folder, but its row is in the 汇总表.

use crate::common::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

const CAR: &str = "汽车工程学院本科生第二党支部";
const ECON: &str = "经济与管理学院2023级博士生党支部";
const DESIGN: &str = "设计创意学院2024级博士生党支部";

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Files by path (relative, with `/`) → bytes.
type Files = BTreeMap<String, Vec<u8>>;

/// Every entry of a zip: name → bytes, and the general-purpose flag of each central directory
/// record, read from the bytes themselves (bit 11 says the name is UTF-8).
fn unzip(bytes: &[u8]) -> (Files, Vec<(String, u16)>) {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("zip opens");
    let mut files = BTreeMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).expect("entry");
        let name = f.name().expect("name").to_string();
        let mut data = Vec::new();
        f.read_to_end(&mut data).expect("read entry");
        files.insert(name, data);
    }
    let mut flags = Vec::new();
    let mut at = 0;
    while let Some(pos) = bytes[at..].windows(4).position(|w| w == b"PK\x01\x02") {
        let rec = at + pos;
        let flag = u16::from_le_bytes([bytes[rec + 8], bytes[rec + 9]]);
        let name_len = usize::from(u16::from_le_bytes([bytes[rec + 28], bytes[rec + 29]]));
        let name = String::from_utf8(bytes[rec + 46..rec + 46 + name_len].to_vec())
            .expect("the stored name is UTF-8");
        flags.push((name, flag));
        at = rec + 46 + name_len;
    }
    (files, flags)
}

/// Every file under `dir`, by its path relative to `dir` with `/`.
fn tree(dir: &Path) -> Files {
    let mut paths = Vec::new();
    files_under(dir, &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(dir)
                .expect("under dir")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().to_string())
                .collect::<Vec<_>>()
                .join("/");
            (rel, read(&p))
        })
        .collect()
}

/// The data rows (支部名称 column) of a 汇总表.
fn sheet_branches(xlsx: &[u8]) -> Vec<String> {
    let wb = shenbao::extract::sheet::read_workbook(xlsx, &Default::default()).expect("xlsx");
    wb.sheets[0]
        .rows
        .iter()
        .skip(2)
        .filter_map(|r| r.get(2).map(|v| v.to_text()))
        .filter(|t| !t.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materials_zip_and_directory_match_the_database() {
    let env = TestEnv::new(
        "materials",
        "intake18",
        EnvOptions {
            roster: &sample_roster(),
            max_per_sender: 1000,
            ..Default::default()
        },
    )
    .await;
    let mut daemon = env.start_daemon();
    env.wait_watermark(&mut daemon).await;

    let base = read(&root().join("tests/fixtures/office/form-base.docx"));
    let other = read(&root().join("tests/fixtures/office/form-synonyms.docx"));
    let tag = std::process::id();
    let mails: Vec<(Vec<u8>, &str)> = vec![
        (
            read(&root().join("tests/fixtures/samples/c001/message.eml")),
            "2025-09-20T21:46:35+08:00",
        ),
        (
            read(&root().join("tests/fixtures/samples/c007/message.eml")),
            "2025-09-24T20:33:16+08:00",
        ),
        // Closure materials in two mails; the second sends a corrected 结题报告. A name with a
        // path in it must not leave the branch's folder.
        (
            closure_mail(
                "2479582@example.edu.cn",
                "intake18@example.test",
                CAR,
                &format!("materials-closure-1-{tag}@example.edu.cn"),
                &["结题报告.docx", "../../工作案例.docx"],
                &base,
            ),
            "2025-12-01T10:00:00+08:00",
        ),
        (
            closure_mail(
                "2479582@example.edu.cn",
                "intake18@example.test",
                CAR,
                &format!("materials-closure-2-{tag}@example.edu.cn"),
                &["结题报告.docx", "报销材料.pdf"],
                &other,
            ),
            "2025-12-05T10:00:00+08:00",
        ),
    ];
    // An application with only a PDF note attached: no form, no summary.
    let note_only = closure_mail(
        "xieren7052@126.com",
        "intake18@example.test",
        DESIGN,
        &format!("materials-note-{tag}@126.com"),
        &["说明.pdf"],
        &base,
    );
    let note_only = with_subject(
        &String::from_utf8(note_only).expect("utf-8 mail"),
        &format!(
            "=?UTF-8?B?{}?=",
            b64(&format!("对标争先建设项目申报-{DESIGN}"))
        ),
    );
    let mails: Vec<(Vec<u8>, &str)> = mails
        .into_iter()
        .chain([(note_only.into_bytes(), "2025-09-25T10:00:00+08:00")])
        .collect();
    let mut s = imap(&env.user).await;
    for (raw, date) in &mails {
        append(&mut s, &env.folder, raw, Some(date)).await;
    }
    let _ = s.logout().await;
    let pool = env.db().await;
    wait_for(
        "the five mails to be registered",
        Duration::from_secs(60),
        || {
            daemon.assert_alive();
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM submissions")
                    .fetch_one(&pool)
                    .await
                    .ok()
                    == Some(5)
            }
        },
    )
    .await;
    daemon.stop();

    // What the database recorded: per branch, every attachment (zip entries too) with the
    // time of its mail, newest first.
    let recorded: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT s.branch, s.kind, a.filename, a.sha256, s.received_at FROM attachments a
         JOIN submissions s ON s.message_id = a.message_id ORDER BY s.received_at DESC, a.id",
    )
    .fetch_all(&pool)
    .await
    .expect("attachments");
    let base_name = |n: &str| n.rsplit(['/', '\\']).next().unwrap_or(n).to_string();
    let recorded_sha = |branch: &str, file: &str| -> Vec<String> {
        recorded
            .iter()
            .filter(|(b, _, f, _, _)| b == branch && base_name(f) == file)
            .map(|(_, _, _, sha, _)| sha.clone())
            .collect()
    };

    // The zip.
    let out = env.dir.join("评审材料.zip");
    let (ok, said) = env.run(&["export", "--materials", out.to_str().unwrap_or_default()]);
    assert!(ok, "{said}");
    assert!(
        said.contains("已写入评审材料压缩包")
            && said.contains("3 个支部，7 个文件（申请表和汇总表 4 个，结项材料 3 个）")
            && said.contains(&format!(
                "以下 1 个支部没有可放入的申请表、汇总表或结项材料文件，只列在汇总表中：{DESIGN}"
            ))
            && said.contains("1 个文件已被同一支部后来发送的同名文件取代"),
        "{said}"
    );
    let (files, flags) = unzip(&read(&out));
    let car = format!("汽车工程学院/{CAR}");
    let econ = format!("经济与管理学院/{ECON}");
    let want: Vec<String> = vec![
        "汇总表.xlsx".to_string(),
        format!("{car}/{CAR}“对标争先”建设项目申请表.docx"),
        format!("{car}/{CAR}-申报汇总表.xls"),
        format!("{car}/结题报告.docx"),
        format!("{car}/报销材料.pdf"),
        format!("{car}/工作案例.docx"),
        format!("{econ}/{ECON}申请表.doc"),
        format!("{econ}/对标争先建设项目申报汇总表_{ECON}.xlsx"),
    ];
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(files.keys().cloned().collect::<Vec<_>>(), want_sorted);
    for (name, bytes) in &files {
        if name == "汇总表.xlsx" {
            continue;
        }
        let (branch, file) = name
            .split_once('/')
            .and_then(|(_, rest)| rest.split_once('/'))
            .expect("学院/支部/文件");
        let candidates = recorded_sha(branch, file);
        assert!(!candidates.is_empty(), "{name}: not in the database");
        assert_eq!(
            sha(bytes),
            candidates[0],
            "{name}: the bytes of the newest attachment of that name"
        );
    }
    // The corrected 结题报告 replaced the first one; the zip attachment itself is not there,
    // its entries are.
    let reports = recorded_sha(CAR, "结题报告.docx");
    assert_eq!(reports.len(), 2);
    assert_ne!(reports[0], reports[1]);
    assert!(
        recorded
            .iter()
            .any(|(b, _, f, _, _)| b == ECON && f.ends_with(".zip"))
    );
    // Every name is stored as UTF-8 and flagged so (bit 11), so Explorer and Finder show it.
    assert_eq!(flags.len(), want.len());
    for (name, flag) in &flags {
        assert!(flag & 0x0800 != 0, "{name}: flag {flag:#06x}");
    }
    // Every application is in the sheet, the one without files too.
    assert_eq!(sheet_branches(&files["汇总表.xlsx"]), [CAR, ECON, DESIGN]);
    assert!(
        recorded
            .iter()
            .any(|(b, k, f, _, _)| b == DESIGN && k == "application" && f == "说明.pdf"),
        "{recorded:?}"
    );

    // A directory, one college: the same bytes.
    let dir = env.dir.join("汽车工程学院材料");
    let (ok, said) = env.run(&[
        "export",
        "--materials",
        dir.to_str().unwrap_or_default(),
        "--college",
        "汽车工程学院",
    ]);
    assert!(ok, "{said}");
    assert!(
        said.contains("已写入评审材料目录")
            && said.contains("1 个支部（只含学院「汽车工程学院」），5 个文件"),
        "{said}"
    );
    let on_disk = tree(&dir);
    let mut want_dir: Vec<String> = want
        .iter()
        .filter(|p| p.starts_with("汽车") || *p == "汇总表.xlsx")
        .cloned()
        .collect();
    want_dir.sort();
    assert_eq!(on_disk.keys().cloned().collect::<Vec<_>>(), want_dir);
    for (name, bytes) in &on_disk {
        if name != "汇总表.xlsx" {
            assert_eq!(sha(bytes), sha(&files[name]), "{name}");
        }
    }
    assert_eq!(sheet_branches(&on_disk["汇总表.xlsx"]), [CAR]);
    // Not over a directory that holds something.
    let (ok, said) = env.run(&["export", "--materials", dir.to_str().unwrap_or_default()]);
    assert!(!ok && said.contains("已存在且不是空目录"), "{said}");

    // One section: the other branch only.
    let dir = env.dir.join("先锋领航");
    let (ok, said) = env.run(&[
        "export",
        "--materials",
        dir.to_str().unwrap_or_default(),
        "--section",
        "先锋领航",
    ]);
    assert!(ok, "{said}");
    assert!(
        said.contains("1 个支部（只含板块「先锋领航·校园善治」），2 个文件"),
        "{said}"
    );
    let on_disk = tree(&dir);
    assert_eq!(on_disk.len(), 3, "{:?}", on_disk.keys());
    assert!(
        on_disk
            .keys()
            .all(|k| k.starts_with("经济与管理学院/") || k == "汇总表.xlsx")
    );
    let (ok, said) = env.run(&["export", "--materials", "x.zip", "--section", "优秀"]);
    assert!(!ok && said.contains("不是配置中的申报板块"), "{said}");
}
