//! A real SMTP server on 127.0.0.1 for the email tests (RFC 5321 subset, plain TCP, no TLS and
//! no AUTH, which is what lettre's `smtp://127.0.0.1:PORT` transport speaks). It records every
//! accepted message; a test awaits them with [`SmtpSink::wait_for`] instead of sleeping.
//!
//! Answers: `220` greeting; `EHLO` (multi-line `250`, advertising `8BITMIME`, `SMTPUTF8` and
//! nothing else), `HELO`, `MAIL FROM`, `RCPT TO`, `DATA` (`354`, read to `<CRLF>.<CRLF>`, dot
//! stuffing undone), `RSET`, `NOOP`, `QUIT` (`221`); anything else `502`, bad order `503`.
#![allow(dead_code)]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::Notify,
    task::{JoinHandle, JoinSet},
};

const SERVER_NAME: &str = "smtp-sink.test";
const WAIT_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest command line accepted (RFC 5321 says 512 octets; be generous).
const MAX_COMMAND_LINE: usize = 4096;
/// Largest message accepted; larger ones are read to the end and refused with `552`.
const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;

/// One accepted message: the envelope (`MAIL FROM`, `RCPT TO` addresses without the angle
/// brackets) and the content exactly as received after `DATA`, dot stuffing undone, ending
/// with the CRLF of its last line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl Message {
    /// The first header of that name (case-insensitive), unfolded, RFC 2047 encoded words
    /// (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`) decoded, trimmed.
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = split_head_body(&self.data);
        let mut unfolded: Vec<String> = Vec::new();
        for line in head.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.starts_with([' ', '\t']) {
                if let Some(last) = unfolded.last_mut() {
                    last.push_str(line);
                    continue;
                }
            }
            unfolded.push(line.to_owned());
        }
        unfolded.iter().find_map(|line| {
            let (n, value) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| decode_rfc2047(value.trim()))
        })
    }

    /// The decoded `Subject` header.
    pub fn subject(&self) -> Option<String> {
        self.header("Subject")
    }

    /// The body decoded according to `Content-Transfer-Encoding` (7bit, 8bit, quoted-printable,
    /// base64), as UTF-8 with `\n` line endings. Meant for single-part text messages.
    pub fn body(&self) -> String {
        let (_, body) = split_head_body(&self.data);
        let encoding = self.header("Content-Transfer-Encoding").unwrap_or_default().to_ascii_lowercase();
        let bytes = match encoding.as_str() {
            "quoted-printable" => decode_quoted_printable(body.as_bytes(), false),
            "base64" => decode_base64(body.as_bytes()),
            _ => body.as_bytes().to_vec(),
        };
        String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
    }
}

struct Shared {
    messages: Mutex<Vec<Message>>,
    arrived: Notify,
}

/// The server. Dropping it stops accepting and closes every open connection.
pub struct SmtpSink {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the SMTP sink on 127.0.0.1");
        let addr = listener.local_addr().expect("SMTP sink address");
        let shared = Arc::new(Shared { messages: Mutex::new(Vec::new()), arrived: Notify::new() });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        SmtpSink { addr, shared, task }
    }

    /// `smtp://127.0.0.1:PORT`, the form `WEBHOOKS_SMTP_URL` takes (plain SMTP, no TLS).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every message accepted so far, in order of acceptance.
    pub fn messages(&self) -> Vec<Message> {
        self.shared.messages.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages have been accepted and returns all of them. Panics
    /// after 20 s.
    pub async fn wait_for(&self, n: usize) -> Vec<Message> {
        let wait = async {
            loop {
                let arrived = self.shared.arrived.notified();
                tokio::pin!(arrived);
                // Register before checking, so a message stored in between still wakes us.
                arrived.as_mut().enable();
                {
                    let messages = self.shared.messages.lock().unwrap();
                    if messages.len() >= n {
                        return messages.clone();
                    }
                }
                arrived.await;
            }
        };
        match tokio::time::timeout(WAIT_TIMEOUT, wait).await {
            Ok(messages) => messages,
            Err(_) => {
                let got = self.messages();
                let subjects: Vec<_> = got.iter().map(|m| m.subject()).collect();
                panic!(
                    "SMTP sink at {}: expected at least {n} email(s) within {}s, got {}: subjects {:?}",
                    self.addr,
                    WAIT_TIMEOUT.as_secs(),
                    got.len(),
                    subjects
                )
            }
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts the connection tasks.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(handle_connection(stream, shared.clone()));
                }
                Err(e) => {
                    eprintln!("SMTP sink: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    // I/O errors just end the session, as a client hanging up does.
    let _ = session(&mut read, &mut write, &shared).await;
}

#[derive(Default)]
struct Transaction {
    from: Option<String>,
    to: Vec<String>,
}

enum Line {
    Ok(Vec<u8>),
    TooLong,
    Eof,
}

/// Reads one line including its terminator (LF, normally CRLF), at most `max` bytes; a
/// longer line is consumed to its end and reported as `TooLong`.
async fn read_line<R: AsyncRead + Unpin>(read: &mut BufReader<R>, max: usize) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = read.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() && !too_long {
                Line::Eof
            } else if too_long {
                Line::TooLong
            } else {
                Line::Ok(line)
            });
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let used = chunk.len();
        if !too_long {
            if line.len() + chunk.len() > max {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        read.consume(used);
        if done {
            return Ok(if too_long { Line::TooLong } else { Line::Ok(line) });
        }
    }
}

async fn reply<W: AsyncWrite + Unpin>(write: &mut W, text: &str) -> std::io::Result<()> {
    // One write per reply: split writes meet Nagle + delayed ACK and cost ~40 ms each.
    write.write_all(format!("{text}\r\n").as_bytes()).await?;
    write.flush().await
}

async fn session<R, W>(read: &mut BufReader<R>, write: &mut W, shared: &Shared) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    reply(write, &format!("220 {SERVER_NAME} ESMTP test sink ready")).await?;
    let mut greeted = false;
    let mut tx = Transaction::default();

    loop {
        let line = match read_line(read, MAX_COMMAND_LINE).await? {
            Line::Eof => return Ok(()),
            Line::TooLong => {
                reply(write, "500 5.5.6 Line too long").await?;
                continue;
            }
            Line::Ok(line) => line,
        };
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        let (verb, arg) = match line.split_once(' ') {
            Some((verb, arg)) => (verb, arg.trim()),
            None => (line, ""),
        };

        match verb.to_ascii_uppercase().as_str() {
            "EHLO" if arg.is_empty() => reply(write, "501 5.5.4 EHLO needs a domain").await?,
            "EHLO" => {
                greeted = true;
                tx = Transaction::default();
                let text = format!("250-{SERVER_NAME} greets {arg}\r\n250-8BITMIME\r\n250 SMTPUTF8");
                reply(write, &text).await?;
            }
            "HELO" if arg.is_empty() => reply(write, "501 5.5.4 HELO needs a domain").await?,
            "HELO" => {
                greeted = true;
                tx = Transaction::default();
                reply(write, &format!("250 {SERVER_NAME}")).await?;
            }
            "MAIL" => {
                if !greeted {
                    reply(write, "503 5.5.1 Send EHLO or HELO first").await?;
                } else if tx.from.is_some() {
                    reply(write, "503 5.5.1 Nested MAIL command").await?;
                } else {
                    match parse_path(arg, "FROM:") {
                        Some((address, params)) => match unsupported_mail_param(&params) {
                            Some(p) => reply(write, &format!("555 5.5.4 Unsupported parameter {p}")).await?,
                            None => {
                                tx.from = Some(address);
                                reply(write, "250 2.1.0 Ok").await?;
                            }
                        },
                        None => reply(write, "501 5.5.4 Syntax: MAIL FROM:<address>").await?,
                    }
                }
            }
            "RCPT" => {
                if tx.from.is_none() {
                    reply(write, "503 5.5.1 Need MAIL before RCPT").await?;
                } else {
                    match parse_path(arg, "TO:") {
                        Some((address, params)) if !address.is_empty() && params.is_empty() => {
                            tx.to.push(address);
                            reply(write, "250 2.1.5 Ok").await?;
                        }
                        Some((_, params)) if !params.is_empty() => {
                            reply(write, "555 5.5.4 RCPT parameters are not supported").await?
                        }
                        _ => reply(write, "501 5.5.4 Syntax: RCPT TO:<address>").await?,
                    }
                }
            }
            "DATA" => {
                if tx.from.is_none() {
                    reply(write, "503 5.5.1 Need MAIL before DATA").await?;
                } else if tx.to.is_empty() {
                    reply(write, "554 5.5.1 No valid recipients").await?;
                } else {
                    reply(write, "354 End data with <CR><LF>.<CR><LF>").await?;
                    let Some(data) = read_data(read).await? else {
                        return Ok(()); // the client hung up mid-message
                    };
                    let finished = std::mem::take(&mut tx);
                    match data {
                        Ok(data) => {
                            let number = {
                                let mut messages = shared.messages.lock().unwrap();
                                messages.push(Message {
                                    from: finished.from.unwrap_or_default(),
                                    to: finished.to,
                                    data: String::from_utf8_lossy(&data).into_owned(),
                                });
                                messages.len()
                            };
                            shared.arrived.notify_waiters();
                            reply(write, &format!("250 2.0.0 Ok: queued as {number}")).await?;
                        }
                        Err(()) => reply(write, "552 5.3.4 Message too big for the test sink").await?,
                    }
                }
            }
            "RSET" => {
                tx = Transaction::default();
                reply(write, "250 2.0.0 Ok").await?;
            }
            "NOOP" => reply(write, "250 2.0.0 Ok").await?,
            "QUIT" => {
                reply(write, &format!("221 2.0.0 {SERVER_NAME} closing connection")).await?;
                return Ok(());
            }
            _ => reply(write, "502 5.5.2 Command not recognized").await?,
        }
    }
}

/// Reads message content after `354` up to the line holding a single `.`; undoes dot stuffing.
/// `None`: connection closed first; `Some(Err)`: over the size limit (content discarded).
async fn read_data<R: AsyncRead + Unpin>(read: &mut BufReader<R>) -> std::io::Result<Option<Result<Vec<u8>, ()>>> {
    let mut data = Vec::new();
    let mut too_big = false;
    loop {
        let line = match read_line(read, MAX_MESSAGE_BYTES).await? {
            Line::Eof => return Ok(None),
            Line::TooLong => {
                too_big = true;
                continue;
            }
            Line::Ok(line) => line,
        };
        if line == b".\r\n" || line == b".\n" {
            return Ok(Some(if too_big { Err(()) } else { Ok(data) }));
        }
        if !line.ends_with(b"\n") {
            return Ok(None); // EOF in the middle of a line
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if data.len() + line.len() > MAX_MESSAGE_BYTES {
            too_big = true;
            data = Vec::new();
        }
        if !too_big {
            data.extend_from_slice(line);
        }
    }
}

/// `FROM:<a@b> PARAM=X` → (`a@b`, [`PARAM=X`]). The keyword is case-insensitive and may be
/// followed by spaces; `<>` (null reverse path) gives an empty address.
fn parse_path(arg: &str, keyword: &str) -> Option<(String, Vec<String>)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    let address = rest[..end].trim().to_owned();
    let params = rest[end + 1..].split_whitespace().map(str::to_owned).collect();
    Some((address, params))
}

/// MAIL parameters the advertised extensions allow: `BODY=7BIT|8BITMIME`, `SMTPUTF8`.
fn unsupported_mail_param(params: &[String]) -> Option<&str> {
    params
        .iter()
        .find(|p| {
            let p = p.to_ascii_uppercase();
            !(p == "SMTPUTF8" || p == "BODY=7BIT" || p == "BODY=8BITMIME")
        })
        .map(String::as_str)
}

fn split_head_body(data: &str) -> (&str, &str) {
    let crlf = data.find("\r\n\r\n").map(|i| (i, i + 4));
    let lf = data.find("\n\n").map(|i| (i, i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) if b.0 < a.0 => (&data[..b.0], &data[b.1..]),
        (Some(a), _) => (&data[..a.0], &data[a.1..]),
        (None, Some(b)) => (&data[..b.0], &data[b.1..]),
        (None, None) => (data, ""),
    }
}

/// Decodes RFC 2047 encoded words; whitespace between two adjacent encoded words is dropped.
/// UTF-8 and US-ASCII are decoded as UTF-8, ISO-8859-1 byte by byte.
fn decode_rfc2047(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut previous_was_encoded = false;
    while !rest.is_empty() {
        let Some(start) = rest.find("=?") else {
            out.push_str(rest);
            break;
        };
        let (before, candidate) = rest.split_at(start);
        match parse_encoded_word(candidate) {
            Some((text, len)) => {
                if !(previous_was_encoded && before.chars().all(char::is_whitespace)) {
                    out.push_str(before);
                }
                out.push_str(&text);
                rest = &candidate[len..];
                previous_was_encoded = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = &candidate[2..];
                previous_was_encoded = false;
            }
        }
    }
    out
}

/// `=?charset?B|Q?text?=` at the start of `s` → (decoded text, length consumed).
fn parse_encoded_word(s: &str) -> Option<(String, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (charset, inner) = inner.split_once('?')?;
    let (encoding, inner) = inner.split_once('?')?;
    let end = inner.find("?=")?;
    let text = &inner[..end];
    if text.contains(char::is_whitespace) {
        return None;
    }
    let bytes = match encoding {
        "B" | "b" => decode_base64(text.as_bytes()),
        "Q" | "q" => decode_quoted_printable(text.as_bytes(), true),
        _ => return None,
    };
    let charset = charset.split('*').next().unwrap_or_default().to_ascii_lowercase();
    let decoded = match charset.as_str() {
        "iso-8859-1" | "latin1" => bytes.iter().map(|&b| b as char).collect(),
        _ => String::from_utf8_lossy(&bytes).into_owned(),
    };
    let len = 2 + charset.len() + 1 + encoding.len() + 1 + end + 2;
    Some((decoded, len))
}

/// Quoted-printable (RFC 2045); `header` also maps `_` to a space (RFC 2047 "Q").
fn decode_quoted_printable(input: &[u8], header: bool) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'=' if input[i + 1..].starts_with(b"\r\n") => i += 3, // soft line break
            b'=' if input[i + 1..].starts_with(b"\n") => i += 2,
            b'=' if i + 2 < input.len() => match (hex(input[i + 1]), hex(input[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'=');
                    i += 1;
                }
            },
            b'_' if header => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Standard base64 (RFC 4648 alphabet); whitespace ignored, stops at padding.
fn decode_base64(input: &[u8]) -> Vec<u8> {
    let value = |b: u8| match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in input {
        if b == b'=' {
            break;
        }
        let Some(v) = value(b) else { continue };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
