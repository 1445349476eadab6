//! Text with holes: how a [`crate::shape::Shape`] keeps a response body for every customer on
//! the same plans at once. The text is everything the customers share; each hole is filled per
//! customer from the numbers in its record (zigzag varints, in hole order) or from the request
//! (the OFREP `reason`). Spans mark the pieces that can be rendered alone — one feature's
//! object, one OFREP flag.
//!
//! The same numbers feed every template of a shape (the GET body, the OFREP flags): each
//! template takes the stored numbers in the same order, so one record serves them all.

use bytes::{BufMut, BytesMut};

use crate::codec::{get_varint, render_reset, unzigzag};

/// A hole in a template's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hole {
    /// `currentUsage`: the next stored number.
    Usage,
    /// `remaining`, derived from the usage just rendered and this limit.
    RemainingDerived(i64),
    /// `remaining`: the next stored number.
    Remaining,
    /// `resetAt`: the next stored number, in seconds, as a delta from the previous `resetAt`
    /// of the same customer (one billing period usually resets every meter: a delta of 0).
    ResetAt,
    /// The `remaining` filled in last, again (OFREP's `{feature}.remaining` flag, which follows
    /// the feature's own flag).
    LastRemaining,
    /// The request's reason (OFREP), quotes included.
    Reason,
}

impl Hole {
    /// Whether the hole takes one of the customer's stored numbers.
    pub fn stores(self) -> bool {
        matches!(self, Hole::Usage | Hole::Remaining | Hole::ResetAt)
    }
}

/// One piece of a template that renders alone.
#[derive(Debug, Clone, Copy)]
struct Span {
    /// The piece's text, holes removed.
    text: (u32, u32),
    /// Its holes, `holes[start..end]`.
    holes: (u32, u32),
}

/// What a render takes from the request rather than from the customer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fill {
    /// For [`Hole::Reason`]: a JSON string.
    pub reason: &'static [u8],
}

#[derive(Debug, Default)]
pub struct Template {
    text: Box<[u8]>,
    /// Each hole and the offset in `text` where it goes, in order.
    holes: Box<[(u32, Hole)]>,
    spans: Box<[Span]>,
}

impl Template {
    /// A buffer size that fits a rendered body (numbers at their widest are rare).
    pub fn len_hint(&self) -> usize {
        self.text.len() + self.holes.len() * 22
    }

    /// Bytes this template holds.
    pub fn bytes(&self) -> usize {
        self.text.len()
            + self.holes.len() * std::mem::size_of::<(u32, Hole)>()
            + self.spans.len() * std::mem::size_of::<Span>()
    }

    /// How many stored numbers a render takes.
    pub fn stored(&self) -> usize {
        self.holes.iter().filter(|(_, h)| h.stores()).count()
    }

    pub fn spans(&self) -> usize {
        self.spans.len()
    }

    /// Renders the whole text for a customer with these `values`.
    #[inline]
    pub fn render(&self, values: &[u8], fill: Fill, out: &mut BytesMut) {
        out.reserve(self.text.len() + self.holes.len() * 20);
        let mut cursor = Cursor::new(values, fill);
        let mut at = 0usize;
        for &(pos, hole) in self.holes.iter() {
            out.put_slice(&self.text[at..pos as usize]);
            cursor.fill(hole, out);
            at = pos as usize;
        }
        out.put_slice(&self.text[at..]);
    }

    /// Renders span `index` alone.
    pub fn render_span(&self, index: usize, values: &[u8], fill: Fill, out: &mut BytesMut) {
        let Some(span) = self.spans.get(index) else {
            return;
        };
        let mut cursor = Cursor::new(values, fill);
        // Walk the earlier holes for their numbers (and the running reset time).
        for &(_, hole) in &self.holes[..span.holes.0 as usize] {
            cursor.skip(hole);
        }
        out.reserve((span.text.1 - span.text.0) as usize + 40);
        let mut at = span.text.0 as usize;
        for &(pos, hole) in &self.holes[span.holes.0 as usize..span.holes.1 as usize] {
            out.put_slice(&self.text[at..pos as usize]);
            cursor.fill(hole, out);
            at = pos as usize;
        }
        out.put_slice(&self.text[at..span.text.1 as usize]);
    }
}

/// Builds a [`Template`]: literal text, holes, and spans around pieces.
#[derive(Debug, Default)]
pub struct Builder {
    text: Vec<u8>,
    holes: Vec<(u32, Hole)>,
    spans: Vec<Span>,
    open: Option<(u32, u32)>,
}

impl Builder {
    pub fn with_capacity(bytes: usize) -> Builder {
        Builder {
            text: Vec::with_capacity(bytes),
            ..Builder::default()
        }
    }

    /// The text so far, to append literal bytes to.
    pub fn text(&mut self) -> &mut Vec<u8> {
        &mut self.text
    }

    pub fn put(&mut self, bytes: &[u8]) {
        self.text.extend_from_slice(bytes);
    }

    pub fn hole(&mut self, hole: Hole) {
        self.holes.push((self.text.len() as u32, hole));
    }

    pub fn begin_span(&mut self) {
        self.open = Some((self.text.len() as u32, self.holes.len() as u32));
    }

    /// Ends the span begun last; returns its index.
    pub fn end_span(&mut self) -> usize {
        let (text, holes) = self.open.take().unwrap_or((0, 0));
        self.spans.push(Span {
            text: (text, self.text.len() as u32),
            holes: (holes, self.holes.len() as u32),
        });
        self.spans.len() - 1
    }

    pub fn finish(self) -> Template {
        Template {
            text: self.text.into_boxed_slice(),
            holes: self.holes.into_boxed_slice(),
            spans: self.spans.into_boxed_slice(),
        }
    }
}

/// Reads a customer's numbers in hole order.
struct Cursor<'v> {
    values: &'v [u8],
    fill: Fill,
    last_usage: i64,
    last_remaining: i64,
    last_reset: i64,
    /// The last reset time rendered: a customer's meters usually share one, so the second is
    /// a copy.
    rendered_reset: Option<(i64, [u8; 22])>,
}

impl<'v> Cursor<'v> {
    fn new(values: &'v [u8], fill: Fill) -> Self {
        Cursor {
            values,
            fill,
            last_usage: 0,
            last_remaining: 0,
            last_reset: 0,
            rendered_reset: None,
        }
    }

    #[inline]
    fn next(&mut self) -> i64 {
        match get_varint(self.values) {
            Some((v, n)) => {
                self.values = &self.values[n..];
                unzigzag(v)
            }
            None => 0,
        }
    }

    #[inline]
    fn value(&mut self, hole: Hole) -> i64 {
        match hole {
            Hole::Usage => {
                self.last_usage = self.next();
                self.last_usage
            }
            Hole::RemainingDerived(limit) => {
                self.last_remaining = limit.saturating_sub(self.last_usage).max(0);
                self.last_remaining
            }
            Hole::Remaining => {
                self.last_remaining = self.next();
                self.last_remaining
            }
            Hole::ResetAt => {
                self.last_reset = self.last_reset.wrapping_add(self.next());
                self.last_reset
            }
            Hole::LastRemaining => self.last_remaining,
            Hole::Reason => 0,
        }
    }

    fn skip(&mut self, hole: Hole) {
        self.value(hole);
    }

    #[inline]
    fn fill(&mut self, hole: Hole, out: &mut BytesMut) {
        match hole {
            Hole::Reason => out.put_slice(self.fill.reason),
            Hole::ResetAt => {
                let v = self.value(hole);
                let text = match self.rendered_reset {
                    Some((at, text)) if at == v => text,
                    _ => {
                        let text = render_reset(v);
                        self.rendered_reset = Some((v, text));
                        text
                    }
                };
                out.put_slice(&text);
            }
            _ => {
                let v = self.value(hole);
                out.put_slice(itoa::Buffer::new().format(v).as_bytes());
            }
        }
    }
}
