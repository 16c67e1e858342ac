//! Where the web-service token comes from. A token file is re-read whenever
//! its modification time or size changes, so rotating a token needs no restart.
//!
//! A token file holds the token on its first line; a later line
//! `expires_at=<RFC 3339 time>` says when it expires (the plugin's
//! `setup_webservice.php --token-file` writes both). Other lines are ignored.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use jiff::Timestamp;

use crate::config::Secret;

/// A token that cannot be had; says where it was looked for, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token file {0}: {1}")]
    File(PathBuf, String),
    #[error("token file {0} is empty")]
    Empty(PathBuf),
    #[error("environment variable {0} is not set")]
    Env(String),
    #[error("no token configured (token_file or token_env)")]
    Missing,
}

/// The configured source of a site's token.
#[derive(Debug)]
pub enum TokenSource {
    File {
        path: PathBuf,
        cache: Mutex<Option<Cached>>,
    },
    Env(String),
    /// A fixed value (tests, or a token from elsewhere).
    Fixed(Secret),
    None,
}

/// The last value read from the file, with what identified that version.
#[derive(Debug, Clone)]
pub struct Cached {
    modified: Option<SystemTime>,
    len: u64,
    token: Secret,
    expires_at: Option<Timestamp>,
}

impl TokenSource {
    pub fn file(path: impl Into<PathBuf>) -> Self {
        TokenSource::File {
            path: path.into(),
            cache: Mutex::new(None),
        }
    }

    /// The current token: for a file, re-read if it changed since last time.
    pub fn get(&self) -> Result<Secret, TokenError> {
        match self {
            TokenSource::Fixed(token) => Ok(token.clone()),
            TokenSource::None => Err(TokenError::Missing),
            TokenSource::Env(var) => std::env::var(var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| Secret::new(v.trim()))
                .ok_or_else(|| TokenError::Env(var.clone())),
            TokenSource::File { path, cache } => {
                let meta = std::fs::metadata(path)
                    .map_err(|e| TokenError::File(path.clone(), e.to_string()))?;
                let (modified, len) = (meta.modified().ok(), meta.len());
                let mut cache = cache
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some(c) = cache.as_ref()
                    && c.modified == modified
                    && c.len == len
                {
                    return Ok(c.token.clone());
                }
                let text = std::fs::read_to_string(path)
                    .map_err(|e| TokenError::File(path.clone(), e.to_string()))?;
                let mut lines = text.lines();
                let token = lines.next().unwrap_or("").trim().to_owned();
                if token.is_empty() {
                    return Err(TokenError::Empty(path.clone()));
                }
                let token = Secret::new(token);
                *cache = Some(Cached {
                    modified,
                    len,
                    token: token.clone(),
                    expires_at: lines.find_map(expires_at),
                });
                Ok(token)
            }
        }
    }

    /// When the token last read from the file expires, if the file says.
    pub fn expires_at(&self) -> Option<Timestamp> {
        match self {
            TokenSource::File { cache, .. } => cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .as_ref()
                .and_then(|c| c.expires_at),
            _ => None,
        }
    }
}

/// The time of an `expires_at=` line; `None` for any other line or a time
/// that does not parse (the token still works; only the metric is missing).
fn expires_at(line: &str) -> Option<Timestamp> {
    let value = line.trim().strip_prefix("expires_at=")?;
    value.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_may_say_when_the_token_expires() {
        let dir = std::env::temp_dir().join(format!("relay-token-exp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("token");
        std::fs::write(&path, "tok\nexpires_at=2027-06-30T00:00:00Z\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let source = TokenSource::file(&path);
        assert_eq!(source.expires_at(), None, "nothing read yet");
        assert_eq!(
            source.get().map(|t| t.expose().to_owned()),
            Ok("tok".to_owned())
        );
        let at = source.expires_at().map(|t| t.as_second());
        assert_eq!(at, Some(1_814_313_600));
        // Rotated without an expiry (or an unreadable one): the token works, the expiry is unknown.
        std::fs::write(&path, "token-two\nexpires_at=next tuesday\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            source.get().map(|t| t.expose().to_owned()),
            Ok("token-two".to_owned())
        );
        assert_eq!(source.expires_at(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_rewritten_token_file_is_read_again() {
        let dir = std::env::temp_dir().join(format!("relay-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("token");
        std::fs::write(&path, "first-token\n").unwrap_or_else(|e| panic!("{e}"));
        let source = TokenSource::file(&path);
        assert_eq!(
            source.get().map(|t| t.expose().to_owned()),
            Ok("first-token".to_owned())
        );
        // A different length is a change even within the file system's time resolution.
        std::fs::write(&path, "the-rotated-token\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            source.get().map(|t| t.expose().to_owned()),
            Ok("the-rotated-token".to_owned())
        );
        std::fs::write(&path, "\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(source.get().err(), Some(TokenError::Empty(path.clone())));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn errors_name_the_source_never_the_value() {
        let missing = TokenSource::Env("RELAY_TEST_SURELY_UNSET_TOKEN".into())
            .get()
            .err();
        assert_eq!(
            missing,
            Some(TokenError::Env("RELAY_TEST_SURELY_UNSET_TOKEN".into()))
        );
    }
}
