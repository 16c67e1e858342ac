//! `relay-worker validate [FILE|-]...`: checks envelopes and reports per event.
//!
//! A file holds one JSON document; `-` (or no argument) reads JSON lines from
//! stdin, one event per line, blank lines skipped. Each event gets one output
//! line: `ok`, or `invalid` with the reason's code and text.

use std::io::{self, BufRead, Write};

use relay_contract::{Invalid, Validator};
use serde_json::json;

/// How each result is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `INPUT: ok` / `INPUT: invalid (code): reason`
    Text,
    /// One JSON object per line: `{"input", "ok", "code", "reason"}`.
    Json,
}

/// What a run found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub ok: usize,
    pub invalid: usize,
    /// Inputs that could not be read at all (named on stderr).
    pub unreadable: usize,
}

impl Summary {
    /// 0 all valid, 1 some invalid, 2 some input unreadable.
    pub fn exit_code(&self) -> u8 {
        match self {
            Summary {
                unreadable: 1.., ..
            } => 2,
            Summary { invalid: 1.., .. } => 1,
            _ => 0,
        }
    }
}

/// Checks every input and writes one line per event to `out`; problems reading an
/// input go to `err`.
pub fn run(
    validator: &Validator,
    inputs: &[String],
    stdin: impl BufRead,
    mut out: impl Write,
    mut err: impl Write,
    format: Format,
) -> io::Result<Summary> {
    let mut summary = Summary::default();
    let mut stdin = Some(stdin);
    let dash = ["-".to_owned()];
    let inputs = if inputs.is_empty() { &dash[..] } else { inputs };
    for input in inputs {
        if input == "-" {
            let Some(lines) = stdin.take() else {
                writeln!(err, "-: stdin can be read only once")?;
                summary.unreadable += 1;
                continue;
            };
            for (n, line) in lines.split(b'\n').enumerate() {
                let line = line?;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let result = validator.validate_bytes(&line).map(|_| ());
                report(
                    &mut out,
                    &format!("-:{}", n + 1),
                    &result,
                    format,
                    &mut summary,
                )?;
            }
        } else {
            match std::fs::read(input) {
                Ok(bytes) => {
                    let result = validator.validate_bytes(&bytes).map(|_| ());
                    report(&mut out, input, &result, format, &mut summary)?;
                }
                Err(e) => {
                    writeln!(err, "{input}: cannot read: {e}")?;
                    summary.unreadable += 1;
                }
            }
        }
    }
    Ok(summary)
}

fn report(
    out: &mut impl Write,
    label: &str,
    result: &Result<(), Invalid>,
    format: Format,
    summary: &mut Summary,
) -> io::Result<()> {
    match result {
        Ok(()) => summary.ok += 1,
        Err(_) => summary.invalid += 1,
    }
    match (format, result) {
        (Format::Text, Ok(())) => writeln!(out, "{label}: ok"),
        (Format::Text, Err(e)) => writeln!(out, "{label}: invalid ({}): {e}", e.code()),
        (Format::Json, Ok(())) => writeln!(out, "{}", json!({"input": label, "ok": true})),
        (Format::Json, Err(e)) => writeln!(
            out,
            "{}",
            json!({"input": label, "ok": false, "code": e.code(), "reason": e.to_string()})
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = include_str!("../../schemas/fixtures/valid/user.created.json");

    fn check(inputs: &[&str], stdin: &str, format: Format) -> (Summary, String, String) {
        let validator = Validator::new().unwrap_or_else(|e| panic!("{e}"));
        let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let summary = run(
            &validator,
            &inputs,
            stdin.as_bytes(),
            &mut out,
            &mut err,
            format,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap_or_default();
        (summary, text(out), text(err))
    }

    #[test]
    fn stdin_json_lines_are_numbered_and_blank_lines_skipped() {
        let one_line: serde_json::Value = serde_json::from_str(VALID).unwrap_or_default();
        let stdin = format!("{one_line}\n\nnot json\n");
        let (summary, out, _) = check(&[], &stdin, Format::Text);
        assert_eq!(
            summary,
            Summary {
                ok: 1,
                invalid: 1,
                unreadable: 0
            }
        );
        assert_eq!(summary.exit_code(), 1);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "-:1: ok");
        assert!(
            lines[1].starts_with("-:3: invalid (not_json): "),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn json_format_gives_code_and_reason() {
        let (_, out, _) = check(&["-"], "[1]\n", Format::Json);
        let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
        assert_eq!(line["input"], "-:1");
        assert_eq!(line["ok"], false);
        assert_eq!(line["code"], "not_object");
    }

    #[test]
    fn an_unreadable_file_is_named_and_exits_2() {
        let (summary, out, err) = check(&["/nonexistent/event.json"], "", Format::Text);
        assert_eq!(summary.exit_code(), 2);
        assert!(out.is_empty());
        assert!(
            err.starts_with("/nonexistent/event.json: cannot read:"),
            "{err}"
        );
    }
}
