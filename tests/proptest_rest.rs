//! Property tests of the REST answer parser (`rest::parse_contacts_answer`, the code a live
//! Contact.get answer goes through): arbitrary bytes, arbitrary JSON and API-shaped answers
//! with hostile values never panic, and every error message and every contact field is inert.

mod proptest_support;

use civikey::store::rest::parse_contacts_answer;
use civikey::store::{Contact, StoreError};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use proptest_support::{dangerous, hostile_text, run};
use serde_json::{json, Map, Value};

const STATUSES: &[u16] = &[
    200, 201, 204, 301, 302, 400, 401, 403, 404, 405, 500, 502, 503, 504, 599, 0, 999,
];
const TYPES: &[&str] = &[
    "application/json",
    "text/html; charset=utf-8",
    "text/plain",
    "",
    "APPLICATION/JSON",
    "text/plain\u{1b}[2J",
];

fn check(result: Result<Vec<Contact>, StoreError>) -> Result<(), TestCaseError> {
    match result {
        Ok(contacts) => {
            for c in contacts {
                for text in [&c.display_name, &c.sort_name, &c.contact_type]
                    .into_iter()
                    .chain(c.email.as_ref())
                {
                    prop_assert!(!text.as_str().chars().any(dangerous), "{text:?}");
                }
            }
        }
        Err(e) => {
            let shown = e.to_string();
            prop_assert!(!shown.chars().any(dangerous), "error not inert: {shown:?}");
            prop_assert!(!shown.is_empty());
        }
    }
    Ok(())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        hostile_text(20).prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(hostile_text(6), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: &[&str] = &[
    "id",
    "display_name",
    "sort_name",
    "contact_type",
    "is_deleted",
    "email_primary.email",
    "api_key",
    "uf.uf_id",
    "error_message",
    "error_code",
];

/// An answer shaped like API v4's: a `values` list of records with the contact fields,
/// each field any JSON value (often the right type, with hostile text).
fn api_answer() -> impl Strategy<Value = Value> {
    let field_value = prop_oneof![
        3 => hostile_text(30).prop_map(Value::String),
        2 => (0u64..1000).prop_map(|n| json!(n)),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        1 => json_value(),
    ];
    let record = prop::collection::vec((prop::sample::select(FIELDS), field_value), 0..10)
        .prop_map(|fields| {
            let mut map = Map::new();
            for (k, v) in fields {
                map.insert(k.to_string(), v);
            }
            Value::Object(map)
        });
    (
        prop::collection::vec(record, 0..6),
        prop::option::of(json_value()),
        prop::option::of(hostile_text(30)),
        any::<bool>(),
    )
        .prop_map(|(values, debug, error, count)| {
            let mut answer = json!({ "values": values, "version": 4 });
            if count {
                answer["count"] = json!(values_len(&answer));
            }
            if let Some(d) = debug {
                answer["debug"] = d;
            }
            if let Some(e) = error {
                answer["error_message"] = json!(e);
            }
            answer
        })
}

fn values_len(answer: &Value) -> usize {
    answer["values"].as_array().map_or(0, Vec::len)
}

#[test]
fn arbitrary_bytes_never_panic_and_errors_are_inert() {
    run(
        "rest_bytes",
        256,
        (
            prop::sample::select(STATUSES),
            prop::sample::select(TYPES),
            prop::collection::vec(any::<u8>(), 0..400),
        ),
        |(status, content_type, body)| check(parse_contacts_answer(status, content_type, &body)),
    );
}

#[test]
fn arbitrary_json_never_panics_and_errors_are_inert() {
    run(
        "rest_json",
        256,
        (prop::sample::select(STATUSES), json_value()),
        |(status, value)| {
            let body = value.to_string();
            check(parse_contacts_answer(
                status,
                "application/json",
                body.as_bytes(),
            ))?;
            // The same answer cut short anywhere.
            let cut = body.len() / 2;
            check(parse_contacts_answer(
                status,
                "application/json",
                &body.as_bytes()[..cut],
            ))
        },
    );
}

#[test]
fn api_shaped_answers_never_panic_and_stay_inert() {
    run("rest_api", 256, api_answer(), |answer| {
        let body = answer.to_string();
        let result = parse_contacts_answer(200, "application/json", body.as_bytes());
        if let Ok(contacts) = &result {
            prop_assert!(contacts.len() <= values_len(&answer));
        }
        check(result)
    });
}

/// Over the 8 MiB cap: refused as too large without being parsed (a whole-site read then
/// asks for a smaller page).
#[test]
fn an_answer_over_the_cap_is_refused() {
    let mut body = b"{\"values\":[".to_vec();
    while body.len() <= 10 * 1024 * 1024 {
        body.extend_from_slice(b"{\"id\":1,\"display_name\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\",\"api_key\":null},");
    }
    body.extend_from_slice(b"{\"id\":2,\"api_key\":null}]}");
    let err = parse_contacts_answer(200, "application/json", &body).unwrap_err();
    assert!(matches!(err, StoreError::TooLarge(_)), "{err}");
    assert!(err.to_string().contains("larger than 8 MiB"), "{err}");
}
