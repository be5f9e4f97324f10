//! `status --watch`: watches (not polls) the policy, its two Deployments and its Events, and
//! redraws on every change. On a terminal the screen is redrawn in place (cursor home, each line
//! overwritten and cleared to its end, nothing cleared first, so nothing flickers), and a
//! one-second clock redraws from the local caches only, so soak times count down between
//! changes. Elsewhere (a pipe, a CI log) it prints one line per change; with `-o json|yaml`
//! one document per change.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};

use super::report::{Settled, Snapshot, StatusReport, status_report, summary_line};
use super::screen::{Style, status_screen};
use super::{Error, Format, Kube, Result, StatusArgs, events_selector, exit, print_as, style_for_stdout};
use crate::core::api::{RedisPoolPolicy, canary_name};

/// What a watch stream said, as far as the loop cares.
enum Seen {
    Change,
    /// The stream's initial list is complete.
    Synced(usize),
    PolicyDeleted,
    Trouble(String),
    /// Retrying cannot help: the user may not watch this (403) or the API is missing (404).
    Fatal(String),
}

pub async fn run(kube: &Kube, args: &StatusArgs) -> Result<u8> {
    // A wrong name or namespace fails at once with its own message, before anything is watched.
    let first = kube.policy(&args.name).await?;
    let (watched, mut changes) = Watched::start(kube, &args.name, &first.spec.target_ref.name);
    let mut out = Screen::new(args);
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    let deadline = async {
        match args.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let key = ObjectRef::new(&args.name).within(&kube.namespace);
    let mut synced = [false; 4];
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let mut ticked = false;
        tokio::select! {
            seen = changes.next() => match seen {
                Some(Seen::Change) => out.trouble = None,
                Some(Seen::Synced(i)) => synced[i] = true,
                Some(Seen::Trouble(why)) => out.trouble(why),
                Some(Seen::Fatal(why)) => {
                    out.leave();
                    return Err(Error::Api { what: "watch".into(), why });
                }
                Some(Seen::PolicyDeleted) => {
                    out.leave();
                    return Err(Error::Refused(format!("redispoolpolicy {:?} was deleted", args.name)));
                }
                None => return Err(Error::Refused("the watch ended".into())),
            },
            _ = clock.tick() => ticked = true,
            _ = &mut deadline => {
                out.leave();
                let waited = humantime::format_duration(args.timeout.unwrap_or_default());
                return Err(Error::Timeout(format!("{} did not finish within {waited}", args.name)));
            }
            _ = &mut ctrl_c => {
                out.leave();
                return Ok(130);
            }
        }
        // Until every initial list is complete, a frame would show gaps.
        if synced.contains(&false) {
            continue;
        }
        let Some(snapshot) = watched.snapshot(&key) else { continue };
        let report = status_report(&snapshot);
        out.draw(&report, ticked);
        if args.until_done
            && let Some(settled) = report.settled
        {
            return Ok(out.finish(&report, settled));
        }
    }
}

/// The four caches `status --watch` draws from.
struct Watched {
    policies: Store<RedisPoolPolicy>,
    targets: Store<Deployment>,
    canaries: Store<Deployment>,
    events: Store<Event>,
}

impl Watched {
    /// Watches the policy `name`, its target and canary, and its Events: the caches, and one
    /// stream of what each watch says.
    fn start(kube: &Kube, name: &str, target: &str) -> (Watched, stream::BoxStream<'static, Seen>) {
        let by_name = |n: &str| watcher::Config::default().fields(&format!("metadata.name={n}"));
        let (policies, policy_w) = reflector::store::<RedisPoolPolicy>();
        let (targets, target_w) = reflector::store::<Deployment>();
        let (canaries, canary_w) = reflector::store::<Deployment>();
        let (events, events_w) = reflector::store::<Event>();
        let policy_stream = reflector(policy_w, watcher(kube.api::<RedisPoolPolicy>(), by_name(name)))
            .default_backoff()
            .map(|e| match e {
                Ok(watcher::Event::Delete(_)) => Seen::PolicyDeleted,
                other => seen(0, other),
            });
        let target_stream = reflector(target_w, watcher(kube.api::<Deployment>(), by_name(target)))
            .default_backoff()
            .map(|e| seen(1, e));
        let canary_stream = reflector(canary_w, watcher(kube.api::<Deployment>(), by_name(&canary_name(target))))
            .default_backoff()
            .map(|e| seen(2, e));
        let events_config = watcher::Config::default().fields(&events_selector(name));
        let events_stream =
            reflector(events_w, watcher(kube.api::<Event>(), events_config)).default_backoff().map(|e| seen(3, e));
        let changes = stream::select_all([
            policy_stream.boxed(),
            target_stream.boxed(),
            canary_stream.boxed(),
            events_stream.boxed(),
        ]);
        (Watched { policies, targets, canaries, events }, changes.boxed())
    }

    fn snapshot(&self, key: &ObjectRef<RedisPoolPolicy>) -> Option<Snapshot> {
        let policy = self.policies.get(key)?;
        Some(Snapshot {
            policy: (*policy).clone(),
            target: first_of(&self.targets),
            canary: first_of(&self.canaries),
            events: self.events.state().iter().map(|e| (**e).clone()).collect(),
            now: jiff::Timestamp::now(),
        })
    }
}

fn seen<K>(stream: usize, e: Result<watcher::Event<K>, watcher::Error>) -> Seen {
    use watcher::Error::{InitialListFailed, WatchStartFailed};
    match e {
        Ok(watcher::Event::InitDone) => Seen::Synced(stream),
        Ok(_) => Seen::Change,
        Err(InitialListFailed(kube::Error::Api(s)) | WatchStartFailed(kube::Error::Api(s)))
            if s.code == 403 || s.code == 404 =>
        {
            Seen::Fatal(s.message.clone())
        }
        Err(e) => Seen::Trouble(e.to_string()),
    }
}

fn first_of(store: &Store<Deployment>) -> Option<Deployment> {
    store.state().first().map(|d| (**d).clone())
}

/// Where the frames go: a terminal redrawn in place, or a log of changes.
struct Screen {
    terminal: bool,
    style: Style,
    format: Option<Format>,
    events: usize,
    last: String,
    started: std::time::Instant,
    /// Something was printed (a frame, a line or a document).
    drew: bool,
    /// The terminal was cleared for the first frame.
    painted: bool,
    trouble: Option<String>,
}

impl Screen {
    /// The rollout settled: leave the screen, say how it ended, and the exit code for it.
    fn finish(&mut self, report: &StatusReport, settled: Settled) -> u8 {
        self.leave();
        let message = report.message.clone().unwrap_or_default();
        let said = if message.is_empty() { message } else { format!(": {message}") };
        println!("{}: {:?}{said}", report.name, report.phase);
        match settled {
            Settled::Succeeded => 0,
            Settled::Failed => exit::FAILED,
        }
    }

    fn new(args: &StatusArgs) -> Screen {
        Screen {
            terminal: std::io::stdout().is_terminal() && args.output.is_none(),
            style: style_for_stdout(),
            format: args.output,
            events: args.events,
            last: String::new(),
            started: std::time::Instant::now(),
            drew: false,
            painted: false,
            trouble: None,
        }
    }

    /// A watch failed and retries. Shown in the frame, or on stderr while there is none yet.
    fn trouble(&mut self, why: String) {
        if !self.drew && self.trouble.as_ref() != Some(&why) {
            eprintln!("watch interrupted, retrying: {why}");
        }
        self.trouble = Some(why);
    }

    /// Draws `r`. A clock tick changes only ages, which a log of changes does not want.
    fn draw(&mut self, r: &StatusReport, ticked: bool) {
        if ticked && !self.terminal {
            return;
        }
        self.drew = true;
        if let Some(format) = self.format {
            let doc = serde_json::to_string(r).unwrap_or_default();
            if doc != self.last {
                match format {
                    Format::Json => println!("{doc}"),
                    Format::Yaml => {
                        println!("---");
                        print_as(r, format);
                    }
                }
                self.last = doc;
            }
            return;
        }
        if !self.terminal {
            let line = summary_line(r);
            if line != self.last {
                println!("+{:<4} {line}", format!("{}s", self.started.elapsed().as_secs()));
                self.last = line;
            }
            return;
        }
        let mut text = status_screen(r, self.style, self.events);
        if let Some(why) = &self.trouble {
            text.push_str(&format!("\n(watch interrupted, reconnecting: {why})\n"));
        }
        if text == self.last {
            return;
        }
        let (width, height) = terminal_size::terminal_size().map_or((120, 50), |(w, h)| (w.0 as usize, h.0 as usize));
        let mut frame = String::new();
        if !self.painted {
            frame.push_str("\x1b[2J");
        }
        frame.push_str("\x1b[H");
        for line in text.lines().take(height.saturating_sub(1)) {
            // One column short of the edge: a full-width line would wrap on some terminals.
            frame.push_str(&truncate_visible(line, width.saturating_sub(1)));
            frame.push_str("\x1b[K\r\n");
        }
        frame.push_str("\x1b[J");
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(frame.as_bytes());
        let _ = stdout.flush();
        self.last = text;
        self.painted = true;
    }

    /// Leaves the last frame on screen and the cursor below it.
    fn leave(&mut self) {
        let _ = std::io::stdout().flush();
    }
}

/// Cuts a line to `width` visible characters, keeping colour codes whole.
fn truncate_visible(line: &str, width: usize) -> String {
    let mut out = String::with_capacity(line.len());
    let mut visible = 0;
    let mut chars = line.chars();
    let mut cut = false;
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            out.push(c);
            for c in chars.by_ref() {
                out.push(c);
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else if visible < width {
            out.push(c);
            visible += 1;
        } else {
            cut = true;
        }
    }
    if cut && out.contains('\x1b') {
        out.push_str("\x1b[0m");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::truncate_visible;

    #[test]
    fn truncation_counts_only_visible_characters() {
        assert_eq!(truncate_visible("abcdef", 3), "abc");
        assert_eq!(truncate_visible("\x1b[32mabc\x1b[0mdef", 4), "\x1b[32mabc\x1b[0md\x1b[0m");
        assert_eq!(truncate_visible("ab", 10), "ab");
    }
}
