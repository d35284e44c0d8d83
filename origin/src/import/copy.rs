//! Streaming rows into PostgreSQL with `COPY ... FROM STDIN` (text format).
//!
//! A producer closure runs on a blocking thread and writes rows into a [`Sink`], which cuts
//! them into chunks of a few megabytes and hands them over a small bounded channel to the
//! async side, which sends them to the server. Generation and the server's parsing therefore
//! overlap (two cores are both busy), and memory stays bounded by a handful of chunks whatever
//! the number of rows: nothing ever holds a whole table.
//!
//! [`Sink`] writes PostgreSQL's text `COPY` format by hand (tab-separated, `\N` for NULL,
//! backslash escapes in text) because `format!` per field is the bottleneck at 25 million
//! rows.

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Datelike, Timelike};
use indicatif::ProgressBar;
use sqlx::PgConnection;
use tokio::sync::mpsc;

/// Bytes per `CopyData` message: large enough to amortise the per-message cost, small
/// enough to keep a few in flight without noticeable memory.
pub(super) const CHUNK_BYTES: usize = 4 << 20;

/// Chunks buffered between the producer thread and the connection.
const CHANNEL_CHUNKS: usize = 4;

/// Rows in PostgreSQL's text `COPY` format, handed over in chunks.
pub(super) struct Sink {
    buf: Vec<u8>,
    rows_in_buf: u64,
    rows_total: u64,
    field_open: bool,
    tx: mpsc::Sender<(Vec<u8>, u64)>,
}

impl Sink {
    fn new(tx: mpsc::Sender<(Vec<u8>, u64)>) -> Self {
        Sink {
            buf: Vec::with_capacity(CHUNK_BYTES + 4096),
            rows_in_buf: 0,
            rows_total: 0,
            field_open: false,
            tx,
        }
    }

    #[inline]
    fn sep(&mut self) {
        if self.field_open {
            self.buf.push(b'\t');
        }
        self.field_open = true;
    }

    /// An integer field.
    #[inline]
    pub(super) fn int(&mut self, value: i64) -> &mut Self {
        self.sep();
        push_int(&mut self.buf, value);
        self
    }

    /// A text field, escaped for the text format.
    pub(super) fn text(&mut self, value: &str) -> &mut Self {
        self.sep();
        for &b in value.as_bytes() {
            match b {
                b'\\' => self.buf.extend_from_slice(b"\\\\"),
                b'\t' => self.buf.extend_from_slice(b"\\t"),
                b'\n' => self.buf.extend_from_slice(b"\\n"),
                b'\r' => self.buf.extend_from_slice(b"\\r"),
                _ => self.buf.push(b),
            }
        }
        self
    }

    /// A NULL field.
    pub(super) fn null(&mut self) -> &mut Self {
        self.sep();
        self.buf.extend_from_slice(b"\\N");
        self
    }

    /// A rating given in half stars (1 = 0.5 ... 10 = 5.0), written exactly (`3`, `3.5`).
    #[inline]
    pub(super) fn half_stars(&mut self, half: u8) -> &mut Self {
        self.sep();
        push_int(&mut self.buf, i64::from(half / 2));
        if half % 2 == 1 {
            self.buf.extend_from_slice(b".5");
        }
        self
    }

    /// A `timestamptz` from Unix seconds, written in UTC (`2019-11-21 09:15:02+00`).
    #[inline]
    pub(super) fn unix_time(&mut self, secs: i64) -> Result<&mut Self> {
        self.sep();
        let t = DateTime::from_timestamp(secs, 0)
            .ok_or_else(|| anyhow!("Unix time {secs} is out of range"))?;
        let year = t.year();
        if (1000..=9999).contains(&year) {
            let b = &mut self.buf;
            push_digits(b, year as u32, 4);
            b.push(b'-');
            push_digits(b, t.month(), 2);
            b.push(b'-');
            push_digits(b, t.day(), 2);
            b.push(b' ');
            push_digits(b, t.hour(), 2);
            b.push(b':');
            push_digits(b, t.minute(), 2);
            b.push(b':');
            push_digits(b, t.second(), 2);
            b.extend_from_slice(b"+00");
        } else {
            // Rare (pre-1000 or post-9999): let chrono handle the sign and the digits.
            let s = t.format("%Y-%m-%d %H:%M:%S+00").to_string();
            self.buf.extend_from_slice(s.as_bytes());
        }
        Ok(self)
    }

    /// Ends the current row; hands the chunk over when it is full.
    #[inline]
    pub(super) fn end_row(&mut self) -> Result<()> {
        self.buf.push(b'\n');
        self.field_open = false;
        self.rows_in_buf += 1;
        self.rows_total += 1;
        if self.buf.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES + 4096));
        self.tx
            .blocking_send((chunk, self.rows_in_buf))
            // The receiver only goes away when sending to the server failed; that error is
            // the one reported.
            .map_err(|_| anyhow!("the COPY was interrupted"))?;
        self.rows_in_buf = 0;
        Ok(())
    }
}

fn push_int(buf: &mut Vec<u8>, value: i64) {
    if value < 0 {
        buf.push(b'-');
    }
    let mut v = value.unsigned_abs();
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// `value` zero-padded to exactly `width` digits (the value must fit).
fn push_digits(buf: &mut Vec<u8>, value: u32, width: usize) {
    let mut tmp = [b'0'; 10];
    let mut v = value;
    for slot in tmp[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    buf.extend_from_slice(&tmp[..width]);
}

/// Runs `statement` (a `COPY ... FROM STDIN`) on `conn` with the rows that `produce` writes.
///
/// `produce` runs on a blocking thread; `progress`, if given, advances by the rows sent.
/// Returns the number of rows the server stored, after checking it against the rows produced.
pub(super) async fn copy_in<F>(
    conn: &mut PgConnection,
    what: &str,
    statement: &str,
    progress: Option<&ProgressBar>,
    produce: F,
) -> Result<u64>
where
    F: FnOnce(&mut Sink) -> Result<()> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<(Vec<u8>, u64)>(CHANNEL_CHUNKS);
    let producer = tokio::task::spawn_blocking(move || -> Result<u64> {
        let mut sink = Sink::new(tx);
        produce(&mut sink)?;
        sink.flush()?;
        Ok(sink.rows_total)
    });

    let mut copy = match conn
        .copy_in_raw(statement)
        .await
        .with_context(|| format!("starting to copy {what}"))
    {
        Ok(copy) => copy,
        Err(e) => {
            drop(rx);
            let _ = producer.await;
            return Err(e);
        }
    };

    let mut send_error = None;
    while let Some((chunk, rows)) = rx.recv().await {
        if let Err(e) = copy.send(chunk).await {
            send_error = Some(anyhow::Error::new(e).context(format!("copying {what}")));
            break;
        }
        if let Some(bar) = progress {
            bar.inc(rows);
        }
    }
    drop(rx);

    let produced = producer
        .await
        .with_context(|| format!("generating {what}: task failed"))?;
    if let Some(e) = send_error {
        // The connection is broken; dropping `copy` sends CopyFail as best it can.
        drop(copy);
        return Err(e);
    }
    let produced = match produced {
        Ok(n) => n,
        Err(e) => {
            copy.abort(format!("import aborted: {e:#}"))
                .await
                .with_context(|| format!("aborting the copy of {what}"))?;
            return Err(e.context(format!("producing {what}")));
        }
    };
    let stored = copy
        .finish()
        .await
        .with_context(|| format!("copying {what}"))?;
    anyhow::ensure!(
        stored == produced,
        "copying {what}: the server stored {stored} rows of the {produced} sent"
    );
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink() -> (Sink, mpsc::Receiver<(Vec<u8>, u64)>) {
        let (tx, rx) = mpsc::channel(1);
        (Sink::new(tx), rx)
    }

    #[test]
    fn text_format_fields() {
        let (mut s, _rx) = sink();
        s.int(-42)
            .text("a\tb\\c\nd")
            .null()
            .half_stars(7)
            .half_stars(10);
        s.unix_time(881_250_949).unwrap();
        s.end_row().unwrap();
        assert_eq!(
            String::from_utf8(s.buf.clone()).unwrap(),
            "-42\ta\\tb\\\\c\\nd\t\\N\t3.5\t5\t1997-12-04 15:55:49+00\n"
        );
        assert_eq!(s.rows_total, 1);
    }

    #[test]
    fn timestamps_match_chrono() {
        let (mut s, _rx) = sink();
        for secs in [0_i64, 951_782_400, 1_574_380_799, 4_102_444_800, -86_400] {
            s.buf.clear();
            s.field_open = false;
            s.unix_time(secs).unwrap();
            let expected = DateTime::from_timestamp(secs, 0)
                .unwrap()
                .format("%Y-%m-%d %H:%M:%S+00")
                .to_string();
            assert_eq!(String::from_utf8(s.buf.clone()).unwrap(), expected);
        }
    }
}
