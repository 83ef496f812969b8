//! One HTTP attempt: sign, POST, read at most 10 KB of the answer, time it. Expected
//! failures (timeouts, refusals, 5xx) are values, not errors (STYLE: errors).

use std::time::{Duration, Instant};

use bytes::Bytes;
use entity::endpoint_url::EndpointUrl;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use super::{
    failure::describe_error,
    signing::{signed_headers, SigningKey, WebhookSecret},
    ssrf::Guard,
};

pub use entity::body::{truncate_body, BODY_LIMIT, TRUNCATION_MARKER};

/// What every request to one endpoint shares, set up once for a batch of them: the URL
/// parsed (the SSRF check and the client both take the parsed form) and the signing keys.
#[derive(Debug)]
pub struct Target {
    /// The parsed URL, or why it does not parse (every attempt fails with that).
    url: Result<EndpointUrl, String>,
    keys: Vec<SigningKey>,
}

impl Target {
    /// `secrets`: the current secret first, then the previous one during a rotation.
    pub fn new(url: &str, secrets: &[WebhookSecret]) -> Target {
        Target {
            url: EndpointUrl::parse(url).map_err(|e| e.to_string()),
            keys: secrets.iter().map(SigningKey::new).collect(),
        }
    }
}

pub struct AttemptRequest<'a> {
    pub target: &'a Target,
    pub msg_id: &'a str,
    /// Shared, not copied: the body is handed to the client as it is.
    pub body: Bytes,
    pub rate_limit: Option<(u32, u32)>,
}

#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub status: Option<u16>,
    pub elapsed: Duration,
    /// The headers sent, names as written (every name the attempt sends is a constant).
    pub request_headers: Vec<(&'static str, String)>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Option<String>,
    pub retry_after: Option<String>,
    pub error: Option<String>,
}

impl AttemptResult {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

pub async fn send(client: &reqwest::Client, guard: &Guard, req: AttemptRequest<'_>) -> AttemptResult {
    let timestamp = chrono::Utc::now().timestamp();
    let mut headers: Vec<(&'static str, String)> = Vec::with_capacity(7);
    headers.push(("content-type", "application/json".into()));
    headers.extend(signed_headers(&req.target.keys, req.msg_id, timestamp, &req.body));
    if let Some((limit, remaining)) = req.rate_limit {
        headers.push(("X-Webhook-RateLimit-Limit", limit.to_string()));
        headers.push(("X-Webhook-RateLimit-Remaining", remaining.to_string()));
    }
    let started = Instant::now();
    let failed = |error: String, headers: Vec<(&'static str, String)>| AttemptResult {
        status: None,
        elapsed: started.elapsed(),
        request_headers: headers,
        response_headers: Vec::new(),
        response_body: None,
        retry_after: None,
        error: Some(error),
    };
    // SPEC §7: check the literal or resolved addresses on every attempt; the client's
    // resolver checks again at connect time, so a rebinding answer cannot slip through.
    let url = match &req.target.url {
        Ok(url) => url,
        Err(error) => return failed(error.clone(), headers),
    };
    if let Err(error) = guard.resolve(url).await {
        return failed(error.to_string(), headers);
    }
    let response = client.post(url.as_url().clone()).headers(header_map(&headers)).body(req.body).send().await;
    match response {
        Ok(response) => read_response(response, started, headers).await,
        Err(err) => failed(describe_error(&err), headers),
    }
}

async fn read_response(
    mut response: reqwest::Response,
    started: Instant,
    request_headers: Vec<(&'static str, String)>,
) -> AttemptResult {
    let status = response.status().as_u16();
    let response_headers: Vec<(String, String)> =
        response.headers().iter().map(|(k, v)| (k.as_str().to_owned(), storable(v.as_bytes()))).collect();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut body = Vec::new();
    let mut truncated = false;
    let mut error = None;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = BODY_LIMIT.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() > room {
                    // Stop reading: a 10 MB answer must not cost 10 MB (or its transfer time).
                    truncated = true;
                    break;
                }
            }
            Ok(None) => break,
            Err(err) => {
                error = Some(format!("Reading the response failed: {}", describe_error(&err)));
                break;
            }
        }
    }
    let mut text = storable(&body);
    // U+FFFD is 3 bytes: binary junk can grow past the limit once made text.
    truncated |= entity::body::truncate_at_char_boundary(&mut text, BODY_LIMIT);
    if truncated {
        text.push_str(TRUNCATION_MARKER);
    }
    AttemptResult {
        status: Some(status),
        elapsed: started.elapsed(),
        request_headers,
        response_headers,
        response_body: Some(text),
        retry_after,
        error,
    }
}

/// Receiver bytes as text PostgreSQL accepts: invalid UTF-8 and NUL (which `text` and
/// `jsonb` refuse, failing the whole record) become U+FFFD.
fn storable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.into_owned()
    }
}

fn header_map(headers: &[(&'static str, String)]) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(*name), HeaderValue::from_str(value)) {
            map.append(name, value);
        }
    }
    map.entry(CONTENT_TYPE).or_insert(HeaderValue::from_static("application/json"));
    map
}
