//! `scripts/install.sh --root DIR`: installs shenbao into a temporary root the way `sudo
//! scripts/install.sh` installs it on a server, then checks the tree (owners and modes), that
//! the installed config passes `check-config` with its passwords read as systemd credentials,
//! that a second install keeps an edited config, and the unit with `systemd-analyze verify`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn install(root: &Path) -> String {
    let out = Command::new("bash")
        .arg(repo().join("scripts/install.sh"))
        .args(["--root".as_ref(), root.as_os_str()])
        .args(["--binary", env!("CARGO_BIN_EXE_shenbao")])
        .output()
        .expect("run scripts/install.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "install.sh failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The uid (or gid) of `name` in the root's own passwd (or group) file.
fn id_in(root: &Path, file: &str, name: &str) -> u32 {
    let text = std::fs::read_to_string(root.join("etc").join(file)).expect("passwd/group");
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name)).then(|| f[2].parse().expect("numeric id"))
        })
        .unwrap_or_else(|| panic!("{name} not in {file}:\n{text}"))
}

#[test]
fn install_into_a_temporary_root() {
    let root = std::env::temp_dir().join(format!("shenbao-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let said = install(&root);
    for words in [
        "systemctl daemon-reload",
        "systemctl enable --now shenbao",
        "/etc/shenbao/credentials/imap",
        "check-config --probe",
    ] {
        assert!(
            said.contains(words),
            "install.sh does not say {words}:\n{said}"
        );
    }

    // Owners are checked when the test runs as root (as scripts/test.sh does); otherwise the
    // script can only record the chown it would run.
    let probe = root.join(".whoami");
    std::fs::write(&probe, b"").expect("probe");
    let as_root = std::fs::metadata(&probe).expect("probe").uid() == 0;
    std::fs::remove_file(&probe).expect("probe");
    let uid = id_in(&root, "passwd", "shenbao");
    let gid = id_in(&root, "group", "shenbao");
    assert_ne!(uid, 0, "the service user is not root");
    let service = (uid, gid);
    let root_group = (0, gid);
    let root_only = (0, 0);
    for (path, mode, owner) in [
        ("usr/local/bin/shenbao", 0o755, root_only),
        ("usr/local/share/doc/shenbao/README.md", 0o644, root_only),
        ("etc/shenbao", 0o750, root_group),
        ("etc/shenbao/shenbao.toml", 0o640, root_group),
        ("etc/shenbao/roster.csv", 0o640, root_group),
        ("etc/shenbao/templates", 0o750, root_group),
        ("etc/shenbao/templates/ack.txt.j2", 0o640, root_group),
        ("etc/shenbao/credentials", 0o700, root_only),
        ("var/lib/shenbao", 0o700, service),
        ("etc/systemd/system/shenbao.service", 0o644, root_only),
        ("etc/sysusers.d/shenbao.conf", 0o644, root_only),
    ] {
        let meta = std::fs::metadata(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o777, mode, "mode of {path}");
        if as_root {
            assert_eq!((meta.uid(), meta.gid()), owner, "owner of {path}");
        }
    }
    // Nothing under /etc/shenbao or /var/lib/shenbao is readable by others.
    let mut stack = vec![root.join("etc/shenbao"), root.join("var/lib/shenbao")];
    while let Some(p) = stack.pop() {
        let meta = std::fs::metadata(&p).expect("metadata");
        assert_eq!(
            meta.permissions().mode() & 0o007,
            0,
            "{} is open to others",
            p.display()
        );
        if meta.is_dir() {
            stack.extend(
                std::fs::read_dir(&p)
                    .expect("dir")
                    .map(|e| e.expect("entry").path()),
            );
        }
    }

    // The installed config is the example with passwords as systemd credentials and data in
    // the state directory; it passes check-config once the passwords are in place.
    let cfg_path = root.join("etc/shenbao/shenbao.toml");
    let cfg = std::fs::read_to_string(&cfg_path).expect("config");
    for line in [
        "password_credential = \"imap\"",
        "password_credential = \"smtp\"",
        "data_dir = \"/var/lib/shenbao\"",
        "templates_dir = \"templates\"",
    ] {
        assert!(
            cfg.lines().any(|l| l == line),
            "installed config lacks {line}"
        );
    }
    assert!(
        !cfg.lines().any(|l| l.starts_with("password_env")),
        "no password from the environment"
    );
    let check = |expect: &str| {
        let out = Command::new(root.join("usr/local/bin/shenbao"))
            .arg("--config")
            .arg(&cfg_path)
            .arg("check-config")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("STATE_DIRECTORY")
            .output()
            .expect("check-config");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "check-config failed:\n{text}");
        assert!(
            text.contains(expect),
            "check-config does not say {expect}:\n{text}"
        );
        text
    };
    // Without the password file, check-config names where it goes.
    check("systemd 凭据 imap");
    for name in ["imap", "smtp"] {
        let p = root.join("etc/shenbao/credentials").join(name);
        std::fs::write(&p, "pw\n").expect("credential");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let text = check("没有问题");
    assert!(
        !text.contains("目前没有设置"),
        "the credential was not read:\n{text}"
    );

    // Installing again keeps what staff edited.
    std::fs::write(&cfg_path, format!("{cfg}\n# 已按本校修改\n")).expect("edit");
    let said = install(&root);
    assert!(
        said.contains("已存在，未覆盖：/etc/shenbao/shenbao.toml"),
        "{said}"
    );
    assert!(
        std::fs::read_to_string(&cfg_path)
            .expect("config")
            .ends_with("# 已按本校修改\n"),
        "the second install overwrote the config"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/shenbao/credentials/imap")).expect("cred"),
        "pw\n"
    );

    verify_unit(&root);
    let _ = std::fs::remove_dir_all(&root);
}

/// `systemd-analyze verify` on the installed unit. With `--root` it looks for sysinit.target and
/// the binary inside the temporary root, where no systemd is installed, so the unit is checked
/// on the host with ExecStart pointing at the binary installed in the root. Any warning (an
/// unknown or misspelt option is only a warning) fails the test.
fn verify_unit(root: &Path) {
    let unit =
        std::fs::read_to_string(root.join("etc/systemd/system/shenbao.service")).expect("unit");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/shenbao --config /etc/shenbao/shenbao.toml run")
    );
    let dir = root.join("verify");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let run = |file: &Path| {
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(file)
            .output()
    };
    // Can systemd-analyze work here at all? A trivial unit tells.
    let trivial = dir.join("shenbao-trivial.service");
    std::fs::write(&trivial, "[Service]\nExecStart=/bin/true\n").expect("unit");
    match run(&trivial) {
        Err(e) => {
            eprintln!(
                "注意：没有运行 systemd-analyze verify（{e}）：请安装 systemd 软件包（scripts/test.sh 会自动安装）"
            );
            return;
        }
        Ok(out) if !out.status.success() => {
            eprintln!(
                "注意：systemd-analyze verify 在这个环境中连一个最简单的服务文件都无法检查，跳过服务文件检查：{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        Ok(_) => {}
    }
    let bin = root.join("usr/local/bin/shenbao");
    let checked = dir.join("shenbao.service");
    std::fs::write(
        &checked,
        unit.replace(
            "ExecStart=/usr/local/bin/shenbao",
            &format!("ExecStart={}", bin.display()),
        ),
    )
    .expect("unit");
    let out = run(&checked).expect("systemd-analyze");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );
    // And the check is real: a misspelt option is reported.
    std::fs::write(&checked, unit.replace("ProtectHome=", "ProtectHomes=")).expect("unit");
    let out = run(&checked).expect("systemd-analyze");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ProtectHomes"),
        "systemd-analyze verify did not notice a misspelt option"
    );
}

/// The binary as systemd starts it: `$STATE_DIRECTORY` and `$CREDENTIALS_DIRECTORY` set, no
/// `data_dir` in the config. The database and the archived mail land in the state directory,
/// not next to the config, every file 0600 and directory 0700; the IMAP password is the
/// credential's. Run with a loose umask (022), so the modes are shenbao's own doing.
#[test]
fn as_a_service_data_goes_to_the_state_directory() {
    let root = std::env::temp_dir().join(format!("shenbao-service-env-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let etc = root.join("etc");
    let state = root.join("state");
    let creds = root.join("creds");
    for d in [&state, &creds] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let bin = env!("CARGO_BIN_EXE_shenbao");
    let run = |args: &[&str]| {
        let out = Command::new("sh")
            .arg("-c")
            .arg("umask 022; exec \"$0\" \"$@\"")
            .arg(bin)
            .arg("--config")
            .arg(etc.join("shenbao.toml"))
            .args(args)
            .env("STATE_DIRECTORY", &state)
            .env("CREDENTIALS_DIRECTORY", &creds)
            .output()
            .expect("run shenbao");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "shenbao {args:?}:\n{text}");
        text
    };
    let out = Command::new(bin)
        .args(["init", "--dir"])
        .arg(&etc)
        .output()
        .expect("init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(etc.join("data")).expect("init's data dir");
    let cfg = std::fs::read_to_string(etc.join("shenbao.toml")).expect("config");
    let cfg: String = cfg
        .lines()
        .filter(|l| !l.starts_with("data_dir"))
        .map(|l| match l {
            "password_file = \"secrets/imap.password\"" => {
                "password_credential = \"imap\"\n".into()
            }
            _ => format!("{l}\n"),
        })
        .collect();
    assert!(
        cfg.contains("password_credential"),
        "init's config changed: {cfg}"
    );
    std::fs::write(etc.join("shenbao.toml"), cfg).expect("config");
    std::fs::write(creds.join("imap"), "from-the-credential\n").expect("credential");

    let said = run(&["check-config"]);
    assert!(
        said.contains("没有问题") && !said.contains("目前没有设置"),
        "{said}"
    );
    let sample = repo().join("tests/fixtures/samples/c010/message.eml");
    let said = run(&["ingest", sample.to_str().expect("utf-8 path")]);
    assert!(said.contains("第1版"), "{said}");
    assert!(
        !etc.join("data").exists(),
        "data next to the config: {said}"
    );
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&state.join("shenbao.db")), 0o600);
    let mut files = 0;
    let mut stack = vec![state.join("blobs")];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            assert_eq!(mode(&p), 0o700, "{}", p.display());
            stack.extend(
                std::fs::read_dir(&p)
                    .expect("dir")
                    .map(|e| e.expect("entry").path()),
            );
        } else {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
            files += 1;
        }
    }
    assert!(files >= 1, "the mail and its attachments are archived");
    // The mail's own bytes, where they are now (in a pack, being small).
    let blobs = shenbao::store::blobs::BlobDir::new(state.join("blobs"));
    let raw = std::fs::read(&sample).expect("sample");
    let sha = shenbao::store::blobs::sha256_hex(&raw);
    assert_eq!(blobs.get(&sha).expect("the mail archived"), raw);
    assert!(
        state.join("blobs/packs").is_dir() && !blobs.path_of(&sha).exists(),
        "a small mail goes into a pack"
    );
    let said = run(&["status"]);
    assert!(!said.is_empty());
    let _ = std::fs::remove_dir_all(&root);
}
