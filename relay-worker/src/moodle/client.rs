//! One Moodle web-service call: POST to `/webservice/rest/server.php` with the
//! token in the body (never in the URL), parse the answer, log one audit line.
//!
//! Moodle reports errors as HTTP 200 with `{"exception", "errorcode",
//! "message"[, "debuginfo"]}`; HTTP 403 with an empty body means web services
//! or REST are disabled. What each error means for the relay is decided in
//! [`super::error`], not here.

use std::time::{Duration, Instant};

use relay_contract::SiteId;
use serde_json::Value;

use super::error::MoodleError;
use super::form;
use super::token::TokenSource;

/// A site's Moodle web services.
#[derive(Debug)]
pub struct MoodleClient {
    site: SiteId,
    endpoint: String,
    token: TokenSource,
    timeout: Duration,
    http: reqwest::Client,
}

impl MoodleClient {
    /// `moodle_url` is the site's wwwroot (validated by the configuration).
    pub fn new(
        site: SiteId,
        moodle_url: &str,
        token: TokenSource,
        timeout: Duration,
    ) -> Result<Self, MoodleError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("relay-worker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| MoodleError::Connect(e.to_string()))?;
        let endpoint = format!(
            "{}/webservice/rest/server.php",
            moodle_url.trim_end_matches('/')
        );
        Ok(MoodleClient {
            site,
            endpoint,
            token,
            timeout,
            http,
        })
    }

    /// When the token expires, if its file says (read with the last call).
    pub fn token_expires_at(&self) -> Option<jiff::Timestamp> {
        self.token.expires_at()
    }

    /// Calls `function` with `args` (a JSON object, sent in bracket notation).
    pub async fn call(&self, function: &str, args: &Value) -> Result<Value, MoodleError> {
        let started = Instant::now();
        let params = form::encode(args);
        let result = self.send(function, &params).await;
        let elapsed = started.elapsed();
        let (outcome, status) = match &result {
            Ok((status, _)) => ("ok".to_owned(), *status),
            Err(e) => (e.0.code(), e.1),
        };
        tracing::info!(
            target: "relay_worker::moodle::audit",
            site = %self.site, function, params = %describe(&params),
            outcome, duration_ms = elapsed.as_millis() as u64, http_status = status,
            "moodle call"
        );
        result.map(|(_, value)| value).map_err(|e| e.0)
    }

    async fn send(
        &self,
        function: &str,
        params: &[(String, String)],
    ) -> Result<(u16, Value), (MoodleError, u16)> {
        let token = self.token.get().map_err(|e| (MoodleError::from(e), 0))?;
        let mut body: Vec<(&str, &str)> = vec![
            ("wstoken", token.expose()),
            ("wsfunction", function),
            ("moodlewsrestformat", "json"),
        ];
        body.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let response = self
            .http
            .post(&self.endpoint)
            .form(&body)
            .send()
            .await
            .map_err(|e| {
                let error = if e.is_timeout() {
                    MoodleError::Timeout(self.timeout)
                } else {
                    MoodleError::Connect(without_url(&e))
                };
                (error, 0)
            })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response
            .text()
            .await
            .map_err(|e| (MoodleError::Decode(without_url(&e)), status))?;
        parse(status, retry_after, &text)
            .map(|v| (status, v))
            .map_err(|e| (e, status))
    }
}

/// Turns an HTTP answer into Moodle's result or a typed error.
pub fn parse(status: u16, retry_after: Option<Duration>, body: &str) -> Result<Value, MoodleError> {
    match status {
        200 => {}
        403 if body.trim().is_empty() => return Err(MoodleError::Disabled),
        _ => {
            return Err(MoodleError::Http {
                status,
                retry_after,
            });
        }
    }
    let value: Value =
        serde_json::from_str(body).map_err(|e| MoodleError::Decode(e.to_string()))?;
    if let Some(errorcode) = value.get("errorcode").and_then(Value::as_str)
        && value.get("exception").is_some()
    {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        return Err(MoodleError::Exception {
            exception: text("exception").unwrap_or_default(),
            errorcode: errorcode.to_owned(),
            message: text("message").unwrap_or_default(),
            debuginfo: text("debuginfo"),
        });
    }
    Ok(value)
}

/// Parameters for the audit line: names and values, cut short; the token is
/// never among them (it is added to the body separately).
fn describe(params: &[(String, String)]) -> String {
    let text: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let text = text.join("&");
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// reqwest's message without the URL it may quote.
fn without_url(error: &reqwest::Error) -> String {
    let mut error = error.to_string();
    if let Some(at) = error.find(" for url (") {
        error.truncate(at);
    }
    relay_contract::redact::credentials(&error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moodle_exceptions_arrive_as_http_200_bodies() {
        let body = r#"{"exception":"core\\exception\\moodle_exception","errorcode":"invalidtoken","message":"Invalid token - token not found"}"#;
        match parse(200, None, body) {
            Err(MoodleError::Exception {
                errorcode,
                exception,
                ..
            }) => {
                assert_eq!(errorcode, "invalidtoken");
                assert_eq!(exception, r"core\exception\moodle_exception");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_403_means_web_services_are_off() {
        assert_eq!(parse(403, None, ""), Err(MoodleError::Disabled));
        assert!(matches!(
            parse(403, None, "<html>"),
            Err(MoodleError::Http { status: 403, .. })
        ));
    }

    #[test]
    fn success_is_any_json_even_an_empty_list() {
        assert_eq!(parse(200, None, "[]"), Ok(serde_json::json!([])));
        assert_eq!(parse(200, None, "null"), Ok(Value::Null));
        assert!(matches!(
            parse(200, None, "<br /><b>Fatal error</b>"),
            Err(MoodleError::Decode(_))
        ));
    }

    #[test]
    fn retry_after_is_kept() {
        let e = parse(503, Some(Duration::from_secs(7)), "");
        assert_eq!(
            e.err().and_then(|e| e.retry_after()),
            Some(Duration::from_secs(7))
        );
    }
}
