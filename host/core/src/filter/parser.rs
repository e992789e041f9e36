//! The grammar: LangSmith's call syntax (`and(eq(run_type, "llm"), ...)`)
//! and the infix form of the webhook docs (`has(feedback_key, "x") and
//! feedback_score < 0.5`), freely mixed. Precedence: `not` > `and` > `or`.
//!
//! ```text
//! expr   := and ("or" and)*
//! and    := unary ("and" unary)*
//! unary  := "not" unary | atom
//! atom   := "(" expr ")" | NAME "(" [arg ("," arg)*] ")" | NAME OP literal
//! arg    := atom-call | NAME | literal | "[" [literal ("," literal)*] "]"
//! OP     := = | == | != | < | <= | > | >=
//! ```
//!
//! The output is an untyped tree; `compile` gives it types.

use super::FilterError;
use super::lexer::Tok;

/// A literal value with its position.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Lit {
    Str(String),
    Num(f64, bool),
    Bool(bool),
    Null,
}

/// An untyped syntax node.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    /// `name(args)`, including `and(...)`, `or(...)`, `not(...)`.
    Call { name: String, pos: usize, args: Vec<Node> },
    /// A bare name in argument position: a field.
    Name { name: String, pos: usize },
    /// A literal in argument position.
    Lit { lit: Lit, pos: usize },
    /// `[a, b]` in argument position.
    List { items: Vec<(Lit, usize)>, pos: usize },
    /// Infix `and`.
    And(Vec<Node>),
    /// Infix `or`.
    Or(Vec<Node>),
    /// Prefix `not`.
    Not(Box<Node>, usize),
    /// `field OP literal`.
    Infix { field: String, field_pos: usize, op: &'static str, op_pos: usize, value: Lit, value_pos: usize },
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(usize, Tok)>,
    i: usize,
    depth: usize,
}

/// Deepest nesting accepted; deeper input is refused rather than risking
/// the stack.
const MAX_DEPTH: usize = 64;

pub(super) fn parse(src: &str, toks: Vec<(usize, Tok)>) -> Result<Node, FilterError> {
    let mut p = Parser { src, toks, i: 0, depth: 0 };
    if matches!(p.peek(), Tok::End) {
        return Err(FilterError::at(
            src,
            0,
            "empty filter; expected an expression such as eq(run_type, \"llm\")".into(),
        ));
    }
    let node = p.expr()?;
    match p.peek() {
        Tok::End => Ok(node),
        other => {
            let what = other.describe();
            Err(p.error(format!("expected 'and', 'or' or the end of the filter, found {what}")))
        }
    }
}

fn keyword(t: &Tok, kw: &str) -> bool {
    matches!(t, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].1
    }

    fn peek2(&self) -> &Tok {
        &self.toks[(self.i + 1).min(self.toks.len() - 1)].1
    }

    fn pos(&self) -> usize {
        self.toks[self.i.min(self.toks.len() - 1)].0
    }

    fn bump(&mut self) -> (usize, Tok) {
        let t = self.toks[self.i.min(self.toks.len() - 1)].clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn error(&self, msg: String) -> FilterError {
        FilterError::at(self.src, self.pos(), msg)
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), FilterError> {
        if self.peek() == want {
            self.bump();
            Ok(())
        } else {
            let found = self.peek().describe();
            Err(self.error(format!("expected {what}, found {found}")))
        }
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("filter nests deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Node, FilterError> {
        self.enter()?;
        let mut parts = vec![self.and()?];
        while keyword(self.peek(), "or") {
            self.bump();
            parts.push(self.and()?);
        }
        self.depth -= 1;
        Ok(if parts.len() == 1 { parts.remove(0) } else { Node::Or(parts) })
    }

    fn and(&mut self) -> Result<Node, FilterError> {
        let mut parts = vec![self.unary()?];
        while keyword(self.peek(), "and") {
            self.bump();
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Node::And(parts) })
    }

    fn unary(&mut self) -> Result<Node, FilterError> {
        if keyword(self.peek(), "not") && !matches!(self.peek2(), Tok::LParen) {
            let pos = self.bump().0;
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Node::Not(Box::new(inner), pos));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Node, FilterError> {
        match self.peek().clone() {
            Tok::LParen => {
                self.bump();
                let inner = self.expr()?;
                self.expect(&Tok::RParen, "')' to close the parenthesis")?;
                Ok(inner)
            }
            Tok::Ident(name) => {
                let pos = self.bump().0;
                match self.peek().clone() {
                    Tok::LParen => self.call(name, pos),
                    Tok::Op(op) => {
                        let op_pos = self.bump().0;
                        let (value, value_pos) = self.literal()?;
                        Ok(Node::Infix { field: name, field_pos: pos, op, op_pos, value, value_pos })
                    }
                    other => Err(self.error(format!(
                        "expected '(' after function {name:?} or a comparison operator after field {name:?}, found {}",
                        other.describe()
                    ))),
                }
            }
            other => Err(self.error(format!(
                "expected a function call such as eq(name, \"x\"), a comparison such as latency > 5, or '(', found {}",
                other.describe()
            ))),
        }
    }

    fn call(&mut self, name: String, pos: usize) -> Result<Node, FilterError> {
        self.expect(&Tok::LParen, "'('")?;
        self.enter()?;
        let mut args = Vec::new();
        if *self.peek() != Tok::RParen {
            loop {
                args.push(self.arg()?);
                match self.peek() {
                    Tok::Comma => {
                        self.bump();
                    }
                    Tok::RParen => break,
                    other => {
                        let found = other.describe();
                        return Err(
                            self.error(format!("expected ',' or ')' in the arguments of {name}(...), found {found}"))
                        );
                    }
                }
            }
        }
        self.expect(&Tok::RParen, "')'")?;
        self.depth -= 1;
        Ok(Node::Call { name, pos, args })
    }

    fn arg(&mut self) -> Result<Node, FilterError> {
        match self.peek().clone() {
            Tok::Ident(_) if matches!(self.peek2(), Tok::LParen | Tok::Op(_)) || keyword(self.peek(), "not") => {
                self.expr()
            }
            Tok::Ident(name) if ["null", "true", "false"].contains(&name.to_ascii_lowercase().as_str()) => {
                let (lit, pos) = self.literal()?;
                Ok(Node::Lit { lit, pos })
            }
            Tok::Ident(name) => {
                let pos = self.bump().0;
                Ok(Node::Name { name, pos })
            }
            Tok::LBracket => {
                let pos = self.bump().0;
                let mut items = Vec::new();
                if *self.peek() != Tok::RBracket {
                    loop {
                        items.push(self.literal()?);
                        match self.peek() {
                            Tok::Comma => {
                                self.bump();
                            }
                            Tok::RBracket => break,
                            other => {
                                let found = other.describe();
                                return Err(self.error(format!("expected ',' or ']' in a list, found {found}")));
                            }
                        }
                    }
                }
                self.expect(&Tok::RBracket, "']'")?;
                Ok(Node::List { items, pos })
            }
            Tok::LParen => self.expr(),
            _ => {
                let (lit, pos) = self.literal()?;
                Ok(Node::Lit { lit, pos })
            }
        }
    }

    fn literal(&mut self) -> Result<(Lit, usize), FilterError> {
        let pos = self.pos();
        let lit = match self.peek().clone() {
            Tok::Str(s) => Lit::Str(s),
            Tok::Num(n, int) => Lit::Num(n, int),
            Tok::Ident(s) if s.eq_ignore_ascii_case("null") => Lit::Null,
            Tok::Ident(s) if s.eq_ignore_ascii_case("true") => Lit::Bool(true),
            Tok::Ident(s) if s.eq_ignore_ascii_case("false") => Lit::Bool(false),
            other => {
                return Err(self.error(format!(
                    "expected a value (a quoted string, a number, true, false or null), found {}",
                    other.describe()
                )));
            }
        };
        self.bump();
        Ok((lit, pos))
    }
}
