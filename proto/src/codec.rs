//! The gRPC codec of every Shoal service: prost encoding, with a message that does not decode
//! answered as `INVALID_ARGUMENT` (the caller sent something malformed) rather than gRPC's
//! default `INTERNAL`, which would suggest a fault of the server.

use std::marker::PhantomData;

use tonic::codec::{Codec, DecodeBuf, Decoder, ProstCodec};
use tonic::{Code, Status};

pub struct WireCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for WireCodec<T, U> {
    fn default() -> Self {
        WireCodec(PhantomData)
    }
}

impl<T, U> Codec for WireCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = WireDecoder<<ProstCodec<T, U> as Codec>::Decoder>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        WireDecoder(ProstCodec::<T, U>::default().decoder())
    }
}

/// Prost's decoder with malformed input reported as the caller's fault.
pub struct WireDecoder<D>(D);

impl<D: Decoder<Error = Status>> Decoder for WireDecoder<D> {
    type Item = D::Item;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<D::Item>, Status> {
        self.0.decode(buf).map_err(|s| match s.code() {
            Code::Internal => {
                Status::invalid_argument(format!("malformed message: {}", s.message()))
            }
            _ => s,
        })
    }

    fn buffer_settings(&self) -> tonic::codec::BufferSettings {
        self.0.buffer_settings()
    }
}
