//! The native protocol's header around a frame body: `type`, and on a
//! reply the request's `ref`, written as the first fields of the body's
//! own JSON object.
//!
//! A serializer adapter rather than `#[serde(flatten)]`: flattening sends
//! every field of the body through a map serializer, where this hands the
//! body's derived `Serialize` the output's own struct serializer with two
//! fields already written. Bodies of hot frames (`message`, `presence`,
//! `typing`, `ack`) are encoded once per event and per protocol.

use serde::Serialize;
use serde::ser::{Error as _, Impossible, SerializeMap, SerializeStruct, Serializer};

use crate::request::Ref;

/// A serializer that writes the header, then lets a body (a struct, or a
/// map) write its fields after it.
pub(super) struct Headed<'a, S> {
    pub serializer: S,
    pub type_name: &'static str,
    pub reference: Option<&'a Ref>,
}

impl<S: Serializer> Headed<'_, S> {
    fn header_len(&self) -> usize {
        1 + usize::from(self.reference.is_some())
    }

    fn not_an_object(&self) -> S::Error {
        S::Error::custom(format!(
            "the body of a `{}` frame must serialize as a JSON object",
            self.type_name
        ))
    }
}

/// Serializer methods for values a body can never be: they fail.
macro_rules! not_an_object {
    ($($method:ident($($arg:ident: $ty:ty),*) -> $ok:ty;)*) => {
        $(fn $method(self, $($arg: $ty),*) -> Result<$ok, S::Error> {
            $(let _ = $arg;)*
            Err(self.not_an_object())
        })*
    };
}

impl<S: Serializer> Serializer for Headed<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Impossible<S::Ok, S::Error>;
    type SerializeTuple = Impossible<S::Ok, S::Error>;
    type SerializeTupleStruct = Impossible<S::Ok, S::Error>;
    type SerializeTupleVariant = Impossible<S::Ok, S::Error>;
    type SerializeMap = S::SerializeMap;
    type SerializeStruct = S::SerializeStruct;
    type SerializeStructVariant = Impossible<S::Ok, S::Error>;

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<S::SerializeStruct, S::Error> {
        let len = len + self.header_len();
        let mut fields = self.serializer.serialize_struct(name, len)?;
        fields.serialize_field("type", self.type_name)?;
        if let Some(reference) = self.reference {
            fields.serialize_field("ref", reference)?;
        }
        Ok(fields)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<S::SerializeMap, S::Error> {
        let len = len.map(|len| len + self.header_len());
        let mut entries = self.serializer.serialize_map(len)?;
        entries.serialize_entry("type", self.type_name)?;
        if let Some(reference) = self.reference {
            entries.serialize_entry("ref", reference)?;
        }
        Ok(entries)
    }

    not_an_object! {
        serialize_bool(v: bool) -> S::Ok;
        serialize_i8(v: i8) -> S::Ok;
        serialize_i16(v: i16) -> S::Ok;
        serialize_i32(v: i32) -> S::Ok;
        serialize_i64(v: i64) -> S::Ok;
        serialize_u8(v: u8) -> S::Ok;
        serialize_u16(v: u16) -> S::Ok;
        serialize_u32(v: u32) -> S::Ok;
        serialize_u64(v: u64) -> S::Ok;
        serialize_f32(v: f32) -> S::Ok;
        serialize_f64(v: f64) -> S::Ok;
        serialize_char(v: char) -> S::Ok;
        serialize_str(v: &str) -> S::Ok;
        serialize_bytes(v: &[u8]) -> S::Ok;
        serialize_none() -> S::Ok;
        serialize_unit() -> S::Ok;
        serialize_unit_struct(name: &'static str) -> S::Ok;
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str) -> S::Ok;
        serialize_seq(len: Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(len: usize) -> Self::SerializeTuple;
        serialize_tuple_struct(name: &'static str, len: usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(
            name: &'static str, index: u32, variant: &'static str, len: usize
        ) -> Self::SerializeTupleVariant;
        serialize_struct_variant(
            name: &'static str, index: u32, variant: &'static str, len: usize
        ) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<S::Ok, S::Error> {
        let _ = value;
        Err(self.not_an_object())
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let _ = (name, value);
        Err(self.not_an_object())
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let _ = (name, index, variant, value);
        Err(self.not_an_object())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn headed<T: Serialize>(body: &T, reference: Option<&Ref>) -> serde_json::Result<String> {
        let mut out = Vec::new();
        body.serialize(Headed {
            serializer: &mut serde_json::Serializer::new(&mut out),
            type_name: "t",
            reference,
        })?;
        Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
    }

    #[derive(Serialize)]
    struct Body {
        a: u8,
    }

    #[test]
    fn the_header_comes_first_in_structs_and_maps() {
        let reference = Ref::Number(7.into());
        assert_eq!(
            headed(&Body { a: 1 }, Some(&reference)).unwrap(),
            r#"{"type":"t","ref":7,"a":1}"#
        );
        assert_eq!(
            headed(&Body { a: 1 }, None).unwrap(),
            r#"{"type":"t","a":1}"#
        );
        let map = BTreeMap::from([("a", 1)]);
        assert_eq!(
            headed(&map, Some(&reference)).unwrap(),
            r#"{"type":"t","ref":7,"a":1}"#
        );
        assert_eq!(
            headed(&BTreeMap::<u8, u8>::new(), None).unwrap(),
            r#"{"type":"t"}"#
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_an_error() {
        for error in [headed(&1, None), headed(&"x", None), headed(&vec![1], None)] {
            let error = error.unwrap_err().to_string();
            assert!(error.contains("`t` frame"), "{error}");
        }
    }
}
