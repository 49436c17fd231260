//! Parsing of human-written sizes such as `4G`, `512MiB` or `1099511627776`.
//!
//! Suffixes are binary (`K` = KiB = 1024), as in mke2fs, truncate and qemu-img, because block
//! devices are sized in powers of two. `B` and the `iB` spelling are accepted and mean the same.

/// Why a size could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?}: {reason}")]
pub struct SizeError {
    /// The text given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parse `text` as a byte count with an optional binary suffix (K, M, G, T, P; optional `iB`/`B`).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let err = |reason| SizeError {
        input: text.to_owned(),
        reason,
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    if digits.is_empty() {
        return Err(err(
            "expected a number, optionally followed by K, M, G, T or P",
        ));
    }
    let value: u64 = digits.parse().map_err(|_| err("number too large"))?;
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        "P" | "PB" | "PIB" => 50,
        _ => return Err(err("unknown suffix (use K, M, G, T or P)")),
    };
    value
        .checked_mul(1u64 << shift)
        .ok_or_else(|| err("size does not fit in 64 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain numbers and every suffix spelling give binary multiples.
    #[test]
    fn parses_suffixes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("4K").unwrap(), 4096);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("16T").unwrap(), 16 << 40);
        assert_eq!(parse_size(" 2GB ").unwrap(), 2 << 30);
    }

    /// Garbage, unknown suffixes and overflow are rejected with the input named.
    #[test]
    fn rejects_bad_sizes() {
        for bad in ["", "G", "4X", "-1", "1.5G", "99999999999P"] {
            let e = parse_size(bad).unwrap_err();
            assert_eq!(e.input, bad);
        }
    }
}
