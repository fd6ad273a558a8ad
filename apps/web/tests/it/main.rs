//! respack-web's integration suite: the app on port 0 against a throwaway store, driven over HTTP.

mod helpers;

mod accounts;
mod bills;
mod console;
mod health;
mod tc_api;
mod usage;
mod usage_errors;
