//! Response bodies: a whole JSON document, or a watch stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use tokio::sync::mpsc;

use crate::store::WatchMsg;

/// A response body.
#[derive(Debug)]
pub(crate) enum Body {
    Full(Option<Bytes>),
    Watch {
        rx: mpsc::UnboundedReceiver<WatchMsg>,
        /// `timeoutSeconds`: the stream ends cleanly then.
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    },
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Watch { rx, deadline } => {
                if let Some(d) = deadline
                    && d.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(None);
                }
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(WatchMsg::Line(line))) => {
                        Poll::Ready(Some(Ok(Frame::data(line))))
                    }
                    // An error from the body makes hyper drop the connection
                    // without the last chunk: the client sees a broken stream.
                    Poll::Ready(Some(WatchMsg::Abort)) => Poll::Ready(Some(Err(
                        std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "watch dropped"),
                    ))),
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}
