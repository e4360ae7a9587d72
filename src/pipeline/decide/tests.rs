//! Deciding without a database: each case builds a message and the history the pipeline would
//! have read, and checks the [`Decision`].

use super::*;
use crate::attach::Format;
use crate::message::{Address, AutoSignal, Strength};
use chrono::TimeZone as _;
use std::sync::OnceLock;

const CIVIL: &str = "土木工程学院本科生第一党支部";
const CIVIL_EMAIL: &str = "branch1@example.test";

struct Fixture {
    cfg: Config,
    grammar: SubjectGrammar,
    roster: Roster,
    templates: Templates,
    policy: rules::Policy,
    guard: LoopGuard,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // The example configuration, with the example roster next to it.
        let text = include_str!("../../../config/shenbao.example.toml")
            .replace("roster = \"roster.csv\"", "roster = \"roster.example.csv\"");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let cfg = Config::parse(&text, &dir.join("shenbao.toml")).expect("example config");
        let grammar = SubjectGrammar::new(
            &cfg.campaign.application_subject,
            &cfg.campaign.closure_subject,
        )
        .expect("grammar");
        let roster = Roster::from_csv(&include_bytes!("../../../config/roster.example.csv")[..])
            .expect("roster");
        let templates = Templates::builtin().expect("built-in templates");
        let policy = rules::Policy {
            budget_cap_yuan: cfg.campaign.budget_cap_yuan,
            leader_roles: cfg.campaign.leader_roles.clone(),
        };
        let guard = LoopGuard {
            own_domain: cfg.ack.message_id_domain.clone(),
            loop_header: compose::LOOP_HEADER.to_string(),
            own_addresses: vec![
                cfg.campaign.intake_address.to_lowercase(),
                cfg.smtp.from_address.to_lowercase(),
            ],
        };
        Fixture {
            cfg,
            grammar,
            roster,
            templates,
            policy,
            guard,
        }
    })
}

fn ctx(notify: NotifyMode) -> Context<'static> {
    let f = fixture();
    Context {
        cfg: &f.cfg,
        grammar: &f.grammar,
        roster: &f.roster,
        templates: &f.templates,
        policy: &f.policy,
        guard: &f.guard,
        notify,
    }
}

fn file(name: &str, format: Format, role: Role) -> Attachment {
    Attachment {
        filename: name.into(),
        safe_name: name.into(),
        content_type: "application/octet-stream".into(),
        bytes: name.as_bytes().to_vec(),
        size: name.len(),
        sha256: format!("{:0>64}", name.len()),
        format,
        declared_format: None,
        role,
        entries: Vec::new(),
        error: None,
    }
}

fn form() -> Attachment {
    file("申请表.docx", Format::Docx, Role::Form)
}

fn mail(from: Option<&str>, subject: &str, attachments: Vec<Attachment>) -> Understood {
    Understood {
        message_id: Some("m1@example.test".into()),
        subject: subject.into(),
        from: from.map(|a| Address {
            name: None,
            addr: a.into(),
        }),
        attachments,
        ..Understood::default()
    }
}

fn application(branch: &str) -> String {
    fixture().grammar.application_subject_for(branch)
}

fn closure(branch: &str) -> String {
    fixture().grammar.closure_subject_for(branch)
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 9, 20, 2, 0, 0)
        .single()
        .expect("time")
}

fn plain(subject: &str) -> ClassifyInput<'_> {
    ClassifyInput {
        subject,
        answers_us: false,
        thread: None,
        assigned: None,
    }
}

/// Classifies and decides `u`, as the pipeline would with history `h`.
fn run(ctx: &Context<'_>, u: &Understood, input: &ClassifyInput<'_>, h: &History) -> Decision {
    let extracted = Extracted::default();
    let c = classify(ctx, u, input);
    let m = Message {
        id: 7,
        raw_sha256: "abcdef0123456789abcdef",
        received: now(),
        campaign: "default",
        understood: u,
        extracted: &extracted,
    };
    decide(ctx, &m, &c, input.thread, h, now()).expect("decides")
}

fn first() -> History {
    History {
        next_version: 1,
        ..History::default()
    }
}

#[test]
fn classification_table() {
    let ctx = ctx(NotifyMode::Normal);
    let own = format!("a@{}", fixture().cfg.ack.message_id_domain);
    let thread = Thread {
        our_id: own.clone(),
        branch: Some(CIVIL.into()),
        closure: false,
    };
    let strong = AutoSignal {
        code: "auto_submitted",
        detail: "Auto-Submitted: auto-replied".into(),
        strength: Strength::Strong,
    };
    struct Case {
        name: &'static str,
        u: Understood,
        answers_us: bool,
        thread: Option<Thread>,
        assigned: Option<&'static str>,
        want: Disposition,
        branch: Option<&'static str>,
    }
    let mut own_copy = mail(
        Some(&fixture().cfg.campaign.intake_address),
        "Re: x",
        vec![],
    );
    own_copy.message_id = Some(own.clone());
    let mut auto = mail(Some("x@example.test"), "自动回复：不在办公室", vec![]);
    auto.auto = Some(strong.clone());
    let mut auto_with_materials = mail(Some(CIVIL_EMAIL), &application(CIVIL), vec![form()]);
    auto_with_materials.auto = Some(strong);
    let cases = vec![
        Case {
            name: "application with a form",
            u: mail(Some(CIVIL_EMAIL), &application(CIVIL), vec![form()]),
            answers_us: false,
            thread: None,
            assigned: None,
            want: Disposition::Application,
            branch: Some(CIVIL),
        },
        Case {
            name: "closure with a report",
            u: mail(
                Some(CIVIL_EMAIL),
                &closure(CIVIL),
                vec![file("结题报告.docx", Format::Docx, Role::ClosureReport)],
            ),
            answers_us: false,
            thread: None,
            assigned: None,
            want: Disposition::Closure,
            branch: Some(CIVIL),
        },
        Case {
            name: "a question without attachments",
            u: mail(Some("x@example.test"), "请问申报表在哪里下载", vec![]),
            answers_us: false,
            thread: None,
            assigned: None,
            want: Disposition::Question,
            branch: None,
        },
        Case {
            name: "a form under a wrong subject",
            u: mail(Some("x@example.test"), "项目材料", vec![form()]),
            answers_us: false,
            thread: None,
            assigned: None,
            want: Disposition::SubjectHelp,
            branch: None,
        },
        Case {
            name: "our own copy",
            u: own_copy,
            answers_us: false,
            thread: None,
            assigned: None,
            want: Disposition::OwnCopy,
            branch: None,
        },
        Case {
            name: "an out-of-office",
            u: auto,
            answers_us: false,
            thread: None,
            assigned: None,
            want: Disposition::Auto,
            branch: None,
        },
        Case {
            name: "materials are registered whatever the automatic signals",
            u: auto_with_materials,
            answers_us: false,
            thread: None,
            assigned: None,
            want: Disposition::Application,
            branch: Some(CIVIL),
        },
        Case {
            name: "a reply to our mail without materials",
            u: mail(Some(CIVIL_EMAIL), "Re: 收到", vec![]),
            answers_us: true,
            thread: Some(thread.clone()),
            assigned: None,
            want: Disposition::Reply,
            branch: Some(CIVIL),
        },
        Case {
            name: "a reply to our mail with a form is the thread's branch's version",
            u: mail(Some(CIVIL_EMAIL), "Re: 收到", vec![form()]),
            answers_us: true,
            thread: Some(thread.clone()),
            assigned: None,
            want: Disposition::Application,
            branch: Some(CIVIL),
        },
        Case {
            name: "staff assigned a branch",
            u: mail(Some("x@example.test"), "材料", vec![form()]),
            answers_us: false,
            thread: None,
            assigned: Some(CIVIL),
            want: Disposition::Application,
            branch: Some(CIVIL),
        },
    ];
    for c in cases {
        let got = classify(
            &ctx,
            &c.u,
            &ClassifyInput {
                subject: &c.u.subject,
                answers_us: c.answers_us,
                thread: c.thread.as_ref(),
                assigned: c.assigned,
            },
        );
        assert_eq!(got.disposition, c.want, "{}: {}", c.name, got.reason);
        assert_eq!(got.branch.as_deref(), c.branch, "{}", c.name);
    }
}

#[test]
fn a_first_version_is_acknowledged() {
    let u = mail(Some(CIVIL_EMAIL), &application(CIVIL), vec![form()]);
    let d = run(&ctx(NotifyMode::Normal), &u, &plain(&u.subject), &first());
    assert_eq!(d.outcome.disposition, Disposition::Application);
    assert_eq!(d.outcome.branch.as_deref(), Some(CIVIL));
    assert_eq!(d.outcome.version, Some(1));
    assert!(!d.needs_staff);
    assert_eq!(d.no_answer, None);
    let a = d.answer.as_ref().expect("an acknowledgement");
    assert_eq!(a.mail.kind, OutboxKind::Ack);
    assert_eq!(a.mail.to, CIVIL_EMAIL);
    assert_eq!(a.branch.as_deref(), Some(CIVIL));
    assert!(
        a.mail.subject.contains("已收到，第1版"),
        "{}",
        a.mail.subject
    );
    assert_eq!(
        d.outcome.queued.as_deref(),
        Some(a.mail.message_id.as_str())
    );
    let v = d.version.as_ref().expect("a version");
    assert_eq!(
        (v.kind, v.number, v.branch_key.as_str()),
        ("application", 1, CIVIL)
    );
    assert!(!v.sender_changed);
    assert!(!v.late);
    assert!(d.template_errors.is_empty());
}

#[test]
fn later_versions_take_the_number_read_before() {
    let u = mail(Some(CIVIL_EMAIL), &application(CIVIL), vec![form()]);
    let h = History {
        next_version: 3,
        earlier_senders: vec![CIVIL_EMAIL.into()],
        ..History::default()
    };
    let d = run(&ctx(NotifyMode::Normal), &u, &plain(&u.subject), &h);
    assert_eq!(d.outcome.version, Some(3));
    assert!(
        d.answer.expect("ack").mail.subject.contains("第3版"),
        "the subject names the version"
    );
}

#[test]
fn when_nothing_is_answered_the_reason_says_why() {
    let u = mail(Some(CIVIL_EMAIL), &application(CIVIL), vec![form()]);
    let silent = NotifyMode::Silent(Quiet::Reprocess);
    let max = i64::from(fixture().cfg.ack.max_identical);
    let no_address = mail(None, &application(CIVIL), vec![form()]);
    let cases: Vec<(&str, NotifyMode, &Understood, History, &str)> = vec![
        (
            "silent replay",
            silent,
            &u,
            first(),
            Quiet::Reprocess.reason(),
        ),
        (
            "backfill",
            NotifyMode::Silent(Quiet::Backfill),
            &u,
            first(),
            Quiet::Backfill.reason(),
        ),
        (
            "identical content answered enough",
            NotifyMode::Normal,
            &u,
            History {
                identical_acks: max,
                ..first()
            },
            "与此前的版本内容完全相同",
        ),
        (
            "no address",
            NotifyMode::Normal,
            &no_address,
            first(),
            "没有可回复的发件地址，未回复",
        ),
    ];
    for (name, mode, u, h, why) in cases {
        let d = run(&ctx(mode), u, &plain(&u.subject), &h);
        assert!(d.answer.is_none(), "{name}");
        assert_eq!(d.outcome.queued, None, "{name}");
        assert_eq!(d.outcome.version, Some(1), "{name}: still registered");
        let no = d.no_answer.as_deref().unwrap_or_default();
        assert!(no.starts_with(why), "{name}: {no}");
        assert!(
            d.outcome.reason.ends_with(no),
            "{name}: {}",
            d.outcome.reason
        );
    }
}

#[test]
fn identical_content_below_the_cap_is_answered() {
    let u = mail(Some(CIVIL_EMAIL), &application(CIVIL), vec![form()]);
    let h = History {
        identical_acks: i64::from(fixture().cfg.ack.max_identical) - 1,
        ..first()
    };
    let d = run(&ctx(NotifyMode::Normal), &u, &plain(&u.subject), &h);
    assert!(d.answer.is_some());
}

#[test]
fn without_materials_after_a_version_it_is_conversation() {
    let u = mail(Some(CIVIL_EMAIL), &application(CIVIL), vec![]);
    let h = History {
        latest_version: Some(2),
        ..first()
    };
    let d = run(&ctx(NotifyMode::Normal), &u, &plain(&u.subject), &h);
    assert_eq!(d.outcome.disposition, Disposition::Reply);
    assert_eq!(d.outcome.version, None);
    assert!(d.version.is_none(), "never a version");
    assert!(d.needs_staff);
    assert!(
        d.outcome.reason.contains("第 2 版仍然有效"),
        "{}",
        d.outcome.reason
    );
    let a = d.answer.expect("the no-materials note");
    assert_eq!(a.mail.kind, OutboxKind::NoMaterials);
    assert!(a.mail.subject.ends_with("（未附材料，未登记新版本）"));

    // Enough such notes to this address: none, and the log hears of it.
    let h = History {
        latest_version: Some(2),
        recent_answers: i64::from(fixture().cfg.ack.max_per_sender),
        ..first()
    };
    let d = run(&ctx(NotifyMode::Normal), &u, &plain(&u.subject), &h);
    assert!(d.answer.is_none());
    assert!(d.limited.is_some());
    assert!(
        d.no_answer
            .as_deref()
            .is_some_and(|w| w.contains("封同类自动提示")),
        "{:?}",
        d.no_answer
    );

    // Replayed silently: no note either.
    let d = run(
        &ctx(NotifyMode::Silent(Quiet::Reprocess)),
        &u,
        &plain(&u.subject),
        &History {
            latest_version: Some(2),
            ..first()
        },
    );
    assert!(d.answer.is_none());
    assert_eq!(d.no_answer.as_deref(), Some(Quiet::Reprocess.reason()));
}

#[test]
fn without_materials_and_without_a_version_it_is_registered() {
    let u = mail(Some(CIVIL_EMAIL), &application(CIVIL), vec![]);
    let d = run(&ctx(NotifyMode::Normal), &u, &plain(&u.subject), &first());
    assert_eq!(d.outcome.disposition, Disposition::Application);
    assert_eq!(d.outcome.version, Some(1));
    assert!(d.outcome.problems.contains(&Problem::FormMissing));
}

#[test]
fn subject_help_once_per_window() {
    let u = mail(Some("x@example.test"), "项目材料", vec![form()]);
    let d = run(&ctx(NotifyMode::Normal), &u, &plain(&u.subject), &first());
    assert_eq!(d.outcome.disposition, Disposition::SubjectHelp);
    assert!(!d.needs_staff);
    let a = d.answer.expect("help");
    assert_eq!(a.mail.kind, OutboxKind::SubjectHelp);
    assert!(a.mail.subject.ends_with("（主题格式有误，未登记）"));
    assert!(d.version.is_none());

    let h = History {
        recent_answers: 1,
        ..first()
    };
    let d = run(&ctx(NotifyMode::Normal), &u, &plain(&u.subject), &h);
    assert!(d.answer.is_none());
    assert!(d.needs_staff);
    assert_eq!(
        d.no_answer.as_deref(),
        Some("已就主题格式答复过该发件人，本次不再答复，留待人工处理")
    );

    let d = run(
        &ctx(NotifyMode::Silent(Quiet::Backfill)),
        &u,
        &plain(&u.subject),
        &first(),
    );
    assert!(d.answer.is_none());
    assert!(d.needs_staff);
}

#[test]
fn questions_replies_and_machines_are_not_answered() {
    let ctx = ctx(NotifyMode::Normal);
    let q = mail(Some("x@example.test"), "请问截止时间", vec![]);
    let d = run(&ctx, &q, &plain(&q.subject), &first());
    assert_eq!(d.outcome.disposition, Disposition::Question);
    assert!(d.needs_staff && d.answer.is_none() && d.no_answer.is_none());

    let mut auto = mail(Some("x@example.test"), "自动回复", vec![]);
    auto.auto = Some(AutoSignal {
        code: "auto_submitted",
        detail: "Auto-Submitted: auto-replied".into(),
        strength: Strength::Strong,
    });
    let d = run(&ctx, &auto, &plain(&auto.subject), &first());
    assert_eq!(d.outcome.disposition, Disposition::Auto);
    assert!(!d.needs_staff && d.answer.is_none());
}

#[test]
fn materials_from_a_machine_are_registered_not_answered() {
    let mut u = mail(Some(CIVIL_EMAIL), &application(CIVIL), vec![form()]);
    u.auto = Some(AutoSignal {
        code: "auto_submitted",
        detail: "Auto-Submitted: auto-generated".into(),
        strength: Strength::Strong,
    });
    let d = run(&ctx(NotifyMode::Normal), &u, &plain(&u.subject), &first());
    assert_eq!(d.outcome.version, Some(1));
    assert!(d.answer.is_none());
    assert!(
        d.no_answer
            .as_deref()
            .is_some_and(|w| w.starts_with("有明确的自动邮件信号"))
    );
}

#[test]
fn weak_signals_are_noted_in_the_reason() {
    let mut u = mail(Some(CIVIL_EMAIL), &application(CIVIL), vec![form()]);
    u.auto_hints = vec![AutoSignal {
        code: "precedence",
        detail: "Precedence: bulk".into(),
        strength: Strength::Weak,
    }];
    let d = run(&ctx(NotifyMode::Normal), &u, &plain(&u.subject), &first());
    assert!(
        d.outcome
            .reason
            .ends_with("；另有不足以认定为自动邮件的信号：Precedence: bulk"),
        "{}",
        d.outcome.reason
    );
    assert!(d.answer.is_some());
}

#[test]
fn an_unknown_branch_is_registered_for_staff() {
    let u = mail(
        Some("x@example.test"),
        &application("不存在的支部"),
        vec![form()],
    );
    let d = run(&ctx(NotifyMode::Normal), &u, &plain(&u.subject), &first());
    assert_eq!(d.outcome.disposition, Disposition::Application);
    assert_eq!(d.outcome.branch, None);
    assert!(d.needs_staff);
    assert!(d.outcome.problems.contains(&Problem::BranchUnknown));
    let v = d.version.expect("a version");
    assert!(v.branch_key.starts_with('?'), "{}", v.branch_key);
    assert!(d.answer.is_some(), "the sender learns what is wrong");
}

#[test]
fn late_applications_are_flagged() {
    let u = mail(Some(CIVIL_EMAIL), &application(CIVIL), vec![form()]);
    let ctx = ctx(NotifyMode::Normal);
    let c = classify(&ctx, &u, &plain(&u.subject));
    let extracted = Extracted::default();
    let late = fixture().cfg.campaign.deadline + chrono::Duration::hours(1);
    let m = Message {
        id: 1,
        raw_sha256: "00",
        received: late,
        campaign: "default",
        understood: &u,
        extracted: &extracted,
    };
    let d = decide(&ctx, &m, &c, None, &first(), late).expect("decides");
    assert!(d.version.expect("version").late);
    assert!(d.outcome.problems.contains(&Problem::Late));
}

#[test]
fn an_unfamiliar_sender_is_copied_to_the_secretary() {
    let u = mail(
        Some("someone@example.test"),
        &application(CIVIL),
        vec![form()],
    );
    let d = run(&ctx(NotifyMode::Normal), &u, &plain(&u.subject), &first());
    let v = d.version.as_ref().expect("version");
    assert!(v.sender_changed);
    assert_eq!(v.sender, "someone@example.test");
    let a = d.answer.expect("ack");
    assert_eq!(a.mail.to, "someone@example.test");
    assert_eq!(a.mail.cc.as_deref(), Some(CIVIL_EMAIL));

    // An address that sent this branch's versions before is familiar.
    let h = History {
        earlier_senders: vec!["someone@example.test".into()],
        ..first()
    };
    let d = run(&ctx(NotifyMode::Normal), &u, &plain(&u.subject), &h);
    assert!(!d.version.expect("version").sender_changed);
    assert_eq!(d.answer.expect("ack").mail.cc, None);
}

#[test]
fn closure_is_checked_against_the_review() {
    let ctx = ctx(NotifyMode::Normal);
    let report = file("结题报告.docx", Format::Docx, Role::ClosureReport);
    let u = mail(Some(CIVIL_EMAIL), &closure(CIVIL), vec![report]);
    // Not funded (no review on record).
    let d = run(&ctx, &u, &plain(&u.subject), &first());
    assert_eq!(d.outcome.disposition, Disposition::Closure);
    assert_eq!(d.outcome.problems, vec![Problem::ClosureNotFunded]);
    // Funded at 一般: the report is here, the rest is missing.
    let h = History {
        review: Some(("一般".into(), true)),
        ..first()
    };
    let d = run(&ctx, &u, &plain(&u.subject), &h);
    assert_eq!(d.outcome.problems, vec![Problem::ClosureIncomplete]);
    let detail = &d.version.as_ref().expect("version").findings[0].detail;
    assert_eq!(detail.as_deref(), Some("还缺：报销材料、活动总结"));
    // What earlier closure mails brought counts too.
    let h = History {
        review: Some(("一般".into(), true)),
        closure_roles: vec![Role::Reimbursement, Role::ActivitySummary],
        ..first()
    };
    let d = run(&ctx, &u, &plain(&u.subject), &h);
    assert!(d.outcome.problems.is_empty(), "{:?}", d.outcome.problems);
    assert!(d.answer.expect("ack").mail.subject.contains("材料齐全"));
}

#[test]
fn the_thread_is_recorded() {
    let u = mail(Some(CIVIL_EMAIL), "Re: 回执", vec![]);
    let t = Thread {
        our_id: "ack.1@shenbao.example.test".into(),
        branch: Some(CIVIL.into()),
        closure: false,
    };
    let input = ClassifyInput {
        subject: &u.subject,
        answers_us: true,
        thread: Some(&t),
        assigned: None,
    };
    let d = run(&ctx(NotifyMode::Normal), &u, &input, &first());
    assert_eq!(d.outcome.disposition, Disposition::Reply);
    assert_eq!(d.thread_of.as_deref(), Some("ack.1@shenbao.example.test"));
    assert!(d.needs_staff);
}

#[test]
fn threads_found_and_guessed() {
    let ctx = ctx(NotifyMode::Normal);
    let ours = |kind: &str, subject: &str, submission: Option<&str>| Ours {
        kind: kind.into(),
        branch: Some(CIVIL.into()),
        submission_kind: submission.map(str::to_string),
        subject: subject.into(),
    };
    let cases = [
        (ours("ack", "回执", Some("application")), false),
        (ours("ack", "回执", Some("closure")), true),
        (ours("result", "评审结果", None), true),
        (ours("reminder", "结项材料提醒", None), true),
        (ours("reminder", "申报提醒", None), false),
        (
            ours("closure_reminder", "【提醒】结项材料将于12月1日截止", None),
            true,
        ),
        (ours("closure_reminder", "任意主题", None), true),
        (ours("digest", "结项摘要", None), false),
    ];
    for (o, closure) in cases {
        let t = thread(&ctx, vec!["x@y".into()], Some(("x@y".into(), o))).expect("found");
        assert_eq!(t.closure, closure);
        assert_eq!(t.branch.as_deref(), Some(CIVIL));
    }
    let domain = &fixture().cfg.ack.message_id_domain;
    let t = thread(
        &ctx,
        vec![
            "other@elsewhere".into(),
            format!("old@{}", domain.to_uppercase()),
        ],
        None,
    )
    .expect("our domain");
    assert_eq!(t.branch, None);
    assert!(thread(&ctx, vec!["other@elsewhere".into()], None).is_none());
}

#[test]
fn needs_follow_the_classification() {
    let ctx = ctx(NotifyMode::Normal);
    let extracted = Extracted::default();
    // The mail; what registering it reads (kind, materials); which recent notes are counted.
    type Row = (
        Understood,
        Option<(&'static str, bool)>,
        Option<&'static str>,
    );
    let table: [Row; 4] = [
        (
            mail(Some(CIVIL_EMAIL), &application(CIVIL), vec![form()]),
            Some(("application", true)),
            None,
        ),
        (
            mail(Some(CIVIL_EMAIL), &application(CIVIL), vec![]),
            Some(("application", false)),
            Some("no_materials"),
        ),
        (
            mail(Some("x@example.test"), "项目材料", vec![form()]),
            None,
            Some("subject_help"),
        ),
        (mail(Some("x@example.test"), "请问", vec![]), None, None),
    ];
    for (u, register, recent) in table {
        let c = classify(&ctx, &u, &plain(&u.subject));
        let m = Message {
            id: 1,
            raw_sha256: "00",
            received: now(),
            campaign: "default",
            understood: &u,
            extracted: &extracted,
        };
        let n = needs(&c, &m);
        assert_eq!(
            n.register.as_ref().map(|r| (r.kind, r.materials)),
            register,
            "{}",
            u.subject
        );
        assert_eq!(n.recent.as_ref().map(|(_, k)| *k), recent, "{}", u.subject);
        if let Some(r) = &n.register {
            assert_eq!(r.branch.as_deref(), Some(CIVIL));
            assert_eq!(r.to.as_deref(), Some(CIVIL_EMAIL));
        }
    }
}

#[test]
fn answer_keys_are_stable_and_replays_differ() {
    assert_eq!(
        answer_key(5, "0123456789abcdef", NotifyMode::Normal),
        "5.0123456789ab"
    );
    assert_eq!(answer_key(5, "short", NotifyMode::Normal), "5.short");
    assert_eq!(
        answer_key(5, "0123456789abcdef", NotifyMode::Again(9)),
        "5.0123456789ab.r9"
    );
    // The same message decided twice gives the same Message-ID (the outbox keeps one).
    let u = mail(Some(CIVIL_EMAIL), &application(CIVIL), vec![form()]);
    let ctx = ctx(NotifyMode::Normal);
    let a = run(&ctx, &u, &plain(&u.subject), &first());
    let b = run(&ctx, &u, &plain(&u.subject), &first());
    assert_eq!(
        a.answer.expect("ack").mail.message_id,
        b.answer.expect("ack").mail.message_id
    );
}
