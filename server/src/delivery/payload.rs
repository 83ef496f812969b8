//! The payload bytes of SPEC §4, built once at ingest and sent unchanged.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::value::RawValue;

#[derive(Serialize)]
struct Payload<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    created: String,
    data: Data<'a>,
    account_id: &'a str,
}

#[derive(Serialize)]
struct Data<'a> {
    object: &'a RawValue,
}

/// `{"id","type","created","data":{"object"},"account_id"}` in that order; `object` is
/// embedded byte for byte as the host application sent it.
pub fn payload_bytes(
    id: &str,
    event_type: &str,
    created: DateTime<Utc>,
    object: &RawValue,
    account_id: &str,
) -> String {
    let payload = Payload {
        id,
        event_type,
        created: created.to_rfc3339_opts(SecondsFormat::Secs, true),
        data: Data { object },
        account_id,
    };
    serde_json::to_string(&payload).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_payload_has_the_prds_shape_and_order() {
        let object = RawValue::from_string(r#"{"z":1,"a":"x"}"#.to_owned()).unwrap();
        let created = Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap();
        let bytes = payload_bytes("evt_1", "task.completed", created, &object, "acc_9");
        assert_eq!(
            bytes,
            r#"{"id":"evt_1","type":"task.completed","created":"2024-01-15T10:30:00Z","data":{"object":{"z":1,"a":"x"}},"account_id":"acc_9"}"#
        );
    }
}
