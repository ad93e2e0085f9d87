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

/// `[packages] apt`: installed on the node before the build (once: a later deploy finds
/// them installed), recorded per app in the node state; apps without a venv see Debian's
/// Python packages, a venv only with `[python] system_packages = true`; an unknown
/// package fails the deploy before anything switches, naming it.
#[test]
fn apt_packages_are_installed_before_the_build_and_unknown_ones_fail_first() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    assert!(node.exec_output("python3 -c 'import six'").status.code() != Some(0));
    let dir = fixture(&env, "python");
    let toml = dir.join("app.toml");
    let base = std::fs::read_to_string(&toml).unwrap();
    // a venv app that needs a Debian package in its build: system_packages
    std::fs::write(
        &toml,
        base.replace("wheels = \"wheels\"\n", "wheels = \"wheels\"\nsystem_packages = true\n")
            + "\n[packages]\napt = [\"python3-six\"]\n[build]\ncommands = [\"python -c 'import six; print(six.__version__)' > static/six.txt\"]\n",
    )
    .unwrap();
    let report = deploy(&env, &node, &dir);
    assert_eq!(report["version"], 1);
    let (code, body) = get(&node.address, "pyapp.test", "/six.txt");
    assert_eq!(code, 200, "{body}");
    assert!(body.trim().starts_with("1."), "{body}");
    let state: toml::Table = toml::from_str(&node.exec("cat /var/lib/skiff/state.toml")).unwrap();
    assert_eq!(
        state["apps"]["pyapp"]["packages"].as_array().unwrap()[0].as_str(),
        Some("python3-six")
    );
    // installed once: the next deploy finds it there
    let out = env
        .skiff()
        .args(["-v", "update"])
        .arg(&dir)
        .args(["--node", &node.name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // an unknown package: the deploy fails before the switch, naming it
    std::fs::write(
        &toml,
        base.clone() + "\n[packages]\napt = [\"python3-six\", \"no-such-package-skiff\"]\n",
    )
    .unwrap();
    let out = env
        .skiff()
        .args(["update"])
        .arg(&dir)
        .args(["--node", &node.name])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no-such-package-skiff"), "{stderr}");
    assert!(stderr.contains("[packages]"), "{stderr}");
    let (code, body) = get(&node.address, "pyapp.test", "/");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("version=2"),
        "the live version serves: {body}"
    );
}

/// A Sinatra app on Debian's `ruby-sinatra`, installed through `[packages]`: deployed,
/// redeployed and rolled back, with HOST, `1.HOST` and `prev.HOST` answering.
#[test]
fn a_sinatra_app_on_debians_package_deploys_and_rolls_back() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = env.root().join("sinatra");
    std::fs::create_dir_all(dir.join("static")).unwrap();
    std::fs::write(
        dir.join("app.toml"),
        "name = \"sing\"\nruntime = \"ruby\"\nhostnames = [\"sing.test\"]\n[packages]\napt = [\"ruby-sinatra\"]\n",
    )
    .unwrap();
    let app = |word: &str| {
        format!(
            "require \"sinatra/base\"\n\nclass Sing < Sinatra::Base\n  get \"/\" do\n    \"sinatra says {word} from #{{ENV['SKIFF_VERSION']}}\\n\"\n  end\nend\n\nrun Sing\n"
        )
    };
    std::fs::write(dir.join("config.ru"), app("hello")).unwrap();
    deploy(&env, &node, &dir);
    std::fs::write(dir.join("config.ru"), app("bonjour")).unwrap();
    deploy(&env, &node, &dir);
    let said = |host: &str| {
        let (code, body) = get(&node.address, host, "/");
        assert_eq!(code, 200, "{host}: {body}");
        body.trim().to_string()
    };
    assert_eq!(said("sing.test"), "sinatra says bonjour from 2");
    assert_eq!(said("1.sing.test"), "sinatra says hello from 1");
    assert_eq!(said("prev.sing.test"), "sinatra says hello from 1");
    let out = env
        .skiff()
        .args(["rollback", "sing.test"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(said("sing.test"), "sinatra says hello from 1");
}
