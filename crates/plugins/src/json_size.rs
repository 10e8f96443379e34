//! The length of a value's JSON text (as `serde_json::to_vec` writes it), counted without
//! writing it: a typed call's result is measured against its quota on every call, and a
//! byte list written as JSON numbers cost a microsecond per kilobyte (bench/RESULTS.md).

use serde::ser::{self, Serialize};

/// Bytes of `value` as compact JSON; a value JSON cannot hold (a map with non-scalar keys)
/// counts what was counted up to it.
pub(crate) fn json_size<T: Serialize + ?Sized>(value: &T) -> u64 {
    let mut counter = Counter(0);
    let _ = value.serialize(&mut counter);
    counter.0
}

struct Counter(u64);

#[derive(Debug)]
struct Unsupported;

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not representable as JSON")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Unsupported
    }
}

fn unsigned_digits(mut n: u128) -> u64 {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

fn signed_digits(n: i128) -> u64 {
    if n < 0 { 1 + unsigned_digits(n.unsigned_abs()) } else { unsigned_digits(n as u128) }
}

/// Bytes of `s` as a JSON string, quotes and escapes included.
fn string_len(s: &str) -> u64 {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<u64>()
}

/// One sequence, map or struct being counted: commas between its elements.
struct Compound<'a> {
    counter: &'a mut Counter,
    first: bool,
}

impl Compound<'_> {
    fn separator(&mut self) {
        if !self.first {
            self.counter.0 += 1;
        }
        self.first = false;
    }
}

impl<'a> ser::Serializer for &'a mut Counter {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        self.0 += if v { 4 } else { 5 };
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        self.serialize_i128(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        self.serialize_i128(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        self.serialize_i128(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        self.serialize_i128(v.into())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Unsupported> {
        self.0 += signed_digits(v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        self.0 += if v >= 100 { 3 } else if v >= 10 { 2 } else { 1 };
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        self.serialize_u128(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        self.serialize_u128(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        self.serialize_u128(v.into())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Unsupported> {
        self.0 += unsigned_digits(v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Unsupported> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Unsupported> {
        // serde_json writes non-finite numbers as null.
        self.0 += if v.is_finite() { ryu_len(v) } else { 4 };
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        self.0 += string_len(v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Unsupported> {
        // An array of numbers, as serde_json writes bytes.
        let digits: u64 = v.iter().map(|&b| if b >= 100 { 3 } else if b >= 10 { 2 } else { 1 }).sum();
        self.0 += 2 + digits + (v.len() as u64).saturating_sub(1);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        self.0 += 4;
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.0 += 4;
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), Unsupported> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(self, _: &'static str, _: u32, variant: &'static str, value: &T) -> Result<(), Unsupported> {
        // {"variant":value}
        self.0 += 3 + string_len(variant);
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, Unsupported> {
        self.0 += 2;
        Ok(Compound { counter: self, first: true })
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Compound<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(self, _: &'static str, _: u32, variant: &'static str, _: usize) -> Result<Compound<'a>, Unsupported> {
        // {"variant":[...]}
        self.0 += 3 + string_len(variant) + 2;
        Ok(Compound { counter: self, first: true })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a>, Unsupported> {
        self.0 += 2;
        Ok(Compound { counter: self, first: true })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Compound<'a>, Unsupported> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(self, _: &'static str, _: u32, variant: &'static str, _: usize) -> Result<Compound<'a>, Unsupported> {
        // {"variant":{...}}
        self.0 += 3 + string_len(variant) + 2;
        Ok(Compound { counter: self, first: true })
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.separator();
        value.serialize(&mut *self.counter)
    }
    fn end(self) -> Result<(), Unsupported> {
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), Unsupported> {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), Unsupported> {
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<(), Unsupported> {
        Ok(())
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unsupported> {
        self.separator();
        // JSON keys are strings: a number key is quoted.
        let before = self.counter.0;
        key.serialize(&mut *self.counter)?;
        let key_is_string = self.counter.0 - before >= 2 && key_is_str(key);
        self.counter.0 += if key_is_string { 1 } else { 3 };
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        value.serialize(&mut *self.counter)
    }
    fn end(self) -> Result<(), Unsupported> {
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Unsupported> {
        self.separator();
        self.counter.0 += string_len(key) + 1;
        value.serialize(&mut *self.counter)
    }
    fn end(self) -> Result<(), Unsupported> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Unsupported> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<(), Unsupported> {
        Ok(())
    }
}

/// Whether a map key serializes as a string (else serde_json quotes it).
fn key_is_str<T: Serialize + ?Sized>(key: &T) -> bool {
    struct IsStr;
    impl ser::Serializer for IsStr {
        type Ok = bool;
        type Error = Unsupported;
        type SerializeSeq = ser::Impossible<bool, Unsupported>;
        type SerializeTuple = ser::Impossible<bool, Unsupported>;
        type SerializeTupleStruct = ser::Impossible<bool, Unsupported>;
        type SerializeTupleVariant = ser::Impossible<bool, Unsupported>;
        type SerializeMap = ser::Impossible<bool, Unsupported>;
        type SerializeStruct = ser::Impossible<bool, Unsupported>;
        type SerializeStructVariant = ser::Impossible<bool, Unsupported>;
        fn serialize_str(self, _: &str) -> Result<bool, Unsupported> {
            Ok(true)
        }
        fn serialize_char(self, _: char) -> Result<bool, Unsupported> {
            Ok(true)
        }
        fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<bool, Unsupported> {
            Ok(true)
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<bool, Unsupported> {
            v.serialize(self)
        }
        fn serialize_bool(self, _: bool) -> Result<bool, Unsupported> {
            Ok(false)
        }
        fn serialize_i8(self, _: i8) -> Result<bool, Unsupported> {
            Ok(false)
        }
        fn serialize_i16(self, _: i16) -> Result<bool, Unsupported> {
            Ok(false)
        }
        fn serialize_i32(self, _: i32) -> Result<bool, Unsupported> {
            Ok(false)
        }
        fn serialize_i64(self, _: i64) -> Result<bool, Unsupported> {
            Ok(false)
        }
        fn serialize_u8(self, _: u8) -> Result<bool, Unsupported> {
            Ok(false)
        }
        fn serialize_u16(self, _: u16) -> Result<bool, Unsupported> {
            Ok(false)
        }
        fn serialize_u32(self, _: u32) -> Result<bool, Unsupported> {
            Ok(false)
        }
        fn serialize_u64(self, _: u64) -> Result<bool, Unsupported> {
            Ok(false)
        }
        fn serialize_f32(self, _: f32) -> Result<bool, Unsupported> {
            Ok(false)
        }
        fn serialize_f64(self, _: f64) -> Result<bool, Unsupported> {
            Ok(false)
        }
        fn serialize_bytes(self, _: &[u8]) -> Result<bool, Unsupported> {
            Ok(false)
        }
        fn serialize_none(self) -> Result<bool, Unsupported> {
            Ok(false)
        }
        fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<bool, Unsupported> {
            v.serialize(self)
        }
        fn serialize_unit(self) -> Result<bool, Unsupported> {
            Ok(false)
        }
        fn serialize_unit_struct(self, _: &'static str) -> Result<bool, Unsupported> {
            Ok(false)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(self, _: &'static str, _: u32, _: &'static str, _: &T) -> Result<bool, Unsupported> {
            Err(Unsupported)
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
            Err(Unsupported)
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unsupported> {
            Err(Unsupported)
        }
        fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Unsupported> {
            Err(Unsupported)
        }
        fn serialize_tuple_variant(self, _: &'static str, _: u32, _: &'static str, _: usize) -> Result<Self::SerializeTupleVariant, Unsupported> {
            Err(Unsupported)
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
            Err(Unsupported)
        }
        fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Unsupported> {
            Err(Unsupported)
        }
        fn serialize_struct_variant(self, _: &'static str, _: u32, _: &'static str, _: usize) -> Result<Self::SerializeStructVariant, Unsupported> {
            Err(Unsupported)
        }
    }
    key.serialize(IsStr).unwrap_or(false)
}

/// Length of a finite float as serde_json writes it (ryu's shortest form; whole numbers
/// get `.0`).
fn ryu_len(v: f64) -> u64 {
    // Rare in plugin results; format it once rather than re-implement ryu.
    serde_json::to_string(&v).map(|s| s.len() as u64).unwrap_or(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    enum Shape {
        Dot,
        Circle(f64),
        Pair(u8, i64),
        Rect { w: u32, h: u32 },
    }

    #[derive(serde::Serialize)]
    struct Cart {
        customer: String,
        coupon: Option<String>,
        items: Vec<(String, u32)>,
        total: u64,
        bytes: Vec<u8>,
        tags: BTreeMap<String, i32>,
        by_id: BTreeMap<u32, bool>,
        shapes: Vec<Shape>,
        unit: (),
    }

    #[test]
    fn counts_what_serde_json_writes() {
        let cart = Cart {
            customer: "ada \"the\" lovelace\n\u{1}é".into(),
            coupon: None,
            items: vec![("boot".into(), 2), ("hat".into(), 10)],
            total: 18_446_744_073_709_551_615,
            bytes: vec![0, 9, 10, 99, 100, 255],
            tags: [("a".to_string(), -5), ("b".to_string(), 0)].into(),
            by_id: [(7, true), (1000, false)].into(),
            shapes: vec![Shape::Dot, Shape::Circle(1.5), Shape::Pair(3, -40), Shape::Rect { w: 1, h: 22 }],
            unit: (),
        };
        assert_eq!(json_size(&cart), serde_json::to_vec(&cart).unwrap().len() as u64);
        for value in [vec![], vec![1u8], (0..=255).collect::<Vec<u8>>()] {
            assert_eq!(json_size(&value), serde_json::to_vec(&value).unwrap().len() as u64);
        }
        assert_eq!(json_size(&-1i8), 2);
        assert_eq!(json_size(&f64::NAN), 4);
    }
}
