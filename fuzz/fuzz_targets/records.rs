//! Every normalizer, and the MIME parser behind the e-mail channel, on arbitrary bytes: each
//! module's `records` must return (records, or `None` for a body it keeps unparsed) without
//! panicking, and whatever it returns must serialize (records are stored as JSON).

#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use switchboard_core::channels::REGISTRY;
use switchboard_core::model::Record;

fuzz_target!(|body: &[u8]| {
    let received_at = Utc.timestamp_opt(1_767_225_600, 0).unwrap();
    for module in REGISTRY {
        if let Some(records) = module.records(body, received_at) {
            for record in &records {
                let _ = record.key();
                // Stored as JSON and read back by every reader: both must work.
                let doc = serde_json::to_string(record).expect("a record serializes");
                let back: Record = serde_json::from_str(&doc).expect("a stored record reads back");
                assert_eq!(back.key(), record.key());
            }
        }
    }
});
