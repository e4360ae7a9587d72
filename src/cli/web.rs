//! `shenbao web` (the board alone, read-only, without the daemon: a reviewer's laptop with a
//! copy of the database) and `shenbao web passwd` (accounts live in the config as argon2
//! hashes, so the password itself is never written anywhere). Not pure: terminal and network.

use super::*;
use std::io::{BufRead as _, IsTerminal as _};

pub(super) async fn serve(config: &ConfigSource) -> anyhow::Result<ExitCode> {
    let cfg = load(config)?;
    if cfg.web.is_none() {
        anyhow::bail!(
            "配置 {} 中没有 [web]：请加上 [web] 和至少一个 [[web.user]]（用 shenbao web passwd 姓名 生成），见 config/shenbao.example.toml",
            config.path.display()
        );
    }
    let app = crate::daemon::open_existing_app(cfg, clock()?).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let Some(task) = crate::web::start(app, true, stop_rx).await? else {
        return Ok(ExitCode::FAILURE);
    };
    say!("看板已启动（只读，不运行守护进程）；按 Ctrl-C 退出");
    crate::daemon::shutdown_signal().await;
    let _ = stop_tx.send(true);
    let _ = task.await;
    Ok(ExitCode::SUCCESS)
}

/// One line of the password: from the terminal without echo, else from stdin.
fn read_secret(
    prompt: &str,
    tty: bool,
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
) -> anyhow::Result<Option<String>> {
    if tty {
        eprint!("{prompt}");
        let echo_off = std::process::Command::new("stty")
            .arg("-echo")
            .stdin(std::process::Stdio::inherit())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        let line = lines.next().transpose();
        if echo_off {
            let _ = std::process::Command::new("stty")
                .arg("echo")
                .stdin(std::process::Stdio::inherit())
                .status();
        }
        eprintln!();
        Ok(line?)
    } else {
        Ok(lines.next().transpose()?)
    }
}

pub(super) fn passwd(name: &str) -> anyhow::Result<ExitCode> {
    let name = name.trim();
    if name.is_empty() {
        anyhow::bail!("账号名不能为空，例如 shenbao web passwd 王老师");
    }
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let mut lines = stdin.lock().lines();
    let first = read_secret("密码：", tty, &mut lines)?.unwrap_or_default();
    let first = first.trim_end_matches('\r').to_string();
    if first.is_empty() {
        anyhow::bail!("密码不能为空");
    }
    if first.chars().count() < 8 {
        anyhow::bail!("密码太短：请至少用 8 个字符");
    }
    let second = read_secret("再输入一遍：", tty, &mut lines)?;
    match second.map(|s| s.trim_end_matches('\r').to_string()) {
        Some(s) if s == first => {}
        // From a pipe, one line is enough.
        None if !tty => {}
        _ => anyhow::bail!("两次输入的密码不一样，请重新运行"),
    }
    let hash = crate::web::hash_password(&first)?;
    let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
    say!("# 把下面几行加到配置文件的 [web] 之后；评审专家（只能查看）把 role 改为 \"reviewer\"");
    say!("[[web.user]]");
    say!("name = {}", quoted(name));
    say!("password_hash = {}", quoted(&hash));
    say!("role = \"staff\"");
    Ok(ExitCode::SUCCESS)
}
