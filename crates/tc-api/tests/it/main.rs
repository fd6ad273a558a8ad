//! The tc-api integration suite: the official Tencent Cloud Python SDK against a live server,
//! and property tests that request parsing and signature checks never panic.

mod parsing_never_panics;
mod sdk;
