//! Setting up: `init` (a local try-out), `check-config`, `completions` and `man`. One function per command; `cli::dispatch` calls them.

use super::*;

pub(super) async fn init(dir: PathBuf, force: bool) -> anyhow::Result<ExitCode> {
    init_dir(&dir, force, clock()?)?;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command(), "shenbao", &mut out);
    say_raw!("{}", String::from_utf8_lossy(&out));
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn man() -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command()).render(&mut out)?;
    say_raw!("{}", crate::cli::zh::zh_man(&String::from_utf8_lossy(&out)));
    Ok(ExitCode::SUCCESS)
}

pub(super) fn init_dir(dir: &Path, force: bool, clock: Clock) -> anyhow::Result<()> {
    let cfg_path = dir.join("shenbao.toml");
    if cfg_path.exists() && !force {
        anyhow::bail!("{} 已存在；如要重新生成请加 --force", cfg_path.display());
    }
    for sub in ["secrets", "templates", "data"] {
        crate::fsmode::create_dir_all(&dir.join(sub))?;
    }
    let deadline = (clock.now() + chrono::Duration::days(14))
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%dT23:59:59")
        .to_string();
    // The board, on for the try-out, with one staff account whose password is made here,
    // kept in a private file and shown once.
    let password = try_password()?;
    let config = format!(
        "{}{}",
        local_config(EXAMPLE_CONFIG, &deadline),
        web_block(&crate::web::hash_password(&password)?)
    );
    crate::fsmode::write(&cfg_path, config)?;
    let web_secret = dir.join(WEB_PASSWORD_FILE);
    let roster = dir.join("roster.csv");
    if !roster.exists() || force {
        crate::fsmode::write(&roster, EXAMPLE_ROSTER)?;
    }
    let secret = dir.join("secrets/imap.password");
    crate::fsmode::write(&secret, "intake-pw\n")?;
    // Rewritten with --force, an older file keeps its mode: make sure it is private.
    #[cfg(unix)]
    std::fs::set_permissions(
        &secret,
        std::os::unix::fs::PermissionsExt::from_mode(crate::fsmode::FILE_MODE),
    )?;
    crate::fsmode::write(&web_secret, format!("{password}\n"))?;
    #[cfg(unix)]
    std::fs::set_permissions(
        &web_secret,
        std::os::unix::fs::PermissionsExt::from_mode(crate::fsmode::FILE_MODE),
    )?;
    for (name, text) in crate::notify::compose::builtin_templates() {
        let p = dir.join("templates").join(name);
        if !p.exists() || force {
            crate::fsmode::write(&p, text)?;
        }
    }
    say!(
        "已生成 {}（本地试用，连接 scripts/mailstack.sh 的测试服务器）。",
        cfg_path.display()
    );
    say!(
        "看板：守护进程运行时打开 http://{TRY_LISTEN}/ ，账号 {TRY_USER}，密码 {password}（保存在 {}，只有你能读）。",
        web_secret.display()
    );
    say!("下一步：");
    say!("  scripts/mailstack.sh start                          # 启动本机测试邮件服务器");
    say!(
        "  shenbao --config {} run         # 启动守护进程",
        cfg_path.display()
    );
    Ok(())
}

pub(super) async fn check_config(path: &Path, probe: bool) -> anyhow::Result<ExitCode> {
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", crate::cli::zh::describe(&anyhow::Error::new(e)));
            return Ok(ExitCode::FAILURE);
        }
    };
    let roster = std::fs::File::open(&cfg.campaign.roster)
        .map_err(anyhow::Error::from)
        .and_then(|f| crate::campaign::roster::Roster::from_csv(f).map_err(anyhow::Error::from));
    match roster {
        Ok(r) => {
            say!(
                "支部名册：{} 个支部（{}）",
                r.len(),
                cfg.campaign.roster.display()
            );
            // Not an error (the branch can still apply), but nobody can remind it.
            for u in r.unreachable() {
                say!("注意：{}", u.describe(&cfg.campaign.roster));
            }
        }
        Err(e) => {
            eprintln!("campaign.roster：{e:#}");
            return Ok(ExitCode::FAILURE);
        }
    }
    if let Some(web) = &cfg.web {
        let staff = web
            .users
            .iter()
            .filter(|u| u.role == crate::config::WebRole::Staff)
            .count();
        say!(
            "看板：监听 http://{}/，{} 个账号（工作人员 {staff} 个，评审专家 {} 个）{}",
            web.listen,
            web.users.len(),
            web.users.len() - staff,
            if web.secure_cookies {
                ""
            } else {
                "；经 HTTPS 对外时请设 web.secure_cookies = true"
            }
        );
    }
    match crate::config::load_templates(cfg.ack.templates_dir.as_deref()) {
        Err(e) => {
            eprintln!("ack.templates_dir：{e}");
            return Ok(ExitCode::FAILURE);
        }
        Ok(t) => {
            for (i, r) in cfg.reminders.iter().enumerate() {
                if !t.has(&r.template) {
                    eprintln!(
                        "reminder[{}].template：找不到模板 {}，请放在 ack.templates_dir 目录中，或使用内置的 reminder.txt.j2",
                        i + 1,
                        r.template
                    );
                    return Ok(ExitCode::FAILURE);
                }
            }
            // Each template rendered with sample data in strict mode: a typo shows here, not
            // in the first mail that needs the template.
            let problems = crate::notify::template_check::check(&t);
            if !problems.is_empty() {
                eprintln!(
                    "模板有 {} 处问题（运行时出错的模板会改用内置模板，但请先改正）：",
                    problems.len()
                );
                for p in &problems {
                    eprintln!("  {p}");
                }
                return Ok(ExitCode::FAILURE);
            }
            say!("模板：{} 个，用示例数据逐个检查无误", t.names().len());
        }
    }
    if cfg.imap.password.value().is_none() {
        say!(
            "注意：{} 目前没有设置，运行前需要设置 IMAP 密码",
            cfg.imap.password.source
        );
    }
    // Like the IMAP password: the service may get it from its environment or credentials,
    // which this shell need not have; `run` and the sending commands refuse without it.
    if let Some(why) = cfg.smtp.missing_password() {
        say!("注意：{why}；在此之前 shenbao run 不会启动");
    }
    say!("配置文件 {} 没有问题。", path.display());
    if !probe {
        return Ok(ExitCode::SUCCESS);
    }
    let mut ok = true;
    match crate::imap::conn::connect(&cfg.imap).await {
        Ok(mut s) => match s.select(crate::imap::mutf7::encode(&cfg.imap.folder)).await {
            Ok(m) => {
                say!(
                    "IMAP：登录成功，{} 中有 {} 封邮件",
                    cfg.imap.folder,
                    m.exists
                );
                let _ = s.logout().await;
            }
            Err(e) => {
                ok = false;
                eprintln!("IMAP：登录成功，但打不开文件夹 {}：{e}", cfg.imap.folder);
            }
        },
        Err(e) => {
            ok = false;
            eprintln!("IMAP：{e}");
        }
    }
    match crate::send::smtp::probe(&cfg.smtp).await {
        Ok(()) => say!("SMTP：连接成功"),
        Err(e) => {
            ok = false;
            eprintln!("SMTP：{e}");
        }
    }
    let want = crate::store::schema_version();
    match crate::store::probe(&cfg.database_connect_url()).await {
        Ok((server, None)) => say!("数据库：{server}，还没有建表（shenbao run 第一次启动时建立）"),
        Ok((server, Some(v))) if v == want => {
            say!("数据库：{server}，表结构第 {v} 版，与本程序相符")
        }
        Ok((server, Some(v))) if v < want => {
            say!("数据库：{server}，表结构第 {v} 版，shenbao run 启动时会升级到第 {want} 版")
        }
        Ok((server, Some(v))) => {
            ok = false;
            eprintln!(
                "数据库：{server}，表结构第 {v} 版，由更新版本的 shenbao 写过（本程序只认识到第 {want} 版）：请改用新版本"
            );
        }
        Err(e) => {
            ok = false;
            eprintln!(
                "数据库 {}：{e}。请检查 [database] url、密码和网络（PostgreSQL 的 pg_hba.conf 要允许本机连接）",
                cfg.database_url
            );
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Where `init` keeps the try-out's board password, beside the IMAP one.
const WEB_PASSWORD_FILE: &str = "secrets/web.password";
/// The try-out board's address and account.
const TRY_LISTEN: &str = "127.0.0.1:8640";
const TRY_USER: &str = "staff";

/// A fresh password for the try-out's board account: 16 random hex digits.
fn try_password() -> anyhow::Result<String> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("取随机数失败：{e}"))?;
    Ok(hex::encode(b))
}

/// The `[web]` block `init` appends: the board on this machine only, one staff account.
pub fn web_block(password_hash: &str) -> String {
    let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
    format!(
        "\n# 看板：由 shenbao init 为本地试用开启，只听本机。账号 {TRY_USER} 的密码在 {WEB_PASSWORD_FILE} 中；\n# 另加账号用 shenbao web passwd 姓名。\n[web]\nlisten = \"{TRY_LISTEN}\"\n\n[[web.user]]\nname = {}\npassword_hash = {}\nrole = \"staff\"\n",
        quoted(TRY_USER),
        quoted(password_hash),
    )
}

/// The example config, rewritten for the local test mail servers of `scripts/mailstack.sh`.
pub fn local_config(example: &str, deadline: &str) -> String {
    let mut section = String::new();
    let mut out = String::from(
        "# 本地试用配置：由 `shenbao init` 生成，连接 scripts/mailstack.sh 启动的本机测试邮件服务器。\n# 正式使用时请参照 config/shenbao.example.toml 修改。\n",
    );
    for line in example.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.to_string();
        }
        let key = t.split('=').next().unwrap_or("").trim();
        let replaced = match (section.as_str(), key) {
            ("[imap]", "host") | ("[smtp]", "host") => Some("host = \"127.0.0.1\"".to_string()),
            ("[imap]", "port") => Some("port = 3143".to_string()),
            ("[smtp]", "port") => Some("port = 2525".to_string()),
            ("[imap]", "tls") | ("[smtp]", "tls") => Some("tls = \"none\"".to_string()),
            ("[imap]", "user") => Some("user = \"intake@example.test\"".to_string()),
            ("[imap]", "password_env") => {
                Some("password_file = \"secrets/imap.password\"".to_string())
            }
            ("[imap]", "poll_interval") => Some("poll_interval = \"30s\"".to_string()),
            ("[smtp]", "user") | ("[smtp]", "password_env") => Some(String::new()),
            ("[smtp]", "from_address") | ("[campaign]", "intake_address") => {
                Some(format!("{key} = \"intake@example.test\""))
            }
            ("[campaign]", "deadline") => Some(format!("deadline = \"{deadline}\"")),
            ("[[digest]]", "recipients") => {
                Some("recipients = [\"reviewer@example.test\"]".to_string())
            }
            ("[ack]", _) if t.starts_with("# templates_dir") => {
                Some("templates_dir = \"templates\"".to_string())
            }
            _ => None,
        };
        match replaced {
            Some(r) if r.is_empty() => {}
            Some(r) => {
                out.push_str(&r);
                out.push('\n');
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

pub(super) const EXAMPLE_CONFIG: &str = include_str!("../../config/shenbao.example.toml");

pub(super) const EXAMPLE_ROSTER: &str = include_str!("../../config/roster.example.csv");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_turns_the_board_on_for_this_machine_only() {
        let text = format!(
            "{}{}",
            local_config(EXAMPLE_CONFIG, "2025-09-27T23:59:59"),
            web_block("$argon2id$v=19$m=19456,t=2,p=1$abc$def")
        );
        let v: toml::Value = toml::from_str(&text).expect("the config is TOML");
        assert_eq!(v["web"]["listen"].as_str(), Some("127.0.0.1:8640"));
        let users = v["web"]["user"].as_array().expect("accounts");
        assert_eq!(users.len(), 1);
        assert_eq!(users[0]["name"].as_str(), Some("staff"));
        assert_eq!(users[0]["role"].as_str(), Some("staff"));
        assert!(
            users[0]["password_hash"]
                .as_str()
                .is_some_and(|h| h.starts_with("$argon2id$"))
        );
        let p = try_password().expect("password");
        assert_eq!(p.len(), 16);
        assert_ne!(p, try_password().expect("password"));
    }
}
