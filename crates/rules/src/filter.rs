//! Filter expressions: SQL boolean expressions over a source's declared attributes, parsed with
//! `sqlparser` and compiled once into a small predicate tree over integer-encoded attributes.
//!
//! Semantics follow SQL's three-valued logic so that the streaming predicate and a SQL engine
//! given the same text (with taxonomies expanded) agree on every event: a comparison with an
//! absent attribute is unknown, `NOT unknown` is unknown, and only `true` passes.

use std::collections::HashMap;

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;
use vigil_model::Event;

use crate::types::{AttrType, Source};

/// Deepest nesting a filter may have; deeper text is refused with a clear error.
pub const MAX_FILTER_DEPTH: usize = 48;
/// Longest filter text accepted.
pub const MAX_FILTER_LEN: usize = 8 * 1024;

/// Pseudo-attribute: local hour of day, 0..=23.
pub const ATTR_HOUR: u8 = 32;
/// Pseudo-attribute: local day of week, 1 = Monday ..= 7 = Sunday.
pub const ATTR_DOW: u8 = 33;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    #[inline]
    fn apply(self, a: i64, b: i64) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        }
    }
}

/// A compiled predicate. Attribute references are indices into the source's attributes, or
/// [`ATTR_HOUR`] / [`ATTR_DOW`].
#[derive(Clone, Debug, PartialEq)]
pub enum Pred {
    Const(bool),
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
    Cmp {
        attr: u8,
        op: CmpOp,
        val: i64,
    },
    /// Enum or bool membership: bit v set when value v is in the set.
    InMask {
        attr: u8,
        mask: u64,
        negated: bool,
    },
    InList {
        attr: u8,
        vals: Vec<i64>,
        negated: bool,
    },
    IsNull {
        attr: u8,
        negated: bool,
    },
}

/// The per-event context a predicate reads: the event and its local hour and weekday, computed
/// once per event by the caller.
#[derive(Clone, Copy, Debug)]
pub struct EvalCtx<'a> {
    pub event: &'a Event,
    pub hour: i64,
    pub dow: i64,
}

impl<'a> EvalCtx<'a> {
    /// The context of `event` in `zone`'s local civil time.
    pub fn new(event: &'a Event, zone: &vigil_model::Zone) -> Self {
        Self::at_local(event, zone.local(event.ts))
    }

    /// The context of `event` whose local-axis time ([`vigil_model::Zone::local`]) is `local`.
    pub fn at_local(event: &'a Event, local: i64) -> Self {
        use vigil_model::time::{DAY, HOUR};
        let hour = local.rem_euclid(DAY) / HOUR;
        // 1970-01-01 was a Thursday (4).
        let dow = (local.div_euclid(DAY) + 3).rem_euclid(7) + 1;
        EvalCtx { event, hour, dow }
    }

    #[inline]
    fn get(&self, attr: u8) -> Option<i64> {
        match attr {
            ATTR_HOUR => Some(self.hour),
            ATTR_DOW => Some(self.dow),
            a => self.event.get(a as usize),
        }
    }
}

impl Pred {
    /// True when the event passes (SQL `WHERE` semantics: unknown does not pass).
    #[inline]
    pub fn matches(&self, cx: &EvalCtx<'_>) -> bool {
        self.eval(cx) == Some(true)
    }

    /// Three-valued evaluation: `None` is SQL's unknown.
    pub fn eval(&self, cx: &EvalCtx<'_>) -> Option<bool> {
        match self {
            Pred::Const(b) => Some(*b),
            Pred::And(ps) => {
                let mut unknown = false;
                for p in ps {
                    match p.eval(cx) {
                        Some(false) => return Some(false),
                        None => unknown = true,
                        Some(true) => {}
                    }
                }
                if unknown { None } else { Some(true) }
            }
            Pred::Or(ps) => {
                let mut unknown = false;
                for p in ps {
                    match p.eval(cx) {
                        Some(true) => return Some(true),
                        None => unknown = true,
                        Some(false) => {}
                    }
                }
                if unknown { None } else { Some(false) }
            }
            Pred::Not(p) => p.eval(cx).map(|b| !b),
            Pred::Cmp { attr, op, val } => cx.get(*attr).map(|v| op.apply(v, *val)),
            Pred::InMask { attr, mask, negated } => {
                cx.get(*attr).map(|v| ((v as u64) < 64 && mask & (1u64 << v) != 0) != *negated)
            }
            Pred::InList { attr, vals, negated } => cx.get(*attr).map(|v| vals.contains(&v) != *negated),
            Pred::IsNull { attr, negated } => Some((cx.get(*attr).is_none()) != *negated),
        }
    }

    /// Attributes the predicate reads (bit mask over source attributes; pseudo-attributes are
    /// not included).
    pub fn attrs_read(&self) -> u64 {
        match self {
            Pred::Const(_) => 0,
            Pred::And(ps) | Pred::Or(ps) => ps.iter().fold(0, |m, p| m | p.attrs_read()),
            Pred::Not(p) => p.attrs_read(),
            Pred::Cmp { attr, .. }
            | Pred::InMask { attr, .. }
            | Pred::InList { attr, .. }
            | Pred::IsNull { attr, .. } => {
                if *attr < 32 {
                    1 << attr
                } else {
                    0
                }
            }
        }
    }
}

/// A problem in a filter, with its position inside the filter text (1-based line and column)
/// when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    pub line: u64,
    pub col: u64,
    pub message: String,
}

/// Named value lists usable as `attr IN (name)`.
pub type Taxonomies = HashMap<String, Vec<String>>;

/// A compiled filter and its SQL text with taxonomies expanded.
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledFilter {
    pub pred: Pred,
    pub sql: String,
}

/// Parses and compiles `text` against `source`. Returns every error found.
pub fn compile_filter(
    text: &str,
    source: &Source,
    taxonomies: &Taxonomies,
) -> Result<CompiledFilter, Vec<FilterError>> {
    if text.len() > MAX_FILTER_LEN {
        return Err(vec![FilterError {
            line: 1,
            col: 1,
            message: format!("filter is longer than {MAX_FILTER_LEN} bytes"),
        }]);
    }
    let dialect = GenericDialect {};
    let mut parser = match Parser::new(&dialect).with_recursion_limit(MAX_FILTER_DEPTH).try_with_sql(text) {
        Ok(p) => p,
        Err(e) => return Err(vec![FilterError { line: 1, col: 1, message: format!("cannot read filter: {e}") }]),
    };
    let mut expr = match parser.parse_expr() {
        Ok(e) => e,
        Err(e) => return Err(vec![FilterError { line: 1, col: 1, message: format!("cannot parse filter: {e}") }]),
    };
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(vec![FilterError {
            line: next.span.start.line,
            col: next.span.start.column,
            message: format!("unexpected `{}` after the end of the expression", next.token),
        }]);
    }
    let mut cx = Compiler { source, taxonomies, errors: Vec::new() };
    cx.expand_taxonomies(&mut expr);
    let pred = cx.boolean(&expr, 0);
    if cx.errors.is_empty() {
        Ok(CompiledFilter { pred: simplify(pred), sql: expr.to_string() })
    } else {
        Err(cx.errors)
    }
}

/// Compiles a filter into a predicate, for callers that have no taxonomies and want a panic-free
/// `Result` with one message.
pub fn compile_simple(text: &str, source: &Source) -> Result<Pred, String> {
    compile_filter(text, source, &Taxonomies::new())
        .map(|c| c.pred)
        .map_err(|e| e.into_iter().map(|e| e.message).collect::<Vec<_>>().join("; "))
}

struct Compiler<'a> {
    source: &'a Source,
    taxonomies: &'a Taxonomies,
    errors: Vec<FilterError>,
}

fn span_of(e: &Expr) -> (u64, u64) {
    use sqlparser::ast::Spanned;
    let s = e.span();
    (s.start.line.max(1), s.start.column.max(1))
}

/// What an attribute reference resolves to.
#[derive(Clone, Copy)]
enum Col<'a> {
    Attr(u8, &'a AttrType),
    Hour,
    Dow,
}

const INT_TYPE: AttrType = AttrType::Int { min: 0, max: 23 };
const DOW_TYPE: AttrType = AttrType::Int { min: 1, max: 7 };

impl<'a> Compiler<'a> {
    fn err(&mut self, at: &Expr, message: impl Into<String>) -> Pred {
        let (line, col) = span_of(at);
        self.errors.push(FilterError { line, col, message: message.into() });
        Pred::Const(false)
    }

    /// Replaces a taxonomy name used as the sole element of an `IN` list by its values, so that
    /// the SQL text handed to other engines is self-contained.
    fn expand_taxonomies(&mut self, e: &mut Expr) {
        match e {
            Expr::InList { expr, list, .. } => {
                self.expand_taxonomies(expr);
                if list.len() == 1
                    && let Expr::Identifier(id) = &list[0]
                    && id.quote_style.is_none()
                    && let Some(values) = self.taxonomies.get(&id.value)
                {
                    *list = values.iter().map(|v| Expr::Value(Value::SingleQuotedString(v.clone()).into())).collect();
                }
            }
            Expr::BinaryOp { left, right, .. } => {
                self.expand_taxonomies(left);
                self.expand_taxonomies(right);
            }
            Expr::UnaryOp { expr, .. } | Expr::Nested(expr) | Expr::IsNull(expr) | Expr::IsNotNull(expr) => {
                self.expand_taxonomies(expr)
            }
            Expr::Between { expr, .. } => self.expand_taxonomies(expr),
            _ => {}
        }
    }

    fn column(&mut self, e: &Expr) -> Option<Col<'a>> {
        let name = match e {
            Expr::Identifier(id) => id.value.as_str(),
            Expr::Nested(inner) => return self.column(inner),
            _ => return None,
        };
        match name {
            "hour" => Some(Col::Hour),
            "dow" => Some(Col::Dow),
            _ => match self.source.attr_index(name) {
                Some(i) => Some(Col::Attr(i as u8, &self.source.attrs[i].ty)),
                None => {
                    let declared: Vec<&str> = self.source.attrs.iter().map(|a| a.name.as_str()).collect();
                    self.err(
                        e,
                        format!(
                            "`{name}` is not a declared attribute of source `{}` (declared: {}, plus hour and dow)",
                            self.source.id,
                            declared.join(", ")
                        ),
                    );
                    None
                }
            },
        }
    }

    fn boolean(&mut self, e: &Expr, depth: usize) -> Pred {
        if depth > MAX_FILTER_DEPTH {
            return self.err(e, format!("filter nests deeper than {MAX_FILTER_DEPTH} levels"));
        }
        match e {
            Expr::Nested(inner) => self.boolean(inner, depth + 1),
            Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
                Pred::And(vec![self.boolean(left, depth + 1), self.boolean(right, depth + 1)])
            }
            Expr::BinaryOp { left, op: BinaryOperator::Or, right } => {
                Pred::Or(vec![self.boolean(left, depth + 1), self.boolean(right, depth + 1)])
            }
            Expr::UnaryOp { op: UnaryOperator::Not, expr } => Pred::Not(Box::new(self.boolean(expr, depth + 1))),
            Expr::BinaryOp { left, op, right } => {
                let op = match op {
                    BinaryOperator::Eq => CmpOp::Eq,
                    BinaryOperator::NotEq => CmpOp::Ne,
                    BinaryOperator::Lt => CmpOp::Lt,
                    BinaryOperator::LtEq => CmpOp::Le,
                    BinaryOperator::Gt => CmpOp::Gt,
                    BinaryOperator::GtEq => CmpOp::Ge,
                    other => return self.err(e, format!("operator `{other}` is not supported in filters")),
                };
                self.comparison(e, left, op, right)
            }
            Expr::InList { expr, list, negated } => self.in_list(e, expr, list, *negated),
            Expr::Between { expr, negated, low, high } => {
                let p = Pred::And(vec![
                    self.comparison(e, expr, CmpOp::Ge, low),
                    self.comparison(e, expr, CmpOp::Le, high),
                ]);
                if *negated { Pred::Not(Box::new(p)) } else { p }
            }
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
                let negated = matches!(e, Expr::IsNotNull(_));
                match self.column(inner) {
                    Some(Col::Attr(a, _)) => Pred::IsNull { attr: a, negated },
                    Some(_) => Pred::Const(negated),
                    None => self.err(inner, "IS NULL needs an attribute name"),
                }
            }
            Expr::Identifier(_) => match self.column(e) {
                Some(Col::Attr(a, AttrType::Bool)) => Pred::Cmp { attr: a, op: CmpOp::Eq, val: 1 },
                Some(_) => self.err(e, "only a bool attribute can stand alone as a condition"),
                None => Pred::Const(false),
            },
            Expr::Value(v) => match &v.value {
                Value::Boolean(b) => Pred::Const(*b),
                _ => self.err(e, "a filter must be a boolean expression"),
            },
            _ => self.err(
                e,
                format!("`{e}` is not supported in filters (use comparisons, IN, BETWEEN, IS NULL, AND, OR, NOT)"),
            ),
        }
    }

    fn comparison(&mut self, whole: &Expr, left: &Expr, op: CmpOp, right: &Expr) -> Pred {
        // Accept `literal op column` by flipping it.
        let (col_expr, lit_expr, op) = if self.is_column(left) {
            (left, right, op)
        } else if self.is_column(right) {
            let flipped = match op {
                CmpOp::Lt => CmpOp::Gt,
                CmpOp::Le => CmpOp::Ge,
                CmpOp::Gt => CmpOp::Lt,
                CmpOp::Ge => CmpOp::Le,
                o => o,
            };
            (right, left, flipped)
        } else {
            return self.err(whole, "a comparison needs an attribute on one side and a literal on the other");
        };
        let Some(col) = self.column(col_expr) else { return Pred::Const(false) };
        let (attr, ty) = match col {
            Col::Attr(a, ty) => (a, ty),
            Col::Hour => (ATTR_HOUR, &INT_TYPE),
            Col::Dow => (ATTR_DOW, &DOW_TYPE),
        };
        match ty {
            AttrType::Enum(values) => {
                let Some(s) = string_literal(lit_expr) else {
                    return self.err(lit_expr, "an enum attribute compares with a quoted string");
                };
                let Some(idx) = values.iter().position(|v| v == s) else {
                    return self.err(lit_expr, format!("`{s}` is not a declared value of `{}`", self.attr_name(attr)));
                };
                match op {
                    CmpOp::Eq => Pred::Cmp { attr, op, val: idx as i64 },
                    CmpOp::Ne => Pred::Cmp { attr, op, val: idx as i64 },
                    _ => self.err(whole, "enum attributes compare only with =, <> and IN"),
                }
            }
            AttrType::Bool => {
                let Some(b) = bool_literal(lit_expr) else {
                    return self.err(lit_expr, "a bool attribute compares with TRUE or FALSE");
                };
                match op {
                    CmpOp::Eq | CmpOp::Ne => Pred::Cmp { attr, op, val: b as i64 },
                    _ => self.err(whole, "bool attributes compare only with = and <>"),
                }
            }
            AttrType::Int { .. } | AttrType::Float { .. } => {
                let scale = match ty {
                    AttrType::Float { scale, .. } => *scale,
                    _ => 1,
                };
                let Some(x) = number_literal(lit_expr) else {
                    return self.err(lit_expr, format!("`{}` compares with a number", self.attr_name(attr)));
                };
                scaled_comparison(attr, op, x * scale as f64)
            }
        }
    }

    fn in_list(&mut self, whole: &Expr, col_expr: &Expr, list: &[Expr], negated: bool) -> Pred {
        let Some(col) = self.column(col_expr) else { return Pred::Const(false) };
        let (attr, ty) = match col {
            Col::Attr(a, ty) => (a, ty),
            Col::Hour => (ATTR_HOUR, &INT_TYPE),
            Col::Dow => (ATTR_DOW, &DOW_TYPE),
        };
        if list.is_empty() {
            return self.err(whole, "IN needs at least one value");
        }
        match ty {
            AttrType::Enum(values) => {
                let mut mask = 0u64;
                for item in list {
                    if let Expr::Identifier(id) = item {
                        return self.err(
                            item,
                            format!(
                                "`{}` is not a taxonomy (declare it in taxonomies.toml) nor a quoted value",
                                id.value
                            ),
                        );
                    }
                    let Some(s) = string_literal(item) else {
                        self.err(item, "IN lists of enum attributes hold quoted strings");
                        continue;
                    };
                    match values.iter().position(|v| v == s) {
                        Some(i) => mask |= 1 << i,
                        None => {
                            self.err(item, format!("`{s}` is not a declared value of `{}`", self.attr_name(attr)));
                        }
                    }
                }
                Pred::InMask { attr, mask, negated }
            }
            AttrType::Bool => self.err(whole, "use = TRUE or = FALSE for bool attributes"),
            AttrType::Int { .. } | AttrType::Float { .. } => {
                let scale = match ty {
                    AttrType::Float { scale, .. } => *scale,
                    _ => 1,
                };
                let mut vals = Vec::new();
                for item in list {
                    match number_literal(item) {
                        Some(x) => {
                            let v = x * scale as f64;
                            // A value the attribute cannot hold exactly can never be equal.
                            if v.fract() == 0.0 {
                                vals.push(v as i64);
                            }
                        }
                        None => {
                            self.err(item, "IN lists of numeric attributes hold numbers");
                        }
                    }
                }
                Pred::InList { attr, vals, negated }
            }
        }
    }

    fn is_column(&self, e: &Expr) -> bool {
        match e {
            Expr::Identifier(_) => true,
            Expr::Nested(inner) => self.is_column(inner),
            _ => false,
        }
    }

    fn attr_name(&self, attr: u8) -> &str {
        match attr {
            ATTR_HOUR => "hour",
            ATTR_DOW => "dow",
            a => &self.source.attrs[a as usize].name,
        }
    }
}

/// `v op c` for integer `v` and real `c`, rewritten exactly over the integers.
fn scaled_comparison(attr: u8, op: CmpOp, c: f64) -> Pred {
    let integral = c.fract() == 0.0;
    let clamp = |x: f64| x.clamp(i64::MIN as f64, i64::MAX as f64) as i64;
    // A fractional constant can never equal a fixed-point value, but the comparison must stay
    // unknown when the attribute is absent (SQL: NULL = 2.5 is NULL, and so is NOT of it), so
    // it becomes a comparison that is false (or true) for every present value, not a constant.
    match op {
        CmpOp::Eq if !integral => Pred::Cmp { attr, op: CmpOp::Lt, val: i64::MIN },
        CmpOp::Ne if !integral => Pred::Cmp { attr, op: CmpOp::Ge, val: i64::MIN },
        CmpOp::Eq | CmpOp::Ne => Pred::Cmp { attr, op, val: clamp(c) },
        CmpOp::Lt => Pred::Cmp { attr, op: CmpOp::Lt, val: clamp(c.ceil()) },
        CmpOp::Le => Pred::Cmp { attr, op: CmpOp::Le, val: clamp(c.floor()) },
        CmpOp::Gt => Pred::Cmp { attr, op: CmpOp::Gt, val: clamp(c.floor()) },
        CmpOp::Ge => Pred::Cmp { attr, op: CmpOp::Ge, val: clamp(c.ceil()) },
    }
}

fn string_literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s),
            _ => None,
        },
        Expr::Nested(inner) => string_literal(inner),
        _ => None,
    }
}

fn bool_literal(e: &Expr) -> Option<bool> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Boolean(b) => Some(*b),
            _ => None,
        },
        Expr::Nested(inner) => bool_literal(inner),
        _ => None,
    }
}

fn number_literal(e: &Expr) -> Option<f64> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(s, _) => s.parse::<f64>().ok().filter(|x| x.is_finite()),
            _ => None,
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => number_literal(expr).map(|x| -x),
        Expr::UnaryOp { op: UnaryOperator::Plus, expr } => number_literal(expr),
        Expr::Nested(inner) => number_literal(inner),
        _ => None,
    }
}

/// Flattens nested AND/OR so evaluation walks fewer nodes.
fn simplify(p: Pred) -> Pred {
    match p {
        Pred::And(ps) => {
            let mut out = Vec::new();
            for q in ps.into_iter().map(simplify) {
                match q {
                    Pred::And(inner) => out.extend(inner),
                    Pred::Const(true) => {}
                    other => out.push(other),
                }
            }
            match out.len() {
                0 => Pred::Const(true),
                1 => out.pop().unwrap_or(Pred::Const(true)),
                _ => Pred::And(out),
            }
        }
        Pred::Or(ps) => {
            let mut out = Vec::new();
            for q in ps.into_iter().map(simplify) {
                match q {
                    Pred::Or(inner) => out.extend(inner),
                    Pred::Const(false) => {}
                    other => out.push(other),
                }
            }
            match out.len() {
                0 => Pred::Const(false),
                1 => out.pop().unwrap_or(Pred::Const(false)),
                _ => Pred::Or(out),
            }
        }
        Pred::Not(inner) => Pred::Not(Box::new(simplify(*inner))),
        other => other,
    }
}
