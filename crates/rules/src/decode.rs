//! The event decoder: wire JSON in, a fixed-size [`Event`] out, under the source's declared
//! schema. Undeclared fields are skipped without being stored; every rejection carries a
//! specific, machine-readable reason. Decoding into a reused `Event` allocates nothing on the
//! success path (strings are borrowed from the input; unknown fields are skipped unread).

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use vigil_model::record::{RejectCode, Rejection};
use vigil_model::time::{self, TsError};
use vigil_model::{Event, SourceIdx};

use crate::types::{Attr, AttrType, RuleSet};

/// Largest event accepted by default.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 64 * 1024;

/// What decoding noticed besides the event itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeInfo {
    /// Fields that were not declared and were dropped.
    pub dropped_fields: u32,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    region: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ts: Option<&'a RawValue>,
    #[serde(borrow, default)]
    attrs: Option<&'a RawValue>,
    #[serde(borrow, default)]
    source: Option<Cow<'a, str>>,
}

/// Which source an event belongs to, as far as its input knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceHint {
    /// The input carries one source (a topic): an event naming another source is rejected.
    Fixed(SourceIdx),
    /// The input suggests a source (a file name); an event's own `source` field wins.
    Default(SourceIdx),
    /// Each event must name its source.
    None,
}

/// Decodes events against a rule set's sources and regions.
#[derive(Clone, Copy, Debug)]
pub struct Decoder<'r> {
    rules: &'r RuleSet,
    max_bytes: usize,
}

fn reject(code: RejectCode, detail: impl Into<String>) -> Rejection {
    Rejection { code, detail: detail.into() }
}

/// Counts top-level fields the envelope does not know, without storing them.
fn count_unknown_top_level(json: &str) -> u32 {
    struct Count;
    impl<'de> Visitor<'de> for Count {
        type Value = u32;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u32, A::Error> {
            let mut n = 0;
            while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                if !matches!(k.as_ref(), "id" | "region" | "ts" | "attrs" | "source") {
                    n += 1;
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(n)
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    de::Deserializer::deserialize_map(&mut de, Count).unwrap_or(0)
}

impl<'r> Decoder<'r> {
    pub fn new(rules: &'r RuleSet) -> Self {
        Decoder { rules, max_bytes: DEFAULT_MAX_EVENT_BYTES }
    }

    /// The rule set whose schemas this decoder applies.
    pub fn rules(&self) -> &'r RuleSet {
        self.rules
    }

    pub fn with_max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// Decodes one message. `hint` is what the input says about the source; an event may also
    /// name its source in a `source` field.
    pub fn decode(&self, hint: SourceHint, bytes: &[u8], out: &mut Event) -> Result<DecodeInfo, Rejection> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(reject(RejectCode::Empty, "empty message"));
        }
        if bytes.len() > self.max_bytes {
            return Err(reject(
                RejectCode::TooLarge,
                format!("message of {} bytes exceeds the limit of {}", bytes.len(), self.max_bytes),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            reject(RejectCode::NotUtf8, format!("not UTF-8 (invalid byte at offset {})", e.valid_up_to()))
        })?;
        // serde would also read a struct from a JSON array; an event is an object or nothing.
        if !text.trim_start().starts_with('{') {
            return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Ok(_) => reject(RejectCode::NotAnObject, "an event must be a JSON object"),
                Err(e) => reject(RejectCode::MalformedJson, format!("malformed JSON: {}", scrub(&e))),
            });
        }
        let env: Envelope<'_> = serde_json::from_str(text).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data if text.trim_start().starts_with('{') => {
                    reject(RejectCode::WrongType, format!("wrong type: {}", scrub(&e)))
                }
                Category::Data => reject(RejectCode::NotAnObject, "an event must be a JSON object"),
                _ => reject(RejectCode::MalformedJson, format!("malformed JSON: {}", scrub(&e))),
            }
        })?;
        let rules = self.rules;
        let src_idx = match (hint, env.source.as_deref()) {
            (SourceHint::Fixed(s) | SourceHint::Default(s), None) => s,
            (hint, Some(name)) => {
                let Some(i) = rules.source_index(name) else {
                    return Err(reject(RejectCode::UnknownSource, "`source` names no source of the rules"));
                };
                if matches!(hint, SourceHint::Fixed(h) if h != i) {
                    return Err(reject(
                        RejectCode::UnknownSource,
                        "`source` names another source than the input it arrived on",
                    ));
                }
                i
            }
            (SourceHint::None, None) => {
                return Err(reject(RejectCode::MissingField, "`source` is required when the input does not imply one"));
            }
        };
        let schema = &rules.sources[src_idx as usize];
        let region = env.region.ok_or_else(|| reject(RejectCode::MissingField, "`region` is required"))?;
        let region_idx = rules.regions.lookup(&region).ok_or_else(|| {
            reject(
                RejectCode::UnknownRegion,
                format!("`region` ({} characters) is not in the registry", region.chars().count()),
            )
        })?;
        let ts_raw = env.ts.ok_or_else(|| reject(RejectCode::MissingField, "`ts` is required"))?;
        let ts = parse_ts(ts_raw.get())?;
        out.clear();
        out.source = src_idx;
        out.region = region_idx;
        out.ts = ts;
        out.id_hash = env.id.as_deref().map_or(0, fnv1a);
        let mut info = DecodeInfo { dropped_fields: count_unknown_top_level(text) };
        if let Some(attrs) = env.attrs {
            let code = Cell::new(RejectCode::WrongType);
            let detail = Cell::new("");
            let seed = AttrsSeed { attrs: &schema.attrs, out, code: &code, detail: &detail };
            let mut de = serde_json::Deserializer::from_str(attrs.get());
            match seed.deserialize(&mut de) {
                Ok(dropped) => info.dropped_fields += dropped,
                Err(e) => {
                    let mut code = code.get();
                    if e.to_string().contains("number out of range") {
                        code = RejectCode::NotFinite;
                    } else if matches!(
                        e.classify(),
                        serde_json::error::Category::Syntax | serde_json::error::Category::Eof
                    ) {
                        code = RejectCode::MalformedJson;
                    }
                    let msg = if code == RejectCode::WrongType && detail.get().is_empty() {
                        format!("`attrs` must be an object of declared attributes: {}", scrub(&e))
                    } else {
                        format!("{}{}", detail.get(), scrub(&e))
                    };
                    return Err(reject(code, msg));
                }
            }
        }
        let missing = schema.required_mask & !out.present;
        if missing != 0 {
            let i = missing.trailing_zeros() as usize;
            return Err(reject(RejectCode::MissingField, format!("attribute `{}` is required", schema.attrs[i].name)));
        }
        Ok(info)
    }
}

/// A parser error without the input's values: serde quotes the offending value ("invalid type:
/// integer `13800138000`"), and a refused event may carry exactly what vigil must never keep.
/// What was expected (from the schema) and where stay.
fn scrub(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or("");
    let what = if msg.starts_with("invalid type")
        || msg.starts_with("invalid value")
        || msg.starts_with("invalid length")
        || msg.starts_with("unknown variant")
    {
        match msg.split_once(", expected ") {
            Some((_, expected)) => format!("expected {expected}"),
            None => "unexpected value".to_string(),
        }
    } else if msg.starts_with("attribute `") || msg.starts_with("missing field") || msg.starts_with("duplicate field") {
        // vigil's own messages and serde's field names come from the schema, not the input.
        msg.to_string()
    } else if e.classify() == serde_json::error::Category::Data {
        "unexpected value".to_string()
    } else {
        msg.to_string()
    };
    format!("{what} (line {}, column {})", e.line(), e.column())
}

/// FNV-1a, 64 bit: a stable hash of the producer's id.
pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn parse_ts(raw: &str) -> Result<i64, Rejection> {
    let bad = |e: TsError| match e {
        TsError::OutOfRange => reject(RejectCode::TimestampOutOfRange, "timestamp outside 2000-01-01 .. 2100-01-01"),
        TsError::Syntax => {
            reject(RejectCode::BadTimestamp, "`ts` must be RFC 3339 with an offset, or epoch milliseconds")
        }
    };
    if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        if inner.contains('\\') {
            return Err(bad(TsError::Syntax));
        }
        time::parse_rfc3339(inner).map_err(bad)
    } else if raw.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        let ms: i64 = raw.parse().map_err(|_| bad(TsError::Syntax))?;
        time::check_range(ms).map_err(bad)
    } else {
        Err(bad(TsError::Syntax))
    }
}

struct AttrsSeed<'s, 'e> {
    attrs: &'s [Attr],
    out: &'e mut Event,
    code: &'e Cell<RejectCode>,
    detail: &'e Cell<&'static str>,
}

impl<'de> DeserializeSeed<'de> for AttrsSeed<'_, '_> {
    type Value = u32;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<u32, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AttrsSeed<'_, '_> {
    type Value = u32;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of attributes")
    }
    fn visit_unit<E: de::Error>(self) -> Result<u32, E> {
        Ok(0)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u32, A::Error> {
        let mut dropped = 0;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match self.attrs.iter().position(|a| a.name == key.as_ref()) {
                None => {
                    map.next_value::<IgnoredAny>()?;
                    dropped += 1;
                }
                Some(i) => {
                    let v =
                        map.next_value_seed(AttrSeed { attr: &self.attrs[i], code: self.code, detail: self.detail })?;
                    if let Some(v) = v {
                        self.out.set(i, v);
                    }
                }
            }
        }
        Ok(dropped)
    }
}

struct AttrSeed<'s, 'e> {
    attr: &'s Attr,
    code: &'e Cell<RejectCode>,
    detail: &'e Cell<&'static str>,
}

impl<'de> DeserializeSeed<'de> for AttrSeed<'_, '_> {
    type Value = Option<i64>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<i64>, D::Error> {
        d.deserialize_any(self)
    }
}

impl AttrSeed<'_, '_> {
    fn fail<E: de::Error>(&self, code: RejectCode, what: fmt::Arguments<'_>) -> E {
        self.code.set(code);
        self.detail.set("");
        E::custom(format_args!("attribute `{}`: {}", self.attr.name, what))
    }

    fn number<E: de::Error>(&self, x: f64) -> Result<Option<i64>, E> {
        if !x.is_finite() {
            return Err(self.fail(RejectCode::NotFinite, format_args!("not a finite number")));
        }
        match self.attr.ty {
            AttrType::Int { min, max } => {
                if x.fract() != 0.0 {
                    return Err(self.fail(RejectCode::WrongType, format_args!("not an integer")));
                }
                if x < min as f64 || x > max as f64 {
                    return Err(self.fail(RejectCode::OutOfRange, format_args!("outside {min}..={max}")));
                }
                Ok(Some(x as i64))
            }
            AttrType::Float { min, max, scale, .. } => {
                if x < min || x > max {
                    return Err(self.fail(RejectCode::OutOfRange, format_args!("outside {min}..={max}")));
                }
                Ok(Some((x * scale as f64).round() as i64))
            }
            AttrType::Enum(_) => {
                Err(self
                    .fail(RejectCode::WrongType, format_args!("expected one of the declared values, found a number")))
            }
            AttrType::Bool => {
                Err(self.fail(RejectCode::WrongType, format_args!("expected true or false, found a number")))
            }
        }
    }
}

impl<'de> Visitor<'de> for AttrSeed<'_, '_> {
    type Value = Option<i64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a value for attribute `{}`", self.attr.name)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<i64>, E> {
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<i64>, E> {
        match self.attr.ty {
            AttrType::Bool => Ok(Some(v as i64)),
            _ => Err(self.fail(RejectCode::WrongType, format_args!("unexpected boolean"))),
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<i64>, E> {
        if let AttrType::Int { min, max } = self.attr.ty {
            if v < min || v > max {
                return Err(self.fail(RejectCode::OutOfRange, format_args!("outside {min}..={max}")));
            }
            return Ok(Some(v));
        }
        self.number(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<i64>, E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => self.number(v as f64),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<i64>, E> {
        self.number(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<i64>, E> {
        match &self.attr.ty {
            AttrType::Enum(values) => match values.iter().position(|x| x == v) {
                Some(i) => Ok(Some(i as i64)),
                None => Err(self.fail(RejectCode::UnknownValue, format_args!("not one of the declared values"))),
            },
            _ => Err(self.fail(RejectCode::WrongType, format_args!("unexpected string"))),
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<Option<i64>, A::Error> {
        Err(self.fail(RejectCode::WrongType, format_args!("unexpected object")))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _seq: A) -> Result<Option<i64>, A::Error> {
        Err(self.fail(RejectCode::WrongType, format_args!("unexpected array")))
    }
}
