//! Hexadecimal text of hashes and digests.

/// Lower-case hexadecimal.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Parses 64 hexadecimal digits.
pub fn from_hex(text: &str) -> Result<[u8; 32], String> {
    let bad = || "hash must be 64 hexadecimal digits".to_string();
    if text.len() != 64 || !text.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_goes_to_hex_and_back() {
        let hash: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        let text = to_hex(&hash);
        assert_eq!(text.len(), 64);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(from_hex(&text), Ok(hash));
        assert_eq!(from_hex(&text.to_uppercase()), Ok(hash));
    }

    #[test]
    fn anything_but_64_hex_digits_is_refused() {
        for bad in [
            "",
            "00",
            &"0".repeat(63),
            &"0".repeat(65),
            &"g".repeat(64),
            &"é".repeat(32),
        ] {
            assert!(from_hex(bad).is_err(), "{bad:?}");
        }
    }
}
