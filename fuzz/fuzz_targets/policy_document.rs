//! Any text as a policy document: a policy or a list of problems, never a panic.
#![no_main]

use leadgate::domain::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = Policy::parse(text);
});
