//! The filter expression language: parsing into an [`Expr`], with errors that point at a column.
//!
//! ```text
//! agent.*.completed            type glob (any word with `.`, `*` or `#`)
//! domain:repo  source:hookd  agent:claude*  agent_type:letta  session:s-1  rk:bloodbank.evt.#
//! corr:<id>  id:<id>  status:error  errors  last:15m
//! time:2026-11-22T10:00:00Z..2026-11-22T10:05:00Z   (either end may be left out)
//! timeout  "disk full"  text:5xx  free text over bodies (smart case: case-insensitive unless
//!                                 the text has an upper-case letter)
//! a b = a AND b;  a OR b;  NOT a, !a, -a;  ( … )
//! ```

use std::fmt;

use crate::event::Status;
use crate::time::{MICROS_PER_SEC, Micros, parse_rfc3339_us};

/// A parsed filter expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// The empty filter: everything matches.
    All,
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Term(Term),
}

/// A symbol-valued field that `key:value` terms match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Domain,
    Source,
    Agent,
    AgentType,
    Session,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Term {
    /// A type glob, matched against the type, the type without its versioned prefix, and the
    /// routing key.
    Type(String),
    /// A routing-key glob.
    RoutingKey(String),
    /// `field:pattern`, case-insensitive, `*` wildcards.
    Field(Field, String),
    Status(Status),
    /// Events whose correlation, causation or id is this id.
    Corr(String),
    Id(String),
    /// Received within this many microseconds before now.
    Last(Micros),
    /// Received in `[from, to)` (absolute times; an open end is unbounded).
    Between(Option<Micros>, Option<Micros>),
    /// Free text over the body.
    Text(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based character column where the problem is.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

/// A piece of the expression as an error message quotes it: at most 60 characters (a huge
/// filter must not come back as a huge message), control characters escaped.
fn shown(s: &str) -> String {
    let cut: String = s.chars().take(60).collect();
    let more = if cut.len() < s.len() { "…" } else { "" };
    format!("{}{more}", crate::text::printable(&cut))
}

/// `expr` with a caret under `column` (1-based characters), for showing a parse error: a window
/// of at most 80 characters around the column, control characters escaped.
#[must_use]
pub fn caret(expr: &str, column: usize) -> String {
    let chars: Vec<char> = expr.chars().collect();
    let col = column.saturating_sub(1).min(chars.len());
    let start = col.saturating_sub(40);
    let end = (start + 80).min(chars.len());
    let window: String = chars[start..end].iter().collect();
    // The caret stands under the same character once controls are escaped before it.
    let before: String = chars[start..col].iter().collect();
    let offset = crate::text::printable(&before).chars().count();
    let lead = if start > 0 { "…" } else { "" };
    let tail = if end < chars.len() { "…" } else { "" };
    format!(
        "  {lead}{}{tail}\n  {}{}^",
        crate::text::printable(&window),
        " ".repeat(lead.chars().count()),
        " ".repeat(offset)
    )
}

pub const FIELDS: &str =
    "type, rk, domain, source, agent, agent_type, session, corr, id, status, last, time, text";

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    /// `quoted`: the word had quotes in it; `leading_quote`: it began with one (`"a:b"` is text,
    /// `text:"a b"` a key term).
    Word {
        text: String,
        quoted: bool,
        leading_quote: bool,
    },
    Eof,
}

struct Lexer<'a> {
    chars: Vec<(usize, char)>,
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            chars: src.char_indices().collect(),
            src,
            pos: 0,
        }
    }

    /// Column (1-based, in characters) of character index `i`.
    fn col(i: usize) -> usize {
        i + 1
    }

    fn tokens(mut self) -> Result<Vec<(Tok, usize)>, ParseError> {
        let mut out = Vec::new();
        loop {
            while self.pos < self.chars.len() && self.chars[self.pos].1.is_whitespace() {
                self.pos += 1;
            }
            let start = self.pos;
            let Some(&(_, c)) = self.chars.get(self.pos) else {
                out.push((Tok::Eof, Self::col(start)));
                return Ok(out);
            };
            let tok = match c {
                '(' => {
                    self.pos += 1;
                    Tok::LParen
                }
                ')' => {
                    self.pos += 1;
                    Tok::RParen
                }
                '!' => {
                    self.pos += 1;
                    Tok::Not
                }
                '-' if self
                    .chars
                    .get(self.pos + 1)
                    .is_some_and(|(_, n)| n.is_alphabetic() || *n == '"' || *n == '(') =>
                {
                    self.pos += 1;
                    Tok::Not
                }
                _ => self.word()?,
            };
            out.push((tok, Self::col(start)));
        }
    }

    fn word(&mut self) -> Result<Tok, ParseError> {
        let mut text = String::new();
        let mut quoted = false;
        let start = self.pos;
        while let Some(&(_, c)) = self.chars.get(self.pos) {
            if c.is_whitespace() || c == '(' || c == ')' {
                break;
            }
            if c == '"' {
                let open = self.pos;
                quoted = true;
                self.pos += 1;
                loop {
                    match self.chars.get(self.pos) {
                        None => {
                            return Err(ParseError {
                                column: Self::col(open),
                                message: "unclosed quote".into(),
                            });
                        }
                        Some(&(_, '"')) => {
                            self.pos += 1;
                            break;
                        }
                        Some(&(_, '\\'))
                            if self
                                .chars
                                .get(self.pos + 1)
                                .is_some_and(|(_, n)| *n == '"' || *n == '\\') =>
                        {
                            text.push(self.chars[self.pos + 1].1);
                            self.pos += 2;
                        }
                        Some(&(_, ch)) => {
                            text.push(ch);
                            self.pos += 1;
                        }
                    }
                }
                continue;
            }
            text.push(c);
            self.pos += 1;
        }
        let raw = &self.src
            [self.chars[start].0..self.chars.get(self.pos).map_or(self.src.len(), |c| c.0)];
        if !quoted {
            match raw {
                "AND" | "and" | "&&" => return Ok(Tok::And),
                "OR" | "or" | "||" => return Ok(Tok::Or),
                "NOT" | "not" => return Ok(Tok::Not),
                _ => {}
            }
        }
        let leading_quote = raw.starts_with('"');
        Ok(Tok::Word {
            text,
            quoted,
            leading_quote,
        })
    }
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
}

/// Parentheses and NOTs nest at most this deep (the parser recurses; input must not choose the
/// stack depth).
pub const MAX_DEPTH: usize = 64;

/// Parses a filter expression. Blank input is [`Expr::All`].
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let toks = Lexer::new(src).tokens()?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    if p.peek() == &Tok::Eof {
        return Ok(Expr::All);
    }
    let e = p.or()?;
    match p.peek() {
        Tok::Eof => Ok(e),
        Tok::RParen => Err(p.error("unexpected ')' with no '(' before it")),
        _ => Err(p.error("unexpected input")),
    }
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].0
    }

    fn col(&self) -> usize {
        self.toks[self.pos.min(self.toks.len() - 1)].1
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            column: self.col(),
            message: message.into(),
        }
    }

    fn bump(&mut self) -> (Tok, usize) {
        let t = self.toks[self.pos.min(self.toks.len() - 1)].clone();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.and()?];
        while self.peek() == &Tok::Or {
            self.bump();
            if matches!(self.peek(), Tok::Eof | Tok::RParen) {
                return Err(self.error("expected a term after OR"));
            }
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Expr::All)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.unary()?];
        loop {
            match self.peek() {
                Tok::And => {
                    self.bump();
                    if matches!(self.peek(), Tok::Eof | Tok::RParen | Tok::Or | Tok::And) {
                        return Err(self.error("expected a term after AND"));
                    }
                    items.push(self.unary()?);
                }
                Tok::Word { .. } | Tok::Not | Tok::LParen => items.push(self.unary()?),
                _ => break,
            }
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Expr::All)
        } else {
            Expr::And(items)
        })
    }

    fn enter(&mut self, column: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError {
                column,
                message: format!("nested more than {MAX_DEPTH} levels deep"),
            });
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Tok::Not => {
                let (_, col) = self.bump();
                self.enter(col)?;
                if matches!(self.peek(), Tok::Eof | Tok::RParen | Tok::Or | Tok::And) {
                    return Err(self.error("expected a term after NOT"));
                }
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Not(Box::new(inner)))
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let (tok, col) = self.bump();
        match tok {
            Tok::LParen => {
                self.enter(col)?;
                if self.peek() == &Tok::RParen {
                    return Err(self.error("empty parentheses"));
                }
                let e = self.or()?;
                if self.peek() != &Tok::RParen {
                    return Err(ParseError {
                        column: self.col(),
                        message: format!("expected ')' to close the '(' at column {col}"),
                    });
                }
                self.bump();
                self.depth -= 1;
                Ok(e)
            }
            Tok::Word {
                text,
                quoted,
                leading_quote,
            } => term(&text, quoted, leading_quote, col).map(Expr::Term),
            Tok::RParen => Err(ParseError {
                column: col,
                message: "unexpected ')'".into(),
            }),
            Tok::And | Tok::Or => Err(ParseError {
                column: col,
                message: "expected a term before this operator".into(),
            }),
            Tok::Not | Tok::Eof => Err(ParseError {
                column: col,
                message: "expected a term".into(),
            }),
        }
    }
}

fn term(text: &str, quoted: bool, leading_quote: bool, col: usize) -> Result<Term, ParseError> {
    if let Some((key, value)) = text.split_once(':') {
        let is_key = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphabetic() || c == '_');
        if is_key && !leading_quote {
            let value_col = col + key.chars().count() + 1;
            let need = |v: &str| {
                if v.is_empty() {
                    Err(ParseError {
                        column: value_col,
                        message: format!("'{}:' needs a value", shown(key)),
                    })
                } else {
                    Ok(v.to_owned())
                }
            };
            return match key.to_ascii_lowercase().as_str() {
                "type" | "t" => need(value).map(Term::Type),
                "rk" | "routing_key" => need(value).map(Term::RoutingKey),
                "domain" | "d" => need(value).map(|v| Term::Field(Field::Domain, v)),
                "source" | "src" => need(value).map(|v| Term::Field(Field::Source, v)),
                "agent" => need(value).map(|v| Term::Field(Field::Agent, v)),
                "agent_type" => need(value).map(|v| Term::Field(Field::AgentType, v)),
                "session" => need(value).map(|v| Term::Field(Field::Session, v)),
                "corr" | "correlation" => need(value).map(Term::Corr),
                "id" => need(value).map(Term::Id),
                "text" => need(value).map(Term::Text),
                "status" => Status::from_label(value)
                    .map(Term::Status)
                    .ok_or_else(|| ParseError {
                        column: value_col,
                        message: format!(
                            "unknown status '{}' (use error, completed, started or other)",
                            shown(value)
                        ),
                    }),
                "last" => parse_duration(value)
                    .map(Term::Last)
                    .ok_or_else(|| ParseError {
                        column: value_col,
                        message: format!(
                            "bad duration '{}' (use a number and s, m, h or d, like 15m)",
                            shown(value)
                        ),
                    }),
                "time" => parse_time_range(value).ok_or_else(|| ParseError {
                    column: value_col,
                    message: format!(
                        "bad time range '{}' (use time:2026-11-22T10:00:00Z..2026-11-22T10:05:00Z; \
                         either end may be left out)",
                        shown(value)
                    ),
                }),
                _ => Err(ParseError {
                    column: col,
                    message: format!(
                        "unknown field '{}' (fields: {FIELDS}); put text in quotes to search for it",
                        shown(key)
                    ),
                }),
            };
        }
    }
    if quoted {
        return Ok(Term::Text(text.to_owned()));
    }
    if text.eq_ignore_ascii_case("errors") {
        return Ok(Term::Status(Status::Error));
    }
    if text.contains(['.', '*', '#']) {
        return Ok(Term::Type(text.to_owned()));
    }
    Ok(Term::Text(text.to_owned()))
}

/// `FROM..TO` with RFC 3339 ends (either may be empty, not both) → [`Term::Between`].
fn parse_time_range(value: &str) -> Option<Term> {
    let (from, to) = value.split_once("..")?;
    let end = |s: &str| -> Option<Option<Micros>> {
        if s.is_empty() {
            Some(None)
        } else {
            parse_rfc3339_us(s).map(Some)
        }
    };
    let (from, to) = (end(from)?, end(to)?);
    if from.is_none() && to.is_none() {
        return None;
    }
    Some(Term::Between(from, to))
}

/// The `time:` term for `[from_us, to_us)`, in whole seconds of UTC (what a brushed chart sets).
#[must_use]
pub fn time_range_term(from_us: Micros, to_us: Micros) -> String {
    let fmt = |us: Micros| {
        chrono::DateTime::<chrono::Utc>::from_timestamp_micros(us).map_or_else(
            || us.to_string(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
    };
    format!("time:{}..{}", fmt(from_us), fmt(to_us))
}

/// `15m`, `30s`, `2h`, `1d`, `500ms`.
#[must_use]
pub fn parse_duration(s: &str) -> Option<Micros> {
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let unit_us = match unit {
        "ms" => 1_000.0,
        "s" => MICROS_PER_SEC as f64,
        "m" | "min" => 60.0 * MICROS_PER_SEC as f64,
        "h" => 3_600.0 * MICROS_PER_SEC as f64,
        "d" => 86_400.0 * MICROS_PER_SEC as f64,
        _ => return None,
    };
    let us = n * unit_us;
    (us.is_finite() && us > 0.0 && us < 1e17).then_some(us as Micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(term: Term) -> Expr {
        Expr::Term(term)
    }

    #[test]
    fn terms() {
        assert_eq!(parse("").unwrap(), Expr::All);
        assert_eq!(parse("   ").unwrap(), Expr::All);
        assert_eq!(
            parse("agent.*.completed").unwrap(),
            t(Term::Type("agent.*.completed".into()))
        );
        assert_eq!(
            parse("theboard.#").unwrap(),
            t(Term::Type("theboard.#".into()))
        );
        assert_eq!(
            parse("domain:repo").unwrap(),
            t(Term::Field(Field::Domain, "repo".into()))
        );
        assert_eq!(parse("errors").unwrap(), t(Term::Status(Status::Error)));
        assert_eq!(
            parse("last:15m").unwrap(),
            t(Term::Last(15 * 60 * MICROS_PER_SEC))
        );
        assert_eq!(
            parse("time:2026-11-22T10:00:00Z..2026-11-22T10:05:00Z").unwrap(),
            t(Term::Between(
                Some(1_795_341_600 * MICROS_PER_SEC),
                Some(1_795_341_900 * MICROS_PER_SEC)
            ))
        );
        assert_eq!(
            parse("time:..2026-11-22T10:05:00+01:00").unwrap(),
            t(Term::Between(None, Some(1_795_338_300 * MICROS_PER_SEC)))
        );
        assert_eq!(
            parse(&time_range_term(
                1_795_341_600 * MICROS_PER_SEC + 5,
                1_795_341_900 * MICROS_PER_SEC
            ))
            .unwrap(),
            t(Term::Between(
                Some(1_795_341_600 * MICROS_PER_SEC),
                Some(1_795_341_900 * MICROS_PER_SEC)
            )),
            "the chart's term reads back"
        );
        for bad in ["time:..", "time:yesterday..", "time:2026-11-22T10:00:00Z"] {
            let e = parse(bad).unwrap_err();
            assert!(e.message.contains("bad time range"), "{bad}: {e}");
            assert_eq!(e.column, 6, "{bad}");
        }
        assert_eq!(parse("timeout").unwrap(), t(Term::Text("timeout".into())));
        assert_eq!(
            parse("\"disk full\"").unwrap(),
            t(Term::Text("disk full".into()))
        );
        assert_eq!(parse("text:\"a b\"").unwrap(), t(Term::Text("a b".into())));
        assert_eq!(
            parse("\"http://x\"").unwrap(),
            t(Term::Text("http://x".into()))
        );
        assert_eq!(parse("corr:abc-1").unwrap(), t(Term::Corr("abc-1".into())));
        assert_eq!(
            parse("status:failed").unwrap(),
            t(Term::Status(Status::Error))
        );
    }

    #[test]
    fn operators_and_precedence() {
        let e = parse("domain:agent errors OR NOT (llm.# AND \"x\")").unwrap();
        assert_eq!(
            e,
            Expr::Or(vec![
                Expr::And(vec![
                    t(Term::Field(Field::Domain, "agent".into())),
                    t(Term::Status(Status::Error))
                ]),
                Expr::Not(Box::new(Expr::And(vec![
                    t(Term::Type("llm.#".into())),
                    t(Term::Text("x".into()))
                ]))),
            ])
        );
        assert_eq!(
            parse("-heartbeat").unwrap(),
            Expr::Not(Box::new(t(Term::Text("heartbeat".into()))))
        );
        assert_eq!(
            parse("!errors").unwrap(),
            Expr::Not(Box::new(t(Term::Status(Status::Error))))
        );
        assert_eq!(
            parse("a && b || c").unwrap(),
            parse("a AND b OR c").unwrap()
        );
        assert_eq!(parse("-1").unwrap(), t(Term::Text("-1".into())));
    }

    #[test]
    fn errors_point_at_the_column() {
        let e = parse("domain:repo AND (errors").unwrap_err();
        assert_eq!(e.column, 24);
        assert!(e.message.contains("expected ')'"), "{e}");
        let e = parse("errors)").unwrap_err();
        assert_eq!(e.column, 7);
        let e = parse("foo:bar").unwrap_err();
        assert_eq!(e.column, 1);
        assert!(e.message.contains("unknown field 'foo'"));
        let e = parse("errors AND last:xyz").unwrap_err();
        assert_eq!(e.column, 17);
        let e = parse("a \"unclosed").unwrap_err();
        assert_eq!(e.column, 3);
        assert_eq!(e.to_string(), "column 3: unclosed quote");
        let e = parse("errors AND").unwrap_err();
        assert_eq!(e.column, 11);
        let e = parse("domain:").unwrap_err();
        assert_eq!(e.column, 8);
        let e = parse("()").unwrap_err();
        assert_eq!(e.column, 2);
        // Columns count characters, not bytes.
        let e = parse("héllo foo:x").unwrap_err();
        assert_eq!(e.column, 7);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(30 * MICROS_PER_SEC));
        assert_eq!(parse_duration("2h"), Some(7200 * MICROS_PER_SEC));
        assert_eq!(parse_duration("1.5m"), Some(90 * MICROS_PER_SEC));
        assert_eq!(parse_duration("500ms"), Some(500_000));
        assert_eq!(parse_duration("15"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let src = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
        let e = parse(&src).unwrap_err();
        assert_eq!(e.column, MAX_DEPTH + 1);
        assert!(e.message.contains("nested"));
        let src = "NOT ".repeat(10_000) + "a";
        assert!(parse(&src).is_err());
        assert!(
            parse(&format!(
                "{}a{}",
                "(".repeat(MAX_DEPTH),
                ")".repeat(MAX_DEPTH)
            ))
            .is_ok()
        );
    }
}
