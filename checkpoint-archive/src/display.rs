//! checkpointctl's number formats, for printers that want its output.

/// `ByteToString` (checkpointctl `lib/metadata.go`): bytes below 1 KiB as
/// `N B`, else one decimal and a binary unit (`130.8 KiB`, `9.2 MiB`).
pub fn byte_to_string(bytes: u64) -> String {
    const UNIT: u64 = 1024;
    if bytes < UNIT {
        return format!("{bytes} B");
    }
    let (mut div, mut exp) = (UNIT, 0usize);
    let mut n = bytes / UNIT;
    while n >= UNIT {
        div *= UNIT;
        exp += 1;
        n /= UNIT;
    }
    let unit = ['K', 'M', 'G', 'T', 'P', 'E'][exp.min(5)];
    // f64 is what Go divides in, too: the same rounding at one decimal.
    format!("{:.1} {unit}iB", bytes as f64 / div as f64)
}

/// `FormatTime` (checkpointctl `internal/utils.go`) for CRIU's microsecond
/// timings: below 1000 as `N µs`, below a second in `ms`, else in `s`, with at
/// most five significant digits (Go's `%.5g`) and no trailing zeros.
///
/// One deliberate difference: checkpointctl trims zeros from the right of
/// the whole number too, so it prints 100 000 µs as `1 ms`; here trailing
/// zeros are only trimmed after a decimal point (`100 ms`).
pub fn format_time(microseconds: u32) -> String {
    if microseconds < 1000 {
        return format!("{microseconds} µs");
    }
    let (value, unit) = if microseconds < 1_000_000 {
        (f64::from(microseconds) / 1000.0, "ms")
    } else {
        (f64::from(microseconds) / 1_000_000.0, "s")
    };
    format!("{} {unit}", significant(value, 5))
}

/// `value` (>= 1) with `digits` significant digits, fixed notation, trailing
/// zeros (and a bare point) removed.
fn significant(value: f64, digits: usize) -> String {
    let int_digits = (value.abs().log10().floor() as i64 + 1).max(1) as usize;
    let decimals = digits.saturating_sub(int_digits);
    let mut s = format!("{value:.decimals$}");
    if s.contains('.') {
        s.truncate(s.trim_end_matches('0').trim_end_matches('.').len());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_like_checkpointctl() {
        assert_eq!(byte_to_string(0), "0 B");
        assert_eq!(byte_to_string(204), "204 B");
        assert_eq!(byte_to_string(1023), "1023 B");
        assert_eq!(byte_to_string(1024), "1.0 KiB");
        assert_eq!(byte_to_string(1280), "1.2 KiB"); // a tie: half to even, as Go
        assert_eq!(byte_to_string(133_939), "130.8 KiB");
        assert_eq!(byte_to_string(354_598_912), "338.2 MiB");
        assert_eq!(byte_to_string(4 << 30), "4.0 GiB");
        assert_eq!(byte_to_string(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn times_like_checkpointctl() {
        assert_eq!(format_time(0), "0 µs");
        assert_eq!(format_time(999), "999 µs");
        assert_eq!(format_time(1000), "1 ms");
        assert_eq!(format_time(12_345), "12.345 ms");
        assert_eq!(format_time(100_809), "100.81 ms");
        assert_eq!(format_time(100_000), "100 ms"); // checkpointctl: "1 ms"
        assert_eq!(format_time(999_999), "1000 ms");
        assert_eq!(format_time(1_000_000), "1 s");
        assert_eq!(format_time(2_500_000), "2.5 s");
        assert_eq!(format_time(u32::MAX), "4295 s");
    }
}
