//! Replies, resends and senders: the pure decisions that tell conversation from materials.
//!
//! People answer shenbao's own mails ("收到，谢谢老师！" under an acknowledgement, a question
//! under a reminder, corrected files attached to a reply), one secretary sends for several
//! branches, and a branch's material may come from any member's address. This module decides,
//! without I/O, what such a mail is:
//!
//! * [`strip_our_wording`] removes what our own subjects add (`（已收到，第1版，材料齐全）`),
//!   so a reply's subject is read as the branch wrote it, and says whether it was there;
//! * [`thread_candidates`] lists the Message-IDs a mail answers, newest first, for the store
//!   to look up among the mails we sent;
//! * [`carries_materials`] says whether a mail brings anything that could be a version: a
//!   mail without materials is never a version and never replaces one;
//! * [`content_key`] fingerprints a version's material files, so a resend of identical
//!   content is told from a new version (loop protection counts only the former);
//! * [`sender_trust`] says whether a version's sender is the roster's secretary or someone
//!   who sent for the branch before, and whom to copy when not.

use crate::attach::{Format, Role};
use crate::campaign::rules;
use crate::message::{Attachment, Understood};
use sha2::{Digest, Sha256};

/// What our subjects append, each introduced by a full-width parenthesis (see
/// `pipeline::ack_subject` and the subject-help answer).
const OUR_SUFFIXES: &[&str] = &["（已收到，第", "（主题格式有误，未登记）"];

/// What our subjects start with (reminders, results), after any `Re:`/`回复：` chain.
const OUR_PREFIXES: &[&str] = &["【提醒】", "【评审结果】", "【申报日报】", "【申报周报】"];

/// The subject without what shenbao's own subjects add, and whether anything was removed.
///
/// `回复：Re: 对标争先建设项目申报-X（已收到，第1版，材料齐全）` → (`回复：Re: 对标争先建设项目申报-X`, true).
pub fn strip_our_wording(subject: &str) -> (String, bool) {
    let mut s = subject.trim().to_string();
    let mut found = false;
    for suffix in OUR_SUFFIXES {
        if let Some(at) = s.find(suffix) {
            // Only when it is our closing group: what follows is ours up to the matching `）`
            // (a client may append its own text after it, e.g. `（修改版）`).
            let rest = &s[at..];
            let end = rest.find('）').map_or(rest.len(), |i| i + '）'.len_utf8());
            let tail = rest[end..].to_string();
            s.truncate(at);
            s.push_str(&tail);
            found = true;
        }
    }
    let body = without_reply_prefixes(&s);
    if OUR_PREFIXES.iter().any(|p| body.starts_with(p)) {
        found = true;
    }
    (s.trim().to_string(), found)
}

/// The subject after any chain of `Re:`, `回复：`, `答复:`, `Fwd:`, `转发：` prefixes.
fn without_reply_prefixes(subject: &str) -> &str {
    const PREFIXES: &[&str] = &[
        "re:",
        "re：",
        "回复:",
        "回复：",
        "答复:",
        "答复：",
        "aw:",
        "aw：",
        "fw:",
        "fw：",
        "fwd:",
        "fwd：",
        "转发:",
        "转发：",
    ];
    let mut s = subject.trim_start();
    loop {
        // ASCII letters lowercase to the same length, so a prefix's length is its length in `s`.
        let lower: String = s.chars().take(6).flat_map(char::to_lowercase).collect();
        match PREFIXES.iter().find(|p| lower.starts_with(*p)) {
            Some(p) => s = s[p.len()..].trim_start(),
            None => return s,
        }
    }
}

/// The Message-IDs `u` answers, newest first (In-Reply-To, then References from the end),
/// without duplicates and at most `limit` of them.
pub fn thread_candidates(u: &Understood, limit: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let ids = u
        .in_reply_to
        .iter()
        .chain(u.references.iter().rev())
        .map(|s| s.trim().trim_matches(['<', '>']).to_string())
        .filter(|s| !s.is_empty());
    for id in ids {
        if out.len() >= limit {
            break;
        }
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// Whether a mail of this kind brings anything that could be a version: a Word or Excel
/// file, a zip or winmail.dat, a file recognised as a campaign material, a large-file link,
/// and for closure also PDFs (reports and receipts are often scanned).
pub fn carries_materials(closure: bool, u: &Understood) -> bool {
    !u.cloud_links.is_empty() || rules::all_files(&u.attachments).any(|a| is_material(closure, a))
}

fn is_material(closure: bool, a: &Attachment) -> bool {
    a.role != Role::Other
        || a.format.is_word()
        || a.format.is_spreadsheet()
        || matches!(a.format, Format::Zip | Format::Tnef)
        || (closure && a.format == Format::Pdf)
}

/// A fingerprint of the material files of a version: the sha256 over their sorted sha256s
/// (zip entries included, so the same files zipped again count as the same content).
pub fn content_key(closure: bool, attachments: &[Attachment]) -> String {
    let mut shas: Vec<&str> = rules::all_files(attachments)
        .filter(|a| is_material(closure, a) && a.format != Format::Zip)
        .map(|a| a.sha256.as_str())
        .collect();
    shas.sort_unstable();
    shas.dedup();
    let mut h = Sha256::new();
    for s in shas {
        h.update(s.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Who sent a version, against the roster and the branch's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The roster's secretary address.
    Secretary,
    /// An address that sent this branch's materials before.
    KnownSender,
    /// Someone else: the secretary is copied (when the roster has a valid address for them).
    Changed { copy_to: Option<String> },
}

impl Trust {
    pub fn changed(&self) -> bool {
        matches!(self, Trust::Changed { .. })
    }
}

/// Whether `sender` may change the branch's record unseen: one of the roster's addresses
/// for the branch (`roster_emails`, the secretary's first), or an address in
/// `earlier_senders` (those of the branch's earlier versions).
pub fn sender_trust(sender: &str, roster_emails: &[String], earlier_senders: &[String]) -> Trust {
    let sender = sender.trim();
    let same = |e: &String| !e.trim().is_empty() && e.trim().eq_ignore_ascii_case(sender);
    if roster_emails.iter().any(same) {
        return Trust::Secretary;
    }
    if earlier_senders.iter().any(same) {
        return Trust::KnownSender;
    }
    let copy_to = roster_emails
        .iter()
        .map(|e| e.trim())
        .find(|e| plausible_address(e))
        .map(str::to_lowercase);
    Trust::Changed { copy_to }
}

/// A roster address that mail can be sent to: one `@`, a dotted domain, no spaces or
/// header-breaking characters.
pub fn plausible_address(addr: &str) -> bool {
    let Some((local, domain)) = addr.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && addr
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | ',' | ';' | '"' | '\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_our_ack_wording() {
        for (subject, want) in [
            (
                "回复：Re: 对标争先建设项目申报-土木工程学院本科生第一党支部（已收到，第1版，材料齐全）",
                "回复：Re: 对标争先建设项目申报-土木工程学院本科生第一党支部",
            ),
            (
                "Re: Re: 对标争先建设项目申报-X（已收到，第2版，有3个问题待处理）",
                "Re: Re: 对标争先建设项目申报-X",
            ),
            (
                "答复: Re: 对标争先建设项目申报-X（已收到，第12版，材料齐全）（修改版）",
                "答复: Re: 对标争先建设项目申报-X（修改版）",
            ),
            ("Re: 申报材料（主题格式有误，未登记）", "Re: 申报材料"),
        ] {
            assert_eq!(
                strip_our_wording(subject),
                (want.to_string(), true),
                "{subject}"
            );
        }
    }

    #[test]
    fn recognises_our_prefixes() {
        for subject in [
            "回复：【提醒】对标争先项目申报将于9月27日截止",
            "Re: 【评审结果】X：立项（重点项目，5000 元）",
            "RE：回复：【提醒】结项材料将于12月15日截止",
        ] {
            assert!(strip_our_wording(subject).1, "{subject}");
        }
    }

    #[test]
    fn leaves_people_subjects_alone() {
        for subject in [
            "对标争先建设项目申报-土木工程学院本科生第一党支部",
            "对标争先建设项目申报-X（修改版）",
            "关于【提醒】的问题",
            "对标争先建设项目申报-X（已收到通知）",
            "",
        ] {
            let (s, found) = strip_our_wording(subject);
            assert!(!found, "{subject}");
            assert_eq!(s, subject.trim());
        }
    }

    fn understood(irt: Option<&str>, refs: &[&str]) -> Understood {
        Understood {
            in_reply_to: irt.map(str::to_string),
            references: refs.iter().map(|s| s.to_string()).collect(),
            ..Understood::default()
        }
    }

    #[test]
    fn thread_candidates_newest_first() {
        let u = understood(Some("c@x"), &["a@x", "b@x", "c@x"]);
        assert_eq!(thread_candidates(&u, 10), ["c@x", "b@x", "a@x"]);
        assert_eq!(thread_candidates(&u, 2), ["c@x", "b@x"]);
        let u = understood(None, &["<a@x>", " ", "b@x"]);
        assert_eq!(thread_candidates(&u, 10), ["b@x", "a@x"]);
        assert!(thread_candidates(&understood(None, &[]), 10).is_empty());
    }

    fn file(name: &str, format: Format, role: Role, sha: &str) -> Attachment {
        Attachment {
            filename: name.to_string(),
            safe_name: name.to_string(),
            content_type: "application/octet-stream".to_string(),
            format,
            declared_format: None,
            role,
            size: 1,
            sha256: sha.to_string(),
            bytes: Vec::new(),
            entries: Vec::new(),
            error: None,
        }
    }

    #[test]
    fn materials() {
        let with = |atts: Vec<Attachment>| Understood {
            attachments: atts,
            ..Understood::default()
        };
        assert!(!carries_materials(false, &with(vec![])));
        assert!(!carries_materials(
            false,
            &with(vec![file("签名.png", Format::Image, Role::Other, "1")])
        ));
        assert!(!carries_materials(
            false,
            &with(vec![file("扫描件.pdf", Format::Pdf, Role::Other, "1")])
        ));
        assert!(carries_materials(
            true,
            &with(vec![file("扫描件.pdf", Format::Pdf, Role::Other, "1")])
        ));
        assert!(carries_materials(
            false,
            &with(vec![file("申请表.docx", Format::Docx, Role::Form, "1")])
        ));
        assert!(carries_materials(
            false,
            &with(vec![file("x.xls", Format::Xls, Role::Other, "1")])
        ));
        assert!(carries_materials(
            false,
            &with(vec![file("材料.zip", Format::Zip, Role::Other, "1")])
        ));
    }

    #[test]
    fn content_key_ignores_order_and_zipping() {
        let a = file("申请表.docx", Format::Docx, Role::Form, "aa");
        let b = file("汇总表.xlsx", Format::Xlsx, Role::Summary, "bb");
        let k1 = content_key(false, &[a.clone(), b.clone()]);
        let k2 = content_key(false, &[b.clone(), a.clone()]);
        assert_eq!(k1, k2);
        let mut zip = file("材料.zip", Format::Zip, Role::Other, "zz");
        zip.entries = vec![a.clone(), b.clone()];
        assert_eq!(content_key(false, &[zip]), k1);
        let c = file("汇总表.xlsx", Format::Xlsx, Role::Summary, "cc");
        assert_ne!(content_key(false, &[a, c]), k1);
    }

    #[test]
    fn trust() {
        let earlier = vec!["member@qq.com".to_string()];
        let roster = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let sec = roster(&["sec@school.edu.cn", "deputy@qq.com"]);
        assert_eq!(
            sender_trust("Sec@School.edu.cn", &sec, &earlier),
            Trust::Secretary
        );
        assert_eq!(sender_trust("deputy@qq.com", &sec, &[]), Trust::Secretary);
        assert_eq!(
            sender_trust("MEMBER@qq.com", &sec, &earlier),
            Trust::KnownSender
        );
        assert_eq!(
            sender_trust(
                "stranger@163.com",
                &roster(&["Sec@School.edu.cn"]),
                &earlier
            ),
            Trust::Changed {
                copy_to: Some("sec@school.edu.cn".to_string())
            }
        );
        assert_eq!(
            sender_trust("stranger@163.com", &[], &[]),
            Trust::Changed { copy_to: None }
        );
        assert_eq!(
            sender_trust("stranger@163.com", &roster(&["不详", ""]), &[]),
            Trust::Changed { copy_to: None }
        );
        // An empty sender is never trusted by an empty roster cell.
        assert_eq!(
            sender_trust("", &roster(&[""]), &["".to_string()]),
            Trust::Changed { copy_to: None }
        );
    }

    #[test]
    fn plausible_addresses() {
        for ok in ["a@b.cn", "zhang.san+x@mail.tongji.edu.cn"] {
            assert!(plausible_address(ok), "{ok}");
        }
        for bad in [
            "",
            "无",
            "a@b",
            "a@.cn",
            "a@b.",
            "@b.cn",
            "a b@c.cn",
            "a@b.cn,c@d.cn",
            "a@b.cn\r\nBcc: x@y.cn",
            "张三@b.cn",
            "a@@b.cn",
        ] {
            assert!(!plausible_address(bad), "{bad:?}");
        }
    }
}
