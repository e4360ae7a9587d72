//! Reminders go per branch, never per address, through the real mail servers: two roster
//! branches share one secretary's mailbox (branch2@example.test) and each gets its own
//! reminder there; a branch without an address and one with a broken address are named by
//! `check-config` and `status` and recorded as skipped by the planner; a reminder recorded
//! under the old per-address ledger key before the upgrade is not sent again.

use crate::common::*;
use shenbao::clock::Clock;
use std::sync::Arc;
use std::time::Duration;

const FIRST: &str = "测试学院第一党支部";
const SECOND: &str = "测试学院第二党支部";
const NO_EMAIL: &str = "测试学院第三党支部";
const BAD_EMAIL: &str = "测试学院第四党支部";
const LEGACY: &str = "测试学院第五党支部";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_go_to_every_branch_sharing_an_address() {
    let roster = format!(
        "学院,支部名称,书记,书记邮箱\n\
         测试学院,{FIRST},张一,branch2@example.test\n\
         测试学院,{SECOND},张二,Branch2@Example.test\n\
         测试学院,{NO_EMAIL},张三,\n\
         测试学院,{BAD_EMAIL},张四,zhangsi at tongji\n\
         测试学院,{LEGACY},张五,branch3@example.test\n"
    );
    let env = TestEnv::new(
        "remind",
        "intake21",
        EnvOptions {
            roster: &roster,
            max_per_sender: 1000,
            ..Default::default()
        },
    )
    .await;

    // check-config names the roster file and the row of each branch nobody can write to.
    let out = env.cli(&["check-config"]);
    assert!(out.contains("支部名册：5 个支部"), "{out}");
    assert!(
        out.contains(&format!("roster.csv 第 4 行“{NO_EMAIL}”：没有填写书记邮箱")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "roster.csv 第 5 行“{BAD_EMAIL}”：书记邮箱“zhangsi at tongji”不是有效的邮箱地址"
        )),
        "{out}"
    );
    assert!(out.contains("没有问题"), "still a usable config: {out}");

    // Before the upgrade, branch 5's 7-day reminder went out under the old per-address key.
    let cfg = Arc::new(shenbao::config::Config::load(&env.config).expect("config"));
    let (store, _, wake) = shenbao::daemon::open(cfg.clone(), Clock::System)
        .await
        .expect("open");
    let occasions = shenbao::schedule::occasions(
        &cfg.reminders[0],
        cfg.campaign.deadline,
        cfg.campaign.timezone,
    );
    let seven = &occasions[0];
    let pool = env.db().await;
    sqlx::query(
        "INSERT INTO ledger (key, kind, rule, recipient, deadline, offset_secs, created_at) VALUES ($1, 'reminder', $2, $3, $4, $5, $6)",
    )
    .bind(seven.key_for("branch3@example.test"))
    .bind(&seven.rule)
    .bind("branch3@example.test")
    .bind(shenbao::store::db_time(seven.deadline))
    .bind(seven.offset.num_seconds())
    .bind(shenbao::store::db_time(chrono::Utc::now()))
    .execute(&pool)
    .await
    .expect("old ledger row");

    // Seven days before the deadline nobody has applied: the dry run lists one reminder per
    // branch — two to the shared mailbox — and the two branches it cannot reach.
    let at = "2025-09-20T09:00:00+08:00";
    let dry = env.cli(&["remind", "--dry-run", "--at", at]);
    let line_of = |branch: &str| {
        dry.lines()
            .filter(|l| l.contains(&format!("→ {branch}")))
            .collect::<Vec<_>>()
    };
    for branch in [FIRST, SECOND] {
        let lines = line_of(branch);
        assert_eq!(lines.len(), 1, "{branch}: {dry}");
        assert!(
            lines[0].contains("<branch2@example.test>") && lines[0].contains(branch),
            "{dry}"
        );
    }
    assert!(
        line_of(NO_EMAIL)
            .first()
            .is_some_and(|l| l.contains("跳过：支部名册第 4 行没有填写书记邮箱")),
        "{dry}"
    );
    assert!(
        line_of(BAD_EMAIL)
            .first()
            .is_some_and(|l| l.contains("跳过：支部名册第 5 行书记邮箱")),
        "{dry}"
    );
    assert!(
        line_of(LEGACY).is_empty(),
        "the old per-address row counts as sent: {dry}"
    );

    // Queued for real, then once more (a restart): nothing new the second time.
    let out = env.cli(&["remind", "--at", at]);
    assert!(out.contains("已放入发件箱 2 封"), "{out}");
    let again = env.cli(&["remind", "--at", at]);
    assert!(again.contains("没有到期的提醒"), "{again}");
    let skips: Vec<(String, String)> = sqlx::query_as(
        "SELECT branch, skipped FROM ledger WHERE kind = 'reminder' AND skipped IS NOT NULL ORDER BY branch",
    )
    .fetch_all(&pool)
    .await
    .expect("skips");
    assert_eq!(
        skips.iter().map(|(b, _)| b.as_str()).collect::<Vec<_>>(),
        [NO_EMAIL, BAD_EMAIL],
        "each skip recorded once, with its reason: {skips:?}"
    );

    // Delivered through Postfix and read back from the shared mailbox: one reminder each.
    let sender = shenbao::send::Sender::new(
        store.clone(),
        Clock::System,
        cfg.smtp.clone(),
        &cfg.campaign.intake_address,
        wake,
    )
    .expect("sender");
    sender.drain().await.expect("drain");
    let reminders = || async {
        acks(&env, "branch2")
            .await
            .into_iter()
            .filter(|m| m.subject().is_some_and(|s| s.starts_with("【提醒】")))
            .collect::<Vec<_>>()
    };
    wait_for("both reminders", Duration::from_secs(30), || async {
        reminders().await.len() >= 2
    })
    .await;
    let got = reminders().await;
    assert_eq!(got.len(), 2, "one reminder per branch");
    for branch in [FIRST, SECOND] {
        let mine: Vec<_> = got
            .iter()
            .filter(|m| {
                m.subject()
                    .is_some_and(|s| s.starts_with(&format!("【提醒】{branch}：")))
            })
            .collect();
        assert_eq!(mine.len(), 1, "{branch}");
        let body = mine[0].body_text(0).unwrap_or_default().to_string();
        assert!(
            body.contains(&format!("对标争先建设项目申报-{branch}")),
            "{branch}: the exact subject of its own application\n{body}"
        );
    }
    assert!(
        acks(&env, "branch3").await.is_empty(),
        "no second 7-day reminder for the old row"
    );

    // status lists the branches nobody can reach, with what was skipped for them.
    let out = env.cli(&["status"]);
    assert!(out.contains("无法联系的支部"), "{out}");
    assert!(
        out.contains(&format!(
            "第 4 行 {NO_EMAIL}：没有填写书记邮箱（已因此跳过 1 封邮件）"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("第 5 行 {BAD_EMAIL}：书记邮箱")),
        "{out}"
    );

    // The next occasion goes per branch for everyone, the old address included.
    let dry = env.cli(&["remind", "--dry-run", "--at", "2025-09-24T09:00:00+08:00"]);
    for branch in [FIRST, SECOND, LEGACY] {
        assert!(
            dry.lines().any(|l| l.contains(&format!("→ {branch} <"))),
            "{branch}: {dry}"
        );
    }
}
