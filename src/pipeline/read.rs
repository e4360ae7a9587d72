//! Reading one stored mail for the pipeline: understood, its files staged in the blob
//! directory, and only the bytes something still reads kept in memory.
//!
//! Memory is the reason this is more than `understand` and a loop. A mail of 68.5 MB carrying
//! a 50 MB zip of photos used to be in memory three times over at its peak: the raw mail
//! beside the decoded zip while mail-parser worked, then the zip beside every photo inflated
//! from it (issue 16 measured 142 MB, and asks for ≤ 100). Now:
//! - a mail stored as a file of at least [`SLIM_FROM`] is read as a stream, its large base64
//!   bodies decoded straight into blob files ([`message::slim`]) and only the rest parsed in
//!   memory; each large attachment is read back from its file when it is described;
//! - every file (each zip entry as it is inflated, then the zip) is staged as soon as it is
//!   complete, and the bytes of files nothing reads again (photos, PDFs, the zip itself: all
//!   but the Word and Excel files [`crate::extract::reads`]) are let go at once, which also
//!   keeps the messages waiting in a commit group small.
//!
//! When the slimmed mail's markers do not come back as exactly the attachments taken out, the
//! mail is read the ordinary way: the result never depends on the shortcut.

use crate::message::{self, Attachment, LoopGuard, Understood, slim};
use crate::store::blobs::{BlobDir, Fetched, Staged};

/// Stored mails at least this large are read as a stream ([`message::slim`]).
pub const SLIM_FROM: u64 = 4 << 20;

/// Base64 runs at least this long are decoded to a file of their own (nothing but a body
/// looks like a megabyte of base64 lines).
const MIN_RUN: usize = 1 << 20;

/// The stored mail `sha` understood, with every file it carries staged (to be published
/// before the commit that names them).
pub fn read_mail(
    blobs: &BlobDir,
    sha: &str,
    guard: &LoopGuard,
) -> std::io::Result<(Understood, Vec<Staged>)> {
    let mut staged = Vec::new();
    let mut failed: Option<std::io::Error> = None;
    let mut each_file = |a: &mut Attachment| {
        if failed.is_none() {
            match blobs.stage_as(&a.sha256, &a.bytes) {
                Ok(s) => staged.extend(s),
                Err(e) => failed = Some(e),
            }
        }
        if !crate::extract::reads(a) {
            a.bytes = Vec::new();
        }
    };
    let understood = match blobs.get_or_open(sha, SLIM_FROM)? {
        Fetched::Whole(raw) => message::understand_each(raw, guard, &mut each_file),
        Fetched::Stream(opened) => {
            let reader = std::io::BufReader::with_capacity(
                256 << 10,
                std::io::Read::take(opened.file, opened.len),
            );
            let slimmed = slim::slim(
                reader,
                MIN_RUN,
                || blobs.writer(),
                |w| w.finish().map(|(sha, _)| sha),
            )?;
            let taken_out = slimmed.parts.len();
            let mut load = |part: &str| blobs.get(part).ok();
            match message::understand_slimmed(slimmed, guard, &mut load, &mut each_file) {
                Some(u) => {
                    tracing::debug!(邮件 = sha, 大附件 = taken_out, "大邮件按流读取");
                    u
                }
                None => {
                    tracing::info!(邮件 = sha, "大邮件无法按流读取，改为整封读入内存");
                    message::understand_each(blobs.get(sha)?, guard, &mut each_file)
                }
            }
        }
    };
    match failed {
        Some(e) => Err(e),
        None => Ok((understood, staged)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::slim::tests::{noise, wrapped};
    use std::io::Write;

    fn scratch(name: &str) -> BlobDir {
        let root = std::env::temp_dir().join(format!("shenbao-read-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        BlobDir::new(root)
    }

    /// A zip of two large "photos" and a small file named as the summary.
    fn photo_zip() -> Vec<u8> {
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in [
            (
                "IMG_0001.jpg",
                [&[0xFF, 0xD8, 0xFF][..], &noise(2 << 20, 1)].concat(),
            ),
            (
                "IMG_0002.jpg",
                [&[0xFF, 0xD8, 0xFF][..], &noise(3 << 20, 2)].concat(),
            ),
            ("汇总表.xlsx", b"not really a workbook".to_vec()),
        ] {
            out.start_file(name, stored).expect("start");
            out.write_all(&bytes).expect("write");
        }
        out.finish().expect("finish").into_inner()
    }

    fn base64_lines(bytes: &[u8]) -> String {
        wrapped(bytes, 76, "\r\n")
    }

    /// An application with a form and the zip, as a branch's mail client sends it.
    fn mail(zip: &[u8]) -> Vec<u8> {
        format!(
            "From: =?UTF-8?B?5pSv6YOo?= <branch@example.test>\r\nTo: intake@example.test\r\n\
             Subject: =?UTF-8?B?5a+55qCH5LqJ5YWI?=\r\nMessage-ID: <big@example.test>\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"==b==\"\r\n\r\n\
             --==b==\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n请查收。\r\n\
             --==b==\r\nContent-Type: application/octet-stream; name=\"=?UTF-8?B?55Sz6K+36KGoLmRvY3g=?=\"\r\n\
             Content-Disposition: attachment; filename=\"=?UTF-8?B?55Sz6K+36KGoLmRvY3g=?=\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n\
             --==b==\r\nContent-Type: application/zip; name=\"photos.zip\"\r\n\
             Content-Disposition: attachment; filename=\"photos.zip\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--==b==--\r\n",
            base64_lines(b"a form that is not a docx"),
            base64_lines(zip)
        )
        .into_bytes()
    }

    fn json(u: &Understood) -> serde_json::Value {
        serde_json::to_value(u).expect("json")
    }

    /// Reads `raw` stored as a blob, then checks the result against `understand` of the
    /// whole mail and every file against its published blob; says whether the zip was stored
    /// before publishing (by the stream).
    fn check(name: &str, raw: &[u8]) -> bool {
        let blobs = scratch(name);
        let guard = LoopGuard::default();
        let sha = blobs.put(raw).expect("put");
        let (got, staged) = read_mail(&blobs, &sha, &guard).expect("read");
        let want = message::understand(raw, &guard);
        assert_eq!(json(&got), json(&want));
        let zip = got
            .attachments
            .iter()
            .find(|a| a.filename == "photos.zip")
            .expect("zip");
        let streamed = blobs.path_of(&zip.sha256).exists();
        crate::store::blobs::publish(staged).expect("publish");
        let files = got
            .attachments
            .iter()
            .flat_map(|a| std::iter::once(a).chain(a.entries.iter()));
        for a in files {
            let stored = blobs.get(&a.sha256).expect("every file is stored");
            assert_eq!(crate::store::blobs::sha256_hex(&stored), a.sha256);
            assert_eq!(stored.len(), a.size);
            if crate::extract::reads(a) {
                assert_eq!(a.bytes, stored, "{} is kept for the readers", a.filename);
            } else {
                assert!(a.bytes.is_empty(), "{} is let go", a.filename);
            }
        }
        let _ = std::fs::remove_dir_all(blobs.path_of("").parent().unwrap_or(Path::new("/")));
        streamed
    }

    use std::path::Path;

    #[test]
    fn a_large_mail_is_read_as_a_stream_with_the_same_result() {
        let zip = photo_zip();
        let raw = mail(&zip);
        assert!(raw.len() as u64 >= SLIM_FROM);
        assert!(check("stream", &raw), "the zip came from the stream");
        let got = {
            let blobs = scratch("stream-entries");
            let sha = blobs.put(&raw).expect("put");
            read_mail(&blobs, &sha, &LoopGuard::default())
                .expect("read")
                .0
        };
        let zip = &got.attachments[1];
        assert_eq!(zip.entries.len(), 3);
        assert_eq!(zip.entries[2].filename, "汇总表.xlsx");
        assert!(
            !zip.entries[2].bytes.is_empty(),
            "named as the summary: kept"
        );
    }

    #[test]
    fn the_same_large_file_twice_and_an_unnamed_one_come_back_as_sent() {
        let zip = photo_zip();
        let photo = [&[0xFF, 0xD8, 0xFF][..], &noise(2 << 20, 4)].concat();
        let mut raw = mail(&zip);
        let end = raw.len() - b"--==b==--\r\n".len();
        raw.truncate(end);
        raw.extend_from_slice(
            format!(
                "--==b==\r\nContent-Type: application/zip; name=\"photos.zip\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n{}\r\n\
                 --==b==\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\
                 --==b==--\r\n",
                base64_lines(&zip),
                base64_lines(&photo)
            )
            .as_bytes(),
        );
        assert!(check("twice", &raw), "the zips came from the stream");
        let blobs = scratch("twice-names");
        let sha = blobs.put(&raw).expect("put");
        let got = read_mail(&blobs, &sha, &LoopGuard::default())
            .expect("read")
            .0;
        let names: Vec<&str> = got
            .attachments
            .iter()
            .map(|a| a.filename.as_str())
            .collect();
        assert_eq!(
            names,
            ["申请表.docx", "photos.zip", "photos.zip", "未命名附件1.jpg"]
        );
        assert_eq!(got.attachments[3].size, photo.len());
    }

    #[test]
    fn a_small_mail_is_read_whole_with_the_same_result() {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("IMG.jpg", zip::write::SimpleFileOptions::default())
            .expect("start");
        zip.write_all(&[0xFF, 0xD8, 0xFF, 1, 2, 3]).expect("write");
        let raw = mail(&zip.finish().expect("finish").into_inner());
        assert!(!check("whole", &raw), "nothing stored before publishing");
    }

    #[test]
    fn a_large_body_inside_a_forwarded_mail_falls_back_to_the_whole_mail() {
        let inner = mail(&photo_zip());
        let raw = [
            &b"From: branch@example.test\r\nSubject: Fw\r\nMIME-Version: 1.0\r\n\
               Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n--outer\r\n\
               Content-Type: text/plain\r\n\r\nsee below\r\n--outer\r\n\
               Content-Type: message/rfc822\r\n\r\n"[..],
            &inner,
            b"\r\n--outer--\r\n",
        ]
        .concat();
        let blobs = scratch("forwarded");
        let guard = LoopGuard::default();
        let sha = blobs.put(&raw).expect("put");
        let (got, _) = read_mail(&blobs, &sha, &guard).expect("read");
        assert_eq!(json(&got), json(&message::understand(&raw, &guard)));
        assert!(
            got.attachments
                .iter()
                .any(|a| a.filename == "转发的邮件.eml"),
            "{:?}",
            got.attachments
        );
    }

    #[test]
    fn a_large_base64_text_body_falls_back_to_the_whole_mail() {
        let text = "申报材料说明。".repeat(300_000);
        let raw = format!(
            "From: branch@example.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
            base64_lines(text.as_bytes())
        );
        let blobs = scratch("text");
        let guard = LoopGuard::default();
        let sha = blobs.put(raw.as_bytes()).expect("put");
        let (got, _) = read_mail(&blobs, &sha, &guard).expect("read");
        assert_eq!(
            json(&got),
            json(&message::understand(raw.as_bytes(), &guard))
        );
        assert!(got.body_text.starts_with("申报材料说明。"));
    }
}
