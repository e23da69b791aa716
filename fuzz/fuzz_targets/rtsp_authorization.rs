//! `Authorization` headers (RFC 7235, 7616, 7617) and stored password
//! hashes: anything a client sends is parsed or refused, never a panic
//! (live555's CVE-2019-9215 class), and a parsed Digest can be checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtpcast::rtsp::auth::credentials::{expected_response, parse, Credentials};
use rtpcast::rtsp::auth::password::StoredPassword;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(Credentials::Digest(digest)) => {
            let stored = StoredPassword::new(&digest.username, &digest.realm, "password");
            let response = expected_response(&digest, &stored, "DESCRIBE");
            assert!(response.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        Ok(Credentials::Basic { username, .. }) => assert!(!username.contains(':')),
        Err(_) => {}
    }
    if let Ok(stored) = StoredPassword::parse(text) {
        assert_eq!(StoredPassword::parse(&stored.to_string()), Ok(stored));
    }
});
