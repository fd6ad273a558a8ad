//! respackd's integration tests: a real SMTP server (aiosmtpd) receives what lettre sends, the
//! sender survives an SMTP outage, two daemons share one PostgreSQL, and SIGKILL at random
//! moments never double-charges, loses a cycle or loses a mail.

mod harness;

mod delivery;
mod processes;
mod service;
mod settlement;
