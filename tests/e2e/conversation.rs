//! A campaign with real people, through the real mail servers: replies to our own mails,
//! questions, corrected files on a thread, Outlook's headers, one secretary for eight
//! branches, a burst of versions, a stranger, a form copied from another branch, and staff's
//! corrections (assign, reprocess, resolve). Every answer is read back over IMAP.

use crate::common::*;
use mail_parser::{HeaderValue, Message};
use std::time::Duration;

const DAY: &str = "2025-09-25T10:00:00+08:00";

fn roster_with_branch1() -> String {
    format!(
        "{}土木工程学院,土木工程学院本科生第一党支部,张晓明,branch1@example.test\n",
        sample_roster()
    )
}

/// The sample's form and summary filled in for `branch` (and, when given, another project
/// name, so a resend is new content).
fn files_for(branch: &str, project: Option<&str>) -> Vec<(String, Vec<u8>)> {
    let (docx, xlsx) = sample_files();
    let mut edits = vec![(SAMPLE_BRANCH, branch)];
    if let Some(p) = project {
        edits.push(("党团衔接培养工程", p));
    }
    let form = patch_office(&docx, "word/document.xml", &edits);
    // The summary writes its text as XML character references.
    let (from, to) = (ncr(SAMPLE_BRANCH), ncr(branch));
    let sheet = patch_office(&xlsx, "sheet1.xml", &[(from.as_str(), to.as_str())]);
    vec![
        (format!("{branch}-项目申请表.docx"), form),
        (format!("对标争先建设项目申报汇总表_{branch}.xlsx"), sheet),
    ]
}

/// A test's daemon on `user`'s intake folder with `roster`, started and watching: the
/// environment, the daemon, its database and the intake address.
async fn started(name: &str, user: &str, roster: &str) -> (TestEnv, Daemon, sqlx::AnyPool, String) {
    let env = TestEnv::new(
        name,
        user,
        EnvOptions {
            roster,
            ..Default::default()
        },
    )
    .await;
    let mut daemon = env.start_daemon();
    env.wait_watermark(&mut daemon).await;
    let pool = env.db().await;
    let to = format!("{}@example.test", env.user);
    (env, daemon, pool, to)
}

fn subject(branch: &str) -> String {
    format!("对标争先建设项目申报-{branch}")
}

async fn deliver(env: &TestEnv, mails: &[Vec<u8>]) {
    let mut s = imap(&env.user).await;
    for m in mails {
        append(&mut s, "INBOX", m, Some(DAY)).await;
    }
    let _ = s.logout().await;
}

/// Waits until `n` messages are processed (or failed).
async fn processed(env: &TestEnv, daemon: &mut Daemon, pool: &sqlx::AnyPool, n: i64) {
    wait_for(
        &format!("{n} messages processed"),
        Duration::from_secs(60),
        || {
            daemon.assert_alive();
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM messages WHERE status != 'stored' AND disposition != 'own_copy'",
                )
                .fetch_one(pool)
                .await
                .unwrap_or(0)
                    >= n
            }
        },
    )
    .await;
    // Every queued answer has gone out (and its copy come back).
    wait_for("the outbox to drain", Duration::from_secs(60), || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM outbox WHERE status != 'sent'")
            .fetch_one(pool)
            .await
            .unwrap_or(1)
            == 0
    })
    .await;
    let _ = env;
}

fn answering<'a>(all: &'a [Message<'static>], mid: &str) -> Vec<&'a Message<'static>> {
    all.iter()
        .filter(|m| m.in_reply_to().as_text() == Some(mid))
        .collect()
}

fn body(m: &Message<'_>) -> String {
    m.body_text(0).unwrap_or_default().to_string()
}

async fn disposition(pool: &sqlx::AnyPool, mid: &str) -> (i64, String, Option<String>, bool) {
    let (id, disposition, branch, staff): (i64, String, Option<String>, i64) = sqlx::query_as(
        "SELECT id, disposition, branch, CASE WHEN needs_staff THEN 1 ELSE 0 END
         FROM messages WHERE message_id = $1",
    )
    .bind(mid)
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("{mid}: {e}"));
    (id, disposition, branch, staff != 0)
}

async fn versions(pool: &sqlx::AnyPool, branch: &str) -> Vec<(i64, bool, String)> {
    let rows: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT s.version, CASE WHEN s.is_latest THEN 1 ELSE 0 END, m.message_id
         FROM submissions s JOIN messages m ON m.id = s.message_id
         WHERE s.branch = $1 AND s.kind = 'application' ORDER BY s.version",
    )
    .bind(branch)
    .fetch_all(pool)
    .await
    .expect("versions");
    rows.into_iter()
        .map(|(version, latest, mid)| (version, latest != 0, mid))
        .collect()
}

const B22: &str = SAMPLE_BRANCH;
const B24: &str = "海洋与地球科学学院2024级本科生党支部";
const B25: &str = "海洋与地球科学学院2025级本科生党支部";

/// Replies to acknowledgements are conversation; corrected files on a thread are a version;
/// Outlook's `X-Auto-Response-Suppress` does not stop a person's application.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_questions_and_corrections_on_a_thread() {
    let (env, mut daemon, pool, to) = started("conversation", "intake24", &sample_roster()).await;
    let sec22 = "lu.fengxi27@outlook.com";
    let sec24 = "zhou.xiaotian54@outlook.com";

    // 1. A clean application, and one with the summary missing.
    let sub22 = subject(B22);
    let sub24 = subject(B24);
    let clean = PersonMail {
        from: sec22,
        to: &to,
        subject: &sub22,
        message_id: "clean-1@outlook.com",
        body: "老师好，附件是申报材料。",
        files: files_for(B22, None),
        headers: vec![],
        in_reply_to: None,
    };
    let mut only_form = files_for(B24, None);
    only_form.truncate(1);
    let problem = PersonMail {
        from: sec24,
        subject: &sub24,
        message_id: "problem-1@outlook.com",
        files: only_form,
        ..clean.clone_with()
    };
    deliver(&env, &[clean.build(), problem.build()]).await;
    processed(&env, &mut daemon, &pool, 2).await;
    let all = acks(&env, "catchall").await;
    let ack22 = answering(&all, "clean-1@outlook.com");
    let ack24 = answering(&all, "problem-1@outlook.com");
    assert_eq!((ack22.len(), ack24.len()), (1, 1), "one ack each");
    let ack22_id = ack22[0].message_id().expect("ack id").to_string();
    let ack22_subject = ack22[0].subject().expect("subject").to_string();
    let ack24_id = ack24[0].message_id().expect("ack id").to_string();
    assert!(body(ack24[0]).contains("未找到 Excel 版《申报汇总表》"));
    // The contact line tells the truth about replies.
    assert!(body(ack22[0]).contains("不带附件的回复不会登记为新版本"));

    // 2. "收到，谢谢" under the clean ack; a question under the problem ack; a reply that
    //    lost its headers but keeps our wording in the subject; the corrected files on the
    //    problem ack's thread under a subject that no longer names the branch; an Outlook
    //    application with X-Auto-Response-Suppress.
    let thanks_subject = format!("回复：{ack22_subject}");
    let thanks = PersonMail {
        from: sec22,
        subject: &thanks_subject,
        message_id: "thanks@outlook.com",
        body: "收到，谢谢老师！",
        files: vec![],
        in_reply_to: Some(ack22_id.clone()),
        ..clean.clone_with()
    };
    let question_subject = format!("Re: {}", ack24[0].subject().unwrap_or_default());
    let question = PersonMail {
        from: sec24,
        subject: &question_subject,
        message_id: "question@outlook.com",
        body: "老师，请问汇总表可以晚一天交吗？",
        files: vec![],
        in_reply_to: Some(ack24_id.clone()),
        ..clean.clone_with()
    };
    let headless_subject = format!("答复: {ack22_subject}");
    let headless = PersonMail {
        from: sec22,
        subject: &headless_subject,
        message_id: "headless@outlook.com",
        body: "好的",
        files: vec![],
        ..clean.clone_with()
    };
    let corrected = PersonMail {
        from: sec24,
        subject: "回复：修改后的材料",
        message_id: "corrected@outlook.com",
        body: "老师好，补上汇总表。",
        files: files_for(B24, None),
        in_reply_to: Some(ack24_id.clone()),
        ..clean.clone_with()
    };
    let sub25 = subject(B25);
    let outlook = PersonMail {
        from: "zouxi363@163.com",
        subject: &sub25,
        message_id: "outlook@example.edu.cn",
        files: files_for(B25, None),
        headers: vec![
            ("X-Auto-Response-Suppress", "All".to_string()),
            ("X-MS-Has-Attach", "yes".to_string()),
        ],
        ..clean.clone_with()
    };
    // A mail rule that forwards an application automatically: registered, not answered.
    let geo = "海洋与地球科学学院地质学硕士生党支部";
    let geo_subject = subject(geo);
    let forwarded = PersonMail {
        from: "3133429730@qq.com",
        subject: &geo_subject,
        message_id: "forwarded@qq.com",
        files: files_for(geo, None),
        headers: vec![("Auto-Submitted", "auto-generated".to_string())],
        ..clean.clone_with()
    };
    deliver(
        &env,
        &[
            thanks.build(),
            question.build(),
            headless.build(),
            corrected.build(),
            outlook.build(),
            forwarded.build(),
        ],
    )
    .await;
    processed(&env, &mut daemon, &pool, 8).await;

    let all = acks(&env, "catchall").await;
    for mid in [
        "thanks@outlook.com",
        "question@outlook.com",
        "headless@outlook.com",
    ] {
        let (_, disp, branch, staff) = disposition(&pool, mid).await;
        assert_eq!(disp, "reply", "{mid}");
        assert!(staff, "{mid} waits for staff");
        assert!(answering(&all, mid).is_empty(), "{mid} is not answered");
        let want = if mid == "question@outlook.com" {
            B24
        } else {
            B22
        };
        assert_eq!(branch.as_deref(), Some(want), "{mid} concerns its branch");
    }
    assert_eq!(
        versions(&pool, B22).await,
        [(1, true, "clean-1@outlook.com".to_string())],
        "a thank-you is never a version"
    );
    assert_eq!(
        versions(&pool, B24).await,
        [
            (1, false, "problem-1@outlook.com".to_string()),
            (2, true, "corrected@outlook.com".to_string())
        ],
        "corrected files on the thread are the next version"
    );
    let fixed = answering(&all, "corrected@outlook.com");
    assert_eq!(fixed.len(), 1, "one ack for the corrected version");
    assert!(body(fixed[0]).contains("第 2 版"), "{}", body(fixed[0]));
    assert!(body(fixed[0]).contains("材料齐全"), "{}", body(fixed[0]));
    let (_, disp, _, _) = disposition(&pool, "outlook@example.edu.cn").await;
    assert_eq!(disp, "application");
    assert_eq!(versions(&pool, B25).await.len(), 1);
    let outlook_ack = answering(&all, "outlook@example.edu.cn");
    assert_eq!(
        outlook_ack.len(),
        1,
        "Outlook's application is acknowledged"
    );
    assert!(matches!(
        outlook_ack[0].header("Auto-Submitted"),
        Some(HeaderValue::Text(_))
    ));

    // Strong evidence of a machine: the materials count, nobody is answered, staff see why.
    assert_eq!(versions(&pool, geo).await.len(), 1);
    assert!(answering(&all, "forwarded@qq.com").is_empty());

    // Staff see the three replies, each with its branch, in status and in their folder.
    let status = env.cli(&["status"]);
    assert!(status.contains("未自动回复的邮件"), "{status}");
    assert!(
        status.contains("有明确的自动邮件信号（auto_submitted"),
        "{status}"
    );
    assert!(status.contains("需要人工处理的邮件"), "{status}");
    assert!(status.contains(&format!("【{B24}】")), "{status}");
    // …with the mail of ours each one answers.
    assert!(
        status.contains(&format!("回复的是本系统的邮件：{ack22_subject}")),
        "{status}"
    );
    // (the copies of our last answers may still be on their way through the intake folder)
    wait_for(
        "the intake folder to empty",
        Duration::from_secs(30),
        || async { count(&env.user, "INBOX").await == 0 },
    )
    .await;
    assert_eq!(count(&env.user, &env.staff_folder).await, 3);

    // Resolving one takes it off the list.
    let (thanks_id, _, _, _) = disposition(&pool, "thanks@outlook.com").await;
    let out = env.cli(&["resolve", &thanks_id.to_string(), "--note", "已读"]);
    assert!(out.contains("已标为处理完毕"), "{out}");
    let status = env.cli(&["status"]);
    assert!(
        !status.contains(&format!("#{thanks_id} ")),
        "resolved mail leaves the list:\n{status}"
    );
    let (ok, again) = env.run(&["resolve", &thanks_id.to_string()]);
    assert!(!ok && again.contains("不在需人工处理的列表中"), "{again}");
    daemon.stop();
}

/// One address for eight branches, seven versions in a day, a stranger's version, and a form
/// filled in for another branch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_senders_bursts_strangers_and_copied_forms() {
    let (env, mut daemon, pool, to) = started("senders", "intake25", &roster_with_branch1()).await;
    let roster = sample_roster();
    let eight: Vec<String> = roster
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1).map(str::to_string))
        .filter(|b| b != B22)
        .take(8)
        .collect();
    assert_eq!(eight.len(), 8);
    let mut mails = Vec::new();
    let subjects: Vec<String> = eight.iter().map(|b| subject(b)).collect();
    let mids: Vec<String> = (0..8)
        .map(|i| format!("zuzhi-{i}@example.edu.cn"))
        .collect();
    for i in 0..8 {
        mails.push(
            PersonMail {
                from: "组织员 <zuzhi@example.edu.cn>",
                to: &to,
                subject: &subjects[i],
                message_id: &mids[i],
                body: "各支部材料，请查收。",
                files: files_for(&eight[i], None),
                headers: vec![],
                in_reply_to: None,
            }
            .build(),
        );
    }
    // Seven versions of one branch, each with a different project name.
    let sub22 = subject(B22);
    let burst: Vec<String> = (1..=7).map(|i| format!("burst-{i}@outlook.com")).collect();
    for (i, mid) in burst.iter().enumerate() {
        let project = format!("党团衔接培养工程（第{i}稿）");
        mails.push(
            PersonMail {
                from: "lu.fengxi27@outlook.com",
                to: &to,
                subject: &sub22,
                message_id: mid,
                body: "修改版",
                files: files_for(B22, Some(&project)),
                headers: vec![],
                in_reply_to: None,
            }
            .build(),
        );
    }
    // A stranger's version of the branch whose secretary is branch1@example.test.
    let civil = "土木工程学院本科生第一党支部";
    let civil_subject = subject(civil);
    mails.push(
        PersonMail {
            from: "陌生人 <branch2@example.test>",
            to: &to,
            subject: &civil_subject,
            message_id: "stranger@example.test",
            body: "材料",
            files: files_for(civil, None),
            headers: vec![],
            in_reply_to: None,
        }
        .build(),
    );
    // 海洋2024's subject with 海洋2022's form and summary.
    let sub24 = subject(B24);
    mails.push(
        PersonMail {
            from: "zhou.xiaotian54@outlook.com",
            to: &to,
            subject: &sub24,
            message_id: "copied@outlook.com",
            body: "材料",
            files: files_for(B22, None),
            headers: vec![],
            in_reply_to: None,
        }
        .build(),
    );
    deliver(&env, &mails).await;
    processed(&env, &mut daemon, &pool, 17).await;
    let all = acks(&env, "catchall").await;

    for (mid, branch) in mids.iter().zip(&eight) {
        let got = answering(&all, mid);
        assert_eq!(got.len(), 1, "{branch}: one ack");
        assert!(body(got[0]).contains(branch.as_str()));
    }
    for mid in &burst {
        assert_eq!(
            answering(&all, mid).len(),
            1,
            "{mid}: every version acknowledged"
        );
    }
    let v = versions(&pool, B22).await;
    assert_eq!(v.len(), 7);
    assert_eq!(v[6], (7, true, "burst-7@outlook.com".to_string()));
    assert!(v[..6].iter().all(|(_, latest, _)| !latest));
    let unanswered: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE no_answer IS NOT NULL")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(unanswered, 0, "nobody went without an answer");

    // The stranger gets the ack, and the roster's secretary a copy of it.
    let stranger = acks(&env, "branch2").await;
    let secretary = cc_copies(&env, "branch1").await;
    let to_stranger = answering(&stranger, "stranger@example.test");
    let to_secretary = answering(&secretary, "stranger@example.test");
    assert_eq!((to_stranger.len(), to_secretary.len()), (1, 1));
    assert!(body(to_secretary[0]).contains("抄送名册登记的支部书记"));
    assert!(body(to_secretary[0]).contains("branch2@example.test"));
    let changed: i64 = sqlx::query_scalar(
        "SELECT CASE WHEN sender_changed THEN 1 ELSE 0 END FROM submissions WHERE branch = $1",
    )
    .bind(civil)
    .fetch_one(&pool)
    .await
    .expect("submission");
    assert_eq!(changed, 1);
    let status = env.cli(&["status"]);
    assert!(status.contains("发件人变更"), "{status}");
    assert!(status.contains(&format!("{civil} 第 1 版，发件人 branch2@example.test")));
    let json = env.cli(&["export", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let civil_row = v["submissions"]
        .as_array()
        .expect("array")
        .iter()
        .find(|s| s["branch"] == civil)
        .expect("civil exported");
    assert_eq!(civil_row["sender_changed"], true);

    // The copied form is flagged, naming both branches.
    let copied = answering(&all, "copied@outlook.com");
    assert_eq!(copied.len(), 1);
    let text = body(copied[0]);
    assert!(text.contains("材料中填写的是另一个支部"), "{text}");
    assert!(text.contains(&format!("申请表中填写的是“{B22}”")), "{text}");
    daemon.stop();
}

/// Staff's corrections: an unrecognised branch assigned from the form's suggestion, and a
/// replay after the roster was fixed, previewed first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assign_and_reprocess() {
    let (env, mut daemon, pool, to) = started("corrections", "intake26", &sample_roster()).await;
    let typo = "对标争先建设项目申报-第一小组";
    let newbranch = "材料科学与工程学院星火党支部";
    let new_subject = subject(newbranch);
    let base = PersonMail {
        from: "lu.fengxi27@outlook.com",
        to: &to,
        subject: typo,
        message_id: "typo@outlook.com",
        body: "材料",
        files: files_for(B22, None),
        headers: vec![],
        in_reply_to: None,
    };
    let fresh = PersonMail {
        from: "new@example.edu.cn",
        subject: &new_subject,
        message_id: "newbranch@example.edu.cn",
        files: files_for(B22, None),
        ..base.clone_with()
    };
    deliver(&env, &[base.build(), fresh.build()]).await;
    processed(&env, &mut daemon, &pool, 2).await;
    let (typo_id, disp, _, staff) = disposition(&pool, "typo@outlook.com").await;
    assert_eq!((disp.as_str(), staff), ("application", true));
    let first = answering(&acks(&env, "catchall").await, "typo@outlook.com")
        .into_iter()
        .map(body)
        .collect::<Vec<_>>();
    assert_eq!(first.len(), 1);
    assert!(
        first[0].contains(&format!("申请表中填写的支部是“{B22}”")),
        "{}",
        first[0]
    );
    let status = env.cli(&["status"]);
    assert!(
        status.contains(&format!("shenbao assign {typo_id}")),
        "{status}"
    );

    // assign without a branch takes the form's; a preview changes nothing.
    let preview = env.cli(&["assign", &typo_id.to_string(), "--dry-run"]);
    assert!(
        preview.contains(&format!("支部：（未识别） → {B22}")),
        "{preview}"
    );
    assert!(preview.contains("预览"), "{preview}");
    assert!(versions(&pool, B22).await.is_empty());
    let out = env.cli(&["assign", &typo_id.to_string()]);
    assert!(out.contains(&format!("登记为“{B22}”")), "{out}");
    assert_eq!(
        versions(&pool, B22).await,
        [(1, true, "typo@outlook.com".to_string())]
    );
    processed(&env, &mut daemon, &pool, 2).await;
    let acks_now = answering(&acks(&env, "catchall").await, "typo@outlook.com")
        .into_iter()
        .map(body)
        .collect::<Vec<_>>();
    assert_eq!(
        acks_now.len(),
        2,
        "assign acknowledges the branch once more"
    );
    assert!(
        acks_now
            .iter()
            .any(|b| b.contains(&format!("识别的支部：{B22}")))
    );
    let (_, _, branch, staff) = disposition(&pool, "typo@outlook.com").await;
    assert_eq!((branch.as_deref(), staff), (Some(B22), false));

    // The new branch joins the roster; reprocess shows the change, then saves it, silently.
    let (new_id, _, _, _) = disposition(&pool, "newbranch@example.edu.cn").await;
    std::fs::write(
        env.dir.join("roster.csv"),
        format!(
            "{}材料科学与工程学院,{newbranch},王五,new@example.edu.cn\n",
            sample_roster()
        ),
    )
    .expect("roster");
    let sent_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .expect("outbox");
    let preview = env.cli(&["reprocess", &new_id.to_string(), "--dry-run"]);
    assert!(
        preview.contains(&format!("支部：（未识别） → {newbranch}")),
        "{preview}"
    );
    assert!(
        versions(&pool, newbranch).await.is_empty(),
        "dry run saves nothing"
    );
    let out = env.cli(&["reprocess", &new_id.to_string()]);
    assert!(out.contains("没有发送任何邮件"), "{out}");
    assert_eq!(versions(&pool, newbranch).await.len(), 1);
    let sent_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .expect("outbox");
    assert_eq!(
        sent_before, sent_after,
        "reprocess without --notify sends nothing"
    );
    // Replaying everything again changes nothing more.
    let again = env.cli(&["reprocess", "--all", "--dry-run"]);
    assert!(again.contains("0 封有变化"), "{again}");
    daemon.stop();
}

trait CloneWith<'a> {
    fn clone_with(&self) -> PersonMail<'a>;
}

impl<'a> CloneWith<'a> for PersonMail<'a> {
    /// The same mail's envelope, for `..` updates (files and headers empty).
    fn clone_with(&self) -> PersonMail<'a> {
        PersonMail {
            from: self.from,
            to: self.to,
            subject: self.subject,
            message_id: self.message_id,
            body: self.body,
            files: Vec::new(),
            headers: Vec::new(),
            in_reply_to: None,
        }
    }
}
