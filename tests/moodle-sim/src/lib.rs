//! A Moodle 4.5 web-service simulator for tests: a real HTTP server on
//! `127.0.0.1:0` answering `POST /webservice/rest/server.php` like Moodle 4.5.6
//! does (DESIGN.md §7): results as JSON, every error as HTTP 200 with
//! `{"exception","errorcode","message"}`, HTTP 403 with an empty body when web
//! services are off.
//!
//! Functions: `core_webservice_get_site_info`, `core_user_get_users_by_field`,
//! `core_course_get_courses_by_field`,
//! `core_completion_get_course_completion_status`; any other function is
//! refused as not in the service (`accessexception`).
//!
//! Knobs change its behaviour while it runs; it records every call (time,
//! function, ids) and the highest number of calls it served at once:
//!
//! - latency: [`MoodleSim::set_latency`];
//! - HTTP statuses (a proxy or PHP-FPM failing before Moodle runs):
//!   [`MoodleSim::fail_next`] (the next n calls), [`MoodleSim::fail_all`]
//!   (every call), [`MoodleSim::fail_function`] (every call of one function);
//!   [`MoodleSim::clear_failures`] ends all three;
//! - refused credentials (`invalidtoken`): [`MoodleSim::invalid_token_from_call`]
//!   (every call from the nth on), [`MoodleSim::invalid_token_for`] (every
//!   call of one function); [`MoodleSim::accept_token`] ends both;
//! - other Moodle errors: [`MoodleSim::deadlock_next`],
//!   [`MoodleSim::invalid_parameter_for`]; web services off:
//!   [`MoodleSim::set_disabled`]; data: [`MoodleSim::delete_user`].

// Moodle's course object is large enough for `json!`'s default limit.
#![recursion_limit = "256"]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{RawForm, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// One call as the simulator saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    pub function: String,
    /// Ids asked for (users, courses), in order.
    pub ids: Vec<i64>,
    /// Whether it was answered with a success.
    pub ok: bool,
}

#[derive(Debug, Default)]
struct Knobs {
    latency: Duration,
    /// (status, calls left, Retry-After seconds)
    status_burst: Option<(u16, u32, Option<u64>)>,
    /// Every call gets this HTTP status.
    status_always: Option<u16>,
    /// Every call of the function gets this HTTP status.
    status_for: BTreeMap<String, u16>,
    invalid_token_from_call: Option<usize>,
    /// Calls of these functions are refused with `invalidtoken`.
    invalid_token_for: BTreeSet<String>,
    accepted_tokens: BTreeSet<String>,
    deadlocks_left: u32,
    invalid_parameter_for: Option<String>,
    disabled: bool,
    deleted_users: BTreeSet<i64>,
}

#[derive(Debug, Default)]
struct Inner {
    knobs: Knobs,
    calls: Vec<Call>,
    running: usize,
    max_running: usize,
}

/// A running simulator; stops when dropped.
#[derive(Debug)]
pub struct MoodleSim {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl MoodleSim {
    /// Starts on 127.0.0.1 with one accepted token.
    pub async fn start(token: &str) -> std::io::Result<MoodleSim> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut inner = Inner::default();
        inner.knobs.accepted_tokens.insert(token.to_owned());
        let inner = Arc::new(Mutex::new(inner));
        let app = Router::new()
            .route("/webservice/rest/server.php", post(serve))
            .with_state(inner.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(MoodleSim {
            addr,
            inner,
            stop: Some(tx),
        })
    }

    /// The wwwroot to configure (`moodle_url`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Every answer takes at least this long.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().knobs.latency = latency;
    }

    /// The next `calls` calls get HTTP `status`, with `Retry-After` if given.
    pub fn fail_next(&self, status: u16, calls: u32, retry_after_s: Option<u64>) {
        self.lock().knobs.status_burst = Some((status, calls, retry_after_s));
    }

    /// Every call gets HTTP `status` (e.g. 503) until [`Self::clear_failures`].
    pub fn fail_all(&self, status: u16) {
        self.lock().knobs.status_always = Some(status);
    }

    /// Every call of `function` gets HTTP `status` until [`Self::clear_failures`];
    /// other functions answer as usual.
    pub fn fail_function(&self, function: &str, status: u16) {
        self.lock()
            .knobs
            .status_for
            .insert(function.to_owned(), status);
    }

    /// Ends [`Self::fail_next`], [`Self::fail_all`] and [`Self::fail_function`].
    pub fn clear_failures(&self) {
        let mut inner = self.lock();
        inner.knobs.status_burst = None;
        inner.knobs.status_always = None;
        inner.knobs.status_for.clear();
    }

    /// From the `n`th call on (1-based, counting every call), every token is invalid.
    pub fn invalid_token_from_call(&self, n: usize) {
        self.lock().knobs.invalid_token_from_call = Some(n);
    }

    /// Every call of `function` is refused with Moodle's `invalidtoken` error,
    /// whatever the token; other functions (the `core_webservice_get_site_info`
    /// probe among them, unless named) answer as usual. Until [`Self::accept_token`].
    pub fn invalid_token_for(&self, function: &str) {
        self.lock()
            .knobs
            .invalid_token_for
            .insert(function.to_owned());
    }

    /// Accepts `token` (again): ends [`Self::invalid_token_from_call`] and
    /// [`Self::invalid_token_for`], and rotates.
    pub fn accept_token(&self, token: &str) {
        let mut inner = self.lock();
        inner.knobs.invalid_token_from_call = None;
        inner.knobs.invalid_token_for.clear();
        inner.knobs.accepted_tokens.insert(token.to_owned());
    }

    /// The next `calls` calls fail with a deadlock `dmlwriteexception`.
    pub fn deadlock_next(&self, calls: u32) {
        self.lock().knobs.deadlocks_left = calls;
    }

    /// Every call of `function` fails with `invalidparameter`.
    pub fn invalid_parameter_for(&self, function: &str) {
        self.lock().knobs.invalid_parameter_for = Some(function.to_owned());
    }

    /// Web services off: HTTP 403 with an empty body.
    pub fn set_disabled(&self, disabled: bool) {
        self.lock().knobs.disabled = disabled;
    }

    /// This user no longer exists: lookups leave it out.
    pub fn delete_user(&self, id: i64) {
        self.lock().knobs.deleted_users.insert(id);
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Calls of `function` so far.
    pub fn count(&self, function: &str) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.function == function)
            .count()
    }

    /// The most calls it was serving at the same moment.
    pub fn max_concurrency(&self) -> usize {
        self.lock().max_running
    }

    /// The most calls that started within any window of `width`.
    pub fn max_calls_within(&self, width: Duration) -> usize {
        let times: Vec<Instant> = self.lock().calls.iter().map(|c| c.at).collect();
        let mut best = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end].duration_since(times[start]) >= width {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }
}

impl Drop for MoodleSim {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What to answer, decided when the call arrives.
enum Plan {
    Status(u16, Option<u64>),
    Disabled,
    Error(&'static str, &'static str, String),
    Answer,
}

async fn serve(State(inner): State<Arc<Mutex<Inner>>>, RawForm(body): RawForm) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let function = get("wsfunction").unwrap_or_default();
    let token = get("wstoken").unwrap_or_default();
    let ids = requested_ids(&form);
    let (plan, latency) = {
        let mut inner = lock(&inner);
        inner.running += 1;
        inner.max_running = inner.max_running.max(inner.running);
        let number = inner.calls.len() + 1;
        let plan = decide(&mut inner.knobs, number, &function, &token);
        let ok = matches!(plan, Plan::Answer);
        inner.calls.push(Call {
            at: Instant::now(),
            function: function.clone(),
            ids: ids.clone(),
            ok,
        });
        (plan, inner.knobs.latency)
    };
    tokio::time::sleep(latency).await;
    let response = match plan {
        Plan::Disabled => StatusCode::FORBIDDEN.into_response(),
        Plan::Status(status, retry_after) => {
            let mut headers = HeaderMap::new();
            if let Some(s) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
                headers.insert("retry-after", s);
            }
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            (status, headers, "").into_response()
        }
        Plan::Error(exception, errorcode, message) => json_response(
            json!({"exception": exception, "errorcode": errorcode, "message": message}),
        ),
        Plan::Answer => {
            let deleted = lock(&inner).knobs.deleted_users.clone();
            json_response(answer(&function, &ids, &deleted))
        }
    };
    lock(&inner).running -= 1;
    response
}

fn decide(knobs: &mut Knobs, number: usize, function: &str, token: &str) -> Plan {
    if knobs.disabled {
        return Plan::Disabled;
    }
    if let Some((status, left, retry_after)) = knobs.status_burst {
        knobs.status_burst = (left > 1).then_some((status, left - 1, retry_after));
        return Plan::Status(status, retry_after);
    }
    if let Some(status) = knobs
        .status_always
        .or_else(|| knobs.status_for.get(function).copied())
    {
        return Plan::Status(status, None);
    }
    let token_revoked = knobs.invalid_token_from_call.is_some_and(|n| number >= n)
        || knobs.invalid_token_for.contains(function);
    if token_revoked || !knobs.accepted_tokens.contains(token) {
        return Plan::Error(
            r"core\exception\moodle_exception",
            "invalidtoken",
            "Invalid token - token not found".to_owned(),
        );
    }
    if !FUNCTIONS.contains(&function) {
        return Plan::Error(
            "webservice_access_exception",
            "accessexception",
            "Access control exception".to_owned(),
        );
    }
    if knobs.deadlocks_left > 0 {
        knobs.deadlocks_left -= 1;
        return Plan::Error(
            "dml_write_exception",
            "dmlwriteexception",
            "Error writing to database (ERROR:  deadlock detected)".to_owned(),
        );
    }
    if knobs.invalid_parameter_for.as_deref() == Some(function) {
        return Plan::Error(
            r"core\exception\invalid_parameter_exception",
            "invalidparameter",
            "Invalid parameter value detected".to_owned(),
        );
    }
    Plan::Answer
}

const FUNCTIONS: [&str; 4] = [
    "core_webservice_get_site_info",
    "core_user_get_users_by_field",
    "core_course_get_courses_by_field",
    "core_completion_get_course_completion_status",
];

/// Ids in `values[i]` (users), `value` with field `id`/`ids` (courses), or `userid`.
fn requested_ids(form: &[(String, String)]) -> Vec<i64> {
    let mut ids = Vec::new();
    for (key, value) in form {
        if key.starts_with("values[") || key == "userid" {
            ids.extend(value.parse::<i64>().ok());
        } else if key == "value" {
            ids.extend(
                value
                    .split(',')
                    .filter_map(|v| v.trim().parse::<i64>().ok()),
            );
        }
    }
    ids
}

fn answer(function: &str, ids: &[i64], deleted: &BTreeSet<i64>) -> Value {
    match function {
        "core_webservice_get_site_info" => json!({
            "sitename": "Relay Simulator", "username": "relay-service", "firstname": "Relay",
            "lastname": "Service", "fullname": "Relay Service", "lang": "en", "userid": 3,
            "siteurl": "http://127.0.0.1", "userpictureurl": "", "functions": FUNCTIONS.iter()
                .map(|f| json!({"name": f, "version": "2024100706"})).collect::<Vec<_>>(),
            "downloadfiles": 0, "uploadfiles": 0, "release": "4.5.6+ (Build: 20250801)",
            "version": "2024100706", "mobilecssurl": "", "advancedfeatures": [],
            "usercanmanageownfiles": false, "userquota": 0, "usermaxuploadfilesize": 0,
            "userhomepage": 1, "userprivateaccesskey": "", "siteid": 1,
            "sitecalendartype": "gregorian", "usercalendartype": "gregorian",
            "userissiteadmin": false, "theme": "boost", "limitconcurrentlogins": 0,
            "policyagreed": 0
        }),
        "core_user_get_users_by_field" => Value::Array(
            ids.iter()
                .filter(|id| !deleted.contains(id))
                .map(|id| json!({
                    "id": id, "username": format!("user{id}"), "firstname": "Sim",
                    "lastname": format!("User {id}"), "fullname": format!("Sim User {id}"),
                    "email": format!("user{id}@example.edu"), "department": "", "institution": "",
                    "idnumber": format!("U{id:05}"), "firstaccess": 0, "lastaccess": 0, "auth": "manual",
                    "suspended": false, "confirmed": true, "lang": "en", "theme": "", "timezone": "99",
                    "mailformat": 1, "description": "", "descriptionformat": 1,
                    "profileimageurlsmall": "", "profileimageurl": ""
                }))
                .collect(),
        ),
        "core_course_get_courses_by_field" => json!({
            "courses": ids.iter().map(|id| json!({
                "id": id, "fullname": format!("Course {id}"), "displayname": format!("Course {id}"),
                "shortname": format!("C{id}"), "categoryid": 1, "categoryname": "Category 1",
                "sortorder": 10000 + id, "summary": "", "summaryformat": 1, "summaryfiles": [],
                "overviewfiles": [], "showactivitydates": true, "showcompletionconditions": true,
                "contacts": [], "enrollmentmethods": ["manual"], "idnumber": "", "format": "topics",
                "showgrades": 1, "newsitems": 5, "startdate": 1_795_000_000, "enddate": 0,
                "maxbytes": 0, "showreports": 0, "visible": 1, "groupmode": 0,
                "groupmodeforce": 0, "defaultgroupingid": 0, "enablecompletion": 1,
                "completionnotify": 0, "lang": "", "theme": "", "marker": 0, "legacyfiles": 0,
                "calendartype": "", "timecreated": 1_795_000_000, "timemodified": 1_795_000_000,
                "requested": 0, "cacherev": 1_795_000_000, "filters": [], "courseformatoptions": []
            })).collect::<Vec<_>>(),
            "warnings": []
        }),
        "core_completion_get_course_completion_status" => json!({
            "completionstatus": {
                "completed": true, "aggregation": 1,
                "completions": [{
                    "type": 4, "title": "Activity completion", "status": "Yes", "complete": true,
                    "timecompleted": 1_795_515_300,
                    "details": {"type": "Activity completion", "criteria": "Quiz 1",
                                "requirement": "Marking yourself complete", "status": ""}
                }]
            },
            "warnings": []
        }),
        _ => Value::Null,
    }
}

fn json_response(value: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        value.to_string(),
    )
        .into_response()
}
