//! Is this message machine-generated? Then it must never be answered.
//!
//! Out-of-office replies, bounces, read receipts and list mail arrive in the
//! intake mailbox next to real applications; answering them starts mail
//! loops and annoys list owners (RFC 3834 §2).
//!
//! Every signal found is reported, each with its [`Strength`]. A *strong*
//! signal (`Auto-Submitted: auto-*`, a delivery report, a null sender, our own
//! mail, an autoresponder's or a list's header) is proof enough that no person
//! is waiting for an answer. A *weak* one is not: Outlook and Exchange put
//! `X-Auto-Response-Suppress` on mail people write, and some clients and
//! gateways set `Precedence` on ordinary mail (Discourse stopped treating the
//! former as automatic for this reason). Weak signals are recorded for staff
//! and never, alone, keep a person from an answer. Neither kind decides
//! whether materials are *registered*: that is the pipeline's decision.

use super::headers::{RawHeader, first};
use super::{Address, AutoSignal, LoopGuard, Strength};

/// What the detector looks at, already extracted by `understand`.
pub(crate) struct AutoInput<'a> {
    pub headers: &'a [RawHeader],
    pub from: Option<&'a Address>,
    pub sender: Option<&'a Address>,
    pub return_path: Option<&'a str>,
    /// The top-level `type/subtype`, lowercased.
    pub content_type: &'a str,
    pub message_id: Option<&'a str>,
    pub subject: &'a str,
}

/// Local parts that only machines send from. `noreply`-style names match as
/// prefixes too (`noreply-notifications@…`).
const DAEMON_LOCAL_PARTS: &[&str] = &["mailer-daemon", "postmaster"];
const NOREPLY_PREFIXES: &[&str] = &[
    "noreply",
    "no-reply",
    "no_reply",
    "do-not-reply",
    "donotreply",
    "do_not_reply",
];

/// Subject prefixes of auto replies and bounces (Chinese and English clients,
/// Exchange in both languages, Postfix, Sendmail, Coremail, QQ Mail).
const AUTO_SUBJECT_PREFIXES: &[&str] = &[
    "自动回复",
    "自动答复",
    "自動回覆",
    "系统退信",
    "退信",
    "无法送达",
    "未送达",
    "automatic reply",
    "auto reply",
    "autoreply",
    "auto-reply",
    "auto:",
    "out of office",
    "out of the office",
    "undeliverable",
    "undelivered mail",
    "delivery status notification",
    "delivery failure",
    "mail delivery failed",
    "returned mail",
    "failure notice",
];

fn value(headers: &[RawHeader], name: &str) -> Option<String> {
    first(headers, name).map(|h| String::from_utf8_lossy(&h.value).trim().to_string())
}

fn local_part(addr: &str) -> &str {
    addr.rsplit_once('@').map(|(l, _)| l).unwrap_or(addr)
}

fn domain(id: &str) -> &str {
    id.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// Headers that are weak evidence on their own (see the module doc).
const WEAK: &[&str] = &["precedence", "x_auto_response_suppress"];

/// Every auto-generated signal in the message, strongest kinds first; empty for mail a
/// person wrote with an ordinary client.
pub(crate) fn detect(input: &AutoInput<'_>, guard: &LoopGuard) -> Vec<AutoSignal> {
    let mut found = Vec::new();
    let mut signal = |code: &'static str, detail: String| {
        let strength = if WEAK.contains(&code) {
            Strength::Weak
        } else {
            Strength::Strong
        };
        found.push(AutoSignal {
            code,
            detail,
            strength,
        });
    };
    let headers = input.headers;

    // Our own mail coming back: the loop header, our Message-ID domain, our address.
    if !guard.loop_header.trim().is_empty()
        && let Some(v) = value(headers, guard.loop_header.trim())
    {
        signal("loop_header", format!("{}: {v}", guard.loop_header.trim()));
    }
    if let Some(id) = input.message_id {
        let d = domain(id).trim_end_matches('>').to_ascii_lowercase();
        let own = guard.own_domain.trim().to_ascii_lowercase();
        if !own.is_empty() && (d == own || d.ends_with(&format!(".{own}"))) {
            signal("own_message_id", format!("Message-ID <{id}>"));
        }
    }
    if let Some(from) = input.from
        && guard
            .own_addresses
            .iter()
            .any(|own| own.trim().eq_ignore_ascii_case(&from.addr))
    {
        signal("own_address", format!("From {}", from.addr));
    }

    if let Some(v) = value(headers, "Auto-Submitted") {
        let token = v
            .split([';', '(', ' '])
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if token != "no" {
            signal("auto_submitted", format!("Auto-Submitted: {v}"));
        }
    }
    if input.content_type == "multipart/report" {
        signal(
            "multipart_report",
            "Content-Type: multipart/report".to_string(),
        );
    }
    if let Some(v) = value(headers, "X-Failed-Recipients") {
        signal("x_failed_recipients", format!("X-Failed-Recipients: {v}"));
    }
    if input.return_path == Some("") {
        signal("empty_return_path", "Return-Path: <>".to_string());
    }
    for (who, addr) in [("From", input.from), ("Sender", input.sender)] {
        let Some(addr) = addr else { continue };
        let local = local_part(&addr.addr).to_ascii_lowercase();
        if DAEMON_LOCAL_PARTS.contains(&local.as_str())
            || NOREPLY_PREFIXES.iter().any(|p| local.starts_with(p))
        {
            signal("daemon_sender", format!("{who} {}", addr.addr));
        }
    }
    if let Some(v) = value(headers, "Precedence") {
        let lower = v.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "bulk" | "junk" | "list" | "auto_reply" | "auto-reply"
        ) {
            signal("precedence", format!("Precedence: {v}"));
        }
    }
    for (name, code) in [
        ("X-Autoreply", "x_autoreply"),
        ("X-Autorespond", "x_autorespond"),
        ("X-Autoresponder", "x_autoresponder"),
        ("X-Auto-Response-Suppress", "x_auto_response_suppress"),
        (
            "X-MS-Exchange-Generated-Message-Source",
            "ms_exchange_generated",
        ),
        (
            "X-MS-Exchange-Inbox-Rules-Loop",
            "ms_exchange_inbox_rules_loop",
        ),
        ("List-Id", "list_id"),
        ("List-Unsubscribe", "list_unsubscribe"),
        ("List-Post", "list_post"),
    ] {
        if let Some(v) = value(headers, name) {
            signal(code, format!("{name}: {v}"));
        }
    }
    let subject = input.subject.trim_start();
    let lower = subject.to_lowercase();
    if let Some(prefix) = AUTO_SUBJECT_PREFIXES.iter().find(|p| lower.starts_with(*p)) {
        signal("auto_subject", format!("主题以“{prefix}”开头"));
    }
    found
}

#[cfg(test)]
mod tests {
    use crate::message::{LoopGuard, understand};

    fn guard() -> LoopGuard {
        LoopGuard {
            own_domain: "shenbao.example.test".into(),
            loop_header: "X-Shenbao-Loop".into(),
            own_addresses: vec![
                "intake@example.test".into(),
                "noreply-not-this@example.test".into(),
            ],
        }
    }

    fn mail(extra_headers: &str) -> Vec<u8> {
        format!(
            "Return-Path: <branch@example.edu.cn>\r\nFrom: Branch <branch@example.edu.cn>\r\nTo: intake@example.test\r\nMessage-ID: <abc@example.edu.cn>\r\nDate: Sat, 20 Sep 2025 21:46:32 +0800\r\n{extra_headers}Content-Type: text/plain; charset=UTF-8\r\n\r\n您好\r\n"
        )
        .into_bytes()
    }

    fn with_subject(extra: &str, subject: &str) -> Vec<u8> {
        mail(&format!("Subject: {subject}\r\n{extra}"))
    }

    fn code(raw: &[u8]) -> Option<&'static str> {
        understand(raw, &guard()).auto.map(|a| a.code)
    }

    fn hints(raw: &[u8]) -> Vec<&'static str> {
        understand(raw, &guard())
            .auto_hints
            .iter()
            .map(|a| a.code)
            .collect()
    }

    const SUBJ: &str = "对标争先建设项目申报-某党支部";

    #[test]
    fn normal_mail_is_not_auto() {
        assert_eq!(code(&with_subject("", SUBJ)), None);
        assert_eq!(code(&with_subject("Auto-Submitted: no\r\n", SUBJ)), None);
        assert_eq!(code(&with_subject("Precedence: normal\r\n", SUBJ)), None);
        // A human reply to one of our acknowledgements references our IDs: fine.
        assert_eq!(
            code(&with_subject(
                "In-Reply-To: <1@shenbao.example.test>\r\n",
                &format!("Re: {SUBJ}")
            )),
            None
        );
    }

    #[test]
    fn auto_submitted() {
        assert_eq!(
            code(&with_subject("Auto-Submitted: auto-replied\r\n", SUBJ)),
            Some("auto_submitted")
        );
        assert_eq!(
            code(&with_subject(
                "Auto-Submitted: auto-generated; owner-email=\"x@y\"\r\n",
                SUBJ
            )),
            Some("auto_submitted")
        );
    }

    /// Precedence is weak: recorded as a hint, never proof on its own.
    #[test]
    fn precedence_values_are_hints() {
        for v in ["bulk", "junk", "list", "auto_reply", "Bulk"] {
            let raw = with_subject(&format!("Precedence: {v}\r\n"), SUBJ);
            assert_eq!(code(&raw), None, "{v}");
            assert_eq!(hints(&raw), ["precedence"], "{v}");
        }
        assert!(hints(&with_subject("Precedence: normal\r\n", SUBJ)).is_empty());
    }

    /// What Outlook and Exchange put on mail people write: a hint, not proof.
    #[test]
    fn outlook_suppress_header_is_a_hint() {
        for v in ["All", "DR, RN, NRN, OOF, AutoReply", "OOF"] {
            let raw = with_subject(&format!("X-Auto-Response-Suppress: {v}\r\n"), SUBJ);
            assert_eq!(code(&raw), None, "{v}");
            assert_eq!(hints(&raw), ["x_auto_response_suppress"], "{v}");
        }
        // Both weak signals together are still no proof.
        let both = with_subject(
            "X-Auto-Response-Suppress: All\r\nPrecedence: bulk\r\n",
            SUBJ,
        );
        assert_eq!(code(&both), None);
        assert_eq!(hints(&both).len(), 2);
    }

    /// A strong signal wins; weak ones beside it are kept as hints.
    #[test]
    fn strong_beside_weak() {
        let raw = with_subject(
            "X-Auto-Response-Suppress: All\r\nAuto-Submitted: auto-replied\r\n",
            SUBJ,
        );
        assert_eq!(code(&raw), Some("auto_submitted"));
        assert_eq!(hints(&raw), ["x_auto_response_suppress"]);
    }

    /// One test per header signal: the header alone makes the mail auto.
    macro_rules! header_signal {
        ($($name:ident: $header:expr => $code:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(code(&with_subject(concat!($header, "\r\n"), SUBJ)), Some($code));
            }
        )*};
    }

    header_signal! {
        x_autoreply: "X-Autoreply: yes" => "x_autoreply";
        x_autorespond: "X-Autorespond: 1" => "x_autorespond";
        x_autoresponder: "X-Autoresponder: vacation" => "x_autoresponder";
        list_id: "List-Id: <party.example.edu.cn>" => "list_id";
        list_unsubscribe: "List-Unsubscribe: <mailto:leave@x>" => "list_unsubscribe";
        list_post: "List-Post: <mailto:post@x>" => "list_post";
        loop_header: "X-Shenbao-Loop: 1" => "loop_header";
        failed_recipients: "X-Failed-Recipients: a@b" => "x_failed_recipients";
        exchange_generated: "X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent" => "ms_exchange_generated";
        exchange_rules_loop: "X-MS-Exchange-Inbox-Rules-Loop: a@b" => "ms_exchange_inbox_rules_loop";
    }

    #[test]
    fn empty_return_path() {
        let raw = String::from_utf8(with_subject("", SUBJ))
            .unwrap()
            .replace("Return-Path: <branch@example.edu.cn>", "Return-Path: <>");
        let u = understand(raw.as_bytes(), &guard());
        assert_eq!(u.return_path.as_deref(), Some(""));
        assert_eq!(u.auto.map(|a| a.code), Some("empty_return_path"));
    }

    #[test]
    fn daemon_senders() {
        for from in [
            "MAILER-DAEMON@mx.example.edu.cn",
            "postmaster@qq.com",
            "noreply@example.com",
            "no-reply@example.com",
            "Do-Not-Reply@example.com",
            "donotreply@example.com",
        ] {
            let raw = String::from_utf8(with_subject("", SUBJ)).unwrap().replace(
                "From: Branch <branch@example.edu.cn>",
                &format!("From: {from}"),
            );
            assert_eq!(code(raw.as_bytes()), Some("daemon_sender"), "{from}");
        }
        assert_eq!(
            code(&with_subject("Sender: postmaster@example.edu.cn\r\n", SUBJ)),
            Some("daemon_sender")
        );
    }

    #[test]
    fn multipart_report() {
        let raw = "From: Mail Delivery System <mailer@example.edu.cn>\r\nSubject: hello\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.0.0\r\n--b--\r\n";
        assert_eq!(code(raw.as_bytes()), Some("multipart_report"));
    }

    #[test]
    fn own_message_id() {
        let raw = String::from_utf8(with_subject("", SUBJ))
            .unwrap()
            .replace("<abc@example.edu.cn>", "<20250925.1@shenbao.example.test>");
        assert_eq!(code(raw.as_bytes()), Some("own_message_id"));
    }

    #[test]
    fn own_address() {
        let raw = String::from_utf8(with_subject("", SUBJ)).unwrap().replace(
            "From: Branch <branch@example.edu.cn>",
            "From: 学工部 <Intake@Example.Test>",
        );
        assert_eq!(code(raw.as_bytes()), Some("own_address"));
    }

    #[test]
    fn auto_subjects() {
        for subject in [
            "自动回复: 对标争先建设项目申报-某党支部",
            "自动答复：收到",
            "Automatic reply: hello",
            "Auto: hello",
            "Out of Office: hello",
            "Undeliverable: hello",
            "Delivery Status Notification (Failure)",
            "退信",
            "系统退信",
            "=?UTF-8?B?6Ieq5Yqo5Zue5aSNOiDmlLbliLA=?=",
        ] {
            assert_eq!(
                code(&with_subject("", subject)),
                Some("auto_subject"),
                "{subject}"
            );
        }
        // Not at the start: a person quoting it.
        assert_eq!(code(&with_subject("", "关于自动回复的问题")), None);
    }
}
