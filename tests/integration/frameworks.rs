//! Real framework apps deploy unchanged (issue 11): build commands run in the app's own
//! environment.

use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{deploy, fixture, get};

/// Build commands find the app's venv first (`python` and `python3` are the venv's, with
/// `VIRTUAL_ENV` set), so `python manage.py collectstatic` as Django's docs write it
/// works; without requirements, `python` is the system python3.
#[test]
fn build_commands_run_in_the_apps_environment() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "python");
    let toml = dir.join("app.toml");
    let base = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        format!(
            "{base}\n[build]\ncommands = [\"python -c 'import skiff_greeting, sys, os; print(skiff_greeting.hello(), sys.prefix == os.environ[\\\"VIRTUAL_ENV\\\"])' > static/built.txt\", \"python3 -c 'import skiff_greeting' && echo ok > static/python3.txt\"]\n"
        ),
    )
    .unwrap();
    deploy(&env, &node, &dir);
    let (code, body) = get(&node.address, "pyapp.test", "/built.txt");
    assert_eq!(code, 200, "{body}");
    let words: Vec<&str> = body.split_whitespace().collect();
    assert_eq!(words.last(), Some(&"True"), "python is the venv's: {body}");
    assert_eq!(
        get(&node.address, "pyapp.test", "/python3.txt").1.trim(),
        "ok"
    );

    // no requirements: no venv, and `python` still runs (the system python3)
    std::fs::write(
        &toml,
        base.replace("requirements = \"requirements.txt\"\n", "")
            .replace("wheels = \"wheels\"\n", "")
            + "\n[build]\ncommands = [\"python --version > static/version.txt 2>&1\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("app.py"),
        "def application(environ, start_response):\n    start_response(\"200 OK\", [(\"Content-Type\", \"text/plain\")])\n    return [b\"ok\\n\"]\n",
    )
    .unwrap();
    deploy(&env, &node, &dir);
    let (code, body) = get(&node.address, "pyapp.test", "/version.txt");
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("Python 3."), "{body}");
}
