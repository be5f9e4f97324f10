//! How the tools print what they report: text for people, JSON or YAML for programs.

use clap::ValueEnum;

/// `-o text|json|yaml`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
    Yaml,
}

/// `-o json|yaml`, where text is the default and has no name.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Output {
    /// The machine format, or None for text.
    pub fn format(self) -> Option<Format> {
        match self {
            Output::Text => None,
            Output::Json => Some(Format::Json),
            Output::Yaml => Some(Format::Yaml),
        }
    }
}

impl From<Option<Format>> for Output {
    fn from(f: Option<Format>) -> Self {
        match f {
            None => Output::Text,
            Some(Format::Json) => Output::Json,
            Some(Format::Yaml) => Output::Yaml,
        }
    }
}

pub fn print_as<T: serde::Serialize>(value: &T, format: Format) {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(value).map(|s| s + "\n").map_err(|e| e.to_string()),
        Format::Yaml => serde_yaml::to_string(value).map_err(|e| e.to_string()),
    };
    print!("{}", text.expect("reports serialize"));
}
