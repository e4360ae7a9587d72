//! The command line's own words in Chinese: clap's help layout, its usage and error text, and
//! the errors shown at the edge (`cli::main`) as one sentence without English leftovers.
//!
//! clap has no message catalogue: its headings (`Usage:`, `Options:`) and markers
//! (`[default: …]`) are fixed English strings. The layout is set with `help_template` and the
//! built-in `--help`/`--version` flags are replaced by Chinese ones (see `cli::Cli`); what
//! clap still writes in English is translated here by a short fixed table ([`zh`]), and its
//! errors are rebuilt from their kind and context ([`clap_error`]), not from their text.

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// The help layout of every command.
pub const HELP_TEMPLATE: &str = "{about-with-newline}\n用法：{usage}\n\n{all-args}{after-help}";

/// clap's fixed English words → Chinese (headings, markers, placeholders).
const WORDS: &[(&str, &str)] = &[
    ("Usage: ", "用法："),
    // `subcommand_help_heading("命令")`: clap still adds an ASCII colon.
    ("命令:", "命令："),
    ("Possible values:", "可选值："),
    ("Commands:", "命令："),
    ("Arguments:", "参数："),
    ("Options:", "选项："),
    ("[OPTIONS]", "[选项]"),
    ("<COMMAND>", "<命令>"),
    ("[COMMAND]", "[命令]"),
    ("[default: ", "[默认："),
    ("[possible values: ", "[可选值："),
    ("[env: ", "[环境变量："),
    ("[aliases: ", "[别名："),
];

/// clap's text with its fixed English words in Chinese.
pub fn zh(text: &str) -> String {
    WORDS
        .iter()
        .fold(text.to_string(), |t, (en, cn)| t.replace(en, cn))
}

/// clap_mangen's section names → the names Chinese man pages use.
const MAN_SECTIONS: &[(&str, &str)] = &[
    (".SH NAME", ".SH 名称"),
    (".SH SYNOPSIS", ".SH 概要"),
    (".SH DESCRIPTION", ".SH 描述"),
    (".SH OPTIONS", ".SH 选项"),
    (".SH VERSION", ".SH 版本"),
    (".SH SUBCOMMANDS", ".SH 子命令"),
    ("May also be specified with the ", "也可以用环境变量 "),
    (" environment variable. ", " 指定。"),
    (" environment variable.", " 指定。"),
];

/// The man page of clap_mangen in Chinese: its fixed words ([`zh`]) and section names.
pub fn zh_man(text: &str) -> String {
    MAN_SECTIONS
        .iter()
        .fold(zh(text), |t, (en, cn)| t.replace(en, cn))
}

fn context(e: &clap::Error, kind: ContextKind) -> Option<String> {
    match e.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) => Some(v.join("、")),
        ContextValue::StyledStr(s) => Some(s.to_string()),
        ContextValue::StyledStrs(v) => Some(
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("、"),
        ),
        ContextValue::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A clap parse error as Chinese text: what is wrong, the usage, where to read more.
pub fn clap_error(e: &clap::Error, bin: &str) -> String {
    let arg = context(e, ContextKind::InvalidArg).unwrap_or_default();
    let value = context(e, ContextKind::InvalidValue).unwrap_or_default();
    let suggestion = context(e, ContextKind::SuggestedArg)
        .or_else(|| context(e, ContextKind::SuggestedSubcommand))
        .map(|s| format!("；您是不是想用 {s}？"))
        .unwrap_or_default();
    let what = match e.kind() {
        ErrorKind::InvalidValue => {
            let valid = context(e, ContextKind::ValidValue)
                .map(|v| format!("，可选的值：{v}"))
                .unwrap_or_default();
            if value.is_empty() {
                format!("{arg} 需要一个值{valid}")
            } else {
                format!("{arg} 的值“{value}”无效{valid}{suggestion}")
            }
        }
        ErrorKind::UnknownArgument => format!("不认识的参数“{arg}”{suggestion}"),
        ErrorKind::InvalidSubcommand => {
            let name = context(e, ContextKind::InvalidSubcommand).unwrap_or(value);
            format!("没有“{name}”这个命令{suggestion}")
        }
        ErrorKind::MissingRequiredArgument => format!("缺少必需的参数：{arg}"),
        ErrorKind::MissingSubcommand => "缺少命令".to_string(),
        ErrorKind::ArgumentConflict => {
            let other = context(e, ContextKind::PriorArg).unwrap_or_default();
            format!("{arg} 不能与 {other} 同时使用")
        }
        ErrorKind::ValueValidation => {
            format!(
                "{arg} 的值“{value}”格式不对（日期写成 2025-09-17，时间写成 2025-09-24T09:00:00+08:00）"
            )
        }
        ErrorKind::TooManyValues | ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues => {
            format!("{arg} 的值的个数不对")
        }
        ErrorKind::NoEquals => format!("{arg} 的值要用等号给出，例如 {arg}=值"),
        ErrorKind::InvalidUtf8 => "参数中有无效的 UTF-8 字符".to_string(),
        _ => "命令行有误".to_string(),
    };
    let usage = context(e, ContextKind::Usage)
        .map(|u| format!("\n\n{}", zh(u.trim())))
        .unwrap_or_default();
    let stop = if what.ends_with('？') { "" } else { "。" };
    format!("错误：{what}{stop}{usage}\n\n运行 `{bin} --help` 查看说明。\n")
}

/// An I/O error's kind in words (the OS text, `No such file or directory (os error 2)`, is
/// English and repeats what the context already says).
pub fn io_kind(kind: std::io::ErrorKind) -> &'static str {
    use std::io::ErrorKind as K;
    match kind {
        K::NotFound => "文件或目录不存在",
        K::PermissionDenied => "没有权限（请检查属主和权限，或换用有权限的用户运行）",
        K::AlreadyExists => "已经存在",
        K::ConnectionRefused => "连接被拒绝（对方端口上没有服务，请检查主机和端口）",
        K::ConnectionReset | K::ConnectionAborted => "连接被对方断开",
        K::NotConnected => "没有连接",
        K::TimedOut => "超时",
        K::AddrInUse => "地址已被占用",
        K::AddrNotAvailable => "地址不可用",
        K::InvalidData => "数据格式无效",
        K::InvalidInput => "输入无效",
        K::UnexpectedEof => "内容意外结束（文件不完整）",
        K::StorageFull => "磁盘已满",
        K::ReadOnlyFilesystem => "文件系统只读",
        K::IsADirectory => "这是一个目录，不是文件",
        K::NotADirectory => "路径中有一部分不是目录",
        K::DirectoryNotEmpty => "目录不是空的",
        K::BrokenPipe => "输出已被关闭",
        K::Interrupted => "被中断",
        K::OutOfMemory => "内存不足",
        _ => "读写出错",
    }
}

/// An error chain as one sentence: each cause once (a message that already contains the next
/// one's text is not followed by it again), I/O errors in Chinese.
pub fn describe(e: &anyhow::Error) -> String {
    let ios: Vec<(String, &'static str)> = e
        .chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .map(|io| (io.to_string(), io_kind(io.kind())))
        .collect();
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if parts.iter().any(|p| p.contains(text.trim())) {
            continue;
        }
        parts.push(text);
    }
    let mut out = parts.join("：");
    for (en, cn) in &ios {
        if !en.is_empty() {
            out = out.replace(en.as_str(), cn);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn io_errors_read_in_chinese_once() {
        let e = std::fs::read("/nonexistent/shenbao.toml")
            .context("读取配置文件 /nonexistent/shenbao.toml")
            .expect_err("missing");
        let text = describe(&e);
        assert_eq!(
            text,
            "读取配置文件 /nonexistent/shenbao.toml：文件或目录不存在"
        );
        assert!(!text.contains("os error"), "{text}");
    }

    #[test]
    fn a_cause_already_in_its_context_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("打不开数据库：{0}")]
        struct Outer(#[source] std::io::Error);
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = anyhow::Error::new(Outer(io)).context("打开数据库 sqlite:///x.db");
        let text = describe(&e);
        assert_eq!(
            text.matches("没有权限").count(),
            1,
            "the cause once: {text}"
        );
        assert!(
            text.starts_with("打开数据库 sqlite:///x.db：打不开数据库：没有权限"),
            "{text}"
        );
    }

    #[test]
    fn io_kinds_have_words() {
        use std::io::ErrorKind as K;
        for k in [
            K::NotFound,
            K::PermissionDenied,
            K::ConnectionRefused,
            K::TimedOut,
        ] {
            assert!(!io_kind(k).is_ascii(), "{k:?}");
        }
        assert_eq!(io_kind(K::Other), "读写出错");
    }

    #[test]
    fn clap_words_are_translated() {
        assert_eq!(
            zh("Usage: shenbao [OPTIONS] <COMMAND>\n[default: json] [possible values: a, b]"),
            "用法：shenbao [选项] <命令>\n[默认：json] [可选值：a, b]"
        );
    }
}
