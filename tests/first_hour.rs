//! The first hour of a user who knows ccache or sccache: the sizes they type, a cache directory that
//! cannot be used, `--show-config` that says where it looked and what it ignored, `-M`, cleanup and
//! `--evict-older-than`, sccache's `--start-server`/`--stop-server`, the reasons table of
//! `--show-stats`, configure's version probes, `--help` and `--version`.
mod common;
use common::*;

fn show_config(env: &Env) -> serde_json::Value {
    serde_json::from_slice(&env.ok(&["--show-config", "--json"]).stdout).expect("config JSON")
}

#[test]
fn sizes_ccache_and_sccache_users_type() {
    for (given, bytes) in [
        ("10GB", 10_000_000_000u64),
        ("500MB", 500_000_000),
        ("10g", 10 << 30),
        ("10G", 10 << 30),
        ("2GiB", 2 << 30),
    ] {
        let mut env = Env::new("sizes");
        env.set("CACHEPOT_CACHE_SIZE", given);
        assert_eq!(show_config(&env)["settings"]["cache_size"]["value"], bytes, "{given}");
    }
    // 0: no limit, as in ccache.
    let mut env = Env::new("size0");
    env.set("CACHEPOT_CACHE_SIZE", "0");
    assert_eq!(show_config(&env)["settings"]["cache_size"]["value"], 0);
    assert!(env.stats()["max_bytes"].is_null());
    assert!(s(&env.ok(&["--show-stats"]).stdout).contains("(no limit)"));
    // A bare 100 is 100 bytes: refused, with the likely meaning. A compile still works, says
    // nothing on the compiler's stderr (tests/false_hits.rs), stores nothing, and is counted.
    let mut env = Env::new("size100");
    env.set("XDG_RUNTIME_DIR", env.dir.join("run").display().to_string());
    env.set("CACHEPOT_CACHE_SIZE", "100");
    let out = env.cachepot(&["--show-stats"]);
    assert!(!out.status.success());
    let err = s(&out.stderr);
    assert!(
        err.contains("too small") && err.contains("did you mean 100M or 100G"),
        "{err}"
    );
    env.dir.write("a.c", "int f(void) { return 1; }\n");
    let out = env.ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
    assert_eq!(s(&out.stderr), "");
    assert!(env.dir.join("a.o").exists());
    env.extra_env.retain(|(k, _)| k != "CACHEPOT_CACHE_SIZE");
    let stats = env.stats();
    assert_eq!(
        (stats["config_error"].as_u64(), stats["entries"].as_u64()),
        (Some(1), Some(0)),
        "{stats}"
    );
}

#[test]
fn unusable_cache_dir_is_named_in_show_stats() {
    let mut env = Env::new("unusable");
    let blocker = env.dir.write("blocker", "a file where a directory should be");
    env.set("CACHEPOT_DIR", blocker.join("cache").to_str().unwrap());
    env.dir.write("a.c", "int f(void) { return 1; }\n");
    env.ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
    let text = s(&env.ok(&["--show-stats"]).stdout);
    assert!(
        text.contains("CACHE DIRECTORY NOT USABLE") && text.contains("is not a directory") && text.contains("since "),
        "{text}"
    );
    let problem = &env.stats()["cache_dir_problem"];
    assert!(
        problem["reason"].as_str().unwrap().contains(blocker.to_str().unwrap()),
        "{problem}"
    );
    assert!(problem["since"].as_u64().unwrap() > 1_600_000_000, "{problem}");
    // A usable one says nothing.
    let env = Env::new("usable");
    assert!(env.stats()["cache_dir_problem"].is_null());
}

#[test]
fn show_config_names_the_searched_file_warns_on_unknown_variables_and_types_json() {
    let mut env = Env::new("showcfg");
    env.set("CACHEPOT_CACHESIZE", "5G");
    let out = env.ok(&["--show-config"]);
    let text = s(&out.stdout);
    let searched = env.dir.join("xdg-config/cachepot/config.toml");
    assert!(
        text.contains(&format!("config file: (none; looked for {})", searched.display())),
        "{text}"
    );
    let err = s(&out.stderr);
    assert!(
        err.contains("CACHEPOT_CACHESIZE is not a cachepot setting")
            && err.contains("did you mean CACHEPOT_CACHE_SIZE?"),
        "{err}"
    );
    let json = show_config(&env);
    assert_eq!(json["config_file"], serde_json::Value::Null);
    assert_eq!(json["config_file_searched"], searched.to_str().unwrap());
    let set = &json["settings"];
    assert_eq!(set["direct"]["value"], true);
    assert_eq!(set["cache_size"]["value"], 10u64 << 30);
    assert!(set["jobs"]["value"].is_u64());
    assert!(set["log"]["value"].is_null());
}

#[test]
fn max_size_writes_the_config_file() {
    let env = Env::new("maxsize");
    let conf = env.dir.join("xdg-config/cachepot/config.toml");
    let out = s(&env.ok(&["-M", "20G"]).stdout);
    assert!(
        out.contains("size limit set to 20.0 GiB") && out.contains(conf.to_str().unwrap()),
        "{out}"
    );
    std::fs::write(&conf, "# mine\ndirect = true\n[cache.disk]\nsize = \"20G\"\n").unwrap();
    env.ok(&["--max-size", "500MB"]);
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "# mine\ndirect = true\n[cache.disk]\nsize = \"500MB\"\n"
    );
    let json = show_config(&env);
    assert_eq!(json["settings"]["cache_size"]["value"], 500_000_000u64);
    assert_eq!(
        json["settings"]["cache_size"]["source"],
        format!("file {}", conf.display())
    );
    let out = env.cachepot(&["-M", "lots"]);
    assert!(!out.status.success());
    assert!(
        s(&out.stderr).contains("--max-size lots: not a size"),
        "{}",
        s(&out.stderr)
    );
    assert!(std::fs::read_to_string(&conf).unwrap().contains("500MB"));
}

#[test]
fn cleanup_and_evict_older_than() {
    let mut env = Env::new("cleanup");
    for i in 0..3 {
        env.dir
            .write(&format!("f{i}.c"), format!("int f{i}(void) {{ return {i}; }}\n"));
        env.ok(&["gcc", "-c", &format!("f{i}.c")]);
    }
    let entries = env.stat("entries");
    assert!(entries >= 3, "{entries}");
    // Nothing is older than a day: nothing goes.
    let out = s(&env.ok(&["--evict-older-than", "1d"]).stdout);
    assert!(out.starts_with("removed 0 entries"), "{out}");
    assert_eq!(env.stat("entries"), entries);
    // Everything is older than 0 seconds.
    env.ok(&["--evict-older-than", "0s"]);
    assert_eq!(env.stat("entries"), 0);
    let out = env.cachepot(&["--evict-older-than", "30"]);
    assert!(!out.status.success());
    assert!(s(&out.stderr).contains("accepted: a number with a unit s, m, h, d or w"));
    // A trim to a limit lowered after the entries were written.
    for i in 0..3 {
        env.ok(&["gcc", "-c", &format!("f{i}.c")]);
    }
    assert!(env.stat("entries") >= 3);
    env.set("CACHEPOT_CACHE_SIZE", "64K");
    env.ok(&["--cleanup"]);
    assert!(env.stats()["bytes"].as_u64().unwrap() <= 64 << 10);
    assert!(env.stat("entries") < entries);
}

#[test]
fn start_server_and_stop_server_drive_the_coordinator() {
    let mut env = Env::new("server-alias");
    env.set("XDG_RUNTIME_DIR", env.dir.join("run").to_str().unwrap());
    env.set("CACHEPOT_IDLE_TIMEOUT", "120");
    env.ok(&["--start-server"]);
    assert_eq!(env.stats()["coordinator"]["running"], true);
    let out = s(&env.ok(&["--stop-server"]).stdout);
    assert!(out.contains("coordinator stopped"), "{out}");
    assert_eq!(env.stats()["coordinator"]["running"], false);
}

#[test]
fn configure_probes_are_informational_and_reasons_are_a_table() {
    let env = Env::new("probes");
    for probe in ["-V", "-qversion", "-version", "-?", "--version"] {
        // gcc rejects some of these; the exit status is the compiler's, whatever it is.
        let _ = env.cachepot(&["gcc", probe]);
    }
    assert_eq!(env.not_cacheable("informational"), 5);
    assert_eq!(env.not_cacheable("unsupported_option"), 0);
    env.dir.write("a.c", "int main(void) { return 0; }\n");
    env.ok(&["gcc", "a.c", "-o", "a"]);
    let text = s(&env.ok(&["--show-stats"]).stdout);
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("why not cacheable"))
        .skip(1)
        .take_while(|l| l.starts_with("  not cacheable: "))
        .collect();
    // Most frequent first.
    assert_eq!(table.len(), 2, "{text}");
    assert!(
        table[0].contains("informational call") && table[0].ends_with(" 5"),
        "{text}"
    );
    assert!(table[1].contains("linking"), "{text}");
}

#[test]
fn help_is_short_and_points_at_the_man_page_and_version_names_features() {
    let env = Env::new("help");
    let help = s(&env.ok(&["--help"]).stdout);
    assert!(help.contains("man cachepot"), "{help}");
    assert!(help.lines().count() < 60, "{help}");
    let version = s(&env.ok(&["--version"]).stdout);
    assert!(
        version.starts_with(&format!("cachepot {}\n", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let features = version.lines().nth(1).unwrap();
    for f in ["gcc", "clang", "rustc", "redis", "s3", "coordinator"] {
        assert!(features.split(' ').any(|w| w == f), "{version}");
    }
}

/// `cachepot --show-stats | head -1` and a pager quit early: the reader is gone before cachepot
/// writes. It ends as any Unix tool does (SIGPIPE), never with a panic on stderr.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let env = Env::new("closed-pipe");
    for args in [
        &["--show-stats"][..],
        &["--show-stats", "--json"],
        &["--show-config"],
        &["--help"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = env
            .cmd(cachepot_bin())
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = s(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            out.status.success() || out.status.signal() == Some(13),
            "{args:?}: {:?} {err}",
            out.status
        );
    }
}
