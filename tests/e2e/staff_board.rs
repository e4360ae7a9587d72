//! 需人工处理 and 发件箱 on the board, for real (Dovecot + Postfix, mailbox intake33): a
//! question and an application whose branch is not recognised arrive through Postfix; the
//! application's acknowledgement goes to an address Postfix refuses (550), so it becomes a
//! dead letter. Over HTTP: both mails listed with their reasons, a mail's page with its text
//! escaped, the raw mail for staff and not for reviewers, reviewers' and forged POSTs
//! refused, the question marked handled (and `shenbao status` agrees), the application
//! assigned to its branch (a version in the export), the dead letter retried one by one and
//! all at once; `shenbao web` shows no buttons. Screenshots at 1366×768 and 390×844.

use crate::common::*;
use crate::web::*;
use std::time::Duration;

const QUESTION_SUBJECT: &str = "请问截止时间是什么时候？<script>alert(1)</script>";
const REFUSED: &str = "nobody-here@example.test";

async fn message_id(pool: &sqlx::AnyPool, mid: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM messages WHERE message_id = $1")
        .bind(mid)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{mid}: {e}"))
}

/// The lines of `shenbao status` under its needs-staff heading.
pub fn staff_section(status: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for l in status.lines() {
        if l.starts_with("需要人工处理的邮件") {
            inside = true;
            continue;
        }
        if inside && !l.starts_with(' ') {
            break;
        }
        if inside {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_handle_mail_and_retry_dead_letters_on_the_board() {
    let BoardEnv {
        env,
        mut daemon,
        port,
    } = BoardEnv::start(
        "staff_board",
        "intake33",
        EnvOptions {
            roster: &sample_roster(),
            poll_interval: "2s",
            ..Default::default()
        },
    )
    .await;
    let to = format!("{}@example.test", env.user);
    let pool = env.db().await;

    // A question (nothing attached) and an application under a subject naming no branch,
    // from an address Postfix refuses.
    let question = PersonMail {
        from: "curious@example.test",
        to: &to,
        subject: QUESTION_SUBJECT,
        message_id: "question@staff.test",
        body: "老师好，<b>请问</b>申报截止时间是什么时候？电话 13800000000",
        files: vec![],
        headers: vec![],
        in_reply_to: None,
    };
    let (docx, xlsx) = sample_files();
    let unknown = PersonMail {
        from: REFUSED,
        subject: "对标争先建设项目申报-第一小组",
        message_id: "unknown@staff.test",
        body: "附件是申报材料。",
        files: vec![
            ("项目申请表.docx".to_string(), docx),
            ("申报汇总表.xlsx".to_string(), xlsx),
        ],
        ..question.clone_with()
    };
    smtp_send("curious@example.test", &to, &question.build()).await;
    smtp_send(REFUSED, &to, &unknown.build()).await;
    wait_for(
        "both mails processed and the refused ack given up on",
        Duration::from_secs(90),
        || {
            daemon.assert_alive();
            let pool = pool.clone();
            async move {
                let processed: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM messages WHERE status != 'stored' AND message_id IN ('question@staff.test', 'unknown@staff.test')",
                )
                .fetch_one(&pool)
                .await
                .unwrap_or(0);
                let dead: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = 'dead'")
                        .fetch_one(&pool)
                        .await
                        .unwrap_or(0);
                processed == 2 && dead == 1
            }
        },
    )
    .await;
    let qid = message_id(&pool, "question@staff.test").await;
    let aid = message_id(&pool, "unknown@staff.test").await;
    let dead_id: i64 = sqlx::query_scalar("SELECT id FROM outbox WHERE status = 'dead'")
        .fetch_one(&pool)
        .await
        .expect("dead letter");

    let staff = login(port, "127.0.0.1", STAFF).await;
    let reviewer = login(port, "127.0.0.2", REVIEWER).await;
    let get = |cookie: &str, path: &str| {
        let (cookie, path) = (cookie.to_string(), path.to_string());
        async move { http(port, "127.0.0.1", "GET", &path, &cookie, None).await }
    };
    let post = |cookie: &str, path: &str, form: &str| {
        let (cookie, path, form) = (cookie.to_string(), path.to_string(), form.to_string());
        async move { http(port, "127.0.0.1", "POST", &path, &cookie, Some(&form)).await }
    };

    // No page without a session.
    for path in ["/staff", "/outbox", &format!("/message/{qid}")] {
        let r = get("", path).await;
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.header("location"), Some("/login"), "{path}");
    }

    // 需人工处理: both mails, with the category and the reason, the subject escaped.
    let page = get(&staff, "/staff").await;
    assert_eq!(page.status, 200);
    let body = &page.body;
    assert!(body.contains("<h1>需人工处理</h1>"), "{body}");
    assert!(body.contains("共 2 封邮件等待人工处理"), "{body}");
    assert!(!body.contains("<script>"), "{body}");
    assert!(
        body.contains("请问截止时间是什么时候？&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{body}"
    );
    assert!(
        body.contains("<span class=\"kind-tag\">咨询</span>"),
        "{body}"
    );
    assert!(
        body.contains("<span class=\"kind-tag\">申报</span>"),
        "{body}"
    );
    assert!(body.contains("留待工作人员处理"), "{body}");
    assert!(
        body.contains(&format!("申请表中填写的支部：{SAMPLE_BRANCH}")),
        "{body}"
    );
    assert!(
        body.contains(&format!("登记为“{SAMPLE_BRANCH}”的材料")),
        "{body}"
    );
    assert!(
        body.contains(&format!("action=\"/message/{qid}/resolve\"")),
        "{body}"
    );
    let csrf = csrf_in(body);
    let staff_html = body.clone();

    // A reviewer sees the list without a single form of action.
    let page = get(&reviewer, "/staff").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("共 2 封邮件等待人工处理"));
    assert!(page.body.contains("评审专家账号只能查看"), "{}", page.body);
    assert!(!page.body.contains("action=\"/message/"), "{}", page.body);
    let reviewer_csrf = csrf_in(&page.body);

    // The question's page: headers and the text, escaped; the raw mail for staff only.
    let page = get(&staff, &format!("/message/{qid}")).await;
    assert_eq!(page.status, 200);
    let body = &page.body;
    assert!(
        !body.contains("<script>") && !body.contains("<b>"),
        "{body}"
    );
    assert!(
        body.contains("老师好，&lt;b&gt;请问&lt;&#x2f;b&gt;申报截止时间是什么时候？"),
        "{body}"
    );
    assert!(body.contains("curious@example.test"), "{body}");
    assert!(body.contains("question@staff.test"), "{body}");
    assert!(body.contains("等待人工处理"), "{body}");
    assert!(
        body.contains(&format!("href=\"/message/{qid}/raw\"")),
        "{body}"
    );
    let message_html = body.clone();
    let raw = get(&staff, &format!("/message/{qid}/raw")).await;
    assert_eq!(raw.status, 200);
    assert_eq!(
        raw.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(
        raw.header("content-disposition")
            .is_some_and(|d| d.starts_with("attachment; filename=\"message-")),
        "{:?}",
        raw.headers
    );
    assert!(
        raw.body.contains("Message-ID: <question@staff.test>"),
        "{}",
        raw.body
    );
    let page = get(&reviewer, &format!("/message/{qid}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("/raw\""), "{}", page.body);
    let r = get(&reviewer, &format!("/message/{qid}/raw")).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("只有工作人员账号可以下载"), "{}", r.body);
    assert!(!r.body.contains("13800000000"));
    assert_eq!(get(&staff, "/message/999999").await.status, 404);
    assert_eq!(get(&staff, "/message/x").await.status, 404);

    // Refused: a reviewer's POST, a POST without the token or with a forged one.
    let resolve = format!("/message/{qid}/resolve");
    let r = post(&reviewer, &resolve, &format!("csrf={reviewer_csrf}")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("评审专家账号只能查看"), "{}", r.body);
    for form in ["note=x", "csrf=forged"] {
        let r = post(&staff, &resolve, form).await;
        assert_eq!(r.status, 403, "{form}: {}", r.body);
        assert!(r.body.contains("CSRF"), "{}", r.body);
    }
    let r = post(
        &reviewer,
        &format!("/outbox/{dead_id}/retry"),
        &format!("csrf={reviewer_csrf}"),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        staff_section(&env.cli(&["status"])).contains(&format!("#{qid} ")),
        "still waiting"
    );

    // Staff mark the question handled: it leaves the list, and `shenbao status` agrees.
    let r = post(
        &staff,
        &resolve,
        &format!("csrf={csrf}&note={}", enc("已电话答复<i>")),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let back = r.header("location").expect("location").to_string();
    assert_eq!(back, format!("/staff?done=resolved&id={qid}"));
    let page = get(&staff, &back).await;
    let body = &page.body;
    assert!(
        body.contains(&format!("邮件 #{qid} 已标为处理完毕")),
        "{body}"
    );
    assert!(body.contains("共 1 封邮件等待人工处理"), "{body}");
    assert!(!body.contains(&format!("id=\"m{qid}\"")), "{body}");
    assert!(
        body.contains("王老师（看板）：已电话答复&lt;i&gt;"),
        "the handled list says who: {body}"
    );
    let status = env.cli(&["status"]);
    let section = staff_section(&status);
    assert!(!section.contains(&format!("#{qid} ")), "{status}");
    assert!(section.contains(&format!("#{aid} ")), "{status}");
    // Twice: refused, saying why.
    let r = post(&staff, &resolve, &format!("csrf={csrf}")).await;
    assert_eq!(r.status, 303);
    let back = r.header("location").expect("location").to_string();
    assert_eq!(back, format!("/staff?error=not_for_staff&id={qid}"));
    let page = get(&staff, &back).await;
    assert!(page.body.contains("已经处理过"), "{}", page.body);

    // Assign: an unknown branch is refused on the mail's page; the form's branch is taken.
    let assign = format!("/message/{aid}/assign");
    let r = post(
        &staff,
        &assign,
        &format!("csrf={csrf}&from=message&branch={}", enc("火星探索协会")),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let back = r.header("location").expect("location").to_string();
    assert!(
        back.starts_with(&format!("/message/{aid}?error=unknown_branch")),
        "{back}"
    );
    let page = get(&staff, &back).await;
    assert!(
        page.body.contains("名册中找不到支部“火星探索协会”"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<datalist id=\"roster\">"),
        "{}",
        page.body
    );
    let r = post(
        &staff,
        &assign,
        &format!("csrf={csrf}&from=message&branch={}", enc(SAMPLE_BRANCH)),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let back = r.header("location").expect("location").to_string();
    assert_eq!(back, format!("/staff?done=assigned&id={aid}"));
    let page = get(&staff, &back).await;
    assert!(
        page.body
            .contains(&format!("邮件 #{aid} 已登记为“{SAMPLE_BRANCH}”的材料")),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("没有等待人工处理的邮件"),
        "{}",
        page.body
    );
    let export: serde_json::Value =
        serde_json::from_str(&env.cli(&["export", "--format", "json"])).expect("json");
    assert!(
        export["submissions"].as_array().is_some_and(|a| a
            .iter()
            .any(|s| s["branch"] == SAMPLE_BRANCH && s["version"] == 1)),
        "{export}"
    );

    // 发件箱: the dead letter with its error; the assignment's new ack is refused too.
    wait_for(
        "the second ack given up on",
        Duration::from_secs(60),
        || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM outbox WHERE status = 'dead'")
                    .fetch_one(&pool)
                    .await
                    .unwrap_or(0)
                    == 2
            }
        },
    )
    .await;
    let page = get(&staff, "/outbox").await;
    assert_eq!(page.status, 200);
    let body = &page.body;
    assert!(body.contains("<h1>发件箱</h1>"), "{body}");
    assert!(body.contains(REFUSED), "{body}");
    assert!(
        body.contains("<span class=\"ostate Dead\">已放弃</span>"),
        "{body}"
    );
    assert!(body.contains("<td class=\"kind\">回执</td>"), "{body}");
    assert!(body.contains("550"), "the server's answer: {body}");
    assert!(body.contains("有 2 封邮件发送失败、已放弃"), "{body}");
    assert!(
        body.contains(&format!("action=\"/outbox/{dead_id}/retry\"")),
        "{body}"
    );
    let outbox_html = body.clone();
    let page = get(&reviewer, "/outbox?state=dead").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(REFUSED), "{}", page.body);
    assert!(!page.body.contains("action=\"/outbox/"), "{}", page.body);
    let page = get(&staff, "/outbox?state=sent").await;
    assert!(page.body.contains("没有已发出的邮件"), "{}", page.body);

    // Retry one: back in the queue at once, and refused again by Postfix.
    let r = post(
        &staff,
        &format!("/outbox/{dead_id}/retry"),
        &format!("csrf={csrf}&state=dead"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let back = r.header("location").expect("location").to_string();
    assert_eq!(
        back,
        format!("/outbox?state=dead&done=requeued&n={dead_id}")
    );
    let page = get(&staff, &back).await;
    assert!(
        page.body.contains(&format!("#{dead_id} 已重新排队")),
        "{}",
        page.body
    );
    let out = env.cli(&["outbox", "list", "--status", "all"]);
    assert!(out.contains(&format!("#{dead_id} ")), "{out}");
    wait_for(
        "the retried mail tried again",
        Duration::from_secs(60),
        || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, String>("SELECT status FROM outbox WHERE id = $1")
                    .bind(dead_id)
                    .fetch_one(&pool)
                    .await
                    .is_ok_and(|s| s == "dead")
            }
        },
    )
    .await;
    // Every dead letter at once; an unknown number says so.
    let r = post(&staff, "/outbox/retry-dead", &format!("csrf={csrf}")).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let back = r.header("location").expect("location").to_string();
    assert_eq!(back, "/outbox?state=unsent&done=all_dead_requeued&n=2");
    let page = get(&staff, &back).await;
    assert!(
        page.body.contains("已把 2 封已放弃的邮件重新排队"),
        "{}",
        page.body
    );
    let r = post(&staff, "/outbox/999999/retry", &format!("csrf={csrf}")).await;
    let page = get(&staff, r.header("location").expect("location")).await;
    assert!(
        page.body.contains("发件箱中没有编号为 #999999 的邮件"),
        "{}",
        page.body
    );

    // Screenshots.
    for (name, html) in [
        ("staff", &staff_html),
        ("staff-message", &message_html),
        ("outbox", &outbox_html),
    ] {
        for (w, h) in [(1366, 768), (390, 844)] {
            eprintln!("screenshot: {}", screenshot(html, name, w, h).display());
        }
    }

    let log = daemon.stop();
    assert!(log.contains("看板：邮件标为已处理"), "{log}");

    // `shenbao web`: the same lists, read-only, without a button.
    let mut alone = start_web_alone(&env.config, port).await;
    let staff = login(port, "127.0.0.1", STAFF).await;
    for path in ["/staff", "/outbox?state=all", &format!("/message/{aid}")] {
        let page = get(&staff, path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(page.body.contains("这是只读看板"), "{path}: {}", page.body);
        assert!(
            !page.body.contains("action=\"/message/"),
            "{path}: {}",
            page.body
        );
        assert!(
            !page.body.contains("action=\"/outbox/"),
            "{path}: {}",
            page.body
        );
    }
    let csrf = csrf_in(&get(&staff, "/staff").await.body);
    let r = post(&staff, "/outbox/retry-dead", &format!("csrf={csrf}")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let _ = terminate(&mut alone);
    let _ = std::fs::remove_dir_all(&env.dir);
}

trait CloneWith<'a> {
    fn clone_with(&self) -> PersonMail<'a>;
}

impl<'a> CloneWith<'a> for PersonMail<'a> {
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
