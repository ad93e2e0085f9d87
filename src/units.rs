//! An app's systemd units for one release: its workers (`[processes.NAME]`) and its cron
//! jobs (`[[cron]]`), rendered on the laptop from `templates/systemd/` and shipped with
//! the release. The node keeps them in `APP/units/N/` and the switch that makes release N
//! current installs and starts them (and stops the previous release's): they follow the
//! version through update, rollback and activate. Pure: everything here is unit-tested.
//!
//! Unit names are `skiff_APP_N_NAME`: app and process names are `[a-z0-9-]`, so `_`
//! separates them unambiguously, and every unit of an app starts with `skiff_APP_`.

use tera::Context;

use crate::app_config::AppConfig;
use crate::deploy::contract;
use crate::error::Result;
use crate::provision::render::render;

/// The user an app's processes run as on a node, web, workers, command crons and `skiff
/// run` alike: a Python or Ruby app's own ([`crate::names::app_user`], made by the first
/// deploy), so one app cannot read another's environment, secrets or data; www-data for
/// PHP (mod_php runs every PHP app inside Apache's own processes) and static sites.
pub fn run_user(config: &AppConfig) -> String {
    match config.runtime {
        crate::app_config::Runtime::Python | crate::app_config::Runtime::Ruby => {
            crate::names::app_user(&config.name)
        }
        crate::app_config::Runtime::Php | crate::app_config::Runtime::Static => "www-data".into(),
    }
}
/// The user a web cron's request runs as (it only talks to NGINX on loopback), and its
/// group (Debian's and Ubuntu's name for nobody's group).
pub const WEB_CRON_USER: (&str, &str) = ("nobody", "nogroup");

/// What the node gets for one release.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReleaseUnits {
    /// `(file name, text)`: unit files and job files, written to `APP/units/N/`.
    pub files: Vec<(String, String)>,
    /// The unit instances the switch enables and starts, one per line
    /// (`skiff_blog_3_worker@1.service`, `skiff_blog_3_cron0.timer`).
    pub enable: Vec<String>,
}

impl ReleaseUnits {
    /// Whether the release runs anything under systemd.
    pub fn is_empty(&self) -> bool {
        self.enable.is_empty() && self.files.is_empty()
    }

    /// The wire form for the node: one `NAME BASE64` line per file, the enable list as
    /// the file `enable`.
    pub fn encode(&self) -> String {
        use base64::Engine as _;
        if self.is_empty() {
            return String::new();
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut out = String::new();
        let enable = self
            .enable
            .iter()
            .map(|u| format!("{u}\n"))
            .collect::<String>();
        for (name, text) in self
            .files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .chain(std::iter::once(("enable", enable.as_str())))
        {
            out.push_str(&format!("{name} {}\n", b64.encode(text)));
        }
        out
    }
}

/// Whether the app has anything that needs systemd on its nodes.
pub fn needs_systemd(config: &AppConfig) -> bool {
    !config.processes.is_empty() || !config.cron.is_empty()
}

/// The units of release `n` of the app whose main host is `host`. Timers are enabled
/// only where `cron_node` (one node of the app runs each cron job).
pub fn for_release(
    config: &AppConfig,
    host: &str,
    n: u32,
    cron_node: bool,
) -> Result<ReleaseUnits> {
    let app = &config.name;
    let mut out = ReleaseUnits::default();
    if !needs_systemd(config) {
        return Ok(out);
    }
    let units_dir = contract::units_dir(app, n);
    let release = contract::release_dir(app, n);
    let run_env = contract::run_env(app, n);
    for (name, entry) in &config.processes {
        let p = entry.config();
        let job = format!("{name}.job");
        out.files.push((
            job.clone(),
            format!(
                "kind worker\ndir {release}\nenv {run_env}\ncommand {}\n",
                p.command
            ),
        ));
        let unit = format!("skiff_{app}_{n}_{name}@.service");
        let mut ctx = Context::new();
        ctx.insert("app", app);
        ctx.insert("n", &n);
        ctx.insert("process", name);
        ctx.insert("user", &run_user(config));
        ctx.insert("runner", contract::RUNNER);
        ctx.insert("job", &format!("{units_dir}/{job}"));
        ctx.insert("signal", &p.signal());
        ctx.insert("stop_timeout", &format!("{}s", p.stop_timeout().as_secs()));
        out.files
            .push((unit.clone(), render("systemd/worker.service.tera", &ctx)?));
        for i in 1..=p.instances {
            out.enable
                .push(format!("skiff_{app}_{n}_{name}@{i}.service"));
        }
    }
    for (i, entry) in config.cron.iter().enumerate() {
        let timeout = entry.timeout().as_secs().max(1);
        // A web cron runs as nobody, who cannot read the app's files: its request is in
        // the unit (host and path by grammar: no quotes, spaces or `$`; `%` doubled for
        // systemd). A command's job file holds the app owner's command, never the unit.
        let (exec, what, web) = match (&entry.path, &entry.command) {
            (Some(path), _) => (
                format!(
                    "{} --web {host} {} {timeout}",
                    contract::RUNNER,
                    path.replace('%', "%%")
                ),
                format!("GET {path}"),
                true,
            ),
            (None, Some(command)) => {
                let job = format!("cron{i}.job");
                out.files.push((
                    job.clone(),
                    format!("kind command\ndir {release}\nenv {run_env}\ncommand {command}\n"),
                ));
                (
                    format!("{} {units_dir}/{job}", contract::RUNNER),
                    "a command".to_string(),
                    false,
                )
            }
            (None, None) => continue, // refused when app.toml is loaded
        };
        let (schedule, calendars) = match (&entry.schedule, &entry.calendar) {
            (Some(cron), _) => (cron.clone(), on_calendar(cron)),
            (None, Some(calendar)) => (calendar.clone(), vec![calendar.clone()]),
            (None, None) => continue,
        };
        let mut ctx = Context::new();
        ctx.insert("app", app);
        ctx.insert("n", &n);
        ctx.insert("index", &i);
        ctx.insert("what", &what.replace('%', "%%"));
        let app_user = run_user(config);
        let (user, group) = if web {
            WEB_CRON_USER
        } else {
            (app_user.as_str(), app_user.as_str())
        };
        ctx.insert("user", user);
        ctx.insert("group", group);
        ctx.insert("exec", &exec);
        ctx.insert("timeout", &format!("{timeout}s"));
        ctx.insert("secret", if web { contract::CRON_SECRET } else { "" });
        ctx.insert("schedule", &schedule);
        ctx.insert("calendars", &calendars);
        let base = format!("skiff_{app}_{n}_cron{i}");
        out.files.push((
            format!("{base}.service"),
            render("systemd/cron.service.tera", &ctx)?,
        ));
        out.files.push((
            format!("{base}.timer"),
            render("systemd/cron.timer.tera", &ctx)?,
        ));
        if cron_node {
            out.enable.push(format!("{base}.timer"));
        }
    }
    Ok(out)
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// A five-field cron schedule (already validated) as systemd `OnCalendar=` expressions.
/// Cron runs a job when the day of the month *or* the weekday matches if both are
/// restricted; systemd wants both, so that case becomes two expressions.
pub fn on_calendar(cron: &str) -> Vec<String> {
    let f: Vec<&str> = cron.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = [f[0], f[1], f[2], f[3], f[4]];
    let minute = field(minute, 0, 59);
    let hour = field(hour, 0, 23);
    let month = field(&month_numbers(month), 1, 12);
    let day = field(dom, 1, 31);
    let weekdays = weekday_names(dow);
    let time = format!("{hour}:{minute}:00");
    match (dom == "*", weekdays) {
        (_, None) => vec![format!("*-{month}-{day} {time}")],
        (true, Some(w)) => vec![format!("{w} *-{month}-* {time}")],
        (false, Some(w)) => vec![
            format!("*-{month}-{day} {time}"),
            format!("{w} *-{month}-* {time}"),
        ],
    }
}

/// One numeric cron field in systemd's syntax: `*`, lists, `a..b` ranges, `a/s`
/// repetitions; a stepped range is spelled out.
fn field(text: &str, min: u32, max: u32) -> String {
    text.split(',')
        .map(|part| {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, s.parse::<u32>().ok()),
                None => (part, None),
            };
            let bounds = match range {
                "*" => None,
                r => Some(match r.split_once('-') {
                    Some((a, b)) => (a.parse().unwrap_or(min), Some(b.parse().unwrap_or(max))),
                    None => (r.parse().unwrap_or(min), None),
                }),
            };
            match (bounds, step) {
                (None, None) => "*".to_string(),
                (None, Some(s)) => format!("{min}/{s}"),
                (Some((a, None)), None) => format!("{a:02}"),
                (Some((a, None)), Some(s)) => format!("{a:02}/{s}"),
                (Some((a, Some(b))), None) => format!("{a:02}..{b:02}"),
                (Some((a, Some(b))), Some(s)) => (a..=b)
                    .step_by(s.max(1) as usize)
                    .map(|v| format!("{v:02}"))
                    .collect::<Vec<_>>()
                    .join(","),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `jan`..`dec` as `1`..`12` (cron allows a name only alone in the field).
fn month_numbers(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    match MONTHS.iter().position(|m| *m == lower) {
        Some(i) => (i + 1).to_string(),
        None => text.to_string(),
    }
}

/// The weekday field as a list of systemd day names, or `None` for every day.
fn weekday_names(text: &str) -> Option<String> {
    if text == "*" {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    if let Some(i) = WEEKDAYS
        .iter()
        .position(|d| d.to_ascii_lowercase() == lower)
    {
        return Some(WEEKDAYS[i].to_string());
    }
    let mut days = [false; 7];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<usize>().unwrap_or(1).max(1)),
            None => (part, 1),
        };
        let (a, b) = match range {
            "*" => (0, 6),
            r => match r.split_once('-') {
                Some((a, b)) => (a.parse().unwrap_or(0), b.parse().unwrap_or(6)),
                None => {
                    let a: usize = r.parse().unwrap_or(0);
                    (a, if step > 1 { 6 } else { a })
                }
            },
        };
        for d in (a..=b).step_by(step) {
            days[d % 7] = true;
        }
    }
    if days.iter().all(|d| *d) {
        return None;
    }
    // Monday first, as people read a week
    let order = [1, 2, 3, 4, 5, 6, 0];
    Some(
        order
            .iter()
            .filter(|&&d| days[d])
            .map(|&d| WEEKDAYS[d])
            .collect::<Vec<_>>()
            .join(","),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_schedules_become_calendar_expressions() {
        let cases = [
            ("*/10 * * * *", vec!["*-*-* *:0/10:00"]),
            ("0 3 * * *", vec!["*-*-* 03:00:00"]),
            ("30 2 1 * *", vec!["*-*-01 02:30:00"]),
            ("0 9 * * 1-5", vec!["Mon,Tue,Wed,Thu,Fri *-*-* 09:00:00"]),
            ("0 0 * * 0", vec!["Sun *-*-* 00:00:00"]),
            ("0 0 * * 7", vec!["Sun *-*-* 00:00:00"]),
            ("0 0 * * sun", vec!["Sun *-*-* 00:00:00"]),
            ("0 0 1 jan *", vec!["*-01-01 00:00:00"]),
            ("0 8-18/4 * * *", vec!["*-*-* 08,12,16:00:00"]),
            ("5,35 * * * *", vec!["*-*-* *:05,35:00"]),
            ("0 12 * 6-8 *", vec!["*-06..08-* 12:00:00"]),
            ("* * * * *", vec!["*-*-* *:*:00"]),
            ("0 0 13 * 5", vec!["*-*-13 00:00:00", "Fri *-*-* 00:00:00"]),
            ("0 0 * * */2", vec!["Tue,Thu,Sat,Sun *-*-* 00:00:00"]),
        ];
        for (cron, want) in cases {
            assert_eq!(on_calendar(cron), want, "{cron}");
        }
    }

    fn app(extra: &str) -> AppConfig {
        let text = format!(
            "name = \"blog\"\nruntime = \"python\"\nhostnames = [\"blog.test\"]\n[python]\nwsgi = \"app:application\"\n{extra}"
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn workers_and_crons_render_per_release() {
        let config = app(
            "[processes]\nmailer = \"python mailer.py\"\n[processes.worker]\ncommand = \"python w.py --x '%s'\"\ninstances = 2\nstop_signal = \"INT\"\nstop_timeout = \"30s\"\n[[cron]]\nschedule = \"*/5 * * * *\"\npath = \"/tasks/x?a=50%\"\n[[cron]]\ncalendar = \"*:*:0/2\"\ncommand = \"python tick.py\"\ntimeout = \"1m\"\n",
        );
        let units = for_release(&config, "blog.test", 7, true).unwrap();
        let names: Vec<&str> = units.files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "mailer.job",
                "skiff_blog_7_mailer@.service",
                "worker.job",
                "skiff_blog_7_worker@.service",
                "skiff_blog_7_cron0.service",
                "skiff_blog_7_cron0.timer",
                "cron1.job",
                "skiff_blog_7_cron1.service",
                "skiff_blog_7_cron1.timer",
            ]
        );
        assert_eq!(
            units.enable,
            [
                "skiff_blog_7_mailer@1.service",
                "skiff_blog_7_worker@1.service",
                "skiff_blog_7_worker@2.service",
                "skiff_blog_7_cron0.timer",
                "skiff_blog_7_cron1.timer",
            ]
        );
        let file = |name: &str| {
            units
                .files
                .iter()
                .find(|(n, _)| n == name)
                .unwrap()
                .1
                .clone()
        };
        let worker = file("skiff_blog_7_worker@.service");
        assert!(worker.contains("KillSignal=SIGINT\n"), "{worker}");
        assert!(worker.contains("TimeoutStopSec=30s\n"));
        assert!(
            worker.contains("User=app-blog\nGroup=app-blog\n"),
            "{worker}"
        );
        assert!(worker.contains(
            "ExecStart=/usr/local/share/skiff/bin/skiff-run /srv/skiff/apps/blog/units/7/worker.job\n"
        ));
        // the command stays in the job file, never in the unit (no systemd quoting)
        assert!(!worker.contains("w.py"));
        assert_eq!(
            file("worker.job"),
            "kind worker\ndir /srv/skiff/apps/blog/releases/7\nenv /srv/skiff/apps/blog/env/7.run\ncommand python w.py --x '%s'\n"
        );
        let web = file("skiff_blog_7_cron0.service");
        assert!(web.contains("User=nobody\nGroup=nogroup\n"), "{web}");
        assert!(web.contains("EnvironmentFile=/etc/skiff/cron.secret"));
        assert!(web.contains("(GET /tasks/x?a=50%%)"), "{web}");
        assert!(
            web.contains(
                "ExecStart=/usr/local/share/skiff/bin/skiff-run --web blog.test /tasks/x?a=50%% 300\n"
            ),
            "{web}"
        );
        let timer = file("skiff_blog_7_cron1.timer");
        assert!(timer.contains("OnCalendar=*:*:0/2\n"), "{timer}");
        assert!(timer.contains("Unit=skiff_blog_7_cron1.service\n"));
        assert!(file("skiff_blog_7_cron0.timer").contains("OnCalendar=*-*-* *:0/5:00\n"));
        assert!(!file("skiff_blog_7_cron1.service").contains("EnvironmentFile"));
        assert!(file("skiff_blog_7_cron1.service").contains("TimeoutStartSec=60s\n"));

        // another node of the app: the same files, no timers enabled
        let other = for_release(&config, "blog.test", 7, false).unwrap();
        assert_eq!(other.files, units.files);
        assert!(other.enable.iter().all(|u| u.ends_with(".service")));
        // the wire form: one line per file, then the enable list
        let wire = units.encode();
        assert_eq!(wire.lines().count(), units.files.len() + 1);
        assert!(wire.lines().last().unwrap().starts_with("enable "));
    }

    #[test]
    fn an_app_without_workers_or_cron_has_no_units() {
        let units = for_release(&app(""), "blog.test", 1, true).unwrap();
        assert!(units.is_empty());
        // nothing reaches the node: it never needs systemd for this app
        assert_eq!(units.encode(), "");
        assert!(!needs_systemd(&app("")));
    }
}
