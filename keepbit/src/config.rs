//! `Config`: parsed and validated once, from a TOML file and command-line overrides.
//! Units are the last word of each field name.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the client listener binds to.
    pub bind: String,
    /// Client port; 0 picks a free port (tests).
    pub port: u16,
    /// Password clients must send with AUTH or HELLO … AUTH; none when unset.
    pub requirepass: Option<String>,
    /// Number of logical databases (SELECT 0..databases-1).
    pub databases: usize,
    /// Most simultaneous client connections.
    pub maxclients: usize,
    /// Longest bulk string a client may send (Redis's proto-max-bulk-len).
    pub proto_max_bulk_len_bytes: usize,
    /// Most elements in one multibulk request.
    pub multibulk_len_max: usize,
    /// Most unparsed bytes buffered for one client (Redis's client-query-buffer-limit).
    pub client_query_buffer_limit_bytes: usize,
    /// Most pub/sub messages queued for a slow subscriber before it is disconnected.
    pub pubsub_queue_len_max: usize,
    /// Close idle client connections after this many seconds (0: never).
    pub timeout_s: u64,
    /// Where the node keeps its data.
    pub data_dir: PathBuf,
    /// Log level: error, warn, info, debug, trace.
    pub log_level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1".into(),
            port: 6379,
            requirepass: None,
            databases: 16,
            maxclients: 10_000,
            proto_max_bulk_len_bytes: 512 * 1024 * 1024,
            multibulk_len_max: 16 * 1024 * 1024,
            client_query_buffer_limit_bytes: 1024 * 1024 * 1024,
            pubsub_queue_len_max: 100_000,
            timeout_s: 0,
            data_dir: PathBuf::from("keepbit-data"),
            log_level: "info".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting {field}: {message}")]
    Invalid { field: &'static str, message: String },
}

impl Config {
    pub fn from_toml(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.message().to_string(),
        })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| {
            Err(ConfigError::Invalid {
                field,
                message: message.to_string(),
            })
        };
        if self.databases == 0 || self.databases > 1 << 20 {
            return invalid("databases", "must be between 1 and 1048576");
        }
        if self.maxclients == 0 {
            return invalid("maxclients", "must be at least 1");
        }
        if self.proto_max_bulk_len_bytes < 1024 {
            return invalid("proto_max_bulk_len_bytes", "must be at least 1024");
        }
        if self.multibulk_len_max == 0 {
            return invalid("multibulk_len_max", "must be at least 1");
        }
        if self.client_query_buffer_limit_bytes < 1024 * 1024 {
            return invalid("client_query_buffer_limit_bytes", "must be at least 1048576");
        }
        if self.pubsub_queue_len_max == 0 {
            return invalid("pubsub_queue_len_max", "must be at least 1");
        }
        if self.bind.parse::<std::net::IpAddr>().is_err() && self.bind != "localhost" {
            return invalid("bind", "must be an IP address");
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&self.log_level.as_str()) {
            return invalid("log_level", "must be one of error, warn, info, debug, trace");
        }
        Ok(())
    }

    pub fn resp_limits(&self) -> keepbit_resp::Limits {
        keepbit_resp::Limits {
            bulk_len_max: self.proto_max_bulk_len_bytes,
            multibulk_len_max: self.multibulk_len_max,
            ..keepbit_resp::Limits::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let c: Config = toml::from_str("port = 7000\nrequirepass = \"s\"").unwrap();
        assert_eq!(c.port, 7000);
        assert_eq!(c.requirepass.as_deref(), Some("s"));
        assert_eq!(c.databases, 16);
        assert!(toml::from_str::<Config>("prot = 1").is_err());
        let bad = Config { databases: 0, ..Config::default() };
        assert!(bad.validate().is_err());
        assert!(Config::default().validate().is_ok());
    }
}
