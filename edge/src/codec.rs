//! The byte-level codecs the edge's records and bodies are made of: JSON string escaping
//! exactly as `serde_json` does it, canonical RFC 3339 reset times as seconds (and back, byte
//! for byte), and zigzag varints for the numbers in a customer's record. Leaves: nothing here
//! knows about shapes, customers or HTTP.

use bytes::{BufMut, BytesMut};

/// `s` as a JSON string, escaped exactly as `serde_json` escapes it.
pub fn json_string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// [`json_string`] into a response buffer.
pub fn put_json_string(out: &mut BytesMut, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.put_u8(b'"');
        out.put_slice(s.as_bytes());
        out.put_u8(b'"');
    } else {
        let _ = serde_json::to_writer(out.writer(), s);
    }
}

/// Seconds since the epoch of a canonical `YYYY-MM-DDTHH:MM:SSZ`, or `None` for anything that
/// would not render back to the very same bytes (a test checks every day of four centuries).
pub fn parse_reset(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match mo {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    // Exactly what renders back to these bytes: no day 0 or 31 of June, no leap second.
    if !(1..=month_days).contains(&d) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3_600 + mi * 60 + sec)
}

/// `"YYYY-MM-DDTHH:MM:SSZ"`, quotes included.
pub fn render_reset(unix: i64) -> [u8; 22] {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = *b"\"0000-00-00T00:00:00Z\"";
    let y = y.clamp(0, 9_999);
    let put = |out: &mut [u8; 22], at: usize, v: i64, width: usize| {
        let mut v = v;
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut out, 1, y, 4);
    put(&mut out, 6, m, 2);
    put(&mut out, 9, d, 2);
    put(&mut out, 12, secs / 3_600, 2);
    put(&mut out, 15, secs % 3_600 / 60, 2);
    put(&mut out, 18, secs % 60, 2);
    out
}

// Howard Hinnant's date algorithms (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The varint at the start of `b` and its length in bytes.
#[inline]
pub fn get_varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

pub fn varint_len(b: &[u8]) -> Option<usize> {
    get_varint(b).map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_times_round_trip_and_odd_ones_do_not_parse() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T12:34:56Z",
            "2026-12-31T23:59:59Z",
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
        ] {
            let t = parse_reset(s).unwrap();
            assert_eq!(&render_reset(t)[1..21], s.as_bytes());
        }
        for s in [
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:60Z",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00:00.5Z",
            "+2026-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_reset(s), None, "{s}");
        }
    }

    #[test]
    fn every_valid_date_parses_to_what_renders_it() {
        // 1999-12-31 … 2401-01-01, one time of day per day, plus every impossible day-of-month.
        for day in 10_956i64..158_094 {
            let t = day * 86_400 + (day % 86_400);
            let text = render_reset(t);
            let s = std::str::from_utf8(&text[1..21]).unwrap();
            assert_eq!(parse_reset(s), Some(t), "{s}");
        }
        for y in [1900, 2000, 2023, 2024] {
            for m in 1..=12 {
                for d in 28..=32 {
                    let s = format!("{y:04}-{m:02}-{d:02}T00:00:00Z");
                    if let Some(t) = parse_reset(&s) {
                        assert_eq!(&render_reset(t)[1..21], s.as_bytes());
                    }
                }
            }
        }
    }

    #[test]
    fn varints_and_zigzag() {
        for v in [0i64, 1, -1, 63, -64, 1 << 40, i64::MAX, i64::MIN] {
            let mut b = Vec::new();
            put_varint(&mut b, zigzag(v));
            let (back, n) = get_varint(&b).unwrap();
            assert_eq!(n, b.len());
            assert_eq!(unzigzag(back), v);
        }
        assert_eq!(get_varint(&[0x80]), None);
    }
}
