//! Value encoding for layers that store bytes (Redis and any adapter of your own).
//!
//! Shared layers store a value as its JSON text (serde_json), so other programs, other languages
//! and `redis-cli` can read it. Every encode and decode in the crate goes through this module, so
//! it is the one place to change the wire format.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};

/// Encodes `value` as JSON bytes.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|err| {
        Error::new(ErrorKind::Encode, format!("cannot encode a {} as JSON", std::any::type_name::<T>()))
            .with_source(err)
    })
}

/// Decodes JSON bytes as a `T`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|err| {
        Error::new(ErrorKind::Decode, format!("stored value is not a valid {}", std::any::type_name::<T>()))
            .with_source(err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = encode(&vec![1u32, 2, 3]).unwrap();
        assert_eq!(bytes, b"[1,2,3]");
        assert_eq!(decode::<Vec<u32>>(&bytes).unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn decode_error_names_the_type() {
        let err = decode::<u32>(b"\"text\"").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(err.to_string().contains("u32"), "{err}");
    }

    #[test]
    fn encode_error_is_reported() {
        // JSON object keys must be strings; a map keyed by a tuple cannot be encoded.
        let map: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        assert_eq!(encode(&map).unwrap_err().kind(), ErrorKind::Encode);
    }
}
