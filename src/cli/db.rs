//! `db copy --to URL`: the campaign's database copied into a new, empty one (from the
//! embedded SQLite to a PostgreSQL that several daemons share), and proved by the row count
//! and SHA-256 of every table read back from both. `db rename-campaign OLD NEW`: a campaign's
//! rows filed under the id the config gives it. One function per command; `cli::dispatch`
//! calls them.

use super::*;

pub(super) async fn copy(config: &ConfigSource, to: &str) -> anyhow::Result<ExitCode> {
    use crate::store::{Store, is_postgres_url, redacted_url};
    let cfg = load(config)?;
    if !is_postgres_url(to) && !to.starts_with("sqlite:") {
        anyhow::bail!(
            "--to {to} 不是数据库地址：应形如 postgres://shenbao@127.0.0.1:5432/shenbao（密码用环境变量 PGPASSWORD 或 ~/.pgpass 给出）"
        );
    }
    if url::Url::parse(to).is_ok_and(|u| u.password().is_some()) {
        anyhow::bail!(
            "密码不要写在命令行里（会留在 shell 历史中）：请从 --to 中删去“:密码”，改用环境变量 PGPASSWORD 或 ~/.pgpass"
        );
    }
    let shown = redacted_url(to);
    let source = Store::open_existing(&cfg.database_connect_url(), &cfg.data_dir).await?;
    let target = Store::open(to, &cfg.data_dir)
        .await
        .with_context(|| format!("打开目标数据库 {shown}"))?;
    if !target.is_empty().await? {
        anyhow::bail!(
            "目标数据库 {shown} 已有数据：copy 不覆盖也不合并，请换一个新建的空库（如 createdb -O shenbao shenbao_new）"
        );
    }
    say!(
        "从 {}（{}）复制到 {shown}（{}）：",
        cfg.database_url,
        source.backend(),
        target.backend()
    );
    source
        .copy_into(&target, |table, rows| say!("  {table}：{rows} 行"))
        .await
        .with_context(|| format!("复制到 {shown}"))?;
    say!("核对（两边各自读回）：");
    let (from, into) = (source.table_sums().await?, target.table_sums().await?);
    let mut same = true;
    for (a, b) in from.iter().zip(&into) {
        let ok = a == b;
        same &= ok;
        say!(
            "  {:<16} {:>8} 行  sha256 {}…  {}",
            a.table,
            b.rows,
            &b.sha256[..16],
            if ok {
                "一致".to_string()
            } else {
                format!("不一致（原库 {} 行，sha256 {}…）", a.rows, &a.sha256[..16])
            }
        );
    }
    if !same || from.len() != into.len() {
        say!(
            "复制结果与原库不一致：请不要切换到 {shown}，删掉它重新建库后再复制一次，并保留以上输出。"
        );
        return Ok(ExitCode::from(1));
    }
    say!(
        "全部一致。下一步：停止 shenbao，在配置的 [database] 中写 url = \"{shown}\"（密码用 password_credential 等给出），再启动；data_dir 中的文件（blobs）仍在原处，多台机器共用时要放在共享存储上。"
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn rename_campaign(
    config: &ConfigSource,
    from: &str,
    to: &str,
) -> anyhow::Result<ExitCode> {
    use crate::store::campaigns::Renamed;
    let cfg = load(config)?;
    if cfg.campaign_by_id(to).is_none() {
        let ids: Vec<&str> = cfg.campaigns.iter().map(|c| c.id.as_str()).collect();
        anyhow::bail!(
            "配置中没有 id 为“{to}”的活动（有：{}）：请先在配置文件的 [[campaign]] 中写上 id = \"{to}\"，再改名",
            ids.join("、")
        );
    }
    let store = crate::store::Store::open(&cfg.database_connect_url(), &cfg.data_dir).await?;
    match store.rename_campaign(from, to).await? {
        Renamed::Moved(moved) => {
            say!("已把活动 {from} 的记录全部改归 {to}：");
            for (table, n) in moved {
                say!("  {table}：{n} 行");
            }
            Ok(ExitCode::SUCCESS)
        }
        Renamed::Nothing => {
            say!(
                "数据库中没有归在 {from} 下的记录，未做改动（用 `shenbao status` 查看数据库中有哪些活动）。"
            );
            Ok(ExitCode::from(1))
        }
        Renamed::TargetInUse => {
            say!(
                "活动 {to} 已有申报或提醒记录，两期合并会让版本号重复，未做改动：请为 {from} 的记录另选一个配置中的 id。"
            );
            Ok(ExitCode::from(1))
        }
    }
}
