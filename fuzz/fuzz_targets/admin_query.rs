//! The admin API's query-string parsing for `GET /api/admin/calls` and `/usage`: the
//! input is a raw query string, decoded as the routes decode it, then every numeric and
//! enumerated parameter is read. Errors are fine, panics (overflow included) are not.
#![no_main]

use aihub::admin::http::{int_param, time_param};
use aihub::store::usage::GroupBy;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    let q: HashMap<String, String> = form_urlencoded::parse(data).into_owned().collect();
    for name in ["app", "cursor", "limit"] {
        let _ = int_param(&q, name);
    }
    for name in ["since", "until"] {
        let _ = time_param(&q, name);
    }
    if let Some(g) = q.get("group_by") {
        let _ = GroupBy::parse(g);
    }
});
