//! 支部详情 for real (Dovecot + Postfix, mailbox intake32): an application arrives through
//! Postfix, then the same again as a second version; the branch's page lists both versions
//! (newest first) with their fields, problems and files, and the acknowledgements sent; a
//! file downloads by id with the stored bytes (sha256 as `export` gives it) and a safe
//! Content-Disposition; a reviewer reads and downloads too; without a session both redirect
//! to the login, and an unknown branch or file id is a Chinese 404. Screenshots at 1366×768
//! and 390×844.

use crate::common::*;
use crate::web::*;
use std::time::Duration;

const BRANCH: &str = "海洋与地球科学学院2022级本科生党支部";
const EVIL_BRANCH: &str = "<script>alert(1)</script>&\"支部";
const FORM: &str = "海洋与地球科学学院2022级本科生党支部-项目申请表.docx";
const SUMMARY: &str = "对标争先建设项目申报汇总表_海洋与地球科学学院2022级本科生党支部.xlsx";

/// A GET whose body is bytes (a download): status, headers, body.
async fn get_bytes(port: u16, cookie: &str, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let r = download(port, cookie, path, Duration::from_secs(20)).await;
    let headers = r
        .headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    (r.status, headers, r.body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The files the page links: (id, name as shown).
fn links(body: &str) -> Vec<(i64, String)> {
    body.split("<a href=\"/attachment/")
        .skip(1)
        .filter_map(|rest| {
            let (id, rest) = rest.split_once('"')?;
            let name = rest.split_once('>')?.1.split_once("</a>")?.0;
            Some((id.parse().ok()?, name.to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_branch_its_versions_files_and_mails() {
    let roster = format!(
        "{}某学院,\"{}\",某某,evil@example.test\n",
        sample_roster(),
        EVIL_BRANCH.replace('"', "\"\"")
    );
    let board = BoardEnv::start(
        "detail",
        "intake32",
        EnvOptions {
            roster: &roster,
            poll_interval: "2s",
            ..Default::default()
        },
    )
    .await;
    let env = &board.env;
    let raw = read(&root().join("tests/fixtures/samples/c010/message.eml"));
    smtp_send("lu.fengxi27@outlook.com", "intake32@example.test", &raw).await;
    let versions = |n: i64| {
        let out = env.cli(&["export", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        v["submissions"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["branch"] == BRANCH).cloned())
            .filter(|s| s["version"] == n)
    };
    wait_for(
        "version 1 to be registered",
        Duration::from_secs(60),
        || {
            let ok = versions(1).is_some();
            async move { ok }
        },
    )
    .await;
    // The same mail again under another Message-ID: the branch's second version.
    let again = String::from_utf8_lossy(&raw).replace(
        "PSAPR06MB395982EAF5F989528AF3350D35@",
        "PSAPR06MB395982EAF5F989528AF3350D36@",
    );
    smtp_send(
        "lu.fengxi27@outlook.com",
        "intake32@example.test",
        again.as_bytes(),
    )
    .await;
    wait_for(
        "version 2 to be registered",
        Duration::from_secs(60),
        || {
            let ok = versions(2).is_some();
            async move { ok }
        },
    )
    .await;
    let latest = versions(2).expect("version 2");

    let staff = board.login("127.0.0.1", STAFF).await;
    let reviewer = board.login("127.0.0.2", REVIEWER).await;
    let path = format!("/branch?name={}", enc(BRANCH));

    // No page and no file without a session.
    for p in [path.as_str(), "/attachment/1"] {
        let r = board.get("", p).await;
        assert_eq!(r.status, 303, "{p}");
        assert_eq!(r.header("location"), Some("/login"), "{p}");
    }

    // Both acknowledgements go out; the page shows them with their state.
    wait_for("both acks to be sent", Duration::from_secs(90), || {
        let port = board.port;
        let (staff, path) = (staff.clone(), path.clone());
        async move {
            let r = http(port, "127.0.0.1", "GET", &path, &staff, None).await;
            r.body.matches("已发出</span>").count() >= 2
        }
    })
    .await;

    let page = board.get(&reviewer, &path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    assert!(body.contains(&format!("<h1>{BRANCH}</h1>")), "{body}");
    assert!(body.contains("李老师（评审专家）"), "{body}");
    // From the roster: college and contact; the 板块 from the latest form.
    assert!(body.contains("<dd>海洋与地球科学学院</dd>"), "{body}");
    assert!(body.contains("吴洋"), "{body}");
    assert!(body.contains("lu.fengxi27@outlook.com"), "{body}");
    assert!(body.contains("<dd>育苗成长·薪火相传</dd>"), "{body}");
    // The campaign's deadline (2025) has passed: 迟交, as on 支部.
    assert!(
        body.contains("<span class=\"state Late\">迟交</span>"),
        "{body}"
    );
    // Both versions, newest first, with fields, problems and files.
    assert!(body.contains("收到的版本（最新在前，共 2 版）"), "{body}");
    let v2 = body.find("申报 第2版").expect("version 2 listed");
    let v1 = body.find("申报 第1版").expect("version 1 listed");
    assert!(v2 < v1, "newest first");
    assert!(
        body.contains("第2版<span class=\"tag\">最新</span>"),
        "{body}"
    );
    for text in [
        "<dt>项目名称</dt><dd>“育苗”党团衔接培养工程</dd>",
        "<dt>申报板块</dt><dd>育苗成长·薪火相传</dd>",
        "<dt>项目负责人</dt><dd>朱语嫣</dd>",
        "<dt>职务</dt><dd>副书记</dd>",
        "<dt>联系方式</dt><dd>18224039607</dd>",
        "<dt>指导老师</dt><dd>吴睿婷</dd>",
        "<dt>申请经费</dt><dd>4000 元</dd>",
        "（读自项目申请表）",
        "<li>邮件在截止时间之后到达",
        "项目申请表</td><td>Word 文档</td>",
        "申报汇总表</td><td>Excel 表格</td>",
    ] {
        assert_eq!(
            body.matches(text).count(),
            2,
            "{text} once per version: {body}"
        );
    }
    assert!(body.contains("登记为申报第 2 版（最新一版）"), "{body}");
    assert!(
        body.contains("登记为申报第 1 版（共 2 版，已被后来的版本取代）"),
        "{body}"
    );
    // The sent mails: the two acknowledgements with their subject and time.
    assert!(body.contains("发给该支部的邮件（共 2 封）"), "{body}");
    assert_eq!(body.matches("<tr><td>回执</td>").count(), 2, "{body}");
    assert!(
        body.contains(BRANCH) && body.contains(" 发出</div>"),
        "{body}"
    );

    // Each version links its two files by id.
    let files = links(body);
    assert_eq!(files.len(), 4, "{files:?}");
    let newest: Vec<&(i64, String)> = files.iter().take(2).collect();
    assert_eq!(newest[0].1, FORM);
    assert_eq!(newest[1].1, SUMMARY);
    for (i, (id, name)) in newest.iter().enumerate() {
        // The reviewer downloads the form, staff the summary.
        let who = if i == 0 { &reviewer } else { &staff };
        let (status, headers, bytes) =
            get_bytes(board.port, who, &format!("/attachment/{id}")).await;
        assert_eq!(status, 200, "{name}");
        let want = latest["attachments"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["filename"] == name.as_str()))
            .and_then(|f| f["sha256"].as_str())
            .expect("the export lists the file");
        assert_eq!(shenbao::store::blobs::sha256_hex(&bytes), want, "{name}");
        assert_eq!(
            header(&headers, "content-length"),
            Some(bytes.len().to_string().as_str())
        );
        assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
        let cd = header(&headers, "content-disposition").expect("content-disposition");
        assert!(cd.starts_with("attachment; filename=\""), "{cd}");
        assert!(
            cd.ends_with(&format!("filename*=UTF-8''{}", enc(name))),
            "{cd}"
        );
        let ct = header(&headers, "content-type").expect("content-type");
        assert!(
            ct.starts_with(if name.ends_with(".docx") {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            } else {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            }),
            "{ct}"
        );
    }
    assert_eq!(
        latest["attachments"][0]["sha256"],
        "bf7c6f266835b08530278664ca7c6b1c721fc44120f07cf0c73612e7f1832520"
    );

    // 支部 links the branch here, its name percent-encoded.
    let list = board
        .get(&staff, &format!("/branches?q={}", enc("2022级")))
        .await;
    assert!(
        list.body
            .contains("<a href=\"/branch?name=%E6%B5%B7%E6%B4%8B"),
        "{}",
        list.body
    );

    // Unknown branch, unknown or malformed file id: 404 in Chinese, with the way back.
    for (p, text) in [
        (
            format!("/branch?name={}", enc("没有这个支部")),
            "名册中没有“没有这个支部”这个支部",
        ),
        ("/branch".to_string(), "没有指定支部"),
        ("/attachment/999999".to_string(), "没有这个附件"),
        ("/attachment/abc".to_string(), "没有这个附件"),
        ("/attachment/-1".to_string(), "没有这个附件"),
    ] {
        let r = board.get(&reviewer, &p).await;
        assert_eq!(r.status, 404, "{p}: {}", r.body);
        assert!(r.body.contains(text), "{p}: {}", r.body);
        assert!(
            r.body.contains("<a href=\"/branches\">回到支部列表</a>"),
            "{p}"
        );
    }

    // A roster name carrying markup stays inert on its page.
    let r = board
        .get(&staff, &format!("/branch?name={}", enc(EVIL_BRANCH)))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("<script>"), "{}", r.body);
    assert!(r.body.contains("&lt;script&gt;"), "{}", r.body);
    assert!(
        r.body.contains("这个支部还没有发来申报或结项材料"),
        "{}",
        r.body
    );

    for (w, h) in [(1366, 768), (390, 844)] {
        let png = screenshot(body, "detail", w, h);
        eprintln!("screenshot: {}", png.display());
    }
    let log = board.daemon.stop();
    assert!(log.contains("看板下载附件"), "{log}");
    let _ = std::fs::remove_dir_all(&board.env.dir);
}
