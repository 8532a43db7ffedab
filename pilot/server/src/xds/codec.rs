//! The ADS stream's wire format, both ways, without tonic's codec:
//! requests are read out of the body's gRPC frames and decoded with prost
//! ([`Requests`]); responses are written from the shared encoded resources
//! ([`ResponseBody`]).
//!
//! In prost's `DiscoveryResponse` every resource is an `Any` whose `value` is
//! a `Vec<u8>`, so building one per proxy copies each resource into a message
//! of its own before it is encoded, once more, into the frame. A [`Response`]
//! instead holds its header fields and the `Arc<Resource>`s of the snapshot,
//! and the writer puts the protobuf wire format around each resource's
//! encoded `Any`: small pieces are copied together into chunks, large
//! resources go out as the shared bytes themselves.
//!
//! ```text
//! SotwResponse / DeltaResponse ──► gRPC header, head fields ──► resources, a chunk at a time ──► tail fields
//!        └── Arc<Resource> ──► encoded Any (Bytes, shared by every proxy) ──┘
//! ```
//!
//! The bytes are the ones prost writes for the equivalent message (fields in
//! tag order, empty strings left out, each element of a repeated field
//! written), and the tests compare them byte for byte.
//!
//! Both directions exist because tonic's keep a stream's largest message
//! allocated for the life of the stream: with a megabyte response and a
//! request of hundreds of KiB per Envoy in a large mesh, that was most of
//! what a connected proxy cost the server.
//!
//! [`Response`]: pilot_core::xds::connection::Response

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::Body as _;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::http;
use tonic::{Code, Status};

use pilot_core::resources::{Resource, SHARE_AT};
use pilot_core::xds::connection::{DeltaResponse, Payload, SotwResponse};

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

/// Where a response's bytes go: a buffer (a copy, as prost would write
/// them), or [`Chunks`], which takes a large resource by reference.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);

    /// A resource's encoded bytes, shared by every response carrying it.
    fn put_shared(&mut self, bytes: &Bytes) {
        self.put(bytes);
    }
}

impl<B: BufMut> Sink for B {
    fn put(&mut self, bytes: &[u8]) {
        self.put_slice(bytes);
    }
}

/// A response the codec can write: its exact length first, so a buffer
/// grows once, then the bytes, field by field. The resources are written
/// one at a time, so a response can go out in pieces (see [`ResponseBody`]).
pub trait WireMessage {
    fn encoded_len(&self) -> usize;
    /// The fields before the resources.
    fn head(&self, out: &mut impl Sink);
    fn resource_count(&self) -> usize;
    /// The `i`th element of the `resources` field.
    fn resource(&self, i: usize, out: &mut impl Sink);
    /// The fields after the resources.
    fn tail(&self, out: &mut impl Sink);

    fn encode(&self, out: &mut impl Sink) {
        self.head(out);
        for i in 0..self.resource_count() {
            self.resource(i, out);
        }
        self.tail(out);
    }
}

impl WireMessage for SotwResponse {
    fn encoded_len(&self) -> usize {
        let resources: usize = match &self.resources {
            Payload::Whole(whole) => whole.pieces().map(Bytes::len).sum(),
            Payload::Listed(list) => list
                .iter()
                .map(|r| nested_len(RESOURCES, r.encoded().len()))
                .sum(),
        };
        string_len(VERSION_INFO, &self.version_info)
            + resources
            + string_len(TYPE_URL, self.ty.type_url())
            + string_len(NONCE, &self.nonce)
    }

    fn head(&self, out: &mut impl Sink) {
        put_string(VERSION_INFO, &self.version_info, out);
    }

    fn resource_count(&self) -> usize {
        match &self.resources {
            // The set's pre-encoded pieces, each a run of whole elements.
            Payload::Whole(whole) => whole.piece_count(),
            Payload::Listed(list) => list.len(),
        }
    }

    fn resource(&self, i: usize, out: &mut impl Sink) {
        match &self.resources {
            Payload::Whole(whole) => out.put_shared(whole.piece(i)),
            Payload::Listed(list) => put_shared(RESOURCES, list[i].encoded(), out),
        }
    }

    fn tail(&self, out: &mut impl Sink) {
        put_string(TYPE_URL, self.ty.type_url(), out);
        put_string(NONCE, &self.nonce, out);
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

    fn head(&self, out: &mut impl Sink) {
        put_string(VERSION_INFO, &self.system_version_info, out);
    }

    fn resource_count(&self) -> usize {
        self.resources.len()
    }

    fn resource(&self, i: usize, out: &mut impl Sink) {
        let r = &self.resources[i];
        put_prefix(RESOURCES, delta_resource_len(r), out);
        put_string(RESOURCE_VERSION, &r.version, out);
        put_shared(RESOURCE_BODY, r.encoded(), out);
        put_string(RESOURCE_NAME, &r.name, out);
    }

    fn tail(&self, out: &mut impl Sink) {
        put_string(TYPE_URL, self.ty.type_url(), out);
        put_string(NONCE, &self.nonce, out);
        // Every element of a repeated string is written, even an empty one.
        for name in &self.removed_resources {
            put_nested(REMOVED_RESOURCES, name.as_bytes(), out);
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

/// The key and length of a length-delimited field.
fn put_prefix(tag: u32, len: usize, out: &mut impl Sink) {
    let mut prefix = [0u8; 15];
    let mut rest = &mut prefix[..];
    encode_key(tag, WireType::LengthDelimited, &mut rest);
    encode_varint(len as u64, &mut rest);
    let written = 15 - rest.len();
    out.put(&prefix[..written]);
}

fn put_nested(tag: u32, bytes: &[u8], out: &mut impl Sink) {
    put_prefix(tag, bytes.len(), out);
    out.put(bytes);
}

fn put_shared(tag: u32, bytes: &Bytes, out: &mut impl Sink) {
    put_prefix(tag, bytes.len(), out);
    out.put_shared(bytes);
}

/// A singular proto3 string: left out when empty.
fn string_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        nested_len(tag, s.len())
    }
}

fn put_string(tag: u32, s: &str, out: &mut impl Sink) {
    if !s.is_empty() {
        put_nested(tag, s.as_bytes(), out);
    }
}

/// How many bytes the chunks of one step copy at most, about: what a stream
/// holds of a response beyond the shared resources.
const CHUNK: usize = 16 * 1024;

/// A response's bytes as a run of chunks: small pieces copied together, the
/// large resources shared, not copied.
#[derive(Debug, Default)]
pub struct Chunks {
    done: VecDeque<Bytes>,
    current: BytesMut,
    copied: usize,
}

impl Sink for Chunks {
    fn put(&mut self, bytes: &[u8]) {
        self.current.extend_from_slice(bytes);
        self.copied += bytes.len();
    }

    fn put_shared(&mut self, bytes: &Bytes) {
        if bytes.len() < SHARE_AT {
            return self.put(bytes);
        }
        self.flush();
        self.done.push_back(bytes.clone());
    }
}

impl Chunks {
    fn flush(&mut self) {
        if !self.current.is_empty() {
            // A new buffer each time: a chunk never keeps a spare tail alive.
            let full = std::mem::take(&mut self.current);
            self.done.push_back(full.freeze());
        }
    }

    /// The chunks written so far.
    pub fn finish(mut self) -> VecDeque<Bytes> {
        self.flush();
        self.done
    }
}

/// One response being written: the next resource to write, or `None` once
/// the gRPC frame header and the head are still to come.
#[derive(Debug)]
struct Writing<T> {
    message: T,
    next: Option<usize>,
}

impl<T: WireMessage> Writing<T> {
    /// Writes the next piece of about [`CHUNK`] copied bytes (and any large
    /// resources by reference); returns whether the message is complete.
    fn step(&mut self, out: &mut Chunks) -> Result<bool, Status> {
        let next = match self.next {
            Some(next) => next,
            None => {
                let len = u32::try_from(self.message.encoded_len()).map_err(|_| {
                    Status::resource_exhausted("response larger than a gRPC message can be")
                })?;
                // The gRPC message header: not compressed, then the length.
                out.put(&[0]);
                out.put(&len.to_be_bytes());
                self.message.head(out);
                0
            }
        };
        let count = self.message.resource_count();
        let mut i = next;
        while i < count && out.copied < CHUNK {
            self.message.resource(i, out);
            i += 1;
        }
        self.next = Some(i);
        if i == count {
            self.message.tail(out);
            return Ok(true);
        }
        Ok(false)
    }
}

/// The body of an ADS response stream: each response framed as gRPC does
/// and written in chunks as the connection takes them, so a stream holds
/// one chunk of copied bytes at a time (HTTP/2 flow control decides when
/// the next is asked for), never a whole response; then the trailers with
/// the stream's gRPC status.
///
/// tonic's own encoder writes every response whole into one growing buffer
/// per stream and keeps that buffer's spare capacity for the next message,
/// which with megabyte responses left a megabyte per stream.
#[derive(Debug)]
pub struct ResponseBody<T> {
    responses: ReceiverStream<Result<T, Status>>,
    writing: Option<Writing<T>>,
    ready: VecDeque<Bytes>,
    ended: bool,
}

impl<T> ResponseBody<T> {
    pub fn new(responses: ReceiverStream<Result<T, Status>>) -> Self {
        ResponseBody {
            responses,
            writing: None,
            ready: VecDeque::new(),
            ended: false,
        }
    }
}

impl<T: WireMessage + Unpin + Send + 'static> http_body::Body for ResponseBody<T> {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        let this = &mut *self;
        loop {
            if let Some(chunk) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(http_body::Frame::data(chunk))));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            if let Some(writing) = &mut this.writing {
                let mut out = Chunks::default();
                match writing.step(&mut out) {
                    Ok(complete) => {
                        if complete {
                            this.writing = None;
                        }
                        this.ready = out.finish();
                    }
                    Err(status) => return Poll::Ready(Some(Ok(this.end(status)))),
                }
                continue;
            }
            match Pin::new(&mut this.responses).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(message))) => {
                    this.writing = Some(Writing {
                        message,
                        next: None,
                    });
                }
                Poll::Ready(Some(Err(status))) => return Poll::Ready(Some(Ok(this.end(status)))),
                Poll::Ready(None) => {
                    return Poll::Ready(Some(Ok(this.end(Status::new(Code::Ok, "")))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.ready.is_empty()
    }
}

impl<T> ResponseBody<T> {
    /// The trailers carrying `status`; the body ends after them.
    fn end(&mut self, status: Status) -> http_body::Frame<Bytes> {
        self.ended = true;
        self.writing = None;
        let mut trailers = http::HeaderMap::new();
        if let Err(status) = status.add_header(&mut trailers) {
            // A message that cannot be a header value: say so instead.
            let _ = Status::internal(status.message().escape_default().to_string())
                .add_header(&mut trailers);
        }
        http_body::Frame::trailers(trailers)
    }
}

/// The largest request accepted, as tonic's default: 4 MiB.
const MAX_REQUEST: usize = 4 * 1024 * 1024;
/// A request buffer larger than this is let go once it has been read out:
/// Envoy's first EDS request names every cluster (hundreds of KiB in a
/// large mesh), and its ACKs later are small.
const KEEP_BUFFER: usize = 16 * 1024;

/// The requests of an ADS stream, decoded from the request body's gRPC
/// frames. tonic's `Streaming` keeps its read buffer at the size of the
/// largest request it has seen for the life of the stream; this one lets a
/// large buffer go once the request in it is decoded, so a server holding
/// thousands of streams keeps none of their first requests' bytes.
#[derive(Debug)]
pub struct Requests<Req> {
    body: tonic::body::Body,
    buf: BytesMut,
    /// The body has ended.
    ended: bool,
    /// An error was returned: the stream yields nothing more.
    failed: bool,
    _request: PhantomData<fn() -> Req>,
}

impl<Req> Requests<Req> {
    pub fn new(body: tonic::body::Body) -> Self {
        Requests {
            body,
            buf: BytesMut::new(),
            ended: false,
            failed: false,
            _request: PhantomData,
        }
    }
}

impl<Req: Message + Default> Requests<Req> {
    /// The next whole request in the buffer, if there is one.
    fn decode(&mut self) -> Result<Option<Req>, Status> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        if self.buf[0] != 0 {
            return Err(Status::unimplemented(
                "compressed requests are not supported",
            ));
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_REQUEST {
            return Err(Status::out_of_range(format!(
                "Error, decoded message length too large: found {len} bytes, the limit is: {MAX_REQUEST} bytes"
            )));
        }
        if self.buf.len() < 5 + len {
            self.buf.reserve(5 + len - self.buf.len());
            return Ok(None);
        }
        let _ = self.buf.split_to(5);
        let message = self.buf.split_to(len);
        let request =
            Req::decode(message.freeze()).map_err(|error| Status::internal(error.to_string()))?;
        if self.buf.is_empty() && self.buf.capacity() > KEEP_BUFFER {
            self.buf = BytesMut::new();
        }
        Ok(Some(request))
    }

    fn fail(&mut self, status: Status) -> Status {
        self.failed = true;
        self.buf = BytesMut::new();
        status
    }

    /// The bytes the stream's read buffer holds on to.
    pub fn buffered(&self) -> usize {
        self.buf.capacity()
    }
}

impl<Req: Message + Default> Stream for Requests<Req> {
    type Item = Result<Req, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.failed {
                return Poll::Ready(None);
            }
            match this.decode() {
                Ok(Some(request)) => return Poll::Ready(Some(Ok(request))),
                Ok(None) => {}
                Err(status) => return Poll::Ready(Some(Err(this.fail(status)))),
            }
            if this.ended {
                if this.buf.is_empty() {
                    return Poll::Ready(None);
                }
                let status = Status::internal("the request stream ended inside a message");
                return Poll::Ready(Some(Err(this.fail(status))));
            }
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.ended = true,
                Poll::Ready(Some(Err(status))) => {
                    return Poll::Ready(Some(Err(this.fail(status))));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers from a client carry nothing for ADS.
                    if let Ok(data) = frame.into_data() {
                        this.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}
