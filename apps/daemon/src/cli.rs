//! respackd's command line, parsed by hand: three commands and two flags need no framework.

use chrono::{DateTime, Utc};

pub const USAGE: &str = "\
usage: respackd <command>

commands:
  run                          run the scheduler until SIGTERM (the systemd service)
  sweep --once [--now RFC3339] one pass of every job at an instant (default: the clock's now),
                               then exit; prints what it did as one JSON line
  check-config                 read the settings, connect to the database and the mail
                               transport, print the settings (secrets hidden) and exit

settings: respack.toml in the working directory (or RESPACK_CONFIG=path) and RESPACK_*
variables; see the README's respackd section.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run,
    SweepOnce { now: Option<DateTime<Utc>> },
    CheckConfig,
    Help,
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let args: Vec<String> = args.into_iter().collect();
    let Some((command, rest)) = args.split_first() else {
        return Err("no command given".into());
    };
    match command.as_str() {
        "run" if rest.is_empty() => Ok(Command::Run),
        "check-config" if rest.is_empty() => Ok(Command::CheckConfig),
        "help" | "--help" | "-h" => Ok(Command::Help),
        "sweep" => {
            let mut once = false;
            let mut now = None;
            let mut rest = rest.iter();
            while let Some(flag) = rest.next() {
                match flag.as_str() {
                    "--once" => once = true,
                    "--now" => {
                        let text = rest.next().ok_or("--now needs an RFC 3339 instant, e.g. 2026-11-23T10:00:00Z")?;
                        let at = DateTime::parse_from_rfc3339(text)
                            .map_err(|error| format!("--now {text:?} is not an RFC 3339 instant: {error}"))?;
                        now = Some(at.with_timezone(&Utc));
                    }
                    other => return Err(format!("unknown flag {other:?} for sweep")),
                }
            }
            if !once {
                return Err("sweep runs one pass and exits: write `respackd sweep --once`".into());
            }
            Ok(Command::SweepOnce { now })
        }
        "run" | "check-config" => Err(format!("{command} takes no arguments")),
        other => Err(format!("unknown command {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn commands_and_their_errors() {
        assert_eq!(parse(args("run")), Ok(Command::Run));
        assert_eq!(parse(args("check-config")), Ok(Command::CheckConfig));
        assert_eq!(parse(args("sweep --once")), Ok(Command::SweepOnce { now: None }));
        let at = DateTime::parse_from_rfc3339("2028-02-29T23:30:00+08:00").unwrap().with_timezone(&Utc);
        assert_eq!(
            parse(args("sweep --now 2028-02-29T23:30:00+08:00 --once")),
            Ok(Command::SweepOnce { now: Some(at) })
        );
        assert!(parse(args("sweep")).unwrap_err().contains("--once"));
        assert!(parse(args("sweep --once --now tomorrow")).unwrap_err().contains("RFC 3339"));
        assert!(parse(args("run --fast")).is_err());
        assert!(parse(args("")).is_err());
        assert!(parse(args("serve")).unwrap_err().contains("serve"));
    }
}
