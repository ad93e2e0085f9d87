//! Issue 17, a newcomer's pass over the CLI, through the real binary and with no node:
//! hints that name real commands, one way to name an app in every verb, help texts,
//! other tools' words, `--json` shapes, pipes, `init` at a terminal.
//!
//! Run with `cargo test --test integration cli::`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A temp folder with a home and a state file; commands run in `cwd` (default: root).
struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        let dir = tempfile::Builder::new()
            .prefix("skiff-cli.")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        Cli { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn state(&self) -> PathBuf {
        self.root().join("cluster.toml")
    }

    /// `skiff ARGS` in `cwd`, state through `SKIFF_STATE` (as a user sets it).
    fn run_in(&self, cwd: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_skiff"))
            .env("HOME", self.root().join("home"))
            .env("NO_COLOR", "1")
            .env("SKIFF_STATE", self.state())
            .env_remove("XDG_CONFIG_HOME")
            .current_dir(cwd)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("skiff runs")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_in(self.root(), args)
    }

    /// A cluster with node `web1` (nothing listens at its address, so a verb that got
    /// as far as the node exits 3) and the app `blog` at `blog.test`, and the app's
    /// folder `blogdir/`.
    fn with_deployed_blog(&self) -> PathBuf {
        std::fs::write(
            self.state(),
            "schema = 1\ndefault_node = \"web1\"\n\n[nodes.web1]\naddress = \"127.0.0.1\"\n\
             user = \"root\"\nport = 1\nprovider = \"ssh\"\n\n[apps.\"blog.test\"]\n\
             name = \"blog\"\nnodes = [\"web1\"]\n",
        )
        .unwrap();
        let app = self.root().join("blogdir");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(
            app.join("app.toml"),
            "name = \"blog\"\nruntime = \"static\"\nhostnames = [\"blog.test\"]\n",
        )
        .unwrap();
        app
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The verbs that act on a deployed app, each with the arguments it needs besides the
/// app (appended after the app when one is given).
const APP_VERBS: &[(&str, &[&str])] = &[
    ("rollback", &[]),
    ("versions", &[]),
    ("history", &[]),
    ("clean", &[]),
    ("status", &[]),
    ("backup", &[]),
    ("shell", &[]),
    ("logs", &[]),
    ("config", &["list"]),
    ("run", &["--", "true"]),
    ("activate", &["3"]),
];

#[test]
fn secrets_hints_name_skiff_config_as_it_parses() {
    let cli = Cli::new();
    let out = cli.run(&["init", "blog", "--runtime", "static"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let toml = std::fs::read_to_string(cli.root().join("blog/app.toml")).unwrap();
    assert!(toml.contains("`skiff config set NAME=VALUE`"), "{toml}");
    assert!(
        toml.contains("`skiff config blog set NAME=VALUE`"),
        "{toml}"
    );
    // and that command reaches the app (nothing deployed: the resolver says so)
    let out = cli.run_in(&cli.root().join("blog"), &["config", "set", "A=1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not deployed") && stderr(&out).contains("skiff update"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn setup_node_without_a_node_hints_the_positional_name() {
    let cli = Cli::new();
    let out = cli.run(&["setup-node"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`skiff setup-node NAME`"), "{err}");
    assert!(!err.contains("--node"), "{err}");
}

#[test]
fn empty_list_nodes_hints_create_node_commands_that_work() {
    let cli = Cli::new();
    let out = cli.run(&["list-nodes"]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("`skiff create-node NAME --host ADDRESS`"),
        "{err}"
    );
    assert!(
        err.contains("`skiff create-node NAME --provider local`"),
        "{err}"
    );
}

#[test]
fn a_folder_without_app_toml_is_a_usage_error_in_every_app_verb() {
    let cli = Cli::new();
    let empty = cli.root().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let mut runs: Vec<Vec<&str>> = vec![
        vec!["update"],
        vec!["serve"],
        vec!["diff"],
        vec!["update", "--etc-hosts"],
        vec!["destroy-app", "."],
        vec!["restore", "x.skiff-backup"],
    ];
    for (verb, rest) in APP_VERBS {
        if *verb == "status" {
            runs.push(vec!["status", "."]);
            continue;
        }
        let mut args = vec![*verb];
        args.extend_from_slice(rest);
        runs.push(args);
    }
    for args in runs {
        let out = cli.run_in(&empty, &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("app.toml"), "{args:?}: {err}");
        assert!(err.contains("skiff init"), "{args:?}: {err}");
        assert!(!err.contains("os error"), "{args:?}: {err}");
    }
}

#[test]
fn every_app_verb_takes_a_folder_a_name_or_a_host() {
    let cli = Cli::new();
    let app = cli.with_deployed_blog();
    let folder = app.display().to_string();
    for (verb, rest) in APP_VERBS {
        // found (exit 3: the node does not answer, so the app was resolved)
        let mut given: Vec<Vec<&str>> = vec![vec!["blog"], vec!["blog.test"], vec![&folder]];
        if *verb != "status" {
            given.push(vec![]); // the current folder
        }
        for app_words in given {
            let mut args = vec![*verb];
            args.extend(app_words.iter().copied());
            args.extend_from_slice(rest);
            let out = cli.run_in(&app, &args);
            let err = stderr(&out);
            let code = out.status.code();
            // status reports unreachable nodes in its table and exits 1; shell, with
            // no terminal here, refuses naming the app's `skiff run` instead
            let said = format!("{}{err}", stdout(&out));
            let reached = match *verb {
                "status" => code == Some(1) && said.contains("127.0.0.1"),
                "shell" => code == Some(2) && said.contains("`skiff run blog.test -- "),
                _ => code == Some(3) && said.contains("127.0.0.1"),
            };
            assert!(reached, "{args:?}: {code:?} {said}");
        }
        // not found: exit 2, naming the apps and the closest
        let mut args = vec![*verb, "blgo"];
        args.extend_from_slice(rest);
        let out = cli.run_in(cli.root(), &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("did you mean `blog`?"), "{args:?}: {err}");
        assert!(err.contains("blog (blog.test)"), "{args:?}: {err}");
    }
    // the case
    let out = cli.run(&["rollback", "myapp"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("hint: deployed apps: blog (blog.test)"),
        "{err}"
    );
}

#[test]
fn each_flag_name_means_one_thing() {
    let cli = Cli::new();
    let help = |verb: &str| stdout(&cli.run(&[verb, "--help"]));
    let serve = help("serve");
    assert!(serve.contains("--listen <ADDR>"), "{serve}");
    assert!(!serve.contains("--host"), "{serve}");
    let update = help("update");
    assert!(update.contains("--hostname <HOST>"), "{update}");
    assert!(!update.contains("--host "), "{update}");
    let create = help("create-node");
    assert!(create.contains("--host <HOST>"), "{create}");
}

#[test]
fn other_tools_words_point_at_skiff_verbs() {
    let cli = Cli::new();
    let out = cli.run(&["deploy", "--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Deploy a new version"));
    let top = stdout(&cli.run(&["--help"]));
    assert!(top.contains("[alias: deploy]"), "{top}");
    for (word, verb) in [
        ("push", "update"),
        ("exec", "run"),
        ("ssh", "shell"),
        ("ps", "status"),
        ("env", "config"),
        ("releases", "versions"),
        ("undo", "rollback"),
        ("revert", "rollback"),
    ] {
        let out = cli.run(&[word]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{word}: {err}");
        assert!(err.contains(&format!("`skiff {verb}`")), "{word}: {err}");
    }
    let out = cli.run(&["version"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`skiff --version`") && err.contains("`skiff versions [APP]`"),
        "{err}"
    );
}

#[test]
fn help_lists_own_options_then_global_ones_with_examples() {
    let cli = Cli::new();
    for flag in ["-h", "--help"] {
        let text = stdout(&cli.run(&["update", flag]));
        let global = text.find("Global options:").expect(&text);
        let own = text.find("--node").expect(&text);
        let state = text.find("--state").expect(&text);
        assert!(own < global && global < state, "{flag}: {text}");
        assert!(text.contains("Examples:\n  skiff update"), "{flag}: {text}");
    }
    let top = stdout(&cli.run(&["--help"]));
    assert!(top.contains("Common workflows:"), "{top}");
}

#[test]
fn skiff_state_from_the_environment_is_not_shown_as_required() {
    let cli = Cli::new();
    // a missing argument: clap's usage line names the arguments that were given, and
    // an `env` fallback counted as given
    for (args, usage) in [
        (&["create-node"][..], "Usage: skiff create-node <NAME>"),
        (&["default-node"], "Usage: skiff default-node <NAME>"),
    ] {
        let out = cli.run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(usage), "{err}");
        assert!(!err.contains("--state <FILE>"), "{err}");
    }
}

#[test]
fn printing_verbs_stop_quietly_at_a_closed_pipe() {
    let cli = Cli::new();
    for args in [
        &["man"][..],
        &["man", "update"],
        &["completions", "bash"],
        &["--help"],
        &["update", "--help"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .env("SKIFF_STATE", cli.state())
            .args(args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
    // through a shell, as the issue ran it
    let out = Command::new("bash")
        .args([
            "-c",
            &format!(
                "set -o pipefail; {} man | head -1",
                env!("CARGO_BIN_EXE_skiff")
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn man_prints_every_page_the_main_page_refers_to() {
    let cli = Cli::new();
    let main = stdout(&cli.run(&["man"])).replace("\\-", "-");
    let mut seen = 0;
    for word in main.split(|c: char| c.is_whitespace() || c == '\\') {
        let Some(verb) = word
            .strip_prefix("skiff-")
            .and_then(|w| w.strip_suffix("(1)"))
        else {
            continue;
        };
        if verb == "help" {
            continue;
        }
        let out = cli.run(&["man", verb]);
        assert!(out.status.success(), "{verb}: {}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!(".TH skiff-{verb} 1")),
            "{verb}: {}",
            stdout(&out)
        );
        seen += 1;
    }
    assert!(seen > 20, "only {seen} pages referred to:\n{main}");
    let out = cli.run(&["man", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("verbs with a page: init, serve"));
}

#[test]
fn init_defaults_to_the_current_folder() {
    let cli = Cli::new();
    let here = cli.root().join("my-site");
    std::fs::create_dir(&here).unwrap();
    let out = cli.run_in(&here, &["init", "--runtime", "static"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let toml = std::fs::read_to_string(here.join("app.toml")).unwrap();
    assert!(toml.contains("name = \"my-site\""), "{toml}");
    assert!(
        stderr(&out).contains("try `skiff serve`"),
        "{}",
        stderr(&out)
    );
    // a folder name that is no app name: refused, with a valid one suggested
    let bad = cli.root().join("My Site");
    std::fs::create_dir(&bad).unwrap();
    let out = cli.run_in(&bad, &["init", "--runtime", "static"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--name my-site"), "{}", stderr(&out));
}

#[test]
fn init_force_to_another_runtime_removes_only_untouched_scaffold_files() {
    let cli = Cli::new();
    let app = cli.root().join("blog");
    let init = |runtime: &str| {
        let out = cli.run(&["--json", "init", "blog", "--runtime", runtime, "--force"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (doc, stderr(&out))
    };
    init("static");
    // static -> python: static/index.html would answer / before the app; it goes
    let (doc, _) = init("python");
    assert_eq!(doc["removed"], serde_json::json!(["static/index.html"]));
    assert!(!app.join("static/index.html").exists());
    assert!(app.join("static/style.css").exists());
    // python -> php after an edit of app.py: kept, and said
    std::fs::write(app.join("app.py"), "# mine\n").unwrap();
    let (doc, err) = init("php");
    assert_eq!(doc["removed"], serde_json::json!([]));
    assert_eq!(doc["kept"], serde_json::json!(["app.py"]));
    assert!(err.contains("kept `blog/app.py`"), "{err}");
    assert_eq!(
        std::fs::read_to_string(app.join("app.py")).unwrap(),
        "# mine\n"
    );
    // php -> static: public/index.php and its folder go
    let (doc, _) = init("static");
    assert_eq!(doc["removed"], serde_json::json!(["public/index.php"]));
    assert!(!app.join("public").exists());
}

/// Every top-level JSON value a verb prints is an object with a `type` (README, "JSON
/// output"), errors included.
#[test]
fn every_json_value_is_an_object_with_a_type() {
    let cli = Cli::new();
    let app = cli.with_deployed_blog();
    let runs: Vec<Vec<&str>> = vec![
        vec!["init", "new-app", "--runtime", "static"],
        vec!["list-nodes"],
        vec!["default-node", "web1"],
        vec!["default-node", "nope"],
        vec!["completions", "bash"],
        vec!["man"],
        vec!["man", "update"],
        vec!["versions"],
        vec!["versions", "nope"],
        vec!["status"],
        vec!["config", "list"],
        vec!["update", "/nonexistent"],
        vec!["update", "--etc-hosts"],
        vec!["setup-node", "nope"],
        vec!["destroy-node", "nope"],
        vec!["diff", "/nonexistent"],
        vec!["push"],
    ];
    for args in runs {
        let mut argv = vec!["--json"];
        argv.extend(args.iter().copied());
        let out = cli.run_in(&app, &argv);
        let text = stdout(&out);
        assert!(
            !text.trim().is_empty(),
            "{args:?} printed no JSON: {}",
            stderr(&out)
        );
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {line}"));
            assert!(
                value.is_object() && value["type"].is_string(),
                "{args:?}: no object with a type: {line}"
            );
        }
    }
}

/// Ctrl-C at `skiff init`'s runtime question (under `script`, which gives skiff a
/// pseudo-terminal and types what this test pipes in) exits 130, writes nothing and
/// never leaves the cursor hidden. Typing the answer: `init::init_asks_for_the_runtime_on_a_terminal`.
#[test]
fn init_interrupted_at_a_terminal_leaves_the_cursor_shown() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no `script` (util-linux) to run skiff under a terminal");
        return;
    }
    let cli = Cli::new();
    let dir = cli.root().join("interrupted");
    std::fs::create_dir(&dir).unwrap();
    let command = format!(
        "cd '{}' && (sleep 1; printf '\\003'; sleep 3) | script -qec '{} init' /dev/null",
        dir.display(),
        env!("CARGO_BIN_EXE_skiff")
    );
    let out = Command::new("bash")
        .args(["-c", &command])
        .env("HOME", cli.root().join("home"))
        .env("SKIFF_STATE", cli.state())
        .output()
        .unwrap();
    let shown = stdout(&out);
    assert!(shown.contains("Runtime of the new app"), "{shown:?}");
    assert_eq!(out.status.code(), Some(130), "{shown:?}");
    assert!(!dir.join("app.toml").exists());
    if let Some(hidden) = shown.rfind("\x1b[?25l") {
        assert!(
            shown[hidden..].contains("\x1b[?25h"),
            "the cursor was left hidden: {shown:?}"
        );
    }
}
