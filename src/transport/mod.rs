//! How skiff talks to nodes: argv quoting and the SSH session.
//!
//! Every remote command is an argv turned into one shell line by [`quote`], the single
//! quoting function of the crate, or a script fed on stdin with its arguments quoted the
//! same way. Nothing else builds remote shell text, so there is one place to audit.

pub mod ssh;

use std::path::PathBuf;

pub use ssh::Session;

/// Quotes one argument for a POSIX shell (sh, dash, bash, zsh) so the remote shell sees
/// exactly these bytes as one word.
///
/// This is the one quoting function: every argv that reaches a node goes through it.
/// Words made only of `[A-Za-z0-9,./_:@+-]` stay bare for readable logs; other bytes are
/// single-quoted (a `'` itself becomes `\'`), and the empty string becomes `''`.
pub fn quote(arg: &str) -> String {
    let bytes = shell_quote::Sh::quote_vec(arg);
    // Sh only adds ASCII quotes and backslashes around the input's own bytes.
    String::from_utf8(bytes).expect("quoting UTF-8 text yields UTF-8 text")
}

/// Runs a future on a fresh tokio runtime: how the (synchronous) verbs drive sessions.
///
/// Library functions that talk to nodes are async so several nodes can be driven at
/// once; a verb calls this once at its top. Never call it from inside a runtime.
pub fn block_on<F: std::future::Future>(future: F) -> crate::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| crate::Error::failed(format!("could not start the async runtime: {e}")))?;
    Ok(runtime.block_on(future))
}

/// Quotes each word of `argv` with [`quote`] and joins them with spaces: the command
/// line a remote shell turns back into exactly `argv`.
pub fn command_line(argv: &[&str]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

/// Where a node is and how to log in: what [`Session::connect`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The node's name in cluster.toml (used in messages and errors).
    pub node: String,
    /// Address or DNS name (or a `Host` alias from `~/.ssh/config`).
    pub address: String,
    /// Login user.
    pub user: String,
    /// SSH port.
    pub port: u16,
    /// Private key that overrides `~/.ssh/config` and the agent.
    pub identity: Option<PathBuf>,
}

impl Target {
    /// The target deploys use for a node recorded in cluster.toml: its deploy user once
    /// setup-node recorded one (`deploy_user`), else its login user.
    pub fn for_node(name: &str, node: &crate::cluster::Node) -> Target {
        Target {
            user: node.deploy_login().to_string(),
            ..Target::admin_for_node(name, node)
        }
    }

    /// The admin target of a node (its `user`, root or a sudoer): what setup-node, the
    /// providers and create-node's probe log in as.
    pub fn admin_for_node(name: &str, node: &crate::cluster::Node) -> Target {
        Target {
            node: name.to_string(),
            address: node.address.clone(),
            user: node.user.clone(),
            port: node.port,
            identity: node.identity.clone(),
        }
    }

    /// How `known_hosts` names this host: `addr`, or `[addr]:port` off port 22.
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.address.clone()
        } else {
            format!("[{}]:{}", self.address, self.port)
        }
    }
}

/// What a remote command did: its exit status and everything it printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit status; `None` when it was killed by a signal (or the link dropped).
    pub status: Option<i32>,
    /// Bytes written to stdout.
    pub stdout: Vec<u8>,
    /// Bytes written to stderr.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// stdout as text (lossy), for messages and parsing of text output.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The last lines of stderr (or stdout when stderr is empty), for error messages.
    pub fn tail(&self, lines: usize) -> String {
        let text = if self.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
            &self.stderr
        } else {
            &self.stdout
        };
        let text = String::from_utf8_lossy(text);
        let all: Vec<&str> = text.trim_end().lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Runs `sh -c 'printf "%s\0" LINE'` locally: the words the shell makes of `line`.
    fn words_of(line: &str) -> Vec<String> {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\0' {line}"))
            .output()
            .expect("sh runs");
        assert!(out.status.success(), "sh failed on {line:?}");
        let mut words: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|w| String::from_utf8(w.to_vec()).unwrap())
            .collect();
        words.pop(); // after the last NUL
        words
    }

    const NASTY: &[&str] = &[
        "plain",
        "with space",
        "  leading and trailing  ",
        "it's",
        "\"double\"",
        "$(touch /tmp/skiff-pwned)",
        "`id`",
        "a;b",
        "; rm -rf /",
        "*",
        "/etc/*",
        "line1\nline2",
        "tab\there",
        "back\\slash",
        "$HOME",
        "${HOME}",
        "~",
        "~root",
        "a=b",
        "#comment",
        "!bang",
        "{a,b}",
        "a|b&c>d<e",
        "",
        "ünïcødé ✓ 日本",
        "-n",
        "'",
        "''",
        "\u{7}bell",
    ];

    #[test]
    fn quote_keeps_plain_words_bare() {
        assert_eq!(quote("abc"), "abc");
        assert_eq!(quote("/var/lib/skiff"), "/var/lib/skiff");
        assert_eq!(quote("v1.2-3_x:y@z+w,"), "v1.2-3_x:y@z+w,");
    }

    #[test]
    fn quote_wraps_everything_else() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "a' b'");
        assert_eq!(quote("a=b"), "a'=b'");
        assert!(!quote("$(x)").starts_with('$'));
    }

    #[test]
    fn every_nasty_word_round_trips_through_sh() {
        for word in NASTY {
            assert_eq!(words_of(&quote(word)), vec![word.to_string()], "{word:?}");
        }
    }

    #[test]
    fn command_line_round_trips_as_a_whole() {
        let line = command_line(NASTY);
        let back = words_of(&line);
        assert_eq!(
            back,
            NASTY.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        );
        assert!(!std::path::Path::new("/tmp/skiff-pwned").exists());
    }

    #[test]
    fn an_assignment_word_is_not_an_assignment() {
        // `A=b` first on a line would set a variable instead of running a program.
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{} 2>/dev/null; echo $?", command_line(&["A=b"])))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "127");
    }

    #[test]
    fn deploys_log_in_as_the_deploy_user_and_setup_node_as_the_admin() {
        let mut node: crate::cluster::Node =
            toml::from_str("address = \"10.0.0.1\"\nuser = \"root\"\nprovider = \"local\"\n")
                .unwrap();
        assert_eq!(Target::for_node("n", &node).user, "root");
        node.deploy_user = Some("skiff".into());
        assert_eq!(Target::for_node("n", &node).user, "skiff");
        let admin = Target::admin_for_node("n", &node);
        assert_eq!(admin.user, "root");
        assert_eq!(
            Target {
                user: "root".into(),
                ..Target::for_node("n", &node)
            },
            admin
        );
    }

    #[test]
    fn known_hosts_name_brackets_other_ports() {
        let mut t = Target {
            node: "n".into(),
            address: "10.0.0.1".into(),
            user: "root".into(),
            port: 22,
            identity: None,
        };
        assert_eq!(t.known_hosts_name(), "10.0.0.1");
        t.port = 2222;
        assert_eq!(t.known_hosts_name(), "[10.0.0.1]:2222");
    }

    #[test]
    fn output_tail_prefers_stderr() {
        let o = Output {
            status: Some(1),
            stdout: b"out\n".to_vec(),
            stderr: b"a\nb\nc\n".to_vec(),
        };
        assert_eq!(o.tail(2), "b\nc");
        let o = Output {
            status: Some(1),
            stdout: b"out\n".to_vec(),
            stderr: b"\n".to_vec(),
        };
        assert_eq!(o.tail(2), "out");
    }

    /// One argv word for the property tests: pieces a shell gives meaning to (quotes,
    /// `$(`, backquotes, newlines, backslashes, spaces, a leading `-`, globs, `~`, `#`)
    /// mixed with any other characters (a NUL cannot be in an argv).
    fn word() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            prop::sample::select(vec![
                "'", "\"", "$(", ")", "`", "\n", "\r", "\t", "\\", " ", "-", "--", "=", "$", "${",
                "}", "*", "?", "[", "~", "#", "!", ";", "&", "|", "<", ">", "%s",
            ])
            .prop_map(String::from),
            "[^\\x00]{0,4}",
        ];
        prop::collection::vec(piece, 0..6).prop_map(|p| p.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// `/bin/sh` (dash on Debian) turns [`command_line`] back into exactly the argv.
        #[test]
        fn any_argv_round_trips_through_bin_sh(
            argv in proptest::collection::vec(word(), 1..6)
        ) {
            let words: Vec<&str> = argv.iter().map(String::as_str).collect();
            let out = Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("printf '%s\\0' {}", command_line(&words)))
                .output()
                .expect("/bin/sh runs");
            proptest::prop_assert!(out.status.success(), "{:?}", out);
            let mut back: Vec<Vec<u8>> =
                out.stdout.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
            back.pop(); // after the last NUL
            let want: Vec<Vec<u8>> = argv.iter().map(|w| w.as_bytes().to_vec()).collect();
            proptest::prop_assert_eq!(back, want);
        }
    }
}
