//! Shared set-up for the fuzz targets: the campaign configuration the daemon would run with
//! (the example config's subject patterns, sections and the sample roster), and the panic policy.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use shenbao::message::LoopGuard;
use shenbao::roster::Roster;
use shenbao::subject::SubjectGrammar;

/// `campaign.application_subject` / `closure_subject` of config/shenbao.example.toml.
pub const APPLICATION_SUBJECT: &str = "对标争先建设项目申报-{支部名称}";
pub const CLOSURE_SUBJECT: &str = "对标争先建设项目结项-{支部名称}";

/// `campaign.sections` of config/shenbao.example.toml.
pub fn sections() -> &'static [String] {
    static SECTIONS: OnceLock<Vec<String>> = OnceLock::new();
    SECTIONS.get_or_init(|| {
        [
            "学思践悟·固本强基",
            "先锋领航·校园善治",
            "党旗飘扬·社区聚力",
            "师生结对·双向赋能",
            "育苗成长·薪火相传",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    })
}

pub fn grammar() -> &'static SubjectGrammar {
    static GRAMMAR: OnceLock<SubjectGrammar> = OnceLock::new();
    GRAMMAR.get_or_init(|| {
        SubjectGrammar::new(APPLICATION_SUBJECT, CLOSURE_SUBJECT).expect("example patterns")
    })
}

pub fn roster() -> &'static Roster {
    static ROSTER: OnceLock<Roster> = OnceLock::new();
    ROSTER.get_or_init(|| {
        Roster::from_csv(&include_bytes!("../../tests/fixtures/samples/roster.csv")[..])
            .expect("sample roster")
    })
}

/// What `Pipeline::new` builds from the example config.
pub fn guard() -> &'static LoopGuard {
    static GUARD: OnceLock<LoopGuard> = OnceLock::new();
    GUARD.get_or_init(|| LoopGuard {
        own_domain: "shenbao.example.test".to_string(),
        loop_header: "X-Shenbao-Loop".to_string(),
        own_addresses: vec![
            "shenbao@example.test".to_string(),
            "dangwei@example.test".to_string(),
        ],
    })
}

static DEPENDENCY_PANICS: AtomicUsize = AtomicUsize::new(0);

/// The panic policy, installed once at start-up on top of libFuzzer's abort-on-panic hook.
///
/// shenbao deliberately wraps some dependencies (calamine, cfb, zip, mail-parser) in
/// `catch_unwind` and turns their panics into "damaged file" answers; such a panic is the
/// designed behaviour, not a crash of the daemon. So a panic whose location is inside a
/// dependency (`~/.cargo/registry`, `~/.cargo/git`) is let unwind: if shenbao catches it the
/// input simply passes, if it does not, libfuzzer-sys aborts when it reaches the target's
/// boundary and the crash is reported. Every other panic — in shenbao's own code or in std on
/// shenbao's behalf (an index out of bounds, an overflow) — aborts at once even when a
/// `catch_unwind` further up would hide it, because it is a bug in our code.
pub fn install_panic_policy() {
    let libfuzzer_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_dependency = info.location().is_some_and(|l| {
            let f = l.file();
            f.contains("/.cargo/registry/") || f.contains("/.cargo/git/")
        });
        if in_dependency {
            let n = DEPENDENCY_PANICS.fetch_add(1, Ordering::Relaxed);
            if n < 5 || n.is_power_of_two() {
                eprintln!("[fuzz] dependency panic #{n} (left to shenbao's catch_unwind): {info}");
            }
        } else {
            libfuzzer_hook(info);
        }
    }));
}
