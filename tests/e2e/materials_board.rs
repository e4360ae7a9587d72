//! The board's 材料 and 结项 pages for real (Dovecot + Postfix, mailbox intake35): two sample
//! applications arrive through Postfix; staff and a reviewer download the materials zip of
//! every branch and of one college, and the zips hold the forms under `学院/支部/` with the
//! 汇总表 on top (read back with calamine); an unknown college gets a 404 that says what to
//! pick; no session, no download. After `review import`, 结项 lists the funded projects with
//! their checklist, and a closure mail sent through Postfix turns one of them complete. Both
//! pages are screenshotted at 1366×768.

use crate::common::*;
use crate::web::*;
use std::collections::BTreeMap;
use std::io::Read as _;
use std::time::Duration;

const CAR: &str = "汽车工程学院本科生第二党支部";
const CAR_COLLEGE: &str = "汽车工程学院";
const ECON: &str = "经济与管理学院2023级博士生党支部";
const ECON_COLLEGE: &str = "经济与管理学院";

/// A GET whose body is kept as bytes: status, headers, body.
async fn get_bytes(port: u16, cookie: &str, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let r = download(port, cookie, path, Duration::from_secs(60)).await;
    let headers = r
        .headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    (r.status, headers, r.body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

/// Every entry of a zip: name → bytes.
fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("zip opens");
    let mut files = BTreeMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).expect("entry");
        let name = f.name().expect("name").to_string();
        let mut data = Vec::new();
        f.read_to_end(&mut data).expect("read entry");
        files.insert(name, data);
    }
    files
}

/// Every non-empty cell text of the 汇总表's first sheet, read with calamine.
fn sheet_text(xlsx: &[u8]) -> Vec<String> {
    use calamine::Reader as _;
    let mut wb: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx.to_vec())).expect("xlsx opens");
    let name = wb.sheet_names().first().cloned().expect("a sheet");
    let range = wb.worksheet_range(&name).expect("sheet");
    range
        .rows()
        .flat_map(|r| r.iter().map(|c| c.to_string()))
        .filter(|t| !t.is_empty())
        .collect()
}

/// A zip entry name a reviewer can unpack anywhere: relative, no `..`, no backslash, no
/// control character, parts that do not start or end with a dot or a space.
fn assert_safe_name(name: &str) {
    assert!(!name.starts_with('/') && !name.contains('\\'), "{name}");
    for part in name.split('/') {
        assert!(!part.is_empty() && part != "." && part != "..", "{name}");
        assert!(
            !part.starts_with(['.', ' ']) && !part.ends_with(['.', ' ']),
            "{name}"
        );
        assert!(
            !part
                .chars()
                .any(|c| c.is_control() || ":*?\"<>|".contains(c)),
            "{name}"
        );
    }
}

/// The reviewers' decisions, as `review import` reads them.
fn review_sheet(rows: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let ws = book.add_worksheet();
    for (c, h) in ["支部名称", "评审等级", "资助金额"].iter().enumerate() {
        ws.write_string(0, c as u16, *h).expect("write");
    }
    for (r, (branch, level, amount)) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        ws.write_string(r, 0, *branch).expect("write");
        ws.write_string(r, 1, *level).expect("write");
        ws.write_string(r, 2, *amount).expect("write");
    }
    book.save_to_buffer().expect("xlsx")
}

fn export_json(env: &TestEnv) -> serde_json::Value {
    serde_json::from_str(&env.cli(&["export", "--format", "json"])).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materials_and_closure_on_the_board() {
    let mut board = BoardEnv::start(
        "materials_board",
        "intake35",
        EnvOptions {
            roster: &sample_roster(),
            poll_interval: "2s",
            max_per_sender: 1000,
            ..Default::default()
        },
    )
    .await;
    let port = board.port;

    // No page and no download without a session.
    for path in [
        "/materials",
        "/materials.zip",
        &format!("/materials.zip?college={}", enc(CAR_COLLEGE)),
        "/closure",
    ] {
        let r = http(port, "127.0.0.1", "GET", path, "", None).await;
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.header("location"), Some("/login"), "{path}");
    }

    for (sample, from) in [
        ("c001", "2479582@example.edu.cn"),
        ("c007", "3870390310@qq.com"),
    ] {
        let raw = read(&root().join(format!("tests/fixtures/samples/{sample}/message.eml")));
        smtp_send(from, "intake35@example.test", &raw).await;
    }
    let (env, daemon) = (&board.env, &mut board.daemon);
    wait_for(
        "the two applications to be registered",
        Duration::from_secs(90),
        || {
            daemon.assert_alive();
            let out = env.cli(&["export", "--format", "json"]);
            async move { out.contains(CAR) && out.contains(ECON) }
        },
    )
    .await;

    let staff = board.login("127.0.0.1", STAFF).await;
    let page = board.get(&staff, "/materials").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    assert!(body.contains("<h1>材料</h1>"), "{body}");
    assert!(body.contains("（2 个支部）"), "{body}");
    assert!(
        body.contains(&format!(
            "<a href=\"/materials.zip?college={}\"",
            enc(CAR_COLLEGE)
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!("<td>{CAR_COLLEGE}</td><td class=\"num\">1</td>")),
        "{body}"
    );
    // A college without applications has nothing to download.
    assert!(body.contains("暂无材料"), "{body}");
    assert!(body.contains("href=\"/materials.zip?section="), "{body}");
    screenshot(&page.body, "materials", 1366, 768);
    screenshot(&page.body, "materials", 390, 844);

    // Every branch.
    let (status, headers, zip) = get_bytes(port, &staff, "/materials.zip").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&zip));
    assert_eq!(header(&headers, "content-type"), "application/zip");
    assert_eq!(
        header(&headers, "content-disposition"),
        format!(
            "attachment; filename=\"materials.zip\"; filename*=UTF-8''{}",
            enc("评审材料.zip")
        )
    );
    assert_eq!(header(&headers, "content-length"), zip.len().to_string());
    let files = unzip(&zip);
    let names: Vec<&String> = files.keys().collect();
    for n in &names {
        assert_safe_name(n);
    }
    let car = format!("{CAR_COLLEGE}/{CAR}/");
    let econ = format!("{ECON_COLLEGE}/{ECON}/");
    assert!(files.contains_key("汇总表.xlsx"), "{names:?}");
    assert!(
        files
            .keys()
            .any(|k| k.starts_with(&car) && k.ends_with(".docx")),
        "{names:?}"
    );
    assert!(
        files
            .keys()
            .any(|k| k.starts_with(&econ) && k.ends_with(".doc")),
        "{names:?}"
    );
    assert_eq!(
        files.len(),
        5,
        "two forms, two summaries and the sheet: {names:?}"
    );
    let sheet = sheet_text(&files["汇总表.xlsx"]);
    assert!(sheet.iter().any(|c| c == CAR), "{sheet:?}");
    assert!(sheet.iter().any(|c| c == ECON), "{sheet:?}");
    // The bytes are the stored attachments'.
    let pool = env.db().await;
    let stored: Vec<String> = sqlx::query_scalar("SELECT sha256 FROM attachments")
        .fetch_all(&pool)
        .await
        .expect("attachments");
    for (name, bytes) in &files {
        if name != "汇总表.xlsx" {
            let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
            assert!(stored.contains(&sha), "{name}");
        }
    }
    // Nothing is left behind in the data directory.
    let left: Vec<_> = std::fs::read_dir(env.dir.join("data"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with(".board-download"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");

    // One college, for a reviewer too.
    let reviewer = board.login("127.0.0.1", REVIEWER).await;
    let path = format!("/materials.zip?college={}", enc(CAR_COLLEGE));
    let (status, headers, zip) = get_bytes(port, &reviewer, &path).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&zip));
    assert_eq!(
        header(&headers, "content-disposition"),
        format!(
            "attachment; filename=\"materials-college.zip\"; filename*=UTF-8''{}",
            enc(&format!("评审材料-{CAR_COLLEGE}.zip"))
        )
    );
    let one = unzip(&zip);
    assert!(
        one.keys()
            .all(|k| k == "汇总表.xlsx" || k.starts_with(&car)),
        "{:?}",
        one.keys()
    );
    assert_eq!(one.len(), 3, "{:?}", one.keys());
    let sheet = sheet_text(&one["汇总表.xlsx"]);
    assert!(
        sheet.iter().any(|c| c == CAR) && !sheet.iter().any(|c| c == ECON),
        "{sheet:?}"
    );
    for (name, bytes) in &one {
        if name != "汇总表.xlsx" {
            assert_eq!(Some(bytes), files.get(name), "{name}");
        }
    }
    // The CLI writes the same zip.
    let out = env.dir.join("cli-college.zip");
    let (ok, said) = env.run(&[
        "export",
        "--materials",
        out.to_str().unwrap_or_default(),
        "--college",
        CAR_COLLEGE,
    ]);
    assert!(ok, "{said}");
    assert!(
        said.contains(&format!("1 个支部（只含学院「{CAR_COLLEGE}」），2 个文件")),
        "{said}"
    );
    let cli = unzip(&read(&out));
    assert_eq!(
        cli.keys().collect::<Vec<_>>(),
        one.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &one {
        if name != "汇总表.xlsx" {
            assert_eq!(Some(bytes), cli.get(name), "{name}");
        }
    }
    assert_eq!(sheet_text(&cli["汇总表.xlsx"]), sheet);

    // One section: the section ECON's form names.
    let (status, _, zip) = get_bytes(
        port,
        &reviewer,
        &format!("/materials.zip?section={}", enc("先锋领航·校园善治")),
    )
    .await;
    assert_eq!(status, 200);
    let section = unzip(&zip);
    assert!(
        section
            .keys()
            .all(|k| k == "汇总表.xlsx" || k.starts_with(&econ)),
        "{:?}",
        section.keys()
    );
    assert_eq!(section.len(), 3, "{:?}", section.keys());

    // An unknown college: a 404 that says what to pick, the name escaped.
    let r = board
        .get(
            &staff,
            &format!("/materials.zip?college={}", enc("<b>火星学院")),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(
        r.body
            .contains("名册中没有学院「&lt;b&gt;火星学院」：请在下面的“按学院”中选一个学院下载。"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("<b>"), "{}", r.body);
    assert!(
        r.body
            .contains(&format!("/materials.zip?college={}", enc(CAR_COLLEGE)))
    );
    let r = board
        .get(&staff, &format!("/materials.zip?section={}", enc("优秀")))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("配置中没有申报板块「优秀」"), "{}", r.body);

    // 结项: nothing funded before the review.
    let r = board.get(&staff, "/closure").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("还没有立项项目"), "{}", r.body);

    let sheet = env.dir.join("评审.xlsx");
    std::fs::write(
        &sheet,
        review_sheet(&[(CAR, "重点", "5000"), (ECON, "一般", "1000")]),
    )
    .expect("write");
    let (ok, out) = env.run(&["review", "import", sheet.to_str().unwrap_or_default()]);
    assert!(ok, "{out}");
    let r = board.get(&staff, "/closure").await;
    let body = &r.body;
    assert_eq!(r.status, 200, "{body}");
    assert!(
        body.contains("已立项</div><div class=\"v\">2</div>"),
        "{body}"
    );
    assert!(
        body.contains(&format!("<a href=\"/branch?name={}\">{CAR}</a>", enc(CAR))),
        "{body}"
    );
    assert!(body.contains("<th scope=\"col\">结题报告</th>"), "{body}");
    assert!(body.contains("<th scope=\"col\">活动总结</th>"), "{body}");
    assert!(
        body.contains("材料未齐（缺结题报告、报销材料、工作案例）"),
        "{body}"
    );
    assert!(
        body.contains("材料未齐（缺结题报告、报销材料、活动总结）"),
        "{body}"
    );
    assert!(body.contains("其中还没有发来任何结项材料 2 个"), "{body}");

    // A closure mail through Postfix completes the 重点 project.
    let form = read(&root().join("tests/fixtures/office/form-base.docx"));
    let raw = closure_mail(
        "2479582@example.edu.cn",
        "intake35@example.test",
        CAR,
        &format!(
            "materials-board-closure-{}@example.edu.cn",
            std::process::id()
        ),
        &["结题报告.docx", "报销材料.pdf", "工作案例.docx"],
        &form,
    );
    smtp_send("2479582@example.edu.cn", "intake35@example.test", &raw).await;
    let (env, daemon) = (&board.env, &mut board.daemon);
    wait_for(
        "the closure mail to be registered",
        Duration::from_secs(90),
        || {
            daemon.assert_alive();
            let v = export_json(env);
            async move {
                v["submissions"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|s| s["kind"] == "closure" && s["branch"] == CAR)
                })
            }
        },
    )
    .await;
    let r = board.get(&staff, "/closure").await;
    let body = &r.body;
    assert!(
        body.contains("结项材料齐全</div><div class=\"v\">1</div>"),
        "{body}"
    );
    assert!(
        body.contains("<span class=\"state Complete\">材料齐全</span>"),
        "{body}"
    );
    assert!(body.contains("其中还没有发来任何结项材料 1 个"), "{body}");
    screenshot(body, "closure", 1366, 768);
    screenshot(body, "closure", 390, 844);
    // The filter.
    let r = board.get(&reviewer, "/closure?state=complete").await;
    assert!(
        r.body.contains(CAR) && !r.body.contains(&format!(">{ECON}</a>")),
        "{}",
        r.body
    );
    let r = board.get(&reviewer, "/closure?state=none").await;
    assert!(
        r.body.contains(ECON) && !r.body.contains(&format!(">{CAR}</a>")),
        "{}",
        r.body
    );
    // The closure files are in the materials now.
    let (_, _, zip) = get_bytes(port, &staff, &path).await;
    let one = unzip(&zip);
    for f in ["结题报告.docx", "报销材料.pdf", "工作案例.docx"] {
        assert!(one.contains_key(&format!("{car}{f}")), "{:?}", one.keys());
    }
    board.daemon.stop();
}
