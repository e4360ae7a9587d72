//! Issue 15's first step, proved: every SQL statement of `src/store/` is valid PostgreSQL as
//! well as SQLite, and the PostgreSQL schema (`migrations/postgres/`) has the tables and
//! columns of the SQLite one (`migrations/`).
//!
//! Why a source scan: the store's statements are string literals (some completed by
//! `concat!` and the store's macros `needs_staff!`, `outbox_entry_sql!`, `submissions_where!`)
//! handed to sqlx. Reading the sources the way a reviewer does finds every one of them, also
//! the ones a test run would not reach, and a statement added tomorrow is checked without
//! anyone listing it. A statement that cannot be common says so with a `// SQLite only: …`
//! comment right above it and is left out (and listed); so does one assembled from the
//! catalogue's table and column names (`// Built at run time: …`, `store::copy`, whose tests
//! run it on both backends).
//!
//! What runs where:
//! - the scan and its lints (no `?` placeholders, no `INSERT OR …`, no flag compared to 0/1,
//!   `$N` numbered without gaps) run everywhere;
//! - with `SHENBAO_TEST_POSTGRES` set (`scripts/test.sh` starts `scripts/pgstack.sh` and sets
//!   it), each statement is prepared on a fresh PostgreSQL database migrated with
//!   `migrations/postgres/`: PostgreSQL parses and analyses it (syntax, tables, columns,
//!   operator types, GROUP BY) and says what its columns are; a column the store would read
//!   as `i64` must be BIGINT there, not INTEGER or NUMERIC. Without the variable the
//!   PostgreSQL tests say so and pass, so a fresh clone without PostgreSQL still passes.

use sqlx::{Column as _, Connection as _, Executor as _, Row as _, Statement as _, TypeInfo as _};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// The scan: a small Rust lexer (strings, raw strings, comments, identifiers) and an evaluator
// of the constant string expressions SQL is written with.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A string literal's value, escapes resolved.
    Str(String),
    Ident(String),
    /// `$name` inside a macro_rules body.
    Param(String),
    Punct(char),
}

/// Tokens with their 1-based line.
fn lex(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let count_lines =
        |from: usize, to: usize, c: &[char]| c[from..to].iter().filter(|&&x| x == '\n').count();
    while i < c.len() {
        let ch = c[i];
        let start_line = line;
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'/') {
            let end = c[i..]
                .iter()
                .position(|&x| x == '\n')
                .map_or(c.len(), |p| i + p);
            let text: String = c[i + 2..end].iter().collect();
            // `// Built at run time: …` marks a statement whose text is assembled from the
            // catalogue (table and column names, `store::copy`): not a constant to prepare
            // here; the store's own tests run it on both backends.
            let t = text.trim_start();
            if t.starts_with("SQLite only") || t.starts_with("Built at run time") {
                // Marks the next statement; kept as a token of its own kind.
                out.push((Tok::Punct(SQLITE_ONLY), line));
            }
            i = end;
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            let start = i;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            line += count_lines(start, i, &c);
        } else if ch == 'b' && c.get(i + 1) == Some(&'"') {
            // A byte string: not SQL.
            let (_, next) = string_body(&c, i + 2);
            line += count_lines(i, next, &c);
            i = next;
            out.push((Tok::Punct('b'), start_line));
        } else if let Some(hashes_at) = raw_string_start(&c, i) {
            // r"…", r#"…"#, br"…": raw strings (byte ones are not SQL).
            let byte = ch == 'b';
            let hashes = c[hashes_at..].iter().take_while(|&&x| x == '#').count();
            let body = hashes_at + hashes + 1;
            let mut end = body;
            while end < c.len()
                && !(c[end] == '"'
                    && c[end + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&x| x == '#')
                        .count()
                        == hashes)
            {
                end += 1;
            }
            let text: String = c[body..end.min(c.len())].iter().collect();
            line += count_lines(i, end.min(c.len()), &c);
            i = end + 1 + hashes;
            out.push((
                if byte {
                    Tok::Punct('b')
                } else {
                    Tok::Str(text)
                },
                start_line,
            ));
        } else if ch == '"' {
            let (text, next) = string_body(&c, i + 1);
            line += count_lines(i, next, &c);
            i = next;
            out.push((Tok::Str(text), start_line));
        } else if ch == '\'' {
            // A char literal ('a', '\n', '\u{..}') or a lifetime ('a, 'static).
            if c.get(i + 1) == Some(&'\\') {
                let end = c[i + 2..]
                    .iter()
                    .position(|&x| x == '\'')
                    .map_or(c.len(), |p| i + 2 + p);
                i = end + 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
            out.push((Tok::Punct('\''), start_line));
        } else if ch == '$' && c.get(i + 1).is_some_and(|x| x.is_alphabetic() || *x == '_') {
            let start = i + 1;
            i += 1;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push((Tok::Param(c[start..i].iter().collect()), line));
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

/// Where the hashes of a raw string starting at `i` (`r"`, `r#"`, `br"` …) begin.
fn raw_string_start(c: &[char], i: usize) -> Option<usize> {
    let after = match (c[i], c.get(i + 1)) {
        ('r', _) => i + 1,
        ('b', Some('r')) => i + 2,
        _ => return None,
    };
    let hashes = c[after..].iter().take_while(|&&x| x == '#').count();
    (c.get(after + hashes) == Some(&'"')).then_some(after)
}

/// The value of a "…" literal whose body starts at `i`, and the index after its closing quote.
fn string_body(c: &[char], mut i: usize) -> (String, usize) {
    let mut s = String::new();
    while i < c.len() {
        match c[i] {
            '"' => return (s, i + 1),
            '\\' => {
                i += 1;
                match c.get(i) {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('r') => s.push('\r'),
                    Some('0') => s.push('\0'),
                    Some('\n') => {
                        // A line continuation: the newline and the next line's indent go.
                        while c.get(i + 1).is_some_and(|x| x.is_whitespace()) {
                            i += 1;
                        }
                    }
                    Some('u') => {
                        let end = c[i..].iter().position(|&x| x == '}').map_or(i, |p| i + p);
                        let hex: String = c[i + 2..end].iter().collect();
                        s.extend(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32));
                        i = end;
                    }
                    Some(x) => s.push(*x),
                    None => {}
                }
                i += 1;
            }
            x => {
                s.push(x);
                i += 1;
            }
        }
    }
    (s, i)
}

/// A `macro_rules!` whose expansion is a constant string: its pieces, `None` for the argument.
type Template = Vec<Option<String>>;

/// The SQL keywords a statement starts with.
const KEYWORDS: &[&str] = &[
    "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "PRAGMA", "BEGIN", "EXPLAIN", "CREATE",
    "ALTER", "DROP",
];

fn is_sql(s: &str) -> bool {
    let t = s.trim_start();
    KEYWORDS.iter().any(|k| {
        t.strip_prefix(k)
            .is_some_and(|rest| rest.starts_with(char::is_whitespace) || rest.is_empty())
    })
}

struct Scanner<'a> {
    toks: &'a [(Tok, usize)],
    macros: &'a BTreeMap<String, Template>,
}

impl Scanner<'_> {
    fn tok(&self, i: usize) -> Option<&Tok> {
        self.toks.get(i).map(|(t, _)| t)
    }

    /// `a::b::name` at `i`: the last name and the index after it.
    fn path(&self, mut i: usize) -> Option<(String, usize)> {
        let mut name = match self.tok(i)? {
            Tok::Ident(n) => n.clone(),
            _ => return None,
        };
        i += 1;
        while self.tok(i) == Some(&Tok::Punct(':')) && self.tok(i + 1) == Some(&Tok::Punct(':')) {
            match self.tok(i + 2)? {
                Tok::Ident(n) => name = n.clone(),
                _ => return None,
            }
            i += 3;
        }
        Some((name, i))
    }

    /// The constant string expression at `i` (a literal, `concat!(…)`, `format!("…", …)` with
    /// its `{…}` holes as `$1`, or a store macro), the index after it; `None` if it is not one.
    fn eval(&self, i: usize, arg: Option<&str>) -> Option<(String, usize)> {
        match self.tok(i)? {
            Tok::Str(s) => return Some((s.clone(), i + 1)),
            Tok::Param(_) => return Some((arg?.to_string(), i + 1)),
            _ => {}
        }
        let (name, j) = self.path(i)?;
        if self.tok(j) != Some(&Tok::Punct('!')) || self.tok(j + 1) != Some(&Tok::Punct('(')) {
            return None;
        }
        let mut k = j + 2;
        let mut args = Vec::new();
        while self.tok(k) != Some(&Tok::Punct(')')) {
            self.tok(k)?;
            if name == "format" && !args.is_empty() {
                // The values formatted in: skipped, their holes were replaced.
                let mut depth = 0;
                while let Some(t) = self.tok(k) {
                    match t {
                        Tok::Punct('(') | Tok::Punct('[') | Tok::Punct('{') => depth += 1,
                        Tok::Punct(')') | Tok::Punct(']') | Tok::Punct('}') if depth == 0 => break,
                        Tok::Punct(')') | Tok::Punct(']') | Tok::Punct('}') => depth -= 1,
                        Tok::Punct(',') if depth == 0 => break,
                        _ => {}
                    }
                    k += 1;
                }
            } else {
                let (s, next) = self.eval(k, arg)?;
                args.push(s);
                k = next;
            }
            if self.tok(k) == Some(&Tok::Punct(',')) {
                k += 1;
            }
        }
        let value = match name.as_str() {
            "concat" => args.concat(),
            "format" => holes_as_parameters(args.first()?),
            other => {
                let template = self.macros.get(other)?;
                template
                    .iter()
                    .map(|p| p.clone().or_else(|| args.first().cloned()))
                    .collect::<Option<String>>()?
            }
        };
        Some((value, k + 1))
    }
}

/// `format!`'s `{name}` holes (the `$1,$2,…` marks of a statement built for a number of ids)
/// as one `$1`.
fn holes_as_parameters(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(p) = rest.find('{') {
        out.push_str(&rest[..p]);
        let end = rest[p..].find('}').map_or(rest.len(), |e| p + e + 1);
        out.push_str("$1");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The token a `// SQLite only: …` comment leaves: it marks the next statement.
const SQLITE_ONLY: char = '\u{2}';

/// A statement found in the sources.
#[derive(Debug, Clone)]
struct Found {
    file: String,
    line: usize,
    sql: String,
    /// Marked `// SQLite only: …`.
    sqlite_only: bool,
}

/// The `macro_rules!` of the store whose expansion is a string: `needs_staff!()`,
/// `outbox_entry_sql!(tail)`, `submissions_where!(where)`.
fn templates(files: &[(String, Vec<(Tok, usize)>)]) -> BTreeMap<String, Template> {
    let mut out = BTreeMap::new();
    // Twice: a macro may use one defined in a later file.
    for _ in 0..2 {
        for (_, toks) in files {
            for i in 0..toks.len() {
                if toks[i].0 != Tok::Ident("macro_rules".into()) {
                    continue;
                }
                let Some((Tok::Ident(name), _)) = toks.get(i + 2) else {
                    continue;
                };
                // The expansion: after the first `=>`, inside its braces.
                let Some(arrow) = (i..toks.len()).find(|&k| {
                    toks[k].0 == Tok::Punct('=')
                        && toks.get(k + 1).map(|t| &t.0) == Some(&Tok::Punct('>'))
                }) else {
                    continue;
                };
                let scanner = Scanner { toks, macros: &out };
                const MARK: &str = "\u{1}ARG\u{1}";
                if let Some((text, _)) = scanner.eval(arrow + 3, Some(MARK)) {
                    let mut pieces: Template = Vec::new();
                    for (n, part) in text.split(MARK).enumerate() {
                        if n > 0 {
                            pieces.push(None);
                        }
                        pieces.push(Some(part.to_string()));
                    }
                    let name = name.clone();
                    out.insert(name, pieces);
                }
            }
        }
    }
    out
}

/// Every SQL statement in the non-test code of `src/store/*.rs`.
fn store_statements() -> Vec<Found> {
    let dir = root().join("src/store");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("src/store")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    paths.sort();
    let files: Vec<(String, Vec<(Tok, usize)>)> = paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("read");
            (
                format!(
                    "src/store/{}",
                    p.file_name().expect("name").to_string_lossy()
                ),
                lex(&text),
            )
        })
        .collect();
    let macros = templates(&files);
    let mut out = Vec::new();
    for (file, toks) in &files {
        let scanner = Scanner {
            toks,
            macros: &macros,
        };
        let mut sqlite_only = false;
        let mut i = 0;
        while i < toks.len() {
            // `#[cfg(test)]`: the next item (a test module, a test helper) is left out.
            if toks[i].0 == Tok::Punct('#')
                && toks[i + 1..].iter().take(6).map(|t| &t.0).eq([
                    Tok::Punct('['),
                    Tok::Ident("cfg".into()),
                    Tok::Punct('('),
                    Tok::Ident("test".into()),
                    Tok::Punct(')'),
                    Tok::Punct(']'),
                ]
                .iter())
            {
                i += 7;
                while i < toks.len() && !matches!(toks[i].0, Tok::Punct('{') | Tok::Punct(';')) {
                    i += 1;
                }
                if toks.get(i).map(|t| &t.0) == Some(&Tok::Punct('{')) {
                    let mut depth = 0;
                    while i < toks.len() {
                        match toks[i].0 {
                            Tok::Punct('{') => depth += 1,
                            Tok::Punct('}') => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        i += 1;
                    }
                }
                i += 1;
                continue;
            }
            // A macro's definition is no statement of its own; its uses are.
            if toks[i].0 == Tok::Ident("macro_rules".into()) {
                let mut depth = 0;
                i += 2;
                while i < toks.len() {
                    match toks[i].0 {
                        Tok::Punct('{') | Tok::Punct('(') => depth += 1,
                        Tok::Punct('}') | Tok::Punct(')') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
                continue;
            }
            if toks[i].0 == Tok::Punct(SQLITE_ONLY) {
                sqlite_only = true;
                i += 1;
                continue;
            }
            match scanner.eval(i, None) {
                Some((sql, next)) if is_sql(&sql) => {
                    out.push(Found {
                        file: file.clone(),
                        line: toks[i].1,
                        sql,
                        sqlite_only,
                    });
                    sqlite_only = false;
                    i = next;
                }
                _ => i += 1,
            }
        }
    }
    out
}

/// The SQL outside its quoted literals ('…').
fn unquoted(sql: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for ch in sql.chars() {
        if ch == '\'' {
            quoted = !quoted;
        } else if !quoted {
            out.push(ch);
        }
    }
    out
}

/// What makes a statement SQLite's only, found by reading it.
fn lint(sql: &str) -> Vec<String> {
    let code = unquoted(sql);
    let upper = code.to_uppercase();
    let mut problems = Vec::new();
    if code.contains('?') {
        problems.push("`?` placeholder (PostgreSQL numbers them: $1, $2, …)".to_string());
    }
    for bad in [
        "INSERT OR ",
        "LAST_INSERT_ROWID",
        "IFNULL(",
        "LIMIT -1",
        "GROUP_CONCAT(",
    ] {
        if upper.contains(bad) {
            problems.push(format!("`{}` is SQLite's", bad.trim()));
        }
    }
    const FLAGS: &[&str] = &[
        "needs_staff",
        "is_latest",
        "late",
        "sender_changed",
        "funded",
        "is_current",
        "moved",
        "ok",
        "success",
    ];
    let words: Vec<&str> = code
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '=' || c == '.'))
        .filter(|w| !w.is_empty())
        .collect();
    for w in words.windows(3) {
        let col = w[0].rsplit('.').next().unwrap_or(w[0]);
        if FLAGS.contains(&col) && w[1] == "=" && (w[2] == "0" || w[2] == "1") {
            problems.push(format!("flag `{} = {}` (write TRUE/FALSE)", w[0], w[2]));
        }
    }
    // $1 … $n, each used: a gap is a parameter PostgreSQL cannot type.
    let mut numbers: Vec<usize> = Vec::new();
    let b = code.as_bytes();
    for (p, _) in code.match_indices('$') {
        let digits: String = code[p + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(n) = digits.parse() {
            numbers.push(n);
        } else if b.get(p + 1).is_some() {
            problems.push("a `$` that is not a numbered parameter".to_string());
        }
    }
    numbers.sort();
    numbers.dedup();
    if numbers.iter().enumerate().any(|(i, &n)| n != i + 1) {
        problems.push(format!("parameters {numbers:?} are not $1…$n"));
    }
    problems
}

/// The scan finds the store's statements (a plausible number, the macros expanded), and
/// every one not marked SQLite only is in the common subset as far as reading can tell.
#[test]
fn the_stores_statements_are_found_and_portable() {
    let found = store_statements();
    let portable: Vec<&Found> = found.iter().filter(|f| !f.sqlite_only).collect();
    assert!(
        portable.len() >= 100,
        "only {} statements found",
        portable.len()
    );
    // The macros were expanded, not skipped.
    for (marker, what) in [
        ("resolved_at IS NULL", "needs_staff!()"),
        (
            "SELECT id, kind, to_addr, subject, status, attempts",
            "outbox_entry_sql!",
        ),
        (
            "FROM submissions s JOIN messages m ON m.id = s.message_id WHERE",
            "submissions_where!",
        ),
    ] {
        let n = portable.iter().filter(|f| f.sql.contains(marker)).count();
        assert!(n >= 2, "{what}: {n} statements");
    }
    let mut problems = Vec::new();
    for f in &portable {
        for p in lint(&f.sql) {
            let text = format!("{}:{}: {p}\n    {}", f.file, f.line, f.sql);
            problems.push(text);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let only: Vec<String> = found
        .iter()
        .filter(|f| f.sqlite_only)
        .map(|f| format!("{}:{}: {}", f.file, f.line, f.sql))
        .collect();
    eprintln!(
        "{} portable statements; SQLite only:\n  {}",
        portable.len(),
        only.join("\n  ")
    );
}

/// The lints catch what they are for.
#[test]
fn the_lints_catch_sqlite_only_forms() {
    assert!(lint("SELECT id FROM messages WHERE id = $1 AND status = 'a?b'").is_empty());
    assert_eq!(lint("SELECT id FROM messages WHERE id = ?").len(), 1);
    assert_eq!(
        lint("INSERT OR IGNORE INTO blobs (sha256) VALUES ($1)").len(),
        1
    );
    assert_eq!(lint("UPDATE messages SET moved = 1 WHERE id = $1").len(), 1);
    assert_eq!(lint("SELECT s.is_latest = 0 FROM submissions s").len(), 1);
    assert_eq!(lint("SELECT id FROM outbox WHERE id = $2").len(), 1);
}

/// Each version of `migrations/` has its PostgreSQL twin of the same name, and no other.
#[test]
fn every_migration_has_its_postgresql_twin() {
    let names = |dir: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        v.sort();
        v
    };
    let sqlite = names(&root().join("migrations"));
    assert!(sqlite.len() >= 8, "{sqlite:?}");
    assert_eq!(names(&root().join("migrations/postgres")), sqlite);
}

// ---------------------------------------------------------------------------------------------
// On a real PostgreSQL.

/// A fresh database on `SHENBAO_TEST_POSTGRES`'s server, migrated with `migrations/postgres/`,
/// dropped again by [`Fresh::drop_db`]; `None` (after saying so) without the variable.
struct Fresh {
    admin: String,
    name: String,
    conn: sqlx::PgConnection,
}

async fn fresh(what: &str) -> Option<Fresh> {
    let Ok(admin) = std::env::var("SHENBAO_TEST_POSTGRES") else {
        eprintln!(
            "SHENBAO_TEST_POSTGRES is not set: {what} skipped (scripts/test.sh starts scripts/pgstack.sh and sets it)"
        );
        return None;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // Unique per test of this process too (they run in parallel).
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("shenbao_stmts_{}_{nanos}_{n}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to SHENBAO_TEST_POSTGRES");
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create database");
    conn.close().await.expect("close");
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .expect("connect to the new database");
    sqlx::migrate::Migrator::new(root().join("migrations/postgres"))
        .await
        .expect("read migrations/postgres")
        .run(&mut conn)
        .await
        .expect("migrations/postgres apply on PostgreSQL");
    Some(Fresh { admin, name, conn })
}

impl Fresh {
    async fn drop_db(self) {
        let _ = self.conn.close().await;
        let mut admin = sqlx::PgConnection::connect(&self.admin)
            .await
            .expect("connect");
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {}",
                self.name
            )))
            .await
            .expect("drop database");
    }
}

/// The result column types the store can read: `bool`, `i64`, `f64`, `String`, `Vec<u8>`.
const READABLE: &[&str] = &["BOOL", "INT8", "FLOAT8", "TEXT", "BYTEA"];

/// Every portable statement prepares on PostgreSQL against the PostgreSQL schema, and its
/// columns have types the store reads (BIGINT, not INTEGER or NUMERIC).
#[tokio::test]
async fn every_store_statement_prepares_on_postgresql() {
    let Some(mut db) = fresh("preparing the store's statements on PostgreSQL").await else {
        return;
    };
    let found = store_statements();
    let mut prepared = 0;
    let mut failures = Vec::new();
    for f in found.iter().filter(|f| !f.sqlite_only) {
        let sql = sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(f.sql.clone()));
        match (&mut db.conn).prepare(sql).await {
            Ok(st) => {
                prepared += 1;
                for col in st.columns() {
                    let ty = col.type_info().name().to_string();
                    if !READABLE.contains(&ty.as_str()) {
                        failures.push(format!(
                            "{}:{}: column {} is {ty}, which the store does not read\n    {}",
                            f.file,
                            f.line,
                            col.name(),
                            f.sql
                        ));
                    }
                }
            }
            Err(e) => {
                let text = format!("{}:{}: {e}\n    {}", f.file, f.line, f.sql);
                failures.push(text);
            }
        }
    }
    db.drop_db().await;
    assert!(
        failures.is_empty(),
        "{} of the store's statements fail on PostgreSQL:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(prepared >= 100, "only {prepared} statements prepared");
    eprintln!("{prepared} statements of src/store prepared on PostgreSQL");
}

/// A column as both schemas describe it: name, kind (`int`, `bool`, `real`, `text`, `blob`),
/// NOT NULL.
type Columns = BTreeMap<String, Vec<(String, String, bool)>>;

/// The SQLite schema of a fresh store and the PostgreSQL schema of `migrations/postgres/` have
/// the same tables, the same columns in the same order, of matching types and nullability,
/// and the same named indexes. A flag (BOOLEAN in PostgreSQL) is INTEGER in SQLite.
#[tokio::test]
async fn the_sqlite_and_postgresql_schemas_match() {
    let Some(mut db) = fresh("comparing the SQLite and PostgreSQL schemas").await else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("shenbao-pg-schema-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = format!("sqlite://{}", dir.join("shenbao.db").display());
    // The store creates and migrates the database; its schema is read through a pool of the
    // test's own (sqlite_master and pragma_table_info are SQLite's).
    drop(
        shenbao::store::Store::open(&url, &dir)
            .await
            .expect("open a fresh SQLite store"),
    );
    let sqlite_pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("open the SQLite database");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&sqlite_pool)
    .await
    .expect("tables");
    let mut sqlite: Columns = BTreeMap::new();
    for t in &tables {
        let rows = sqlx::query(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid",
        )
        .bind(t)
        .fetch_all(&sqlite_pool)
        .await
        .expect("columns");
        let cols = rows
            .iter()
            .map(|r| {
                let ty: String = r.get(1);
                let kind = match ty.to_uppercase().as_str() {
                    "INTEGER" => "int",
                    "REAL" => "real",
                    "BLOB" => "blob",
                    _ => "text",
                };
                // A primary key is NOT NULL in PostgreSQL whatever it says.
                (
                    r.get::<String, _>(0),
                    kind.to_string(),
                    r.get::<i64, _>(2) == 1 || r.get::<i64, _>(3) > 0,
                )
            })
            .collect();
        sqlite.insert(t.clone(), cols);
    }
    let rows = sqlx::query(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name != '_sqlx_migrations' ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut db.conn)
    .await
    .expect("information_schema");
    let mut postgres: Columns = BTreeMap::new();
    let mut flags = Vec::new();
    for r in &rows {
        let (table, col, ty, nullable): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let kind = match ty.as_str() {
            "bigint" => "int",
            "boolean" => {
                flags.push(format!("{table}.{col}"));
                "int"
            }
            "double precision" => "real",
            "bytea" => "blob",
            "text" => "text",
            other => panic!(
                "{table}.{col} is {other}: the store reads BIGINT, BOOLEAN, DOUBLE PRECISION, TEXT, BYTEA"
            ),
        };
        postgres
            .entry(table)
            .or_default()
            .push((col, kind.to_string(), nullable == "NO"));
    }
    let index_names_sqlite: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
    )
    .fetch_all(&sqlite_pool)
    .await
    .expect("sqlite indexes");
    let index_names_pg: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key' ORDER BY indexname",
    )
    .fetch_all(&mut db.conn)
    .await
    .expect("postgres indexes");
    db.drop_db().await;
    sqlite_pool.close().await;
    let _ = std::fs::remove_dir_all(&dir);

    assert!(sqlite.len() >= 10, "{:?}", sqlite.keys());
    assert_eq!(
        sqlite.keys().collect::<Vec<_>>(),
        postgres.keys().collect::<Vec<_>>(),
        "tables"
    );
    for (table, cols) in &sqlite {
        assert_eq!(
            cols, &postgres[table],
            "columns of {table} (name, kind, NOT NULL): SQLite, then PostgreSQL"
        );
    }
    flags.sort();
    assert_eq!(
        flags,
        [
            "daemon_state.ok",
            "messages.moved",
            "messages.needs_staff",
            "reviews.funded",
            "reviews.is_current",
            "submissions.is_latest",
            "submissions.late",
            "submissions.sender_changed",
        ],
        "the BOOLEAN columns"
    );
    assert_eq!(index_names_sqlite, index_names_pg, "indexes");
}
