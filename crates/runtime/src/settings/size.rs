//! Byte sizes such as `"4MB"`: every unit a power of 1024 (see the
//! `settings` module docs).

use serde::{Deserialize, Deserializer};

/// Parses a byte size: a number with an optional unit (see the `settings`
/// module docs). Returns the reason on failure.
pub(super) fn parse_size(text: &str) -> Result<usize, String> {
    const HINT: &str = "expected a size such as 4194304, \"4MB\", \"512KiB\" or \"2 MiB\"";
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err("a size must not be negative".to_owned());
    }
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: String = number.chars().filter(|&c| c != '_').collect();
    let (whole, fraction) = number.split_once('.').unwrap_or((&number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(HINT.to_owned());
    }
    if fraction.contains('.') || fraction.len() > 9 {
        return Err(format!("`{number}` is not a number; {HINT}"));
    }
    let multiplier: u128 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit `{}`; use B, KB/KiB, MB/MiB or GB/GiB (all powers of 1024)",
                if other.is_empty() { unit } else { unit.trim() }
            ))
        }
    };
    let too_large = || "too large for this machine".to_owned();
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let mut bytes = whole.checked_mul(multiplier).ok_or_else(too_large)?;
    if !fraction.is_empty() {
        let digits: u128 = fraction.parse().map_err(|_| HINT.to_owned())?;
        let scale = 10u128.pow(fraction.len() as u32);
        bytes = bytes
            .checked_add(digits * multiplier / scale)
            .ok_or_else(too_large)?;
    }
    usize::try_from(bytes).map_err(|_| too_large())
}

/// Serde helper for [`RuntimeConfig::compute_stack_size`]: a number of
/// bytes or a size string.
pub(super) fn deserialize_size<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    let size = Option::<Size>::deserialize(deserializer)?;
    match size {
        None => Ok(None),
        Some(Size::Bytes(n)) => usize::try_from(n)
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("compute_stack_size {n}: too large"))),
        Some(Size::Text(text)) => parse_size(&text).map(Some).map_err(|reason| {
            serde::de::Error::custom(format!("compute_stack_size {text:?}: {reason}"))
        }),
    }
}
