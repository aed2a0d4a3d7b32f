//! The event decoder: wire JSON in, a fixed-size [`Event`] out, under the source's declared
//! schema. Undeclared fields are skipped without being stored; every rejection carries a
//! specific, machine-readable reason. Decoding into a reused `Event` reads the text once and
//! allocates nothing on the success path (strings are borrowed from the input unless they hold
//! escapes; unknown fields are skipped unread).

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

/// A string of the message: borrowed from it where it has no escapes, so reading it allocates
/// nothing (`Cow<str>`'s own `Deserialize` always copies), owned where it has.
struct Text<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Text<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
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
            while let Some(Text(k)) = map.next_key::<Text<'de>>()? {
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
    ///
    /// One pass over the text: the envelope's fields are read where they stand, and `attrs`
    /// under the source's schema as soon as that is known (the input's source, or a `source`
    /// field before it; otherwise it is kept raw and read once the envelope is done). A message
    /// that pass refuses, or one it cannot place, is decoded again by [`Decoder::decode_reference`],
    /// whose answer is the reference: the fast pass changes what it costs to accept an event,
    /// never the answer (crates/rules/tests/fuzz.rs compares the two on every fuzzed input).
    pub fn decode(&self, hint: SourceHint, bytes: &[u8], out: &mut Event) -> Result<DecodeInfo, Rejection> {
        let text = self.check_text(bytes)?;
        out.clear();
        let code = Cell::new(RejectCode::WrongType);
        let detail = Cell::new("");
        let pass = OnePass { rules: self.rules, hint, out, code: &code, detail: &detail };
        let mut de = serde_json::Deserializer::from_str(text);
        let parsed = de::Deserializer::deserialize_map(&mut de, pass).and_then(|p| de.end().map(|()| p));
        match parsed {
            Ok(parsed) => match self.finish(hint, parsed, out) {
                Err(Finish::Again) => self.decode_reference(hint, bytes, out),
                Err(Finish::Rejected(r)) => Err(r),
                Ok(info) => Ok(info),
            },
            Err(_) => self.decode_reference(hint, bytes, out),
        }
    }

    /// The same answer as [`Decoder::decode`], in three passes over the text: the envelope
    /// (with `attrs` kept raw), a count of its undeclared fields, then `attrs`. The path of
    /// every message the one-pass decoder refuses (so that the error reported is this one's),
    /// and the reference it is tested against.
    pub fn decode_reference(&self, hint: SourceHint, bytes: &[u8], out: &mut Event) -> Result<DecodeInfo, Rejection> {
        let text = self.check_text(bytes)?;
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
        out.clear();
        let parsed = Parsed {
            id: env.id,
            region: env.region,
            ts: env.ts,
            source: env.source,
            attrs: env.attrs.map_or(AttrsRead::Absent, AttrsRead::Raw),
            unknown: count_unknown_top_level(text),
        };
        self.finish(hint, parsed, out).map_err(|f| match f {
            Finish::Rejected(r) => r,
            // Only a one-pass reading of `attrs` can disagree with the source.
            Finish::Again => reject(RejectCode::WrongType, "`attrs` could not be read"),
        })
    }

    /// The checks on the raw bytes, before any parsing: empty, too large, not UTF-8, not an
    /// object.
    fn check_text<'b>(&self, bytes: &'b [u8]) -> Result<&'b str, Rejection> {
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
        Ok(text)
    }

    /// Everything after the envelope is read: the source, region and time checked and set,
    /// `attrs` read if it was kept raw, the required attributes checked.
    fn finish(&self, hint: SourceHint, env: Parsed<'_>, out: &mut Event) -> Result<DecodeInfo, Finish> {
        let rules = self.rules;
        let src_idx = match (hint, env.source.as_deref()) {
            (SourceHint::Fixed(s) | SourceHint::Default(s), None) => s,
            (hint, Some(name)) => {
                let Some(i) = rules.source_index(name) else {
                    return Err(reject(RejectCode::UnknownSource, "`source` names no source of the rules").into());
                };
                if matches!(hint, SourceHint::Fixed(h) if h != i) {
                    return Err(reject(
                        RejectCode::UnknownSource,
                        "`source` names another source than the input it arrived on",
                    )
                    .into());
                }
                i
            }
            (SourceHint::None, None) => {
                return Err(
                    reject(RejectCode::MissingField, "`source` is required when the input does not imply one").into()
                );
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
        out.source = src_idx;
        out.region = region_idx;
        out.ts = ts;
        out.id_hash = env.id.as_deref().map_or(0, fnv1a);
        let mut info = DecodeInfo { dropped_fields: env.unknown };
        match env.attrs {
            AttrsRead::Absent => {}
            // Read under the schema the source resolved to; any other is read again.
            AttrsRead::Read { source, dropped } if source == src_idx => info.dropped_fields += dropped,
            AttrsRead::Read { .. } => return Err(Finish::Again),
            AttrsRead::Raw(attrs) => {
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
                        return Err(reject(code, msg).into());
                    }
                }
            }
        }
        let missing = schema.required_mask & !out.present;
        if missing != 0 {
            let i = missing.trailing_zeros() as usize;
            return Err(
                reject(RejectCode::MissingField, format!("attribute `{}` is required", schema.attrs[i].name)).into()
            );
        }
        Ok(info)
    }
}

/// Why [`Decoder::finish`] did not accept an event: a rejection to report, or a one-pass
/// reading to redo by the reference decoder.
enum Finish {
    Rejected(Rejection),
    Again,
}

impl From<Rejection> for Finish {
    fn from(r: Rejection) -> Finish {
        Finish::Rejected(r)
    }
}

/// The envelope as read by either decoder.
struct Parsed<'a> {
    id: Option<Cow<'a, str>>,
    region: Option<Cow<'a, str>>,
    ts: Option<&'a RawValue>,
    source: Option<Cow<'a, str>>,
    attrs: AttrsRead<'a>,
    /// Top-level fields the envelope does not know.
    unknown: u32,
}

/// What became of `attrs` while the envelope was read.
enum AttrsRead<'a> {
    /// No `attrs`, or `null`.
    Absent,
    /// Kept as text, to be read once the source is known.
    Raw(&'a RawValue),
    /// Read into the event under `source`'s schema, `dropped` undeclared attributes skipped.
    Read { source: SourceIdx, dropped: u32 },
}

/// The one-pass reading of a message's envelope (see [`Decoder::decode`]). Any error, a
/// duplicate field included (the envelope refuses them), sends the message to the reference
/// decoder, which says what is wrong.
struct OnePass<'r, 'e> {
    rules: &'r RuleSet,
    hint: SourceHint,
    out: &'e mut Event,
    code: &'e Cell<RejectCode>,
    detail: &'e Cell<&'static str>,
}

impl<'de> Visitor<'de> for OnePass<'_, '_> {
    type Value = Parsed<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed<'de>, A::Error> {
        let mut p = Parsed { id: None, region: None, ts: None, source: None, attrs: AttrsRead::Absent, unknown: 0 };
        let (mut id, mut region, mut ts, mut source, mut attrs) = (false, false, false, false, false);
        let dup = |seen: &mut bool| {
            if std::mem::replace(seen, true) { Err(de::Error::custom("duplicate field")) } else { Ok(()) }
        };
        let text = |t: Option<Text<'de>>| t.map(|Text(t)| t);
        while let Some(Text(k)) = map.next_key::<Text<'de>>()? {
            match k.as_ref() {
                "id" => {
                    dup(&mut id)?;
                    p.id = text(map.next_value()?);
                }
                "region" => {
                    dup(&mut region)?;
                    p.region = text(map.next_value()?);
                }
                "ts" => {
                    dup(&mut ts)?;
                    p.ts = map.next_value()?;
                }
                "source" => {
                    dup(&mut source)?;
                    p.source = text(map.next_value()?);
                }
                "attrs" => {
                    dup(&mut attrs)?;
                    // The schema is known when the input fixes the source or a `source` field
                    // came first (an unknown one is refused later, whatever `attrs` holds).
                    let known = match (&p.source, self.hint) {
                        (Some(name), _) => self.rules.source_index(name),
                        (None, SourceHint::Fixed(s)) => Some(s),
                        (None, _) => None,
                    };
                    p.attrs = match known {
                        Some(s) => {
                            let seed = AttrsSeed {
                                attrs: &self.rules.sources[s as usize].attrs,
                                out: &mut *self.out,
                                code: self.code,
                                detail: self.detail,
                            };
                            match map.next_value_seed(OptionalAttrs(seed))? {
                                Some(dropped) => AttrsRead::Read { source: s, dropped },
                                None => AttrsRead::Absent,
                            }
                        }
                        None => map.next_value::<Option<&'de RawValue>>()?.map_or(AttrsRead::Absent, AttrsRead::Raw),
                    };
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    p.unknown += 1;
                }
            }
        }
        Ok(p)
    }
}

/// `attrs` read in place: `null` is no attributes (as the envelope's `Option` reads it), an
/// object its attributes.
struct OptionalAttrs<'s, 'e>(AttrsSeed<'s, 'e>);

impl<'de> DeserializeSeed<'de> for OptionalAttrs<'_, '_> {
    type Value = Option<u32>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<u32>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for OptionalAttrs<'_, '_> {
    type Value = Option<u32>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of attributes or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<u32>, E> {
        Ok(None)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<u32>, D::Error> {
        self.0.deserialize(d).map(Some)
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
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
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
