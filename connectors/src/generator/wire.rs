//! Protobuf wire format for the emitters' hot paths.
//!
//! The emitters write their messages field by field into one buffer: strings and attribute
//! lists never change between messages, so they are encoded once with prost (a message with
//! only those fields set encodes to exactly their bytes) and copied; numbers are written in
//! place. Fields are written in tag
//! order and zero scalars are left out, as prost does, so the bytes equal what prost would
//! write for the same message (the emitters' tests check it).

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;

fn key(tag: u32, wire_type: u32) -> u64 {
    u64::from((tag << 3) | wire_type)
}

/// Bytes of `v` as a varint.
pub(crate) fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits; `| 1` makes 0 take one byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `v` as a varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes of a length-delimited field (key, length, body) whose body is `body_len` bytes.
pub(crate) fn len_field_len(tag: u32, body_len: usize) -> usize {
    varint_len(key(tag, LEN)) + varint_len(body_len as u64) + body_len
}

/// Appends the key and length of a length-delimited field; the caller appends the body.
pub(crate) fn put_len_prefix(out: &mut Vec<u8>, tag: u32, body_len: usize) {
    put_varint(out, key(tag, LEN));
    put_varint(out, body_len as u64);
}

/// Bytes of a fixed64, sfixed64 or double field.
pub(crate) fn fixed64_field_len(tag: u32) -> usize {
    varint_len(key(tag, FIXED64)) + 8
}

/// Appends a fixed64 field.
pub(crate) fn put_fixed64(out: &mut Vec<u8>, tag: u32, v: u64) {
    put_varint(out, key(tag, FIXED64));
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends a double field.
pub(crate) fn put_double(out: &mut Vec<u8>, tag: u32, v: f64) {
    put_fixed64(out, tag, v.to_bits());
}

/// Appends an sfixed64 field.
pub(crate) fn put_sfixed64(out: &mut Vec<u8>, tag: u32, v: i64) {
    put_fixed64(out, tag, u64::from_ne_bytes(v.to_ne_bytes()));
}

/// Bytes of a varint field.
pub(crate) fn varint_field_len(tag: u32, v: u64) -> usize {
    varint_len(key(tag, VARINT)) + varint_len(v)
}

/// Appends a varint field (enums, bools, unsigned integers).
pub(crate) fn put_varint_field(out: &mut Vec<u8>, tag: u32, v: u64) {
    put_varint(out, key(tag, VARINT));
    put_varint(out, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_prost() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut ours = Vec::new();
            put_varint(&mut ours, v);
            let mut theirs = Vec::new();
            prost::encoding::encode_varint(v, &mut theirs);
            assert_eq!(ours, theirs, "{v}");
            assert_eq!(varint_len(v), theirs.len(), "{v}");
        }
    }
}
