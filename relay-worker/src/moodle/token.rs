//! Where the web-service token comes from. A token file is re-read whenever
//! its modification time or size changes, so rotating a token needs no restart.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

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
                let token = text.lines().next().unwrap_or("").trim().to_owned();
                if token.is_empty() {
                    return Err(TokenError::Empty(path.clone()));
                }
                let token = Secret::new(token);
                *cache = Some(Cached {
                    modified,
                    len,
                    token: token.clone(),
                });
                Ok(token)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
