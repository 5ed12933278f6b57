//! The codec of leadgate's services: prost's, except that a message that does not decode is the
//! caller's mistake.
//!
//! tonic-prost answers a request it cannot decode (random bytes, a truncated message, invalid
//! UTF-8 in a string) with INTERNAL and no details, blaming the server. The decode error is
//! classified here, where its cause is known, rather than guessed from a message afterwards:
//! `build.rs` names this codec (`codec_path`), so every generated service decodes through it.
//! Errors tonic raises before any codec runs (no message at all, a frame cut short) are mapped
//! by the guard. Encoding stays prost's: a response that cannot be sent is the server's fault.
//!
//! The generated clients (the CLI, the tests) share the codec: for them a response that does not
//! decode reads as INVALID_ARGUMENT too, which only a server that is not leadgate can cause.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::ProstEncoder;
use tonic_types::ErrorDetails;

use super::status::status;

/// The `ErrorInfo.reason` of a request that is not a valid gRPC protobuf message.
pub const MALFORMED_REQUEST: &str = "MALFORMED_REQUEST";

/// `INVALID_ARGUMENT` for a request that cannot be read; nothing was looked at or written.
pub fn malformed_request(detail: &str) -> Status {
    status(
        Code::InvalidArgument,
        MALFORMED_REQUEST,
        format!("the request is not a valid protobuf message: {detail}"),
        ErrorDetails::new(),
    )
}

/// Encodes `T` and decodes `U` with prost.
#[derive(Debug)]
pub struct ProtoCodec<T, U> {
    types: PhantomData<(T, U)>,
}

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        Self { types: PhantomData }
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoDecoder { types: PhantomData }
    }
}

/// Decodes `U`; a decode error is `INVALID_ARGUMENT` with `ErrorInfo`.
#[derive(Debug)]
pub struct ProtoDecoder<U> {
    types: PhantomData<U>,
}

impl<U: Message + Default> Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|error| malformed_request(&error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use tonic_types::StatusExt;

    use crate::grpc::pb;

    #[test]
    fn a_message_that_does_not_decode_is_invalid_argument_with_error_info() {
        for bytes in [&[0xff_u8; 12][..], &[0x0a, 0x02, 0xff, 0xfe], &[0x0a, 0x10, b'l']] {
            let error = pb::GetLeadRequest::decode(bytes).unwrap_err();
            let status = super::malformed_request(&error.to_string());
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            let info = status.get_details_error_info().unwrap();
            assert_eq!(
                (info.reason.as_str(), info.domain.as_str()),
                ("MALFORMED_REQUEST", "leadgate")
            );
        }
    }
}
