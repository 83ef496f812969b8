//! Header fields as the lines of an HTTP/1.1 head: `name: value`, one field a line, names
//! lowercased. This is how an attempt stores the headers it sent (`attempts.sent_headers`):
//! a few appends to one string per attempt, stored as plain text. The JSON object it replaces
//! cost a serializer in the engine and a `jsonb` parse in PostgreSQL on every attempt
//! (BENCHMARKS.md, third session of 7 Dec 2026).

use serde_json::{Map, Value};

/// The lines for `headers`, in their order. A field value cannot hold a line break (RFC 9110
/// §5.5); one that does anyway (it would not have been sent) has it replaced by a space, so a
/// line is always one field.
pub fn to_lines<N: AsRef<str>, V: AsRef<str>>(headers: &[(N, V)]) -> String {
    let mut lines = String::with_capacity(headers.iter().map(|(n, v)| n.as_ref().len() + v.as_ref().len() + 3).sum());
    for (name, value) in headers {
        if !lines.is_empty() {
            lines.push('\n');
        }
        // Byte-wise: a char at a time cost more than the JSON serializer this replaced.
        let start = lines.len();
        lines.push_str(name.as_ref());
        lines[start..].make_ascii_lowercase();
        lines.push_str(": ");
        let value = value.as_ref();
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            lines.push_str(&value.replace(['\r', '\n'], " "));
        } else {
            lines.push_str(value);
        }
    }
    lines
}

/// The lines as the JSON object the API shows (`Attempt::request_headers`): name → value, a
/// repeated name keeping its last value, as the `jsonb` column did.
pub fn to_json(lines: &str) -> Value {
    let mut object = Map::new();
    for line in lines.split('\n').filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(": ").unwrap_or((line, ""));
        object.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_the_order_and_lowercase_the_names() {
        let sent = [("content-type", "application/json"), ("X-Webhook-RateLimit-Limit", "100")];
        assert_eq!(to_lines(&sent), "content-type: application/json\nx-webhook-ratelimit-limit: 100");
        assert_eq!(to_lines::<&str, &str>(&[]), "");
    }

    #[test]
    fn the_json_object_holds_every_field_and_splits_at_the_first_separator() {
        let sent = [("webhook-signature", "v1,abc= v1,def="), ("x-webhook-signature", "t=1: odd,v1=00")];
        let json = to_json(&to_lines(&sent));
        assert_eq!(
            json,
            serde_json::json!({"webhook-signature": "v1,abc= v1,def=", "x-webhook-signature": "t=1: odd,v1=00"})
        );
    }

    #[test]
    fn a_repeated_name_keeps_its_last_value_and_a_line_break_cannot_add_a_field() {
        let sent = [("a", "1"), ("A", "2"), ("b", "x\r\nc: injected")];
        let json = to_json(&to_lines(&sent));
        assert_eq!(json, serde_json::json!({"a": "2", "b": "x  c: injected"}));
    }
}
