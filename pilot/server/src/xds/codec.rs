//! The ADS stream's codec: requests decode with prost, responses are written
//! from the shared encoded resources.
//!
//! In prost's `DiscoveryResponse` every resource is an `Any` whose `value` is
//! a `Vec<u8>`, so building one per proxy copies each resource into a message
//! of its own before it is encoded, once more, into the frame. A [`Response`]
//! instead holds its header fields and the `Arc<Resource>`s of the snapshot,
//! and the encoder writes the protobuf wire format around each resource's
//! encoded `Any`: the one copy left is into the frame buffer.
//!
//! ```text
//! SotwResponse / DeltaResponse ──► encoded_len ──► reserve ──► fields in tag order ──► EncodeBuf
//!        └── Arc<Resource> ──► encoded Any (Bytes, shared by every proxy) ──┘
//! ```
//!
//! The bytes are the ones prost writes for the equivalent message (fields in
//! tag order, empty strings left out, each element of a repeated field
//! written), and the tests compare them byte for byte.
//!
//! [`Response`]: pilot_core::xds::connection::Response

use std::marker::PhantomData;

use bytes::BufMut;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use pilot_core::resources::Resource;
use pilot_core::xds::connection::{DeltaResponse, SotwResponse};

/// `DiscoveryResponse` and `DeltaDiscoveryResponse` share these numbers:
/// `version_info` / `system_version_info`.
const VERSION_INFO: u32 = 1;
const RESOURCES: u32 = 2;
const TYPE_URL: u32 = 4;
const NONCE: u32 = 5;
/// `DeltaDiscoveryResponse.removed_resources`.
const REMOVED_RESOURCES: u32 = 6;

/// `envoy.service.discovery.v3.Resource` fields.
const RESOURCE_VERSION: u32 = 1;
const RESOURCE_BODY: u32 = 2;
const RESOURCE_NAME: u32 = 3;

/// A response the codec can write: its exact length first, so the frame
/// buffer grows once, then the bytes.
pub trait WireMessage {
    fn encoded_len(&self) -> usize;
    fn encode(&self, buf: &mut impl BufMut);
}

impl WireMessage for SotwResponse {
    fn encoded_len(&self) -> usize {
        string_len(VERSION_INFO, &self.version_info)
            + self
                .resources
                .iter()
                .map(|r| nested_len(RESOURCES, r.encoded().len()))
                .sum::<usize>()
            + string_len(TYPE_URL, self.ty.type_url())
            + string_len(NONCE, &self.nonce)
    }

    fn encode(&self, buf: &mut impl BufMut) {
        put_string(VERSION_INFO, &self.version_info, buf);
        for r in &self.resources {
            put_nested(RESOURCES, r.encoded(), buf);
        }
        put_string(TYPE_URL, self.ty.type_url(), buf);
        put_string(NONCE, &self.nonce, buf);
    }
}

impl WireMessage for DeltaResponse {
    fn encoded_len(&self) -> usize {
        string_len(VERSION_INFO, &self.system_version_info)
            + self
                .resources
                .iter()
                .map(|r| nested_len(RESOURCES, delta_resource_len(r)))
                .sum::<usize>()
            + string_len(TYPE_URL, self.ty.type_url())
            + string_len(NONCE, &self.nonce)
            + self
                .removed_resources
                .iter()
                .map(|name| nested_len(REMOVED_RESOURCES, name.len()))
                .sum::<usize>()
    }

    fn encode(&self, buf: &mut impl BufMut) {
        put_string(VERSION_INFO, &self.system_version_info, buf);
        for r in &self.resources {
            encode_key(RESOURCES, WireType::LengthDelimited, buf);
            encode_varint(delta_resource_len(r) as u64, buf);
            put_string(RESOURCE_VERSION, &r.version, buf);
            put_nested(RESOURCE_BODY, r.encoded(), buf);
            put_string(RESOURCE_NAME, &r.name, buf);
        }
        put_string(TYPE_URL, self.ty.type_url(), buf);
        put_string(NONCE, &self.nonce, buf);
        // Every element of a repeated string is written, even an empty one.
        for name in &self.removed_resources {
            put_nested(REMOVED_RESOURCES, name.as_bytes(), buf);
        }
    }
}

/// Length of the `envoy.service.discovery.v3.Resource` wrapping `r`.
fn delta_resource_len(r: &Resource) -> usize {
    string_len(RESOURCE_VERSION, &r.version)
        + nested_len(RESOURCE_BODY, r.encoded().len())
        + string_len(RESOURCE_NAME, &r.name)
}

/// A length-delimited field that is always written (a message, or an element
/// of a repeated field).
fn nested_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn put_nested(tag: u32, bytes: &[u8], buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(bytes.len() as u64, buf);
    buf.put_slice(bytes);
}

/// A singular proto3 string: left out when empty.
fn string_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        nested_len(tag, s.len())
    }
}

fn put_string(tag: u32, s: &str, buf: &mut impl BufMut) {
    if !s.is_empty() {
        put_nested(tag, s.as_bytes(), buf);
    }
}

/// The codec of one ADS method: prost requests of type `Req`, responses of
/// type `Resp` written by [`WireMessage`].
#[derive(Debug)]
pub(crate) struct AdsCodec<Req, Resp>(PhantomData<fn(Req) -> Resp>);

impl<Req, Resp> Default for AdsCodec<Req, Resp> {
    fn default() -> Self {
        AdsCodec(PhantomData)
    }
}

impl<Req, Resp> Codec for AdsCodec<Req, Resp>
where
    Req: Message + Default + Send + 'static,
    Resp: WireMessage + Send + 'static,
{
    type Encode = Resp;
    type Decode = Req;
    type Encoder = ResponseEncoder<Resp>;
    type Decoder = RequestDecoder<Req>;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(PhantomData)
    }
}

#[derive(Debug)]
pub(crate) struct ResponseEncoder<Resp>(PhantomData<fn(Resp)>);

impl<Resp: WireMessage> Encoder for ResponseEncoder<Resp> {
    type Item = Resp;
    type Error = Status;

    fn encode(&mut self, item: Resp, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(item.encoded_len());
        item.encode(dst);
        Ok(())
    }
}

#[derive(Debug)]
pub(crate) struct RequestDecoder<Req>(PhantomData<fn() -> Req>);

impl<Req: Message + Default> Decoder for RequestDecoder<Req> {
    type Item = Req;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Req>, Status> {
        // The status tonic's prost codec gives a request that does not decode.
        Req::decode(src)
            .map(Some)
            .map_err(|error| Status::internal(error.to_string()))
    }
}
