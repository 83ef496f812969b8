//! Email to an account's owners (SPEC §6 "Endpoint health", §11 `WEBHOOKS_SMTP_URL`).
//!
//! Two message builders ([`failing_warning`], [`disabled_notice`]) are pure functions; a
//! [`Mailer`] sends the result either over SMTP (lettre, rustls) or, when no SMTP URL is
//! configured, writes it to a folder as an `.eml` file and to the log, so that no email is ever
//! dropped silently.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use lettre::{
    message::{header::ContentType, Mailbox},
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};

/// Timeout for each SMTP command (lettre's default is 60 s).
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// The last error quoted in a warning is cut to this many characters.
const MAX_ERROR_CHARS: usize = 500;

/// One plain-text email. `to` holds bare addresses (`owner@example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
}

/// Errors never include the SMTP URL (it may carry a password) or any webhook secret.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(
        "WEBHOOKS_SMTP_URL is not a usable SMTP URL ({reason}); expected smtp://host:port, \
         smtp://host:port?tls=required or smtps://host:port (the value is not shown because it \
         may contain credentials)"
    )]
    SmtpUrl { reason: String },
    #[error("the sender address {from:?} is not a valid mailbox: {reason}")]
    From { from: String, reason: String },
    #[error("the email {subject:?} has no valid recipient address")]
    NoRecipients { subject: String },
    #[error("could not build the email {subject:?}: {reason}")]
    Build { subject: String, reason: String },
    #[error("sending the email {subject:?} over SMTP failed: {reason}")]
    Smtp { subject: String, reason: String },
    #[error("could not write the email {subject:?} to {path}: {source}")]
    Folder {
        subject: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone)]
pub enum Mailer {
    /// Sends over SMTP with a connection pool (needs a running tokio runtime).
    Smtp { transport: AsyncSmtpTransport<Tokio1Executor>, from: Mailbox },
    /// No SMTP configured: each email becomes a file in `dir` and an `info` log line.
    Folder { dir: PathBuf },
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The transport is left out: its settings may include credentials.
        match self {
            Mailer::Smtp { from, .. } => {
                f.debug_struct("Mailer::Smtp").field("from", &from.to_string()).finish_non_exhaustive()
            }
            Mailer::Folder { dir } => f.debug_struct("Mailer::Folder").field("dir", dir).finish(),
        }
    }
}

impl Mailer {
    /// `smtp_url`: `smtp://host:port` (plain, for loopback tests), `smtp://host?tls=required`
    /// (STARTTLS), `smtps://host` (implicit TLS); `smtp[s]://user:password@host` adds
    /// authentication. `None` or an empty string selects the folder mailer writing to
    /// `mail_dir` (created on first send). `from` is `webhooks@example.com` or
    /// `Webhooks <webhooks@example.com>`; it is validated in both modes.
    ///
    /// With an SMTP URL this must run inside a tokio runtime (lettre's pool spawns a task).
    pub fn from_config(smtp_url: Option<&str>, mail_dir: &Path, from: &str) -> Result<Mailer, NotifyError> {
        let from: Mailbox = from.trim().parse().map_err(|e: lettre::address::AddressError| NotifyError::From {
            from: from.to_owned(),
            reason: e.to_string(),
        })?;
        match smtp_url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| NotifyError::SmtpUrl { reason: e.to_string() })?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build();
                Ok(Mailer::Smtp { transport, from })
            }
            None => Ok(Mailer::Folder { dir: mail_dir.to_path_buf() }),
        }
    }

    pub async fn send(&self, email: &Email) -> Result<(), NotifyError> {
        match self {
            Mailer::Smtp { transport, from } => send_smtp(transport, from, email).await,
            Mailer::Folder { dir } => write_to_folder(dir, email).await,
        }
    }
}

async fn send_smtp(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    email: &Email,
) -> Result<(), NotifyError> {
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(email.subject.clone())
        .message_id(None)
        .header(ContentType::TEXT_PLAIN);
    let mut recipients = 0usize;
    for address in &email.to {
        match address.trim().parse::<Mailbox>() {
            Ok(mailbox) => {
                builder = builder.to(mailbox);
                recipients += 1;
            }
            Err(e) => tracing::warn!(
                recipient = %address,
                error = %e,
                subject = %email.subject,
                "skipping an invalid recipient address"
            ),
        }
    }
    if recipients == 0 {
        return Err(NotifyError::NoRecipients { subject: email.subject.clone() });
    }
    let message = builder
        .body(email.text.clone())
        .map_err(|e| NotifyError::Build { subject: email.subject.clone(), reason: e.to_string() })?;
    transport
        .send(message)
        .await
        .map_err(|e| NotifyError::Smtp { subject: email.subject.clone(), reason: e.to_string() })?;
    tracing::info!(subject = %email.subject, to = ?email.to, "email sent");
    Ok(())
}

async fn write_to_folder(dir: &Path, email: &Email) -> Result<(), NotifyError> {
    let io_err = |path: &Path, source: std::io::Error| NotifyError::Folder {
        subject: email.subject.clone(),
        path: path.to_path_buf(),
        source,
    };
    if email.to.iter().all(|t| t.trim().is_empty()) {
        return Err(NotifyError::NoRecipients { subject: email.subject.clone() });
    }
    tokio::fs::create_dir_all(dir).await.map_err(|e| io_err(dir, e))?;

    let now = chrono::Utc::now();
    let contents = render_eml(email, now);
    let stem = file_stem(now);
    // Write under a temporary name, then rename: a reader never sees half a file.
    let tmp = dir.join(format!(".{stem}.tmp"));
    let path = dir.join(format!("{stem}.eml"));
    tokio::fs::write(&tmp, contents.as_bytes()).await.map_err(|e| io_err(&tmp, e))?;
    if let Err(e) = tokio::fs::rename(&tmp, &path).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io_err(&path, e));
    }
    tracing::info!(
        subject = %email.subject,
        to = ?email.to,
        path = %path.display(),
        "email not sent (WEBHOOKS_SMTP_URL is unset); written to the mail folder"
    );
    Ok(())
}

/// `20250102T030405.123456Z-<pid>-<seq>`: sorts by time, unique across threads and processes.
fn file_stem(now: chrono::DateTime<chrono::Utc>) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{}-{}-{seq:06}", now.format("%Y%m%dT%H%M%S%.6fZ"), std::process::id())
}

fn render_eml(email: &Email, now: chrono::DateTime<chrono::Utc>) -> String {
    let to = email.to.iter().map(|t| one_line(t.trim())).filter(|t| !t.is_empty()).collect::<Vec<_>>().join(", ");
    let mut text = email.text.replace("\r\n", "\n");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    format!(
        "Date: {}\nTo: {}\nSubject: {}\nMIME-Version: 1.0\nContent-Type: text/plain; \
         charset=utf-8\nContent-Transfer-Encoding: 8bit\nX-Webhooks-Not-Sent: \
         WEBHOOKS_SMTP_URL is unset\n\n{}",
        now.to_rfc2822(),
        to,
        one_line(&email.subject),
        text
    )
}

/// Header values on one line: no CR/LF (header injection) and no other control characters.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Quoted text (an error message) on one line, cut to `max` characters.
fn quote(s: &str, max: usize) -> String {
    let line = one_line(s.trim());
    let line = line.trim();
    if line.is_empty() {
        return "(no details recorded)".to_owned();
    }
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

/// Sent when an endpoint turns `failing` (5 consecutive failed attempts), before anything is
/// disabled.
/// `timeout`: how long an attempt may take (`WEBHOOKS_ATTEMPT_TIMEOUT`).
pub fn failing_warning(
    endpoint_url: &str,
    failures: u32,
    last_error: &str,
    timeout: std::time::Duration,
    link: &str,
    owners: Vec<String>,
) -> Email {
    let url = one_line(endpoint_url.trim());
    let failed = if failures == 1 {
        "has failed its last delivery attempt".to_owned()
    } else {
        format!("has failed {failures} delivery attempts in a row")
    };
    let subject = format!("Webhook endpoint failing: {url}");
    let text = format!(
        "Hello,

Your webhook endpoint

{url}

{failed} and is now
marked as failing.

Last error: {error}

Nothing has been disabled yet, and no event has been lost:
- New events for this endpoint are still accepted and queued.
- While the endpoint is failing, regular deliveries to it are paused:
  we send a single probe request at each retry step instead, so queued
  deliveries do not use up their retries.
- As soon as a request succeeds (any 2xx response), the endpoint is
  healthy again and the queued deliveries go out in order.
- If a delivery to this endpoint uses up all its retries, the endpoint
  will be disabled automatically and you will get another email. Its
  queued deliveries will be kept.

What to check:
- Is the server behind this URL running and reachable from the
  internet?
- Does it answer with a 2xx status within {timeout}? Redirects are
  not followed.
- Is its TLS certificate valid (not expired, issued for this host
  name, with the full chain)?
- Does it accept our signature? After a secret rotation, the receiver
  must verify with the new secret.
- Make sure it does not answer 410 Gone: that disables the endpoint
  at once.

Status, and the log of every attempt with requests and responses:
{link}

You are receiving this email because you are an owner of this account.
",
        error = quote(last_error, MAX_ERROR_CHARS),
        timeout = humantime::format_duration(timeout),
        link = one_line(link.trim()),
    );
    Email { to: owners, subject, text }
}

/// Sent when a failing endpoint answers with a 2xx again, so the owners warned by
/// `failing_warning` know they can stop looking.
pub fn recovered_notice(endpoint_url: &str, link: &str, owners: Vec<String>) -> Email {
    let url = one_line(endpoint_url.trim());
    let subject = format!("Webhook endpoint recovered: {url}");
    let text = format!(
        "Hello,

Your webhook endpoint

{url}

answered a delivery successfully and is healthy again.

- Deliveries queued while it was failing are going out now, in order.
- Deliveries that used up their retries while it was failing are kept
  as failed in the log; you can retry them there, one by one or for a
  date range.

Status, and the log of every attempt:
{link}

You are receiving this email because you are an owner of this account.
",
        link = one_line(link.trim()),
    );
    Email { to: owners, subject, text }
}

/// Sent when an endpoint is disabled automatically (a delivery to a failing endpoint was
/// dead-lettered, or the endpoint answered 410 Gone).
pub fn disabled_notice(endpoint_url: &str, reason: &str, link: &str, owners: Vec<String>) -> Email {
    let url = one_line(endpoint_url.trim());
    let subject = format!("Webhook endpoint disabled: {url}");
    let text = format!(
        "Hello,

We have disabled your webhook endpoint

{url}

Reason: {reason}

While it is disabled, no requests are sent to it.

Nothing has been deleted:
- Deliveries that were queued for this endpoint are kept. They resume,
  in order, as soon as you re-enable it.
- Deliveries that used up their retries are kept as failed in the log;
  you can retry them there, one by one or for a date range.

To re-enable the endpoint, fix the problem, then click \"Re-enable\" on
its page (one click):
{link}

You are receiving this email because you are an owner of this account.
",
        reason = quote(reason, MAX_ERROR_CHARS),
        link = one_line(link.trim()),
    );
    Email { to: owners, subject, text }
}

/// Sent to someone invited to an account (SPEC §9): who invited them, to what, as what, and
/// the link to choose a password. `inviter` is `None` when the inviting user is gone.
pub fn invitation_email(account_name: &str, inviter: Option<&str>, role: &str, link: &str, to: &str) -> Email {
    let account = one_line(account_name.trim());
    let by = inviter.map(|i| format!(" by {}", one_line(i.trim()))).unwrap_or_default();
    let subject = format!("You are invited to {account} on Webhooks");
    let text = format!(
        "Hello,

You have been invited{by} to join the Webhooks account

{account}

as {role}.

To accept, open this link and choose a password:
{link}

The link works once, for 7 days. If you did not expect this invitation,
you can ignore this email.
",
        role = one_line(role),
        link = one_line(link.trim()),
    );
    Email { to: vec![to.to_owned()], subject, text }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const URL: &str = "https://hooks.example.com/webhooks/orders?team=42";
    const LINK: &str = "https://app.example.com/endpoints/ep_123";

    fn owners() -> Vec<String> {
        vec!["alice@example.com".into(), "bob@example.org".into()]
    }

    #[test]
    fn failing_warning_names_endpoint_error_and_link() {
        let email = failing_warning(URL, 5, "HTTP 503 Service Unavailable", Duration::from_secs(15), LINK, owners());
        assert_eq!(email.to, owners());
        assert!(email.subject.contains(URL), "{}", email.subject);
        assert!(email.subject.to_lowercase().contains("failing"));
        assert!(email.text.contains(URL));
        assert!(email.text.contains("has failed 5 delivery attempts in a row"));
        assert!(email.text.contains("HTTP 503 Service Unavailable"));
        assert!(email.text.contains(LINK));
        assert!(email.text.contains("Nothing has been disabled yet"));
        assert!(email.text.contains("probe"));
        assert!(email.text.contains("What to check"));
        assert!(email.text.contains("within 15s"), "the configured attempt timeout");
    }

    #[test]
    fn recovered_notice_names_endpoint_and_link() {
        let email = recovered_notice(URL, LINK, owners());
        assert_eq!(email.to, owners());
        assert!(email.subject.to_lowercase().contains("recovered") && email.subject.contains(URL));
        assert!(email.text.contains("healthy again"));
        assert!(email.text.contains(LINK));
    }

    #[test]
    fn disabled_notice_names_endpoint_reason_and_link() {
        let reason = "a delivery failed after its last retry (HTTP 500)";
        let email = disabled_notice(URL, reason, LINK, owners());
        assert_eq!(email.to, owners());
        assert!(email.subject.contains(URL), "{}", email.subject);
        assert!(email.subject.to_lowercase().contains("disabled"));
        assert!(email.text.contains(URL));
        assert!(email.text.contains(reason));
        assert!(email.text.contains(LINK));
        assert!(email.text.contains("are kept"));
        assert!(email.text.contains("re-enable"));
    }

    #[test]
    fn builders_keep_header_values_on_one_line_and_cut_long_errors() {
        let email = failing_warning(
            "https://x.example/\r\nBcc: evil@x",
            1,
            &"e".repeat(2000),
            Duration::from_secs(30),
            LINK,
            owners(),
        );
        assert!(!email.subject.contains('\n') && !email.subject.contains('\r'));
        assert!(email.text.contains("has failed its last delivery attempt and"));
        assert!(email.text.contains(&format!("{}…", "e".repeat(MAX_ERROR_CHARS))));
        assert!(!email.text.contains(&"e".repeat(MAX_ERROR_CHARS + 1)));
        let email = disabled_notice(URL, "  ", LINK, owners());
        assert!(email.text.contains("(no details recorded)"));
    }

    #[test]
    fn invitation_email_names_account_inviter_role_and_link() {
        let link = "https://app.example.com/invite/tok123";
        let email = invitation_email("Acme\r\nBcc: x@y", Some("ada@acme.test"), "admin", link, "bo@acme.test");
        assert_eq!(email.to, vec!["bo@acme.test".to_owned()]);
        assert!(!email.subject.contains('\n') && email.subject.contains("Acme"), "{}", email.subject);
        assert!(email.text.contains("invited by ada@acme.test"));
        assert!(email.text.contains("as admin."));
        assert!(email.text.contains(link));
        let anonymous = invitation_email("Acme", None, "member", link, "bo@acme.test");
        assert!(anonymous.text.contains("You have been invited to join"));
    }

    #[test]
    fn from_config_validates() {
        let dir = std::env::temp_dir();
        assert!(matches!(Mailer::from_config(None, &dir, "not an address"), Err(NotifyError::From { .. })));
        assert!(matches!(
            Mailer::from_config(Some(""), &dir, "Webhooks <webhooks@example.com>"),
            Ok(Mailer::Folder { .. })
        ));
        let err = Mailer::from_config(Some("ftp://user:hunter2@mail.example.com"), &dir, "a@b.c").unwrap_err();
        assert!(matches!(err, NotifyError::SmtpUrl { .. }));
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[tokio::test]
    async fn folder_mailer_writes_a_file_with_subject_and_recipients() {
        let dir = std::env::temp_dir().join(format!(
            "notify-test-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        let mailer = Mailer::from_config(None, &dir, "webhooks@example.com").unwrap();
        assert!(matches!(mailer, Mailer::Folder { .. }));
        let first = failing_warning(URL, 5, "connection refused", Duration::from_secs(30), LINK, owners());
        let second = disabled_notice(URL, "HTTP 410 Gone", LINK, owners());
        mailer.send(&first).await.unwrap();
        mailer.send(&second).await.unwrap();

        let mut names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| n.ends_with(".eml")));
        let a = std::fs::read_to_string(dir.join(&names[0])).unwrap();
        let b = std::fs::read_to_string(dir.join(&names[1])).unwrap();
        // Time-ordered names: the first file is the first email.
        assert!(a.contains(&format!("Subject: {}", first.subject)), "{a}");
        assert!(a.contains("To: alice@example.com, bob@example.org"), "{a}");
        assert!(a.contains("connection refused"));
        assert!(b.contains(&format!("Subject: {}", second.subject)), "{b}");
        assert!(b.contains("HTTP 410 Gone"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn folder_mailer_refuses_an_email_without_recipients() {
        let dir = std::env::temp_dir().join("notify-test-unused");
        let mailer = Mailer::Folder { dir };
        let email = disabled_notice(URL, "x", LINK, vec![]);
        assert!(matches!(mailer.send(&email).await, Err(NotifyError::NoRecipients { .. })));
    }
}
