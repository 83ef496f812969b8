//! Hostile input, property-tested (issue 7 item 4): ingest bodies, the SSRF classifier and
//! guard on IP literals, signature headers and `Retry-After`. Pure functions only: no test
//! here opens a connection or resolves a name.
//!
//! Run: `cargo test -p server --test props` (256 cases per property, PROPTEST_CASES to change).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::{Duration, SystemTime},
};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use chrono::{TimeZone, Utc};
use entity::{endpoint_url::EndpointUrl, ids::encode_u128, EventType};
use hmac::{Hmac, KeyInit, Mac};
use ipnet::{IpNet, Ipv4Net};
use proptest::{prelude::*, sample::select};
use serde_json::{json, value::RawValue, Value};
use server::{
    delivery::{
        payload::payload_bytes,
        retry::{parse_retry_after, MAX_RETRY_AFTER},
        signing::{signature_headers, WebhookSecret},
        ssrf::{classify, AllowList, BlockedRange, Guard, GuardError},
    },
    ingest::{parse_body, IngestError, MAX_BATCH, MAX_EVENT_BYTES},
};
use sha2::Sha256;

// ---------------------------------------------------------------------------------------
// Generators

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        // Escapes, NUL, quotes, surrogates-as-chars, RTL marks: all legal in JSON strings.
        "[\\PC\\x00-\\x1f\"\\\\\u{202e}\u{feff}]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[\\PC\"]{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON object as a host application might send it: compact or pretty-printed.
fn json_object_text() -> impl Strategy<Value = String> {
    (proptest::collection::btree_map("[\\PC\"]{0,6}", json_value(), 0..5), any::<bool>()).prop_map(|(m, pretty)| {
        let value = Value::Object(m.into_iter().collect());
        if pretty {
            serde_json::to_string_pretty(&value).unwrap()
        } else {
            value.to_string()
        }
    })
}

fn event_type() -> impl Strategy<Value = EventType> {
    select(EventType::ALL.to_vec())
}

/// A valid event as text, with its type, object and optional client id.
fn valid_event() -> impl Strategy<Value = (String, EventType, String, Option<String>)> {
    let id = proptest::option::of(any::<u128>().prop_map(|n| format!("evt_{}", encode_u128(n >> 2))));
    (event_type(), json_object_text(), id).prop_map(|(t, object, id)| {
        let id_part = id.as_ref().map(|id| format!(r#""id":"{id}","#)).unwrap_or_default();
        let text = format!(r#"{{{id_part}"type":"{}","data":{{"object":{object}}}}}"#, t.as_str());
        (text, t, object, id)
    })
}

/// Bodies an attacker would send: JSON of any shape (also with the real keys), arrays,
/// truncations of valid events, and raw bytes.
fn hostile_body() -> impl Strategy<Value = Vec<u8>> {
    let keys = select(vec!["type", "data", "object", "id", "events", "extra"]);
    let keyed = proptest::collection::btree_map(keys, json_value(), 0..5).prop_map(|m| json!(m).to_string());
    prop_oneof![
        json_value().prop_map(|v| v.to_string().into_bytes()),
        keyed.prop_map(String::into_bytes),
        valid_event().prop_map(|(text, ..)| format!("[{text}]").into_bytes()),
        valid_event().prop_map(|(text, ..)| format!("[[{text}]]").into_bytes()),
        valid_event().prop_map(|(text, ..)| format!(r#"{{"events":[{text}],"events":[]}}"#).into_bytes()),
        (valid_event(), any::<prop::sample::Index>())
            .prop_map(|((text, ..), i)| text.as_bytes()[..i.index(text.len())].to_vec()),
        proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

// ---------------------------------------------------------------------------------------
// Ingest bodies (POST /api/v1/events; SPEC §6, §11)

proptest! {
    #[test]
    fn parsing_an_ingest_body_never_panics_and_what_it_accepts_is_valid(body in hostile_body()) {
        if let Ok(events) = parse_body(&body) {
            prop_assert!(!events.is_empty() && events.len() <= MAX_BATCH);
            for event in &events {
                prop_assert!(event.object.get().starts_with('{'), "{}", event.object.get());
                prop_assert!(event.object.get().len() <= MAX_EVENT_BYTES);
            }
            // Accepted means the documented shapes: one event object or {"events":[objects]}.
            let value: Value = serde_json::from_slice(&body).expect("accepted bodies are JSON");
            let objects = match value.get("events") {
                Some(Value::Array(items)) => items.clone(),
                _ => vec![value.clone()],
            };
            prop_assert!(objects.iter().all(Value::is_object), "accepted a body that is not an event object or a batch of them: {}", String::from_utf8_lossy(&body));
        }
    }

    #[test]
    fn a_valid_event_is_accepted_with_its_type_id_and_exact_object_bytes(event in valid_event()) {
        let (text, event_type, object, id) = event;
        let events = parse_body(text.as_bytes()).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(events.len(), 1);
        prop_assert_eq!(events[0].event_type, event_type);
        prop_assert_eq!(events[0].object.get(), object.as_str());
        if let Some(id) = id {
            prop_assert_eq!(events[0].id.as_str(), id.as_str());
        }
    }

    #[test]
    fn a_batch_keeps_its_events_in_request_order(events in proptest::collection::vec(valid_event(), 1..20)) {
        let body = format!(r#"{{"events":[{}]}}"#, events.iter().map(|e| e.0.as_str()).collect::<Vec<_>>().join(","));
        let parsed = parse_body(body.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let got: Vec<(EventType, &str)> = parsed.iter().map(|e| (e.event_type, e.object.get())).collect();
        let want: Vec<(EventType, &str)> = events.iter().map(|e| (e.1, e.2.as_str())).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn an_unknown_type_a_non_object_or_an_unknown_field_is_refused_as_invalid(
        name in "[a-z._]{0,20}",
        object in json_value(),
        extra in "[a-z]{1,8}",
        t in event_type(),
    ) {
        prop_assume!(name.parse::<EventType>().is_err());
        let unknown = json!({ "type": name, "data": { "object": {} } }).to_string();
        prop_assert!(matches!(parse_body(unknown.as_bytes()), Err(IngestError::Invalid(_))));
        if !object.is_object() {
            let body = json!({ "type": t.as_str(), "data": { "object": object } }).to_string();
            prop_assert!(matches!(parse_body(body.as_bytes()), Err(IngestError::Invalid(_))), "{}", body);
        }
        prop_assume!(!["type", "data", "id"].contains(&extra.as_str()));
        let mut event = json!({ "type": t.as_str(), "data": { "object": {} } });
        event.as_object_mut().unwrap().insert(extra, json!(1));
        let body = event.to_string();
        prop_assert!(matches!(parse_body(body.as_bytes()), Err(IngestError::Invalid(_))), "{}", body);
    }

    #[test]
    fn a_malformed_client_id_is_refused(id in "\\PC{0,30}") {
        prop_assume!(id.parse::<entity::EventId>().is_err());
        let body = json!({ "id": id, "type": "task.created", "data": { "object": {} } }).to_string();
        prop_assert!(matches!(parse_body(body.as_bytes()), Err(IngestError::Invalid(_))));
    }

    /// SPEC §4: the body sent is the stored payload, with the object byte for byte.
    #[test]
    fn the_payload_is_json_of_the_documented_shape_embedding_the_object_verbatim(object in json_object_text(), t in event_type(), secs in 0i64..4_102_444_800) {
        let raw = RawValue::from_string(object.clone()).unwrap();
        let created = Utc.timestamp_opt(secs, 0).unwrap();
        let bytes = payload_bytes("evt_x", t.as_str(), created, &raw, "acc_y");
        let value: Value = serde_json::from_str(&bytes).map_err(|e| TestCaseError::fail(format!("{bytes}: {e}")))?;
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        prop_assert_eq!(keys.len(), 5);
        prop_assert_eq!(&value["type"], t.as_str());
        prop_assert_eq!(&value["created"], &created.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        prop_assert_eq!(&value["data"]["object"], &serde_json::from_str::<Value>(&object).unwrap());
        let prefix = format!(r#"{{"id":"evt_x","type":"{}","created":""#, t.as_str());
        prop_assert!(bytes.starts_with(&prefix), "{}", bytes);
        let embedded = format!(r#""data":{{"object":{object}}},"account_id":"acc_y"}}"#);
        prop_assert!(bytes.ends_with(&embedded), "{}", bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn an_object_over_256_kb_is_refused_as_too_large(extra in 1usize..4096) {
        let filler = "x".repeat(MAX_EVENT_BYTES + extra);
        let body = json!({ "type": "task.created", "data": { "object": { "f": filler } } }).to_string();
        prop_assert!(matches!(parse_body(body.as_bytes()), Err(IngestError::TooLarge { index: 0, .. })), "{} bytes accepted", body.len());
    }

    #[test]
    fn a_batch_over_1000_events_or_an_empty_batch_is_refused(extra in 1usize..50) {
        let one = r#"{"type":"task.created","data":{"object":{}}}"#;
        let body = format!(r#"{{"events":[{}]}}"#, vec![one; MAX_BATCH + extra].join(","));
        prop_assert!(matches!(parse_body(body.as_bytes()), Err(IngestError::Invalid(m)) if m.contains("limit is 1000")));
        let full = format!(r#"{{"events":[{}]}}"#, vec![one; MAX_BATCH].join(","));
        prop_assert_eq!(parse_body(full.as_bytes()).map(|e| e.len()).ok(), Some(MAX_BATCH));
        prop_assert!(matches!(parse_body(br#"{"events":[]}"#), Err(IngestError::Invalid(_))), "empty batch accepted");
    }
}

// ---------------------------------------------------------------------------------------
// SSRF classifier and guard (SPEC §7)

/// The ranges SPEC §7 names, as an oracle independent of the classifier's own table.
const REFUSED_V4: [&str; 12] = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "0.0.0.0/8",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "169.254.169.254/32",
    "192.0.0.0/24",
];
const REFUSED_V6: [&str; 5] = ["::1/128", "::/128", "fc00::/7", "fe80::/10", "ff00::/8"];

fn ip_in(net: &'static str) -> impl Strategy<Value = IpAddr> {
    let net: IpNet = net.parse().unwrap();
    any::<u128>().prop_map(move |bits| match net {
        IpNet::V4(n) => {
            let host = (bits as u32) & !u32::from(n.netmask());
            IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) | host))
        }
        IpNet::V6(n) => {
            let host = bits & !u128::from(n.netmask());
            IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | host))
        }
    })
}

fn refused_ip() -> impl Strategy<Value = IpAddr> {
    let v4 = select(REFUSED_V4.to_vec()).prop_flat_map(ip_in);
    let v6 = select(REFUSED_V6.to_vec()).prop_flat_map(ip_in);
    prop_oneof![3 => v4, 1 => v6]
}

fn in_refused_range(ip: IpAddr) -> bool {
    REFUSED_V4.iter().chain(REFUSED_V6.iter()).any(|n| n.parse::<IpNet>().unwrap().contains(&ip))
}

/// Every way an IPv4 address can be written in a URL host.
fn spellings(ip: Ipv4Addr) -> Vec<String> {
    let n = u32::from(ip);
    let [a, b, c, d] = ip.octets();
    vec![
        ip.to_string(),
        n.to_string(),
        format!("0x{n:x}"),
        format!("0{a:o}.0{b:o}.0{c:o}.0{d:o}"),
        format!("0x{a:x}.{b}.0x{c:x}.{d}"),
        format!("{a}.{}", (u32::from(b) << 16) | (u32::from(c) << 8) | u32::from(d)),
        format!("{ip}."),
        format!("[::ffff:{ip}]"),
        format!("[64:ff9b::{ip}]"),
        format!("[2002:{:02x}{:02x}:{:02x}{:02x}::1]", a, b, c, d),
    ]
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

proptest! {
    #[test]
    fn every_address_in_a_refused_range_is_refused(ip in refused_ip()) {
        prop_assert!(classify(ip).is_some(), "{} passed the classifier", ip);
        let as_v6 = match ip { IpAddr::V4(v4) => v4.to_ipv6_mapped(), IpAddr::V6(v6) => v6 };
        prop_assert!(classify(IpAddr::V6(as_v6)).is_some(), "{} passed the classifier", as_v6);
    }

    /// std's own predicates as a second oracle.
    #[test]
    fn what_std_calls_internal_is_refused(ip in any::<IpAddr>()) {
        let internal = match ip {
            IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_multicast()
                || v4.is_broadcast() || v4.is_unspecified(),
            IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified() || v6.is_multicast()
                || v6.is_unique_local() || v6.is_unicast_link_local(),
        };
        if internal || in_refused_range(ip) {
            prop_assert!(classify(ip).is_some(), "{} passed the classifier", ip);
        }
    }

    #[test]
    fn ipv6_forms_embedding_an_ipv4_address_are_judged_by_it(v4 in any::<Ipv4Addr>()) {
        let mapped = classify(IpAddr::V6(v4.to_ipv6_mapped()));
        let compatible_nat64: Ipv6Addr = format!("64:ff9b::{v4}").parse().unwrap();
        let [a, b, c, d] = v4.octets();
        let six_to_four = Ipv6Addr::new(0x2002, u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]), 0, 0, 0, 0, 1);
        let direct = classify(IpAddr::V4(v4)).map(|r| r.network());
        prop_assert_eq!(mapped.map(|r| r.network()), direct);
        prop_assert_eq!(classify(IpAddr::V6(compatible_nat64)).map(|r| r.network()), direct);
        prop_assert_eq!(classify(IpAddr::V6(six_to_four)).map(|r| r.network()), direct);
    }

    #[test]
    fn the_reason_names_a_network_that_contains_the_address(ip in any::<IpAddr>()) {
        if let Some(range) = classify(ip) {
            let net = range.network();
            // An IPv6 form carrying an IPv4 address (mapped, NAT64: the last 32 bits; 6to4:
            // bits 16..48) is reported with the IPv4 network.
            let embedded = match ip {
                IpAddr::V6(v6) => {
                    let bits = u128::from(v6);
                    vec![IpAddr::V4(Ipv4Addr::from(bits as u32)), IpAddr::V4(Ipv4Addr::from((bits >> 80) as u32))]
                }
                IpAddr::V4(_) => vec![],
            };
            prop_assert!(net.contains(&ip) || embedded.iter().any(|e| net.contains(e)), "{} in {}", ip, net);
            prop_assert!(!range.to_string().is_empty());
        }
    }

    /// Any spelling of a refused IPv4 address in an endpoint URL is refused by the guard
    /// before any connection (IP literals never reach DNS), unless it is allow-listed.
    #[test]
    fn a_refused_address_is_refused_in_every_url_spelling_unless_allow_listed(ip in select(REFUSED_V4.to_vec()).prop_flat_map(ip_in)) {
        let IpAddr::V4(v4) = ip else { unreachable!() };
        let open = Guard::default();
        let allowed = Guard::new(AllowList::parse(&[format!("{v4}")]).unwrap());
        let allowed_net = Guard::new(AllowList::parse(&[Ipv4Net::new(v4, 8).unwrap().trunc().to_string()]).unwrap());
        for spelling in spellings(v4) {
            let Ok(url) = EndpointUrl::parse(&format!("https://{spelling}:8443/hook")) else {
                return Err(TestCaseError::fail(format!("{spelling} did not parse")));
            };
            let refused = block_on(open.resolve(&url));
            prop_assert!(matches!(refused, Err(GuardError::Blocked { .. })), "{} → {:?}", spelling, refused);
            if !spelling.starts_with("[64:") && !spelling.starts_with("[2002:") {
                prop_assert!(block_on(allowed.resolve(&url)).is_ok(), "{} is allow-listed", spelling);
                prop_assert!(block_on(allowed_net.resolve(&url)).is_ok(), "{} is in an allow-listed CIDR", spelling);
            }
        }
    }

    #[test]
    fn an_ipv6_literal_in_a_refused_range_is_refused_by_the_guard(ip in select(REFUSED_V6.to_vec()).prop_flat_map(ip_in)) {
        let url = EndpointUrl::parse(&format!("https://[{ip}]/")).unwrap();
        let refused = block_on(Guard::default().resolve(&url));
        prop_assert!(matches!(refused, Err(GuardError::Blocked { ip: got, .. }) if got == ip), "{:?}", refused);
        let allowed = Guard::new(AllowList::parse(&[ip.to_string()]).unwrap());
        prop_assert!(block_on(allowed.resolve(&url)).is_ok());
    }

    #[test]
    fn allow_list_parsing_never_panics(entries in proptest::collection::vec("\\PC{0,20}", 0..4), setting in "\\PC{0,40}") {
        let _ = AllowList::parse(&entries);
        let _ = AllowList::from_setting(&setting);
    }

    /// Allow-listing one host must not open anything else.
    #[test]
    fn an_allow_listed_name_admits_nothing_but_that_name(ip in refused_ip(), host in "[a-z]{1,10}\\.test", other in "[a-z]{1,10}\\.test") {
        prop_assume!(host != other);
        let guard = Guard::new(AllowList::parse(std::slice::from_ref(&host)).unwrap());
        prop_assert!(guard.check_ip(&host, ip).is_ok());
        prop_assert!(guard.check_ip(&other, ip).is_err());
        prop_assert!(guard.check_ip(&ip.to_string(), ip).is_err());
    }
}

#[test]
fn the_metadata_address_is_named_as_such() {
    let range = classify("169.254.169.254".parse().unwrap());
    assert!(matches!(range, Some(BlockedRange::CloudMetadata(_))), "{range:?}");
}

// ---------------------------------------------------------------------------------------
// Signatures (SPEC §5), checked by a receiver written from the docs, not by the signer

type HmacSha256 = Hmac<Sha256>;

fn header<'a>(headers: &'a [(&'static str, String)], name: &str) -> &'a str {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).unwrap()
}

/// docs/VERIFYING.md's Rust verifier: `webhook-signature` over "<id>.<timestamp>.<body>".
fn verify_standard(secret: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let Ok(key) = STANDARD.decode(secret.trim_start_matches("whsec_")) else { return false };
    header.split(' ').filter_map(|s| s.strip_prefix("v1,")).any(|given| {
        let Ok(given) = STANDARD.decode(given) else { return false };
        let mut mac = HmacSha256::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&given).is_ok()
    })
}

/// Stripe's scheme: `t=<t>,v1=<hex>[,v1=…]` over "<t>.<body>", key = the secret string.
fn verify_stripe(secret: &str, body: &[u8], header: &str) -> Option<i64> {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let t = t?;
    signatures
        .iter()
        .any(|given| {
            let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(format!("{t}.").as_bytes());
            mac.update(body);
            mac.verify_slice(given).is_ok()
        })
        .then_some(t)
}

fn secret() -> impl Strategy<Value = WebhookSecret> {
    proptest::collection::vec(any::<u8>(), 24..=64)
        .prop_map(|key| WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode(key))).unwrap())
}

fn msg_id() -> impl Strategy<Value = String> {
    prop_oneof![any::<u128>().prop_map(|n| format!("evt_{}", encode_u128(n >> 2))), "\\PC{0,30}"]
}

proptest! {
    #[test]
    fn every_signed_request_verifies_with_both_schemes(secret in secret(), id in msg_id(), t in any::<i64>(), body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let headers = signature_headers(&[&secret], &id, t, &body);
        prop_assert_eq!(header(&headers, "webhook-id"), id.as_str());
        prop_assert_eq!(header(&headers, "webhook-timestamp"), t.to_string());
        prop_assert!(verify_standard(secret.as_str(), &id, &t.to_string(), &body, header(&headers, "webhook-signature")));
        prop_assert_eq!(verify_stripe(secret.as_str(), &body, header(&headers, "x-webhook-signature")), Some(t));
    }

    #[test]
    fn during_a_rotation_either_secret_verifies(current in secret(), previous in secret(), id in msg_id(), t in any::<i64>(), body in proptest::collection::vec(any::<u8>(), 0..128)) {
        let headers = signature_headers(&[&current, &previous], &id, t, &body);
        for s in [&current, &previous] {
            prop_assert!(verify_standard(s.as_str(), &id, &t.to_string(), &body, header(&headers, "webhook-signature")));
            prop_assert_eq!(verify_stripe(s.as_str(), &body, header(&headers, "x-webhook-signature")), Some(t));
        }
    }

    #[test]
    fn any_tampered_byte_or_field_fails_verification(
        secret in secret(), other in secret(), id in msg_id(), t in any::<i64>(),
        body in proptest::collection::vec(any::<u8>(), 1..512), at in any::<prop::sample::Index>(), flip in 1u8..=255,
    ) {
        let headers = signature_headers(&[&secret], &id, t, &body);
        let (standard, stripe) = (header(&headers, "webhook-signature"), header(&headers, "x-webhook-signature"));
        let mut tampered = body.clone();
        tampered[at.index(body.len())] ^= flip;
        prop_assert!(!verify_standard(secret.as_str(), &id, &t.to_string(), &tampered, standard));
        prop_assert_eq!(verify_stripe(secret.as_str(), &tampered, stripe), None);
        let other_id = format!("{id}x");
        prop_assert!(!verify_standard(secret.as_str(), &other_id, &t.to_string(), &body, standard), "another id verified");
        prop_assert!(!verify_standard(secret.as_str(), &id, &t.wrapping_add(1).to_string(), &body, standard));
        prop_assume!(other != secret);
        prop_assert!(!verify_standard(other.as_str(), &id, &t.to_string(), &body, standard));
        prop_assert_eq!(verify_stripe(other.as_str(), &body, stripe), None);
        // A tampered signature (one flipped hex digit) fails too.
        let last = if stripe.ends_with('0') { '1' } else { '0' };
        let forged = format!("{}{last}", &stripe[..stripe.len() - 1]);
        prop_assert_eq!(verify_stripe(secret.as_str(), &body, &forged), None);
    }

    /// A receiver parsing whatever arrives in the signature headers must not crash or be
    /// fooled; neither may our own secret and `Retry-After` parsers on hostile text.
    #[test]
    fn parsing_arbitrary_header_text_never_panics_and_never_verifies(secret in secret(), text in "\\PC{0,120}", t in any::<i64>()) {
        prop_assert!(!verify_standard(secret.as_str(), "evt_1", &t.to_string(), b"{}", &text), "{:?} verified", text);
        prop_assert_eq!(verify_stripe(secret.as_str(), b"{}", &text), None);
        let _ = WebhookSecret::parse(&text);
        let _ = WebhookSecret::parse(&format!("whsec_{text}"));
        if let Some(delay) = parse_retry_after(&text, SystemTime::now()) {
            prop_assert!(delay <= MAX_RETRY_AFTER);
        }
    }

    #[test]
    fn a_parsed_secret_has_a_24_to_64_byte_key_and_a_mask_that_hides_it(text in prop_oneof!["whsec_[A-Za-z0-9+/]{20,100}={0,2}", "\\PC{0,40}"]) {
        if let Ok(secret) = WebhookSecret::parse(&text) {
            prop_assert!((24..=64).contains(&secret.key_bytes().len()));
            let masked = secret.masked();
            prop_assert!(!masked.contains(&text[6..text.len() - 4]));
            let debug = format!("{secret:?}");
            prop_assert!(!debug.contains(&text[6..]), "{}", debug);
        }
    }

    #[test]
    fn retry_after_seconds_are_honoured_up_to_the_cap(secs in any::<u64>(), pad in select(vec!["", " ", "\t"])) {
        let parsed = parse_retry_after(&format!("{pad}{secs}{pad}"), SystemTime::now());
        prop_assert_eq!(parsed, Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER)));
    }
}

// ---------------------------------------------------------------------------------------
// The OpenAPI document schemathesis fuzzes from (scripts/schemathesis.sh)

#[test]
fn the_openapi_document_names_event_types_as_they_travel_and_documents_common_errors() {
    use utoipa::OpenApi as _;
    let doc = serde_json::to_value(server::http::openapi::ApiDoc::openapi()).unwrap();
    let names: Vec<&str> = doc["components"]["schemas"]["EventType"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(names, EventType::ALL.map(EventType::as_str).to_vec());
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(responses.contains_key("401"), "{method} {path} does not document 401");
            if operation.get("requestBody").is_some() {
                assert!(responses.contains_key("422") && responses.contains_key("413"), "{method} {path}");
            }
        }
    }
}
