//! Whole-message tests: inline raw messages, the shared sample set and the
//! hostile corpus (the last two only where `shared/` is present).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;
use crate::attach::Role;

fn guard() -> LoopGuard {
    LoopGuard {
        own_domain: "shenbao.example.test".into(),
        loop_header: "X-Shenbao-Loop".into(),
        own_addresses: vec!["intake@example.test".into()],
    }
}

fn gbk(s: &str) -> Vec<u8> {
    encoding_rs::GB18030.encode(s).0.into_owned()
}

fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                T[((v >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// A multipart message with one attachment whose Content-Disposition and
/// Content-Type header lines are given as raw bytes.
fn with_attachment(subject_line: &[u8], part_headers: &[u8], body: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    raw.extend_from_slice(b"From: =?GBK?B?");
    raw.extend_from_slice(b64(&gbk("董鑫")).as_bytes());
    raw.extend_from_slice(b"?= <Houmo@163.COM>\r\nTo: intake@example.test\r\nMessage-ID: <x1@163.com>\r\nDate: Tue, 23 Sep 2025 12:40:38 +0800 (CST)\r\n");
    raw.extend_from_slice(subject_line);
    raw.extend_from_slice(b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n--BB\r\nContent-Type: text/plain; charset=GBK\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
    raw.extend(gbk("老师好，附件请查收。"));
    raw.extend_from_slice(b"\r\n--BB\r\n");
    raw.extend_from_slice(part_headers);
    raw.extend_from_slice(b"\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    raw.extend_from_slice(b64(body).as_bytes());
    raw.extend_from_slice(b"\r\n--BB--\r\n");
    raw
}

#[test]
fn raw_8bit_gbk_subject_and_filename() {
    let mut subject = b"Subject: ".to_vec();
    subject.extend(gbk("对标争先建设项目申报-汽车工程学院本科生第四党支部"));
    let mut part = b"Content-Type: application/octet-stream; name=\"".to_vec();
    part.extend(gbk("项目申请表.doc"));
    part.extend_from_slice(b"\"\r\nContent-Disposition: attachment; filename=\"");
    part.extend(gbk("项目申请表.doc"));
    part.extend_from_slice(b"\"");
    let u = understand(
        &with_attachment(&subject, &part, b"not a real doc"),
        &guard(),
    );
    assert_eq!(
        u.subject,
        "对标争先建设项目申报-汽车工程学院本科生第四党支部"
    );
    assert_eq!(
        u.from.as_ref().and_then(|f| f.name.as_deref()),
        Some("董鑫")
    );
    assert_eq!(
        u.from.as_ref().map(|f| f.addr.as_str()),
        Some("Houmo@163.com")
    );
    assert_eq!(u.body_text, "老师好，附件请查收。");
    assert_eq!(u.attachments.len(), 1);
    let a = &u.attachments[0];
    assert_eq!(a.filename, "项目申请表.doc");
    assert_eq!(a.declared_format.as_deref(), Some("doc"));
    assert_eq!(a.format, Format::Other);
    // Meant as the form, but not a Word file: role Form with a note.
    assert_eq!(a.role, Role::Form);
    assert!(a.error.is_some());
    assert_eq!(a.size, 14);
    assert!(u.auto.is_none());
    assert_eq!(
        u.date.map(|d| d.to_rfc3339()).as_deref(),
        Some("2025-09-23T12:40:38+08:00")
    );
}

#[test]
fn raw_8bit_utf8_subject_and_filename() {
    let subject = "Subject: 对标争先建设项目申报－设计创意学院本科生第三党支部".as_bytes();
    let part = "Content-Type: application/vnd.ms-excel\r\nContent-Disposition: attachment; filename=\"汇总表.xls\"".as_bytes();
    let u = understand(&with_attachment(subject, part, b"%PDF-1.4 x"), &guard());
    assert_eq!(
        u.subject,
        "对标争先建设项目申报－设计创意学院本科生第三党支部"
    );
    assert_eq!(u.attachments[0].filename, "汇总表.xls");
    assert_eq!(u.attachments[0].format, Format::Pdf);
    assert_eq!(u.attachments[0].role, Role::Other);
}

#[test]
fn gb2312_subject_with_gbk_only_chars_and_rfc2231_name() {
    let subject = format!("Subject: =?gb2312?B?{}?=", b64(&gbk("朱镕基喆支部申报")));
    let pct: String = gbk("镕喆申请表")
        .iter()
        .map(|b| format!("%{b:02X}"))
        .collect();
    let part = format!(
        "Content-Type: application/msword;\r\n\tname=\"=?gb2312?B?{}?=\"\r\nContent-Disposition: attachment;\r\n\tfilename*0*=gb2312''{};\r\n\tfilename*1*=.doc",
        b64(&gbk("镕喆申请表.doc")),
        pct
    );
    let u = understand(
        &with_attachment(subject.as_bytes(), part.as_bytes(), b"x"),
        &guard(),
    );
    assert_eq!(u.subject, "朱镕基喆支部申报");
    assert_eq!(u.attachments[0].filename, "镕喆申请表.doc");
}

#[test]
fn filename_falls_back_to_content_type_name_and_q_encoding() {
    let part = "Content-Type: application/octet-stream; name=\"=?utf-8?Q?=E7=94=B3=E8=AF=B7=E8=A1=A8.docx?=\"";
    let u = understand(
        &with_attachment(b"Subject: =?utf-8?Q?hello_world?=", part.as_bytes(), b"x"),
        &guard(),
    );
    assert_eq!(u.subject, "hello world");
    assert_eq!(u.attachments[0].filename, "申请表.docx");
    assert_eq!(u.attachments[0].safe_name, "申请表.docx");
}

#[test]
fn big5_subject_and_gb18030_four_byte_filename() {
    let big5 = encoding_rs::BIG5.encode("臺灣大學支部").0.into_owned();
    let subject = format!("Subject: =?big5?B?{}?=", b64(&big5));
    let name = gbk("𠀀申请表.docx");
    let part = format!(
        "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"=?gb18030?B?{}?=\"",
        b64(&name)
    );
    let u = understand(
        &with_attachment(subject.as_bytes(), part.as_bytes(), b"x"),
        &guard(),
    );
    assert_eq!(u.subject, "臺灣大學支部");
    assert_eq!(u.attachments[0].filename, "𠀀申请表.docx");
}

#[test]
fn nfd_filename_is_normalised() {
    let part = "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"Cafe\u{301}.docx\"";
    let u = understand(
        &with_attachment(b"Subject: x", part.as_bytes(), b"x"),
        &guard(),
    );
    assert_eq!(u.attachments[0].filename, "Caf\u{e9}.docx");
}

#[test]
fn forwarded_message_and_inline_image() {
    let raw = b"From: a@b.test\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=\"X\"\r\n\r\n--X\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>see</p>\r\n--X\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgoAAAA=\r\n--X\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@d.test\r\nSubject: inner\r\n\r\ninner body\r\n--X--\r\n";
    let u = understand(raw, &guard());
    assert_eq!(u.body_text, "see");
    let names: Vec<&str> = u.attachments.iter().map(|a| a.filename.as_str()).collect();
    assert_eq!(names, ["未命名附件1.png", "转发的邮件.eml"]);
    assert_eq!(u.attachments[0].format, Format::Image);
    assert_eq!(u.attachments[0].declared_format, None);
    assert!(u.attachments[1].size > 0);
}

#[test]
fn garbage_never_panics() {
    for raw in [
        &b""[..],
        b"\r\n\r\n",
        b"\xff\xfe\x00garbage",
        b"Subject: only a header",
        b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n--\r\n",
        b"Subject: =?utf-8?B?????=\r\nFrom: <<<>>>\r\n\r\n",
    ] {
        let _ = understand(raw, &guard());
    }
    let u = understand(b"Subject: only a header", &guard());
    assert_eq!(u.subject, "only a header");
}

#[test]
fn cloud_link_in_qq_body() {
    let raw = "From: 1@qq.com\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n从QQ邮箱发来的超大附件\r\n\r\n项目申请表.docx (38.7K, 2025年10月20日 12:00 到期)\r\n进入下载页面：https://wx.mail.qq.com/ftn/download?func=3&k=abc\r\n";
    let u = understand(raw.as_bytes(), &guard());
    assert_eq!(u.cloud_links.len(), 1);
    assert_eq!(
        u.cloud_links[0].filename.as_deref(),
        Some("项目申请表.docx")
    );
    assert!(u.attachments.is_empty());
}

#[test]
fn zip_attachment_entries() {
    use std::io::Write;
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default();
        w.start_file("汇总表.xlsx", opts).unwrap();
        w.write_all(b"plain").unwrap();
        w.finish().unwrap();
    }
    let zip = out.into_inner();
    let part =
        "Content-Type: application/zip\r\nContent-Disposition: attachment; filename=\"材料.zip\"";
    let u = understand(
        &with_attachment(b"Subject: z", part.as_bytes(), &zip),
        &guard(),
    );
    let a = &u.attachments[0];
    assert_eq!(a.format, Format::Zip);
    assert_eq!(a.role, Role::Other);
    assert_eq!(a.entries.len(), 1);
    assert_eq!(a.entries[0].filename, "汇总表.xlsx");
    // Not a real xlsx: role from the name, with a note.
    assert_eq!(a.entries[0].format, Format::Other);
    assert_eq!(a.entries[0].role, Role::Summary);
    assert!(a.entries[0].error.is_some());
    // The same file alone (the attach fuzz target's way in) comes out the same.
    let alone = attachment("材料.zip".into(), "application/zip".into(), zip.clone());
    assert_eq!(
        (alone.format, alone.role, &alone.sha256, &alone.error),
        (a.format, a.role, &a.sha256, &a.error)
    );
    let entries = |a: &Attachment| {
        a.entries
            .iter()
            .map(|e| (e.filename.clone(), e.format, e.role, e.error.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(entries(&alone), entries(a));

    let broken = &zip[..zip.len() - 5];
    let u = understand(
        &with_attachment(b"Subject: z", part.as_bytes(), broken),
        &guard(),
    );
    assert!(u.attachments[0].error.is_some());
    assert!(u.attachments[0].entries.is_empty());
}

/// `../shared` next to the crate, or `/work/shared`.
fn shared_dir() -> Option<PathBuf> {
    [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
        PathBuf::from("/work/shared"),
    ]
    .into_iter()
    .find(|p| p.is_dir())
}

fn check_attachment(case: &str, got: &Attachment, want: &serde_json::Value) {
    let s = |k: &str| want.get(k).and_then(|v| v.as_str()).map(str::to_string);
    assert_eq!(
        Some(got.filename.clone()),
        s("filename"),
        "{case}: filename"
    );
    assert_eq!(
        Some(got.role.as_str().to_string()),
        s("role"),
        "{case}: role of {}",
        got.filename
    );
    assert_eq!(
        Some(got.format.as_str().to_string()),
        s("format"),
        "{case}: format of {}",
        got.filename
    );
    assert_eq!(
        got.declared_format,
        s("declared_format"),
        "{case}: declared_format of {}",
        got.filename
    );
    assert_eq!(
        Some(got.size as u64),
        want.get("size").and_then(|v| v.as_u64()),
        "{case}: size of {}",
        got.filename
    );
    assert_eq!(
        Some(got.sha256.clone()),
        s("sha256"),
        "{case}: sha256 of {}",
        got.filename
    );
    let want_entries = want
        .get("entries")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        got.entries.len(),
        want_entries.len(),
        "{case}: entries of {}",
        got.filename
    );
    for (g, w) in got.entries.iter().zip(&want_entries) {
        check_attachment(case, g, w);
    }
}

#[test]
fn samples_match_expected() {
    let Some(shared) = shared_dir() else { return };
    let Ok(dirs) = std::fs::read_dir(shared.join("samples")) else {
        return;
    };
    let mut cases: Vec<PathBuf> = dirs
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("message.eml").is_file() && p.join("expected.json").is_file())
        .collect();
    cases.sort();
    let sample_guard = LoopGuard {
        own_domain: "shenbao.example.test".into(),
        loop_header: "X-Shenbao-Loop".into(),
        own_addresses: vec!["intake@example.test".into()],
    };
    let mut checked = 0;
    for dir in cases {
        let case = dir.file_name().unwrap().to_string_lossy().to_string();
        let raw = std::fs::read(dir.join("message.eml")).unwrap();
        let want: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
        let u = understand(&raw, &sample_guard);
        let s = |k: &str| want.get(k).and_then(|v| v.as_str()).map(str::to_string);
        assert_eq!(Some(u.subject.clone()), s("subject"), "{case}: subject");
        assert_eq!(
            u.from.as_ref().map(|f| f.addr.clone()),
            s("from"),
            "{case}: from"
        );
        assert_eq!(
            u.message_id.as_ref().map(|m| format!("<{m}>")),
            s("message_id"),
            "{case}: message_id"
        );
        if let Some(date) = s("date") {
            assert_eq!(u.date.map(|d| d.to_rfc3339()), Some(date), "{case}: date");
        }
        let want_attachments = want
            .get("attachments")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            u.attachments.len(),
            want_attachments.len(),
            "{case}: attachment count {:?}",
            u.attachments
                .iter()
                .map(|a| &a.filename)
                .collect::<Vec<_>>()
        );
        for (got, w) in u.attachments.iter().zip(&want_attachments) {
            check_attachment(&case, got, w);
        }
        let kind = s("kind").unwrap_or_default();
        let is_auto = matches!(kind.as_str(), "auto_reply" | "bounce" | "list");
        assert_eq!(u.auto.is_some(), is_auto, "{case}: auto {:?}", u.auto);
        if case == "c009" {
            assert!(u.auto.is_some(), "c009 must be auto");
        }
        let want_links = want
            .get("cloud_links")
            .and_then(|v| v.as_array())
            .map(Vec::len)
            .unwrap_or(0);
        assert_eq!(u.cloud_links.len(), want_links, "{case}: cloud links");
        checked += 1;
    }
    assert!(checked > 0 || shared.join("samples").read_dir().is_err());
}

fn corpus_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in read.flatten() {
        let path = entry.path();
        if path.is_dir() {
            corpus_files(&path, out);
        } else if path.file_name().is_some_and(|n| n != "MANIFEST.tsv") {
            out.push(path);
        }
    }
}

#[test]
fn corpus_never_panics_and_is_fast() {
    let Some(shared) = shared_dir() else { return };
    let mut files = Vec::new();
    corpus_files(&shared.join("corpus/email"), &mut files);
    files.sort();
    let verbose = std::env::var_os("SHENBAO_CORPUS_REPORT").is_some();
    for path in files {
        let Ok(raw) = std::fs::read(&path) else {
            continue;
        };
        let start = Instant::now();
        let u = understand(&raw, &guard());
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "{} took {took:?}",
            path.display()
        );
        if verbose {
            eprintln!(
                "{}\t{:?}\tauto={:?}\tatt={}\twarn={:?}\tsubject={:?}",
                path.display(),
                took,
                u.auto.as_ref().map(|a| a.code),
                u.attachments.len(),
                u.warnings,
                u.subject
            );
        }
    }
}

#[test]
fn hostile_shapes_stay_fast() {
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut raw = b"Subject: ".to_vec();
    raw.extend(b"=?x?Q?a ".repeat(50_000));
    raw.extend_from_slice(b"\r\n\r\nbody");
    cases.push(("stray encoded words", raw));

    let mut raw = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n".to_vec();
    for i in 0..5000 {
        raw.extend_from_slice(
            format!(
                "--B\r\nContent-Type: application/octet-stream; name=\"f{i}.bin\"\r\n\r\nxx\r\n"
            )
            .as_bytes(),
        );
    }
    raw.extend_from_slice(b"--B--\r\n");
    cases.push(("many parts", raw));

    let mut raw = b"Subject: x\r\nContent-Type: text/html\r\n\r\n".to_vec();
    raw.extend(b"<a href=\"https://mail.163.com/large-attachment-download/x\">".repeat(20_000));
    cases.push(("unclosed anchors", raw));

    let mut raw = b"Subject: x\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    raw.extend(b"https://wx.mail.qq.com/ftn/x.doc ".repeat(20_000));
    cases.push(("many links", raw));

    let mut raw = b"Subject: x\r\n".to_vec();
    for i in 0..1000 {
        raw.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=B{i}\r\n\r\n--B{i}\r\n").as_bytes(),
        );
    }
    cases.push(("deep nesting", raw));

    for (name, raw) in cases {
        let start = Instant::now();
        let u = understand(&raw, &guard());
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{name}: {:?}",
            start.elapsed()
        );
        assert!(u.attachments.len() <= MAX_ATTACHMENTS, "{name}");
        assert!(u.cloud_links.len() <= 100, "{name}");
    }
}

#[test]
fn body_text_is_capped_on_a_char_boundary() {
    let mut raw = b"Subject: long\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n".to_vec();
    raw.extend("申报材料".repeat(30_000).as_bytes());
    let u = understand(&raw, &guard());
    assert!(u.body_text.len() <= BODY_TEXT_LIMIT);
    assert!(u.body_text.len() > BODY_TEXT_LIMIT - 4);
    assert!(u.body_text.starts_with("申报材料"));
}

/// Found by the `message` fuzz target's follow-up: 50 000 nested `message/rfc822` parts (2.4 MB)
/// parse fine, but dropping mail-parser's nested `Message`s recursed once per level and overflowed
/// the reading thread's stack — an abort no `catch_unwind` stops. The thread here has 1 MiB,
/// half of what tokio's blocking threads get, so the test fails without [`super::FlatDrop`].
#[test]
fn deeply_nested_rfc822_does_not_overflow_the_stack() {
    let mut raw = Vec::new();
    for _ in 0..50_000 {
        raw.extend_from_slice(b"From: a@example.test\r\nContent-Type: message/rfc822\r\n\r\n");
    }
    raw.extend_from_slice(b"Subject: inner\r\n\r\nbody\r\n");
    let understood = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || understand(&raw, &guard()))
        .expect("spawn")
        .join()
        .expect("understand returns");
    assert_eq!(understood.attachments.len(), 1);
    assert_eq!(understood.attachments[0].filename, "转发的邮件.eml");
}

/// Our own copy is told by our address AND our Message-ID domain, from the header alone (as
/// intake asks it before fetching any body) or the whole mail: a stranger who writes our
/// Message-ID domain, or our address with a Message-ID of another domain, is not one.
#[test]
fn own_copies_need_our_address_and_our_message_id() {
    let g = guard();
    let cases = [
        (
            "intake@example.test",
            "<ack-1.x@shenbao.example.test>",
            true,
        ),
        ("Intake@Example.TEST", "<ack-2@shenbao.example.test>", true),
        (
            "stranger@evil.test",
            "<ack-1.x@shenbao.example.test>",
            false,
        ),
        ("intake@example.test", "<a1@mail.example.test>", false),
        (
            "intake@example.test",
            "<a1@shenbao.example.test.evil>",
            false,
        ),
    ];
    for (from, id, want) in cases {
        let header = format!(
            "From: =?UTF-8?B?55Sz5oql57O757uf?= <{from}>\r\nTo: b@x.test\r\nMessage-ID: {id}\r\nSubject: =?UTF-8?B?5Zue5omn?=\r\n\r\n"
        );
        assert_eq!(
            is_own_copy(&understand(header.as_bytes(), &g), &g),
            want,
            "header of {from} {id}"
        );
        let whole = format!("{header}正文\r\n");
        assert_eq!(
            is_own_copy(&understand(whole.as_bytes(), &g), &g),
            want,
            "whole mail of {from} {id}"
        );
    }
    assert!(!is_own_copy(&understand(b"", &g), &g), "empty input");
}

/// [`slim::slim`] with a short run length (so nearly every base64 attachment is taken out), then
/// [`understand_slimmed`]: whenever the shortcut answers, its answer is exactly `understand`'s.
/// Returns how many bodies it took out when it answered.
fn slimmed_matches_whole(case: &str, raw: &[u8]) -> Option<usize> {
    let mut stored: std::collections::HashMap<String, Vec<u8>> = Default::default();
    let slimmed = slim::slim(
        raw,
        4096,
        || Ok(Vec::new()),
        |w: Vec<u8>| {
            let sha = hex::encode(Sha256::digest(&w));
            stored.insert(sha.clone(), w);
            Ok(sha)
        },
    )
    .expect("in memory");
    let taken = slimmed.parts.len();
    let mut load = |sha: &str| stored.get(sha).cloned();
    let mut handed: Vec<String> = Vec::new();
    let got = understand_slimmed(slimmed, &guard(), &mut load, &mut |a| {
        handed.push(a.sha256.clone())
    });
    let want = understand(raw, &guard());
    let got = got?;
    let json = |u: &Understood| serde_json::to_value(u).expect("json");
    assert_eq!(json(&got), json(&want), "{case}");
    let bytes = |u: &Understood| -> Vec<Vec<u8>> {
        u.attachments
            .iter()
            .flat_map(|a| std::iter::once(a).chain(&a.entries))
            .map(|a| a.bytes.clone())
            .collect()
    };
    assert!(bytes(&got) == bytes(&want), "{case}: attachment bytes");
    // Every file of the result handed over once (entries of an archive whose listing failed
    // part-way were handed over too, and are not in the result).
    for a in got
        .attachments
        .iter()
        .flat_map(|a| std::iter::once(a).chain(&a.entries))
    {
        let at = handed.iter().position(|h| *h == a.sha256);
        assert!(at.is_some(), "{case}: {} not handed over", a.filename);
        if let Some(at) = at {
            handed.swap_remove(at);
        }
    }
    Some(taken)
}

#[test]
fn slimmed_mails_read_as_whole_ones() {
    let mut mails: Vec<PathBuf> = Vec::new();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/samples");
    let shared = shared_dir();
    for dir in [Some(fixtures), shared.as_ref().map(|s| s.join("samples"))]
        .into_iter()
        .flatten()
    {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().join("message.eml").is_file() {
                mails.push(e.path().join("message.eml"));
            }
        }
    }
    let samples = mails.len();
    if let Some(shared) = &shared {
        corpus_files(&shared.join("corpus/email"), &mut mails);
    }
    let (mut shortcut, mut fell_back, mut sample_shortcut) = (0, 0, 0);
    for (i, path) in mails.iter().enumerate() {
        let Ok(raw) = std::fs::read(path) else {
            continue;
        };
        match slimmed_matches_whole(&path.display().to_string(), &raw) {
            Some(taken) if taken > 0 => {
                shortcut += 1;
                sample_shortcut += usize::from(i < samples);
            }
            Some(_) => {}
            None => fell_back += 1,
        }
    }
    // The samples are applications with base64 attachments: most take the shortcut.
    assert!(
        sample_shortcut * 2 > samples,
        "{sample_shortcut} of {samples} samples"
    );
    eprintln!(
        "{} mails: {shortcut} read with bodies taken out, {fell_back} read whole after all",
        mails.len()
    );
}

/// The intake's quick look at a header never takes a mail for our copy where `understand`
/// would not, and does recognise our copies (as the sender writes them: encoded name, folded
/// headers).
#[test]
fn own_copy_by_header_agrees_with_understand() {
    let g = LoopGuard {
        own_domain: "shenbao.example.test".into(),
        loop_header: "X-Shenbao-Loop".into(),
        own_addresses: vec!["intake@example.test".into(), "dangwei@example.test".into()],
    };
    let ours = [
        "From: =?UTF-8?B?5YWa5aeU?= <dangwei@example.test>\r\nTo: a@b.c\r\nSubject: =?UTF-8?B?5pS25Yiw?=\r\nMessage-ID:\r\n <1.x@shenbao.example.test>\r\n\r\n",
        "From: DANGWEI@Example.Test\nMessage-ID: <2@shenbao.example.test>\n\n",
        "From dangwei@example.test Mon Dec  7 10:00:00 2026\nFrom: intake@example.test\nMessage-Id: <3@shenbao.example.test>\n\n",
    ];
    let not_ours = [
        "From: dangwei@example.test\r\nMessage-ID: <4@elsewhere.test>\r\n\r\n",
        "From: someone@example.test\r\nMessage-ID: <5@shenbao.example.test>\r\n\r\n",
        "From: dangwei@example.test\r\n\r\n",
        "Message-ID: <6@shenbao.example.test>\r\n\r\n",
        "From: \"dangwei@example.test\" <x@evil.test>\r\nMessage-ID: <7@shenbao.example.test>\r\n\r\n",
        "",
    ];
    for h in ours {
        assert!(is_own_copy_header(h.as_bytes(), &g), "{h:?}");
        assert!(is_own_copy(&understand(h.as_bytes(), &g), &g), "{h:?}");
    }
    for h in not_ours {
        assert!(!is_own_copy_header(h.as_bytes(), &g), "{h:?}");
    }
    // Every sample and corpus mail's header: never `true` where understand says `false`.
    let mut mails = Vec::new();
    if let Some(shared) = shared_dir() {
        corpus_files(&shared.join("corpus/email"), &mut mails);
        corpus_files(&shared.join("samples"), &mut mails);
    }
    for path in mails {
        let Ok(raw) = std::fs::read(&path) else {
            continue;
        };
        let header = headers::header_block(skip_mbox_line(&raw));
        if is_own_copy_header(header, &g) {
            assert!(
                is_own_copy(&understand(header, &g), &g),
                "{}",
                path.display()
            );
        }
    }
}

/// Base64 of `bytes` in CRLF lines of 76, as mailers write it.
fn b64_lines(bytes: &[u8]) -> String {
    slim::tests::wrapped(bytes, 76, "\r\n")
}

/// Found with the `slim` fuzz target's property: an inline text part with a file name is both a
/// body and an attachment. The attachment got its bytes back, but the body was read as the
/// marker: the HTML beside a plain text lost its QQ large-attachment link, the UTF-16 text came
/// out as garbage, and neither showed the marker in `body_text`. Such a mail is read whole.
#[test]
fn a_body_taken_out_is_not_read_as_its_marker() {
    let html = format!(
        "<html><body><a href=\"https://mail.qq.com/cgi-bin/ftnExs_download?k=abc\">申报材料.zip</a>{}</body></html>",
        "<p>项目说明</p>".repeat(300)
    );
    let alternative = format!(
        "From: a@branch.example.test\r\nSubject: t\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n\
         --alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain words\r\n\
         --alt\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Disposition: inline; filename=\"a.html\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}--alt--\r\n",
        b64_lines(html.as_bytes())
    );
    let whole = understand(alternative.as_bytes(), &guard());
    assert_eq!(whole.cloud_links.len(), 1, "{:?}", whole.cloud_links);
    assert_eq!(slimmed_matches_whole("html", alternative.as_bytes()), None);

    let utf16: Vec<u8> = "项目说明"
        .repeat(600)
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let text = format!(
        "From: a@branch.example.test\r\nSubject: t\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-16le\r\n\
         Content-Disposition: inline; filename=\"a.txt\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}",
        b64_lines(&utf16)
    );
    let whole = understand(text.as_bytes(), &guard());
    assert!(
        whole.body_text.starts_with("项目说明"),
        "{}",
        whole.body_text
    );
    assert_eq!(slimmed_matches_whole("utf-16", text.as_bytes()), None);
}

/// A mail may carry, as a small attachment, the very marker line slim writes for a body it takes
/// out elsewhere (the sha256 of a body is no secret): here for a long base64 run in the
/// multipart preamble, which is no attachment. The small attachment must keep its own bytes,
/// not receive the preamble's, so a marker counts only where slim put it.
#[test]
fn a_marker_sent_in_the_mail_is_not_given_back() {
    let run: Vec<u8> = (0..6000u32).map(|i| (i * 7 + 3) as u8).collect();
    let sha = hex::encode(Sha256::digest(&run));
    let raw = format!(
        "From: a@branch.example.test\r\nSubject: t\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n{}\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nwords\r\n\
         --b\r\nContent-Type: application/octet-stream; name=\"m.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}--b--\r\n",
        b64_lines(&run),
        b64_lines(&slim::marker(&sha))
    );
    let whole = understand(raw.as_bytes(), &guard());
    assert_eq!(whole.attachments.len(), 1);
    assert_eq!(whole.attachments[0].bytes, slim::marker(&sha));
    assert_eq!(slimmed_matches_whole("marker sent", raw.as_bytes()), None);
}
