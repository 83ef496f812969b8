//! Hostile input, property-tested (issue 7 item 4): whatever a customer or an attacker types
//! as an endpoint URL, endpoint form or id, the shared rules never panic, and what they
//! accept meets SPEC §7 (`https://`, a host, ≤ 2,048 chars, no credentials, no fragment).
//! Pure functions only: nothing here opens a connection.
//!
//! Run: `cargo test -p entity --test props` (256 cases per property, PROPTEST_CASES to change).

use std::net::{Ipv4Addr, Ipv6Addr};

use entity::{
    endpoint_input::{EndpointInput, EndpointPatch, MAX_DESCRIPTION},
    endpoint_url::{EndpointHost, EndpointUrl, UrlError, MAX_URL_CHARS},
    ids::encode_u128,
    EndpointId, EventId, EventType,
};
use proptest::{prelude::*, sample::select};

// ---------------------------------------------------------------------------------------
// Generators

/// Host spellings an attacker would try: names, dotted/integer/hex/octal IPv4, bracketed
/// IPv6 (also with an embedded IPv4), and junk.
fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9]([a-zA-Z0-9-]{0,18}[a-zA-Z0-9])?(\\.[a-zA-Z0-9_-]{1,20}){0,3}\\.?",
        1 => any::<Ipv4Addr>().prop_map(|ip| ip.to_string()),
        1 => any::<u32>().prop_map(|n| n.to_string()),
        1 => any::<u32>().prop_map(|n| format!("0x{n:x}")),
        1 => any::<[u8; 4]>().prop_map(|b| format!("0{:o}.0x{:x}.{}.0{:o}", b[0], b[1], b[2], b[3])),
        1 => any::<Ipv6Addr>().prop_map(|ip| format!("[{ip}]")),
        1 => any::<Ipv4Addr>().prop_map(|ip| format!("[::ffff:{ip}]")),
        1 => "\\PC{0,12}",
        1 => Just(String::new()),
    ]
}

/// Strings shaped like URLs, built from hostile parts, so most cases reach the deep checks
/// (a purely random string is refused at the first one).
fn url_like() -> impl Strategy<Value = String> {
    // Weighted towards valid parts, so about half the cases are accepted and the rest are
    // refused for one or two reasons at a time.
    let scheme =
        prop_oneof![6 => Just("https"), 1 => select(vec!["HTTPS", "http", "ftp", "javascript", "file", "", "https:"])];
    let userinfo = prop_oneof![8 => Just(""), 1 => select(vec!["user@", "user:pass@", ":@", "@"])];
    let port = prop_oneof![
        6 => Just(String::new()),
        2 => (1u32..65536).prop_map(|p| format!(":{p}")),
        1 => prop_oneof![any::<u32>().prop_map(|p| format!(":{p}")), Just(":".to_owned()), Just(":0".to_owned())],
    ];
    let path = "(/[\\PC&&[^#?]]{0,10}){0,3}";
    let query = prop_oneof![3 => Just(String::new()), 1 => "\\?[\\PC&&[^#]]{0,20}"];
    let fragment = prop_oneof![8 => Just(String::new()), 1 => "#\\PC{0,8}"];
    let padding = select(vec!["", "", " ", "\n", "\t "]);
    (scheme, userinfo, host(), port, path, query, fragment, padding)
        .prop_map(|(s, u, h, p, path, q, f, pad)| format!("{pad}{s}://{u}{h}{p}{path}{q}{f}{pad}"))
}

fn event_type() -> impl Strategy<Value = EventType> {
    select(EventType::ALL.to_vec())
}

fn endpoint_input() -> impl Strategy<Value = EndpointInput> {
    let url = prop_oneof![url_like(), "\\PC{0,40}"];
    let description = prop_oneof!["\\PC{0,40}", "\\PC{490,510}", "[é€😀]{495,505}"];
    let types = proptest::collection::vec(event_type(), 0..5);
    (url, description, types, any::<bool>(), prop_oneof![any::<i32>(), -2..105i32]).prop_map(
        |(url, description, event_types, enabled, rate_limit)| EndpointInput {
            url,
            description,
            event_types,
            enabled,
            rate_limit,
        },
    )
}

// ---------------------------------------------------------------------------------------
// URL parsing (SPEC §7)

/// What every accepted URL must satisfy, whatever was typed.
fn assert_meets_spec(input: &str, url: &EndpointUrl) {
    let parsed = url.as_url();
    assert_eq!(parsed.scheme(), "https", "{input:?} → {url}");
    assert!(parsed.host().is_some(), "{input:?} → {url}: no host");
    assert!(url.as_str().chars().count() <= MAX_URL_CHARS, "{input:?}: too long once normalised");
    assert!(parsed.username().is_empty() && parsed.password().is_none(), "{input:?}: credentials kept");
    assert!(parsed.fragment().is_none(), "{input:?}: fragment kept");
    assert_ne!(parsed.port(), Some(0), "{input:?}: port 0");
    match url.host() {
        EndpointHost::Domain(name) => {
            assert!(!name.is_empty() && !name.ends_with('.'), "{input:?}: host {name:?}");
            assert_eq!(name, name.to_ascii_lowercase(), "{input:?}: host not lower-case");
            assert!(name.parse::<Ipv4Addr>().is_err(), "{input:?}: an IPv4 literal {name} reported as a domain");
        }
        EndpointHost::Ipv4(_) | EndpointHost::Ipv6(_) => {}
    }
}

proptest! {
    #[test]
    fn url_parsing_never_panics_on_arbitrary_text(input in "\\PC{0,64}") {
        let _ = EndpointUrl::parse(&input);
        let _ = EndpointHost::parse(&input);
    }

    #[test]
    fn url_parsing_never_panics_on_arbitrary_bytes_read_as_text(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let input = String::from_utf8_lossy(&bytes);
        let _ = EndpointUrl::parse(&input);
        let _ = EndpointUrl::parse(&format!("https://{input}"));
    }

    #[test]
    fn every_accepted_url_is_https_with_a_host_and_within_the_limits(input in url_like()) {
        if let Ok(url) = EndpointUrl::parse(&input) {
            assert_meets_spec(&input, &url);
        }
    }

    #[test]
    fn an_accepted_url_is_already_normalised(input in url_like()) {
        if let Ok(url) = EndpointUrl::parse(&input) {
            let again = EndpointUrl::parse(url.as_str());
            prop_assert_eq!(again.as_ref(), Ok(&url), "{:?} normalised to {} which does not parse to itself", input, url);
        }
    }

    #[test]
    fn any_scheme_but_https_is_refused(scheme in "[a-z][a-z0-9+.-]{0,8}", rest in "[a-z0-9./]{1,20}") {
        prop_assume!(scheme != "https");
        let input = format!("{scheme}://{rest}");
        prop_assert!(EndpointUrl::parse(&input).is_err(), "{} was accepted", input);
    }

    #[test]
    fn urls_longer_than_2048_characters_are_refused(extra in 1usize..300, ch in select(vec!['a', 'é', '😀'])) {
        let base = "https://example.com/";
        let input = format!("{base}{}", ch.to_string().repeat(MAX_URL_CHARS - base.len() + extra));
        prop_assert_eq!(EndpointUrl::parse(&input), Err(UrlError::TooLong { length: MAX_URL_CHARS + extra }));
    }

    #[test]
    fn credentials_and_fragments_are_always_refused(host in "[a-z]{1,10}\\.[a-z]{2,5}", user in "[a-z]{1,8}", frag in "[a-z]{0,8}") {
        prop_assert_eq!(EndpointUrl::parse(&format!("https://{user}@{host}/")), Err(UrlError::Credentials));
        prop_assert_eq!(EndpointUrl::parse(&format!("https://{host}/x#{frag}")), Err(UrlError::Fragment));
    }

    /// The SSRF guard classifies what `host()` says without DNS, so every spelling of an IPv4
    /// address must come out as that address, never as a name to resolve.
    #[test]
    fn every_spelling_of_an_ipv4_literal_is_reported_as_that_address(ip in any::<Ipv4Addr>()) {
        let n = u32::from(ip);
        let [a, b, c, d] = ip.octets();
        for spelling in [ip.to_string(), n.to_string(), format!("0x{n:x}"), format!("0{a:o}.0x{b:x}.{c}.{d}"), format!("{ip}."), format!("[::ffff:{ip}]")] {
            let url = EndpointUrl::parse(&format!("https://{spelling}/hook"));
            let host = url.map(|u| u.host());
            match spelling.starts_with('[') {
                true => prop_assert_eq!(host, Ok(EndpointHost::Ipv6(ip.to_ipv6_mapped())), "{}", spelling),
                false => prop_assert_eq!(host, Ok(EndpointHost::Ipv4(ip)), "{}", spelling),
            }
        }
    }

    #[test]
    fn every_ipv6_literal_is_reported_as_that_address(ip in any::<Ipv6Addr>()) {
        let url = EndpointUrl::parse(&format!("https://[{ip}]:8443/"));
        prop_assert_eq!(url.map(|u| (u.host(), u.port_or_default())), Ok((EndpointHost::Ipv6(ip), 8443)));
    }
}

// ---------------------------------------------------------------------------------------
// Endpoint input (SPEC §7, the dashboard form and the REST body)

proptest! {
    /// The rules, restated independently: no error iff every field is acceptable, and the
    /// errors name the broken fields in form order.
    #[test]
    fn endpoint_input_errors_name_exactly_the_broken_fields(input in endpoint_input()) {
        let mut expected = Vec::new();
        if EndpointUrl::parse(&input.url).is_err() { expected.push("url"); }
        if input.description.chars().count() > MAX_DESCRIPTION { expected.push("description"); }
        if input.event_types.is_empty() { expected.push("event_types"); }
        if !(1..=100).contains(&input.rate_limit) { expected.push("rate_limit"); }
        let errors = input.errors();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        prop_assert_eq!(&fields, &expected);
        prop_assert!(errors.iter().all(|e| !e.message.is_empty()));
        prop_assert_eq!(input.normalized_url().is_some(), !expected.contains(&"url"));
    }

    #[test]
    fn endpoint_input_from_arbitrary_json_never_panics(json in arbitrary_json()) {
        let text = json.to_string();
        if let Ok(input) = serde_json::from_str::<EndpointInput>(&text) {
            let _ = input.errors();
        }
        if let Ok(patch) = serde_json::from_str::<EndpointPatch>(&text) {
            let _ = patch.apply(EndpointInput::default()).errors();
        }
    }

    #[test]
    fn endpoint_input_survives_a_json_round_trip(input in endpoint_input()) {
        let text = serde_json::to_string(&input).unwrap();
        prop_assert_eq!(serde_json::from_str::<EndpointInput>(&text).unwrap(), input);
    }

    #[test]
    fn a_patch_changes_exactly_the_fields_it_names(current in endpoint_input(), next in endpoint_input(), mask in any::<[bool; 5]>()) {
        let patch = EndpointPatch {
            url: mask[0].then(|| next.url.clone()),
            description: mask[1].then(|| next.description.clone()),
            event_types: mask[2].then(|| next.event_types.clone()),
            enabled: mask[3].then_some(next.enabled),
            rate_limit: mask[4].then_some(next.rate_limit),
        };
        let merged = patch.apply(current.clone());
        prop_assert_eq!(&merged.url, if mask[0] { &next.url } else { &current.url });
        prop_assert_eq!(&merged.description, if mask[1] { &next.description } else { &current.description });
        prop_assert_eq!(&merged.event_types, if mask[2] { &next.event_types } else { &current.event_types });
        prop_assert_eq!(merged.enabled, if mask[3] { next.enabled } else { current.enabled });
        prop_assert_eq!(merged.rate_limit, if mask[4] { next.rate_limit } else { current.rate_limit });
    }
}

fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        url_like().prop_map(Value::from),
        event_type().prop_map(|t| Value::from(t.as_str())),
    ];
    let value = leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("\\PC{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    // Objects with the real field names, so serde gets past the first key.
    let fields = select(vec!["url", "description", "event_types", "enabled", "rate_limit", "other"]);
    prop_oneof![value.clone(), proptest::collection::btree_map(fields, value, 0..6).prop_map(|m| json!(m)),]
}

// ---------------------------------------------------------------------------------------
// Event types and ids (the ingest body's `type` and `id`)

proptest! {
    #[test]
    fn only_catalogue_names_parse_as_event_types(name in prop_oneof!["\\PC{0,24}", "[a-z]{1,8}\\.[a-z.]{1,12}"]) {
        match name.parse::<EventType>() {
            Ok(t) => prop_assert_eq!(t.as_str(), name.as_str()),
            Err(_) => prop_assert!(EventType::ALL.iter().all(|t| t.as_str() != name)),
        }
    }

    #[test]
    fn event_types_round_trip_through_text_and_json(t in event_type()) {
        prop_assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
        let json = serde_json::to_string(&t).unwrap();
        prop_assert_eq!(serde_json::from_str::<EventType>(&json).unwrap(), t);
    }

    #[test]
    fn id_parsing_never_panics_and_accepts_only_prefix_plus_26_base32(input in prop_oneof!["\\PC{0,40}", "(evt_|ep_)[0-9a-zA-Z]{24,28}", "evt_\\PC{26}"]) {
        if let Ok(id) = input.parse::<EventId>() {
            let rest = id.as_str().strip_prefix("evt_").unwrap();
            prop_assert_eq!(rest.len(), 26);
            prop_assert!(rest.bytes().all(|b| b"0123456789abcdefghjkmnpqrstvwxyz".contains(&b)));
        }
        let _ = input.parse::<EndpointId>();
    }

    #[test]
    fn every_128_bit_value_encodes_to_a_valid_id_in_the_same_order(a in any::<u128>(), b in any::<u128>()) {
        let (ea, eb) = (encode_u128(a), encode_u128(b));
        prop_assert!(format!("evt_{ea}").parse::<EventId>().is_ok(), "{}", ea);
        prop_assert_eq!(a.cmp(&b), ea.cmp(&eb), "ids must sort like the values they encode");
    }

    #[test]
    fn an_id_with_another_prefix_is_refused(n in any::<u128>()) {
        let encoded = encode_u128(n);
        let (other, shouting) = (format!("ep_{encoded}"), format!("EVT_{encoded}"));
        prop_assert!(other.parse::<EventId>().is_err(), "{}", other);
        prop_assert!(shouting.parse::<EventId>().is_err(), "{}", shouting);
        let upper = format!("evt_{}", encoded.to_uppercase());
        let all_digits = encoded.chars().all(|c| c.is_ascii_digit());
        prop_assert!(upper.parse::<EventId>().is_err() || all_digits, "{}", upper);
    }
}

/// Guards the generator itself: if hardly any generated URL were accepted, the properties
/// about accepted URLs would pass without checking anything.
#[test]
fn the_url_generator_reaches_both_acceptance_and_every_kind_of_refusal() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = url_like();
    let (mut accepted, mut ip_literals, mut refusals) = (0, 0, std::collections::HashSet::new());
    for _ in 0..2000 {
        let input = strategy.new_tree(&mut runner).unwrap().current();
        match EndpointUrl::parse(&input) {
            Ok(url) => {
                accepted += 1;
                ip_literals += usize::from(url.host().is_ip());
            }
            Err(e) => {
                refusals.insert(std::mem::discriminant(&e));
            }
        }
    }
    println!("url_like: {accepted}/2000 accepted ({ip_literals} IP literals), {} kinds of refusal", refusals.len());
    assert!(accepted >= 100 && ip_literals >= 20, "{accepted} accepted, {ip_literals} IP literals");
    assert!(refusals.len() >= 6, "only {} kinds of refusal reached", refusals.len());
}
