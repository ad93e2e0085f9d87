//! Services on real nodes: PostgreSQL and MariaDB databases and files folders made by the
//! first update that names them, their credentials in the app's environment (and
//! nowhere on the laptop), the release command before any switch, data that survives
//! update, rollback and clean.

use std::path::{Path, PathBuf};

use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{get, ok};

const PG_APP: &str = r#"import os
import psycopg2

MESSAGE = "one"

def application(environ, start_response):
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    cur = conn.cursor()
    path = environ.get("PATH_INFO", "/")
    if path == "/add":
        cur.execute("INSERT INTO notes (body) VALUES (%s)", (environ.get("QUERY_STRING", ""),))
        conn.commit()
    if path == "/file":
        with open(os.path.join(os.environ["UPLOADS_DIR"], "kept.txt"), "w") as f:
            f.write(environ.get("QUERY_STRING", ""))
    cur.execute("SELECT body FROM notes ORDER BY id")
    rows = ",".join(r[0] for r in cur.fetchall())
    conn.close()
    kept = os.path.join(os.environ.get("SKIFF_FILES_DIR", "/nonexistent"), "kept.txt")
    files = open(kept).read() if os.path.exists(kept) else "-"
    body = "message=%s rows=%s file=%s user=%s host=%s\n" % (
        MESSAGE, rows, files, os.environ.get("PGUSER"), os.environ.get("PGHOST"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
"#;

const MIGRATE: &str = r#"import os
import psycopg2
conn = psycopg2.connect(os.environ["DATABASE_URL"])
cur = conn.cursor()
cur.execute("CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text)")
conn.commit()
print("migrated")
"#;

/// A migration that fails halfway, inside its transaction.
const BAD_MIGRATE: &str = r#"import os
import psycopg2
conn = psycopg2.connect(os.environ["DATABASE_URL"])
cur = conn.cursor()
cur.execute("ALTER TABLE notes ADD COLUMN broken integer")
cur.execute("SELECT no_such_function()")
conn.commit()
"#;

/// The PostgreSQL app, with a files service `uploads` when `files`.
pub(crate) fn pg_app(env: &TestEnv, files: bool) -> PathBuf {
    let dir = env.root().join("notes");
    std::fs::create_dir_all(&dir).unwrap();
    let uploads = if files {
        "[services.uploads]\ntype = \"files\"\n"
    } else {
        ""
    };
    std::fs::write(
        dir.join("app.toml"),
        format!("name = \"notes\"\nruntime = \"python\"\nhostnames = [\"notes.test\"]\n[python]\nwsgi = \"app:application\"\n[packages]\napt = [\"python3-psycopg2\"]\n[deploy]\nrelease = \"python3 migrate.py\"\nbackup_before_release = true\n[services]\ndb = \"postgresql\"\n{uploads}"),
    )
    .unwrap();
    std::fs::write(dir.join("app.py"), PG_APP).unwrap();
    std::fs::write(dir.join("migrate.py"), MIGRATE).unwrap();
    dir
}

fn set_message(dir: &Path, message: &str) {
    let text = std::fs::read_to_string(dir.join("app.py")).unwrap();
    let start = text.find("MESSAGE = \"").unwrap() + "MESSAGE = \"".len();
    let end = start + text[start..].find('"').unwrap();
    std::fs::write(
        dir.join("app.py"),
        format!("{}{message}{}", &text[..start], &text[end..]),
    )
    .unwrap();
}

pub(crate) fn update(env: &TestEnv, dir: &Path, node: &TestNode) -> std::process::Output {
    env.skiff()
        .arg("update")
        .arg(dir)
        .args(["--node", &node.name])
        .output()
        .unwrap()
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle))
            {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn a_postgresql_app_keeps_its_rows_and_files_and_its_password_stays_on_the_node() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = pg_app(&env, true);
    let mut outputs = Vec::new();
    let out = update(&env, &dir, &node);
    ok(&out);
    outputs.push(out);

    // backup_before_release: every service dumped on the node before the release command
    assert_eq!(
        node.exec(
            "stat -c '%a %U' /var/backups/skiff/notes/1/db /var/backups/skiff/notes/1/uploads"
        )
        .lines()
        .collect::<Vec<_>>(),
        ["600 skiff", "600 skiff"]
    );
    assert_eq!(
        node.exec("head -c 5 /var/backups/skiff/notes/1/db"),
        "PGDMP"
    );

    // the release command made the schema; rows written over HTTP
    for row in ["first", "second"] {
        let (code, body) = get(&node.address, "notes.test", &format!("/add?{row}"));
        assert_eq!(code, 200, "{body}");
    }
    let (_, body) = get(&node.address, "notes.test", "/file?kept-file");
    assert!(body.contains("rows=first,second"), "{body}");
    assert!(body.contains("user=notes_db"), "{body}");

    // update, rollback and clean keep them
    set_message(&dir, "two");
    let out = update(&env, &dir, &node);
    ok(&out);
    outputs.push(out);
    let (_, body) = get(&node.address, "notes.test", "/");
    assert!(
        body.contains("message=two rows=first,second file=kept-file"),
        "{body}"
    );
    let out = env
        .skiff()
        .args(["rollback", "notes.test"])
        .output()
        .unwrap();
    ok(&out);
    outputs.push(out);
    let (_, body) = get(&node.address, "notes.test", "/");
    assert!(
        body.contains("message=one rows=first,second file=kept-file"),
        "{body}"
    );
    let out = env
        .skiff()
        .args(["clean", "notes.test", "--keep", "1"])
        .output()
        .unwrap();
    ok(&out);
    outputs.push(out);
    let (_, body) = get(&node.address, "notes.test", "/");
    assert!(body.contains("rows=first,second file=kept-file"), "{body}");

    // a release command that fails inside its transaction: nothing switched, the
    // database as it was
    std::fs::write(dir.join("migrate.py"), BAD_MIGRATE).unwrap();
    set_message(&dir, "three");
    let out = update(&env, &dir, &node);
    assert!(!out.status.success(), "a failing release command passed");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("release command"), "{stderr}");
    assert!(stderr.contains("no_such_function"), "{stderr}");
    outputs.push(out);
    let (_, body) = get(&node.address, "notes.test", "/");
    assert!(body.contains("message=one rows=first,second"), "{body}");
    let columns = node.exec(
        "runuser -u postgres -- psql -At -d notes_db -c \"SELECT column_name FROM information_schema.columns WHERE table_name = 'notes' ORDER BY 1\"",
    );
    assert_eq!(
        columns.split_whitespace().collect::<Vec<_>>(),
        ["body", "id"]
    );

    // secrets: 0640 root:skiff on the node (the deploy user puts them in the env
    // snapshot), in no laptop file and no output
    let creds = "/etc/skiff/services/notes/db.env";
    assert_eq!(
        node.exec(&format!(
            "stat -c '%a %U:%G' {creds} /etc/skiff/services/notes"
        )),
        "640 root:skiff\n750 root:skiff\n"
    );
    let password = node.exec(&format!("sed -n 's/^PGPASSWORD=//p' {creds}"));
    let password = password.trim();
    assert_eq!(password.len(), 32, "{password}");
    assert_eq!(
        files_containing(env.root(), password),
        Vec::<PathBuf>::new()
    );
    for out in &outputs {
        assert!(!String::from_utf8_lossy(&out.stdout).contains(password));
        assert!(!String::from_utf8_lossy(&out.stderr).contains(password));
    }
    // the files service lives outside every release, owned by the app's user
    assert_eq!(
        node.exec("stat -c '%U %a' /srv/skiff/data/notes/uploads")
            .trim(),
        "app-notes 750"
    );

    // cluster.toml knows where the data lives (no credentials); destroy-node names it
    let app = &env.cluster().apps["notes.test"];
    assert_eq!(app.services["db"].kind, "postgresql");
    assert_eq!(app.services["db"].node, node.name);
    let out = env
        .skiff()
        .args(["destroy-node", &node.name])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`db` (postgresql) of notes.test")
            && stderr.contains("`uploads` (files) of notes.test")
            && stderr.contains("--yes"),
        "{stderr}"
    );
    node.exec("true");
}

/// Asks PostgreSQL at `host` for a session (a raw startup message, from `from`): `R` =
/// the server asks for the password (the address may connect), `E ...` = refused.
fn pg_handshake(from: &TestNode, host: &str) -> String {
    from.exec(&format!(
        "python3 - {host} notes_db notes_db <<'EOF'\n\
import socket, struct, sys\n\
s = socket.create_connection((sys.argv[1], 5432), timeout=5)\n\
p = b'user\\0' + sys.argv[2].encode() + b'\\0database\\0' + sys.argv[3].encode() + b'\\0\\0'\n\
s.sendall(struct.pack('!ii', 8 + len(p), 196608) + p)\n\
t = s.recv(1)\n\
print(t.decode(), s.recv(4096).decode('latin-1') if t == b'E' else '')\n\
EOF"
    ))
}

#[test]
fn a_two_node_app_reaches_its_database_on_the_first_node_and_no_one_else_does() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let a = TestNode::launch_set_up(&env);
    let b = TestNode::launch_set_up(&env);
    let outsider = TestNode::launch(&env);
    let (db_node, other) = if a.name < b.name { (&a, &b) } else { (&b, &a) };

    // a files service cannot live on two nodes: refused before anything is sent
    let files = pg_app(&env, true);
    let update_both = |dir: &Path| {
        env.skiff()
            .arg("update")
            .arg(dir)
            .args(["--node", &a.name, "--node", &b.name])
            .output()
            .unwrap()
    };
    let out = update_both(&files);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("files service") && stderr.contains("not supported yet"),
        "{stderr}"
    );
    for n in [&a, &b] {
        assert_eq!(
            n.exec(
                "ls /srv/skiff/apps/notes 2>/dev/null | wc -l; ls -A /var/lib/skiff/locks | wc -l"
            )
            .split_whitespace()
            .collect::<Vec<_>>(),
            ["0", "0"]
        );
    }

    // the database on the first node; the second reaches it with the password
    let dir = pg_app(&env, false);
    ok(&update_both(&dir));
    let (code, body) = get(&other.address, "notes.test", "/add?from-other");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(&format!("host={}", db_node.address)),
        "{body}"
    );
    let (_, body) = get(&db_node.address, "notes.test", "/add?from-db-node");
    assert!(
        body.contains("rows=from-other,from-db-node") && body.contains("host=127.0.0.1"),
        "{body}"
    );
    assert_eq!(
        other
            .exec("test -e /var/lib/postgresql && echo server || echo none")
            .trim(),
        "none",
        "the other node runs no database server"
    );

    // only the app's nodes may connect: skiff's firewall drops anyone else's packets
    // (setup-node's table, `db_clients` filled by service-ensure), and PostgreSQL itself
    // refuses them (no pg_hba.conf line) when the firewall lets them through
    let allowed = pg_handshake(other, &db_node.address);
    assert!(allowed.starts_with('R'), "{allowed}");
    let dropped = outsider.exec_output(&format!(
        "timeout 20 python3 -c \"import socket; socket.create_connection(('{}', 5432), timeout=3)\"",
        db_node.address
    ));
    assert!(
        String::from_utf8_lossy(&dropped.stderr).contains("timed out"),
        "the firewall let an outsider through: {dropped:?}"
    );
    db_node.exec(&format!(
        "nft add element inet skiff db_clients {{ {} }}",
        outsider.address
    ));
    let refused = pg_handshake(&outsider, &db_node.address);
    assert!(
        refused.starts_with('E') && refused.contains("no pg_hba.conf entry"),
        "{refused}"
    );
    db_node.exec("systemctl restart skiff-firewall.service");
    assert!(
        !db_node
            .exec("nft list set inet skiff db_clients")
            .contains(&outsider.address)
    );
    assert_eq!(
        other
            .exec("stat -c '%a %U:%G' /etc/skiff/services/notes/db.env")
            .trim(),
        "640 root:skiff"
    );
}

const PHP_INDEX: &str = r#"<?php
$pdo = new PDO(
    "mysql:host=" . getenv("MYSQL_HOST") . ";port=" . getenv("MYSQL_PORT") . ";dbname=" . getenv("MYSQL_DATABASE"),
    getenv("MYSQL_USER"),
    getenv("MYSQL_PASSWORD")
);
if (isset($_GET["add"])) {
    $pdo->prepare("INSERT INTO notes (body) VALUES (?)")->execute([$_GET["add"]]);
}
$rows = $pdo->query("SELECT body FROM notes ORDER BY id")->fetchAll(PDO::FETCH_COLUMN);
header("Content-Type: text/plain");
echo "message=one rows=" . implode(",", $rows) . " url=" . (getenv("DATABASE_URL") ? "set" : "unset") . "\n";
"#;

const PHP_MIGRATE: &str = r#"<?php
$pdo = new PDO(
    "mysql:host=" . getenv("MYSQL_HOST") . ";dbname=" . getenv("MYSQL_DATABASE"),
    getenv("MYSQL_USER"),
    getenv("MYSQL_PASSWORD")
);
$pdo->exec("CREATE TABLE IF NOT EXISTS notes (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT)");
echo "migrated\n";
"#;

#[test]
fn a_php_app_on_mariadb_keeps_its_rows() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = env.root().join("board");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("app.toml"),
        "name = \"board\"\nruntime = \"php\"\nhostnames = [\"board.test\"]\n[packages]\napt = [\"php-mysql\"]\n[services]\ndb = \"mysql\"\n[deploy]\nrelease = \"php migrate.php\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("index.php"), PHP_INDEX).unwrap();
    std::fs::write(dir.join("migrate.php"), PHP_MIGRATE).unwrap();
    ok(&update(&env, &dir, &node));
    for row in ["first", "second"] {
        let (code, body) = get(&node.address, "board.test", &format!("/?add={row}"));
        assert_eq!(code, 200, "{body}");
    }
    let (_, body) = get(&node.address, "board.test", "/");
    assert!(body.contains("rows=first,second url=set"), "{body}");
    std::fs::write(
        dir.join("index.php"),
        PHP_INDEX.replace("message=one", "message=two"),
    )
    .unwrap();
    ok(&update(&env, &dir, &node));
    let (_, body) = get(&node.address, "board.test", "/");
    assert!(body.contains("message=two rows=first,second"), "{body}");
    ok(&env
        .skiff()
        .args(["rollback", "board.test"])
        .output()
        .unwrap());
    let (_, body) = get(&node.address, "board.test", "/");
    assert!(body.contains("message=one rows=first,second"), "{body}");
    assert_eq!(
        node.exec("stat -c '%a %U:%G' /etc/skiff/services/board/db.env")
            .trim(),
        "640 root:skiff"
    );
}
