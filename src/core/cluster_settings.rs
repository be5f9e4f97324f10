//! The operator's cluster-wide settings: one YAML file that whoever installs the operator owns
//! (the chart renders it from its values into a ConfigMap), read once at start.
//!
//! Why a file and not a cluster-scoped resource: these settings belong to the platform team that
//! installs the operator, not to the teams that write policies; a file is versioned with the
//! chart's values (GitOps-friendly), needs no RBAC beyond installing the chart, and a change rolls
//! the operator's pod (the chart's checksum annotation), which resumes every rollout from its
//! status. A bad file stops the operator at start with the field to fix, never mid-rollout.

use serde::{Deserialize, Serialize};

use crate::core::api::{FreezeWindow, Subscription};
use crate::core::freeze::{self, Window};

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSettings {
    /// Freeze windows for every policy, besides their own: `cluster/NAME` in status.
    #[serde(default)]
    pub freeze_windows: Vec<FreezeWindow>,
    /// Destinations told about every policy's transitions, besides the policy's own:
    /// `cluster/NAME` in status. Their Secrets live in the operator's namespace.
    #[serde(default)]
    pub notifications: Vec<Subscription>,
}

/// The settings, read and checked.
#[derive(Clone, Debug, Default)]
pub struct Read {
    pub freeze_windows: Vec<Window>,
    pub notifications: Vec<Subscription>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{path}: {source}")]
    Shape { path: String, source: serde_yaml::Error },
    #[error("{0}")]
    Window(#[from] freeze::WindowError),
    #[error("freezeWindows[].name {0:?} is used twice; rename or remove the duplicate window")]
    DuplicateWindow(String),
    #[error("{0}")]
    Notification(String),
}

/// What admission checks of a policy's destination, for the operator's own.
fn check_subscription(s: &Subscription) -> Result<(), String> {
    let kinds = [s.webhook.is_some(), s.slack.is_some(), s.alertmanager.is_some()];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err("needs exactly one of webhook, slack or alertmanager".into());
    }
    let url = [
        s.webhook.as_ref().map(|w| w.url_secret_ref.is_some()),
        s.slack.as_ref().map(|w| w.url_secret_ref.is_some()),
        s.alertmanager.as_ref().map(|w| w.url_secret_ref.is_some()),
    ];
    if url.contains(&Some(false)) {
        return Err("urlSecretRef is required: the Secret key (in the operator's namespace) that holds the URL".into());
    }
    Ok(())
}

impl ClusterSettings {
    /// Reads the file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Read, SettingsError> {
        let shape = |source| SettingsError::Shape { path: path.to_string(), source };
        let settings: ClusterSettings = if text.trim().is_empty() {
            ClusterSettings::default()
        } else {
            serde_yaml::from_str(text).map_err(shape)?
        };
        let mut names: Vec<&str> = settings.freeze_windows.iter().map(|w| w.name.as_str()).collect();
        names.sort_unstable();
        if let Some(twice) = names.windows(2).find(|p| p[0] == p[1]) {
            return Err(SettingsError::DuplicateWindow(twice[0].to_string()));
        }
        let freeze_windows = freeze::read_all(&settings.freeze_windows, &format!("{path}: freezeWindows"), "cluster/")?;
        for (i, s) in settings.notifications.iter().enumerate() {
            check_subscription(s)
                .map_err(|why| SettingsError::Notification(format!("{path}: notifications[{i}]: {why}")))?;
        }
        Ok(Read { freeze_windows, notifications: settings.notifications })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_windows_and_names_what_is_wrong() {
        let ok =
            "freezeWindows:\n- {name: weekend, schedule: '0 18 * * FRI', duration: 63h, timeZone: Europe/Berlin}\n";
        let read = ClusterSettings::parse(ok, "settings.yaml").unwrap();
        assert_eq!(read.freeze_windows[0].name, "cluster/weekend");
        assert!(ClusterSettings::parse("", "s.yaml").unwrap().freeze_windows.is_empty());
        let cases = [
            ("freezeWindow: []", "unknown field `freezeWindow`"),
            (
                "freezeWindows:\n- {name: w, schedule: '0 18 * * FRI', duration: 1h, timeZone: Mars/Olympus}",
                "s.yaml: freezeWindows[0].timeZone: \"Mars/Olympus\" is not an IANA time zone name",
            ),
            (
                "freezeWindows:\n- {name: w, start: '2026-12-24T00:00:00Z', end: '2026-12-25T00:00:00Z'}\n- {name: w, start: '2026-12-31T00:00:00Z', end: '2027-01-01T00:00:00Z'}",
                "freezeWindows[].name \"w\" is used twice",
            ),
        ];
        for (text, says) in cases {
            let e = ClusterSettings::parse(text, "s.yaml").unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
