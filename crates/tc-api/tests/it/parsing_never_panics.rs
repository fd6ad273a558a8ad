//! Property tests (the crate's fuzzing): request parsing, query unflattening, Authorization
//! parsing and signature verification answer every input with a value or an error, never a
//! panic.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use respack_tc_api::params::unflatten_query;
use respack_tc_api::request::{parse, verify, RawRequest};
use respack_tc_api::signature::{authorization_header, Authorization, SignedRequest};

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x-tc-action".to_owned()),
        Just("x-tc-version".to_owned()),
        Just("x-tc-timestamp".to_owned()),
        Just("x-tc-token".to_owned()),
        Just("x-tc-language".to_owned()),
        Just("x-tc-region".to_owned()),
        Just("authorization".to_owned()),
        Just("content-type".to_owned()),
        Just("host".to_owned()),
        Just("x-tc-content-sha256".to_owned()),
        "[a-z-]{1,12}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("DescribeAccountBalance".to_owned()),
        Just("2018-07-09".to_owned()),
        Just("application/json".to_owned()),
        Just("UNSIGNED-PAYLOAD".to_owned()),
        "-?[0-9]{1,20}",
        "TC3-HMAC-SHA256 Credential=[A-Za-z0-9/_=-]{0,60}, SignedHeaders=[a-z;-]{0,30}, Signature=[0-9a-f]{0,70}",
        ".{0,80}",
    ]
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000, 0).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_requests_never_panic(
        method in prop_oneof![Just("POST".to_owned()), Just("GET".to_owned()), "[A-Z]{0,7}"],
        query in ".{0,120}",
        headers in proptest::collection::vec((header_name(), header_value()), 0..12),
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let raw = RawRequest { method: &method, path: "/", query: &query, headers: &headers, body: &body };
        if let Ok(parsed) = parse(&raw) {
            let _ = verify(&raw, &parsed, "secret", now(), Duration::minutes(5));
        }
    }

    #[test]
    fn arbitrary_json_bodies_of_a_signed_request_never_panic(body in ".{0,300}", timestamp in any::<i64>()) {
        let mut headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("host".to_owned(), "localhost".to_owned()),
        ];
        let signed = SignedRequest { method: "POST", uri: "/", query: "", headers: &headers, payload: body.as_bytes() };
        let authorization = authorization_header("AKID", "secret", "billing", timestamp, &signed);
        headers.extend([
            ("authorization".to_owned(), authorization),
            ("x-tc-action".to_owned(), "DescribeAccountBalance".to_owned()),
            ("x-tc-version".to_owned(), "2018-07-09".to_owned()),
            ("x-tc-timestamp".to_owned(), timestamp.to_string()),
        ]);
        let raw = RawRequest { method: "POST", path: "/", query: "", headers: &headers, body: body.as_bytes() };
        if let Ok(parsed) = parse(&raw) {
            let outcome = verify(&raw, &parsed, "secret", now(), Duration::minutes(5));
            // A correctly signed request fails only for its timestamp.
            if let Err(error) = outcome {
                prop_assert!(
                    ["AuthFailure.SignatureExpire", "AuthFailure.SignatureFailure"].contains(&error.code()),
                    "{error}"
                );
            }
        }
    }

    #[test]
    fn arbitrary_query_strings_and_authorizations_never_panic(query in ".{0,200}", header in ".{0,200}") {
        let _ = unflatten_query(&query);
        let _ = Authorization::parse(&header);
        let _ = Authorization::parse(&format!("TC3-HMAC-SHA256 {header}"));
    }
}
