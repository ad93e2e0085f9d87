//! `[env]` reaches the app exactly, on a real node, in every runtime (issue 10: a
//! non-ASCII value crashed the Python slot with UnicodeEncodeError).

use std::path::PathBuf;

use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{deploy, get};

/// Not ASCII, and not Latin-1 either (the check mark).
const GREETING: &str = "héllo wörld ✓";

/// An app folder `name` with `app.toml` (runtime `runtime`, `[env] GREETING`, plus
/// `extra`) and `files` (path, contents).
fn app(env: &TestEnv, name: &str, runtime: &str, extra: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = env.root().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("app.toml"),
        format!(
            "name = \"{name}\"\nruntime = \"{runtime}\"\nhostnames = [\"{name}.test\"]\n{extra}\n[env]\nGREETING = \"{GREETING}\"\n"
        ),
    )
    .unwrap();
    for (path, text) in files {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    dir
}

fn check(address: &str, host: &str, want: &str) {
    let (code, body) = get(address, host, "/");
    assert_eq!(code, 200, "{host}: {body}");
    assert_eq!(body.trim_end(), want, "{host}");
}

#[test]
fn non_ascii_env_reaches_every_runtime_as_utf8() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);

    // Python: os.environ as text, os.environb as the UTF-8 bytes a child process gets.
    let py = app(
        &env,
        "pyenv",
        "python",
        "[python]\nwsgi = \"app:application\"",
        &[(
            "app.py",
            "import os\n\
             def application(environ, start_response):\n\
             \x20   text = os.environ['GREETING']\n\
             \x20   raw = os.environb[b'GREETING'].decode('utf-8')\n\
             \x20   body = f'{text}|{raw}\\n'.encode('utf-8')\n\
             \x20   start_response('200 OK', [('Content-Type', 'text/plain; charset=utf-8')])\n\
             \x20   return [body]\n",
        )],
    );
    // PHP: getenv, $_ENV and $_SERVER.
    let php = app(
        &env,
        "phpenv",
        "php",
        "[php]\ndocroot = \"public\"",
        &[(
            "public/index.php",
            "<?php\nheader('Content-Type: text/plain; charset=utf-8');\n\
             echo getenv('GREETING'), '|', $_ENV['GREETING'], '|', $_SERVER['GREETING'], \"\\n\";\n",
        )],
    );
    // Ruby: ENV as a UTF-8 string equal to the literal.
    let rb = app(
        &env,
        "rbenv",
        "ruby",
        "",
        &[(
            "config.ru",
            "run lambda { |_env|\n\
             \x20 g = ENV['GREETING']\n\
             \x20 [200, { 'content-type' => 'text/plain; charset=utf-8' },\n\
             \x20  [\"#{g.dup.force_encoding('UTF-8')}|#{g.encoding}|#{g == 'héllo wörld ✓'}\\n\"]]\n\
             }\n",
        )],
    );

    for dir in [&py, &php, &rb] {
        deploy(&env, &node, dir);
    }
    check(
        &node.address,
        "pyenv.test",
        &format!("{GREETING}|{GREETING}"),
    );
    check(
        &node.address,
        "phpenv.test",
        &format!("{GREETING}|{GREETING}|{GREETING}"),
    );
    check(
        &node.address,
        "rbenv.test",
        &format!("{GREETING}|UTF-8|true"),
    );
}
